"""Issue 5, nothing leaked, nothing exposed: every ARM write and poll of `up` under every fault.

Each scenario runs `provision up --no-bootstrap` in this process against the fake ARM,
with one fault injected into one request. Afterwards `up` has either succeeded (then one
`provision down --yes` runs) or failed with a one-line error and rolled back; either way
the fake's inventory must be empty, no VM booted, no record left, and no security rule
opened to anyone but the caller.

How the cells are read:
- A write is that resource's PUT; a poll is a GET of its operation's status. The kind is
  held for HOLD seconds so that its operation is polled while InProgress (the fake finishes
  network PUTs at once otherwise), and the fault is aimed at that operation's polls alone
  (`poll_of`): the status URL does not name the resource, and the three network creates
  poll at the same time.
- 429 (with Retry-After: 1, at the fake's time scale), 500 and a dropped connection are transient: azure-core
  retries them and `up` succeeds.
- The other faults persist, as a shortage of quota or capacity does (`up` may try again in
  another size, region or zone; none is left to it here, so it must give up).
- 409 OperationNotAllowed (quota) and 409 SkuNotAvailable come in the PUT's response. ARM
  does not send them on a status poll; injected there anyway, they stand for any error
  that is not retried while polling: `up` must stop and roll back the operation it polled.
- An asynchronous AllocationFailed is an operation that ends Failed. On a write it is seen
  at the first poll; on a poll, after the kind's hold (InProgress polls first, then Failed).
  A resource group's PUT is synchronous (no operation to fail later), so there the failure
  comes in the PUT's own response (409 AllocationFailed).
"""

import pytest

from provision.state import StateStore
from tests.conftest import arm_env, provision
from tests.fakes.arm import FAST, FakeARM, RecordingBooter
from tests.fakes.scenarios import Scenario, cloud_leftovers, one_line_error, summary, timed

NAME = "faults"
ALLOWED = "127.0.0.1/32"  # PROVISION_ALLOW_IP in azure_env
HOLD = 0.3  # seconds a held operation stays InProgress

# Each write: the label in the error `up` prints, the path of its PUT, the kind its operation holds.
WRITES = {
    "resource group": ("create the resource group", r"/resourcegroups/dsvm-[^/]+$", None),
    "virtual network": ("create vnet", r"/virtualnetworks/[^/]+$", "Microsoft.Network/virtualNetworks"),
    "security group": ("create nsg", r"/networksecuritygroups/[^/]+$", "Microsoft.Network/networkSecurityGroups"),
    "public IP": ("create public ip", r"/publicipaddresses/[^/]+$", "Microsoft.Network/publicIPAddresses"),
    "network interface": ("create nic", r"/networkinterfaces/[^/]+$", "Microsoft.Network/networkInterfaces"),
    "VM": ("create vm", r"/virtualmachines/[^/]+$", "Microsoft.Compute/virtualMachines"),
}
POLLED = [name for name, (_, _, kind) in WRITES.items() if kind]

# Each fault: the arguments of FakeARM.inject, and whether `up` should absorb it.
FAULTS = {
    "429": ({"status": 429, "code": "SubscriptionRequestsThrottled", "retry_after": 1}, True),
    "500": ({"status": 500, "code": "InternalServerError"}, True),
    "409 quota": ({"status": 409, "code": "OperationNotAllowed", "message": "exceeds the approved quota"}, False),
    "SkuNotAvailable": ({"status": 409, "code": "SkuNotAvailable", "message": "not available in eastus"}, False),
    "async AllocationFailed": ({"code": "AllocationFailed", "async_failure": True}, False),
    "connection dropped": ({"drop_connection": True}, True),
}

CELLS = [("PUT", write, fault) for write in WRITES for fault in FAULTS] + [
    ("poll", write, fault) for write in POLLED for fault in FAULTS
]


@pytest.fixture(scope="module", autouse=True)
def warmed_up(tmp_path_factory):
    """One `up` first, so that no scenario's time includes first-use costs (imports, TLS set-up)."""
    with FakeARM(booter=RecordingBooter(), time_scale=FAST) as arm, pytest.MonkeyPatch.context() as environment:
        for key, value in arm_env(arm, tmp_path_factory.mktemp("warm-up")).items():
            environment.setenv(key, value)
        assert provision("up", "--name", "warm-up", "--no-bootstrap").exit_code == 0


