"""Nothing waits that could run: SSH begins while Azure still creates the VM, the check and Jupyter's
start overlap on one connection, and a re-run on a ready deployment runs no notebook.

Behaviour, not timing: each test reads the order of events from the fakes (the fake ARM's state and
request log, the fake sshd's log, the times the notebook stand-in and Jupyter leave on the fake VM).
"""

import pwd
import re
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from bootstrap.remote import SSHRemote
from provision import session
from tests.conftest import console, provision
from tests.fakes.notebook import STAND_IN_STARTS, write_training_stand_in

VM = "Microsoft.Compute/virtualMachines"


def wait_for(condition, limit: float = 120.0, what: str = "the condition"):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {limit} s")


def accepted(cloud) -> int:
    """How many SSH logins the fake VM's sshd accepted."""
    running = cloud.vms.running()
    return cloud.vms.sshd(running[0]).log().count("Accepted publickey") if running else 0


def test_ssh_connects_while_azure_still_reports_the_vm_creating(cloud, state_dir):
    cloud.arm.hold(VM, 600)  # ARM reports the VM Creating until the test lets it finish
    cloud.arm.boot_after(0)  # ... while its OS boots and sshd answers, as on Azure
    result = {}
    up = threading.Thread(
        target=lambda: result.update(up=console("up", "--name", "early", "--detach", "--skip-check", env=cloud.env))
    )
    up.start()
    try:
        wait_for(lambda: accepted(cloud), what="an SSH login")
        vm_id = cloud.vms.running()[0]
        assert cloud.arm.resource(vm_id)["properties"]["provisioningState"] == "Creating"
        vm_puts = [r for r in cloud.arm.requests if r.method == "PUT" and "/virtualmachines/" in r.path.lower()]
        assert len(vm_puts) == 1
    finally:
        cloud.arm.hold(VM, 0)  # the create ends; `up` goes on
        up.join(600)
    assert result["up"].exit_code == 0, result["up"].stderr
    assert accepted(cloud) == 2  # the one begun early served the whole bootstrap; the other is the detached tunnel
    assert console("down", "early", "--yes", env=cloud.env).exit_code == 0
    assert cloud.arm.inventory() == []


def test_a_failed_vm_create_gives_up_the_early_ssh_and_rolls_back(cloud, state_dir):
    cloud.arm.inject("PUT", r"/virtualmachines/", async_failure=True, code="OSProvisioningInternalError")
    cloud.arm.hold(VM, 1.0)
    up = console("up", "--name", "failed", "--detach", "--allow-cpu", env=cloud.env)
    assert up.exit_code != 0
    assert "OSProvisioningInternalError" in up.stderr and "Traceback" not in up.stderr
    assert cloud.arm.inventory() == []
    assert not (state_dir / "failed").exists()
    assert "SSH" not in up.stderr.strip().splitlines()[-1]  # the error is Azure's; the SSH attempt was given up


@pytest.fixture
def stand_in_cloud(cloud, monkeypatch, tmp_path):
    """The cloud, with the training notebook replaced by its quick stand-in, and the detached tunnel importing this
    checkout."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    notebooks = tmp_path / "notebooks"
    write_training_stand_in(notebooks / session.NOTEBOOK)
    monkeypatch.setattr(session, "notebooks_dir", lambda: notebooks)
    return cloud


def jupyter_ready_at(home: Path) -> float:
    """When Jupyter said it is running, from its log on the machine (local time, as it writes it)."""
    log = (home / ".dsvm-kit" / "jupyter.log").read_text()
    stamp = re.search(r"\[I (\S+ \S+) ServerApp\] .*is running at", log).group(1)
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def test_jupyter_starts_while_the_check_runs_on_one_connection(stand_in_cloud):
    write_training_stand_in(session.notebooks_dir() / session.NOTEBOOK, seconds=3.0)  # Jupyter starts meanwhile
    before = SSHRemote.connections_opened
    up = provision("up", "--name", "overlap", "--detach", "--allow-cpu")
    assert up.exit_code == 0, up.stderr
    assert SSHRemote.connections_opened - before == 1
    home = Path(pwd.getpwnam(stand_in_cloud.user).pw_dir)
    (run,) = (home / ".dsvm-kit" / "runs").iterdir()
    check_began, check_ended = (run / "pid").stat().st_mtime, (run / "status").stat().st_mtime
    jupyter_began = (home / ".dsvm-kit" / "jupyter.json").stat().st_mtime
    # The check was launched before Jupyter answered, and Jupyter was launched before the check ended.
    assert check_began < jupyter_ready_at(home) and jupyter_began < check_ended
    assert provision("down", "overlap", "--yes").exit_code == 0


def test_a_rerun_on_a_ready_deployment_runs_no_notebook_unless_asked(stand_in_cloud):
    assert provision("up", "--name", "again", "--detach", "--allow-cpu").exit_code == 0
    starts = Path(pwd.getpwnam(stand_in_cloud.user).pw_dir) / "notebooks" / "runs" / STAND_IN_STARTS
    assert starts.read_text().splitlines() == ["started"]
    again = provision("up", "--name", "again", "--detach", "--allow-cpu")
    assert again.exit_code == 0, again.stderr
    assert "--check runs it again" in again.stderr and "reusing the running server" in again.stderr
    assert starts.read_text().splitlines() == ["started"]
    checked = provision("up", "--name", "again", "--detach", "--allow-cpu", "--check")
    assert checked.exit_code == 0, checked.stderr
    assert starts.read_text().splitlines() == ["started", "started"]
    assert provision("down", "again", "--yes").exit_code == 0
