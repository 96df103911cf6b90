"""`provision run`: one torchrun job across every node of a deployment, its output streamed here.

The working directory goes to each node (a tarball, unpacked under ~/jobs/); torchrun starts on each with a static
rendezvous at the head's private address and a free port there. Every line comes back prefixed with its node and
rank. Ctrl-C, or one node failing, stops the job on every node by killing each torchrun's process group.
"""

import io
import re
import secrets
import shlex
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from bootstrap import torchrun
from bootstrap.remote import SSHRemote
from provision import nodes
from provision.errors import ProvisionError
from provision.output import Output
from provision.state import StateStore
from provision.targets import Machine

JOBS_DIR = "~/jobs"
CPU_PROCS = 2  # processes per node when a node has no GPU (gloo on the CPU)
STOP_GRACE = 15.0  # seconds torchrun has to stop its workers after SIGTERM before its group is killed
PGID_WAIT = 5.0  # seconds stop() waits for a node's first line (its group's id), printed as torchrun starts
ROOT_CAUSE_RANK = re.compile(r"Root Cause.*?rank\s*:\s*(\d+)", re.S)


@dataclass(frozen=True)
class RunOptions:
    script: Path
    args: tuple[str, ...] = ()
    workdir: Path | None = None
    nproc_per_node: int | None = None
    torchrun_args: tuple[str, ...] = ()


def check_script(options: RunOptions) -> tuple[Path, str]:
    """The directory to copy and the script's path within it; a one-line error before anything runs."""
    script = options.script.expanduser()
    if not script.is_file():
        raise ProvisionError(f"script {options.script} does not exist (or is not a file)")
    workdir = (options.workdir or script.parent).expanduser().resolve()
    if not workdir.is_dir():
        raise ProvisionError(f"--workdir {options.workdir} is not a directory")
    try:
        relative = script.resolve().relative_to(workdir)
    except ValueError:
        raise ProvisionError(f"script {options.script} is not inside --workdir {options.workdir}") from None
    return workdir, relative.as_posix()


def run(name: str, options: RunOptions, store: StateStore, out: Output) -> None:
    workdir, script = check_script(options)
    record = store.require(name)
    machines = nodes.machines(record)
    remotes = nodes.connect_all(record, out)
    try:
        failure = start(remotes, machines, nodes.pythons(record), workdir, script, options, out).wait()
    finally:
        for remote in remotes:
            remote.close()
    if failure:
        raise ProvisionError(failure)
    out.result(f"the job finished on all {len(remotes)} node(s)")


def start(
    remotes: list[SSHRemote],
    machines: list[Machine],
    pythons: list[str],
    workdir: Path,
    script: str,
    options: RunOptions,
    out: Output,
    *,
    echo: bool = True,
) -> "Launch":
    """`workdir` copied to every node and torchrun started on each with its own Python; wait() on what it returns."""
    remote_dir = _copy(remotes, workdir, out)
    job = _job(remotes, machines, pythons[0], remote_dir, script, options)
    out.note(
        f"torchrun on {job.nodes} node(s) x {job.procs_per_node} process(es), "
        f"rendezvous {job.master_addr}:{job.master_port}"
    )
    return Launch(remotes, job, _environments(remotes, machines), pythons, echo=echo)


def _copy(remotes: list[SSHRemote], workdir: Path, out: Output) -> str:
    """The working directory, unpacked on every node; its path there."""
    target = f"{JOBS_DIR}/{workdir.name}"
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "job.tar.gz"
        with tarfile.open(tarball, "w:gz") as tar:
            tar.add(workdir, arcname=".")

        def copy(remote: SSHRemote) -> None:
            upload = f"~/.dsvm-kit-job-{secrets.token_hex(4)}.tar.gz"  # one per node: nodes may share a home
            remote.put(tarball, upload)
            quoted = shlex.quote(target.replace("~", remote.home, 1))
            where = shlex.quote(upload.replace("~", remote.home, 1))
            remote.run(f"mkdir -p {quoted} && tar -xzf {where} -C {quoted}; rm -f {where}", step="unpack the job")

        with out.step(f"Copying {workdir} to {len(remotes)} node(s)"), ThreadPoolExecutor(len(remotes)) as pool:
            for future in [pool.submit(copy, remote) for remote in remotes]:
                future.result()
    return target.replace("~", remotes[0].home, 1)


