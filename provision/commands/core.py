"""What several commands share: up's options, power on, the GPU check, delete and forget."""

from dataclasses import dataclass

from bootstrap import jupyter
from bootstrap.remote import BootstrapError, Remote
from provision import power, session, tunnel
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
