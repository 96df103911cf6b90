"""Fault scenarios: how each one ended, what it left behind, and the suite's closing line.

A scenario test calls `Scenario.start(request, kind, name)` first and fills in what `up`
did and what was left once it was cleaned up. The outcome travels in the test report's
user_properties (so pytest-xdist brings it back from the workers), and tests/conftest.py
hands the two hooks below to pytest, which prints:

    N scenarios, N passed, 0 leaked, 0 tracebacks
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.fakes import processes

# The command the kit runs first in each bootstrap step, where a fake VM fires a step's fault
# (tests that use them check that the fault fired, so a change to the commands turns them red).
BOOTSTRAP_STEPS = {
    "SSH connect": 'printf %s "$HOME"',
    "find the Python": "from importlib.metadata import version",
    "push notebooks": "sha256sum --",
    "start Jupyter": "jupyterlab.labapp",
    "wait ready": "ps -o stat= -p",
    "run the notebook": "-m papermill",
}
PROPERTY = "fault_scenario"
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class Scenario:
    """One scenario's outcome, shared with the test report as it is filled in."""

    kind: str  # "arm", "bootstrap" or "signal"
    name: str
    transient: bool = False  # a fault `up` should absorb (the slowdown is measured)
    control: bool = False  # no fault at all: the baseline for the slowdown
    group: str = ""  # transient scenarios are compared with the controls of their kind and group
    exit_code: int | None = None
    seconds: float | None = None  # wall time of `up`
    traceback: bool = False
    leaked: list[str] | None = None  # None until the leak check ran
    _data: dict = field(default_factory=dict, repr=False)

    @classmethod
    def start(
        cls, request, kind: str, name: str, *, transient: bool = False, control: bool = False, group: str = ""
    ) -> Scenario:
        scenario = cls(kind, name, transient, control, group)
        request.node.user_properties.append((PROPERTY, scenario._data))
        scenario._publish()
        return scenario

    def _publish(self) -> None:
        self._data.clear()
        self._data.update({k: v for k, v in asdict(self).items() if not k.startswith("_")})

    def ran(self, exit_code: int, seconds: float, *outputs: str) -> None:
        """What `up` (or any command of the scenario) did; a traceback anywhere counts."""
        self.exit_code = exit_code if self.exit_code is None else self.exit_code
        self.seconds = seconds if self.seconds is None else self.seconds
        self.traceback = self.traceback or any(TRACEBACK in text for text in outputs)
        self._publish()

    def checked(self, leaked: list[str]) -> list[str]:
        self.leaked = list(leaked)
        self._publish()
        return self.leaked


def timed(run, *args):
    """run(*args) and the seconds it took."""
    started = time.monotonic()
    result = run(*args)
    return result, time.monotonic() - started


# -- what a scenario may leave behind ---------------------------------------------------------


def cloud_leftovers(arm, state_dir: Path, name: str) -> list[str]:
    """Resources in the fake ARM, and the deployment's local record."""
    found = [f"resource {resource_id}" for resource_id in arm.inventory()]
    if (state_dir / name).exists():
        found.append(f"record {state_dir / name}: {sorted(p.name for p in (state_dir / name).iterdir())}")
    return found


def vm_leftovers(vms, user: str) -> list[str]:
    """A fake VM's user, any sshd it ever started, Jupyter or a tunnel still running (reaped on the way)."""
    found = [f"VM still running {vm_id}" for vm_id in vms.running()]
    found += [f"sshd {pid}" for pid in vms.sshd_pids if processes.exists(pid) and processes.state(pid) != "Z"]
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,user:32=,args="], capture_output=True, text=True).stdout
    found += [f"process {line.strip()}" for line in ps.splitlines() if user in line.split()[1:2]]
    ours = {pid: processes.command_line(pid) for pid in processes.children(os.getpid())}
    found += [f"running process {pid} ({ours.get(pid, '?')})" for pid in processes.reap_orphans()]
    return found


def one_line_error(stderr: str) -> str | None:
    """The error `up` ended with, if it ended with exactly one one-line error; else None."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    if not lines or not lines[-1].startswith("error: ") or len(errors) != 1:
        return None
    return lines[-1]


# -- the closing line (hooks that tests/conftest.py hands to pytest) --------------------------

_outcomes: dict[str, dict] = {}
_failed: set[str] = set()


def pytest_runtest_logreport(report) -> None:
    outcome = dict(report.user_properties).get(PROPERTY)
    if outcome is None:
        return
    _outcomes[report.nodeid] = outcome
    if report.failed:
        _failed.add(report.nodeid)


def summary(outcomes: dict[str, dict], failed: set[str]) -> list[str]:
    """The closing line, then, by kind, the most time a transient fault added to `up`."""
    leaked = [o for o in outcomes.values() if o["leaked"]]
    unchecked = [o for o in outcomes.values() if o["leaked"] is None]
    line = (
        f"{len(outcomes)} scenarios, {len(set(outcomes) - failed)} passed, {len(leaked)} leaked, "
        f"{sum(o['traceback'] for o in outcomes.values())} tracebacks"
    )
    lines = [line + (f", {len(unchecked)} not checked for leaks" if unchecked else "")]
    for kind in sorted({o["kind"] for o in outcomes.values()}):
        added = []  # (seconds added, scenario, its seconds, the baseline)
        for group in {o["group"] for o in outcomes.values() if o["kind"] == kind}:
            mine = [o for o in outcomes.values() if (o["kind"], o["group"]) == (kind, group) and o["seconds"]]
            controls = [o["seconds"] for o in mine if o["control"]]
            if controls:
                baseline = statistics.median(controls)
                added += [(o["seconds"] - baseline, o["name"], o["seconds"], baseline) for o in mine if o["transient"]]
        if added:
            most, name, seconds, baseline = max(added)
            lines.append(
                f"{kind}: a transient fault added at most {most:+.1f} s to `up` "
                f"({name}: {seconds:.1f} s, {baseline:.1f} s without a fault)"
            )
    return lines


def pytest_terminal_summary(terminalreporter) -> None:
    if not _outcomes:
        return
    terminalreporter.write_sep("-", "fault injection")
    for line in summary(_outcomes, _failed):
        terminalreporter.write_line(line)
