"""`provision up`: create (or find) the machine, bootstrap it, prove the notebook trains, serve the URL."""

from dataclasses import replace

from bootstrap.remote import BootstrapError, Remote
from provision import power, prices, projectenv, public, session
from provision.commands.core import UpOptions, check_nodes, gpu_check, power_on, still_running, teardown, workers
from provision.commands.tunnel import serve
from provision.deployment import new_record
from provision.errors import ProvisionError
from provision.interrupts import sigterm_as_interrupt
from provision.output import Output
from provision.prices import Quote
from provision.settings import Settings
from provision.sshfiles import write_known_hosts
from provision.state import Journal, Record, StateStore
from provision.targets import NOT_A_CLOUD_MACHINE, RUNNING, Machine, Target, target_for


def up(settings: Settings, out: Output, store: StateStore, options: UpOptions) -> None:
    """Create (or find) the machine, start Jupyter, prove the notebook trains, give the URL.

    A failure before the first resource is asked for (credentials, subscription, preflight)
    leaves nothing: no record, no rollback, and the next `up` starts afresh. A failure while
    creating deletes what this run created (unless keep_on_failure); a failure once the
    machine is up keeps it, and says how to delete it.

    Ctrl-C (or SIGTERM), by phase:
      creating (preflight, group, network, VM)  deletes what this run created
      booting, bootstrap, check                 deletes the machine if this run created it; a
                                                reused one is kept (`provision down NAME`)
      serving (tunnel held, URL printed)        closes the tunnel only; the machine is kept
                                                (`provision tunnel NAME`, `provision down NAME`)
    With keep_on_failure, what was created is kept and `provision down NAME` named.
    """
    with store.lock(settings.name, on_wait=out.note), sigterm_as_interrupt():
        record = store.load(settings.name)
        target = target_for(settings)
        journal = Journal(store, record or new_record(settings))
        machine = _reusable_machine(settings, record, target, journal, out)
        created_now = machine is None
        early = session.EarlySSH()  # SSH begins as soon as the address is known, while the VM is made
        try:
            if machine is None:
                target.check_access(out)  # a wrong sign-in is told before the price question, not after
                quotes = _confirm_price(target, settings, out)
                machine = target.create(journal, out, on_address=early.start if options.bootstrap else None)
                write_known_hosts(store, settings.name, machine, workers(journal.record))
                journal.record.phase = "created"
                _record_price(journal.record, quotes, spot=settings.spot)
                power.note(journal.record, RUNNING, "created")
                journal.save()
        except BaseException:
            early.cancel()
            if journal.record.resources:
                _undo(settings, journal, out, options)
            else:  # nothing was asked of the cloud: forget the keys made for it too
                store.delete(settings.name)
            raise
        out.result(machine.summary)
        if not options.bootstrap:
            return
        try:
            remote = early.remote(machine, out)
            (_, token), *_ = _bootstrap(remote, settings, journal, out, options, reused=not created_now)
        except KeyboardInterrupt:
            if created_now:
                _undo(settings, journal, out, options)
            else:
                name = settings.name
                out.note(
                    f"{name!r} keeps running: `provision up --name {name}` resumes, `provision down {name}` deletes it"
                )
            raise
        except BootstrapError as e:
            raise ProvisionError(f"{e}; {still_running(settings.name, machine)}") from None
        journal.record.phase = "ready"
        journal.save()
    serve(journal.record, token, store, out, local_port=options.local_port, detach=options.detach, remote=remote)


def _confirm_price(target: Target, settings: Settings, out: Output) -> list[Quote]:
    """Show what the machine will cost and ask, unless told yes; a machine that costs nothing never asks.
    Returns the quotes shown."""
    quotes = target.quotes()
    if not quotes:
        return quotes
    for quote in quotes:
        out.note(prices.describe(quote, spot=settings.spot))
        spot_now = quote.spot.usd
        if settings.spot and settings.max_price != -1 and spot_now is not None and settings.max_price < spot_now:
            out.warn(
                f"--max-price {settings.max_price} is below {quote.size}'s spot price in {quote.region} "
                f"(${spot_now}/h, {quote.spot.source}): Azure refuses it (SpotPriceGreaterThanProvidedMaxPrice)"
            )
    if settings.yes:
        return quotes
    first = quotes[0]
    price = first.compute(settings.spot).text("h")
    if not out.confirm(f"Create {first.size}{' (Spot)' if settings.spot else ''} in {first.region} at {price}?"):
        raise ProvisionError("nothing created (answer yes on a terminal, or pass --yes to create it without asking)")
    return quotes


