"""`provision stop` and `provision start`: deallocate the machine, and bring it back as it was."""

from provision import power, tunnel
from provision.commands.core import UpOptions, bring_back, power_on
from provision.commands.tunnel import serve
from provision.deployment import settings_for
from provision.errors import ProvisionError
from provision.interrupts import sigterm_as_interrupt
from provision.output import Output
from provision.prices import Prices
from provision.settings import Settings
from provision.state import Journal, Record, StateStore
from provision.targets import target_for


def stop(name: str, store: StateStore, out: Output) -> None:
    """`provision stop`: deallocate the machine (its compute stops billing; its disk does not), close the
    tunnel, note it in the power history."""
    with store.lock(name, on_wait=out.note):
        record = store.require(name)
        settings = settings_for(record)
        if record.machine is None:
            raise ProvisionError(f"{name!r} has no machine to stop ({record.phase}); `provision down {name}` cleans up")
        target_for(settings).stop(record, out)
        if tunnel.stop(store, name):
            out.note("closed the SSH tunnel")
        power.note(record, power.DEALLOCATED, "by hand")
        store.save(record)
    out.result(
        f"{name!r} is deallocated: its compute no longer bills, {_disk_bill(record, settings)}; "
        f"`provision start {name}` resumes it"
    )


def _disk_bill(record: Record, settings: Settings) -> str:
    """What the disk of a deallocated VM still costs: as recorded at `up`, else from the cache or shipped table."""
    price = record.price
    if price is None:
        quote = Prices(offline=True).quote(record.settings["size"], record.settings["region"], settings.os_disk_gb)
        price = {"disk_usd_per_month": quote.disk.usd, "disk_tier": quote.disk_tier}
    usd = price.get("disk_usd_per_month")
    amount = "an amount no price source knew" if usd is None else f"${usd:.2f}/month"
    return f"its OS disk ({price.get('disk_tier')}) still bills {amount} until `provision down`"


def start(name: str, store: StateStore, out: Output, options: UpOptions) -> None:
    """`provision start`: start the stopped (or evicted) machine, wait for SSH with the pinned host key,
    restart Jupyter with the same token and notebooks, and serve its URL as `up` does."""
    with store.lock(name, on_wait=out.note), sigterm_as_interrupt():
        record = store.require(name)
        settings = settings_for(record)
        if record.machine is None:
            raise ProvisionError(f"{name!r} has no machine to start ({record.phase}); run `provision up --name {name}`")
        journal, target = Journal(store, record), target_for(settings)
        if power.observe(record, target.status(record).get("power_state", ""))[1]:
            journal.save()
        machine = power_on(target, journal, out)
        back = bring_back(journal, settings, machine, out)  # the check is not run again (`provision check` does)
    if back is not None:
        remote, token = back
        serve(journal.record, token, store, out, local_port=options.local_port, detach=options.detach, remote=remote)
