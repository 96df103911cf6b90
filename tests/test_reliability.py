"""Nothing leaked: preflight before any write, failover, rollback, transient faults, gc, signals."""

import getpass
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from provision.state import StateStore
from tests.conftest import REPO, provision
from tests.fakes.arm import TEST_OID, TEST_UPN, access_token

NAME = "rel1"
T4 = "standardNCASv3_T4Family"


def writes(arm):
    return [r for r in arm.requests if r.method in ("PUT", "POST", "DELETE")]


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# -- preflight: one line, the number, the fix, and nothing written ------------------------------


@pytest.mark.parametrize(
    "arrange, argv, message",
    [
        (
            lambda arm: arm.set_quota("eastus", T4, 0),
            [],
            f"error: no quota for Standard_NC4as_T4_v3 in eastus: family {T4} has a limit of 0 vCPUs, 0 in use, "
            "and up needs 4; run `provision quota request --size Standard_NC4as_T4_v3 --region eastus`",
        ),
        (
            lambda arm: arm.set_quota("eastus", "cores", 10, current=8),
            [],
            "the regional vCPU total has a limit of 10 vCPUs, 8 in use, and up needs 4",
        ),
        (
            lambda arm: arm.restrict_sku("eastus", "Standard_NC4as_T4_v3"),
            [],
            "size Standard_NC4as_T4_v3 is not available to this subscription in eastus (NotAvailableForSubscription)",
        ),
        (lambda arm: None, ["--size", "Standard_NC6_Promo_v9"], "size Standard_NC6_Promo_v9 is not offered in eastus"),
        (lambda arm: None, ["--region", "marsnorth"], "region 'marsnorth' offers no VM sizes to this subscription"),
        (
            lambda arm: None,
            ["--image", "microsoft-dsvm:ubuntu-1804:1804-gen2:latest"],
            "image microsoft-dsvm:ubuntu-1804:1804-gen2:latest is not found in eastus",
        ),
    ],
)
def test_preflight_fails_in_one_line_before_any_write(arm, azure_env, arrange, argv, message):
    arrange(arm)
    result = provision("up", "--name", NAME, "--no-bootstrap", *argv)
    assert result.exit_code == 1
    assert message in last_line(result.stderr)
    assert "Traceback" not in result.stderr
    assert writes(arm) == [] and arm.inventory() == []
    assert StateStore().load(NAME) is None


def test_an_image_with_a_purchase_plan_is_named_in_the_vm(arm, azure_env):
    plan = {"name": "dsvm-plan", "publisher": "microsoft-dsvm", "product": "ubuntu-2204"}
    arm.set_image_plan("microsoft-dsvm", "ubuntu-2204", "2204-gen2", plan)
    arm.accept_terms("microsoft-dsvm", "ubuntu-2204", "dsvm-plan")
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    vm_put = next(r for r in writes(arm) if "virtualmachines" in r.path.lower())
    assert vm_put.body["plan"] == plan


# -- failover --------------------------------------------------------------------------------------


def test_quota_in_the_first_region_moves_on_to_the_next(arm, azure_env):
    arm.set_quota("eastus", T4, 0)
    result = provision("up", "--name", NAME, "--no-bootstrap", "--region", "eastus,westus2")
    assert result.exit_code == 0, result.stderr
    assert (
        f"no quota for Standard_NC4as_T4_v3 in eastus: family {T4} has a limit of 0 vCPUs, 0 in use, and up needs 4; "
        "Standard_NC4as_T4_v3 in westus2 has room, so up goes there"
    ) in result.stderr
    assert [r.path for r in writes(arm) if "eastus" in f"{r.path} {r.body}"] == []  # never tried there
    group = arm.resource(f"/subscriptions/{arm.subscription_id}/resourceGroups/dsvm-{NAME}")
    assert group["location"] == "westus2"
    assert StateStore().require(NAME).settings["region"] == "westus2"


def test_a_restricted_size_moves_on_to_the_next_size(arm, azure_env):
    arm.restrict_sku("eastus", "Standard_NC4as_T4_v3")
    result = provision("up", "--name", NAME, "--no-bootstrap", "--size", "Standard_NC4as_T4_v3,Standard_NC8as_T4_v3")
    assert result.exit_code == 0, result.stderr
    assert StateStore().require(NAME).settings["size"] == "Standard_NC8as_T4_v3"


def vm_puts(arm):
    """PUTs of VMs (not of the idle-stop role assignment at a VM's scope)."""
    return [r for r in writes(arm) if r.method == "PUT" and re.search(r"/virtualmachines/[^/]+$", r.path.lower())]


