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

    While it runs it holds the deployment's tunnel lock and names its pid in PID_FILE, which
    is how `down` finds and stops it.
    """
    lock = filelock.FileLock(store.path(name, LOCK_FILE), mode=0o600)
    with sigterm_as_interrupt(), lock, _forward(remote, remote_port, local_port, name) as forward:
        store.write_secret(name, PID_FILE, str(os.getpid()))
        on_open(forward.local_port)
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


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
        if store.read_secret(name, PID_FILE) == str(child.pid):
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


def stop(store: StateStore, name: str) -> bool:
    """Stop the deployment's tunnel process, if one is alive; True if one was stopped."""
    pid = store.read_secret(name, PID_FILE)
    if not pid or not is_alive(store, name):
        return False
    try:
        os.kill(int(pid), signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 10
    while is_alive(store, name) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True
