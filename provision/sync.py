"""The laptop side of `pull` and `push`: what changed, what to move, and moving it over one channel.

The machine side is bootstrap/transfer.py, run over the OpenSSH client with the deployment's pinned
known_hosts (StrictHostKeyChecking yes): one stream carries every file, with no round trip per file
(bench/transfer.py measures it against scp and rsync). A file counts as changed when its size or mtime (kept
across the copy) differs; a file changed on both sides is compared by SHA-256 before it counts as a conflict.
Conflicts never overwrite: the other side's copy goes beside the file as NAME.remote.EXT (pull) or
NAME.laptop.EXT (push). The sync record (one per node, in the deployment's state directory) remembers the
versions last pulled and pushed.
"""

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pathspec

from bootstrap import transfer
from bootstrap.transfer import CHUNK, IGNORE_FILE, STAGING, Stream, open_staged, remove_empty, staged_name, widen_pipe
from provision.errors import ProvisionError
from provision.output import Output
from provision.state import StateStore

SOURCE = Path(transfer.__file__).read_text()
ALWAYS_IGNORED = [".ipynb_checkpoints/", "__pycache__/", f"{STAGING}/"]

Version = tuple[int, int]  # (size, mtime in ns)


class Link:
    """The machine side of a transfer, running under `argv` (ssh to the node, or a local Python)."""

    def __init__(self, argv: list[str], where: str):
        self.where = where
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=CHUNK
            )
        except FileNotFoundError:
            raise ProvisionError(f"`{argv[0]}` is not installed here: transfers need the OpenSSH client") from None
        assert self._proc.stdin and self._proc.stdout
        self._in, self._out = self._proc.stdin, Stream(self._proc.stdout.fileno())
        widen_pipe(self._out.fd)

    def tell(self, request: dict, flush: bool = True) -> None:
        try:
            self._in.write(json.dumps(request).encode() + b"\n")
            if flush:
                self._in.flush()
        except BrokenPipeError:
            raise self._cut() from None

    def write(self, data: bytes) -> None:
        try:
            self._in.write(data)
        except BrokenPipeError:
            raise self._cut() from None

    def ask(self, request: dict) -> dict:
        self.tell(request)
        return self.answer()

    def answer(self) -> dict:
        line = self._out.line()
        if not line.endswith(b"\n"):
            raise self._cut()
        return json.loads(line)

    def copy(self, fd: int, size: int, advance: Callable[[int], None]) -> None:
        """Exactly `size` bytes of the stream into the file `fd`."""
        try:
            self._out.copy(fd, size, advance)
        except EOFError:
            raise self._cut() from None

    def _cut(self) -> ProvisionError:
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        assert self._proc.stderr
        lines = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
        why = f" ({lines[-1]})" if lines else ""
        return ProvisionError(f"the transfer with {self.where} was cut{why}; run it again: it resumes where it stopped")

    def close(self) -> None:
        with suppress(BrokenPipeError):  # a cut push: what it had not sent yet is moot (close still closes)
            self._in.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        assert self._proc.stdout and self._proc.stderr
        self._proc.stdout.close()
        self._proc.stderr.close()

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SyncRecord:
    """What one node's files were when last pulled (into `dest`) and pushed: sync-nodeK.json, 0600."""

    def __init__(self, store: StateStore, name: str, node: int):
        self._store, self._name, self._file = store, name, f"sync-node{node}.json"
        data = json.loads(store.read_secret(name, self._file) or "{}")
        self.dest: str = data.get("dest", "")
        self.pulled: dict[str, Version] = {k: tuple(v) for k, v in data.get("pulled", {}).items()}
        self.pushed: dict[str, Version] = {k: tuple(v) for k, v in data.get("pushed", {}).items()}

    def pulled_into(self, dest: Path) -> dict[str, Version]:
        """The versions last pulled, when they were pulled into `dest` (another folder starts afresh)."""
        if self.dest != str(dest.resolve()):
            self.dest, self.pulled = str(dest.resolve()), {}
        return self.pulled

    def save(self) -> None:
        data = {"dest": self.dest, "pulled": self.pulled, "pushed": self.pushed}
        self._store.write_secret(self._name, self._file, json.dumps(data))


@dataclass
class Moved:
    """What a transfer moved, and the conflicts it set beside."""

    files: int = 0
    size: int = 0
    resumed: int = 0  # bytes a cut transfer had staged, not sent again
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (file kept, where the other copy went)


