"""`provision pull` and `push`, and the save `down` makes first: the work directory between machine and laptop."""

import shlex
import sys
from pathlib import Path

from bootstrap.workdir import WORKDIR
from provision import power, sync
from provision.errors import ProvisionError
from provision.output import Output
from provision.sshfiles import ssh_argv
from provision.state import Record, StateStore
from provision.targets import RUNNING, Machine, Target

START_MINUTES = 3  # about what `provision start` takes before a deallocated VM's files can be read
GONE = "not found"  # the power state of a VM that is no more


def default_dest(name: str) -> Path:
    """Where a deployment's work lands on the laptop: work/NAME/ under the current directory."""
    return Path("work") / name


def node_dest(base: Path, node: int) -> Path:
    """The head's files go into base, a worker's into base/nodeK."""
    return base / f"node{node}" if node else base


def _machines(record: Record) -> list[Machine]:
    if record.machine is None:
        raise ProvisionError(f"{record.name!r} has no machine ({record.phase}); see `provision status {record.name}`")
    if record.jupyter is None:
        raise ProvisionError(f"{record.name!r} has no work directory: it was made with --no-bootstrap")
    return [Machine.from_dict(node) for node in record.nodes] or [Machine.from_dict(record.machine)]


def _nodes(record: Record, node: int | None) -> list[tuple[int, Machine]]:
    machines = _machines(record)
    if node is None:
        return list(enumerate(machines))
    if not 0 <= node < len(machines):
        raise ProvisionError(f"{record.name!r} has no node {node}: its nodes are 0 (the head) to {len(machines) - 1}")
    return [(node, machines[node])]


def link(store: StateStore, name: str, node: int, machine: Machine) -> sync.Link:
    """The machine side of a transfer with one node: over OpenSSH with the pinned known_hosts (a worker through
    the head), or a local Python for this machine."""
    command = ["python3", "-S", "-c", sync.SOURCE, WORKDIR]  # -S: no site-packages, the script is stdlib only
    if not machine.over_ssh:
        return sync.Link([sys.executable, *command[1:]], machine.label)
    argv = ssh_argv(store, name, [shlex.join(command)], node)
    argv[1:1] = ["-T", *("-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ServerAliveInterval=15")]
    return sync.Link(argv, f"node {node} ({machine.host})" if node else machine.label)


def pull(name: str, store: StateStore, out: Output, *, to: Path | None, node: int | None) -> None:
    """`provision pull`: what changed on each node (or node K) since the last pull, into work/NAME/ (or --to)."""
    base = to or default_dest(name)
    with store.lock(name, on_wait=out.note):
        record = store.require(name)
        moved = _pull(record, store, out, base, node)
    _report(out, f"pulled from {name!r} into {base}/", moved)


def push(name: str, paths: list[Path], store: StateStore, out: Output, *, dest: str, all_nodes: bool) -> None:
    """`provision push`: laptop files and directories into the work directory (under --dest) of the head, or
    of every node."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ProvisionError(f"no such file or directory: {', '.join(missing)}")
    if Path(dest).is_absolute() or ".." in Path(dest).parts:
        raise ProvisionError(f"--dest {dest} must be a relative path inside the work directory ({WORKDIR})")
    extra = sync.project_ignore()
    files = sync.local_files(paths, dest.strip("/"), sync.ignored(extra))
    with store.lock(name, on_wait=out.note):
        record = store.require(name)
        total = sync.Moved()
        for k, machine in _nodes(record, None if all_nodes else 0):
            with link(store, name, k, machine) as channel:
                _add(total, sync.push(channel, files, sync.SyncRecord(store, name, k), out, extra))
    into = "/".join(filter(None, [WORKDIR, dest.strip("/")]))
    _report(out, f"pushed into {into} on {'every node of ' if all_nodes else ''}{name!r}", total, "laptop")


def save_work(record: Record, target: Target, store: StateStore, out: Output, *, discard: bool) -> None:
    """What `down` does first: pull what changed on every node into work/NAME/ (workers into nodeK/), or with
    `discard` count what is lost. A machine the target keeps (an existing host, this one) keeps its files, and
    a deployment never bootstrapped has no work directory: nothing to save. A VM that is not running cannot be
    read: refuse, naming `start` and its cost, or --discard. A failed pull raises: nothing is deleted."""
    name = record.name
    if not target.deletes_machine or record.machine is None or record.jupyter is None:
        return
    state = power.observe(record, target.status(record).get("power_state", ""))[0]
    if state == GONE:
        return
    if state != RUNNING:
        if discard:
            out.warn(f"discarding the work directory of {name!r} unread: its VM is {state} (--discard)")
            return
        raise ProvisionError(
            f"{name!r} is {state}: its work directory cannot be read to save it; `provision start {name}` first "
            f"({_start_cost(record)}), or `provision down {name} --discard` to delete it unsaved"
        )
    base = default_dest(name)
    if discard:
        lost = 0
        for k, machine in _nodes(record, None):
            with link(store, name, k, machine) as channel:
                lost += len(sync.plan_pull(channel, node_dest(base, k), sync.SyncRecord(store, name, k), ""))
        out.warn(f"discarded {lost} file(s) changed on {name!r} since the last pull (--discard)")
        return
    try:
        moved = _pull(record, store, out, base, None)
    except ProvisionError as e:
        unsaved = f"`provision down {name} --discard` deletes it unsaved"
        raise ProvisionError(f"{e}; nothing was deleted ({unsaved})") from None
    _report(out, f"saved the work of {name!r} into {base}/", moved)


def _pull(record: Record, store: StateStore, out: Output, base: Path, node: int | None) -> sync.Moved:
    total, extra = sync.Moved(), sync.project_ignore()
    for k, machine in _nodes(record, node):
        with link(store, record.name, k, machine) as channel:
            _add(total, sync.pull(channel, node_dest(base, k), sync.SyncRecord(store, record.name, k), out, extra))
    return total


def _start_cost(record: Record) -> str:
    hourly = power.hourly(record)
    if hourly is None:
        return f"about {START_MINUTES} min of compute"
    nodes = max(len(record.nodes), 1)
    usd = hourly * nodes * START_MINUTES / 60
    return f"about {START_MINUTES} min of compute at ${hourly * nodes:.2f}/h, ${usd:.2f}"


def _add(total: sync.Moved, moved: sync.Moved) -> None:
    total.files += moved.files
    total.size += moved.size
    total.resumed += moved.resumed
    total.conflicts += moved.conflicts


def _report(out: Output, what: str, moved: sync.Moved, side: str = "remote") -> None:
    for kept, other in moved.conflicts:
        out.warn(f"{kept} changed on both sides since the last pull: kept as it was; the {side} copy is {other}")
    resumed = f" (resumed {_bytes(moved.resumed)} staged by a cut transfer)" if moved.resumed else ""
    out.result(f"{what}: {moved.files} file(s), {_bytes(moved.size)}{resumed}")


def _bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    scaled, unit = next((size / 1024**i, u) for i, u in ((3, "GiB"), (2, "MiB"), (1, "KiB")) if size >= 1024**i)
    return f"{scaled:.1f} {unit}"
