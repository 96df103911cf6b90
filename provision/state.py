"""Deployment records: one JSON file per deployment, written atomically, 0600 in a 0700 directory.

Layout under the state directory (platformdirs, or PROVISION_STATE_DIR):

    <name>.lock            held while a command works on <name>
    <name>.holder          who holds it: "PID provision COMMAND", for a command that waits
    <name>/record.json     the Record
    <name>/id_ed25519      the client key for this deployment (and .pub)
    <name>/known_hosts     the pinned host key, for plain OpenSSH
    <name>/jupyter_token   the Jupyter token
    <name>/jupyter.crt     the TLS certificate of --access public (and jupyter.key)
    <name>/tunnel.pid      the tunnel process and its local port, while one runs (tunnel.lock, tunnel.log)
    quota-requests.json    the quota increase requests filed from this machine (provision/commands/quota.py)

A new deployment's record is written only once its first resource is asked for: a failure
before that (credentials, subscription, preflight) leaves no record behind.
"""

import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import filelock
import platformdirs

from provision.errors import ProvisionError

CLIENT_KEY_FILE = "id_ed25519"
TOKEN_FILE = "jupyter_token"
LOCK_WAIT = 30  # seconds a command waits for another one working on the same deployment


@dataclass
class Resource:
    kind: str  # resource_group | vnet | nsg | public_ip | nic | vm | ...
    id: str
    state: str = "creating"  # creating | created | failed


@dataclass
class Record:
    """What `down`, `status` and a re-run of `up` need to know about one deployment."""

    name: str
    target: str  # azure | local | ssh://user@host:port
    created: str
    settings: dict = field(default_factory=dict)  # the non-secret settings `up` ran with
    phase: str = "creating"  # creating | created | ready | failed (power state: see `power`)
    resources: list[Resource] = field(default_factory=list)
    machine: dict | None = None  # host, port, user, key_path, host_key, fqdn, public_ip
    nodes: list[dict] = field(default_factory=list)  # several nodes: every machine, head (= machine) first
    jupyter: dict | None = None  # remote port, pid, python, root
    tunnel: dict | None = None  # pid and local port of a detached tunnel
    check: dict | None = None  # the last GPU check: passed, summary, when
    allreduce: dict | None = None  # several nodes: the last all-reduce check across them: passed, summary, when
    power: list[dict] = field(default_factory=list)  # power changes the kit saw: state, at, reason (provision.power)
    idle: dict | None = None  # idle_stop minutes (None: off), auto_shutdown HH:MM, vm_id, compute_api
    price: dict | None = None  # what the machine costs, as quoted when it was made: usd_per_hour, source, disk...
    environment: dict | None = None  # the project's environment and kernel: name, path, python, kernel, file, sha256

    def track(self, kind: str, resource_id: str) -> Resource:
        """The entry for a resource, added in state "creating" if new."""
        for resource in self.resources:
            if resource.id.lower() == resource_id.lower():
                return resource
        resource = Resource(kind, resource_id)
        self.resources.append(resource)
        return resource

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Record":
        data = json.loads(text)
        data["resources"] = [Resource(**r) for r in data.get("resources", [])]
        return cls(**data)


def default_root() -> Path:
    override = os.environ.get("PROVISION_STATE_DIR")
    return Path(override) if override else platformdirs.user_state_path("dsvm-kit")


