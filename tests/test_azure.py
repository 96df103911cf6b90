"""The Azure target end to end through the real azure-mgmt clients against the fake ARM."""

import base64
import json
import stat
import threading
import time
from datetime import datetime

import pytest
from azure.core.credentials import AccessToken
from azure.mgmt.network import NetworkManagementClient

from provision.keys import KeyPair
from provision.plan import Owner, make_plan, names_for
from provision.settings import load
from provision.state import StateStore
from provision.targets.azure.identity import owner_from_token
from tests.conftest import arm_env, provision
from tests.fakes.arm import FAST, TEST_OID, TEST_UPN, FakeARM, RecordingBooter, access_token


class StaticToken:
    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken(access_token("someone-else"), int(time.time()) + 3600)


NAME = "exp1"
GROUP = f"dsvm-{NAME}"


def group_id(arm):
    return f"/subscriptions/{arm.subscription_id}/resourceGroups/{GROUP}"


def expected_inventory(arm):
    g = group_id(arm)
    return sorted(
        [
            g,
            f"{g}/providers/Microsoft.Compute/disks/{NAME}-osdisk",
            f"{g}/providers/Microsoft.Compute/virtualMachines/{NAME}",
            f"{g}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{NAME}-idle",
            f"{g}/providers/Microsoft.Network/networkInterfaces/{NAME}-nic",
            f"{g}/providers/Microsoft.Network/networkSecurityGroups/{NAME}-nsg",
            f"{g}/providers/Microsoft.Network/publicIPAddresses/{NAME}-ip",
            f"{g}/providers/Microsoft.Network/virtualNetworks/{NAME}-vnet",
        ],
        key=str.lower,
    )


def lower(ids):
    return sorted(i.lower() for i in ids)


AUTHORIZATION = "/providers/microsoft.authorization/"
IDENTITY = "/providers/microsoft.managedidentity/"


def puts(arm):
    """PUTs of the deployment's resources (not of idle stop's identity and role)."""
    return [
        r
        for r in arm.requests
        if r.method == "PUT" and AUTHORIZATION not in r.path.lower() and IDENTITY not in r.path.lower()
    ]


def replan(arm, state_dir, record):
    """The plan `up` made, rebuilt from what it recorded and sent (keys are random per run)."""
    vm_put = next(r for r in puts(arm) if "virtualmachines" in r.path.lower())
    user_data = base64.b64decode(vm_put.body["properties"]["osProfile"]["customData"]).decode()
    host = json.loads(user_data.split("\n", 1)[1])["ssh_keys"]
    tags = vm_put.body["tags"]
    return make_plan(
        load({"name": NAME}),
        region=record.settings["region"],
        size=record.settings["size"],
        allow_ip="127.0.0.1/32",
        ssh_public_key=(state_dir / NAME / "id_ed25519.pub").read_text().strip(),
        host_key=KeyPair(host["ed25519_private"], host["ed25519_public"]),
        owner=Owner(tags["owner"], tags.get("owner-name", "")),
        now=datetime.fromisoformat(tags["created"]),
        accelerated_networking=True,  # NC4as_T4_v3's SKU has AcceleratedNetworkingEnabled
    )


def test_up_creates_exactly_the_planned_resources(arm, azure_env, state_dir, booter):
    result = provision("up", "--name", NAME, "--no-bootstrap")
    assert result.exit_code == 0, result.stderr
    assert lower(arm.inventory()) == lower(expected_inventory(arm))

    record = StateStore(state_dir).require(NAME)
    plan = replan(arm, state_dir, record)
    sent = {r.path.lower(): r.body for r in puts(arm)}
    for step in plan.steps():
        path = step.id.lower()
        assert sent[path] == step.body, step.kind
    assert len(sent) == len(plan.steps())
    # Idle stop (on by default): the identity the VM carries, one custom role and its assignment at the group's
    # scope (the group holds only the deployment's resources), nothing more.
    identity = next(r for r in arm.requests if r.method == "PUT" and IDENTITY in r.path.lower())
    assert identity.path.lower() == plan.identity_id.lower()
    assert identity.body == {"location": plan.region, "tags": plan.tags}
    assert sent[plan.vm_id.lower()]["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": {plan.identity_id: {}},
    }
    granted = [  # as written (an assignment Azure refused while its role's reads lagged was sent again)
        r.path.lower()
        for r in arm.requests
        if r.method == "PUT" and AUTHORIZATION in r.path.lower() and r.status == 201
    ]
    assert [p.split(AUTHORIZATION)[1].split("/")[0] for p in granted] == ["roledefinitions", "roleassignments"]
    assert granted[1].startswith(plan.group_id.lower() + AUTHORIZATION)
    assert arm.role_definitions()[0]["properties"]["assignableScopes"] == [plan.group_id]

    assert record.phase == "created"
    assert sorted(r.kind for r in record.resources) == sorted(
        ["resource_group", "vnet", "nsg", "public_ip", "nic", "vm", "identity", "role_definition", "role_assignment"]
    )
    assert {r.state for r in record.resources} == {"created"}
    assert record.machine["host"] == "127.0.0.1"
    fqdn = arm.resource(plan.network_id("publicIPAddresses", plan.names.public_ip))["properties"]["dnsSettings"]["fqdn"]
    assert record.machine["fqdn"] == fqdn == f"{plan.names.dns_label}.eastus.cloudapp.azure.com"
    assert fqdn in result.stdout and "127.0.0.1" in result.stdout
    assert [event for event, _ in booter.events] == ["boot"]


