"""`provision down`: delete everything `up` made for a deployment, and its record."""

from typing import Any

from provision.commands.core import teardown
from provision.commands.transfer import save_work
from provision.deployment import new_record, settings_for
from provision.errors import ProvisionError
from provision.output import Output
from provision.settings import WHERE, load
from provision.state import StateStore
from provision.targets import CLOUD, target_for


def down(
    name: str, flags: dict[str, Any], store: StateStore, out: Output, *, wait: bool, yes: bool, discard: bool = False
) -> None:
    """Save the work directory (unless `discard`), then delete everything `up` made for `name` and the record;
    already gone is success. `yes` skips the question, never the save."""
    record = store.load(name)
    settings = settings_for(record, flags) if record else load({**flags, "name": name, "target": CLOUD}, only=WHERE)
    target = target_for(settings)
    if not yes and not out.confirm(target.down_question(record)):
        raise ProvisionError("nothing deleted (answer yes, or pass --yes)")
    with store.lock(name, on_wait=out.note):
        if record is not None:
            save_work(record, target, store, out, discard=discard)
        teardown(record or new_record(settings), settings, store, out, wait=wait)
    gone = wait or not target.deletes_machine
    out.result(f"deployment {name!r} is gone" if gone else f"deletion of {name!r} started")
