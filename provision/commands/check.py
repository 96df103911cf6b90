"""`provision check`: the notebook and the verdict again on a live deployment."""

from typing import Any

from provision import session
from provision.commands.core import gpu_check
from provision.deployment import settings_for
from provision.errors import ProvisionError
from provision.output import Output
from provision.state import Journal, StateStore
from provision.targets import Machine


def check(name: str, flags: dict[str, Any], store: StateStore, out: Output) -> None:
    """`provision check`: rerun the notebook and the verdict on a live deployment."""
    with store.lock(name, on_wait=out.note):
        record = store.require(name)
        settings = settings_for(record, flags)
        journal = Journal(store, record)
        machine = Machine.from_dict(record.machine or {})
        if record.jupyter is None:
            raise ProvisionError(f"{name!r} was never bootstrapped; run `provision up --name {name}`")
        remote = session.open_remote(machine, out, timeout=60)
        try:
            gpu_check(remote, record.jupyter["python"], settings, journal, out, skip=False)
        finally:
            remote.close()
