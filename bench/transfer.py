"""`provision pull` next to OpenSSH `scp` and `rsync -e ssh`, in one run, over loopback against a real sshd.

Boots a fake VM (a real sshd on 127.0.0.1 as a fresh user: run as root), then pulls its work directory with
`provision pull` (its own process, the pinned known_hosts of a deployment record made here) and with the OpenSSH
tools given the same key and known_hosts:

- one 256 MiB file: the kit vs `scp` (goal: at least 0.8x scp's throughput);
- 2,000 files of 4 KiB: the kit vs `rsync -a -e ssh` (goal: at least 0.5x rsync's);
- a second pull of those 2,000 files with nothing changed (goal: under 2 s).

Each figure is the best of --rounds runs, the contenders taking turns within each round. All of them use OpenSSH's
default cipher (the kit picks none). The load average before and after is printed: on a shared machine the
figures move with it.

    .venv/bin/python bench/transfer.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provision.sshfiles import KNOWN_HOSTS, write_known_hosts
from provision.state import Record, StateStore
from provision.targets import Machine
from tests.fakes.sshd import free_port
from tests.fakes.vm import FakeVMs, new_machine

NAME = "bench"
BIG = 256 << 20
SMALL, SMALL_SIZE = 2000, 4096


def side_by_side(rounds: int, *runs: tuple[Callable[[], None], Callable[[], None]]) -> list[float]:
    """Each (prepare, run) pair's fastest of `rounds` timed runs, taken in turn within each round, so that a
    change in the machine's load falls on every contender alike; `prepare` is not timed."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for (prepare, run), taken in zip(runs, times, strict=True):
            prepare()
            started = time.perf_counter()
            run()
            taken.append(time.perf_counter() - started)
    return [min(taken) for taken in times]


def fresh(path: Path) -> Callable[[], None]:
    return lambda: shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    scratch.chmod(0o755)
    fake = new_machine(scratch, free_port())
    ep = fake.endpoint
    machine = Machine(host=ep.host, port=ep.port, user=ep.user, key_path=str(ep.key_path), host_key=ep.host_key)
    store = StateStore(scratch / "state")
    node = machine.to_dict()
    store.save(Record(name=NAME, target="azure", created="now", machine=node, nodes=[node], jupyter={"root": "bench"}))
    write_known_hosts(store, NAME, machine)
    ssh = [
        "-i",
        str(ep.key_path),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={store.root / NAME / KNOWN_HOSTS}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
    ]
    provision = [os.path.join(os.path.dirname(sys.executable), "provision"), "pull", NAME, "--quiet", "--to"]
    env = {**os.environ, "PROVISION_STATE_DIR": str(store.root)}

    def kit_pull(dest: Path) -> None:
        """`provision pull` as a user runs it, in a process of its own (this one runs the fake VM's threads)."""
        subprocess.run([*provision, str(dest)], check=True, env=env, stdout=subprocess.DEVNULL)

    with FakeVMs() as vms:
        vms.boot(fake.spec)
        home = Path(os.path.expanduser(f"~{ep.user}"))
        work = home / "notebooks"

        def as_user(*argv: str) -> None:
            subprocess.run(["runuser", "-u", ep.user, "--", *argv], check=True)

        as_user("mkdir", "-p", str(work / "small"))
        as_user("dd", "if=/dev/urandom", f"of={work / 'big.bin'}", "bs=1M", f"count={BIG >> 20}", "status=none")

        kit_dir, scp_dir = scratch / "kit-big", scratch / "scp-big"
        remote = f"{ep.user}@{ep.host}"
        scp = ["scp", "-q", "-P", str(ep.port), *ssh, f"{remote}:notebooks/big.bin", str(scp_dir / "big.bin")]
        kit_big, scp_big = side_by_side(
            rounds,
            (fresh(kit_dir), lambda: kit_pull(kit_dir)),
            (lambda: scp_dir.mkdir(exist_ok=True), lambda: subprocess.run(scp, check=True)),
        )
        assert (kit_dir / "big.bin").stat().st_size == BIG == (scp_dir / "big.bin").stat().st_size

        (work / "big.bin").unlink()
        for i in range(SMALL):
            (work / "small" / f"f{i:04d}.txt").write_bytes(os.urandom(SMALL_SIZE))
        subprocess.run(["chown", "-R", f"{ep.user}:", str(work)], check=True)
        kit_small_dir, rsync_dir = scratch / "kit-small", scratch / "rsync-small"
        shell = " ".join(["ssh", "-p", str(ep.port), *ssh])
        rsync = ["rsync", "-a", "-e", shell, f"{remote}:notebooks/small/", f"{rsync_dir}/"]
        kit_small, rsync_small = side_by_side(
            rounds,
            (fresh(kit_small_dir), lambda: kit_pull(kit_small_dir)),
            (fresh(rsync_dir), lambda: subprocess.run(rsync, check=True)),
        )
        assert len(list((kit_small_dir / "small").iterdir())) == SMALL == len(list(rsync_dir.iterdir()))
        [unchanged] = side_by_side(rounds, (lambda: None, lambda: kit_pull(kit_small_dir)))

    shutil.rmtree(scratch, ignore_errors=True)
    mib = BIG / (1 << 20)
    small_mib = SMALL * SMALL_SIZE / (1 << 20)
    rows = [
        (
            "256 MiB file",
            f"kit {mib / kit_big:7.1f} MiB/s",
            f"scp   {mib / scp_big:7.1f} MiB/s",
            scp_big / kit_big,
            0.8,
        ),
        (
            "2000 x 4 KiB",
            f"kit {kit_small:7.2f} s    ",
            f"rsync {rsync_small:7.2f} s    ",
            rsync_small / kit_small,
            0.5,
        ),
    ]
    print(
        f"transfer over loopback ssh, best of {rounds} (kit: `provision pull`, its own process; {small_mib:.1f} MiB small;"
        f" load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after)"
    )
    for label, kit, other, ratio, goal in rows:
        print(f"  {label:14} {kit}   {other}   {ratio:.2f}x (goal >= {goal}x): {'ok' if ratio >= goal else 'MISSED'}")
    verdict = "ok" if unchanged < 2 else "MISSED"
    print(f"  {'second pull':14} kit {unchanged:7.2f} s     nothing changed, 2000 files (goal < 2 s): {verdict}")


if __name__ == "__main__":
    main()
