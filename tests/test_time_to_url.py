"""Nothing waits that could run: SSH begins while Azure still creates the VM, the check and Jupyter's
start overlap on one connection, and a re-run on a ready deployment runs no notebook.

Behaviour, not timing: each test reads the order of events from the fakes (the fake ARM's state and
request log, the fake sshd's log, the times the notebook stand-in and Jupyter leave on the fake VM).
"""

import threading
import time

from tests.conftest import console

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
        target=lambda: result.update(up=console("up", "--name", "early", "--detach", "--allow-cpu", env=cloud.env))
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
