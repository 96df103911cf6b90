"""bootstrap.jupyter: installs, and a real JupyterLab over SSH and locally."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from bootstrap import jupyter, notebooks
from bootstrap.pyenv import ensure_packages
from bootstrap.remote import BootstrapError, LocalRemote, Remote, SSHRemote, connect
from tests.fakes import processes

pytest_plugins = ["tests.fakes.fixtures"]


# -------------------------------------------------------------------- installs


def _tiny_wheel(directory: Path) -> Path:
    wheel = directory / "dsvm_tiny-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("dsvm_tiny/__init__.py", "VALUE = 42\n")
        z.writestr("dsvm_tiny-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: dsvm-tiny\nVersion: 0.1\n")
        z.writestr(
            "dsvm_tiny-0.1.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr("dsvm_tiny-0.1.dist-info/RECORD", "")
    return wheel


def test_ensure_packages_installs_only_what_is_missing(tmp_path):
    env = tmp_path / "env"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", "--system-site-packages", str(env)], check=True)
    remote = LocalRemote(str(tmp_path))
    python = str(env / "bin" / "python")
    wheel = _tiny_wheel(tmp_path)
    assert ensure_packages(remote, python, {"dsvm_tiny": str(wheel), "json": "json"}) == [str(wheel)]
    assert remote.run(f"{python} -c 'import dsvm_tiny; print(dsvm_tiny.VALUE)'").stdout == "42\n"
    assert ensure_packages(remote, python, {"dsvm_tiny": str(wheel)}) == []


# ------------------------------------------------------------------ the server


def _get(url: str, token: str | None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _start_kernel(base_url: str, token: str) -> int:
    """Start a kernel through the API; returns nothing useful but makes Jupyter spawn one."""
    request = urllib.request.Request(
        f"{base_url}/api/kernels",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


def _cmdline(pid: int) -> str:
    """A process's command line; empty once it has ended (a short-lived child may go between listing and reading)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except FileNotFoundError:
        return ""


def _fresh(remote: Remote, request) -> Remote:
    """A new connection to the same machine."""
    if isinstance(remote, SSHRemote):
        return connect(request.getfixturevalue("vm").endpoint, timeout=30)
    return LocalRemote(remote.home)


def test_jupyter_lifecycle(remote: Remote, env_python: str, notebook_dir: Path, request):
    notebooks.push(remote, notebook_dir)
    token = secrets.token_urlsafe(32)
    server = jupyter.start(remote, env_python, token)
    try:
        jupyter.wait_ready(remote, server, token)
        assert server.root == f"{remote.home}/notebooks"
        assert jupyter.token_works(remote, server, token)
        assert not jupyter.token_works(remote, server, "not-" + token)

        assert token not in remote.run("ps -eo args").stdout
        assert token not in remote.read_text(jupyter.LOG_FILE)
        assert token not in remote.read_text(jupyter.STATE_FILE)
        assert remote.run("stat -c %a .dsvm-kit/jupyter.json").stdout.strip() == "600"

        fresh = _fresh(remote, request)
        try:
            assert jupyter.find_running(fresh) == server
        finally:
            fresh.close()

        with remote.forward(server.port) as forward:
            base = f"http://127.0.0.1:{forward.local_port}"
            status, body = _get(f"{base}/api/contents", token)
            assert status == 200
            assert "demo.ipynb" in [item["name"] for item in json.loads(body)["content"]]
            assert _get(f"{base}/api/contents", None)[0] == 403
            assert _start_kernel(base, token) == 201

        # the kernel runs the chosen python and did not inherit the token (same machine: /proc)
        kernels = [pid for pid in processes.descendants(server.pid) if "ipykernel_launcher" in _cmdline(pid)]
        assert len(kernels) == 1
        argv = Path(f"/proc/{kernels[0]}/cmdline").read_text().split("\0")
        assert argv[0] == env_python
        assert b"JUPYTER_TOKEN" not in Path(f"/proc/{kernels[0]}/environ").read_bytes()

        assert jupyter.stop(remote) is True
        assert jupyter.find_running(remote) is None
        for pid in (server.pid, kernels[0]):
            assert processes.state(pid) in (None, "Z")
        assert jupyter.stop(remote) is False
    finally:
        jupyter.stop(remote)


def test_wait_ready_reports_why_the_server_died(remote: Remote, env_python: str):
    # Bound, not listening: Jupyter's bind fails as for any holder of the port, and the wait's HTTP probes are
    # refused at once instead of hanging in a backlog nobody accepts from.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        token = secrets.token_urlsafe(32)
        server = jupyter.start(remote, env_python, token, port=taken.getsockname()[1])
        with pytest.raises(BootstrapError, match="exited while starting: .*already in use") as caught:
            jupyter.wait_ready(remote, server, token, timeout=60)
    assert token not in str(caught.value)
    assert jupyter.find_running(remote) is None
