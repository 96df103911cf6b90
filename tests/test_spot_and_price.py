"""Spot VMs and the price before you buy: the body, preflight's quota, the fake's Spot rules, the question.

Real SDK against the fake ARM; prices from the fake Retail Prices server or, when it is down, the shipped table.
"""

import io
import sys

import pytest
from azure.core.exceptions import HttpResponseError

from provision import price_table
from provision.errors import UsageError
from provision.settings import load
from tests.conftest import console, provision
from tests.fakes.arm import FakeARM
from tests.fakes.prices import FakePrices
from tests.test_fake_arm import GROUP, Clients, make_network, vm_body

NAME = "spot1"
T4 = "Standard_NC4as_T4_v3"


def writes(arm: FakeARM) -> list:
    return [r for r in arm.requests if r.method in ("PUT", "POST", "DELETE")]


def up(*argv: str):
    return provision("up", "--name", NAME, "--no-bootstrap", *argv)


def vm_put(arm: FakeARM) -> dict:
    return next(r.body for r in arm.requests if r.method == "PUT" and "/virtualMachines/" in r.path)


class Terminal(io.StringIO):
    """Standard input as a person at a terminal would give it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def asks(monkeypatch):
    """`up` asks, as it would for a person (the test environment otherwise says yes, as CI would)."""
    monkeypatch.delenv("PROVISION_YES")


@pytest.fixture
def prices(monkeypatch):
    with FakePrices() as fake:
        monkeypatch.setenv("PROVISION_PRICES_ENDPOINT", fake.url)
        yield fake


# -- Spot: the body, what the fake keeps, preflight ---------------------------------------------


def test_spot_vm_body_and_what_azure_keeps(arm, azure_env):
    assert up("--spot").exit_code == 0
    sent = vm_put(arm)["properties"]
    assert (sent["priority"], sent["evictionPolicy"], sent["billingProfile"]) == (
        "Spot",
        "Deallocate",
        {"maxPrice": -1},
    )
    vm = Clients(arm).compute.virtual_machines.get(f"dsvm-{NAME}", NAME)
    assert (vm.priority, vm.eviction_policy, vm.billing_profile.max_price) == ("Spot", "Deallocate", -1)


def test_max_price_reaches_the_body(arm, azure_env):
    assert up("--spot", "--max-price", "0.2").exit_code == 0
    assert vm_put(arm)["properties"]["billingProfile"] == {"maxPrice": 0.2}


def test_a_regular_vm_names_no_spot_field(arm, azure_env):
    assert up().exit_code == 0
    assert not {"priority", "evictionPolicy", "billingProfile"} & set(vm_put(arm)["properties"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-price", "0.2"], "max-price applies to Spot VMs only; add --spot, or drop --max-price"),
        (["--spot", "--max-price", "0"], "max-price must be US$/hour above 0, or -1 (up to pay-as-you-go), not 0.0"),
    ],
)
def test_bad_spot_settings_are_refused_before_any_request(arm, azure_env, argv, message):
    result = up(*argv)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {message}"
    assert arm.requests == []


def test_exhausted_low_priority_quota_stops_a_spot_vm_before_any_write(arm, azure_env):
    arm.set_quota("eastus", "lowPriorityCores", 10, current=8)
    result = up("--spot")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: no quota for {T4} as Spot (family standardNCASv3_T4Family) in eastus: the regional Spot "
        "(low-priority) vCPU total has a limit of 10 vCPUs, 8 in use, and up needs 4; run "
        f"`provision quota request --size {T4} --region eastus --spot`"
    )
    assert writes(arm) == [] and arm.inventory() == []


def test_spot_does_not_count_against_the_family_quota(arm, azure_env):
    arm.set_quota("eastus", T4, 0)  # no regular T4 vCPU left: a Spot VM still fits
    assert up("--spot").exit_code == 0


def test_a_size_not_offered_as_spot_is_refused_before_any_write(arm, azure_env):
    arm.set_capability(T4, "LowPriorityCapable", "False")
    result = up("--spot")
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: size {T4} is not offered as Spot")
    assert writes(arm) == []


def test_spot_from_provision_toml_but_never_yes(tmp_path):
    (tmp_path / "provision.toml").write_text("spot = true\nmax_price = 0.3\n")
    settings = load({"target": "local"}, cwd=tmp_path)
    assert (settings.spot, settings.max_price, settings.yes) == (True, 0.3, False)
    (tmp_path / "provision.toml").write_text("yes = true\n")
    with pytest.raises(UsageError, match="unknown setting 'yes'"):
        load({"target": "local"}, cwd=tmp_path)


# The fake refuses Spot fields as Azure documents (learn.microsoft.com/azure/virtual-machines/error-codes-spot).
@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"evictionPolicy": "Deallocate"}, "EvictionPolicyCanBeSetOnlyOnAzureSpotVirtualMachines"),
        ({"priority": "Spot", "billingProfile": {"maxPrice": 0}}, "MaxPriceValueInvalid"),
        ({"priority": "Spot", "billingProfile": {"maxPrice": 0.01}}, "SpotPriceGreaterThanProvidedMaxPrice"),
    ],
)
def test_fake_refuses_spot_fields_as_azure_does(arm, fields, code):
    az = Clients(arm)
    body = vm_body(make_network(az))
    body["properties"].update(fields)
    with pytest.raises(HttpResponseError) as caught:
        az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", body)
    assert (caught.value.status_code, caught.value.error.code) == (400, code)


# -- the price before you buy --------------------------------------------------------------------


def test_no_terminal_and_no_yes_creates_nothing(arm, azure_env, asks):
    result = up()
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: nothing created (answer yes on a terminal, or pass --yes to create it without asking)"
    )
    assert f"{T4} in eastus: ${price_table.COMPUTE['eastus'][T4][0]:.3f}/h" in result.stderr
    assert writes(arm) == []


def test_no_terminal_through_the_console_script_creates_nothing(arm, azure_env, asks):
    env = {key: value for key, value in azure_env.items() if key != "PROVISION_YES"}
    result = console("up", "--name", NAME, "--no-bootstrap", env=env)
    assert result.exit_code == 1 and "pass --yes to create it without asking" in result.stderr
    assert writes(arm) == []


def test_a_terminal_answer_of_no_creates_nothing(arm, azure_env, state_dir, asks, prices, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    result = up("--spot")
    assert f"Create {T4} (Spot) in eastus at $0.079/h?" in result.stderr
    assert "$0.079/h spot (pay-as-you-go $0.500/h); OS disk E15 $18.50/month" in result.stderr
    assert result.exit_code == 1 and writes(arm) == []
    assert not (state_dir / NAME).exists()  # no record, no keys


def test_a_failed_sign_in_is_told_before_the_price_question(arm, azure_env, asks, monkeypatch):
    arm.inject("GET", r"^/subscriptions/[0-9a-f-]+$", status=401, code="InvalidAuthenticationToken", message="expired")
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    result = up()
    assert result.exit_code == 1 and "InvalidAuthenticationToken" in result.stderr
    assert "Create " not in result.stderr and "/h" not in result.stderr  # never asked to pay for what cannot be made
    assert sys.stdin.read() == "y\n"


def test_a_terminal_answer_of_yes_creates(arm, azure_env, asks, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert up().exit_code == 0
    assert arm.resource(f"/subscriptions/{arm.subscription_id}/resourceGroups/dsvm-{NAME}") is not None


def test_yes_skips_the_question(arm, azure_env, asks):
    result = up("--yes")
    assert result.exit_code == 0 and "Create " not in result.stderr


def test_a_max_price_below_the_spot_price_is_warned_of(arm, azure_env, prices):
    result = up("--spot", "--max-price", "0.05")
    assert "--max-price 0.05 is below Standard_NC4as_T4_v3's spot price in eastus ($0.0789/h" in result.stderr
    assert "SpotPriceGreaterThanProvidedMaxPrice" in result.stderr.strip().splitlines()[-1]


def test_a_machine_that_costs_nothing_never_asks(state_dir):  # no PROVISION_YES here, no terminal
    result = provision("up", "--target", "local", "--name", NAME, "--no-bootstrap")
    assert result.exit_code == 0 and "Create " not in result.stderr


def test_plan_shows_each_choice_with_the_prices_up_fetched_and_sends_nothing(arm, azure_env, prices, monkeypatch):
    choices = ("--size", f"{T4},Standard_NC40ads_H100_v5", "--region", "eastus,westus2")
    assert up(*choices).exit_code == 0  # up asks the Retail Prices API, and caches
    assert provision("down", NAME, "--yes").exit_code == 0
    arm.clear_log()
    monkeypatch.setenv("PROVISION_PRICES_ENDPOINT", "http://127.0.0.1:9/prices")  # plan must not ask again
    result = provision("plan", *choices)
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "eastus" in line or "westus2" in line]
    assert "What it costs (cache of " in result.stdout.replace("\n", " ")
    assert any(T4 in line and "0.500" in line and "0.079" in line and "18.50 (E15)" in line for line in lines)
    assert any("H100" in line and "6.900" in line for line in lines)
    assert arm.requests == []
