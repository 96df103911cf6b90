"""`environment = "requirements.txt"` end to end against the fake cloud: `up` builds the project's kernel on the
VM (real pip from the package index), the check runs in it, a re-run builds nothing, `env lock` writes what a
rebuild reproduces, a torch swap is refused in one line; on two nodes every node gets it and `provision run`
uses it."""

import json
import pwd
import re
import shutil
from importlib.metadata import version
from pathlib import Path

from bootstrap import envbuild
from provision.state import StateStore
from tests.conftest import REPO, provision
from tests.fakes.wheels import wheel


def home_of(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir)


def test_up_builds_the_project_kernel_once_runs_the_check_in_it_locks_it_and_refuses_a_torch_swap(
    cloud, state_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", REPO)  # the detached tunnel imports this checkout
    (tmp_path / "requirements.txt").write_text("inflection\npython-slugify\n")  # the latter brings text-unidecode
    toml = tmp_path / "provision.toml"
    toml.write_text('name = "team"\nenvironment = "requirements.txt"\n')

    up = provision("up", "--detach", "--allow-cpu")
    assert up.exit_code == 0, up.stderr
    record = StateStore(state_dir).require("team")
    env = record.environment
    assert env["kernel"] == "team" and env["python"] == f"{home_of(cloud.user)}/.dsvm-kit/envs/{env['name']}/bin/python"
    assert re.search(rf"built {env['name']}: .*inflection 0.5.1", up.stderr), up.stderr
    assert record.check["passed"] and record.check["python"] == env["python"]  # the check ran in that kernel
    spec = json.loads((home_of(cloud.user) / ".dsvm-kit/jupyter/kernels/team/kernel.json").read_text())
    assert spec["argv"][0] == env["python"]
    marker = Path(env["path"]) / envbuild.MARKER
    built_at = marker.stat().st_mtime_ns

    again = provision("up", "--detach", "--allow-cpu")
    assert again.exit_code == 0, again.stderr
    assert f"{env['name']} is built already (same content): nothing to do" in again.stderr
    assert "the GPU check passed on this machine" in again.stderr  # same environment: not run again
    assert marker.stat().st_mtime_ns == built_at

    lock = provision("env", "lock")
    assert lock.exit_code == 0, lock.stderr
    locked = (tmp_path / "requirements.lock.txt").read_text()
    pins = [line for line in locked.splitlines() if not line.startswith("#")]
    assert sorted(pin.split("==")[0].lower() for pin in pins) == ["inflection", "python-slugify", "text-unidecode"]
    toml.write_text('name = "team"\nenvironment = "requirements.lock.txt"\n')
    relock = provision("up", "--detach", "--skip-check")
    assert relock.exit_code == 0, relock.stderr
    now = StateStore(state_dir).require("team")
    built = re.search(rf"built {now.environment['name']}: (.*); removed {env['name']}$", relock.stderr, re.M)
    assert built and sorted(built.group(1).split(", ")) == sorted(pin.replace("==", " ") for pin in pins)
    assert not Path(env["path"]).exists()

    wheels = home_of(cloud.user) / "wheels"
    wheels.mkdir()
    shutil.chown(wheels, cloud.user)
    torch_wheel = wheel(wheels, "torch", "0.0.1")
    (tmp_path / "swap.txt").write_text(f"inflection\ntorch @ file://{torch_wheel}\n")
    toml.write_text('name = "team"\nenvironment = "swap.txt"\n')
    refused = provision("up", "--detach", "--skip-check")
    assert refused.exit_code == 1
    error = refused.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: swap.txt would replace the image's torch {version('torch')} with torch 0.0.1 ("), (
        error
    )
    assert "--environment-allow-torch" in error and "Traceback" not in refused.stderr
    kept = StateStore(state_dir).require("team")
    assert kept.environment == now.environment and Path(now.environment["python"]).exists()
    assert provision("down", "team", "--yes").exit_code == 0


def test_every_node_gets_the_environment_and_provision_run_uses_it(cloud, state_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", REPO)
    (tmp_path / "requirements.txt").write_text("inflection\n")
    up = provision(
        "up", "--name", "pair", "--nodes", "2", "--environment", "requirements.txt", "--skip-check", "--detach"
    )
    assert up.exit_code == 0, up.stderr
    env = StateStore(state_dir).require("pair").environment
    assert f"Python environment {env['name']} on 1 worker node(s)" in up.stderr
    job = tmp_path / "job"
    job.mkdir()
    (job / "where.py").write_text("import sys, inflection\nprint('python', sys.executable, inflection.__name__)\n")
    run = provision("run", "pair", str(job / "where.py"))
    assert run.exit_code == 0, run.stdout + run.stderr
    ranks = re.findall(r"^node(\d) \[rank(\d)\]:python (\S+) inflection$", run.stdout, re.M)
    assert sorted((node, rank) for node, rank, _ in ranks) == [("0", "0"), ("0", "1"), ("1", "2"), ("1", "3")]
    assert {python for _, _, python in ranks} == {env["python"]}, run.stdout
    assert provision("down", "pair", "--yes").exit_code == 0
