"""An existing machine reached over SSH (ssh://user@host[:port]). Creates no cloud resource."""

from collections.abc import Callable
from pathlib import Path

from provision.errors import ProvisionError
from provision.keys import fingerprint
from provision.output import Output
from provision.state import Journal, Record
from provision.targets import NOT_A_CLOUD_MACHINE, ExistingMachine, Machine

DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")


class SSHTarget(ExistingMachine):
    def create(self, journal: Journal, out: Output, *, on_address: Callable[[Machine], None] | None = None) -> Machine:
        user, host, port = self.settings.ssh_target
        machine = Machine(
            host=host,
            port=port,
            user=user,
            key_path=self._identity(),
            host_key=self.settings.host_key or self._confirmed_host_key(host, port, out),
        )
        journal.record.machine = machine.to_dict()
        journal.save()
        if on_address is not None:
            on_address(machine)
        return machine

    def _identity(self) -> str:
        if self.settings.identity:
            return self.settings.identity
        for name in DEFAULT_IDENTITIES:
            path = Path.home() / ".ssh" / name
            if path.is_file():
                return str(path)
        raise ProvisionError("no SSH key found in ~/.ssh; pass --identity PATH_TO_PRIVATE_KEY")

    def _confirmed_host_key(self, host: str, port: int, out: Output) -> str:
        """The key the host presents, used only once the user confirms its fingerprint."""
        from bootstrap.remote import fetch_host_key

        presented = fetch_host_key(host, port)
        question = (
            f"{host}:{port} presents host key {fingerprint(presented)} ({presented.split()[0]}). "
            "Is this the machine's key (on it: "
            "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`)?"
        )
        if not out.confirm(question):
            raise ProvisionError(
                f"host key of {host}:{port} not confirmed; pass it with --host-key "
                "(the line from /etc/ssh/ssh_host_ed25519_key.pub on the machine)"
            )
        return presented

    def status(self, record: Record) -> dict:
        return {"power_state": NOT_A_CLOUD_MACHINE}

    def stop(self, record: Record, out: Output) -> None:
        raise ProvisionError(
            f"{record.target} is a machine the kit did not create and cannot power off: "
            "`provision down` stops its Jupyter"
        )

    def start(self, journal: Journal, out: Output) -> Machine:
        raise ProvisionError(
            f"{journal.record.target} is a machine the kit did not create and cannot power on: "
            "`provision up` starts its Jupyter"
        )