def inject(arm, request: str, write: str, fault: str):
    """Arm the cell's fault; the handle counts the requests it answered."""
    _, path, kind = WRITES[write]
    arguments, transient = FAULTS[fault]
    arguments = {**arguments, "times": 1 if transient else 1000}
    if kind:
        arm.hold(kind, HOLD if request == "poll" else 0)
    if arguments.get("async_failure") and kind is None:  # a synchronous PUT: the error comes at once
        arguments = {"status": 409, "code": arguments["code"], "times": arguments["times"]}
    if request == "poll" and not arguments.get("async_failure"):
        return arm.inject("GET", r"/operations/", poll_of=kind, **arguments)
    return arm.inject("PUT", path, **arguments)


def exposed(arm) -> list[str]:
    """Inbound rules any security group PUT asked for, from anywhere but the caller's address."""
    rules = [
        rule
        for r in arm.requests
        if r.method == "PUT" and "/networksecuritygroups/" in r.path.lower()
        for rule in r.body["properties"]["securityRules"]
    ]
    return [rule["name"] for rule in rules if rule["properties"]["sourceAddressPrefix"] != ALLOWED]


def run_up(arm, state_dir, booter, scenario: Scenario) -> tuple[object, list[str]]:
    """`up --no-bootstrap`, then `down` if it succeeded; what was left afterwards."""
    up, seconds = timed(provision, "up", "--name", NAME, "--no-bootstrap")
    scenario.ran(up.exit_code, seconds, up.stdout, up.stderr)
    if up.exit_code == 0:
        down = provision("down", NAME, "--yes")
        scenario.ran(down.exit_code, 0, down.stdout, down.stderr)
    left = cloud_leftovers(arm, state_dir, NAME) + [f"VM still booted {vm}" for vm in booter.running]
    return up, scenario.checked(left)


@pytest.mark.parametrize(("request_kind", "write", "fault"), CELLS, ids=[" x ".join(cell) for cell in CELLS])
def test_a_fault_on_an_arm_request_of_up_leaks_nothing(
    arm, azure_env, state_dir, booter, request, request_kind, write, fault
):
    transient = FAULTS[fault][1]
    scenario = Scenario.start(request, "arm", f"{fault} on {request_kind} {write}", transient=transient)
    handle = inject(arm, request_kind, write, fault)

    up, left = run_up(arm, state_dir, booter, scenario)

    assert handle.fired == 1 if transient else handle.fired >= 1, f"the fault was not injected: {up.stderr}"
    assert left == [], f"left behind: {left}"
    assert not scenario.traceback, up.stderr
    assert exposed(arm) == []
    if transient:
        assert up.exit_code == 0, up.stderr
        assert "VM ready" in up.stdout
    else:
        assert up.exit_code == 1
        error = one_line_error(up.stderr)
        action = WRITES[write][0]
        code = FAULTS[fault][0]["code"]
        assert error and error.startswith(f"error: could not {action}") and f": {code}:" in error, up.stderr
        assert "Rolling back: deleting what this run created" in up.stderr


def test_up_without_a_fault_is_the_baseline(arm, azure_env, state_dir, booter, request):
    scenario = Scenario.start(request, "arm", "no fault", control=True)
    up, left = run_up(arm, state_dir, booter, scenario)
    assert up.exit_code == 0, up.stderr
    assert left == [] and exposed(arm) == []


# -- the leak check itself must be able to fail -----------------------------------------------------


def test_a_rollback_that_deletes_nothing_is_reported_as_a_leak(arm, azure_env, state_dir, booter, monkeypatch):
    from provision.targets.azure import AzureTarget

    monkeypatch.setattr(AzureTarget, "destroy", lambda self, record, out, *, wait: None)
    scenario = Scenario("arm", "409 quota on PUT VM, destroy disabled")
    inject(arm, "PUT", "VM", "409 quota")

    up, left = run_up(arm, state_dir, booter, scenario)

    assert up.exit_code == 1 and "Rolling back" in up.stderr
    assert f"resource /subscriptions/{arm.subscription_id}/resourceGroups/dsvm-{NAME}" in left
    assert any(entry.endswith(f"/networkInterfaces/{NAME}-nic") for entry in left)
    assert scenario.leaked == left
    assert StateStore().load(NAME) is None  # the record went, though the cloud did not: a leak
    assert summary({"scenario": scenario._data}, set())[0] == "1 scenarios, 1 passed, 1 leaked, 0 tracebacks"
