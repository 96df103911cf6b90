"""Data for the user's own runs, fetched on the machine in the background: nothing waits for it."""

from __future__ import annotations

import shlex

from bootstrap.remote import Remote, expand

DATA_DIR = "~/data"  # the notebook's data_dir default
STATE_DIR = "~/.dsvm-kit"
LOG_FILE = f"{STATE_DIR}/cifar10-download.log"
_LOCK = f"{STATE_DIR}/cifar10-download.lock"  # held by the download while it runs: one at a time
_HAS_TORCHVISION = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torchvision') is None)"
_FETCH = "import sys, torchvision; [torchvision.datasets.CIFAR10(sys.argv[1], train=t, download=True) for t in (1, 0)]"


def fetch_cifar10_in_background(remote: Remote, python: str, data_dir: str = DATA_DIR) -> str | None:
    """Start downloading CIFAR-10 into data_dir, detached (its output in LOG_FILE); None once started,
    else why not (no torchvision in `python`'s env). A download already running is left to finish alone."""
    q = shlex.quote
    py, lock, log = q(expand(remote, python)), q(expand(remote, _LOCK)), q(expand(remote, LOG_FILE))
    script = f"""\
{py} -c {q(_HAS_TORCHVISION)} || {{ printf '%s has no torchvision\\n' {py} >&2; exit 1; }}
mkdir -p {q(expand(remote, data_dir))} {q(expand(remote, STATE_DIR))} || exit 1
(setsid flock -n {lock} {py} -c {q(_FETCH)} {q(expand(remote, data_dir))} </dev/null >>{log} 2>&1 &)
"""
    result = remote.run(script, check=False)
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    return None if result.exit_code == 0 else lines[-1] if lines else f"exit code {result.exit_code}"
