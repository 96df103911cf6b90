"""`provision pull`, `push` and the save `down` makes first, against the fake VM's real sshd over the OpenSSH
client with the pinned known_hosts: round trips byte for byte, conflicts set beside, ignore rules, a pull cut
mid-file that resumes, a stopped VM that down refuses to delete unsaved, and workers' files under nodeK/."""

import os
import re
import threading
from pathlib import Path

import pytest

from bootstrap.transfer import Stream
from provision.state import StateStore
from tests.conftest import provision
from tests.test_e2e import home_of


def up(name: str, *more: str) -> None:
    result = provision("up", "--name", name, "--detach", "--skip-check", *more)
    assert result.exit_code == 0, result.stderr


def on_vm(cloud, relative: str, data: bytes, mtime: int | None = None) -> Path:
    """Write a file into the VM's work directory as its user would (same owner, as the test runs as root)."""
    home = home_of(cloud.user)
    path = home / "notebooks" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    for p in [path, *path.relative_to(home).parents]:
        os.chown(home / p, home.stat().st_uid, home.stat().st_gid)
    return path


# Faults on the machine: its side of the transfer is cut off after 5 MB of output, or of input. The cut passes each
# read on at once, as small requests and answers need (head holds them in its buffer), and counts bytes (dd counts
# reads, and sshd writes the input a packet at a time).
CUT = "import os\nleft = 5_000_000\nwhile left and (block := os.read(0, min(left, 65536))):\n    left -= os.write(1, block)"
CUT_AFTER_5_MB = f'python3() {{ command python3 "$@" | command python3 -c "{CUT}"; }}\n'
CUT_INPUT_AFTER_5_MB = f'python3() {{ command python3 -c "{CUT}" | command python3 "$@"; }}\n'


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_push_pull_round_trip_conflict_ignores_a_cut_pull_resumes_and_down_saves_new_work(cloud, state_dir, tmp_path):
    up("trip")
    project = tmp_path / "data"
    (project / "deep dir").mkdir(parents=True)
    (project / "weights.bin").write_bytes(os.urandom(3 << 20))
    (project / "deep dir" / "it's $(here).txt").write_text("quoted")
    (project / "__pycache__").mkdir()
    (project / "__pycache__" / "x.pyc").write_bytes(b"cache")
    pushed = provision("push", "trip", str(project), "--dest", "inputs")
    assert pushed.exit_code == 0, pushed.stderr
    assert "pushed into ~/notebooks/inputs on 'trip': 2 file(s), 3.0 MiB" in pushed.stdout
    remote_root = home_of(cloud.user) / "notebooks" / "inputs" / "data"
    assert files_under(remote_root) == {k: v for k, v in files_under(project).items() if "__pycache__" not in k}

    (tmp_path / ".provisionignore").write_text("*.tmp\n")  # the laptop project's rules
    on_vm(cloud, ".provisionignore", b"scratch/\n")  # the work directory's own
    on_vm(cloud, "scratch/big.bin", b"x" * 1000)
    on_vm(cloud, "notes.tmp", b"tmp")
    on_vm(cloud, ".ipynb_checkpoints/old-checkpoint.ipynb", b"{}")
    pulled = provision("pull", "trip")
    assert pulled.exit_code == 0, pulled.stderr
    assert "pulled from 'trip' into work/trip/: " in pulled.stdout
    local = tmp_path / "work" / "trip"
    assert files_under(local / "inputs" / "data") == files_under(remote_root)  # byte-identical round trip
    assert not (local / "scratch").exists() and not (local / "notes.tmp").exists()
    assert not (local / ".ipynb_checkpoints").exists() and (local / ".provisionignore").exists()
    assert "first_pytorch_classifier.ipynb" in os.listdir(local)  # what up pushed is there too
    again = provision("pull", "trip")
    assert again.exit_code == 0 and again.stdout.strip().endswith(": 0 file(s), 0 B"), again.stdout

    mine = local / "inputs" / "data" / "weights.bin"
    mine.write_bytes(b"changed on the laptop")
    theirs = on_vm(cloud, "inputs/data/weights.bin", b"changed on the machine", mtime=1_700_000_000).read_bytes()
    conflict = provision("pull", "trip")
    assert conflict.exit_code == 0, conflict.stderr
    assert mine.read_bytes() == b"changed on the laptop"  # never overwritten
    assert (local / "inputs" / "data" / "weights.remote.bin").read_bytes() == theirs
    assert (
        "inputs/data/weights.bin changed on both sides since the last pull: kept as it was; the remote copy is "
        "inputs/data/weights.remote.bin" in " ".join(conflict.stderr.split())
    )
    back = provision("push", "trip", str(mine), "--dest", "inputs/data")  # changed there too: set beside it
    assert back.exit_code == 0, back.stderr
    assert theirs == (remote_root / "weights.bin").read_bytes()
    assert (remote_root / "weights.laptop.bin").read_bytes() == b"changed on the laptop"

    big = on_vm(cloud, "model.pt", os.urandom(24 << 20)).read_bytes()
    cut = cloud.vms.traps.arm("provision-transfer", snippet=CUT_AFTER_5_MB)
    first = provision("pull", "trip")
    assert cut.wait(5)
    assert first.exit_code != 0 and "was cut" in first.stderr and "resumes where it stopped" in first.stderr
    assert "Traceback" not in first.stderr and not (local / "model.pt").exists()
    [staged] = (local / ".provision-partial").iterdir()
    assert 4_000_000 < staged.stat().st_size < 5_000_000
    second = provision("pull", "trip")  # model.pt, and the laptop's copy pushed beside weights.bin
    assert second.exit_code == 0, second.stderr
    assert re.search(r": 2 file\(s\), 24\.0 MiB \(resumed 4\.\d MiB staged by a cut transfer\)", second.stdout)
    assert (local / "model.pt").read_bytes() == big and not (local / ".provision-partial").exists()

    data = tmp_path / "data.bin"  # pushed under scratch/, which the machine's .provisionignore keeps out of pulls
    data.write_bytes(os.urandom(8 << 20))
    cut = cloud.vms.traps.arm("provision-transfer", snippet=CUT_INPUT_AFTER_5_MB)
    first = provision("push", "trip", str(data), "--dest", "scratch")
    assert cut.wait(5)
    assert first.exit_code != 0 and "was cut" in first.stderr and "resumes where it stopped" in first.stderr
    assert "Traceback" not in first.stderr and not (home_of(cloud.user) / "notebooks" / "scratch" / "data.bin").exists()
    [staged] = (home_of(cloud.user) / "notebooks" / ".provision-partial").iterdir()
    assert 4_000_000 < staged.stat().st_size < 5_000_000
    second = provision("push", "trip", str(data), "--dest", "scratch")
    assert second.exit_code == 0, second.stderr
    assert re.search(r": 1 file\(s\), 8\.0 MiB \(resumed 4\.\d MiB staged by a cut transfer\)", second.stdout)
    assert (home_of(cloud.user) / "notebooks" / "scratch" / "data.bin").read_bytes() == data.read_bytes()
    assert not (home_of(cloud.user) / "notebooks" / ".provision-partial").exists()

    result = on_vm(cloud, "results/after-up.csv", os.urandom(100_000)).read_bytes()
    down = provision("down", "trip", "--yes")
    assert down.exit_code == 0, down.stderr
    assert "saved the work of 'trip' into work/trip/: 1 file(s), 97.7 KiB" in down.stdout, down.stdout
    assert (local / "results" / "after-up.csv").read_bytes() == result
    assert cloud.arm.inventory() == []


