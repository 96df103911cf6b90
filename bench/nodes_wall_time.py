"""Wall time of `provision up --no-bootstrap --nodes N` against the fake ARM, every create held HOLD s, next to
--nodes 1 (the goal: within 1.2x: the nodes are created at the same time).

    python bench/nodes_wall_time.py [--nodes 4] [--hold 0.5] [--repeat 3]
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.arm_requests import up_once
from bench.time_to_url import PROFILE
from tests.fakes.arm import FAST


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--hold", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    holds = dict.fromkeys(PROFILE, args.hold)
    up_once({}, FAST)  # warm up: SDK imports and TLS, which would otherwise land on the first figure
    one = statistics.median(up_once(holds, FAST)[0] for _ in range(args.repeat))
    many = statistics.median(up_once(holds, FAST, args.nodes)[0] for _ in range(args.repeat))
    print(
        f"up --no-bootstrap, creates held {args.hold} s: --nodes 1 {one:.2f} s, --nodes {args.nodes} {many:.2f} s "
        f"({many / one:.2f}x)"
    )


if __name__ == "__main__":
    main()
