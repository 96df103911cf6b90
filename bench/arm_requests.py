"""ARM requests and wall time of `provision up --no-bootstrap` against the fake ARM.

Prints how many requests one `up` makes (and how many are polls), then the wall time with
every create held InProgress HOLD seconds next to the critical path: the resource group, the
slowest of VNet/NSG/public IP (created concurrently), the NIC, then the VM.

    python bench/arm_requests.py [--hold 0.5] [--poll 0.05]
"""

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provision.cli import run
from tests.fakes.arm import FakeARM, RecordingBooter, user_token

HELD = [
    "Microsoft.Network/virtualNetworks",
    "Microsoft.Network/networkSecurityGroups",
    "Microsoft.Network/publicIPAddresses",
    "Microsoft.Network/networkInterfaces",
    "Microsoft.Compute/virtualMachines",
]


def up_once(hold: float, poll: float, nodes: int = 1) -> tuple[float, list]:
    """One `up --no-bootstrap` of `nodes` VMs against a fresh fake ARM: its wall time and the requests it made."""
    with FakeARM(booter=RecordingBooter()) as arm, tempfile.TemporaryDirectory() as state:
        os.environ.update(
            PROVISION_ARM_ENDPOINT=arm.url,
            PROVISION_ARM_CA_BUNDLE=arm.ca_bundle,
            PROVISION_ARM_TOKEN=user_token(),
            AZURE_SUBSCRIPTION_ID=arm.subscription_id,
            PROVISION_ALLOW_IP="127.0.0.1/32",
            PROVISION_POLL_INTERVAL=str(poll),
            PROVISION_STATE_DIR=state,
            PROVISION_YES="1",
        )
        for kind in HELD:
            arm.hold(kind, hold)
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = run(["up", "--name", "bench", "--no-bootstrap", "--quiet", "--nodes", str(nodes)])
        elapsed = time.perf_counter() - started
        assert code == 0, f"up failed with exit code {code}"
        return elapsed, arm.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hold", type=float, default=0.5)
    parser.add_argument("--poll", type=float, default=0.05, help="SDK polling interval (s)")
    args = parser.parse_args()

    up_once(0, args.poll)  # warm up: SDK imports and TLS
    _, requests = up_once(0, args.poll)
    kinds = Counter("poll" if r.is_poll else r.method for r in requests)
    print(
        f"requests per `up --no-bootstrap`: {len(requests)} "
        f"({kinds['poll']} polls, {kinds['PUT']} PUTs, {kinds['GET']} other GETs)"
    )

    elapsed, requests = up_once(args.hold, args.poll)
    polls = sum(r.is_poll for r in requests)
    critical = 3 * args.hold  # RG (synchronous) + network in parallel + NIC + VM
    print(f"with each create held {args.hold} s: {len(requests)} requests ({polls} polls)")
    print(f"wall time {elapsed:.2f} s, critical path {critical:.2f} s, ratio {elapsed / critical:.2f}")


if __name__ == "__main__":
    main()