def _job(
    remotes: list[SSHRemote], machines: list[Machine], python: str, workdir: str, script: str, options: RunOptions
) -> torchrun.Job:
    head = remotes[0]
    procs = options.nproc_per_node
    if procs is None:
        gpus = head.run("nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true", step="count GPUs").stdout.strip()
        procs = int(gpus or 0) or CPU_PROCS
    port = int(head.run(f"{shlex.quote(python)} -c {shlex.quote(torchrun.FREE_PORT)}", step="find a free port").stdout)
    return torchrun.Job(
        python=python,
        workdir=workdir,
        script=script,
        args=options.args,
        nodes=len(remotes),
        procs_per_node=procs,
        master_addr=machines[0].private_ip or "127.0.0.1",
        master_port=port,
        torchrun_args=options.torchrun_args,
    )


def _environments(remotes: list[SSHRemote], machines: list[Machine]) -> list[dict[str, str]]:
    """Each node's NCCL and gloo settings: the interface it reaches its peers by (eth0 on Azure; no InfiniBand)."""
    found = []
    for rank, remote in enumerate(remotes):
        peer = machines[1 if rank == 0 and len(machines) > 1 else 0].private_ip or "127.0.0.1"
        interface = remote.run(torchrun.interface_probe(peer), step="find the network interface").stdout.strip()
        interface = interface or torchrun.AZURE_NCCL["NCCL_SOCKET_IFNAME"]
        found.append({**torchrun.AZURE_NCCL, "NCCL_SOCKET_IFNAME": interface, "GLOO_SOCKET_IFNAME": interface})
    return found


@dataclass
class _Node:
    rank: int
    remote: SSHRemote
    pgid: int | None = None
    status: int | None = None
    output: io.StringIO = field(default_factory=io.StringIO)
    ended: float = 0.0


class Launch:
    """torchrun started on every node, each with its Python; wait() streams their output (here with `echo`, else
    only into each node's `output`) and returns None or what failed."""

    def __init__(
        self,
        remotes: list[SSHRemote],
        job: torchrun.Job,
        envs: list[dict[str, str]],
        pythons: list[str],
        *,
        echo: bool = True,
    ):
        self.nodes = [_Node(rank, remote) for rank, remote in enumerate(remotes)]
        self._echo = echo
        self._print = threading.Lock()
        self._threads = []
        for node, env, python in zip(self.nodes, envs, pythons, strict=True):
            channel = node.remote.open_command(torchrun.command(replace(job, python=python), node.rank, env))
            thread = threading.Thread(target=self._stream, args=(node, channel), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _stream(self, node: _Node, channel) -> None:
        for raw in channel.makefile("rb"):
            line = raw.decode(errors="replace").rstrip("\n")
            if node.pgid is None and line.strip().isdigit():
                node.pgid = int(line)
                continue
            node.output.write(line + "\n")
            if not self._echo:
                continue
            with self._print:
                sys.stdout.write(f"node{node.rank} {line}\n")
                sys.stdout.flush()
        node.status = channel.recv_exit_status()
        node.ended = time.monotonic()

    def wait(self) -> str | None:
        try:
            while any(t.is_alive() for t in self._threads):
                failed = [n for n in self.nodes if n.status not in (None, 0)]
                if failed:
                    self.stop()
                    break
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        for thread in self._threads:
            thread.join(STOP_GRACE + 5)
        return self._failure()

    def stop(self) -> None:
        """SIGTERM every node's torchrun group (torchrun stops its workers), then SIGKILL what is left."""
        deadline = time.monotonic() + PGID_WAIT  # a Ctrl-C at once: a group's id may not have arrived yet
        while time.monotonic() < deadline and any(
            n.pgid is None and t.is_alive() for n, t in zip(self.nodes, self._threads, strict=True)
        ):
            time.sleep(0.05)
        for signal_name, wait in (("TERM", STOP_GRACE), ("KILL", 0)):
            for node in self.nodes:
                if node.pgid is not None:
                    node.remote.run(f"kill -{signal_name} -- -{node.pgid} 2>/dev/null || true", check=False)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(t.is_alive() for t in self._threads):
                time.sleep(0.1)

    def _failure(self) -> str | None:
        failed = sorted((n for n in self.nodes if n.status != 0), key=lambda n: (n.ended or float("inf"), n.rank))
        if not failed:
            return None
        first = failed[0]
        found = ROOT_CAUSE_RANK.search(first.output.getvalue())
        rank = f"rank {found.group(1)} on node {first.rank}" if found else f"node {first.rank}"
        if self._echo:
            return f"the job failed: {rank} (torchrun exited with {first.status}); its output is above"
        last = " | ".join(first.output.getvalue().strip().splitlines()[-3:])
        return f"the job failed: {rank} (torchrun exited with {first.status}); it ended with: {last}"
