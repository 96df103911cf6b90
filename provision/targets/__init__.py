"""Where the machine comes from: Azure, an existing host over SSH, or this machine."""

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

from provision.errors import ProvisionError
from provision.output import Output
from provision.prices import Quote
from provision.settings import Settings
from provision.state import Journal, Record

if TYPE_CHECKING:
    from provision.targets.azure import AzureTarget

RUNNING = "running"
NOT_A_CLOUD_MACHINE = "unknown (not a cloud machine)"  # no API tells whether it is on
# The target whose machines live in a cloud account, tagged: `gc`, `list --cloud`, `plan` and `down` of a
# deployment whose record is lost act there.
CLOUD = "azure"


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

    @property
    def over_ssh(self) -> bool:
        """Reached over SSH, its host key pinned; False for this machine, reached as it is (no tunnel either)."""
        return not self.local

    @property
    def label(self) -> str:
        """The machine in a sentence: "this machine", or "the machine HOST"."""
        return f"the machine {self.host}" if self.over_ssh else "this machine"

    @property
    def summary(self) -> str:
        """The line that says the machine is there, and how to reach it."""
        where = f"{self.user}@{self.host}:{self.port}"
        if not self.over_ssh:
            return "machine: this one (--target local)"
        return f"VM ready: {where} ({self.fqdn})" if self.fqdn else f"machine: {where}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Machine":
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__ if key in data})


@dataclass(frozen=True)
class Move:
    """A resize the target has checked and may make: from one size to another, on every node."""

    name: str
    old: Quote
    new: Quote
    in_place: bool  # the new size is on the hardware that runs the VM: no deallocation
    nodes: int = 1
    spot: bool = False
    running: bool = True  # else the VM is deallocated: the size changes and it stays deallocated, billing nothing

    @property
    def minutes(self) -> int:
        """About how long the move takes: a restart in place; else deallocate, resize and start."""
        return 3 if self.in_place else 8

    def hourly(self, quote: Quote) -> float | None:
        return quote.compute(self.spot).usd

    @property
    def move_cost(self) -> float | None:
        """The most the move's minutes bill: every node, at the dearer of the two sizes."""
        prices = [self.hourly(self.old), self.hourly(self.new)]
        if not self.running:
            return 0.0
        if None in prices:
            return None
        return max(p for p in prices if p is not None) * self.nodes * self.minutes / 60


class Target(Protocol):
    deletes_machine: bool  # `destroy` deletes the machine itself; else it stays, and `down` stops our Jupyter there

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

    def down_question(self, record: Record | None) -> str:
        """What `down` asks before it acts: what it will delete (or stop), and where."""

    def plan_resize(self, record: Record, size: str, out: Output) -> Move:
        """Check, before anything changes, that every node may move to `size` (offered, quota, image, network);
        how it would move and what both sizes cost. Else a one-line error."""

    def resize(self, journal: Journal, move: Move, out: Output, on_power: Callable[[str, str], None]) -> Machine:
        """Move every node to the new size (in place, or deallocated, resized and started); on a capacity or
        quota failure put the old size back, start the machine as it was, and say both in one line. `on_power`
        hears of each change of power state (state, reason). The machine as it is now reached."""


class ExistingMachine:
    """A machine the kit did not make (this one, or a host over SSH): nothing to sign in to, pay for or delete;
    `down` stops the Jupyter the kit started there and forgets the deployment."""

    deletes_machine = False

    def __init__(self, settings: Settings):
        self.settings = settings

    def destroy(self, record: Record | None, out: Output, *, wait: bool) -> None:
        """Nothing to delete: the caller stops Jupyter and removes the record."""

    def check_access(self, out: Output) -> None:
        """Nothing to sign in to: the machine is reached as it is."""

    def quotes(self) -> list:
        return []  # a machine that is already there costs nothing more

    def down_question(self, record: Record | None) -> str:
        return f"Stop Jupyter on {self.settings.target} and forget deployment {self.settings.name!r}?"

    def plan_resize(self, record: Record, size: str, out: Output) -> Move:
        raise ProvisionError(
            f"{record.target} is a machine the kit did not create: it cannot be resized (only a VM `up` made can)"
        )


def target_for(settings: Settings) -> Target:
    if settings.is_azure:
        return cloud_target(settings)
    if settings.target == "local":
        from provision.targets.local import LocalTarget

        return LocalTarget(settings)
    from provision.targets.ssh import SSHTarget

    return SSHTarget(settings)


def cloud_target(settings: Settings) -> "AzureTarget":
    """The CLOUD target, with what only a cloud has: its tagged resource groups, who is signed in, a plan."""
    from provision.targets.azure import AzureTarget

    return AzureTarget(settings)


QUOTA_PENDING = {"Accepted", "InProgress"}  # QuotaRequestState values that are not an answer yet


@dataclass(frozen=True)
class QuotaRequest:
    """A quota increase request as Azure reports it (QuotaRequestStatus_Get)."""

    id: str
    region: str
    quota: str  # the quota's name: a family, cores or lowPriorityCores
    limit: int  # the limit asked for
    state: str  # provisioningState: Accepted, InProgress, Succeeded, Failed or Invalid
    message: str = ""
    error: str = ""  # "code: message" of a refusal

    @property
    def pending(self) -> bool:
        return self.state in QUOTA_PENDING

    @property
    def approved(self) -> bool:
        return self.state == "Succeeded"
