"""bootstrap.notebooks: push changed files, run a real notebook with papermill and a real kernel."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

import pytest

from bootstrap import datasets, notebooks
from bootstrap.remote import Remote

pytest_plugins = ["tests.fakes.fixtures"]


def test_push_sends_only_changed_files(remote: Remote, notebook_dir: Path):
    local = notebook_dir
    (local / "data dir").mkdir()
    (local / "data dir" / "it's $(here).txt").write_text("v1")
    (local / ".ipynb_checkpoints").mkdir()
    (local / ".ipynb_checkpoints" / "demo-checkpoint.ipynb").write_text("{}")
    (local / "__pycache__").mkdir()
    (local / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")

    assert notebooks.push(remote, local) == ["data dir/it's $(here).txt", "demo.ipynb"]
    assert remote.read_text("~/notebooks/data dir/it's $(here).txt") == "v1"
    assert notebooks.push(remote, local) == []

    (local / "data dir" / "it's $(here).txt").write_text("v2")
    assert notebooks.push(remote, local) == ["data dir/it's $(here).txt"]
    remote.write_text("~/notebooks/demo.ipynb", "changed on the machine")
    assert notebooks.push(remote, local) == ["demo.ipynb"]
    assert remote.run("ls -A notebooks").stdout.splitlines() == ["data dir", "demo.ipynb"]


@pytest.fixture
def pushed(remote: Remote, notebook_dir: Path) -> Remote:
    notebooks.push(remote, notebook_dir)
    # a user-level python3 kernel that runs something else: ours must win
    remote.write_text(
        "~/.local/share/jupyter/kernels/python3/kernel.json",
        json.dumps({"argv": ["/bin/false", "{connection_file}"], "display_name": "decoy", "language": "python"}),
    )
    return remote


def test_execute_returns_the_result_and_keeps_the_executed_copy(pushed: Remote, env_python: str):
    run = notebooks.execute(
        pushed, env_python, "demo.ipynb", parameters={"mode": "ok", "learning_rate": 1e-05}, timeout=300
    )
    assert run.error is None
    assert run.result == {"executable": env_python, "learning_rate": 1e-05, "token_in_env": False}
    assert run.nvidia_smi is None  # no GPU here
    assert run.installed == ()
    assert run.seconds > 0
    assert posixpath.dirname(run.executed_path) == f"{pushed.home}/notebooks/runs"
    assert run.executed_path.endswith("-demo.ipynb")
    executed = json.loads(pushed.read_text(run.executed_path))
    streams = [
        "".join(o["text"]) for cell in executed["cells"] for o in cell.get("outputs", []) if o.get("name") == "stdout"
    ]
    assert streams == ["hello from the kernel\n"]


def test_a_failing_cell_is_reported_and_its_copy_kept(pushed: Remote, env_python: str):
    run = notebooks.execute(pushed, env_python, "demo.ipynb", parameters={"mode": "raise"}, timeout=300)
    assert run.error == "ValueError: boom on purpose"
    assert run.result is None
    errors = [
        o
        for cell in json.loads(pushed.read_text(run.executed_path))["cells"]
        for o in cell.get("outputs", [])
        if o["output_type"] == "error"
    ]
    assert [e["ename"] for e in errors] == ["ValueError"]


def test_a_slow_notebook_hits_the_time_limit(pushed: Remote, env_python: str):
    run = notebooks.execute(pushed, env_python, "demo.ipynb", parameters={"mode": "sleep"}, timeout=2)
    assert run.error == "timed out after 2 s"
    assert run.result is None


def test_a_missing_notebook_is_reported_by_papermill(remote: Remote, env_python: str):
    run = notebooks.execute(remote, env_python, "nowhere.ipynb", parameters={}, timeout=120)
    assert run.error is not None and "nowhere.ipynb" in run.error


def test_execute_fetches_what_nvidia_smi_says(tmp_path: Path, notebook_dir: Path):
    """On a machine with nvidia-smi, its answer to the GPU query comes back with the run."""
    import os
    import sys

    from bootstrap.gpucheck import NVIDIA_SMI_QUERY, parse_nvidia_smi
    from bootstrap.remote import LocalRemote

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    expected_args = " ".join(NVIDIA_SMI_QUERY.split()[1:])
    fake.write_text(f'#!/bin/sh\n[ "$*" = "{expected_args}" ] || exit 9\necho "Tesla T4, 535.161.08, 15360 MiB"\n')
    fake.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    remote = LocalRemote(str(home), env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    notebooks.push(remote, notebook_dir)
    run = notebooks.execute(remote, sys.executable, "demo.ipynb", parameters={"mode": "ok"}, timeout=300)
    assert run.error is None
    assert [gpu.name for gpu in parse_nvidia_smi(run.nvidia_smi)] == ["Tesla T4"]


# Stands in for torchvision (not installed here): its CIFAR10 notes each call in a file under root.
TORCHVISION_STAND_IN = """\
import os
class CIFAR10:
    def __init__(self, root, train, download):
        with open(os.path.join(root, "calls"), "a") as f:
            f.write(f"{train} {download}\\n")
"""


def test_cifar10_is_fetched_in_the_background_where_torchvision_is(remote: Remote, env_python: str):
    assert datasets.fetch_cifar10_in_background(remote, env_python) == f"{env_python} has no torchvision"

    remote.write_text("~/stand-in/torchvision/datasets.py", TORCHVISION_STAND_IN)
    remote.write_text("~/stand-in/torchvision/__init__.py", "from . import datasets\n")
    python = f"{remote.home}/stand-in/python"
    remote.write_text(python, f'#!/bin/sh\nPYTHONPATH={remote.home}/stand-in exec {env_python} "$@"\n', mode=0o700)
    assert datasets.fetch_cifar10_in_background(remote, python, "~/cifar") is None
    wait = "for i in $(seq 100); do [ $(wc -l <cifar/calls) -eq 2 ] 2>/dev/null && break; sleep 0.1; done"
    assert remote.run(f"{wait}; cat cifar/calls").stdout.splitlines() == ["1 True", "0 True"]
