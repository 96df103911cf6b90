"""State: records are atomic, private (0600 in 0700) and locked per deployment."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from provision.errors import ProvisionError
from provision.state import Journal, Record, StateStore


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def record(name="exp1"):
    return Record(name=name, target="azure", created="2026-11-22T09:30:00+00:00")


def test_round_trip_and_permissions(tmp_path):
    store = StateStore(tmp_path / "state")
    rec = record()
    rec.track("vm", "/x/vm").state = "created"
    store.save(rec)
    assert store.load("exp1") == rec
    assert mode(tmp_path / "state") == 0o700
    assert mode(tmp_path / "state" / "exp1") == 0o700
    assert mode(tmp_path / "state" / "exp1" / "record.json") == 0o600
    assert store.names() == ["exp1"]


def test_secrets_are_0600(tmp_path):
    store = StateStore(tmp_path)
    path = store.write_secret("exp1", "jupyter_token", "t0k3n")
    assert mode(path) == 0o600 and store.read_secret("exp1", "jupyter_token") == "t0k3n"


def test_write_is_atomic(tmp_path, monkeypatch):
    store = StateStore(tmp_path)
    store.save(record())
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    changed = record()
    changed.phase = "ready"
    with pytest.raises(OSError):
        store.save(changed)
    assert store.load("exp1").phase == "creating"
    assert sorted(p.name for p in (tmp_path / "exp1").iterdir()) == ["record.json"]


def test_damaged_record_says_what_to_do(tmp_path):
    store = StateStore(tmp_path)
    store.write_secret("exp1", "record.json", "{not json")
    with pytest.raises(ProvisionError, match="provision down exp1"):
        store.load("exp1")


def test_missing_record(tmp_path):
    with pytest.raises(ProvisionError, match="no deployment named 'nope'"):
        StateStore(tmp_path).require("nope")


def test_lock_refuses_a_second_holder_in_another_process(tmp_path):
    store = StateStore(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from provision.state import StateStore;"
            f"s=StateStore(__import__('pathlib').Path({str(tmp_path)!r}));"
            "cm=s.lock('exp1'); cm.__enter__(); print('held', flush=True); time.sleep(30)",
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        waits: list[str] = []
        with pytest.raises(ProvisionError) as refused:
            with store.lock("exp1", wait=1.5, on_wait=waits.append):
                pass
        assert waits == [f"waiting for another provision command on 'exp1' (pid {holder.pid}: provision) ..."]
        assert str(refused.value).startswith(f"another provision command on 'exp1' (pid {holder.pid}: provision)")
        assert "still working after 2 s" in str(refused.value)
        with store.lock("exp2"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with store.lock("exp1"):
        pass


def test_journal_marks_resources(tmp_path):
    store = StateStore(tmp_path)
    journal = Journal(store, record())
    with journal.creating("resource_group", "/rg"):
        assert store.load("exp1").resources[0].state == "creating"
    with pytest.raises(RuntimeError), journal.creating("vm", "/rg/vm"):
        raise RuntimeError("boom")
    assert [(r.kind, r.state) for r in store.load("exp1").resources] == [
        ("resource_group", "created"),
        ("vm", "failed"),
    ]