@pytest.mark.parametrize(
    ("cloud", "zone"), [("china", "cloudapp.chinacloudapi.cn"), ("usgov", "cloudapp.usgovcloudapi.net")]
)
def test_the_fqdn_is_the_one_azure_returns_in_each_cloud(state_dir, monkeypatch, cloud, zone):
    with FakeARM(booter=RecordingBooter(), cloud=cloud, time_scale=FAST) as arm:
        for key, value in {**arm_env(arm, state_dir), "PROVISION_CLOUD": cloud}.items():
            monkeypatch.setenv(key, value)
        result = provision("up", "--name", NAME, "--no-bootstrap")
    assert result.exit_code == 0, result.stderr
    fqdn = StateStore(state_dir).require(NAME).machine["fqdn"]
    assert fqdn.startswith(f"{NAME}-") and fqdn.endswith(f".eastus.{zone}") and f"({fqdn})" in result.stdout


def test_a_dns_name_taken_by_another_public_ip_stops_in_one_line(arm, azure_env):
    """Azure's DNS names are one per region across every subscription: a taken one is refused
    with 400 DnsRecordInUse; `up` says what to do and rolls back before any VM."""
    label = names_for(NAME, arm.subscription_id).dns_label
    squatter = NetworkManagementClient(StaticToken(), arm.subscription_id, **arm.client_kwargs())
    arm.add_resource_group("someone-else")
    body = {
        "location": "eastus",
        "sku": {"name": "Standard"},
        "properties": {"dnsSettings": {"domainNameLabel": label}},
    }
    squatter.public_ip_addresses.begin_create_or_update("someone-else", "their-ip", body).result()

    result = provision("up", "--name", NAME, "--no-bootstrap")
    assert result.exit_code == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: could not create public ip {NAME}-ip: DnsRecordInUse: DNS record {label}.eastus.")
    assert error.endswith("(another public IP in this region holds that DNS name; choose another --name)")
    assert not any("/virtualmachines/" in r.path.lower() for r in puts(arm))
    assert [i.rsplit("/", 1)[-1] for i in arm.inventory()] == ["someone-else", "their-ip"]


def test_record_and_keys_are_private(arm, azure_env, state_dir):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((state_dir / NAME).stat().st_mode) == 0o700
    for file in ("record.json", "id_ed25519", "known_hosts"):
        assert stat.S_IMODE((state_dir / NAME / file).stat().st_mode) == 0o600, file
    known = (state_dir / NAME / "known_hosts").read_text()
    assert known.startswith("127.0.0.1,") and "ssh-ed25519 " in known


def test_network_resources_are_created_concurrently(arm, azure_env):
    """With the VNet, NSG and IP held InProgress indefinitely, all three PUTs still arrive."""
    network = ("virtualNetworks", "networkSecurityGroups", "publicIPAddresses")
    for kind in network:
        arm.hold(f"Microsoft.Network/{kind}", 600)
    up = threading.Thread(target=provision, args=("up", "--name", NAME, "--no-bootstrap"))
    up.start()
    deadline = time.monotonic() + 20
    sent = []
    while len(sent) < 3 and time.monotonic() < deadline:
        sent = [r for r in puts(arm) if any(k.lower() in r.path.lower() for k in network)]
        time.sleep(0.05)
    for kind in network:
        arm.hold(f"Microsoft.Network/{kind}", 0)
    up.join(30)
    assert len(sent) == 3, "the network resources were not created concurrently"
    assert len(arm.inventory()) == len(expected_inventory(arm))


def test_down_deletes_everything_and_the_record(arm, azure_env, state_dir, booter):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    result = provision("down", NAME, "--yes")
    assert result.exit_code == 0, result.stderr
    assert arm.inventory() == []
    assert not (state_dir / NAME).exists()
    assert booter.running == set()
    assert f"deployment {NAME!r} is gone" in result.stdout


