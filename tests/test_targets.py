"""Targets that need no Azure: this machine (--target local) and an existing host (ssh://).

Also the commands around a live deployment: check, status, tunnel, ssh and ssh-config.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO, SUITABLE_PYTHON, console
from tests.fakes import processes

pytest_plugins = ["tests.fakes.fixtures"]

URL = re.compile(r"(https?)://127\.0\.0\.1:(\d+)/lab/tree/first_pytorch_classifier\.ipynb\?token=([\w-]+)")
NOTEBOOK = "first_pytorch_classifier.ipynb"


def contents(port: int, token: str | None) -> tuple[int, list[str]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents")
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, [item["name"] for item in json.load(response)["content"]]
    except urllib.error.HTTPError as e:
        return e.code, []


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def local_env(state_dir, tmp_path):
    """`provision` for this machine, with a home of its own (Jupyter's notebooks and state)."""
    processes.become_subreaper()
    home = tmp_path / "home"
    home.mkdir()
    yield {"PROVISION_STATE_DIR": str(state_dir), "HOME": str(home)}
    assert processes.reap_orphans() == [], "a process of the local deployment outlived `down`"


@pytest.fixture
def ssh_env(vm, state_dir):
    """`provision` pointed at an existing machine (a fake VM) by ssh://, its key given."""
    machine = vm.machine
    target = f"ssh://{machine.user}@127.0.0.1:{machine.endpoint.port}"
    return {
        "PROVISION_STATE_DIR": str(state_dir),
        "PROVISION_TARGET": target,
        "PROVISION_IDENTITY": str(machine.endpoint.key_path),
        "PROVISION_HOST_KEY": machine.host_key.public_line,
        "PROVISION_REMOTE_PYTHON": SUITABLE_PYTHON,  # the search among the fake VM's Pythons: test_e2e
    }


def test_local_target_end_to_end(local_env, state_dir):
    up = console("up", "--target", "local", "--name", "here", "--allow-cpu", "--dataset", "digits", env=local_env)
    assert up.exit_code == 0, up.stderr
    _, port, token = URL.search(up.stdout).groups()
    port = int(port)
    assert "CPU run accepted (--allow-cpu)" in up.stdout
    status, names = contents(port, token)
    assert status == 200 and NOTEBOOK in names and "runs" in names
    assert contents(port, None)[0] == 403
    assert not (state_dir / "here" / "id_ed25519").exists()  # no SSH: no key was made

    shown = json.loads(console("status", "here", "--json", env=local_env).stdout)
    assert shown["target"] == "local" and shown["last_check"].startswith("CPU run accepted")

    down = console("down", "here", "--yes", env=local_env)
    assert down.exit_code == 0, down.stderr
    assert "stopped Jupyter" in down.stderr
    assert not port_open(port) and not (state_dir / "here").exists()


def test_ssh_target_end_to_end(vm, ssh_env, state_dir):
    up = console("up", "--name", "ext", "--detach", "--skip-check", env=ssh_env)
    assert up.exit_code == 0, up.stderr
    _, port, token = URL.search(up.stdout).groups()
    assert contents(int(port), token)[0] == 200
    assert "GPU check skipped" in up.stderr

    # `check` runs the notebook on the live machine; `status` shows the verdict.
    check = console("check", "ext", "--allow-cpu", "--dataset", "digits", env=ssh_env)
    assert check.exit_code == 0, check.stderr
    assert check.stdout.startswith("CPU run accepted (--allow-cpu)")
    status = json.loads(console("status", "ext", "--json", env=ssh_env).stdout)
    assert status["last_check"] == check.stdout.strip() and status["tunnel"] == "open"

    # Plain OpenSSH works with the record's pinned known_hosts and key.
    ssh = console("ssh", "ext", "--", "echo", "hello from", "$(hostname)", env=ssh_env)
    assert ssh.exit_code == 0, ssh.stderr
    assert ssh.stdout.strip().startswith("hello from")
    config = console("ssh-config", "ext", env=ssh_env).stdout
    assert "Host dsvm-ext" in config and "StrictHostKeyChecking yes" in config
    assert f"UserKnownHostsFile {state_dir / 'ext' / 'known_hosts'}" in config

    # `tunnel --detach` opens another port to the same server.
    again = console("tunnel", "ext", "--detach", env=ssh_env)
    assert again.exit_code == 0, again.stderr
    _, other_port, same_token = URL.search(again.stdout).groups()
    assert same_token == token and contents(int(other_port), token)[0] == 200

    down = console("down", "ext", "--yes", env=ssh_env)
    assert down.exit_code == 0, down.stderr
    assert "stopped Jupyter" in down.stderr
    assert not port_open(int(other_port)) and not (state_dir / "ext").exists()


def test_ssh_target_host_key_is_never_trusted_silently(vm, ssh_env, state_dir):
    env = {k: v for k, v in ssh_env.items() if k != "PROVISION_HOST_KEY"}
    up = console("up", "--name", "ext", "--detach", env=env)
    assert up.exit_code == 1
    assert "presents host key SHA256:" in up.stderr
    assert "not confirmed; pass it with --host-key" in up.stderr


def test_ctrl_c_closes_only_the_tunnel(vm, ssh_env):
    script = os.path.join(os.path.dirname(sys.executable), "provision")
    up = subprocess.Popen(
        [script, "up", "--name", "ext", "--skip-check"],
        env={**os.environ, "PYTHONPATH": REPO, **ssh_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        match = None
        while match is None:
            match = URL.search(up.stdout.readline())
        _, port, token = match.groups()
        assert contents(int(port), token)[0] == 200
        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0
    finally:
        up.kill()
        up.wait()
    err = up.stderr.read()
    assert "tunnel closed" in err and "still running" in err and "provision down ext" in err
    deadline = time.monotonic() + 5
    while port_open(int(port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not port_open(int(port))
    status = json.loads(console("status", "ext", "--json", env=ssh_env).stdout)
    assert status["phase"] == "ready" and status["jupyter_port"]
    assert console("down", "ext", "--yes", env=ssh_env).exit_code == 0


def test_ssh_target_host_key_confirmed_at_a_terminal(vm, ssh_env, state_dir):
    """Without --host-key the fingerprint is shown; answering yes pins the key presented."""
    import pty

    env = {k: v for k, v in ssh_env.items() if k != "PROVISION_HOST_KEY"}
    leader, follower = pty.openpty()
    os.write(leader, b"y\n")
    script = os.path.join(os.path.dirname(sys.executable), "provision")
    up = subprocess.run(
        [script, "up", "--name", "ext", "--detach", "--skip-check"],
        env={**os.environ, "PYTHONPATH": REPO, **env},
        stdin=follower,
        capture_output=True,
        text=True,
        timeout=120,
    )
    os.close(follower)
    os.close(leader)
    assert up.returncode == 0, up.stderr
    record = json.loads((state_dir / "ext" / "record.json").read_text())
    assert record["machine"]["host_key"] == vm.machine.host_key.public_line
    assert console("down", "ext", "--yes", env=ssh_env).exit_code == 0
