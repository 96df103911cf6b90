"""`provision down`: delete everything `up` made for a deployment, and its record."""

from typing import Any

from provision.commands.core import teardown
from provision.deployment import new_record, settings_for
from provision.errors import ProvisionError
from provision.output import Output
from provision.settings import WHERE, Settings, load
from provision.state import Record, StateStore


def down(name: str, flags: dict[str, Any], store: StateStore, out: Output, *, wait: bool, yes: bool) -> None:
    """Delete everything `up` made for `name` and the record; already gone is success."""
    record = store.load(name)
    settings = settings_for(record, flags) if record else load({**flags, "name": name, "target": "azure"}, only=WHERE)
    if not yes and not out.confirm(_down_question(name, record, settings)):
        raise ProvisionError("nothing deleted (answer yes, or pass --yes)")
    with store.lock(name, on_wait=out.note):
        teardown(record or new_record(settings), settings, store, out, wait=wait)
    gone = wait or not settings.is_azure
    out.result(f"deployment {name!r} is gone" if gone else f"deletion of {name!r} started")


def _down_question(name: str, record: Record | None, settings: Settings) -> str:
    if not settings.is_azure:
        return f"Stop Jupyter on {settings.target} and forget deployment {name!r}?"
    where = f" in {record.settings.get('region')}" if record else " (found by its tags)"
    return f"Delete deployment {name!r}{where}: its VM, disk, network and resource group?"
