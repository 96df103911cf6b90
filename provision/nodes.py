"""The nodes of a deployment as the laptop reaches them: the head directly, each worker through the head."""

from concurrent.futures import ThreadPoolExecutor

from bootstrap.remote import SSHRemote, connect_through
from provision import session
from provision.errors import ProvisionError
from provision.output import Output
from provision.state import Record
from provision.targets import Machine

SSH_WAIT = 120.0  # seconds a worker's SSH may take to answer through the head


def machines(record: Record) -> list[Machine]:
    """Every node, head first (the one machine of a single-node deployment)."""
    if record.nodes:
        return [Machine.from_dict(node) for node in record.nodes]
    if not record.machine:
        raise ProvisionError(f"no machine recorded for {record.name!r}; see `provision list`")
    return [Machine.from_dict(record.machine)]


def pythons(record: Record) -> list[str]:
    """Each node's Python, head first: the project environment's (at the same path on every node) when there is
    one, else the one its bootstrap chose (a worker's own, else the head's)."""
    project = (record.environment or {}).get("python")
    head = project or (record.jupyter or {}).get("python") or "python3"
    return [project or node.get("python") or head for node in record.nodes] or [head]


def connect_all(record: Record, out: Output) -> list[SSHRemote]:
    """A connection to every node: the head's, then each worker's over a channel of it (never directly)."""
    head_machine, *workers = machines(record)
    head = session.open_remote(head_machine, out, timeout=60)
    if not isinstance(head, SSHRemote):
        raise ProvisionError(f"{record.name!r} is this machine: `provision run` needs an SSH machine")
    try:
        return [head, *connect_workers(head, workers, out)]
    except BaseException:
        head.close()
        raise


def connect_workers(head: SSHRemote, workers: list[Machine], out: Output) -> list[SSHRemote]:
    """A connection to each worker over a channel of the head's (at once); all or, closing what opened, none."""
    if not workers:
        return []
    with out.step(f"SSH to {len(workers)} worker node(s) through the head (host keys pinned)"):
        with ThreadPoolExecutor(len(workers)) as pool:
            futures = [pool.submit(connect_through, head, session.endpoint(m), timeout=SSH_WAIT) for m in workers]
        failed = [f.exception() for f in futures if f.exception()]
        if failed:
            for f in futures:
                if not f.exception():
                    f.result().close()
            raise failed[0]
    return [f.result() for f in futures]
