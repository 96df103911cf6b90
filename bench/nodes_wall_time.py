"""Wall time of `provision up --no-bootstrap --nodes N` against the fake ARM, every create held HOLD s, next to
--nodes 1 (the goal: within 1.2x: the nodes are created at the same time).

    python bench/nodes_wall_time.py [--nodes 4] [--hold 0.5] [--repeat 3]
"""

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.arm_requests import HELD
from provision.cli import run
from tests.fakes.arm import FakeARM, RecordingBooter, user_token


def up_once(nodes: int, hold: float) -> float:
    with FakeARM(booter=RecordingBooter()) as arm, tempfile.TemporaryDirectory() as state:
        os.environ.update(
            PROVISION_ARM_ENDPOINT=arm.url,
            PROVISION_ARM_CA_BUNDLE=arm.ca_bundle,
            PROVISION_ARM_TOKEN=user_token(),
            AZURE_SUBSCRIPTION_ID=arm.subscription_id,
            PROVISION_ALLOW_IP="127.0.0.1/32",
            PROVISION_POLL_INTERVAL="0.05",
            PROVISION_STATE_DIR=state,
            PROVISION_YES="1",
        )
        for kind in HELD:
            arm.hold(kind, hold)
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = run(["up", "--name", "bench", "--no-bootstrap", "--quiet", "--nodes", str(nodes)])
        assert code == 0, f"up failed with exit code {code}"
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--hold", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    one = statistics.median(up_once(1, args.hold) for _ in range(args.repeat))
    many = statistics.median(up_once(args.nodes, args.hold) for _ in range(args.repeat))
    print(
        f"up --no-bootstrap, creates held {args.hold} s: --nodes 1 {one:.2f} s, --nodes {args.nodes} {many:.2f} s "
        f"({many / one:.2f}x)"
    )


if __name__ == "__main__":
    main()
