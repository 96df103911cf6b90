"""ARM requests and wall time of `provision up --no-bootstrap` against the fake ARM, with idle stop on (the default).

First the requests one `up` makes (and how many are polls), every operation done at once. Then the wall time with
the latency profile of bench/time_to_url.py (resource group at once, VNet 4 s, security group and public IP 3 s, NIC
2 s, VM 45 s) and the Retry-After values and role read lag of Azure's recordings, all multiplied by --scale, next to
the critical path: the resource group, the slowest of VNet/NSG/public IP (made at once), the NIC, then the VM. The
kit's own settings are its defaults (PROVISION_POLL_INTERVAL 5 s).

    python bench/arm_requests.py [--scale 1]      (about a minute at scale 1)
"""

import argparse
import contextlib
import io
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.time_to_url import PROFILE, arm_chain, clock
from provision.cli import run
from tests.fakes.arm import FakeARM, RecordingBooter, user_token


def up_once(holds: dict[str, float], time_scale: float, nodes: int = 1) -> tuple[float, list]:
    """One `up --no-bootstrap` of `nodes` VMs against a fresh fake ARM, each kind's operations held as `holds` says
    and Azure's waits at `time_scale`: its wall time and the requests it made."""
    with FakeARM(booter=RecordingBooter(), time_scale=time_scale) as arm, tempfile.TemporaryDirectory() as state:
        os.environ.update(
            PROVISION_ARM_ENDPOINT=arm.url,
            PROVISION_ARM_CA_BUNDLE=arm.ca_bundle,
            PROVISION_ARM_TOKEN=user_token(),
            AZURE_SUBSCRIPTION_ID=arm.subscription_id,
            PROVISION_ALLOW_IP="127.0.0.1/32",
            PROVISION_STATE_DIR=state,
            PROVISION_YES="1",
        )
        for kind, seconds in holds.items():
            arm.hold(kind, seconds)
        stop = threading.Event()
        threading.Thread(target=clock, args=(arm, stop), daemon=True).start()
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = run(["up", "--name", "bench", "--no-bootstrap", "--quiet", "--nodes", str(nodes)])
        elapsed = time.perf_counter() - started
        stop.set()
        assert code == 0, f"up failed with exit code {code}"
        return elapsed, arm.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the profile and Azure's waits")
    scale = parser.parse_args().scale

    up_once({}, 0)  # warm up: SDK imports and TLS
    _, requests = up_once({}, 0)
    kinds = Counter("poll" if r.is_poll else r.method for r in requests)
    print(
        f"requests per `up --no-bootstrap`: {len(requests)} "
        f"({kinds['poll']} polls, {kinds['PUT']} PUTs, {kinds['GET']} other GETs)"
    )

    elapsed, requests = up_once({kind: seconds * scale for kind, seconds in PROFILE.items()}, scale)
    polls = sum(r.is_poll for r in requests)
    critical = arm_chain(scale)
    print(
        f"profile x{scale:g} with Azure's recorded Retry-After and read lag: {len(requests)} requests ({polls} polls)"
    )
    print(
        f"wall time {elapsed:.2f} s, critical path {critical:.2f} s, ratio {elapsed / critical:.3f}, "
        f"overhead {elapsed - critical:.2f} s"
    )


if __name__ == "__main__":
    main()
