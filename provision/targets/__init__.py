"""Where the machine comes from: Azure, an existing host over SSH, or this machine."""

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from provision.output import Output
from provision.prices import Quote
from provision.settings import Settings
from provision.state import Journal, Record

RUNNING = "running"
NOT_A_CLOUD_MACHINE = "unknown (not a cloud machine)"  # no API tells whether it is on


@dataclass(frozen=True)
class Machine:
    """How to reach a machine that is up."""

    host: str
    port: int
    user: str
    key_path: str | None = None  # None: the local transport needs no key
    host_key: str | None = None  # pinned "ssh-ed25519 AAAA..."; None only for local
    fqdn: str | None = None
    local: bool = False
    ssh_from: str | None = None  # the source address the cloud's firewall admits to SSH, if it has one
    private_ip: str | None = None  # its address in the deployment's network (several nodes only)
    via_head: bool = False  # a worker node: reached only through the head's SSH connection, at private_ip

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Machine":
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__ if key in data})


class Target(Protocol):
    def create(self, journal: Journal, out: Output, *, on_address: Callable[[Machine], None] | None = None) -> Machine:
        """Make (or find) the machine; record every resource in the journal as it goes. `on_address` hears
        of the machine as soon as its address is known, which may be before it is made (SSH may begin)."""

    def destroy(self, record: Record | None, out: Output, *, wait: bool) -> None:
        """Delete what `create` made, if anything; already gone is success."""

    def status(self, record: Record) -> dict:
        """Live facts about the machine (power state, address...)."""

    def stop(self, record: Record, out: Output) -> None:
        """Power the machine off so that its compute stops billing, keeping its disk; or refuse in one line."""

    def start(self, journal: Journal, out: Output) -> Machine:
        """Power a stopped machine on again; the machine as it is now reached (recorded in the journal)."""

    def check_access(self, out: Output) -> None:
        """Prove, before anything is created or asked, that the kit may act there (credentials, account; on Azure,
        that some size and region has quota)."""

    def quotes(self) -> list[Quote]:
        """What each machine `create` may make costs, in the order it tries them; empty when free."""


def target_for(settings: Settings) -> Target:
    if settings.is_azure:
        from provision.targets.azure import AzureTarget

        return AzureTarget(settings)
    if settings.target == "local":
        from provision.targets.local import LocalTarget

        return LocalTarget(settings)
    from provision.targets.ssh import SSHTarget

    return SSHTarget(settings)
