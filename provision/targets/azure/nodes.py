"""Several nodes on Azure: each worker's plan with its own host key, and the names of every node's VM."""

from provision import keys
from provision.plan import Plan, names_for, node_names


def plans(plan: Plan) -> list[Plan]:
    """The head's plan, then each worker's: same size, network and placement group; its own NIC, disk, host key."""
    return [plan] + [plan.for_node(k, keys.generate(comment=f"{plan.name}-{k}-host")) for k in range(1, plan.nodes)]


def vm_names(name: str, subscription: str, count: int) -> list[str]:
    """Every node's VM name, head first."""
    names = names_for(name, subscription)
    return [node_names(names, k).vm for k in range(count)]
