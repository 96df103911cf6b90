"""Shared fixtures: a private state directory, the fake ARM, and `provision` run in-process."""

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import pytest

from tests.fakes.arm import FakeARM, RecordingBooter

# Settings a developer's own environment could carry into a test.
FOREIGN = [k for k in os.environ if k.startswith(("PROVISION_", "AZURE_"))]


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture(autouse=True)
def clean_environment(tmp_path, monkeypatch):
    """No provision.toml, settings or Azure CLI profile from the developer's machine."""
    for key in FOREIGN:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-azure-cli"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    path = tmp_path / "state"
    monkeypatch.setenv("PROVISION_STATE_DIR", str(path))
    return path


@pytest.fixture
def booter():
    return RecordingBooter()


@pytest.fixture
def arm(booter):
    with FakeARM(booter=booter) as fake:
        yield fake


@pytest.fixture
def azure_env(arm, state_dir, monkeypatch):
    """Environment that points `provision` at the fake ARM; returned for subprocesses too."""
    env = {
        "PROVISION_ARM_ENDPOINT": arm.url,
        "PROVISION_ARM_CA_BUNDLE": arm.ca_bundle,
        "PROVISION_ARM_TOKEN": "fake-arm-token",
        "AZURE_SUBSCRIPTION_ID": arm.subscription_id,
        "PROVISION_ALLOW_IP": "127.0.0.1/32",
        "PROVISION_POLL_INTERVAL": "0.02",
        "PROVISION_STATE_DIR": str(state_dir),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def provision(*argv: str) -> Result:
    """Run the CLI in this process, as a user would from a shell (minus the new process)."""
    from provision.cli import run

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(list(argv))
    return Result(int(code), out.getvalue(), err.getvalue())
