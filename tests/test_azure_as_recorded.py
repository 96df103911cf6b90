"""The kit against the Azure its recordings show (tests/test_recorded_azure.py): role reads that lag their writes and
a new identity the directory does not know yet, a failed start that arrives as 200 + Failed on the operation's URL,
and the Retry-After every poll must wait for."""

import itertools
import json
from collections import defaultdict

from provision.state import StateStore
from tests.conftest import provision

NAME = "rec1"
GROUP_KIND_HOLDS = (
    "Microsoft.Network/virtualNetworks",
    "Microsoft.Network/networkSecurityGroups",
    "Microsoft.Network/publicIPAddresses",
    "Microsoft.Compute/virtualMachines",
    "Microsoft.Resources/resourceGroups",
)


def test_up_then_down_with_idle_stop_under_read_lag_and_replication_delay_leaves_nothing(arm, azure_env):
    arm.lag(reads=2, replication=2)
    up = provision("--verbose", "up", "--name", NAME, "--no-bootstrap")
    assert up.exit_code == 0, up.stderr
    assert len(arm.role_definitions()) == 1 and len(arm.role_assignments()) == 1
    # The retries waited for Azure, each one saying why (under --verbose), and ended.
    assert "Azure does not yet show the new role (RoleDefinitionDoesNotExist); trying again in" in up.stderr
    # Reads still lag: down deletes the assignment and the role by their ids, without listing them.
    down = provision("down", NAME, "--yes")
    assert down.exit_code == 0, down.stderr
    assert arm.inventory() == [] and arm.role_definitions() == [] and arm.role_assignments() == []


def test_an_identity_the_directory_does_not_know_yet_is_waited_for(arm, azure_env):
    arm.lag(reads=0, replication=1)
    up = provision("--verbose", "up", "--name", NAME, "--no-bootstrap")
    assert up.exit_code == 0, up.stderr
    assert "the directory does not yet know the new identity (PrincipalNotFound); trying again in" in up.stderr
    assert len(arm.role_assignments()) == 1


def test_a_start_that_azure_cannot_place_is_one_line_keeps_the_record_and_a_second_start_succeeds(
    arm, azure_env, state_dir
):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    assert provision("stop", NAME).exit_code == 0
    arm.inject("POST", r"/virtualmachines/rec1/start$", code="AllocationFailed", async_failure=True)
    failed = provision("start", NAME)
    assert failed.exit_code == 1
    assert "Traceback" not in failed.stderr
    (line,) = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert "no capacity" in line and "(AllocationFailed)" in line and f"provision start {NAME}" in line
    status_poll = next(r for r in reversed(arm.requests) if r.is_poll)
    assert status_poll.status == 200  # the failure came as 200 {"status": "Failed", "error": ...}, as Azure sends it
    assert StateStore(state_dir).require(NAME).machine is not None
    assert provision("start", NAME).exit_code == 0
    assert json.loads(provision("status", NAME, "--json").stdout)["power_state"] == "running"


def test_no_poll_comes_before_the_retry_after_its_operation_last_sent(arm, azure_env):
    for kind in GROUP_KIND_HOLDS:
        arm.hold(kind, 0.3)
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    assert provision("stop", NAME).exit_code == 0
    assert provision("down", NAME, "--yes").exit_code == 0
    by_operation = defaultdict(list)
    for request in arm.requests:
        if request.operation is not None:
            by_operation[request.operation].append(request)
    polled = [answers for answers in by_operation.values() if any(r.is_poll for r in answers)]
    assert len(polled) >= 5, "the holds should have made the kit poll most operations"
    asked = [r.retry_after for answers in polled for r in answers if r.retry_after]
    assert asked, "Azure's recorded Retry-After should have come (scaled) on first responses and polls"
    early = [
        (later.path, later.received - earlier.at, earlier.retry_after)
        for answers in polled
        for earlier, later in itertools.pairwise(answers)
        if earlier.retry_after and later.received - earlier.at < earlier.retry_after
    ]
    assert early == []
