"""Seconds from "SSH answers" to "Jupyter answers with the token", by step, on a fake VM.

Boots a fake VM (a real sshd on 127.0.0.1, a fresh user: run as root), then does
what `provision up` does on the machine side, over one SSHRemote:
connect, detect python (+ check jupyterlab), push, start, ready; then runs a tiny
notebook headless. Prints each round and the median, and the SSH connections opened.

    /work/main/.venv/bin/python bench/bootstrap_timing.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrap import jupyter, notebooks, pychoice
from bootstrap.remote import SSHRemote, connect
from tests.fakes import processes
from tests.fakes.notebook import write_notebook
from tests.fakes.sshd import free_port
from tests.fakes.vm import FakeVMs, new_machine

STEPS = ["connect", "choose python", "push", "start", "ready"]


def one_round(workdir: Path) -> tuple[dict[str, float], float, int]:
    machine = new_machine(workdir, free_port())
    notebook_dir = workdir / "notebooks"
    write_notebook(notebook_dir / "demo.ipynb")
    times: dict[str, float] = {}
    with FakeVMs() as vms:
        vms.boot(machine.spec)
        before = SSHRemote.connections_opened
        token = secrets.token_urlsafe(32)

        def step(name, call):
            started = time.perf_counter()
            value = call()
            times[name] = time.perf_counter() - started
            return value

        remote = step("connect", lambda: connect(machine.endpoint, timeout=30))
        python = step("choose python", lambda: pychoice.choose(remote, allow_cpu=True)).python
        step("push", lambda: notebooks.push(remote, notebook_dir))
        server = step("start", lambda: jupyter.start(remote, python, token))
        step("ready", lambda: jupyter.wait_ready(remote, server, token))
        started = time.perf_counter()
        run = notebooks.execute(remote, python, "demo.ipynb", parameters={}, timeout=300)
        notebook_seconds = time.perf_counter() - started
        assert run.error is None, run.error
        connections = SSHRemote.connections_opened - before
        jupyter.stop(remote)
        remote.close()
    processes.reap_orphans()
    return times, notebook_seconds, connections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    processes.become_subreaper()
    results = []
    for i in range(rounds):
        with tempfile.TemporaryDirectory() as workdir:
            times, notebook_seconds, connections = one_round(Path(workdir))
        results.append(times)
        cells = "  ".join(f"{name} {times[name]:.3f}" for name in STEPS)
        print(
            f"round {i + 1}: {cells}  | total {sum(times.values()):.3f} s"
            f"  | notebook run {notebook_seconds:.2f} s  | SSH connections {connections}"
        )
    medians = {name: statistics.median(r[name] for r in results) for name in STEPS}
    print(
        "median:  "
        + "  ".join(f"{name} {medians[name]:.3f}" for name in STEPS)
        + f"  | total {statistics.median(sum(r.values()) for r in results):.3f} s"
    )


if __name__ == "__main__":
    main()
