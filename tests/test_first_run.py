"""Issue 8, the first run and every re-run: a failure before anything exists leaves nothing,
commands on a deployment read only its name, a running tunnel is found, `plan` sends nothing.

Each failure of `up` before its first write runs the console script against the fake ARM and
must end with rc 1, exactly one `error:` line, no traceback, no rollback, no advice to run
`down`, no write request and no record; the next `up` then succeeds once the fault is gone.

"No credential at all": PROVISION_ARM_TOKEN unset, so DefaultAzureCredential runs. It finds
nothing because AZURE_CONFIG_DIR (the Azure CLI's sign-in) and HOME (the shared token cache,
VS Code, PowerShell and azd sign-ins) are empty directories, and AZURE_TOKEN_CREDENTIALS=dev
leaves out the environment, workload and managed identities, so that no test asks the
instance metadata service at 169.254.169.254 (a CI machine in Azure could have an identity).
"""

import json
import shutil
import socket
import urllib.request

import pytest

from provision.state import StateStore
from tests.conftest import arm_env, console, provision
from tests.fakes.arm import FakeARM, RecordingBooter, user_token
from tests.test_e2e import URL, http

NAME = "first"
TOKEN = user_token()  # the signed-in user's (JWT-shaped: the kit reads its principal)
T4_FAMILY = "standardNCASv3_T4Family"
SUBSCRIPTION_PATH = r"^/subscriptions/[0-9a-f-]+$"
OTHER_SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


def no_credential(tmp_path) -> dict[str, str]:
    home = tmp_path / "empty-home"
    home.mkdir()
    return {
        "PROVISION_ARM_TOKEN": "",
        "AZURE_CONFIG_DIR": str(tmp_path / "no-azure-cli"),
        "HOME": str(home),
        "AZURE_TOKEN_CREDENTIALS": "dev",
    }


def forbidden_read(arm, tmp_path):
    arm.inject(
        "GET",
        SUBSCRIPTION_PATH,
        status=403,
        code="AuthorizationFailed",
        message="The client does not have authorization to perform action 'Microsoft.Resources/subscriptions/read'.",
    )
    return {}


def every_connection_dropped(arm, tmp_path):
    arm.inject("*", r".*", drop_connection=True, times=1000)
    return {}


def no_quota(arm, tmp_path):
    arm.set_quota("eastus", T4_FAMILY, 0)
    return {}


# Each failure: what breaks it (given the fake ARM and a tmp dir; returns the failing `up`'s
# environment), how the fault goes away, and what the one error line must say.
FAILURES = {
    "401 InvalidAuthenticationToken": (
        lambda arm, tmp_path: {"PROVISION_ARM_TOKEN": "an-expired-token"},
        lambda arm: None,
        "InvalidAuthenticationToken: The access token is invalid. (your Azure sign-in has expired",
    ),
    "404 SubscriptionNotFound": (
        lambda arm, tmp_path: {"AZURE_SUBSCRIPTION_ID": OTHER_SUBSCRIPTION},
        lambda arm: None,
        f"SubscriptionNotFound: The subscription '{OTHER_SUBSCRIPTION}' could not be found.",
    ),
    "403 on the first read": (forbidden_read, lambda arm: arm.clear_faults(), "AuthorizationFailed: The client"),
    "connections dropped on every request": (
        every_connection_dropped,
        lambda arm: arm.clear_faults(),
        "did not answer",
    ),
    "no credential at all": (
        lambda arm, tmp_path: no_credential(tmp_path),
        lambda arm: None,
        "no Azure credentials found: run `az login`",
    ),
    "preflight refusal (no quota)": (
        no_quota,
        lambda arm: arm.set_quota("eastus", T4_FAMILY, 100),
        "no quota for Standard_NC4as_T4_v3 in eastus: family standardNCASv3_T4Family has a limit of 0 vCPUs",
    ),
}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def signed_in(state_dir):
    """A fake ARM that accepts only the signed-in user's token, and the environment that has it."""
    with FakeARM(booter=RecordingBooter(), token=TOKEN) as arm:
        yield arm, {**arm_env(arm, state_dir), "PROVISION_ARM_TOKEN": TOKEN}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failure_before_anything_exists_leaves_nothing(signed_in, state_dir, tmp_path, failure):
    arm, azure_env = signed_in
    breaks, mends, says = FAILURES[failure]
    env = breaks(arm, tmp_path)

    up = console("up", "--name", NAME, "--no-bootstrap", env={**azure_env, **env})

    assert up.exit_code == 1, up.stderr
    errors = error_lines(up.stderr)
    assert len(errors) == 1 and says in errors[0], up.stderr
    assert "Traceback" not in up.stderr and "Rolling back" not in up.stderr, up.stderr
    assert "provision down" not in up.stderr, up.stderr
    assert [r for r in arm.requests if r.method != "GET"] == []
    assert StateStore(state_dir).load(NAME) is None and not (state_dir / NAME).exists()

    mends(arm)
    again = console("up", "--name", NAME, "--no-bootstrap", env=azure_env)
    assert again.exit_code == 0, again.stderr
    assert console("down", NAME, "--yes", env=azure_env).exit_code == 0


def test_the_credential_and_subscription_are_read_first(arm, azure_env):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    first = arm.requests[0]
    assert (first.method, first.path, first.query["api-version"]) == (
        "GET",
        f"/subscriptions/{arm.subscription_id}",
        "2022-12-01",
    )
    assert provision("down", NAME, "--yes").exit_code == 0


