"""`provision run` against the whole fake cloud: two nodes, each a real sshd on its own loopback address with its
own host key, the worker reached only through the head; a real torchrun with gloo, 2 processes per node."""

import json
import os
import pwd
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from provision import session
from provision.state import StateStore
from tests.conftest import REPO, console, provision
from tests.fakes import processes
from tests.fakes.notebook import write_training_stand_in

EXAMPLES = Path(REPO) / "examples"
NODES = 2


@pytest.fixture
def two_nodes(cloud, state_dir):
    result = provision("up", "--name", "pair", "--nodes", str(NODES), "--no-bootstrap")
    assert result.exit_code == 0, result.stderr
    record = StateStore(state_dir).require("pair")
    yield record
    assert provision("down", "pair", "--yes").exit_code == 0


def test_each_node_is_its_own_sshd_reached_only_through_the_head_and_allreduce_sums_right(
    cloud, two_nodes, monkeypatch
):
    head, worker = two_nodes.nodes
    assert head["host"] == "127.0.0.1" and worker["host"] == worker["private_ip"] != head["private_ip"]
    assert head["host_key"] != worker["host_key"]
    sshds = [cloud.vms.sshd(vm_id) for vm_id in cloud.vms.running()]
    assert sorted(s.address for s in sshds) == sorted(["127.0.0.1", worker["private_ip"]])
    connected = []
    real_connect = socket.socket.connect
    monkeypatch.setattr(
        socket.socket, "connect", lambda s, address: connected.append(address) or real_connect(s, address)
    )
    result = provision("run", "pair", str(EXAMPLES / "allreduce_check.py"))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert {address[0] for address in connected if address[0].startswith("127.")} == {"127.0.0.1"}
    worker_log = next(s for s in sshds if s.address == worker["private_ip"]).log()
    assert "Accepted publickey" in worker_log  # the kit did log in on the worker: through the head's channel

    found = re.search(r"all-reduce passed: (\d+) processes \(gloo\), sum (\S+) \(expected (\S+)\)", result.stdout)
    assert found, result.stdout
    assert found.groups() == ("4", "10", "10")  # ranks contribute 1+2+3+4
    assert re.search(r"^node0 \[rank0\]:all-reduce passed", result.stdout, re.M)  # prefixed by node and rank
    # Ranks 1-3 of this script print nothing (node 1 shows only torchrun's own banner): the Ctrl-C test's job prints
    # from every rank, and checks each line's node and rank there.


def test_the_ddp_example_trains(two_nodes):
    result = provision("run", "pair", str(EXAMPLES / "ddp_train.py"), "--epochs", "3", "--train-size", "2000")
    assert result.exit_code == 0, result.stdout + result.stderr
    losses = [float(x) for x in re.findall(r"mean loss ([\d.]+) over 4 processes", result.stdout)]
    assert len(losses) == 3 and losses[-1] < losses[0], result.stdout
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", result.stdout).group(1))
    assert accuracy > 20, result.stdout


