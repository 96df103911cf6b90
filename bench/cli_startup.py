"""`provision --help` start-up time next to importing the Azure SDK, in the same run.

python bench/cli_startup.py [--runs 10]
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROVISION = str(Path(sys.executable).with_name("provision"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "provision --help": [PROVISION, "--help"],
    "import azure.mgmt.compute, azure.mgmt.network": [
        sys.executable,
        "-c",
        "import azure.mgmt.compute, azure.mgmt.network",
    ],
    "import paramiko": [sys.executable, "-c", "import paramiko"],
}


def median_seconds(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    for label, argv in COMMANDS.items():
        print(f"{median_seconds(argv, args.runs):6.3f} s  {label}  (median of {args.runs})")
    leaked = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from provision.cli import app; "
            "print(sorted(m for m in sys.modules if m.startswith(('azure', 'paramiko'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"SDK modules imported by the CLI module: {leaked}")


if __name__ == "__main__":
    main()
