"""bootstrap.remote against a real sshd (fake VM) and on this machine."""

from __future__ import annotations

import logging
import shlex
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bootstrap.remote import (
    LOG_CHANNEL,
    AuthenticationFailed,
    CommandFailed,
    CommandTimedOut,
    ConnectTimeout,
    Endpoint,
    HostKeyMismatch,
    Remote,
    SSHRemote,
    connect,
    expand,
)
from tests.fakes.sshd import free_port, new_ed25519_key
from tests.fakes.vm import FakeVMs, leftovers, new_machine

NASTY = "dir with spaces/$(touch pwned)/`touch pwned2`;x"  # a path that must stay inert

pytest_plugins = ["tests.fakes.fixtures"]


def test_connect_uses_one_connection_and_the_vm_user(vm):
    before = SSHRemote.connections_opened
    remote = connect(vm.endpoint, timeout=30)
    try:
        assert remote.run("id -un").stdout.strip() == vm.machine.user
        assert remote.home == f"/home/{vm.machine.user}"
        remote.write_text("~/x.txt", "x")
        assert remote.read_text("~/x.txt") == "x"
        assert remote.run("cat x.txt").stdout == "x"
    finally:
        remote.close()
    assert SSHRemote.connections_opened - before == 1


def test_a_different_host_key_is_refused_before_anything_is_sent(tmp_path):
    machine = new_machine(tmp_path, free_port())
    with FakeVMs(present_host_key=new_ed25519_key().private_openssh) as vms:
        vms.boot(machine.spec)
        sshd = vms.sshd(machine.spec.vm_id)
        sshd_pid = sshd.pid
        waits = []
        with pytest.raises(HostKeyMismatch, match="may not be the machine we created") as caught:
            connect(machine.endpoint, timeout=30, on_wait=waits.append)
        assert waits == []  # not retried
        assert "Accepted publickey" not in sshd.log()  # we never even authenticated
        assert "PRIVATE KEY" not in str(caught.value)
    assert leftovers(machine.user, sshd_pid) == []


def test_a_refused_client_key_fails_at_once(vm, tmp_path):
    other_key = new_ed25519_key().write_private(tmp_path / "other_key")
    endpoint = Endpoint(vm.endpoint.host, vm.endpoint.port, vm.endpoint.user, other_key, vm.endpoint.host_key)
    waits = []
    with pytest.raises(AuthenticationFailed, match=vm.machine.user):
        connect(endpoint, timeout=30, on_wait=waits.append)
    assert waits == []


def test_connect_waits_until_the_vm_boots(tmp_path):
    machine = new_machine(tmp_path, free_port())
    vms = FakeVMs()
    booter = threading.Timer(1.5, vms.boot, args=(machine.spec,))
    booter.start()
    waits = []
    try:
        remote = connect(machine.endpoint, timeout=60, on_wait=waits.append)
        assert remote.run("id -un").stdout.strip() == machine.user
        remote.close()
    finally:
        booter.join()
        sshd_pid = vms.sshd(machine.spec.vm_id).pid if vms.running() else None
        vms.close()
    assert waits and "retrying" in waits[0]
    assert leftovers(machine.user, sshd_pid) == []


def test_connect_gives_up_after_its_timeout(tmp_path):
    machine = new_machine(tmp_path, free_port())  # nothing ever listens there
    waits = []
    with pytest.raises(ConnectTimeout, match=r"did not answer in 1\.5 s .*last error") as caught:
        connect(machine.endpoint, timeout=1.5, on_wait=waits.append)
    assert "refused" in str(caught.value).lower()
    assert len(waits) >= 2


def test_run_passes_stdin_and_reports_failures(remote: Remote):
    assert remote.run("cat", stdin="line one\nline two\n").stdout == "line one\nline two\n"
    result = remote.run("echo out; echo first >&2; echo last words >&2; exit 3", check=False)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "first\nlast words\n")
    with pytest.raises(CommandFailed) as caught:
        remote.run("echo nope >&2; exit 4", step="installing things")
    assert str(caught.value) == "installing things failed on the machine (exit code 4): nope"
    assert caught.value.result.exit_code == 4


def test_run_honours_its_timeout(remote: Remote):
    with pytest.raises(CommandTimedOut, match="within 0.5 s"):
        remote.run("sleep 5", timeout=0.5, step="sleeping")


def test_files_round_trip_with_inert_quoting(remote: Remote, tmp_path: Path):
    path = f"~/{NASTY}/notes.txt"
    remote.write_text(path, "secret\n")
    assert remote.read_text(path) == "secret\n"
    absolute = expand(remote, path)
    assert absolute.startswith(remote.home + "/dir with spaces/")
    assert remote.run(f"stat -c %a {shlex.quote(absolute)}").stdout.strip() == "600"
    assert remote.run(f"cat {shlex.quote(absolute)}").stdout == "secret\n"

    local = tmp_path / "local.bin"
    local.write_bytes(bytes(range(256)) * 100)
    remote.put(local, f"~/{NASTY}/deeper/copy.bin")
    back = tmp_path / "back" / "copy.bin"
    remote.get(f"~/{NASTY}/deeper/copy.bin", back)
    assert back.read_bytes() == local.read_bytes()

    found = remote.run("find . -name 'pwned*'").stdout
    assert found == ""


