"""provision-transfer: the machine side of `pull` and `push`, one process on one SSH exec channel.

Stdlib only: it runs as `python3 -c SOURCE ROOT` on the machine's system Python (3.8 or later). Requests are
JSON lines on stdin; answers are JSON lines on stdout, a file's bytes raw after its header line, so thousands
of small files cost one stream and no round trip each. A file arrives under a staging name (STAGING/, keyed by
its path, size and mtime) and is renamed into place once whole: a cut transfer resumes from the staged bytes.
The laptop side (provision/sync.py) imports the names below; nothing here imports the kit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys

STAGING = ".provision-partial"  # staged (incomplete) files, under the root of either side
SKIPPED = {".ipynb_checkpoints", "__pycache__", STAGING}  # directories never listed
IGNORE_FILE = ".provisionignore"
CHUNK = 1 << 20
# Files are opened unbuffered (each read or write is a block already): a buffered open asks isatty(), an ioctl
# that costs ~0.5 ms in some sandboxes, which is most of a 4 KiB file's time.


def widen_pipe(fd: int) -> None:
    """A 1 MiB pipe instead of 64 KiB, where the OS allows (Linux): fewer wakeups between ssh and Python."""
    with contextlib.suppress(ImportError, AttributeError, OSError):
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, CHUNK)


def staged_name(path: str, size: int, mtime: int) -> str:
    """The staging file of one version of one file: a resume continues only the same version."""
    return hashlib.sha1(f"{path}\0{size}\0{mtime}".encode()).hexdigest()


def walk(root: str, under: str = ""):
    """(relative path, size, mtime in ns) of every regular file below root/under, skipped directories pruned."""
    try:
        entries = list(os.scandir(os.path.join(root, under)))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        rel = f"{under}/{entry.name}" if under else entry.name
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in SKIPPED:
                yield from walk(root, rel)
        elif entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            yield rel, st.st_size, st.st_mtime_ns


def sha256(path: str):
    """The file's SHA-256, or None when it is not there."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def staged_size(root: str, path: str, size: int, mtime: int) -> int:
    """How many bytes of this version of the file are staged already."""
    try:
        return min(os.path.getsize(os.path.join(root, STAGING, staged_name(path, size, mtime))), size)
    except OSError:
        return 0


def send(root: str, path: str, offset: int, size: int, mtime: int, out) -> None:
    """One file: a header line, its bytes from `offset` (if it is still the version of that size and mtime,
    whose start the laptop has staged; else all of them), a trailer line (ok false: it changed while read)."""
    try:
        f = open(os.path.join(root, path), "rb", buffering=0)  # noqa: SIM115 (closed below, once the header is sent)
    except OSError as e:
        out.write(_line({"path": path, "missing": str(e)}))
        return
    with f:
        st = os.fstat(f.fileno())
        offset = offset if (st.st_size, st.st_mtime_ns) == (size, mtime) else 0
        out.write(_line({"path": path, "size": st.st_size, "mtime": st.st_mtime_ns, "offset": offset}))
        left = st.st_size - offset
        if left > CHUNK:  # a large file goes from the page cache to sshd's pipe without passing through Python
            out.flush()
            left -= _sendfile(out.fileno(), f.fileno(), offset, left)
        f.seek(st.st_size - left)
        while left:
            block = f.read(min(CHUNK, left)) or b"\0" * min(CHUNK, left)  # shrank: pad, the trailer says so
            out.write(block)
            left -= len(block)
        out.write(_line({"ok": os.fstat(f.fileno()).st_mtime_ns == st.st_mtime_ns}))


def _sendfile(out_fd: int, in_fd: int, offset: int, count: int) -> int:
    """Bytes sent with os.sendfile (0 where the OS refuses it: the caller copies the rest)."""
    sent = 0
    with contextlib.suppress(OSError, AttributeError):
        while sent < count:
            n = os.sendfile(out_fd, in_fd, offset + sent, count - sent)
            if n == 0:  # the file shrank: the caller pads, the trailer says so
                break
            sent += n
    return sent


def receive(root: str, request: dict, inp) -> str | None:
    """One file pushed: its bytes from request["offset"] appended to its staged copy, renamed into place whole,
    its mtime kept. The bytes are always read (the stream stays framed); the error, if any, is returned."""
    path, size, mtime, offset = request["path"], request["size"], request["mtime"], request["offset"]
    staged = os.path.join(root, STAGING, staged_name(path, size, mtime))
    error = None
    try:
        os.makedirs(os.path.dirname(staged), exist_ok=True)
        f = open(staged, "r+b" if offset else "wb", buffering=0)  # noqa: SIM115 (None on error: the bytes are still read)
        f.truncate(offset)
        f.seek(offset)
    except OSError as e:
        f, error = None, f"{path}: {e.strerror}"
    left = size - offset
    while left:
        block = inp.read(min(CHUNK, left))
        if not block:
            raise EOFError("the stream ended inside a file")
        if f is not None:
            f.write(block)
        left -= len(block)
    if f is None:
        return error
    f.close()
    final = os.path.join(root, path)
    try:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(staged, final)
        os.utime(final, ns=(mtime, mtime))
    except OSError as e:
        return f"{path}: {e.strerror}"
    return None


def serve(root: str, inp, out) -> None:
    """Answer requests until stdin ends: list, hash, staged, get, put (no answer each), done."""
    root = os.path.expanduser(root)
    os.makedirs(root, exist_ok=True)
    errors = []
    for raw in iter(inp.readline, b""):
        request = json.loads(raw)
        op = request["op"]
        if op == "list":
            try:
                with open(os.path.join(root, IGNORE_FILE)) as f:
                    ignore = f.read()
            except OSError:
                ignore = ""
            out.write(_line({"files": list(walk(root, request.get("under", ""))), "ignore": ignore}))
        elif op == "hash":
            out.write(_line({"hashes": [sha256(os.path.join(root, p)) for p in request["paths"]]}))
        elif op == "staged":
            out.write(_line({"offsets": [staged_size(root, *f) for f in request["files"]]}))
        elif op == "get":
            for path, offset, size, mtime in request["files"]:
                send(root, path, offset, size, mtime, out)
        elif op == "put":
            error = receive(root, request, inp)
            if error:
                errors.append(error)
        elif op == "done":
            _remove_empty(os.path.join(root, STAGING))
            out.write(_line({"errors": errors}))
            errors = []
        out.flush()


def _remove_empty(directory: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(directory)


def _line(data: dict) -> bytes:
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()


if __name__ == "__main__":
    # A 1 MiB buffer on stdout: small files go to sshd in large writes, not a write (and a wakeup) each.
    widen_pipe(sys.stdout.fileno())
    with open(sys.stdout.fileno(), "wb", buffering=CHUNK, closefd=False) as stdout:
        serve(sys.argv[1], sys.stdin.buffer, stdout)
