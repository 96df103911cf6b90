"""`provision up` end to end: real SDK -> fake ARM -> real sshd -> real JupyterLab -> real kernel.

The fake ARM "boots" each VM as a real OpenSSH server on 127.0.0.1 (tests/fakes/vm.py), so
everything after the cloud API is the real thing: SSH with a pinned host key, JupyterLab
started over that connection, the notebook executed by a real kernel, the URL opened in a
real browser.
"""

import json
import pwd
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from provision.state import StateStore
from tests.conftest import console
from tests.fakes.sshd import new_ed25519_key

URL = re.compile(r"http://127\.0\.0\.1:(\d+)/lab/tree/first_pytorch_classifier\.ipynb\?token=([\w-]+)")
NOTEBOOK = "first_pytorch_classifier.ipynb"
NEWS_QUESTION = "Would you like to get notified about official Jupyter news?"  # JupyterLab's, on a first start
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def http(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def listing(port: int, path: str, token: str) -> list[str]:
    status, body = http(port, f"/api/contents/{path}", token)
    assert status == 200, body
    return [item["name"] for item in json.loads(body)["content"]]


def home_of(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir)


def jupyter_pids(user: str) -> list[int]:
    ps = subprocess.run(["ps", "-ww", "-u", user, "-o", "pid=,args="], capture_output=True, text=True)
    return [int(line.split()[0]) for line in ps.stdout.splitlines() if "jupyter" in line or "lab" in line]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def render(url: str, tmp_path: Path, screenshot: str = "jupyterlab.png") -> str:
    """The page as headless Chromium renders it; a screenshot is kept in test-artifacts/."""
    command = [
        shutil.which("chromium") or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1280,800",
        "--virtual-time-budget=20000",
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / screenshot
    shot.unlink(missing_ok=True)
    dom = subprocess.run(
        [*command, f"--screenshot={shot}", "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    )
    assert shot.stat().st_size > 0, dom.stderr  # one load of the page: its screenshot and its DOM
    return dom.stdout


@pytest.mark.probes_every_python
def test_up_detach_serves_jupyterlab_then_down_removes_everything(cloud, state_dir, tmp_path):
    up = console("up", "--name", "e2e", "--detach", "--allow-cpu", env=cloud.env, timeout=600)
    assert up.exit_code == 0, up.stderr
    port, token = URL.search(up.stdout).groups()
    port = int(port)

    # The notebook is there, and the proof that it ran: the executed copy under runs/.
    assert NOTEBOOK in listing(port, "", token)
    assert any(name.endswith(f"-{NOTEBOOK}") for name in listing(port, "runs", token))
    assert "CPU run accepted (--allow-cpu)" in up.stdout
    assert "/envs/py38_default/bin/python (torch" in up.stderr and "azureml_py38: jupyter_server 1.24.0" in up.stderr
    assert http(port, "/api/contents")[0] == 403
    assert http(port, "/api/contents", "wrong-token")[0] == 403

    # In a real browser the printed URL opens the notebook itself, without JupyterLab's news question.
    dom = render(URL.search(up.stdout).group(0), tmp_path)
    assert "jp-FileBrowser" in dom and NOTEBOOK in dom
    assert "jp-NotebookPanel" in dom and "Train your first deep learning model" in dom
    assert NEWS_QUESTION not in dom
    assert (ARTIFACTS / "jupyterlab.png").stat().st_size > 10_000

    # The token is in no process's argv and no log; only in the printed URL.
    assert token not in subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    logs = [
        home_of(cloud.user) / ".dsvm-kit" / "jupyter.log",
        state_dir / "e2e" / "tunnel.log",
        state_dir / "e2e" / "record.json",
        *(home_of(cloud.user) / "notebooks" / "runs").glob("*.log"),
    ]
    for log in logs:
        assert token not in log.read_text(), log
    assert token not in up.stderr and up.stdout.count(token) == 1

    # Re-running `up` on the live deployment re-creates nothing and reuses the same server.
    record = StateStore(state_dir).require("e2e")
    writes = [r for r in cloud.arm.requests if r.method in ("PUT", "DELETE", "POST")]
    again = console("up", "--name", "e2e", "--detach", "--skip-check", env=cloud.env, timeout=300)
    assert again.exit_code == 0, again.stderr
    assert URL.search(again.stdout).group(2) == token
    assert StateStore(state_dir).require("e2e").jupyter["pid"] == record.jupyter["pid"]
    assert [r for r in cloud.arm.requests if r.method in ("PUT", "DELETE", "POST")] == writes
    assert "reusing the running server" in again.stderr

    # `down` leaves no cloud resource, no sshd, no Jupyter, no tunnel and no record.
    tunnel_port = int(URL.search(again.stdout).group(1))
    down = console("down", "e2e", "--yes", env=cloud.env)
    assert down.exit_code == 0, down.stderr
    assert cloud.arm.inventory() == []
    assert cloud.vms.running() == []
    assert not port_open(tunnel_port)
    assert not (state_dir / "e2e").exists()


def test_host_key_mismatch_stops_before_jupyter_and_keeps_the_record(cloud, state_dir):
    cloud.vms.present_host_key = new_ed25519_key().private_openssh  # an impostor's sshd
    up = console("up", "--name", "mitm", "--detach", "--allow-cpu", env=cloud.env, timeout=300)
    assert up.exit_code == 1
    assert "host key" in up.stderr and "may not be the machine" in up.stderr
    assert "provision down mitm" in up.stderr and "Traceback" not in up.stderr
    assert jupyter_pids(cloud.user) == []
    assert StateStore(state_dir).require("mitm").phase == "created"
    # The fake VM's sshd listens where the kit's customData told it to (FakeVMs is given no port).
    (vm_id,) = cloud.vms.running()
    assert cloud.vms.sshd(vm_id).port == int(cloud.env["PROVISION_SSH_PORT"]) != 22
    assert console("down", "mitm", "--yes", env=cloud.env).exit_code == 0
    assert cloud.arm.inventory() == []


@pytest.mark.probes_every_python
def test_a_machine_without_a_gpu_stops_before_jupyter_and_keeps_the_deployment(cloud, state_dir):
    up = console("up", "--name", "nogpu", "--detach", env=cloud.env, timeout=600)
    assert up.exit_code == 1
    error = up.stderr.strip().splitlines()[-1]
    assert error.startswith("error: no Python on the machine can run the notebook")
    assert "py38_default: torch 2" in error and "is a CPU-only build" in error and "install a CUDA build" in error
    assert "--allow-cpu" in error and "nvidia-smi" not in error  # a CPU build: no question about the driver
    assert "provision down nogpu" in error
    record = StateStore(state_dir).require("nogpu")
    assert record.jupyter is None and record.phase == "created"
    assert jupyter_pids(cloud.user) == []
    assert len(cloud.arm.inventory()) == 8  # with idle stop's identity
    assert console("down", "nogpu", "--yes", env=cloud.env).exit_code == 0
    assert cloud.arm.inventory() == []