def test_a_failing_rank_fails_the_run_and_is_named(two_nodes, tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "fail.py").write_text(
        "import os, sys, time\n"
        "import torch.distributed as dist\n"
        "dist.init_process_group('gloo')\n"
        "if dist.get_rank() == 3:\n"
        "    sys.exit(7)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result = provision("run", "pair", str(job / "fail.py"))
    assert result.exit_code != 0
    assert "the job failed: rank 3 on node 1" in result.stderr, result.stdout + result.stderr
    assert time.monotonic() - started < 55  # the other node was stopped, not waited for
    assert "Traceback" not in result.stderr


def test_a_missing_script_is_one_line_before_anything_runs(cloud, state_dir):
    result = provision("run", "pair", "no-such-script.py")
    assert result.exit_code != 0
    assert result.stderr.strip() == "error: script no-such-script.py does not exist (or is not a file)"


def test_up_on_two_nodes_proves_the_all_reduce_before_the_url(cloud, state_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", REPO)  # the detached tunnel imports this checkout
    stand_in = tmp_path / "notebooks"  # the all-reduce is under test here, beside the notebook: its stand-in will do
    write_training_stand_in(stand_in / session.NOTEBOOK)
    monkeypatch.setattr(session, "notebooks_dir", lambda: stand_in)
    monkeypatch.setenv("PROVISION_IDLE_PROBE", "1")
    up = provision("up", "--name", "duo", "--nodes", "2", "--detach", "--allow-cpu")
    assert up.exit_code == 0, up.stdout + up.stderr
    found = re.search(
        r"^all-reduce passed: 4 processes \(gloo\), sum 10 \(expected 10\), .* bus bandwidth (\S+) GB/s",
        up.stdout,
        re.M,
    )
    assert found and float(found.group(1)) > 0, up.stdout
    assert "CPU run accepted (--allow-cpu)" in up.stdout  # beside the notebook's verdict on the head
    record = StateStore(state_dir).require("duo")
    assert record.allreduce["passed"] and record.nodes[1]["python"], record
    _the_head_agent_counts_a_session_on_a_worker(cloud, record)
    # a rank that fails: `up --check` fails, keeps the machine, names `provision down`
    broken = tmp_path / "examples"
    broken.mkdir()
    (broken / "allreduce_check.py").write_text(
        "import sys, time\nimport torch.distributed as dist\n"
        "dist.init_process_group('gloo')\nif dist.get_rank() == 2:\n    sys.exit(3)\n"
        "time.sleep(60)  # the others still at work: stopped, not waited for\n"
    )
    shipped = session.shipped
    monkeypatch.setattr(session, "shipped", lambda folder: broken if folder == "examples" else shipped(folder))
    again = provision("up", "--name", "duo", "--detach", "--allow-cpu", "--check")
    assert again.exit_code != 0
    error = again.stderr.strip().splitlines()[-1]
    assert "the all-reduce check failed: rank 2 on node 1" in error and "`provision down duo`" in error, again.stderr
    assert "Traceback" not in again.stderr
    assert StateStore(state_dir).require("duo").allreduce["passed"] is False
    notebooks = set(os.listdir(Path(pwd.getpwnam(cloud.user).pw_dir) / "notebooks"))
    assert not notebooks & set(os.listdir(EXAMPLES)), notebooks  # the examples went to the job folder only
    assert provision("down", "duo", "--yes").exit_code == 0


def _the_head_agent_counts_a_session_on_a_worker(cloud, record) -> None:
    """The idle agent runs on the head; a session on a worker (`provision ssh --node 1`, OpenSSH) keeps it awake."""
    agent_dir = Path(pwd.getpwnam(cloud.user).pw_dir) / ".dsvm-kit" / "idle"
    worker = record.nodes[1]
    assert json.loads((agent_dir / "config.json").read_text())["workers"] == [
        f"{worker['private_ip']}:{worker['port']}"
    ]
    log = agent_dir / "agent.log"
    # The agent logs a change of activity only: wait until it has seen the kit's own links to the worker (the
    # all-reduce check's) end, or a session opened before that would add no line.
    deadline = time.monotonic() + 60
    while "SSH to workers" in _last_activity(log) and time.monotonic() < deadline:
        time.sleep(0.5)
    before = log.read_text().count("SSH to workers")
    script = os.path.join(os.path.dirname(sys.executable), "provision")
    with subprocess.Popen(
        [script, "ssh", "duo", "--node", "1", "--", "cat >/dev/null"], stdin=subprocess.PIPE
    ) as session:
        deadline = time.monotonic() + 60
        while log.read_text().count("SSH to workers") == before and time.monotonic() < deadline:
            time.sleep(0.5)
        session.stdin.close()  # the remote `cat` ends, and the session with it
        assert session.wait(timeout=30) == 0
    assert log.read_text().count("SSH to workers") > before, log.read_text()


def _last_activity(log: Path) -> str:
    """The idle agent's last word on activity ("active: ..." or "no activity"); empty before its first."""
    lines = [line for line in log.read_text().splitlines() if " active: " in line or line.endswith(" no activity")]
    return lines[-1] if lines else ""


def test_plain_openssh_reaches_the_worker_through_the_head(cloud, two_nodes):
    """`provision ssh NAME --node 1`: OpenSSH's own client, every host key pinned, the worker through the head."""
    worker = two_nodes.nodes[1]["private_ip"]
    ssh = console("ssh", "pair", "--node", "1", "--", "echo connected to $SSH_CONNECTION", env=cloud.env, timeout=60)
    assert ssh.exit_code == 0, ssh.stderr
    assert ssh.stdout.split()[:2] == ["connected", "to"] and ssh.stdout.split()[4] == worker, ssh.stdout
    head = console("ssh", "--node", "0", "pair", "--", "echo connected to $SSH_CONNECTION", env=cloud.env, timeout=60)
    assert head.exit_code == 0 and head.stdout.split()[4] == "127.0.0.1", head.stdout + head.stderr


def test_ctrl_c_stops_the_job_on_every_node_and_leaves_no_process(cloud, two_nodes, tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "long.py").write_text(
        "import time\nimport torch.distributed as dist\ndist.init_process_group('gloo')\n"
        "print('started', dist.get_rank(), flush=True)\ntime.sleep(600)\n"
    )
    script = os.path.join(os.path.dirname(sys.executable), "provision")
    run = subprocess.Popen(
        [script, "run", "pair", str(job / "long.py")],
        env={**os.environ, "PYTHONPATH": REPO},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in run.stdout], daemon=True).start()
    seen, started = [], {}  # the rank each process printed -> (node, rank) its line was prefixed with
    try:
        while len(started) < 4:
            try:
                line = lines.get(timeout=120)
            except queue.Empty:
                pytest.fail(f"not every rank started in 120 s: {''.join(seen)}")
            seen.append(line)
            if found := re.search(r"^node(\d) \[rank(\d)\]:started (\d)$", line.rstrip("\n")):
                started[found.group(3)] = found.group(1, 2)
        assert started == {"0": ("0", "0"), "1": ("0", "1"), "2": ("1", "2"), "3": ("1", "3")}, seen
        uid = pwd.getpwnam(cloud.user).pw_uid
        assert len(_job_processes(uid)) >= 6, seen  # a torchrun agent on each node and its 2 workers
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=60) == 130, "".join(seen)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert _job_processes(uid) == []


def _job_processes(uid: int) -> list[str]:
    """The command lines of the VM user's torchrun and Python processes, on any node (they share the user)."""
    found = []
    for pid in processes.pids_of_user(uid):
        line = processes.command_line(pid)
        if "torch.distributed.run" in line or "python" in line.split(" ", 1)[0]:
            found.append(line)
    return found
