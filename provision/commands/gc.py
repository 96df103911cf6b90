"""`provision gc`: delete the kit's resource groups that no record here knows."""

from typing import Any

from provision.errors import ProvisionError
from provision.output import Output
from provision.settings import load
from provision.state import Record, StateStore
from provision.targets import CLOUD, cloud_target


def gc(flags: dict[str, Any], store: StateStore, out: Output, *, yes: bool, everyone: bool) -> None:
    """Delete dsvm-kit resource groups that no record here knows (yours, unless everyone)."""
    target = cloud_target(load({**flags, "target": CLOUD}))
    known, me = set(store.names()), None if everyone else target.owner
    orphans = [
        group
        for group in target.list_groups()
        if group["deployment"] not in known and (me is None or group["owner"] == me.id)
    ]
    if not orphans:
        whose = "" if me is None else f" (owner {me.name or me.id})"
        out.result("no dsvm-kit resource groups without a record here" + whose)
        return
    columns = ["resource_group", "deployment", "region", "owner", "owner_name", "created"]
    out.table(columns, [tuple(group[c] for c in columns) for group in orphans])
    if not yes and not out.confirm(f"Delete these {len(orphans)} resource group(s) and all in them?"):
        raise ProvisionError("nothing deleted (answer yes, or pass --yes)")
    for group in orphans:
        name = group["deployment"]
        record = Record(
            name=name,
            target=CLOUD,
            created=group["created"],
            settings={"resource_group": group["resource_group"]},
        )
        cloud_target(load({**flags, "target": CLOUD, "name": name})).destroy(record, out, wait=True)
    out.result(f"deleted {len(orphans)} resource group(s)")
