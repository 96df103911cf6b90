"""Shared fixtures: a private state directory, the fake ARM, and `provision` run in-process."""

import io
import os
import secrets
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import pytest

# jsonschema's optional IRI format check builds its grammar (2.5 s) on import, in each worker; no test validates an
# IRI. Left out here as in the fake VMs (tests/fakes/vm.py).
sys.modules.setdefault("rfc3987_syntax", None)

from provision import tunnel  # noqa: E402
from provision.state import StateStore  # noqa: E402
from tests.fakes.arm import FAST, FakeARM, RecordingBooter, user_token  # noqa: E402
from tests.fakes.scenarios import pytest_runtest_logreport, pytest_terminal_summary  # noqa: F401, E402 (fault suite summary)
from tests.fakes.sshd import free_port  # noqa: E402
from tests.fakes.vm import CONDA_DIR, FakeVMs, leftovers  # noqa: E402


def pytest_configure(config):
    """A suite started in the background (`cmd &` in a script) inherits SIGINT ignored, and every process it starts
    would too: the Ctrl-C tests would then test nothing. A handler of our own is reset to the default at exec."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items):
    """Tests on the whole fake cloud first (they take seconds each): under `--dist worksteal` the fast ones fill the
    end, so neither worker waits alone on a long test."""
    items.sort(key=lambda item: "cloud" not in getattr(item, "fixturenames", ()))


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
    # No test asks the real Retail Prices API: prices come from the shipped table unless a test serves them.
    monkeypatch.setenv("PROVISION_PRICES_ENDPOINT", "http://127.0.0.1:9/api/retail/prices")
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
    with FakeARM(booter=booter, time_scale=FAST) as fake:
        yield fake


def arm_env(arm, state_dir) -> dict[str, str]:
    """Environment that points `provision` at a fake ARM."""
    return {
        "PROVISION_ARM_ENDPOINT": arm.url,
        "PROVISION_ARM_CA_BUNDLE": arm.ca_bundle,
        "PROVISION_ARM_TOKEN": user_token(),  # the test principal, TEST_OID
        "AZURE_SUBSCRIPTION_ID": arm.subscription_id,
        "PROVISION_ALLOW_IP": "127.0.0.1/32",
        "PROVISION_POLL_INTERVAL": "0.02",
        "PROVISION_STATE_DIR": str(state_dir),
        "PROVISION_YES": "1",  # as in CI: create without the price question (tests of the question unset it)
    }


@pytest.fixture
def azure_env(arm, state_dir, monkeypatch):
    """The fake ARM in this process's environment; returned for subprocesses too."""
    env = arm_env(arm, state_dir)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@dataclass
class Cloud:
    arm: FakeARM
    vms: FakeVMs
    env: dict[str, str]

    @property
    def user(self) -> str:
        return self.env["PROVISION_ADMIN_USER"]


# The fake VM's Python that suits (see tests/fakes/vm.py). Told to the kit, `up` probes it alone instead of
# importing torch in every candidate; tests marked probes_every_python keep the kit's own search.
SUITABLE_PYTHON = f"~/{CONDA_DIR}/envs/py38_default/bin/python"


@pytest.fixture
def cloud(state_dir, monkeypatch, request):
    """The whole fake cloud: the fake ARM whose VMs boot a real sshd (as a unique user).

    The kit is given a free port for SSH (PROVISION_SSH_PORT); it reaches the fake VM's sshd
    only through the VM's customData, as it would reach a real VM's.
    At teardown nothing may be left: no user, no sshd, no process of ours.
    """
    vms = FakeVMs()
    with vms, FakeARM(booter=vms, loopback_private_ips=True, time_scale=FAST) as fake:
        env = {
            **arm_env(fake, state_dir),
            "PROVISION_SSH_PORT": str(free_port()),
            "PROVISION_ADMIN_USER": "dsvm" + secrets.token_hex(4),
            "PROVISION_DATASET": "digits",
        }
        if not request.node.get_closest_marker("probes_every_python"):
            env["PROVISION_REMOTE_PYTHON"] = SUITABLE_PYTHON
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield Cloud(fake, vms, env)
        close_tunnels_of_recorded(state_dir)
    assert leftovers(env["PROVISION_ADMIN_USER"], None) == []


def close_tunnels_of_recorded(state_dir) -> None:
    """A test that fails before its `down` leaves the tunnel of `up --detach` or `start --detach` running, which the
    leftover check would add to the failure as a running orphan. Close the tunnel of every deployment still
    recorded; after a `down` none is, so a tunnel that `down` left stays for the check to find."""
    store = StateStore(state_dir)
    for name in store.names():
        tunnel.stop(store, name)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def console(*argv: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
    """Run the `provision` console script in a new process, importing this checkout's code."""
    script = os.path.join(os.path.dirname(sys.executable), "provision")
    path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [script, *argv],
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def provision(*argv: str) -> Result:
    """Run the CLI in this process, as a user would from a shell (minus the new process)."""
    from provision.cli import run

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(list(argv))
    return Result(int(code), out.getvalue(), err.getvalue())