# The group and what in it is regional: made once per region.
REGIONAL = (
    rf"/resourcegroups/dsvm-{NAME}$",
    r"/virtualnetworks/[^/]+$",
    r"/networksecuritygroups/[^/]+$",
    r"/publicipaddresses/[^/]+$",
)


def requests_to(arm, method, pattern=""):
    """The paths of `method` requests (not status polls) matching `pattern`, lower-cased, in order."""
    return [
        r.path.lower()
        for r in arm.requests
        if r.method == method and not r.is_poll and re.search(pattern, r.path.lower())
    ]


@pytest.mark.parametrize("code", ["AllocationFailed", "OverconstrainedZonalAllocationRequest"])
def test_no_capacity_where_azure_places_it_pins_a_zone_and_keeps_the_network(arm, azure_env, code):
    arm.inject("PUT", r"/virtualmachines/", code=code, async_failure=True)
    result = provision("up", "--name", NAME, "--no-bootstrap", "--region", "eastus,westus2")
    assert result.exit_code == 0, result.stderr
    assert re.search(
        rf"warning: Standard_NC4as_T4_v3 in eastus, any zone: {code} after \d+\.\d s: could not create vm",
        result.stderr,
    )
    assert "trying Standard_NC4as_T4_v3 in zone 1 of eastus" in result.stderr
    assert [put.body.get("zones") for put in vm_puts(arm)] == [None, ["1"]]
    # The group, VNet, security group and public IP were made once and never deleted; the failed
    # VM went, with its disk and NIC (its deleteOption), and the NIC was made again for the next one.
    for pattern in REGIONAL:
        assert len(requests_to(arm, "PUT", pattern)) == 1, pattern
    assert [p.rsplit("/providers/", 1)[-1] for p in requests_to(arm, "DELETE")] == [
        f"microsoft.compute/virtualmachines/{NAME}",
        f"microsoft.compute/disks/{NAME}-osdisk",
        f"microsoft.network/networkinterfaces/{NAME}-nic",
    ]
    assert len(requests_to(arm, "PUT", "/networkinterfaces/")) == 2
    group = arm.resource(f"/subscriptions/{arm.subscription_id}/resourceGroups/dsvm-{NAME}")
    assert group["location"] == "eastus" and len(arm.inventory()) == 7
    disk = arm.resource(f"{group['id']}/providers/Microsoft.Compute/disks/{NAME}-osdisk")
    assert disk["zones"] == ["1"]
    record = StateStore().require(NAME)
    assert sorted(r.kind for r in record.resources) == sorted(
        ["resource_group", "vnet", "nsg", "public_ip", "nic", "vm", "role_definition", "role_assignment"]
    ) and {r.state for r in record.resources} == {"created"}


def test_a_zone_move_that_fails_still_leaves_down_everything(arm, azure_env):
    """A failure after a zone move (here: the next VM create refused for another reason) rolls back
    the whole group: the record still names it."""
    arm.inject("PUT", r"/virtualmachines/", code="ZonalAllocationFailed", async_failure=True)
    arm.inject("PUT", r"/virtualmachines/", code="OSProvisioningTimedOut", async_failure=True)  # then, in zone 1
    result = provision("up", "--name", NAME, "--no-bootstrap")
    assert result.exit_code == 1
    assert [put.body.get("zones") for put in vm_puts(arm)] == [None, ["1"]]
    assert "OSProvisioningTimedOut" in last_line(result.stderr) and "Rolling back" in result.stderr
    assert arm.inventory() == [] and StateStore().load(NAME) is None


def test_a_failed_vm_that_cannot_be_deleted_gives_up_the_region_as_a_whole(arm, azure_env):
    arm.inject("PUT", r"/virtualmachines/", code="AllocationFailed", async_failure=True)
    arm.inject("DELETE", r"/virtualmachines/", status=409, code="OperationNotAllowed", message="busy")
    result = provision("up", "--name", NAME, "--no-bootstrap", "--region", "eastus,westus2")
    assert result.exit_code == 0, result.stderr
    assert "could not delete VM rel1: OperationNotAllowed: busy" in result.stderr
    assert "no other zone of eastus is tried" in result.stderr
    assert [put.body.get("zones") for put in vm_puts(arm)] == [None, None]  # the second in westus2
    assert len(requests_to(arm, "DELETE", REGIONAL[0])) == 1
    assert StateStore().require(NAME).settings["region"] == "westus2"


