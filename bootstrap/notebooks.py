"""Notebooks on the machine: push the changed ones, execute one headless, fetch its result."""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import shlex
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bootstrap.gpucheck import NVIDIA_SMI_QUERY
from bootstrap.pyenv import ensure_packages, pin_kernel_script
from bootstrap.remote import BootstrapError, CommandTimedOut, Remote, expand
from bootstrap.workdir import WORKDIR

TRAINING = "first_pytorch_classifier.ipynb"  # the notebook the GPU check runs, and the one the URL opens
SKIPPED = {".ipynb_checkpoints", "__pycache__", ".pytest_cache", ".git", ".DS_Store"}
_CHANNEL_GRACE = 90.0  # seconds the kit waits beyond the notebook's own limit
RUNS_DIR = "~/.dsvm-kit/runs"  # a directory per run: its pid, and its exit status once it ended
RUNNING = "running"  # what a look at a run that has not ended prints
_POLL = 30.0  # seconds one look at a run waits for it to end
_START_WAIT = 10.0  # seconds a run detached by the start command may take to write its pid

# Runs on the machine after papermill: judge the run, fetch the result, ask nvidia-smi.
_SUMMARY = """\
import json, subprocess, sys
executed, result_path, log, limit, *nvidia_smi_query, rc = *sys.argv[1:-1], int(sys.argv[-1])

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def cell_error():
    for cell in (load(executed) or {}).get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.get('ename')}: {output.get('evalue')}"
    return None

def last_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None

def nvidia_smi():
    try:
        done = subprocess.run(nvidia_smi_query, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None

if rc == -1:
    error = "the run ended without an exit status (killed?): " + (last_line(log) or "no output")
elif rc in (124, 137):
    error = f"timed out after {limit} s"
elif rc:
    error = cell_error() or last_line(log) or f"papermill exited with code {rc}"
else:
    error = None
print(json.dumps({"error": error, "result": load(result_path), "nvidia_smi": nvidia_smi()}))
"""


def _local_files(local_dir: Path) -> dict[str, Path]:
    """{posix relative path: file} under local_dir, without caches and checkpoints."""
    files = {}
    for path in sorted(local_dir.rglob("*")):
        relative = path.relative_to(local_dir)
        if path.is_file() and not SKIPPED & set(relative.parts) and path.suffix != ".pyc":
            files[relative.as_posix()] = path
    return files


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def push(remote: Remote, local_dir: Path, remote_dir: str = WORKDIR) -> list[str]:
    """Copy the files under local_dir that differ on the machine; returns the relative paths pushed."""
    files = _local_files(local_dir)
    if not files:
        return []
    target = expand(remote, remote_dir)
    names = " ".join(shlex.quote(name) for name in files)
    listing = remote.run(
        f"cd {shlex.quote(target)} 2>/dev/null || exit 0; sha256sum -- {names} 2>/dev/null; exit 0",
        step="comparing notebooks",
    ).stdout
    remote_hashes = {}
    for line in listing.splitlines():
        digest, _, name = line.partition("  ")
        remote_hashes[name] = digest
    pushed = [name for name, path in files.items() if remote_hashes.get(name) != _sha256(path)]
    for name in pushed:
        remote.put(files[name], f"{target}/{name}")
    return pushed


@dataclass(frozen=True)
class NotebookRun:
    executed_path: str  # absolute path of the executed copy: <root>/runs/<UTC timestamp>-<name>.ipynb
    result: dict | None  # what the notebook wrote to its `result_path` parameter
    error: str | None  # None on success; else "ename: evalue", "timed out after N s" or papermill's message
    nvidia_smi: str | None  # "name, driver, memory" per GPU; None without a working nvidia-smi
    seconds: float
    installed: tuple[str, ...] = ()  # what had to be pip-installed first (papermill, ipykernel)


