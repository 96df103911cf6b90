"""The Python environment on the machine: install what is missing, pin the kernel to it."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

from bootstrap.remote import Remote, expand

KERNEL_DATA_DIR = "~/.dsvm-kit/jupyter"  # first on JUPYTER_PATH for the Jupyter commands we run
_PIP_TIMEOUT = 1800.0

# find_spec, not import: importing jupyterlab and ipykernel takes seconds, finding them milliseconds.
_MISSING = """\
import importlib.util, sys
pairs = [pair.split("=", 1) for pair in sys.argv[1:]]
print(" ".join(req for module, req in pairs if importlib.util.find_spec(module) is None))
"""
_SITE_WRITABLE = "import os, sys, sysconfig; sys.exit(not os.access(sysconfig.get_path('purelib'), os.W_OK))"


def ensure_packages(remote: Remote, python: str, requirements: dict[str, str]) -> list[str]:
    """pip-install the requirements whose module is not found ({module: requirement}).

    Installs into the env, or with --user when the env is not writable. One command;
    returns the requirements it installed (empty when nothing was missing).
    """
    pairs = " ".join(shlex.quote(f"{module}={req}") for module, req in requirements.items())
    py = shlex.quote(expand(remote, python))
    missing = f"missing=$({py} -c {shlex.quote(_MISSING)} {pairs}) || exit 1"
    return _install(remote, python, missing, " and ".join(requirements.values()))


def install(remote: Remote, python: str, requirements: Sequence[str]) -> None:
    """pip-install (or upgrade to) the requirements ("jupyter_server>=2"), as ensure_packages does."""
    _install(remote, python, f"missing={shlex.quote(' '.join(requirements))}", " and ".join(requirements))


def _install(remote: Remote, python: str, missing: str, names: str) -> list[str]:
    """Run `missing` (shell setting $missing), then pip-install $missing; returns what it installed."""
    py = shlex.quote(expand(remote, python))
    script = f"""\
{missing}
[ -n "$missing" ] || exit 0
if {py} -c {shlex.quote(_SITE_WRITABLE)}; then user=; else user=--user; fi
{py} -m pip install --quiet --disable-pip-version-check $user $missing >&2 || exit 1
printf '%s\\n' "$missing"
"""
    result = remote.run(script, timeout=_PIP_TIMEOUT, step=f"installing {names} for {python}")
    return result.stdout.split()


def pin_kernel_script(remote: Remote, python: str) -> str:
    """Shell lines after which the `python3` kernel runs `python`, for the Jupyter commands that follow.

    They write a kernelspec into a data directory of our own and put it first on
    JUPYTER_PATH, ahead of any user or system `python3` kernel that would run another env.
    """
    data_dir = expand(remote, KERNEL_DATA_DIR)
    kernel_dir = shlex.quote(f"{data_dir}/kernels/python3")
    spec = json.dumps(
        {
            "argv": [expand(remote, python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "metadata": {"debugger": True},
        }
    )
    return (
        f"mkdir -p {kernel_dir} || exit 1\n"
        f"printf '%s\\n' {shlex.quote(spec)} > {kernel_dir}/kernel.json || exit 1\n"
        f"export JUPYTER_PATH={shlex.quote(data_dir)}\n"
    )