class StateStore:
    """Records and per-deployment secrets on disk."""

    def __init__(self, root: Path | None = None):
        self.root = root or default_root()

    def _ensure(self, path: Path) -> Path:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
        return path

    def dir_for(self, name: str) -> Path:
        return self._ensure(self._ensure(self.root) / name)

    def path(self, name: str, file: str) -> Path:
        return self.dir_for(name) / file

    def load(self, name: str) -> Record | None:
        path = self.root / name / "record.json"
        try:
            return Record.from_json(path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as e:
            raise ProvisionError(
                f"the record {path} is damaged ({e}); fix or remove it, then run "
                f"`provision down {name}` to clean up from the cloud's tags"
            ) from None

    def require(self, name: str) -> Record:
        record = self.load(name)
        if record is None:
            known = ", ".join(self.names()) or "none"
            raise ProvisionError(f"no deployment named {name!r} here (known: {known}); see `provision list`")
        return record

    def save(self, record: Record) -> None:
        self.write_secret(record.name, "record.json", record.to_json())

    def write_secret(self, name: str, file: str, text: str) -> Path:
        """Write a deployment's file atomically with mode 0600 (a crash leaves the old file or the new one)."""
        return _write_atomically(self.dir_for(name), file, text)

    def write_own(self, file: str, text: str) -> Path:
        """Write a file of the kit's own, beside the deployments, as write_secret does."""
        return _write_atomically(self._ensure(self.root), file, text)

    def read_own(self, file: str) -> str | None:
        return _read(self.root / file)

    def read_secret(self, name: str, file: str) -> str | None:
        return _read(self.root / name / file)

    def delete(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/record.json"))

    @contextmanager
    def lock(
        self, name: str, *, wait: float = LOCK_WAIT, on_wait: Callable[[str], None] | None = None
    ) -> Iterator[None]:
        """Hold the deployment's lock. While another command holds it: after a second, say so
        through on_wait; after `wait` seconds, give up with a one-line error."""
        root = self._ensure(self.root)
        holder = root / f"{name}.holder"
        lock = filelock.FileLock(root / f"{name}.lock", mode=0o600)
        what = f"another provision command on {name!r}"
        acquire(lock, lambda: f"{what} ({_holder(holder)})", wait=wait, on_wait=on_wait)
        try:
            holder.write_text(f"{os.getpid()} {_command()}")
            yield
        finally:
            holder.unlink(missing_ok=True)
            lock.release()


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _write_atomically(directory: Path, file: str, text: str) -> Path:
    """mkstemp makes the file 0600; it replaces the old one only once written and synced."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{file}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return directory / file


def acquire(
    lock: filelock.FileLock, describe: Callable[[], str], *, wait: float, on_wait: Callable[[str], None] | None
) -> None:
    """Take `lock`, waiting at most `wait` seconds; after the first second, tell on_wait what for."""
    try:
        lock.acquire(timeout=min(1.0, wait))
        return
    except filelock.Timeout:
        if wait > 1:
            if on_wait:
                on_wait(f"waiting for {describe()} ...")
            try:
                lock.acquire(timeout=wait - 1)
                return
            except filelock.Timeout:
                pass
    raise ProvisionError(
        f"{describe()} is still working after {wait:.0f} s; wait for it to finish (or stop it), then try again"
    )


def _command() -> str:
    """This process's command, as the holder of a lock: "provision up"."""
    words = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    return f"provision {words[0]}" if words else "provision"


def _holder(path: Path) -> str:
    try:
        pid, command = path.read_text().split(" ", 1)
    except (OSError, ValueError):
        return "pid unknown"
    return f"pid {pid}: {command}"


class Journal:
    """A record being written as resources come and go; saved after every change."""

    def __init__(self, store: StateStore, record: Record):
        self.store = store
        self.record = record
        self._lock = threading.Lock()
        self._stopped = False
        self._born = False

    def save(self) -> None:
        """Write the record; a new deployment's only once it names a resource or a machine is ready."""
        with self._lock:
            self._born = self._born or bool(self.record.resources) or self.record.phase != "creating"
            if self._born and not self._stopped:
                self.store.save(self.record)

    def stop(self) -> None:
        """Save nothing more: the record is being deleted, and a create that another thread is
        still finishing (after an interrupt) must not write it back."""
        with self._lock:
            self._stopped = True

    @contextmanager
    def creating(self, kind: str, resource_id: str) -> Iterator[None]:
        """Record a resource as "creating" before its request, then "created" or "failed"."""
        with self._lock:
            resource = self.record.track(kind, resource_id)
            resource.state = "creating"
        self.save()
        try:
            yield
        except BaseException:
            resource.state = "failed"
            self.save()
            raise
        resource.state = "created"
        self.save()