@dataclass
class _File:
    path: str  # relative, as on the machine
    version: Version
    to: str  # where it goes (relative): `path`, or the conflict's name beside it
    offset: int = 0


def ignored(*texts: str) -> pathspec.GitIgnoreSpec:
    """The ignore rules: always the checkpoints and caches, plus .provisionignore files' lines."""
    lines = [*ALWAYS_IGNORED, *(line for text in texts for line in text.splitlines())]
    return pathspec.GitIgnoreSpec.from_lines(lines)


def project_ignore(directory: Path | None = None) -> str:
    """The laptop project's .provisionignore (in the current directory), if any."""
    path = (directory or Path.cwd()) / IGNORE_FILE
    return path.read_text() if path.is_file() else ""


def beside(path: str, side: str) -> str:
    """a/b/data.csv -> a/b/data.SIDE.csv: where the other side's copy of a conflict goes."""
    p = PurePosixPath(path)
    return str(p.with_name(f"{p.stem}.{side}{p.suffix}"))


def _version(path: str | Path) -> Version | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _listing(link: Link, extra_ignore: str) -> dict[str, Version]:
    answer = link.ask({"op": "list"})
    spec = ignored(answer["ignore"], extra_ignore)
    return {path: (size, mtime) for path, size, mtime in answer["files"] if not spec.match_file(path)}


def _same_content(link: Link, pairs: list[tuple[str, Path]]) -> list[bool]:
    """Whether each machine file (relative) holds the same bytes as the local one, by SHA-256."""
    if not pairs:
        return []
    hashes = link.ask({"op": "hash", "paths": [remote for remote, _ in pairs]})["hashes"]
    return [h == transfer.sha256(str(local)) for h, (_, local) in zip(hashes, pairs, strict=True)]


def plan_pull(link: Link, dest: Path, record: SyncRecord, extra_ignore: str) -> list[_File]:
    """What changed on the machine since the last pull, and where each file goes here. A local file is
    overwritten only if it is still as last pulled; changed on both sides, it is kept and the machine's copy
    goes beside it (unless their bytes are the same)."""
    remote = _listing(link, extra_ignore)
    pulled = record.pulled_into(dest)
    fetch, unsure = [], []
    here = str(dest)
    for path, version in remote.items():
        local = _version(os.path.join(here, path))
        if local == version:
            pulled[path] = version
        elif local is None or local == pulled.get(path):
            fetch.append(_File(path, version, path))
        elif version != pulled.get(path):  # both changed (or never pulled): compare the bytes
            unsure.append(path)
    for path, same in zip(unsure, _same_content(link, [(p, dest / p) for p in unsure]), strict=True):
        if same:
            os.utime(dest / path, ns=(remote[path][1],) * 2)
            pulled[path] = remote[path]
        elif _version(dest / beside(path, "remote")) != remote[path]:
            fetch.append(_File(path, remote[path], beside(path, "remote")))
    return fetch


def pull(link: Link, dest: Path, record: SyncRecord, out: Output, extra_ignore: str = "") -> Moved:
    """Copy what changed on the machine into `dest`, resuming staged files; the record remembers it."""
    fetch = plan_pull(link, dest, record, extra_ignore)
    staging = dest / STAGING
    staged = _sizes(staging)
    for f in fetch:
        f.offset = min(staged.get(staged_name(f.path, *f.version), 0), f.version[0])
    moved = Moved(conflicts=[(f.path, f.to) for f in fetch if f.to != f.path])
    try:
        if fetch:
            staging.mkdir(parents=True, exist_ok=True)
            link.tell({"op": "get", "files": [[f.path, f.offset, *f.version] for f in fetch]})
            with _progress(out, f"pulling from {link.where}", sum(f.version[0] - f.offset for f in fetch)) as bar:
                receiver = _Receiver(link, str(dest), str(staging), bar, record, moved)
                for f in fetch:
                    receiver.take(f)
            remove_empty(staging)
    finally:
        record.save()
    return moved