def test_down_of_a_stopped_deployment_refuses_and_deletes_nothing(cloud, state_dir, tmp_path):
    up("halt")
    assert provision("stop", "halt").exit_code == 0
    inventory = cloud.arm.inventory()
    down = provision("down", "halt", "--yes")
    assert down.exit_code != 0
    assert down.stderr.count("\n") == 1, down.stderr
    assert (
        "'halt' is deallocated: its work directory cannot be read to save it; `provision start halt` first (about 3 "
        "min of compute" in down.stderr
    )
    assert "or `provision down halt --discard` to delete it unsaved" in down.stderr
    assert cloud.arm.inventory() == inventory and StateStore(state_dir).load("halt") is not None
    gone = provision("down", "halt", "--yes", "--discard")
    assert gone.exit_code == 0, gone.stderr
    assert "discarding the work directory of 'halt' unread: its VM is deallocated" in " ".join(gone.stderr.split())
    assert cloud.arm.inventory() == []


def test_workers_files_come_into_node_k_and_down_discard_leaves_no_copy(cloud, state_dir, tmp_path):
    up("duo", "--nodes", "2")
    data = on_vm(cloud, "shared.txt", b"on every node").read_bytes()  # the fake's nodes share one user and home
    worker_sshd = next(s for s in map(cloud.vms.sshd, cloud.vms.running()) if s.address != "127.0.0.1")
    logins = worker_sshd.log().count("Accepted publickey")
    one = provision("pull", "duo", "--node", "1", "--to", "mine")
    assert one.exit_code == 0, one.stderr
    assert "pulled from 'duo' into mine/: " in one.stdout
    assert (tmp_path / "mine" / "node1" / "shared.txt").read_bytes() == data
    assert not (tmp_path / "mine" / "shared.txt").exists()  # node 1 only
    assert worker_sshd.log().count("Accepted publickey") > logins  # node1's files came from node1's own sshd
    pulled = provision("pull", "duo")
    assert pulled.exit_code == 0, pulled.stderr
    local = tmp_path / "work" / "duo"
    assert (local / "shared.txt").read_bytes() == data == (local / "node1" / "shared.txt").read_bytes()
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"for every node")
    logins = worker_sshd.log().count("Accepted publickey")
    pushed = provision("push", "duo", str(notes), "--all-nodes")
    assert pushed.exit_code == 0, pushed.stderr
    assert "pushed into ~/notebooks on every node of 'duo'" in pushed.stdout, pushed.stdout
    assert (home_of(cloud.user) / "notebooks" / "notes.txt").read_bytes() == b"for every node"
    assert worker_sshd.log().count("Accepted publickey") > logins  # node 1 was reached, through its own sshd
    on_vm(cloud, "unsaved.txt", b"lost")
    down = provision("down", "duo", "--yes", "--discard")
    assert down.exit_code == 0, down.stderr
    # notes.txt and unsaved.txt, seen from each node: neither was pulled into work/duo/
    assert "discarded 4 file(s) changed on 'duo' since the last pull (--discard)" in " ".join(down.stderr.split())
    assert not (local / "unsaved.txt").exists() and not (local / "node1" / "unsaved.txt").exists()
    assert "saved" not in down.stdout and cloud.arm.inventory() == []


@pytest.mark.parametrize("splice", [True, False], ids=["os.splice", "blocks"])
def test_a_stream_copies_a_file_between_its_lines_with_splice_or_in_blocks(tmp_path, monkeypatch, splice):
    """Both ways a pulled or pushed file leaves the pipe: os.splice (Linux), and blocks (macOS, or a file system
    that refuses splice), which the end-to-end tests here, on Linux, take only for what is buffered."""
    if not splice:
        monkeypatch.delattr(os, "splice")
    data = os.urandom(3 << 20)
    read_end, write_end = os.pipe()

    def write() -> None:
        with open(write_end, "wb") as pipe:
            pipe.write(b'{"size": 3145728}\n' + data + b'{"ok": true}\n')

    writer = threading.Thread(target=write)
    writer.start()
    stream, copied = Stream(read_end), []
    with open(tmp_path / "file", "wb") as file:
        assert stream.line() == b'{"size": 3145728}\n'
        stream.copy(file.fileno(), len(data), copied.append)
    writer.join()
    assert stream.line() == b'{"ok": true}\n' and stream.line() == b""
    assert (tmp_path / "file").read_bytes() == data and sum(copied) == len(data)
    os.close(read_end)
