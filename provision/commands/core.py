"""What several commands share: up's options, power on, bring the services back, the GPU check, delete and forget."""

from dataclasses import dataclass, replace

from bootstrap import jupyter
from bootstrap.remote import BootstrapError, Remote
from provision import idle_view, power, projectenv, session, tunnel
from provision.errors import ProvisionError
from provision.output import Output
from provision.settings import Settings
from provision.sshfiles import write_known_hosts
from provision.state import Journal, Record, StateStore
from provision.targets import RUNNING, Machine, Target, target_for


@dataclass(frozen=True)
class UpOptions:
    bootstrap: bool = True
    skip_check: bool = False
    check: bool = False  # run the check again on a reused machine whose check passed
    detach: bool = False
    local_port: int = 0
    keep_on_failure: bool = False


def power_on(target: Target, journal: Journal, out: Output) -> Machine:
    """Start the stopped machine, note it in the power history, pin its host key again."""
    machine = target.start(journal, out)
    power.note(journal.record, RUNNING, "started")
    journal.save()
    write_known_hosts(journal.store, journal.record.name, machine, workers(journal.record))
    return machine


def workers(record: Record) -> list[Machine]:
    """The worker nodes of a deployment of several (none for one)."""
    return [Machine.from_dict(node) for node in record.nodes[1:]]


def teardown(record: Record, settings: Settings, store: StateStore, out: Output, *, wait: bool) -> None:
    """Close the tunnel, stop Jupyter on a machine that stays (not one the target deletes), delete, forget."""
    if tunnel.stop(store, record.name):
        out.note("closed the SSH tunnel")
    target = target_for(settings)
    if record.machine and record.jupyter and not target.deletes_machine:
        _stop_jupyter(Machine.from_dict(record.machine), out)
    target.destroy(record, out, wait=wait)
    store.delete(record.name)


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


def bring_back(journal: Journal, settings: Settings, machine: Machine, out: Output) -> tuple[Remote, str] | None:
    """Once the machine runs again (`start`; a resize): say where it is; SSH with the pinned host key; why it
    stopped, when the kit did not stop it; Jupyter with the Python `up` chose, the same token and notebooks; the
    idle agent. The open connection and the token, for `serve` once the deployment's lock is released (and for a
    check before that); None when Jupyter was never started there."""
    record, name = journal.record, journal.record.name
    out.result(machine.summary)
    if record.jupyter is None:
        out.note(f"Jupyter was never started on {name!r}: `provision up --name {name}` starts it")
        return None
    remote = session.open_remote(machine, out)
    try:
        if idle_view.note_stop(record, remote):
            journal.save()
        same = replace(settings, remote_python=record.jupyter["python"])
        server, token = session.start_jupyter(remote, same, journal, out, allow_cpu=True)
        projectenv.restore(remote, server.python, same, journal, out)
        session.install_idle_stop(remote, same, journal, out, server.port)
    except BootstrapError as e:
        remote.close()
        raise ProvisionError(f"{e}; {still_running(name, machine)}") from None
    return remote, token


def still_running(name: str, machine: Machine) -> str:
    return (
        f"{machine.label} is still running: fix this and re-run `provision up --name {name}`, "
        f"or delete it with `provision down {name}`"
    )


def gpu_check(
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
        raise ProvisionError(f"{verdict.summary}; {still_running(settings.name, machine)}")
    out.result(verdict.summary)


def check_nodes(
    head: Remote, settings: Settings, journal: Journal, out: Output, options: UpOptions, *, reused: bool
) -> None:
    """Several nodes: the workers bootstrapped through the head, then the all-reduce across every process of
    every node (beside the notebook's check on the head). A reused deployment whose check passed is not checked
    again unless asked (--check)."""
    from bootstrap.remote import SSHRemote
    from provision import allreduce  # only a deployment of several nodes needs it

    done = journal.record.allreduce
    if reused and done and done.get("passed") and projectenv.checked_in(journal.record, done) and not options.check:
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
        raise ProvisionError(f"{verdict.summary}; {still_running(settings.name, machine)}")
    out.result(verdict.summary)