def test_no_capacity_in_any_zone_moves_on_to_the_next_region(arm, azure_env):
    arm.inject("PUT", r"/virtualmachines/", code="ZonalAllocationFailed", async_failure=True, times=4)
    result = provision("up", "--name", NAME, "--no-bootstrap", "--region", "eastus,westus2")
    assert result.exit_code == 0, result.stderr
    assert [put.body.get("zones") for put in vm_puts(arm)] == [None, ["1"], ["2"], ["3"], None]
    group = arm.resource(f"/subscriptions/{arm.subscription_id}/resourceGroups/dsvm-{NAME}")
    assert group["location"] == "westus2" and len(arm.inventory()) == 7
    assert StateStore().require(NAME).settings["region"] == "westus2"
    # Three zone moves deleted three VMs and kept the group; the region move deleted the group.
    assert len(requests_to(arm, "DELETE", "/virtualmachines/")) == 3
    assert requests_to(arm, "DELETE", REGIONAL[0]) == [
        f"/subscriptions/{arm.subscription_id}/resourcegroups/dsvm-{NAME}"
    ]
    assert len(requests_to(arm, "PUT", REGIONAL[0])) == 2  # one per region
    assert re.search(r"Standard_NC4as_T4_v3 in eastus, zone 2: ZonalAllocationFailed after \d+\.\d s", result.stderr)


def test_every_choice_failing_names_each_reason(arm, azure_env):
    arm.set_quota("eastus", T4, 0)
    arm.restrict_sku("westus2", "Standard_NC4as_T4_v3")
    result = provision("up", "--name", NAME, "--no-bootstrap", "--region", "eastus,westus2")
    assert result.exit_code == 1
    assert last_line(result.stderr).startswith(
        "error: none of the 2 size and region choices could be had "
        "(Standard_NC4as_T4_v3 in eastus: QuotaExceeded; Standard_NC4as_T4_v3 in westus2: SkuNotAvailable)"
    )
    assert arm.inventory() == []


def test_an_authorization_error_stops_at_once(arm, azure_env):
    arm.inject("PUT", r"/resourcegroups/", status=403, code="AuthorizationFailed", message="no write access")
    result = provision("up", "--name", NAME, "--no-bootstrap", "--region", "eastus,westus2")
    assert result.exit_code == 1
    assert "AuthorizationFailed: no write access (ask for the Contributor role" in last_line(result.stderr)
    # not tried there (quota was read in every region first)
    assert [r for r in writes(arm) if "westus2" in f"{r.path} {r.query} {r.body}"] == []
    assert arm.inventory() == []


# -- rollback ----------------------------------------------------------------------------------------


def test_a_failure_while_creating_deletes_what_this_run_created(arm, azure_env, state_dir):
    arm.inject("PUT", r"/networkinterfaces/", status=400, code="InvalidParameter", message="bad NIC")
    result = provision("up", "--name", NAME, "--no-bootstrap")
    assert result.exit_code == 1
    assert last_line(result.stderr) == f"error: could not create nic {NAME}-nic: InvalidParameter: bad NIC"
    assert "Rolling back: deleting what this run created" in result.stderr
    assert arm.inventory() == []
    assert not (state_dir / NAME).exists()


def test_keep_on_failure_keeps_it_and_down_removes_it(arm, azure_env):
    arm.inject("PUT", r"/virtualmachines/", code="OSProvisioningTimedOut", async_failure=True)
    result = provision("up", "--name", NAME, "--no-bootstrap", "--keep-on-failure")
    assert result.exit_code == 1
    assert f"kept what was created (--keep-on-failure); `provision down {NAME}` deletes it" in result.stderr
    record = StateStore().require(NAME)
    assert record.phase == "failed"
    assert {r.kind: r.state for r in record.resources}["vm"] == "failed"
    assert len(arm.inventory()) >= 6
    again = provision("up", "--name", NAME, "--no-bootstrap")
    assert again.exit_code == 1 and f"run `provision down {NAME}` to clean up" in again.stderr
    assert provision("down", NAME, "--yes").exit_code == 0
    assert arm.inventory() == []


def test_a_failed_rollback_leaves_a_record_that_down_can_finish(arm, azure_env):
    arm.inject("PUT", r"/networkinterfaces/", status=400, code="InvalidParameter")
    arm.inject("DELETE", r"/resourcegroups/", status=400, code="ScopeLocked", message="locked")
    result = provision("up", "--name", NAME, "--no-bootstrap")
    assert result.exit_code == 1
    assert "rollback did not finish" in result.stderr and f"run `provision down {NAME}`" in result.stderr
    assert StateStore().require(NAME).phase == "failed"
    assert provision("down", NAME, "--yes").exit_code == 0
    assert arm.inventory() == []


