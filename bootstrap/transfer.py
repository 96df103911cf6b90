"""provision-transfer: the machine side of `pull` and `push`, one process on one SSH exec channel.

Stdlib only: it runs as `python3 -S -c SOURCE ROOT` on the machine's system Python (3.8 or later). Requests are
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


class Stream:
    """The reading end of the pipe from the other side: JSON lines, and files' raw bytes copied into files. It keeps
    its own buffer (not a BufferedReader's), so that a large file's bytes go from the pipe into the file with
    os.splice (Linux, Python 3.10 or later) and never through Python; elsewhere, or where the file system refuses
    splice, in blocks."""

    def __init__(self, fd: int):
        self.fd = fd
        self._buffer = bytearray()
        self._can_splice = hasattr(os, "splice")

    def line(self) -> bytes:
        """The next line with its newline (without, where the stream ends inside it); b"" at the end."""
        start = 0
        while not (end := self._buffer.find(b"\n", start) + 1):
            start = len(self._buffer)
            if not self._fill():
                end = start
                break
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        return line

    def copy(self, fd: int | None, size: int, advance=None) -> None:
        """The stream's next `size` bytes into the file `fd` at its position (read and dropped where fd is None),
        advance(n) called as they go; EOFError where the stream ends first."""
        while size:
            n = self._splice(fd, size) if fd is not None and size >= CHUNK and not self._buffer else None
            if n is None:
                if not self._buffer:
                    self._fill()
                n = min(size, len(self._buffer))
                if fd is not None:
                    write_all(fd, self._buffer[:n])
                del self._buffer[:n]
            if not n:
                raise EOFError("the stream ended inside a file")
            size -= n
            if advance:
                advance(n)

    def _fill(self) -> bool:
        block = os.read(self.fd, CHUNK)
        self._buffer += block
        return bool(block)

    def _splice(self, fd: int, size: int) -> int | None:
        """Bytes moved from the pipe straight into fd (0 at the end of the stream), or None where splice is not to
        be had: then never again on this stream (a real write error shows in the copy that follows)."""
        if self._can_splice:
            try:
                return os.splice(self.fd, fd, min(size, CHUNK))
            except OSError:
                self._can_splice = False
        return None


def write_all(fd: int, data) -> None:
    """os.write until every byte is written (a file may take fewer at once)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def open_staged(path: str, offset: int) -> int:
    """The staged file's descriptor, positioned to write from `offset` (bytes after it dropped). A new file is not
    truncated: ext4 flushes a file truncated to nothing as it is closed (auto_da_alloc), ~70 ms for 256 MiB."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)  # O_BINARY: Windows only
    try:
        if os.fstat(fd).st_size != offset:
            os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


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


def receive(root: str, request: dict, inp: Stream) -> str | None:
    """One file pushed: its bytes from request["offset"] appended to its staged copy, renamed into place whole,
    its mtime kept. The bytes are always read (the stream stays framed); the error, if any, is returned."""
    path, size, mtime, offset = request["path"], request["size"], request["mtime"], request["offset"]
    staged = os.path.join(root, STAGING, staged_name(path, size, mtime))
    try:
        os.makedirs(os.path.dirname(staged), exist_ok=True)
        fd = open_staged(staged, offset)
    except OSError as e:
        inp.copy(None, size - offset)
        return f"{path}: {e.strerror}"
    try:
        inp.copy(fd, size - offset)
    finally:
        os.close(fd)
    final = os.path.join(root, path)
    try:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(staged, final)
        os.utime(final, ns=(mtime, mtime))
    except OSError as e:
        return f"{path}: {e.strerror}"
    return None


def serve(root: str, inp: Stream, out) -> None:
    """Answer requests until stdin ends: list, hash, staged, get, put (no answer each), done."""
    root = os.path.expanduser(root)
    os.makedirs(root, exist_ok=True)
    errors = []
    for raw in iter(inp.line, b""):
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
            remove_empty(os.path.join(root, STAGING))
            out.write(_line({"errors": errors}))
            errors = []
        out.flush()


def remove_empty(directory) -> None:
    """Remove `directory` if it is there and empty."""
    with contextlib.suppress(OSError):
        os.rmdir(directory)


def _line(data: dict) -> bytes:
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()


if __name__ == "__main__":
    # A 1 MiB buffer on stdout: small files go to sshd in large writes, not a write (and a wakeup) each.
    widen_pipe(sys.stdout.fileno())
    with open(sys.stdout.fileno(), "wb", buffering=CHUNK, closefd=False) as stdout:
        serve(sys.argv[1], Stream(sys.stdin.fileno()), stdout)