@dataclass
class _Receiver:
    """Files of a pull, as they come: each staged, then renamed into place with its mtime (paths as strings, and
    each folder made once: thousands of small files cost little more than their bytes)."""

    link: Link
    dest: str
    staging: str
    bar: Callable[[int], None]
    record: SyncRecord
    moved: Moved
    folders: set[str] = field(default_factory=set)  # made, or found there

    def take(self, f: _File) -> None:
        header = self.link.answer()
        if "missing" in header:  # deleted on the machine since it was listed
            return
        version, offset = (header["size"], header["mtime"]), header["offset"]
        staged = os.path.join(self.staging, staged_name(f.path, *version))
        fd = open_staged(staged, offset)
        try:
            self.link.copy(fd, version[0] - offset, self.bar)
        finally:
            os.close(fd)
        if not self.link.answer()["ok"]:  # it changed while it was read: the next pull takes the new one
            os.unlink(staged)
            return
        final = os.path.join(self.dest, f.to)
        folder = os.path.dirname(final)
        if folder not in self.folders:
            os.makedirs(folder, exist_ok=True)
            self.folders.add(folder)
        os.replace(staged, final)
        os.utime(final, ns=(version[1], version[1]))
        if f.to == f.path:
            self.record.pulled[f.path] = version
        self.moved.files += 1
        self.moved.size += version[0]
        self.moved.resumed += offset


def local_files(sources: list[Path], dest: str, spec: pathspec.GitIgnoreSpec) -> dict[str, Path]:
    """Each laptop file to push, by its path under the work directory: a file as dest/NAME, a directory's
    files as dest/DIR/..., ignore rules applied (relative to the directory pushed)."""
    files: dict[str, Path] = {}
    for source in sources:
        base = PurePosixPath(dest) / source.name if dest else PurePosixPath(source.name)
        if source.is_file():
            files[str(base)] = source
            continue
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source).as_posix()
            if path.is_file() and not spec.match_file(rel):
                files[str(base / rel)] = path
    return files


def push(link: Link, files: dict[str, Path], record: SyncRecord, out: Output, extra_ignore: str = "") -> Moved:
    """Copy laptop files into the work directory: a machine file is overwritten only if it is still as last
    pulled or pushed; changed there, the laptop's copy goes beside it as NAME.laptop.EXT."""
    remote = _listing(link, extra_ignore)
    send, unsure = [], []
    for path, source in files.items():
        version, there = _version(source), remote.get(path)
        assert version is not None
        if there == version:
            record.pushed[path] = version
        elif there is None or there in (record.pulled.get(path), record.pushed.get(path)):
            send.append(_File(path, version, path))
        else:
            unsure.append(path)
    for path, same in zip(unsure, _same_content(link, [(p, files[p]) for p in unsure]), strict=True):
        if not same:
            send.append(_File(path, _version(files[path]) or (0, 0), beside(path, "laptop")))
    moved = Moved(conflicts=[(f.path, f.to) for f in send if f.to != f.path])
    if send:
        offsets = link.ask({"op": "staged", "files": [[f.to, *f.version] for f in send]})["offsets"]
        with _progress(out, f"pushing to {link.where}", sum(f.version[0] for f in send) - sum(offsets)) as bar:
            for f, offset in zip(send, offsets, strict=True):
                _send(link, f, files[f.path], offset, bar)
                if f.to == f.path:
                    record.pushed[f.path] = f.version
                moved.files, moved.size = moved.files + 1, moved.size + f.version[0]
                moved.resumed += offset
    errors = link.ask({"op": "done"})["errors"]
    record.save()
    if errors:
        raise ProvisionError(f"the machine could not write {len(errors)} file(s): {'; '.join(errors[:3])}")
    return moved


def _send(link: Link, f: _File, source: Path, offset: int, bar) -> None:
    link.tell({"op": "put", "path": f.to, "size": f.version[0], "mtime": f.version[1], "offset": offset}, flush=False)
    with source.open("rb", buffering=0) as file:
        file.seek(offset)
        left = f.version[0] - offset
        while left:
            block = file.read(min(CHUNK, left))
            if not block:
                raise ProvisionError(f"{source} shrank while it was pushed: push it again")
            link.write(block)
            left -= len(block)
            bar(len(block))


def _sizes(directory: Path) -> dict[str, int]:
    """The size of each file in `directory` (none where it is not there), by name: one listing, not a stat each."""
    try:
        with os.scandir(directory) as entries:
            return {entry.name: entry.stat().st_size for entry in entries}
    except OSError:
        return {}


@contextmanager
def _progress(out: Output, label: str, total: int) -> Iterator:
    """A progress bar over `total` bytes on a terminal (nothing otherwise); yields advance(n)."""
    if out.quiet or not out.err.is_terminal:
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn  # only for a bar shown

    columns = ("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=out.err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
