"""Process bookkeeping for the fakes.

PID 1 here does not reap orphans, so a killed daemon would stay a zombie for
good. The test process makes itself a child subreaper: orphans of everything it
started (sshd sessions, detached Jupyter servers, kernels) become its children,
and it reaps them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time

_PR_SET_CHILD_SUBREAPER = 36
_protected: set[int] = set()  # children some Popen object will wait() for itself


def become_subreaper() -> None:
    """Adopt this process's orphaned descendants (idempotent)."""
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def protect(pid: int) -> None:
    """Leave this child to its Popen's wait(): reap_orphans() will not touch it."""
    _protected.add(pid)


def unprotect(pid: int) -> None:
    _protected.discard(pid)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[1])


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def state(pid: int) -> str | None:
    """The process state letter ("S", "R", "Z", ...), or None when it is gone."""
    stat = _stat(pid)
    return stat[0] if stat else None


def command_line(pid: int) -> str:
    """The process's argv joined by spaces ("" once it is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def exists(pid: int) -> bool:
    """True while the process exists, zombie included."""
    return _stat(pid) is not None


def children(pid: int) -> list[int]:
    return [p for p in _all_pids() if (s := _stat(p)) and s[1] == pid]


def descendants(pid: int, *, but_detached: bool = False) -> list[int]:
    """Every process below pid; with but_detached, not those that left their session with
    setsid (nor what they started), unless sshd started them (it gives each command its own)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = children(parent)
        if but_detached and not command_line(parent).startswith("sshd"):
            kids = [kid for kid in kids if not _session_leader(kid)]
        found += kids
        todo += kids
    return found


def _session_leader(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[3]) == pid
    except (OSError, IndexError, ValueError):
        return False


def pids_of_user(uid: int) -> list[int]:
    """Processes whose real uid is `uid`."""
    pids = []
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/status") as f:
                uid_line = next(line for line in f if line.startswith("Uid:"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
        if int(uid_line.split()[1]) == uid:
            pids.append(pid)
    return pids


def kill_and_reap(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGKILL these processes and reap the ones that end up as our zombies; returns survivors."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if _reap_if_ours(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _reap_if_ours(pid: int) -> bool:
    """Reap pid if it is our zombie; True while it still exists."""
    stat = _stat(pid)
    if stat is None:
        return False
    if stat[0] == "Z" and stat[1] == os.getpid():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return exists(pid)
    return True


def reap_orphans(grace: float = 5.0) -> list[int]:
    """Wait up to `grace` s for adopted orphans to exit, then kill and reap them; returns those that were still running."""
    deadline = time.monotonic() + grace
    while True:
        orphans = [p for p in children(os.getpid()) if p not in _protected]
        running = [p for p in orphans if (s := _stat(p)) and s[0] != "Z"]
        if not running or time.monotonic() > deadline:
            kill_and_reap(orphans)
            return running
        kill_and_reap([p for p in orphans if p not in running], timeout=0)
        time.sleep(0.1)
