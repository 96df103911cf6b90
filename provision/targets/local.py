"""This machine: try the notebook before paying for a GPU. Creates no cloud resource."""

import getpass
from collections.abc import Callable

from provision.errors import ProvisionError
from provision.output import Output
from provision.state import Journal, Record
from provision.targets import RUNNING, ExistingMachine, Machine


class LocalTarget(ExistingMachine):
    def create(self, journal: Journal, out: Output, *, on_address: Callable[[Machine], None] | None = None) -> Machine:
        machine = Machine(host="127.0.0.1", port=0, user=getpass.getuser(), local=True)
        journal.record.machine = machine.to_dict()
        journal.save()
        if on_address is not None:
            on_address(machine)
        return machine

    def status(self, record: Record) -> dict:
        return {"power_state": RUNNING}

    def stop(self, record: Record, out: Output) -> None:
        raise ProvisionError("--target local has no VM to stop: `provision down` stops its Jupyter")

    def start(self, journal: Journal, out: Output) -> Machine:
        raise ProvisionError("--target local has no VM to start: `provision up` starts its Jupyter")