def test_write_text_replaces_and_keeps_the_mode(remote: Remote):
    remote.write_text("~/a/b/conf.json", "one", mode=0o644)
    remote.write_text("~/a/b/conf.json", "two", mode=0o600)
    assert remote.read_text("~/a/b/conf.json") == "two"
    assert remote.run("stat -c %a a/b/conf.json; ls a/b").stdout.split() == ["600", "conf.json"]


def _serve_http(remote: Remote, python: str) -> tuple[int, int]:
    """A small HTTP server on the machine's loopback: (pid, port)."""
    remote.write_text("~/www/hello.txt", "hello from the machine\n", mode=0o644)
    free = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
    py = shlex.quote(python)
    pid, port = map(
        int,
        remote.run(
            f"cd www || exit 1; port=$({py} -c {shlex.quote(free)}); "
            f"setsid {py} -m http.server --bind 127.0.0.1 $port </dev/null >/dev/null 2>&1 & echo $! $port"
        ).stdout.split(),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            remote.http_get(port, "/hello.txt")
            return pid, port
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "the test HTTP server did not start"
            time.sleep(0.1)


def test_http_get_and_forward_reach_the_machines_loopback(remote: Remote, env_python: str):
    pid, port = _serve_http(remote, env_python)
    try:
        assert remote.http_get(port, "/hello.txt") == (200, b"hello from the machine\n")
        assert remote.http_get(port, "/missing")[0] == 404
        with pytest.raises(ConnectionRefusedError):
            remote.http_get(free_port(), "/")

        with remote.forward(port) as forward:
            url = f"http://127.0.0.1:{forward.local_port}/hello.txt"

            def fetch(_):
                with urllib.request.urlopen(url, timeout=10) as response:
                    return response.read()

            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(fetch, range(16))) == {b"hello from the machine\n"}
        if isinstance(remote, SSHRemote):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", forward.local_port), timeout=5)
        else:
            assert forward.local_port == port
    finally:
        remote.run(f"kill {pid}")


@pytest.mark.parametrize("drop", ["server kills the session", "client transport closes"])
def test_a_dropped_connection_is_reopened_once(vm, ssh_remote: SSHRemote, drop: str):
    before = SSHRemote.connections_opened
    ssh_remote.write_text("~/before.txt", "1")
    if drop == "server kills the session":
        vm.sshd.drop_sessions()
    else:
        ssh_remote._client.get_transport().close()
    assert ssh_remote.run("cat before.txt").stdout == "1"
    assert ssh_remote.read_text("~/before.txt") == "1"
    assert SSHRemote.connections_opened - before == 1


def _loud_records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith(LOG_CHANNEL) and r.levelno >= logging.WARNING]


def test_refused_tunnels_are_not_logged_as_errors(ssh_remote: SSHRemote, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConnectionRefusedError):
        ssh_remote.http_get(free_port(), "/api/status")  # what wait_ready sees while Jupyter starts
    assert any("open FAILED" in r.getMessage() for r in caplog.records)  # kept, as DEBUG
    assert _loud_records(caplog) == []


def _hang_up_on_everyone(server: socket.socket) -> None:
    try:
        while True:
            server.accept()[0].close()
    except OSError:
        pass  # the test closed the server


def test_retried_banner_errors_are_not_logged_as_errors(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with socket.create_server(("127.0.0.1", 0)) as mute:  # accepts, never speaks SSH
        threading.Thread(target=_hang_up_on_everyone, args=(mute,), daemon=True).start()
        machine = new_machine(tmp_path, mute.getsockname()[1])
        with pytest.raises(ConnectTimeout, match="banner"):
            connect(machine.endpoint, timeout=1)
        mute.shutdown(socket.SHUT_RDWR)  # wakes the accept()
    assert any("banner" in r.getMessage() for r in caplog.records)  # kept, as DEBUG
    assert _loud_records(caplog) == []


def test_a_command_cut_by_a_drop_runs_again_on_a_new_connection(vm, ssh_remote: SSHRemote):
    before = SSHRemote.connections_opened
    runs = Path(ssh_remote.home) / "runs.txt"  # the fake VM's home is on this machine

    def drop_once_it_runs() -> None:
        deadline = time.monotonic() + 30
        while not runs.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        vm.sshd.drop_sessions()

    dropper = threading.Thread(target=drop_once_it_runs)
    dropper.start()
    try:
        result = ssh_remote.run("echo run >> runs.txt; sleep 1; echo finished")
    finally:
        dropper.join()
    assert result.stdout == "finished\n"
    assert ssh_remote.read_text("~/runs.txt") == "run\nrun\n"  # steps must be idempotent
    assert SSHRemote.connections_opened - before == 1
