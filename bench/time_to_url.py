"""Time to URL: the whole `provision up`, through the console script, against a fake Azure at real time.

The fake ARM answers with a latency profile like Azure's (resource group at once, VNet 4 s,
security group and public IP 3 s, NIC 2 s, VM 45 s) and the Retry-After values Azure's recordings
show (tests/fakes/arm/pacing.py), both multiplied by --scale; the operations finish on time whether
or not anyone polls (a clock settles them), and the VM's sshd answers SSHD s after its creation
succeeds. The training notebook is a stand-in that runs CHECK s. The kit runs with its default
settings: only what points it at the fakes (endpoint, token, CA, subscription, allowed IP, a
free SSH port, a fresh admin user, a state directory), PROVISION_YES=1 for the price question,
and --allow-cpu (the fake VM has no GPU).

Printed: each step as the kit reports it, the time to URL next to the critical path (ARM chain +
boot + the longer of Jupyter's start and the check, which run at once, both as the kit measured
them), the ratio and the overhead in seconds, the ARM requests and polls; then a re-run's time to
URL on the deployment that is now ready.

    python bench/time_to_url.py [--scale 0.1]     (run as root: fake VMs are Unix users)
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes import processes  # noqa: E402
from tests.fakes.arm import FakeARM, user_token  # noqa: E402
from tests.fakes.notebook import write_training_stand_in  # noqa: E402
from tests.fakes.sshd import free_port  # noqa: E402
from tests.fakes.vm import FakeVMs  # noqa: E402

# Seconds each create stays InProgress, as on Azure (a resource group's create is synchronous).
PROFILE = {
    "Microsoft.Network/virtualNetworks": 4.0,
    "Microsoft.Network/networkSecurityGroups": 3.0,
    "Microsoft.Network/publicIPAddresses": 3.0,
    "Microsoft.Network/networkInterfaces": 2.0,
    "Microsoft.Compute/virtualMachines": 45.0,
}
SSHD = 5.0  # seconds from the VM's creation succeeding to its sshd answering
CHECK = 15.0  # seconds the notebook stand-in "trains"
URL = re.compile(r"http://127\.0\.0\.1:\d+/lab\S*")
STEP = re.compile(r"^✓ (?P<label>.*) \((?P<seconds>[\d.]+) s\)$")


def arm_chain(scale: float) -> float:
    """Resource group (at once), the slowest of VNet, NSG and public IP (made together), NIC, VM."""
    network = max(
        PROFILE[f"Microsoft.Network/{k}"] for k in ("virtualNetworks", "networkSecurityGroups", "publicIPAddresses")
    )
    return scale * (
        network + PROFILE["Microsoft.Network/networkInterfaces"] + PROFILE["Microsoft.Compute/virtualMachines"]
    )


def installed_kit(workdir: Path, check_seconds: float) -> Path:
    """The kit laid out as its wheel installs it, the training notebook bundled being the stand-in."""
    root = workdir / "site"
    for package in ("provision", "bootstrap"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    write_training_stand_in(root / "bootstrap" / "bundled_notebooks" / "first_pytorch_classifier.ipynb", check_seconds)
    return root


def clock(arm: FakeARM, stop: threading.Event) -> None:
    """Azure finishes an operation when it is done, not when someone asks: settle the fake often."""
    while not stop.wait(0.05):
        arm.inventory()


class Run:
    """One `provision up` in a new process: the seconds to its URL, and its steps as they ended."""

    def __init__(self, env: dict[str, str], *argv: str):
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "provision"), *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.steps: list[tuple[float, float, str]] = []  # (ended at, seconds, label)
        self.stderr: list[str] = []
        self.url_at: float | None = None
        self._url = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            if URL.search(line) and self.url_at is None:
                self.url_at = time.monotonic() - self.started
                self._url.set()
        self._url.set()

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)
            match = STEP.match(line.strip())
            if match:
                self.steps.append((time.monotonic() - self.started, float(match["seconds"]), match["label"]))

    def wait_for_url(self, limit: float) -> float:
        """Seconds to the URL; then Ctrl-C closes the tunnel `up` holds (the VM keeps running)."""
        self._url.wait(limit)
        if self.url_at is None:
            self.process.kill()
            self.process.wait()
            raise SystemExit("up printed no URL:\n" + "".join(self.stderr[-30:]))
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            print(f"(`up` held on {30} s after Ctrl-C; killed)")
            self.process.kill()
            self.process.wait()
        return self.url_at

    def step(self, prefix: str) -> float:
        return next((seconds for _, seconds, label in self.steps if label.startswith(prefix)), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every latency of the profile")
    scale = parser.parse_args().scale
    processes.become_subreaper()
    with tempfile.TemporaryDirectory() as workdir, FakeVMs() as vms, FakeARM(booter=vms, time_scale=scale) as arm:
        for kind, seconds in PROFILE.items():
            arm.hold(kind, seconds * scale)
        vms.sshd_delay = SSHD * scale
        stop = threading.Event()
        threading.Thread(target=clock, args=(arm, stop), daemon=True).start()
        site = installed_kit(Path(workdir), CHECK * scale)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PROVISION_", "AZURE_"))},
            "PYTHONPATH": str(site),
            "AZURE_CONFIG_DIR": str(Path(workdir) / "no-azure-cli"),
            "PROVISION_ARM_ENDPOINT": arm.url,
            "PROVISION_ARM_CA_BUNDLE": arm.ca_bundle,
            "PROVISION_ARM_TOKEN": user_token(),
            "AZURE_SUBSCRIPTION_ID": arm.subscription_id,
            "PROVISION_ALLOW_IP": "127.0.0.1/32",
            "PROVISION_SSH_PORT": str(free_port()),
            "PROVISION_ADMIN_USER": "dsvm" + secrets.token_hex(4),
            "PROVISION_STATE_DIR": str(Path(workdir) / "state"),
            "PROVISION_PRICES_ENDPOINT": "http://127.0.0.1:9/api/retail/prices",  # the shipped price table
            "PROVISION_YES": "1",
        }
        try:
            first = Run(env, "up", "--name", "bench", "--allow-cpu")
            wall = first.wait_for_url(600 * max(scale, 0.2))
            requests = arm.requests
            again = Run(env, "up", "--name", "bench", "--allow-cpu")
            rerun = again.wait_for_url(300)
            rerun_requests = len(arm.requests) - len(requests)
        finally:
            subprocess.run(
                [str(Path(sys.executable).parent / "provision"), "down", "bench", "--yes", "--discard"],
                env=env,
                capture_output=True,
                timeout=300,
            )
            stop.set()
    report(first, wall, requests, scale)
    print(f"re-run on the ready deployment: URL after {rerun:.1f} s ({rerun_requests} ARM requests)")
    for _, seconds, label in again.steps:
        print(f"  {seconds:6.1f} s  {label}")


def report(run: Run, wall: float, requests: list, scale: float) -> None:
    print(
        f"profile scale {scale:g}: VM {PROFILE['Microsoft.Compute/virtualMachines'] * scale:g} s, sshd "
        f"{SSHD * scale:g} s after it, notebook {CHECK * scale:g} s"
    )
    for ended, seconds, label in run.steps:
        print(f"  {ended:7.1f} s  {seconds:6.1f} s  {label}")
    jupyter, check = run.step("Starting JupyterLab"), run.step("Running ")
    chain, boot = arm_chain(scale), SSHD * scale
    critical = chain + boot + max(jupyter, check)
    polls = sum(r.is_poll for r in requests)
    print(
        f"time to URL {wall:.1f} s; critical path {critical:.1f} s (ARM chain {chain:.1f} + boot {boot:.1f} + the "
        f"longer of Jupyter start {jupyter:.1f} and check {check:.1f}); ratio {wall / critical:.3f}, "
        f"overhead {wall - critical:.1f} s"
    )
    print(f"ARM requests {len(requests)}, of which polls {polls}")


if __name__ == "__main__":
    main()
