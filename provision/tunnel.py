"""The SSH tunnel from a local port to Jupyter on the machine, held here or detached."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from contextlib import suppress

import filelock

from bootstrap.notebooks import TRAINING
from bootstrap.remote import Remote
from provision.errors import ProvisionError
from provision.interrupts import sigterm_as_interrupt
from provision.state import StateStore

LOCK_FILE = "tunnel.lock"
LOG_FILE = "tunnel.log"
PID_FILE = "tunnel.pid"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_url(port: int, token: str, scheme: str = "http", host: str = "127.0.0.1") -> str:
    """The URL that opens the training notebook in JupyterLab, signed in with the token."""
    return f"{scheme}://{host}:{port}/lab/tree/{urllib.parse.quote(TRAINING)}?token={token}"


def hold(remote: Remote, remote_port: int, local_port: int, on_open, store: StateStore, name: str):
    """Forward local_port to the machine until Ctrl-C or SIGTERM; on_open(port) once it listens.

    While it runs it holds the deployment's tunnel lock and names its pid and local port in
    PID_FILE, which is how `down` finds and stops it and `provision tunnel` finds its URL.
    """
    lock = filelock.FileLock(store.path(name, LOCK_FILE), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise ProvisionError(f"a tunnel to {name!r} already runs; `provision tunnel {name}` prints its URL") from None
    try:
        with sigterm_as_interrupt(), _forward(remote, remote_port, local_port, name) as forward:
            store.write_secret(name, PID_FILE, f"{os.getpid()} {forward.local_port}")
            on_open(forward.local_port)
            with suppress(KeyboardInterrupt):
                threading.Event().wait()
    finally:
        lock.release()


def _forward(remote: Remote, remote_port: int, local_port: int, name: str):
    try:
        return remote.forward(remote_port, local_port)
    except OSError as e:  # the port is taken here
        why = os.strerror(e.errno) if e.errno else str(e)
        raise ProvisionError(
            f"cannot listen on 127.0.0.1:{local_port} here ({why}); Jupyter on {name!r} is ready: "
            f"`provision tunnel {name} --port N` reaches it through another port, `provision down {name}` deletes it"
        ) from None


def spawn_detached(store: StateStore, name: str, local_port: int, timeout: float = 60) -> int:
    """Start `provision tunnel NAME --port P` in a session of its own; its pid once it serves.

    The child names itself in PID_FILE only once it listens and holds the tunnel lock.
    """
    argv = [sys.executable, "-m", "provision", "tunnel", name, "--port", str(local_port)]
    log_path = store.path(name, LOG_FILE)
    with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as log:
        child = subprocess.Popen(
            [*argv, "--quiet", "--no-url"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            last = (store.read_secret(name, LOG_FILE) or "").strip().splitlines()[-1:]
            raise ProvisionError(
                f"the detached tunnel exited at once ({' '.join(last) or 'no output'}); "
                f"try `provision tunnel {name}` to see why"
            )
        if _pid_and_port(store, name) == (child.pid, local_port):
            return child.pid
        time.sleep(0.05)
    child.terminate()
    raise ProvisionError(f"the detached tunnel did not open port {local_port} in {timeout:.0f} s")


def is_alive(store: StateStore, name: str) -> bool:
    """True while a tunnel process holds this deployment's tunnel lock."""
    path = store.root / name / LOCK_FILE
    if not path.exists():
        return False
    lock = filelock.FileLock(path)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return True
    lock.release()
    return False


def running(store: StateStore, name: str) -> tuple[int, int] | None:
    """(pid, local port) of the tunnel process serving this deployment now, if one runs."""
    return _pid_and_port(store, name) if is_alive(store, name) else None


def _pid_and_port(store: StateStore, name: str) -> tuple[int, int] | None:
    try:
        pid, port = (int(word) for word in (store.read_secret(name, PID_FILE) or "").split())
    except ValueError:
        return None
    return pid, port


def stop(store: StateStore, name: str) -> bool:
    """Stop the deployment's tunnel process, if one is alive; True if one was stopped."""
    found = running(store, name)
    if found is None:
        return False
    try:
        os.kill(found[0], signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 10
    while is_alive(store, name) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True
