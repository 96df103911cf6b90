"""Idle stop end to end: the agent on a fake VM (real sshd, real Jupyter) deallocates the VM through the fake ARM
with the VM's own managed-identity token from the fake IMDS; the window and probe scaled to seconds."""

import asyncio
import json
import os
import pty
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

from bootstrap.idle_agent import ssh_sessions_at_work
from provision.state import StateStore
from tests.conftest import REPO, console
from tests.test_e2e import URL, port_open

WINDOW_MIN = "0.05"  # 3 s
PROBE_S = "0.5"


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
    (assignment,) = cloud.arm.role_assignments()  # at the deployment's group, which holds only its own VMs
    group_id = assignment["properties"]["scope"]
    assert group_id.endswith("/resourceGroups/dsvm-idl") and role["properties"]["assignableScopes"] == [group_id]
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

    # status: the policy, and a deallocation the kit did not make; start then learns why from the agent.
    stopped = status_of("idl", env)
    assert stopped["idle_policy"] == "idle stop after 0.05 min"
    assert stopped["power_state"] == "deallocated (not by the kit: idle stop, the schedule or Azure)"
    assert "idle_minutes" not in stopped  # no SSH to a deallocated VM
    start = console("start", "idl", "--detach", env=env, timeout=600)
    assert start.exit_code == 0, start.stderr
    history = StateStore(state_dir).require("idl").power
    assert [entry["state"] for entry in history] == ["running", "deallocated", "running"]
    assert re.fullmatch(r"idle stop after 0\.[01] min without use", history[1]["reason"]), history

    down = console("down", "idl", "--yes", env=env, timeout=600)
    assert down.exit_code == 0, down.stderr
    assert cloud.arm.role_definitions() == [] and cloud.arm.role_assignments() == []


ACTIVE_WINDOW_MIN = "0.05"  # 3 s; each kind of activity below lasts longer than that on its own
PHASE_S = 4