# -- transient faults are absorbed by azure-core's retry policy -------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "code": "SubscriptionRequestsThrottled", "retry_after": 0},
        {"status": 500, "code": "InternalServerError"},
        {"status": 503, "code": "ServiceUnavailable"},
        {"drop_connection": True},
    ],
)
def test_transient_faults_on_create_and_delete_are_retried(arm, azure_env, fault):
    create = arm.inject("PUT", r"/virtualmachines/", **fault)
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    delete = arm.inject("DELETE", r"/resourcegroups/", **fault)
    assert provision("down", NAME, "--yes").exit_code == 0
    assert (create.fired, delete.fired) == (1, 1)
    assert arm.inventory() == []


# -- gc ---------------------------------------------------------------------------------------------


def test_gc_deletes_your_groups_that_no_record_knows(arm, azure_env):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    mine = {
        "managed-by": "dsvm-kit",
        "deployment": "lost",
        "owner": TEST_OID,
        "owner-name": TEST_UPN,
        "created": "2026-11-01T00:00:00+00:00",
    }
    # Made by you from another laptop: the same principal.
    other_laptop = {**mine, "deployment": "lost-elsewhere", "owner-name": "alice@old-laptop"}
    # Another principal whose name (or an old-style user@host tag) looks like yours: not yours.
    namesake = {**mine, "deployment": "namesake", "owner": "00000000-0000-0000-0000-0000000000b0"}
    old_style = {**mine, "deployment": "old-style", "owner": f"{getpass.getuser()}@{socket.gethostname()}"}
    arm.add_resource_group("dsvm-lost", tags=mine)
    arm.add_resource_group("dsvm-lost-elsewhere", tags=other_laptop)
    arm.add_resource_group("dsvm-namesake", tags=namesake)
    arm.add_resource_group("dsvm-old-style", tags=old_style)
    arm.add_resource_group("unrelated", tags={"team": "x"})

    asked = provision("gc")
    assert asked.exit_code == 1 and "dsvm-lost" in asked.stdout and "dsvm-namesake" not in asked.stdout
    result = provision("gc", "--yes")
    assert result.exit_code == 0, result.stderr
    assert groups(arm) == {f"dsvm-{NAME}", "dsvm-namesake", "dsvm-old-style", "unrelated"}
    assert provision("gc", "--yes", "--everyone").exit_code == 0
    assert groups(arm) == {f"dsvm-{NAME}", "unrelated"}


def test_gc_as_another_principal_leaves_your_groups(arm, azure_env, monkeypatch):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    tags = {"managed-by": "dsvm-kit", "deployment": "lost", "owner": TEST_OID, "created": "2026-11-01T00:00:00+00:00"}
    arm.add_resource_group("dsvm-lost", tags=tags)
    # A service principal signed in on the same machine, as the same Unix user.
    monkeypatch.setenv("PROVISION_ARM_TOKEN", access_token("00000000-0000-0000-0000-0000000000c0", appid="ci-app"))
    result = provision("gc", "--yes")
    assert result.exit_code == 0 and "(owner ci-app)" in result.stdout, result.stderr
    assert groups(arm) == {f"dsvm-{NAME}", "dsvm-lost"}


def groups(arm) -> set[str]:
    return {i.rsplit("/", 1)[-1] for i in arm.inventory() if i.lower().count("/") == 4}


# -- Ctrl-C and SIGTERM while creating -----------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_while_creating_rolls_back(arm, azure_env, state_dir, signum):
    arm.hold("Microsoft.Compute/virtualMachines", 600)
    script = os.path.join(os.path.dirname(sys.executable), "provision")
    up = subprocess.Popen(
        [script, "up", "--name", NAME, "--no-bootstrap"],
        env={**os.environ, "PYTHONPATH": REPO, **azure_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not any("virtualmachines" in r.path.lower() for r in writes(arm)) and time.monotonic() < deadline:
        time.sleep(0.05)
    up.send_signal(signum)
    arm.hold("Microsoft.Compute/virtualMachines", 0)
    _, err = up.communicate(timeout=60)
    assert up.returncode == 130, err
    assert "Rolling back" in err and err.strip().endswith("error: interrupted")
    assert "Traceback" not in err
    assert arm.inventory() == []
    assert not (state_dir / NAME).exists()


def test_down_is_not_blocked_by_settings_changed_since_up(arm, azure_env, monkeypatch, tmp_path):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    (tmp_path / "provision.toml").write_text('size = "Standard_D4s_v5"\nregion = "nowhere land"\n')
    monkeypatch.setenv("PROVISION_ALLOW_IP", "not-an-address")
    assert provision("status", NAME).exit_code == 0
    result = provision("down", NAME, "--yes")
    assert result.exit_code == 0, result.stderr
    assert arm.inventory() == []
