"""`provision resize`: move a deployment to a bigger (or smaller) size and keep its disk, token and notebooks."""

from provision import power, session, tunnel
from provision.commands.core import UpOptions, bring_back, check_nodes, gpu_check, workers
from provision.commands.tunnel import serve
from provision.deployment import settings_for
from provision.errors import ProvisionError
from provision.interrupts import sigterm_as_interrupt
from provision.output import Output
from provision.prices import Quote
from provision.sshfiles import write_known_hosts
from provision.state import Journal, Record, StateStore
from provision.targets import RUNNING, Move, target_for


def resize(name: str, size: str, flags: dict, store: StateStore, out: Output, options: UpOptions) -> None:
    """Check the new size first (nothing changes on a refusal), ask with both prices, move every node, then bring
    Jupyter back with the same token, run the GPU check on the new GPU (and the all-reduce across nodes), serve
    the URL."""
    with store.lock(name, on_wait=out.note), sigterm_as_interrupt():
        record = store.require(name)
        settings = settings_for(record, flags)
        if record.machine is None:
            raise ProvisionError(
                f"{name!r} has no machine to resize ({record.phase}); run `provision up --name {name}`"
            )
        journal, target = Journal(store, record), target_for(settings)
        move = target.plan_resize(record, size, out)
        _confirm(move, out, yes=settings.yes)
        if tunnel.stop(store, name):
            out.note("closed the SSH tunnel (the VM restarts)")

        def on_power(state: str, reason: str) -> None:
            power.note(record, state, reason)
            journal.save()

        machine = target.resize(journal, move, out, on_power)
        _record(record, move)
        journal.save()
        if not move.running:
            out.result(
                f"{name!r} is now {move.new.size}, still deallocated; `provision start {name}` runs it at "
                f"{_hourly(move, move.new)}"
            )
            return
        if power.observe(record, target.status(record).get("power_state", ""))[0] == power.EVICTED:
            journal.save()
            raise ProvisionError(
                f"Azure evicted the Spot VM of {name!r} during the resize (it wanted the capacity back): it is "
                f"deallocated, now {move.new.size}; `provision start {name}` resumes it"
            )
        write_known_hosts(store, name, machine, workers(record))
        out.result(f"{name!r} is now {move.new.size}, at {_hourly(move, move.new)}")
        back = bring_back(journal, settings, machine, out)
        if back is None:
            return
        remote, token = back
        steps = [lambda: gpu_check(remote, record.jupyter["python"], settings, journal, out, skip=options.skip_check)]
        if len(record.nodes) > 1:
            steps.append(lambda: check_nodes(remote, settings, journal, out, options, reused=False))
        session.alongside(*steps)
    serve(journal.record, token, store, out, local_port=options.local_port, detach=options.detach, remote=remote)


def _hourly(move: Move, quote: Quote) -> str:
    return quote.compute(move.spot).text("h") + " Spot" * move.spot


def _confirm(move: Move, out: Output, *, yes: bool) -> None:
    """Both sizes' prices and what the move's minutes cost; then ask, unless told yes."""
    how = "in place (Azure restarts the VM)" if move.in_place else "(deallocate, resize, start)"
    cost = "an unknown amount" if move.move_cost is None else f"at most ${move.move_cost:.2f}"
    nodes = f" x {move.nodes} nodes" if move.nodes > 1 else ""
    out.note(f"{move.old.size}: {_hourly(move, move.old)}{nodes}; {move.new.size}: {_hourly(move, move.new)}{nodes}")
    if move.running:
        out.note(f"the move takes about {move.minutes} min {how}: it bills {cost}")
    else:
        out.note("the VM is deallocated: the size changes, nothing starts, nothing bills until `provision start`")
    if yes:
        return
    question = f"Resize {move.name!r} from {move.old.size} to {move.new.size} at {_hourly(move, move.new)}?"
    if not out.confirm(question):
        raise ProvisionError("nothing changed (answer yes on a terminal, or pass --yes to resize without asking)")


def _record(record: Record, move: Move) -> None:
    """The new size and its price for `status` and `list`; the history notes the change of price, so that cost
    so far counts each period at its own size's price."""
    record.settings["size"] = move.new.size
    was = power.hourly(record)
    compute = move.new.compute(move.spot)
    record.price = {
        **(record.price or {}),
        "usd_per_hour": compute.usd,
        "source": compute.source,
        "spot": move.spot,
    }
    state = RUNNING if move.running else power.DEALLOCATED
    power.note(record, state, f"resized from {move.old.size} to {move.new.size}", usd_per_hour=compute.usd, was=was)