def _yaml_safe_json(value) -> str:
    """JSON that PyYAML (papermill's -y) reads back as the same values.

    YAML 1.1 reads 1e-05 as a string: floats get a '.' before their exponent.
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"parameter value {value} cannot be passed to a notebook")
        text = repr(value)
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_yaml_safe_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_safe_json(v) for v in value) + "]"
    return json.dumps(value)


def execute(
    remote: Remote,
    python: str,
    notebook: str,
    *,
    parameters: dict,
    timeout: float,
    root: str = WORKDIR,
    kernel: str = "python3",
) -> NotebookRun:
    """Run `notebook` (relative to root, or absolute) with papermill in `python`'s env, in `kernel` (`python3`
    runs `python` itself; a project's kernel, its environment: see bootstrap.environment).

    The executed copy keeps its outputs, also when a cell fails or time runs out.
    The `result_path` parameter is set to a file under <root>/runs that is fetched.
    The run is detached on the machine (its own session, a run id): a dropped connection
    neither stops it nor starts it twice; the kit reconnects and waits for the same run.
    """
    python, root = expand(remote, python), expand(remote, root)
    installed = tuple(ensure_packages(remote, python, {"papermill": "papermill", "ipykernel": "ipykernel"}))
    source = posixpath.join(root, expand(remote, notebook))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
    runs = posixpath.join(root, "runs")
    stem = posixpath.splitext(posixpath.basename(source))[0]
    executed, log = f"{runs}/{stamp}-{stem}.ipynb", f"{runs}/{stamp}-{stem}.log"
    result_path = f"{runs}/{stamp}-result.json"
    run_dir = f"{expand(remote, RUNS_DIR)}/{stamp}-{stem}"  # the run id: its pid and, once done, its exit status
    limit = max(1, math.ceil(timeout))
    q = shlex.quote
    papermill = f"""\
timeout -k 10 {limit} {q(python)} -m papermill --no-progress-bar -k {q(kernel)} \\
  --cwd {q(posixpath.dirname(source))} -y {q(_yaml_safe_json({**parameters, "result_path": result_path}))} \\
  {q(source)} {q(executed)} >{q(log)} 2>&1
echo $? >{q(run_dir)}/status.partial && mv {q(run_dir)}/status.partial {q(run_dir)}/status
"""
    # The run claims its id (mkdir) and writes its pid once detached (its own session): a second try of this command,
    # or one whose connection was killed before that, starts nothing twice and leaves no claim without a run.
    claim = f"""\
mkdir {q(run_dir)} 2>/dev/null || exit 0
echo $$ >{q(run_dir)}/pid.partial && mv {q(run_dir)}/pid.partial {q(run_dir)}/pid || exit 1
exec sh -c {q(papermill)}
"""
    start = f"""\
mkdir -p {q(runs)} {q(posixpath.dirname(run_dir))} || exit 1
[ ! -e {q(run_dir)} ] || exit 0
{pin_kernel_script(remote, python)}cd {q(root)} || exit 1
setsid sh -c {q(claim)} </dev/null >/dev/null 2>&1 &
"""
    summary = f"{q(python)} -c {q(_SUMMARY)} {q(executed)} {q(result_path)} {q(log)} {limit} {NVIDIA_SMI_QUERY}"
    step = f"running {notebook}"
    started = time.monotonic()
    remote.run(start, step=step)
    deadline = started + limit + _CHANNEL_GRACE
    while (out := remote.run(_wait_script(run_dir, summary), timeout=_POLL + 60, step=step).stdout).strip() == RUNNING:
        if time.monotonic() > deadline:
            raise CommandTimedOut(step, limit + _CHANNEL_GRACE)
    seconds = time.monotonic() - started
    try:
        summary = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BootstrapError(f"running {notebook} gave no summary: {out.strip()[-300:]!r}") from None
    return NotebookRun(executed, summary["result"], summary["error"], summary["nvidia_smi"], seconds, installed)


def _wait_script(run_dir: str, summary: str) -> str:
    """Shell that waits up to _POLL s for the run in run_dir, then prints RUNNING or its summary."""
    d = shlex.quote(run_dir)
    return f"""\
i=0
while [ ! -e {d}/status ] && [ $i -lt {int(_POLL / 0.1)} ]; do
  if [ -e {d}/pid ]; then
    kill -0 "$(cat {d}/pid)" 2>/dev/null || [ -e {d}/status ] || {{ echo -1 >{d}/status; break; }}
  elif [ $i -ge {int(_START_WAIT / 0.1)} ]; then  # never started (its start was killed before it detached)
    mkdir -p {d} && echo -1 >{d}/status; break
  fi
  sleep 0.1; i=$((i + 1))
done
[ -e {d}/status ] || {{ echo {RUNNING}; exit 0; }}
{summary} "$(cat {d}/status)"
"""
