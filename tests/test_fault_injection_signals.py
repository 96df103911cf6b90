"""Issue 5, nothing leaked: Ctrl-C (SIGINT) and SIGTERM reach `provision up` during each step.

`up` runs as its own process (`python -m provision`, this checkout's code), a signal is sent
while it is inside a chosen step, and it must exit 130 with "error: interrupted" as its
last line and no traceback, after rolling back everything this run created: nothing in the
fake ARM, no record, no sshd, no process of the VM's user.

How `up` is kept inside a step until the signal arrives:
- resource group: its PUT is synchronous (ARM has no operation to hold), so it is throttled
  instead: a 429 with Retry-After 60 keeps `up` waiting to retry it;
- network, network interface, VM: the step's first operation is held (InProgress) until
  the signal is sent, then released (in Azure it would go on and finish, or be cancelled
  by the group's deletion);
- each bootstrap step: the VM holds the step's first command before it runs
  (FakeVMs.pause_at) until the rollback halts the VM.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.scenarios import BOOTSTRAP_STEPS, Scenario, cloud_leftovers, vm_leftovers

NAME = "faults"
ROOT = str(Path(__file__).resolve().parents[1])

# Creation steps: the path of the step's first PUT, and the kind to hold (None: throttle it instead).
CREATION_STEPS = {
    "resource group": (r"/resourcegroups/dsvm-[^/]+$", None),
    "network": (r"/virtualnetworks/[^/]+$", "Microsoft.Network/virtualNetworks"),
    "network interface": (r"/networkinterfaces/[^/]+$", "Microsoft.Network/networkInterfaces"),
    "VM": (r"/virtualmachines/[^/]+$", "Microsoft.Compute/virtualMachines"),
}
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


def start_up(*flags: str) -> subprocess.Popen:
    """`provision up` in a process of its own, importing this checkout."""
    return subprocess.Popen(
        [sys.executable, "-m", "provision", "up", "--name", NAME, *flags],
        env={**os.environ, "PYTHONPATH": ROOT},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, up: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if up.poll() is not None or time.monotonic() > deadline:
            up.kill()
            _, err = up.communicate()
            pytest.fail(f"`up` never reached {what}: {err}")
        time.sleep(0.02)


def interrupt(scenario: Scenario, signame: str, up: subprocess.Popen, release=lambda: None) -> str:
    """Send the signal, let `up` roll back and exit; what it printed on stderr."""
    up.send_signal(SIGNALS[signame])
    release()
    started = time.monotonic()
    out, err = up.communicate(timeout=120)
    scenario.ran(up.returncode, time.monotonic() - started, out, err)
    return err


def assert_rolled_back(scenario: Scenario, up: subprocess.Popen, err: str) -> None:
    assert up.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted", err
    assert "Rolling back: deleting what this run created" in err
    assert not scenario.traceback, err
    assert scenario.leaked == [], f"left behind: {scenario.leaked}"


@pytest.mark.parametrize("signame", SIGNALS)
@pytest.mark.parametrize("step", CREATION_STEPS)
def test_a_signal_while_creating_rolls_back_everything(arm, azure_env, state_dir, booter, request, step, signame):
    scenario = Scenario.start(request, "signal", f"{signame} during {step}")
    path, kind = CREATION_STEPS[step]
    if kind:
        arm.hold(kind, 600)
    else:
        arm.inject("PUT", path, status=429, code="SubscriptionRequestsThrottled", retry_after=36000)  # 72 s at FAST
    up = start_up("--no-bootstrap")
    wait_for(lambda: any(r.method == "PUT" and re.search(path, r.path.lower()) for r in arm.requests), up, step)

    err = interrupt(scenario, signame, up, release=lambda: kind and arm.hold(kind, 0))
    scenario.checked(cloud_leftovers(arm, state_dir, NAME) + [f"VM still booted {vm}" for vm in booter.running])

    assert_rolled_back(scenario, up, err)


@pytest.mark.parametrize("signame", SIGNALS)
@pytest.mark.parametrize("step", BOOTSTRAP_STEPS)
def test_a_signal_during_bootstrap_rolls_back_everything(cloud, state_dir, request, step, signame):
    scenario = Scenario.start(request, "signal", f"{signame} during {step}")
    paused = cloud.vms.pause_at(BOOTSTRAP_STEPS[step])
    up = start_up("--detach", *(["--allow-cpu"] if step == "run the notebook" else ["--skip-check"]))
    wait_for(paused.fired.is_set, up, step)

    err = interrupt(scenario, signame, up)
    scenario.checked(cloud_leftovers(cloud.arm, state_dir, NAME) + vm_leftovers(cloud.vms, cloud.user))

    assert_rolled_back(scenario, up, err)
