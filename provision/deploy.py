"""The commands' core: up, down, check, tunnel. The CLI parses; this decides and acts."""

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bootstrap import jupyter
from bootstrap.remote import BootstrapError, Remote
from provision import idle_view, power, prices, projectenv, public, session, tunnel
from provision.errors import ProvisionError
from provision.interrupts import sigterm_as_interrupt
from provision.output import Output
from provision.prices import Prices, Quote
from provision.settings import WHERE, Settings, for_deployment, load
from provision.sshfiles import write_known_hosts
from provision.state import Journal, Record, StateStore
from provision.targets import NOT_A_CLOUD_MACHINE, RUNNING, Machine, Target, target_for

# The settings a record keeps, so that later commands act on what `up` made.
RECORDED = (
    *("subscription", "cloud", "arm_endpoint", "image", "admin_user", "access", "jupyter_port", "spot"),
    "nodes",
)


@dataclass(frozen=True)
class UpOptions:
    bootstrap: bool = True
    skip_check: bool = False
    check: bool = False  # run the check again on a reused machine whose check passed
    detach: bool = False
    local_port: int = 0
    keep_on_failure: bool = False


def settings_for(record: Record, flags: dict[str, Any] | None = None) -> Settings:
    """Settings for a command on an existing deployment: the record says where it lives."""
    recorded = {key: record.settings[key] for key in RECORDED if key in record.settings}
    return for_deployment({**recorded, "name": record.name, "target": record.target}, flags)


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
        journal = Journal(store, record or _new_record(settings))
        machine = _reusable_machine(settings, record, target, journal, out)
        created_now = machine is None
        early = session.EarlySSH()  # SSH begins as soon as the address is known, while the VM is made
        try:
            if machine is None:
                target.check_access(out)  # a wrong sign-in is told before the price question, not after
                quotes = _confirm_price(target, settings, out)
                machine = target.create(journal, out, on_address=early.start if options.bootstrap else None)
                write_known_hosts(store, settings.name, machine, _workers(journal.record))
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
        _print_machine(machine, out)
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
            raise ProvisionError(f"{e}; {_still_running(settings.name, machine)}") from None
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


def _new_record(settings: Settings) -> Record:
    return Record(
        name=settings.name,
        target=settings.target,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        settings={key: getattr(settings, key) for key in RECORDED},
    )


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
    return _power_on(target, journal, out)


def _power_on(target: Target, journal: Journal, out: Output) -> Machine:
    """Start the stopped machine, note it in the power history, pin its host key again."""
    machine = target.start(journal, out)
    power.note(journal.record, RUNNING, "started")
    journal.save()
    write_known_hosts(journal.store, journal.record.name, machine, _workers(journal.record))
    return machine


def _workers(record: Record) -> list[Machine]:
    """The worker nodes of a deployment of several (none for one)."""
    return [Machine.from_dict(node) for node in record.nodes[1:]]


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


def teardown(record: Record, settings: Settings, store: StateStore, out: Output, *, wait: bool) -> None:
    """Close the tunnel, stop Jupyter (not on Azure, where the VM goes), delete, forget."""
    if tunnel.stop(store, record.name):
        out.note("closed the SSH tunnel")
    if record.machine and record.jupyter and not settings.is_azure:
        _stop_jupyter(Machine.from_dict(record.machine), out)
    target_for(settings).destroy(record, out, wait=wait)
    store.delete(record.name)


def _print_machine(machine: Machine, out: Output) -> None:
    where = f"{machine.user}@{machine.host}:{machine.port}"
    if machine.local:
        out.result("machine: this one (--target local)")
    elif machine.fqdn:
        out.result(f"VM ready: {where} ({machine.fqdn})")
    else:
        out.result(f"machine: {where}")


