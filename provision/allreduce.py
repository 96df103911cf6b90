"""The check a deployment of several nodes passes before its URL: each worker bootstrapped through the head (its
Python chosen), then examples/allreduce_check.py launched as `provision run` launches a job, across every process
of every node. It passes when the sum is right on every rank and no rank failed; its line gives the bus bandwidth."""

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from bootstrap import pychoice
from bootstrap.remote import SSHRemote
from provision import nodes, run, session
from provision.output import Output
from provision.settings import Settings
from provision.state import Journal

SCRIPT = "allreduce_check.py"
VERDICT = re.compile(r"all-reduce (passed|FAILED): [^\n]*")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    summary: str


def prepare_workers(head: SSHRemote, settings: Settings, journal: Journal, out: Output, *, allow_cpu: bool):
    """Every worker connected over a channel of the head's and its Python chosen, all at once; the
    connections (the caller closes them). Each worker's Python is kept in its entry of record.nodes."""
    workers = nodes.connect_workers(head, nodes.machines(journal.record)[1:], out)
    allow = allow_cpu or settings.allow_cpu
    try:
        with (
            out.step(f"Finding the Python with PyTorch on {len(workers)} worker node(s)"),
            ThreadPoolExecutor(len(workers)) as pool,
        ):
            choices = list(pool.map(lambda w: pychoice.choose(w, settings.remote_python, allow_cpu=allow), workers))
    except BaseException:
        for worker in workers:
            worker.close()
        raise
    for node, choice in zip(journal.record.nodes[1:], choices, strict=True):
        node["python"] = choice.python
    journal.save()
    return workers


def check(remotes: list[SSHRemote], journal: Journal, out: Output) -> Verdict:
    """All-reduce across every process of every node (the examples pushed to each); the verdict, also recorded."""
    script = session.shipped("examples") / SCRIPT
    options = run.RunOptions(script=script)
    with out.step("All-reduce across every process of every node"):
        launch = run.start(
            remotes,
            nodes.machines(journal.record),
            nodes.pythons(journal.record),
            script.parent,
            SCRIPT,
            options,
            out,
            echo=False,
        )
        failure = launch.wait()
        verdict = judge(launch.nodes[0].output.getvalue(), failure)
    journal.record.allreduce = {
        "passed": verdict.passed,
        "summary": verdict.summary,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": (journal.record.environment or {}).get("name"),
    }
    journal.save()
    return verdict


def judge(head_output: str, failure: str | None) -> Verdict:
    """Passed only when no rank failed and rank 0 said the sum was right on every rank."""
    found = VERDICT.search(head_output)
    if found is not None and found.group(1) == "FAILED":
        return Verdict(False, found.group(0))
    if failure:
        return Verdict(False, f"the all-reduce check failed: {failure.removeprefix('the job failed: ')}")
    if found is None:
        return Verdict(False, "the all-reduce check printed no verdict")
    return Verdict(True, found.group(0))
