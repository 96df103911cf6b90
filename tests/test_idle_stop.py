"""Idle stop end to end: the agent on a fake VM (real sshd, real Jupyter) deallocates the VM through the fake ARM
with the VM's own managed-identity token from the fake IMDS; the window and probe scaled to seconds."""

import subprocess
import time
from pathlib import Path

from bootstrap.idle_agent import ssh_sessions_at_work
from tests.conftest import console
from tests.test_e2e import port_open

WINDOW_MIN = "0.15"  # 9 s
PROBE_S = "1"


def idle_env(cloud, **extra) -> dict:
    return {**cloud.env, "PROVISION_IMDS_URL": cloud.arm.imds_url, "PROVISION_IDLE_PROBE": PROBE_S, **extra}


def power_of(cloud, name: str) -> str:
    vm = f"/subscriptions/{cloud.arm.subscription_id}/resourceGroups/dsvm-{name}/providers/Microsoft.Compute/virtualMachines/{name}"
    view = cloud.arm.resource(vm + "/instanceView") or {}
    codes = [s["code"] for s in view.get("statuses", []) if s["code"].startswith("PowerState/")]
    return codes[0] if codes else str(cloud.vms.running())


def wait_deallocated(cloud, ssh_port: int, limit: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        cloud.arm.inventory()  # settles the fake's operations (the deallocate the agent asked for)
        if not cloud.vms.running() and not port_open(ssh_port):
            return time.monotonic() - start
        time.sleep(0.25)
    return None


def test_an_idle_vm_deallocates_itself_with_its_own_identity_and_down_leaves_no_role(cloud, state_dir):
    env = idle_env(cloud, PROVISION_IDLE_STOP=WINDOW_MIN)
    up = console("up", "--name", "idl", "--detach", "--skip-check", env=env, timeout=600)
    assert up.exit_code == 0, up.stderr
    assert "Idle stop" in up.stdout + up.stderr
    (role,) = cloud.arm.role_definitions()
    actions = role["properties"]["permissions"][0]["actions"]
    assert sorted(actions) == [
        "Microsoft.Compute/virtualMachines/deallocate/action",
        "Microsoft.Compute/virtualMachines/read",
    ]
    (assignment,) = cloud.arm.role_assignments()
    vm_id = assignment["properties"]["scope"]
    assert vm_id.endswith("/virtualMachines/idl") and role["properties"]["assignableScopes"] == [vm_id]
    assert assignment["properties"]["principalType"] == "ServicePrincipal"
    assert not any(r.path.lower().endswith("/schedules/shutdown-computevm-idl") for r in cloud.arm.requests)

    ssh_port = int(cloud.env["PROVISION_SSH_PORT"])
    # The detached tunnel of `up --detach` stays open: it alone is no activity.
    took = wait_deallocated(cloud, ssh_port, limit=60)
    logs = {
        name: (Path(f"/home/{cloud.user}/.dsvm-kit/idle") / name).read_text()
        for name in ("agent.log", "agent.out")
        if (Path(f"/home/{cloud.user}/.dsvm-kit/idle") / name).exists()
    }
    assert took is not None, f"still running: {power_of(cloud, 'idl')}; {logs}"
    deallocations = [r for r in cloud.arm.requests if r.method == "POST" and r.path.lower().endswith("/deallocate")]
    assert deallocations and deallocations[-1].status == 202
    print(f"deallocated {took:.1f} s after up returned")

    down = console("down", "idl", "--yes", env=env, timeout=600)
    assert down.exit_code == 0, down.stderr
    assert cloud.arm.role_definitions() == [] and cloud.arm.role_assignments() == []


def test_a_plain_contributor_gets_one_warning_no_idle_stop_and_the_daily_schedule(cloud):
    cloud.arm.make_caller_contributor()
    up = console("up", "--name", "ctb", "--no-bootstrap", env=idle_env(cloud), timeout=600)
    assert up.exit_code == 0, up.stderr
    warnings = [line for line in up.stderr.splitlines() if "idle stop is off" in line]
    assert len(warnings) == 1 and "19:00" in warnings[0]
    assert cloud.arm.role_definitions() == [] and cloud.arm.role_assignments() == []
    schedule = next(r for r in cloud.arm.requests if r.method == "PUT" and "/schedules/" in r.path.lower())
    assert schedule.path.lower().endswith("/schedules/shutdown-computevm-ctb")
    assert schedule.body["properties"]["dailyRecurrence"] == {"time": "1900"}
    assert "identity" not in next(
        r.body for r in cloud.arm.requests if r.method == "PUT" and r.path.lower().endswith("/virtualmachines/ctb")
    )
    down = console("down", "ctb", "--yes", env=idle_env(cloud), timeout=600)
    assert down.exit_code == 0, down.stderr
    assert not [entry for entry in cloud.arm.inventory() if "schedules" in entry.lower()]


def test_the_unit_file_passes_systemd_analyze_verify(tmp_path):
    from bootstrap.idle import UNIT, unit_text

    agent, config = tmp_path / "agent.py", tmp_path / "config.json"
    agent.write_text(""), config.write_text("{}")
    unit = tmp_path / UNIT
    unit.write_text(unit_text("root", "/usr/bin/python3", str(agent), str(config)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_ssh_sessions_count_only_when_they_run_a_process():
    table = {
        10: (1, "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"),
        11: (10, "sshd: ana [priv]"),
        12: (11, "sshd: ana@notty"),  # the kit's tunnel: forwards ports, runs nothing
        21: (10, "sshd: ana [priv]"),
        22: (21, "sshd: ana@notty"),
        23: (22, "/usr/lib/openssh/sftp-server"),  # file transfer only
        24: (10, "sshd: ana [priv]"),
        25: (24, "sshd: ana@internal-sftp"),
        41: (10, "sshd: bob [priv]"),
        42: (41, "sshd: bob@pts/1"),
        43: (42, "-bash"),  # another user's shell: not this VM's user
        31: (10, "sshd-session: ana [priv]"),
        32: (31, "sshd-session: ana@pts/0"),
        33: (32, "-bash"),  # an interactive shell
    }
    assert ssh_sessions_at_work("ana", table) == 1
    del table[33]
    assert ssh_sessions_at_work("ana", table) == 0