def _record_price(record: Record, quotes: list[Quote], *, spot: bool) -> None:
    """Keep the price of the size and region `create` settled on: `status` and `list` add up from it."""
    where = (str(record.settings.get("size", "")).lower(), str(record.settings.get("region", "")).lower())
    quote = next((q for q in quotes if (q.size.lower(), q.region.lower()) == where), None)
    if quote is not None:
        compute = quote.compute(spot)
        record.price = {
            "usd_per_hour": compute.usd,
            "source": compute.source,
            "spot": spot,
            "disk_usd_per_month": quote.disk.usd,
            "disk_tier": quote.disk_tier,
        }


def _reusable_machine(
    settings: Settings, record: Record | None, target: Target, journal: Journal, out: Output
) -> Machine | None:
    """The machine of an earlier, finished `up` of this name (started again if it was stopped, once the user
    agrees); None when there is none."""
    if record is None:
        return None
    name = record.name
    if record.target != settings.target:
        raise ProvisionError(
            f"deployment {name!r} already exists with target {record.target}; "
            f"use another --name, or `provision down {name}` first"
        )
    made = public.access_label(record.settings.get("access", "tunnel"), record.settings.get("jupyter_port"))
    if made != public.access_label(settings.access, settings.jupyter_port):
        raise ProvisionError(
            f"deployment {name!r} was made with access {made}; ask for the same, or `provision down {name}`"
        )
    if record.phase not in ("created", "ready") or not record.machine:
        raise ProvisionError(
            f"an earlier `provision up` of {name!r} did not finish ({record.phase}); run "
            f"`provision down {name}` to clean up, then `provision up` again"
        )
    state = target.status(record).get("power_state", "")
    if state in power.STARTABLE:
        return _offer_start(settings, journal, target, state, out)
    if state not in (RUNNING, NOT_A_CLOUD_MACHINE):
        raise ProvisionError(
            f"the VM of {name!r} is {state}; try again once it is running or deallocated, or `provision down {name}`"
        )
    out.note(f"deployment {name!r} exists: reusing its machine")
    return Machine.from_dict(record.machine)


def _offer_start(settings: Settings, journal: Journal, target: Target, state: str, out: Output) -> Machine:
    """`up` on a stopped (or evicted) machine: start it if the user says so, or was told yes."""
    name = journal.record.name
    shown, changed = power.observe(journal.record, state)
    if changed:
        journal.save()
    if not settings.yes and not out.confirm(f"The VM of {name!r} is {shown}. Start it?"):
        raise ProvisionError(f"the VM of {name!r} is {shown}; `provision start {name}` starts it")
    return power_on(target, journal, out)


def _undo(settings: Settings, journal: Journal, out: Output, options: UpOptions) -> None:
    """After a failed or interrupted run: delete what it created, or keep it on request."""
    record = journal.record
    name = record.name
    if options.keep_on_failure:
        record.phase = "failed"
        journal.save()
        out.warn(f"kept what was created (--keep-on-failure); `provision down {name}` deletes it")
        return
    try:
        with out.step("Rolling back: deleting what this run created"):
            journal.stop()  # creates still finishing in other threads must not write the record back
            teardown(record, settings, journal.store, out, wait=True)
    except BaseException as e:
        record.phase = "failed"
        journal.store.save(record)
        out.error(
            f"rollback did not finish ({e or type(e).__name__}); the record lists what remains: "
            f"run `provision down {name}`"
        )


def _bootstrap(
    remote: Remote, settings: Settings, journal: Journal, out: Output, options: UpOptions, *, reused: bool
) -> list:
    """Python and notebooks first; then Jupyter's start and the check at once (the check needs no Jupyter).
    On a reused machine the Python is the one `up` chose before, and a check that passed is not run again
    unless asked (--check)."""
    record = journal.record
    if reused and record.jupyter:
        settings = replace(settings, remote_python=record.jupyter["python"])
    python = session.prepare(remote, settings, out, allow_cpu=options.skip_check)
    projectenv.prepare(remote, python, settings, journal, out)
    passed = bool(
        reused and record.check and record.check.get("passed") and projectenv.checked_in(record, record.check)
    )

    def jupyter_and_idle_agent():
        server, token = session.serve_jupyter(remote, python, settings, journal, out)
        session.install_idle_stop(remote, settings, journal, out, server.port)
        return server, token

    steps = [
        jupyter_and_idle_agent,
        lambda: gpu_check(
            remote, python, settings, journal, out, skip=options.skip_check, passed=passed and not options.check
        ),
    ]
    if len(record.nodes) > 1:
        steps.append(lambda: check_nodes(remote, settings, journal, out, options, reused=reused))
    return session.alongside(*steps)