async def execute(port: str, token: str, kernel: str, code: str) -> list[str]:
    """Run `code` in a kernel over its websocket, as JupyterLab does; its stream outputs."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    session = uuid.uuid4().hex
    url = f"ws://127.0.0.1:{port}/api/kernels/{kernel}/channels?session_id={session}"
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "session": session, "username": "t", "msg_type": "execute_request", "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    ws.write_message(
        json.dumps(
            {
                "header": header,
                "parent_header": {},
                "metadata": {},
                "content": content,
                "channel": "shell",
                "buffers": [],
            }
        )
    )
    outputs = []
    while True:
        message = json.loads(await ws.read_message())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "stream":
            outputs.append(message["content"]["text"])
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":  # outputs precede it
            ws.close()
            return outputs


def kernels_api(port: str, token: str, method: str, path: str = "") -> tuple[int, dict | None]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/kernels{path}", data=b"{}" if method == "POST" else None, method=method
    )
    request.add_header("Authorization", f"token {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        return response.status, json.loads(body) if body else None


def status_of(name: str, env: dict) -> dict:
    done = console("status", name, "--json", env=env, timeout=120)
    assert done.exit_code == 0, done.stderr
    return json.loads(done.stdout)


def deallocations_by(cloud, principal: str) -> list:
    return [
        r
        for r in cloud.arm.requests
        if r.method == "POST" and r.path.lower().endswith("/deallocate") and r.principal == principal
    ]


def test_a_busy_kernel_a_kernel_that_printed_and_an_interactive_shell_each_keep_the_vm_running(cloud, state_dir):
    env = idle_env(cloud, PROVISION_IDLE_STOP=ACTIVE_WINDOW_MIN)
    up = console("up", "--name", "act", "--detach", "--skip-check", env=env, timeout=600)
    assert up.exit_code == 0, up.stderr
    port, token = URL.search(up.stdout).groups()
    vm_id = f"/subscriptions/{cloud.arm.subscription_id}/resourceGroups/dsvm-act/providers/Microsoft.Compute/virtualMachines/act"
    (identity,) = cloud.arm.resource(vm_id)["identity"]["userAssignedIdentities"].values()
    principal = identity["principalId"]
    agent_dir = Path(f"/home/{cloud.user}/.dsvm-kit/idle")

    def still_running(what: str) -> None:
        cloud.arm.inventory()
        assert deallocations_by(cloud, principal) == [], (
            f"deallocated during {what}: {(agent_dir / 'agent.log').read_text()}"
        )
        assert cloud.vms.running(), what

    # 1. A kernel busy with silent work (no output at all) for longer than the window.
    status, body = kernels_api(port, token, "POST")
    assert status == 201, body
    kernel = body["id"]
    asyncio.run(execute(port, token, kernel, f"import time; time.sleep({PHASE_S})"))
    still_running("a busy kernel")
    # 2. A kernel idle between short executions that print: its last_activity stays within the window.
    until = time.monotonic() + PHASE_S
    while time.monotonic() < until:
        assert asyncio.run(execute(port, token, kernel, "print('still here')")) == ["still here\n"]
        time.sleep(1)
    still_running("a kernel that printed recently")
    assert kernels_api(port, token, "DELETE", f"/{kernel}")[0] == 204
    # 3. An interactive shell through `provision ssh` (a pty): nothing else happens meanwhile.
    controller, terminal = pty.openpty()
    shell = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "provision"), "ssh", "act"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, **env, "PYTHONPATH": REPO},
        start_new_session=True,
    )
    os.close(terminal)
    try:
        time.sleep(PHASE_S)
        still_running("an interactive SSH session")
        busy = status_of("act", env)  # what the agent wrote, read over SSH
        assert (busy["idle_policy"], busy["idle_agent_error"]) == ("idle stop after 0.05 min", "none")
        assert busy["idle_minutes"] == "0.0 of 0.05"
        os.write(controller, b"exit\n")
        assert shell.wait(timeout=30) == 0
    finally:
        if shell.poll() is None:
            shell.kill()
        os.close(controller)
    log = (agent_dir / "agent.log").read_text()
    assert "active: busy kernel" in log and "active: 1 SSH session(s)" in log, log

    # Activity over (the tunnel stays open): the VM deallocates itself, with its own identity.
    took = wait_deallocated(cloud, int(cloud.env["PROVISION_SSH_PORT"]), limit=90)
    assert took is not None, f"still running: {power_of(cloud, 'act')}; {(agent_dir / 'agent.log').read_text()}"
    assert [r.status for r in deallocations_by(cloud, principal)] == [202]
    assert console("down", "act", "--yes", "--discard", env=env, timeout=600).exit_code == 0  # deallocated: unreadable


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


def test_policy_and_a_stop_the_kit_did_not_make(tmp_path, monkeypatch):
    from provision import idle_view, keys, power
    from provision.state import Record

    record = Record("x", "azure", "2026-01-01T00:00:00+00:00", idle={"idle_stop": 60.0, "auto_shutdown": None})
    assert idle_view.policy(record) == "idle stop after 60 min"
    record.idle = {"idle_stop": None, "auto_shutdown": "19:00", "time_zone": "W. Europe Standard Time"}
    assert idle_view.policy(record) == "off: auto-shutdown 19:00 W. Europe Standard Time"
    power.note(record, "running", "created")
    assert idle_view.shown_state(record, "deallocated").startswith("deallocated (not by the kit")
    power.note(record, "deallocated", "by hand")
    assert idle_view.shown_state(record, "deallocated") == "deallocated"

    # SSH that does not answer: a port that accepts and never speaks, with a good key and host key, so that only the
    # silence stands between status and the agent. Status gives up after STATUS_SSH_WAIT, shows "unknown", does not fail.
    monkeypatch.setattr(idle_view, "STATUS_SSH_WAIT", 1)
    key = tmp_path / "key"
    key.write_text(keys.generate().private_openssh)
    key.chmod(0o600)
    record.idle = {"idle_stop": 60.0, "agent": "detached"}
    facts: dict = {}
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts the connection; nobody ever writes
        host, port = silent.getsockname()
        host_key = keys.generate().public_openssh
        record.machine = {"host": host, "port": port, "user": "u", "key_path": str(key), "host_key": host_key}
        asking = threading.Thread(target=lambda: facts.update(idle_view.agent_facts(record, "running")), daemon=True)
        asking.start()
        asking.join(timeout=30)  # a guard against a hang (the default wait is 300 s), not a speed target
        assert not asking.is_alive(), "status waited past STATUS_SSH_WAIT for an SSH server that never answers"
        silent.setblocking(False)
        connection, _ = silent.accept()  # status did connect: the silence, not the key nor a refusal, made it "unknown"
        connection.close()
    assert facts == {"idle_minutes": "unknown", "idle_agent_error": "unknown"}
    assert idle_view.agent_facts(record, "deallocated") == {}


class AgentFiles:
    """A Remote whose idle agent wrote `files` (name -> JSON text)."""

    home = "/home/u"

    def __init__(self, files: dict):
        self.files = files

    def run(self, command: str, **_):
        from types import SimpleNamespace

        return SimpleNamespace(stdout="".join(f"{n} {self.files.get(n, '')}\n" for n in ("state", "stopped")))


def test_start_records_why_the_vm_stopped():
    from provision import idle_view, power
    from provision.state import Record

    record = Record("x", "azure", "2026-01-01T00:00:00+00:00")
    power.note(record, "running", "created", datetime.fromisoformat("2026-01-01T00:00:00+00:00"))
    power.note(record, "running", "started", datetime.fromisoformat("2026-01-01T05:00:00+00:00"))
    stopped_at = datetime.fromisoformat("2026-01-01T01:30:00+00:00").timestamp()
    idle_stop = AgentFiles({"stopped": json.dumps({"reason": "idle", "at": stopped_at, "idle_s": 3600})})
    assert idle_view.note_stop(record, idle_stop)
    assert [(e["state"], e["at"][11:16], e["reason"]) for e in record.power] == [
        ("running", "00:00", "created"),
        ("deallocated", "01:30", "idle stop after 60.0 min without use"),
        ("running", "05:00", "started"),
    ]
    assert not idle_view.note_stop(record, idle_stop)  # already known
    record.power = record.power[:1] + record.power[2:]
    assert idle_view.note_stop(record, AgentFiles({}))  # no word from the agent: the schedule, Azure...
    assert record.power[1]["reason"].startswith("seen at start: not by the kit")
    assert power.running_hours(record, datetime.fromisoformat("2026-01-01T05:00:00+00:00")) == 5.0


def test_a_refused_deallocate_is_retried_and_status_shows_the_error(cloud, state_dir):
    env = idle_env(cloud, PROVISION_IDLE_STOP=WINDOW_MIN)
    # ARM refuses the VM's deallocate as it does while a new role assignment replicates.
    refused = cloud.arm.inject(
        "POST", r"/virtualmachines/err/deallocate$", status=403, code="AuthorizationFailed", times=100
    )
    up = console("up", "--name", "err", "--detach", "--skip-check", env=env, timeout=600)
    assert up.exit_code == 0, up.stderr
    limit = time.monotonic() + 60
    while refused.fired < 2 and time.monotonic() < limit:
        time.sleep(0.5)
    assert refused.fired >= 2  # retried
    shown = status_of("err", env)
    assert shown["idle_agent_error"] == "HTTPError: 403" and shown["idle_minutes"] != "unknown", shown
    assert shown["power_state"] == "running"

    cloud.arm.clear_faults()  # the role has replicated: the next retry goes through
    took = wait_deallocated(cloud, int(cloud.env["PROVISION_SSH_PORT"]), limit=90)
    log = (Path(f"/home/{cloud.user}/.dsvm-kit/idle") / "agent.log").read_text()
    assert took is not None, log
    assert "deallocate failed (HTTPError: 403); retrying" in log
    statuses = [r.status for r in cloud.arm.requests if r.method == "POST" and r.path.lower().endswith("/deallocate")]
    assert statuses[-1] == 202 and set(statuses[:-1]) == {403}, statuses
    assert console("down", "err", "--yes", "--discard", env=env, timeout=600).exit_code == 0  # deallocated: unreadable