def test_verbose_shows_the_error_chain(arm, azure_env):
    arm.inject("GET", SUBSCRIPTION_PATH, status=403, code="AuthorizationFailed", message="no read access", times=3)
    quiet = console("up", "--name", NAME, "--no-bootstrap", env=azure_env)
    loud = console("up", "--name", NAME, "--no-bootstrap", "--verbose", env=azure_env)
    short = console("-v", "up", "--name", NAME, "--no-bootstrap", env=azure_env)

    assert "Traceback" not in quiet.stderr and "HttpResponseError" not in quiet.stderr
    assert "azure.core.exceptions.HttpResponseError" in loud.stderr and "Traceback" in loud.stderr
    assert "azure.core.pipeline.policies.http_logging_policy" in loud.stderr  # the SDK's own log
    assert error_lines(loud.stderr) == error_lines(quiet.stderr) != []
    assert "Traceback" in short.stderr and "http_logging_policy" in short.stderr  # -v before the command too


# -- commands on an existing deployment read only its name ------------------------------------------

REFUSED_BY_UP = f'name = "{NAME}"\nregion = "East US"\naccess = "public"\nsize = "Standard_D4s_v5"\n'


def test_commands_without_a_name_read_only_the_name(arm, azure_env, tmp_path, monkeypatch):
    (tmp_path / "provision.toml").write_text(f'name = "{NAME}"\n')
    assert provision("up", "--no-bootstrap").exit_code == 0
    (tmp_path / "provision.toml").write_text(REFUSED_BY_UP)
    monkeypatch.setenv("PROVISION_ALLOW_IP", "not-an-address")
    assert provision("up", "--no-bootstrap").exit_code == 2  # `up` would refuse these settings

    status = provision("status")
    assert status.exit_code == 0 and NAME in status.stdout, status.stderr
    tunnel = provision("tunnel")  # found the deployment; it was never bootstrapped
    assert tunnel.exit_code == 1 and f"Jupyter was never started on '{NAME}'" in tunnel.stderr
    down = provision("down", "--yes")
    assert down.exit_code == 0, down.stderr
    assert arm.inventory() == []


def test_a_bad_name_alone_is_refused(tmp_path):
    (tmp_path / "provision.toml").write_text('name = "Not_A_Name"\n')
    result = provision("status")
    assert result.exit_code == 2 and "deployment name 'Not_A_Name'" in result.stderr


def test_down_of_a_lost_record_reads_only_where_the_deployment_lives(arm, azure_env, state_dir, tmp_path, monkeypatch):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    assert len(arm.role_definitions()) == 1  # idle stop's role, at subscription scope: it outlives the group
    shutil.rmtree(state_dir / NAME)  # the record is lost: `down` finds the group by its tags
    (tmp_path / "provision.toml").write_text(REFUSED_BY_UP)
    monkeypatch.setenv("PROVISION_ALLOW_IP", "not-an-address")
    result = provision("down", NAME, "--yes")
    assert result.exit_code == 0, result.stderr
    assert arm.inventory() == [] and arm.role_definitions() == [] and arm.role_assignments() == []


def test_down_of_a_lost_record_by_a_caller_who_may_not_delete_roles_still_deletes_the_group(arm, azure_env, state_dir):
    assert provision("up", "--name", NAME, "--no-bootstrap", "--idle-stop", "off").exit_code == 0
    shutil.rmtree(state_dir / NAME)
    arm.make_caller_contributor()  # Contributor: no Microsoft.Authorization/*/Delete, so it made no role either
    result = provision("down", NAME, "--yes")
    assert result.exit_code == 0, result.stderr
    assert arm.inventory() == []


# -- a running tunnel is found, not waited for --------------------------------------------------------


def test_tunnel_while_a_detached_tunnel_runs_prints_its_url(cloud, state_dir, tmp_path):
    (tmp_path / "provision.toml").write_text(f'name = "{NAME}"\n')
    up = console("up", "--detach", "--skip-check", env=cloud.env, timeout=600)
    assert up.exit_code == 0, up.stderr
    port, token = URL.search(up.stdout).groups()
    (tmp_path / "provision.toml").write_text(REFUSED_BY_UP)

    again = console("tunnel", env=cloud.env, timeout=60)

    assert again.exit_code == 0, again.stderr
    assert URL.search(again.stdout).groups() == (port, token)
    assert "already runs" in again.stderr
    assert http(int(port), "/api/status", token)[0] == 200
    status = console("status", "--json", env=cloud.env)
    assert status.exit_code == 0 and '"tunnel": "open"' in status.stdout
    assert console("down", "--yes", env=cloud.env).exit_code == 0
    assert cloud.arm.inventory() == []


# -- plan sends nothing ---------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to reach another machine is recorded and refused."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args and isinstance(args[0], socket.socket) else args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_the_socket_guard_sees_an_address_lookup(no_network):
    from provision.errors import ProvisionError
    from provision.targets.azure.caller import detect_public_ip

    with pytest.raises(ProvisionError):
        detect_public_ip(timeout=1)
    assert no_network  # the guard would have seen `plan` do the same
    with pytest.raises(OSError):
        urllib.request.urlopen("https://example.org", timeout=1)


def test_plan_sends_nothing(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000000")
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))  # no cached prices from this machine
    table, as_json = provision("plan"), provision("plan", "--json")

    assert table.exit_code == as_json.exit_code == 0, table.stderr + as_json.stderr
    assert "from your address" in table.stdout
    [nsg] = [step for step in json.loads(as_json.stdout) if step["kind"] == "nsg"]
    sources = {rule["properties"]["sourceAddressPrefix"] for rule in nsg["body"]["properties"]["securityRules"]}
    assert sources == {"your address, detected at `up`"}
    assert no_network == []  # not even the public Retail Prices API: the shipped table answers
    assert "What it costs (shipped table of" in table.stdout
