"""What a resize needs of quota: only what the new size adds to the VMs' own use (the vCPU difference x nodes).

Azure counts a running VM's vCPUs against its family and the regional total (or the Spot total); a resize PUT asks
only for the difference, and a deallocated VM's vCPUs count for nothing until it starts.
"""

from provision.targets.azure import quota
from provision.targets.azure.errors import AzureError


def shortfall(region: quota.Region, new: quota.Fit, old: quota.Fit, *, running: bool) -> AzureError | None:
    """The first quota that cannot hold the move from `old` to `new` (both for every node), as a one-line error
    naming the `provision quota request` that asks for the difference; None when every quota holds it."""
    freed = set(map(quota.norm, old.quota_names())) if running else set()
    for name in new.quota_names():
        usage = region.usage(name)
        if usage is None:
            continue
        more = new.needed - (old.needed if quota.norm(name) in freed else 0)
        if more > 0 and usage.free < more:
            subject = (
                f"family {usage.name}" if quota.norm(name) == quota.norm(new.family) else quota.LABELS[quota.norm(name)]
            )
            nodes = f" ({new.nodes} nodes)" if new.nodes > 1 else ""
            command = f"provision quota request --size {new.size} --region {new.region}" + " --spot" * new.spot
            return AzureError(
                f"no quota to resize to {new.size} in {new.region}: {subject} has a limit of {usage.limit} vCPUs, "
                f"{usage.current} in use, and the resize needs {more} more{nodes}; nothing was changed; run "
                f"`{command} --vcpus {more}`",
                "QuotaExceeded",
            )
    return None
