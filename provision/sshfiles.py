"""Files and command lines that let plain OpenSSH reach a deployment with its pinned keys: the head directly,
a worker node (several nodes) through the head, as ProxyJump does, at its private address."""

import shlex

from provision.errors import ProvisionError
from provision.state import StateStore
from provision.targets import Machine

KNOWN_HOSTS = "known_hosts"


def host_pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def write_known_hosts(store: StateStore, name: str, machine: Machine, workers: list[Machine] | None = None) -> None:
    """known_hosts with the pinned key under the machine's address (and FQDN, if any), and each worker's under its
    private address."""
    if not machine.host_key:  # this machine: reached without SSH
        return
    hosts = [host_pattern(h, machine.port) for h in (machine.host, machine.fqdn) if h]
    lines = [f"{','.join(hosts)} {machine.host_key}"]
    lines += [f"{host_pattern(w.host, w.port)} {w.host_key}" for w in workers or [] if w.host_key]
    store.write_secret(name, KNOWN_HOSTS, "\n".join(lines) + "\n")


def _options(store: StateStore, name: str, machine: Machine) -> list[tuple[str, str]]:
    return [
        ("HostName", machine.host),
        ("Port", str(machine.port)),
        ("User", machine.user),
        ("IdentityFile", str(machine.key_path)),
        ("IdentitiesOnly", "yes"),
        ("UserKnownHostsFile", str(store.root / name / KNOWN_HOSTS)),
        ("StrictHostKeyChecking", "yes"),
    ]


def _ssh_machines(store: StateStore, name: str) -> list[Machine]:
    """Every node, head first."""
    record = store.load(name)
    if record is None or not record.machine:
        raise ProvisionError(f"no machine recorded for {name!r}; see `provision list`")
    machine = Machine.from_dict(record.machine)
    if not machine.over_ssh:
        raise ProvisionError(f"{name!r} is this machine (--target local): no SSH needed")
    return [Machine.from_dict(node) for node in record.nodes] or [machine]


def _argv(store: StateStore, name: str, machine: Machine) -> list[str]:
    """`ssh` with the options, the destination last but not yet appended."""
    argv = ["ssh"]
    for key, value in _options(store, name, machine):
        if key != "HostName":
            argv += ["-o", f"{key}={value}"]
    return argv


def ssh_argv(store: StateStore, name: str, command: list[str], node: int = 0) -> list[str]:
    """`ssh` with the deployment's key and known_hosts only, to node `node` (0: the head; a worker through the
    head, whose own ssh carries the same options: -J would not), then the command if any."""
    machines = _ssh_machines(store, name)
    if not 0 <= node < len(machines):
        raise ProvisionError(f"{name!r} has no node {node}: its nodes are 0 (the head) to {len(machines) - 1}")
    head, machine = machines[0], machines[node]
    argv = _argv(store, name, machine)
    if machine.via_head:
        jump = shlex.join([*_argv(store, name, head), "-W", "%h:%p", head.host])
        argv += ["-o", f"ProxyCommand={jump}"]
    return [*argv, machine.host, *command]  # ssh takes no options after the destination


def ssh_config_block(store: StateStore, name: str) -> str:
    """A Host block for the head (`dsvm-NAME`), and one per worker (`dsvm-NAME-nodeK`) that jumps through it."""
    head, *workers = _ssh_machines(store, name)
    blocks = [[f"Host dsvm-{name}"] + [f"    {k} {v}" for k, v in _options(store, name, head)]]
    for number, worker in enumerate(workers, 1):
        options = [*_options(store, name, worker), ("ProxyJump", f"dsvm-{name}")]
        blocks.append([f"Host dsvm-{name}-node{number}"] + [f"    {k} {v}" for k, v in options])
    return "\n\n".join("\n".join(lines) for lines in blocks)