def test_down_is_idempotent(arm, azure_env):
    result = provision("down", NAME, "--yes")
    assert result.exit_code == 0, result.stderr
    assert "nothing to delete" in result.stderr


def test_down_without_a_record_finds_the_group_by_its_tags(arm, azure_env, state_dir):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    StateStore(state_dir).delete(NAME)
    result = provision("down", NAME, "--yes")
    assert result.exit_code == 0, result.stderr
    assert arm.inventory() == []


@pytest.mark.parametrize("tags", [None, {"managed-by": "dsvm-kit", "deployment": "someone-else"}, {"deployment": NAME}])
def test_down_refuses_a_group_that_is_not_ours(arm, azure_env, tags):
    arm.add_resource_group(GROUP, tags=tags)
    result = provision("down", NAME, "--yes")
    assert result.exit_code == 1
    assert "refusing to delete it" in result.stderr and result.stderr.count("\n") == 1
    assert lower(arm.inventory()) == lower([group_id(arm)])
    assert not any(r.method == "DELETE" for r in arm.requests)


def test_down_asks_first(arm, azure_env):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    result = provision("down", NAME)  # no terminal to answer on: taken as no
    assert result.exit_code == 1 and "nothing deleted" in result.stderr
    assert len(arm.inventory()) == len(expected_inventory(arm))


def test_down_no_wait_returns_while_deleting(arm, azure_env):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    arm.hold("Microsoft.Resources/resourceGroups", 600)
    result = provision("down", NAME, "--yes", "--no-wait")
    assert result.exit_code == 0 and "deletion of 'exp1' started" in result.stdout
    assert len(arm.inventory()) == len(expected_inventory(arm))
    arm.hold("Microsoft.Resources/resourceGroups", 0)
    assert arm.inventory() == []


def test_status_and_list(arm, azure_env):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    status = json.loads(provision("status", NAME, "--json").stdout)
    assert status["power_state"] == "running"
    assert (status["region"], status["size"], status["public_ip"]) == ("eastus", "Standard_NC4as_T4_v3", "127.0.0.1")
    assert status["fqdn"].endswith(".eastus.cloudapp.azure.com")
    listed = json.loads(provision("list", "--json").stdout)
    assert [row["name"] for row in listed] == [NAME]


def test_list_cloud_shows_groups_without_a_record(arm, azure_env, state_dir):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    StateStore(state_dir).delete(NAME)
    arm.add_resource_group("unrelated", tags={"team": "x"})
    listed = json.loads(provision("list", "--cloud", "--json").stdout)
    assert [(row["name"], row["phase"]) for row in listed] == [(NAME, f"no local record (group {GROUP})")]


def test_everything_is_tagged_with_the_signed_in_principal(arm, azure_env):
    assert provision("up", "--name", NAME, "--no-bootstrap").exit_code == 0
    for put in puts(arm):
        tags = put.body["tags"]
        assert (tags["owner"], tags["owner-name"]) == (TEST_OID, TEST_UPN), put.path


@pytest.mark.parametrize(
    "claims, name",
    [
        ({"upn": "bo@contoso.example", "unique_name": "live.com#bo@x"}, "bo@contoso.example"),
        ({"unique_name": "live.com#bo@outlook.com"}, "live.com#bo@outlook.com"),
        ({"preferred_username": "bo@contoso.example"}, "bo@contoso.example"),
        ({"appid": "11111111-aaaa-bbbb-cccc-000000000000"}, "11111111-aaaa-bbbb-cccc-000000000000"),
        ({}, ""),
    ],
)
def test_the_owner_is_read_from_the_token(claims, name):
    assert owner_from_token(access_token("the-oid", **claims), source="a test") == Owner("the-oid", name)


@pytest.mark.parametrize(
    "token",
    ["fake-arm-token", "a.b.c", "a." + base64.urlsafe_b64encode(b'{"upn": "no oid"}').decode() + ".sig"],
)
def test_a_token_without_a_principal_stops_before_any_write(arm, azure_env, monkeypatch, token):
    monkeypatch.setenv("PROVISION_ARM_TOKEN", token)
    result = provision("up", "--name", NAME, "--no-bootstrap")
    assert result.exit_code == 1 and puts(arm) == []
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: the ARM access token from PROVISION_ARM_TOKEN is not a JWT with an `oid`")
    assert token not in result.stderr and "Traceback" not in result.stderr


def test_no_credentials_says_how_to_fix(arm, azure_env, monkeypatch):
    monkeypatch.delenv("PROVISION_ARM_TOKEN")
    for key in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no `az` CLI or other credential helpers
    result = provision("up", "--name", NAME, "--no-bootstrap")
    assert result.exit_code == 1
    assert "no Azure credentials found: run `az login`" in result.stderr
    assert "Traceback" not in result.stderr
    assert arm.inventory() == []