def _still_running(name: str, machine: Machine) -> str:
    where = "this machine" if machine.local else f"the machine {machine.host}"
    return (
        f"{where} is still running: fix this and re-run `provision up --name {name}`, "
        f"or delete it with `provision down {name}`"
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
    passed = bool(reused and record.check and record.check.get("passed") and _same_environment(record, record.check))

    def jupyter_and_idle_agent():
        server, token = session.serve_jupyter(remote, python, settings, journal, out)
        session.install_idle_stop(remote, settings, journal, out, server.port)
        return server, token

    steps = [
        jupyter_and_idle_agent,
        lambda: _check(
            remote, python, settings, journal, out, skip=options.skip_check, passed=passed and not options.check
        ),
    ]
    if len(record.nodes) > 1:
        steps.append(lambda: _check_nodes(remote, settings, journal, out, options, reused=reused))
    return session.alongside(*steps)


def _same_environment(record: Record, check: dict) -> bool:
    """Whether a check ran in the environment the deployment has now (both none, or the same content)."""
    return check.get("environment") == (record.environment or {}).get("name")


def _check_nodes(
    head: Remote, settings: Settings, journal: Journal, out: Output, options: UpOptions, *, reused: bool
) -> None:
    """Several nodes: the workers bootstrapped through the head, then the all-reduce across every process of
    every node (beside the notebook's check on the head). A reused deployment whose check passed is not checked
    again unless asked (--check)."""
    from bootstrap.remote import SSHRemote
    from provision import allreduce  # only a deployment of several nodes needs it

    done = journal.record.allreduce
    if reused and done and done.get("passed") and _same_environment(journal.record, done) and not options.check:
        out.note(f"the all-reduce check passed on these nodes ({done['at']}); --check runs it again")
        return
    assert isinstance(head, SSHRemote), "several nodes are always reached over SSH"
    workers = allreduce.prepare_workers(head, settings, journal, out, allow_cpu=options.skip_check)
    try:
        projectenv.prepare_workers(workers, journal, out)
        if options.skip_check:
            out.warn("all-reduce check skipped (--skip-check): the nodes have not been proven to reach each other")
            return
        verdict = allreduce.check([head, *workers], journal, out)
    finally:
        for worker in workers:
            worker.close()
    if not verdict.passed:
        machine = Machine.from_dict(journal.record.machine or {})
        raise ProvisionError(f"{verdict.summary}; {_still_running(settings.name, machine)}")
    out.result(verdict.summary)


def _check(
    remote: Remote, python: str, settings: Settings, journal: Journal, out: Output, *, skip: bool, passed: bool = False
) -> None:
    if skip:
        out.warn("GPU check skipped (--skip-check): the notebook has not been proven to run")
        return
    if passed:
        out.note(f"the GPU check passed on this machine ({journal.record.check['at']}); --check runs it again")
        return
    verdict = session.run_check(remote, python, settings, journal, out)
    for detail in verdict.details:
        out.note(detail)
    if not verdict.passed:
        machine = Machine.from_dict(journal.record.machine or {})
        raise ProvisionError(f"{verdict.summary}; {_still_running(settings.name, machine)}")
    out.result(verdict.summary)


def _show_running_tunnel(store: StateStore, name: str, token: str, out: Output) -> bool:
    """Print the URL of the tunnel that already serves `name`, if one runs; True if one does."""
    found = tunnel.running(store, name)
    if found is None:
        return False
    pid, port = found
    out.result(tunnel.lab_url(port, token))
    out.note(f"a tunnel to {name!r} already runs (pid {pid}); `provision down {name}` closes it and deletes all")
    return True


def _detach(store: StateStore, name: str, token: str, out: Output, local_port: int) -> None:
    tunnel.stop(store, name)
    port = local_port or tunnel.free_port()
    tunnel.spawn_detached(store, name, port)
    out.result(tunnel.lab_url(port, token))
    out.note(f"the tunnel runs in the background; `provision down {name}` closes it and deletes the VM")


def hold_tunnel(
    remote: Remote,
    remote_port: int,
    token: str,
    store: StateStore,
    name: str,
    out: Output,
    local_port: int = 0,
    show_url: bool = True,
) -> None:
    """Forward a local port to Jupyter until Ctrl-C; the machine keeps running."""

    def opened(port: int) -> None:
        if show_url:
            out.result(tunnel.lab_url(port, token))
        out.note(
            "Ctrl-C closes this tunnel only: the machine keeps running (and billing). "
            f"`provision tunnel {name}` reopens it; `provision down {name}` deletes everything."
        )

    try:
        tunnel.hold(remote, remote_port, local_port or tunnel.free_port(), opened, store, name)
    finally:
        remote.close()
    out.note(f"tunnel closed; {name!r} is still running (`provision down {name}` deletes it)")


def reopen_tunnel(
    name: str,
    store: StateStore,
    out: Output,
    *,
    local_port: int,
    detach: bool,
    show_url: bool = True,
) -> None:
    """`provision tunnel`: the URL again, through a new tunnel."""
    record = store.require(name)
    token = session.read_token(store, name)
    if record.jupyter is None or token is None:
        raise ProvisionError(f"Jupyter was never started on {name!r}; run `provision up --name {name}`")
    serve(record, token, store, out, local_port=local_port, detach=detach, show_url=show_url)


def serve(
    record: Record,
    token: str,
    store: StateStore,
    out: Output,
    *,
    local_port: int = 0,
    detach: bool = False,
    show_url: bool = True,
    remote: Remote | None = None,
) -> None:
    """Give the user the URL, the way this deployment is reached: public (TLS), directly on this machine,
    through the tunnel that already runs, a detached tunnel, or one held here until Ctrl-C.
    `remote` is an open connection to reuse (closed here); without one, one is opened only to hold a tunnel."""
    machine = Machine.from_dict(record.machine or {})
    name, port = record.name, record.jupyter["port"]
    if record.settings.get("access") == "public":
        public.show(record, token, store, out)
    elif machine.local:
        out.result(tunnel.lab_url(port, token))
    elif detach:
        _detach(store, name, token, out, local_port)
    elif not _show_running_tunnel(store, name, token, out):
        remote = remote or session.open_remote(machine, out, timeout=30)
        hold_tunnel(remote, port, token, store, name, out, local_port, show_url)  # closes the connection
        return
    if remote is not None:
        remote.close()


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
            _check(remote, record.jupyter["python"], settings, journal, out, skip=False)
        finally:
            remote.close()


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
        machine = _power_on(target, journal, out)
        _print_machine(machine, out)
        if record.jupyter is None:
            out.note(f"Jupyter was never started on {name!r}: `provision up --name {name}` starts it")
            return
        remote = session.open_remote(machine, out)
        try:
            if idle_view.note_stop(journal.record, remote):
                journal.save()
            # The Python `up` chose and judged; the check is not run again (`provision check` does).
            same = replace(settings, remote_python=record.jupyter["python"])
            server, token = session.start_jupyter(remote, same, journal, out, allow_cpu=True)
            projectenv.restore(remote, server.python, same, journal, out)
            session.install_idle_stop(remote, same, journal, out, server.port)
        except BootstrapError as e:
            remote.close()
            raise ProvisionError(f"{e}; {_still_running(name, machine)}") from None
    serve(journal.record, token, store, out, local_port=options.local_port, detach=options.detach, remote=remote)


def down(name: str, flags: dict[str, Any], store: StateStore, out: Output, *, wait: bool, yes: bool) -> None:
    """Delete everything `up` made for `name` and the record; already gone is success."""
    record = store.load(name)
    settings = settings_for(record, flags) if record else load({**flags, "name": name, "target": "azure"}, only=WHERE)
    if not yes and not out.confirm(_down_question(name, record, settings)):
        raise ProvisionError("nothing deleted (answer yes, or pass --yes)")
    with store.lock(name, on_wait=out.note):
        teardown(record or _new_record(settings), settings, store, out, wait=wait)
    gone = wait or not settings.is_azure
    out.result(f"deployment {name!r} is gone" if gone else f"deletion of {name!r} started")


def _down_question(name: str, record: Record | None, settings: Settings) -> str:
    if not settings.is_azure:
        return f"Stop Jupyter on {settings.target} and forget deployment {name!r}?"
    where = f" in {record.settings.get('region')}" if record else " (found by its tags)"
    return f"Delete deployment {name!r}{where}: its VM, disk, network and resource group?"


def _stop_jupyter(machine: Machine, out: Output) -> None:
    try:
        remote = session.open_remote(machine, out, timeout=30)
        try:
            if jupyter.stop(remote):
                out.note("stopped Jupyter")
        finally:
            remote.close()
    except BootstrapError as e:
        out.warn(f"could not stop Jupyter on {machine.host}: {e}; stop it there yourself")


def gc(flags: dict[str, Any], store: StateStore, out: Output, *, yes: bool, everyone: bool) -> None:
    """Delete dsvm-kit resource groups that no record here knows (yours, unless everyone)."""
    from provision.targets.azure import AzureTarget

    target = AzureTarget(load({**flags, "target": "azure"}))
    known, me = set(store.names()), None if everyone else target.owner
    orphans = [
        group
        for group in target.list_groups()
        if group["deployment"] not in known and (me is None or group["owner"] == me.id)
    ]
    if not orphans:
        whose = "" if me is None else f" (owner {me.name or me.id})"
        out.result("no dsvm-kit resource groups without a record here" + whose)
        return
    columns = ["resource_group", "deployment", "region", "owner", "owner_name", "created"]
    out.table(columns, [tuple(group[c] for c in columns) for group in orphans])
    if not yes and not out.confirm(f"Delete these {len(orphans)} resource group(s) and all in them?"):
        raise ProvisionError("nothing deleted (answer yes, or pass --yes)")
    for group in orphans:
        name = group["deployment"]
        record = Record(
            name=name,
            target="azure",
            created=group["created"],
            settings={"resource_group": group["resource_group"]},
        )
        AzureTarget(load({**flags, "target": "azure", "name": name})).destroy(record, out, wait=True)
    out.result(f"deleted {len(orphans)} resource group(s)")
