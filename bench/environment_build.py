"""The project environment's cost in `provision up`: a first build, a re-run (same content: nothing to build) and an
edit (a new environment, the old removed), against the fake cloud, through the console script.

The environment is `requirements.txt` holding one small package from the package index (inflection, or --package);
pip runs on the fake VM as it would on a DSVM, over the VM's Python with torch. Printed for each `up`: the
environment step as the kit timed it, and the whole command's wall time; then what a refused torch replacement
prints. --skip-check leaves the notebook out, so the figures are the environment's and the bootstrap's.

    python bench/environment_build.py [--package inflection]     (run as root: fake VMs are Unix users)
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import arm_env  # noqa: E402
from tests.fakes.arm import FakeARM  # noqa: E402
from tests.fakes.sshd import free_port  # noqa: E402
from tests.fakes.vm import FakeVMs  # noqa: E402
from tests.fakes.wheels import wheel  # noqa: E402

STEP = re.compile(r"^✓ Python environment from .* \((?P<seconds>[\d.]+) s\)$", re.M)


def up(project: Path, env: dict[str, str], *argv: str) -> tuple[float, str, subprocess.CompletedProcess]:
    """`provision up` in the project directory: wall time, the environment step's line, the process."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "provision"), "up", "--detach", "--allow-cpu", "--skip-check", *argv],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.perf_counter() - started
    found = STEP.search(done.stderr)
    return wall, found.group(0) if found else "(no environment step)", done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", default="inflection")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, FakeVMs() as vms, FakeARM(booter=vms, loopback_private_ips=True) as arm:
        work_dir = Path(work)
        project = work_dir / "project"
        project.mkdir()
        user = "dsvm" + secrets.token_hex(4)
        env = {
            **os.environ,
            **arm_env(arm, work_dir / "state"),
            "PROVISION_SSH_PORT": str(free_port()),
            "PROVISION_ADMIN_USER": user,
            "PYTHONPATH": str(REPO),
            "AZURE_CONFIG_DIR": str(work_dir / "no-azure-cli"),
        }
        (project / "provision.toml").write_text('name = "bench"\nenvironment = "requirements.txt"\n')
        (project / "requirements.txt").write_text(f"{args.package}\n")
        runs = [("first build", ()), ("re-run, same file", ())]
        for label, extra in runs:
            wall, step, done = up(project, env, *extra)
            assert done.returncode == 0, done.stderr
            print(f"{label:<28} {step}   whole `up`: {wall:.1f} s")
        (project / "requirements.txt").write_text(f"{args.package}\n# edited\n")
        wall, step, done = up(project, env)
        assert done.returncode == 0, done.stderr
        print(f"{'edited file (rebuild)':<28} {step}   whole `up`: {wall:.1f} s")
        wheels = Path(os.path.expanduser(f"~{user}")) / "wheels"
        wheels.mkdir()
        shutil.chown(wheels, user)
        (project / "requirements.txt").write_text(f"{args.package}\ntorch @ file://{wheel(wheels, 'torch', '0.0.1')}\n")
        wall, _, done = up(project, env)
        print(f"refused torch replacement (exit code {done.returncode}, {wall:.1f} s), its last line:")
        print(done.stderr.strip().splitlines()[-1])
        subprocess.run(
            [str(Path(sys.executable).parent / "provision"), "down", "bench", "--yes", "--discard"],
            cwd=project,
            env=env,
            capture_output=True,
            check=True,
        )


if __name__ == "__main__":
    main()
