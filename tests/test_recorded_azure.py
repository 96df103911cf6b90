"""The fake ARM answers as live Azure did in Azure's own test recordings (DESIGN.md section 9).

Each recorded answer below names its recording and the interaction in it (the request, and the Date of its answer
where the recording has one) and keeps only the facts the kit depends on: the status, which long-running-operation
headers came (Azure-AsyncOperation, Location), the Retry-After (UNKNOWN where the recording strips it), the body's
top-level keys (and keys its `properties` must have), and the state (provisioningState, or an operation's status).
The recorded requests' shapes are replayed against the fake at time scale 1 in the order of a deployment's life, a
hold keeping an operation running where the recording shows it running; every answer must match what was recorded,
except where FAKE_DIFFERS says why it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import requests

from tests.fakes.arm import FakeARM, user_token
from tests.test_fake_arm_examples import IMAGE

SOURCES = {
    "A": "Azure/azure-sdk-for-python sdk/compute/azure-mgmt-compute/tests/recordings/"
    "test_mgmt_compute_vm.test_compute_vm.yaml",
    "B": "Azure/azure-sdk-assets python/sdk/compute/azure-mgmt-compute/tests/recordings/"
    "test_mgmt_compute_vm.pyTestMgmtComputetest_compute_vm.json",
    "C": "Azure/azure-cli src/azure-cli/azure/cli/command_modules/vm/tests/latest/recordings/"
    "test_vm_create_state_modifications.yaml",
    "D": "Azure/azure-sdk-for-python sdk/resources/azure-mgmt-resource/tests/recordings/"
    "test_mgmt_resource.test_resource_groups.yaml",
    "E": "Azure/azure-sdk-for-python sdk/network/azure-mgmt-network/tests/recordings/"
    "test_mgmt_network.test_public_ip_addresses.yaml",
    "F": "Azure/azure-cli src/azure-cli/azure/cli/command_modules/role/tests/latest/recordings/"
    "test_custom_role_definition_scenario.yaml",
    "G": "Azure/azure-sdk-for-python sdk/compute/azure-mgmt-compute/tests/recordings/test_mgmt_compute.test_usage.yaml",
    "H": "Azure/azure-cli src/azure-cli/azure/cli/command_modules/role/tests/latest/recordings/"
    "test_create_for_rbac_with_secret_with_assignment.yaml",
    "I": "Azure/azure-sdk-for-python sdk/network/azure-mgmt-network/tests/recordings/"
    "test_mgmt_network.test_network_security_groups.yaml",
    "J": "Azure/azure-sdk-assets python/sdk/resources/azure-mgmt-resource/tests/recordings/"
    "test_mgmt_resource_subscriptions.pyTestMgmtResourceSubscriptionstest_subscriptions.json",
    "MSI": "Azure/azure-cli src/azure-cli/azure/cli/command_modules/vm/tests/latest/recordings/test_vm_explicit_msi.yaml",
    "CONFLICT": "Azure/azure-cli src/azure-cli/azure/cli/command_modules/role/tests/latest/recordings/"
    "test_role_assignment_handle_conflicted_assignments.yaml",
    "AVD99": "Azure/avdaccelerator issue 99 (a deployment's trace: no recording keeps a PrincipalNotFound)",
}
UNKNOWN = "stripped"  # the YAML recordings strip Retry-After (DESIGN.md section 9)
ASYNC, LOCATION = "Azure-AsyncOperation", "Location"
NETWORK_KEYS = {"name", "id", "etag", "type", "location", "properties"}
COMPUTE_STATUS = {"startTime", "status", "name"}
ROLE_KEYS = {"properties", "id", "type", "name"}


@dataclass(frozen=True)
class Answer:
    source: str  # a key of SOURCES; "(DESIGN.md)" after it: the fact as DESIGN.md section 9 gives it
    interaction: str
    status: int
    lro: frozenset[str] = frozenset()
    retry_after: float | str | None = None  # seconds; None: none sent; UNKNOWN
    keys: frozenset[str] | None = None  # the body's top-level keys (None: not compared; empty: no body)
    properties: frozenset[str] = frozenset()  # keys the body's `properties` has (among others)
    state: str | None = None
    extra: dict = field(default_factory=dict)  # other recorded facts, checked by their own test


def answer(source, interaction, status, lro=(), retry_after=None, keys=None, properties=(), state=None, **extra):
    return Answer(
        source,
        interaction,
        status,
        frozenset(lro),
        retry_after,
        None if keys is None else frozenset(keys),
        frozenset(properties),
        state,
        extra,
    )


RECORDED = {
    # -- network (B keeps Retry-After; A, E and I show the same shapes without it) ---------------------------
    "vnet put": answer(
        "B", "PUT .../virtualNetworks/networknamexeb772750 (06:13:15)", 201, [ASYNC], 3, NETWORK_KEYS, state="Updating"
    ),
    "vnet poll running": answer(
        "B",
        "GET .../Microsoft.Network/locations/eastus/operations/05bf2e65... (06:13:15)",
        200,
        (),
        10,
        {"status"},
        state="InProgress",
    ),
    "vnet poll done": answer(
        "B",
        "GET .../Microsoft.Network/locations/eastus/operations/05bf2e65... (06:13:26)",
        200,
        (),
        None,
        {"status"},
        state="Succeeded",
    ),
    "vnet put (A)": answer(
        "A",
        "PUT .../virtualNetworks/networknamex15cf0eff (06:51:42)",
        201,
        [ASYNC],
        UNKNOWN,
        NETWORK_KEYS,
        state="Updating",
    ),
    "nic put (A)": answer(
        "A", "PUT .../networkInterfaces/interfacex15cf0eff (06:51:49)", 201, [ASYNC], UNKNOWN, state="Succeeded"
    ),
    "subnet put": answer(
        "B",
        "PUT .../subnets/subnetxeb772750 (06:13:28)",
        201,
        [ASYNC],
        3,
        {"name", "id", "etag", "properties", "type"},
        state="Updating",
    ),
    "subnet poll": answer(
        "B", "GET .../operations/eb7e84d5... (06:13:28)", 200, (), None, {"status"}, state="Succeeded"
    ),
    "nic put": answer(
        "B",
        "PUT .../networkInterfaces/interfacexeb772750 (06:13:30)",
        201,
        [ASYNC],
        None,
        NETWORK_KEYS | {"kind"},
        {"ipConfigurations", "resourceGuid", "provisioningState"},
        state="Succeeded",
    ),
    "nic poll": answer("B", "GET .../operations/2f6e00a7... (06:13:30)", 200, (), None, {"status"}, state="Succeeded"),
    "public ip put": answer(
        "E", "PUT .../publicIPAddresses/pyipname (the first PUT)", 201, [ASYNC], UNKNOWN, state="Updating"
    ),
    "nsg put": answer(
        "I", "PUT .../networkSecurityGroups/pysecgroup (the first PUT)", 201, [ASYNC], UNKNOWN, state="Updating"
    ),
    "nsg delete": answer("I", "DELETE .../networkSecurityGroups/pysecgroup", 202, [ASYNC, LOCATION], UNKNOWN, set()),
    # -- virtual machines -----------------------------------------------------------------------------------
    "vm put": answer(
        "B",
        "PUT .../virtualMachines/virtualmachinexeb772750 (06:13:35)",
        201,
        [ASYNC],
        10,
        {"name", "id", "type", "location", "tags", "properties"},
        {"vmId", "timeCreated", "provisioningState"},
        state="Creating",
    ),
    "vm poll running": answer(
        "B",
        "GET .../Microsoft.Compute/locations/eastus/operations/c20f1c73...?p=... (06:13:36)",
        200,
        (),
        50,
        COMPUTE_STATUS,
        state="InProgress",
    ),
    "vm poll done": answer(
        "B",
        "GET .../operations/c20f1c73...?p=... (06:14:26)",
        200,
        (),
        None,
        COMPUTE_STATUS | {"endTime"},
        state="Succeeded",
    ),
    "restart": answer("B", "POST .../virtualmachinexeb772750/restart (06:17:05)", 202, [ASYNC, LOCATION], 10, set()),
    "restart poll 1": answer(
        "B", "GET .../operations/3bc03a81...?p=... (06:17:06)", 200, (), 10, COMPUTE_STATUS, state="InProgress"
    ),
    "restart poll 2": answer(
        "B", "GET .../operations/3bc03a81...?p=... (06:17:16)", 200, (), 30, COMPUTE_STATUS, state="InProgress"
    ),
    "deallocate": answer("C (DESIGN.md)", "POST .../deallocate", 202, [ASYNC, LOCATION], None, set()),
    "deallocate location": answer(
        "C (DESIGN.md)", "GET of its Location (monitor=true) once it succeeded", 200, (), None, set()
    ),
    "start failed": answer(
        "C (DESIGN.md)",
        "GET of a failed action's Azure-AsyncOperation (its other keys not given)",
        200,
        (),
        None,
        state="Failed",
    ),
    "vm delete": answer(
        "B (DESIGN.md)", "DELETE .../virtualMachines/virtualmachinexeb772750", 202, [ASYNC, LOCATION], 10
    ),
    "vm delete poll": answer("B (DESIGN.md)", "its first poll", 200, (), 30, COMPUTE_STATUS, state="InProgress"),
    # -- resource groups, subscription, usages --------------------------------------------------------------
    "group delete": answer(
        "D", "DELETE .../resourcegroups/pyrg... ", 202, [LOCATION], UNKNOWN, set(), location="/operationresults/"
    ),
    "group delete poll": answer("D", "GET .../operationresults/... (running)", 202, [LOCATION], UNKNOWN, set()),
    "group delete done": answer("D", "GET .../operationresults/... (done)", 200, (), UNKNOWN),
    "subscription": answer(
        "J",
        "GET /subscriptions/{id}",
        200,
        (),
        None,
        {
            "id",
            "authorizationSource",
            "managedByTenants",
            "tags",
            "subscriptionId",
            "tenantId",
            "displayName",
            "state",
            "subscriptionPolicies",
        },
        policies={"locationPlacementId", "quotaId", "spendingLimit"},
    ),
    "usages": answer(
        "G",
        "GET .../locations/eastus/usages",
        200,
        (),
        UNKNOWN,
        {"value"},
        usage={"limit", "unit", "currentValue", "name"},
    ),
    # -- identity and roles ---------------------------------------------------------------------------------
    "identity put": answer(
        "MSI",
        "PUT .../userAssignedIdentities/id1 (identity create)",
        201,
        [LOCATION],
        UNKNOWN,
        {"location", "tags", "id", "name", "type", "properties"},
        {"isolationScope", "tenantId", "principalId", "clientId"},
    ),
    "role put": answer(
        "F",
        "PUT .../roleDefinitions/88888888-...0001 (role definition create)",
        201,
        (),
        UNKNOWN,
        ROLE_KEYS,
        {"roleName", "type", "assignableScopes", "permissions", "createdOn", "updatedOn", "createdBy", "updatedBy"},
    ),
    "role update": answer(
        "F",
        "PUT .../roleDefinitions/88888888-...0001 (role definition update)",
        201,
        (),
        UNKNOWN,
        ROLE_KEYS,
        {"createdOn", "updatedOn", "createdBy", "updatedBy"},
    ),
    "role list after update": answer(
        "F",
        "GET .../roleDefinitions?$filter=roleName eq 'cli-test-role000001' (role definition delete)",
        200,
        (),
        UNKNOWN,
        {"value"},
        value=[],
    ),
    "assignment put": answer(
        "H",
        "PUT .../roleAssignments/88888888-...0002 (ad sp create-for-rbac)",
        201,
        (),
        UNKNOWN,
        {"properties", "id", "type", "name"},
        {
            "roleDefinitionId",
            "principalId",
            "principalType",
            "scope",
            "condition",
            "conditionVersion",
            "createdOn",
            "updatedOn",
            "createdBy",
            "updatedBy",
            "delegatedManagedIdentityResourceId",
            "description",
        },
    ),
    "assignment at group": answer(
        "CONFLICT",
        "PUT .../resourceGroups/cli_role_assign000001/.../roleAssignments/88888888-...0001",
        201,
        (),
        UNKNOWN,
        {"properties", "id", "type", "name"},
        {"scope", "principalType", "createdOn"},
    ),
    "principal not found": answer(
        "AVD99",
        "a role assignment to a just-created user-assigned identity",
        400,
        (),
        UNKNOWN,
        {"error"},
        code="PrincipalNotFound",
        message="this error might be related to a replication delay. In this case, set the role assignment "
        "principalType property",
    ),
}
# Where the fake answers otherwise than recorded, and why (none: every recorded fact above holds).
FAKE_DIFFERS: dict[str, str] = {}


class Client:
    """Raw HTTPS to the fake, as the SDK's pipeline sends it (it never waits: the fake's holds decide)."""

    def __init__(self, arm: FakeARM):
        self.arm = arm
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {user_token()}"
        self.sub = f"/subscriptions/{arm.subscription_id}"

    def __call__(self, method: str, path: str, body=None, api: str = "2025-04-01", **query) -> requests.Response:
        url = path if path.startswith("https://") else self.arm.url + path
        params = None if path.startswith("https://") else {"api-version": api, **query}
        return self.session.request(method, url, json=body, params=params, timeout=10, verify=self.arm.ca_bundle)


def replay(arm: FakeARM) -> dict[str, requests.Response]:
    """The recorded requests' shapes against the fake, in a deployment's order; its answer to each."""
    ask, got = Client(arm), {}
    group = f"{ask.sub}/resourceGroups/rgname"
    net, compute = f"{group}/providers/Microsoft.Network", f"{group}/providers/Microsoft.Compute"
    arm.add_resource_group("rgname", "eastus")

    arm.hold("Microsoft.Network/virtualNetworks", 600)
    vnet = {"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}
    got["vnet put"] = ask("PUT", f"{net}/virtualNetworks/vnet", vnet)
    got["vnet poll running"] = ask("GET", got["vnet put"].headers[ASYNC])
    arm.hold("Microsoft.Network/virtualNetworks", 0)
    got["vnet poll done"] = ask("GET", got["vnet put"].headers[ASYNC])
    got["subnet put"] = ask(
        "PUT", f"{net}/virtualNetworks/vnet/subnets/default", {"properties": {"addressPrefix": "10.0.0.0/24"}}
    )
    got["subnet poll"] = ask("GET", got["subnet put"].headers[ASYNC])
    got["public ip put"] = ask("PUT", f"{net}/publicIPAddresses/ip", {"location": "eastus"})
    got["nsg put"] = ask("PUT", f"{net}/networkSecurityGroups/nsg", {"location": "eastus"})
    subnet = {"id": f"{net}/virtualNetworks/vnet/subnets/default"}
    nic = {"location": "eastus", "properties": {"ipConfigurations": [{"name": "c", "properties": {"subnet": subnet}}]}}
    got["nic put"] = ask("PUT", f"{net}/networkInterfaces/nic", nic)
    got["nic poll"] = ask("GET", got["nic put"].headers[ASYNC])
    got["vnet put (A)"], got["nic put (A)"] = got["vnet put"], got["nic put"]
    got["nsg delete"] = ask("DELETE", f"{net}/networkSecurityGroups/nsg")

    arm.hold("Microsoft.Compute/virtualMachines", 600)
    got["vm put"] = ask("PUT", f"{compute}/virtualMachines/vm", vm_body(net), api="2026-04-01")
    got["vm poll running"] = ask("GET", got["vm put"].headers[ASYNC])
    arm.hold("Microsoft.Compute/virtualMachines", 0)
    got["vm poll done"] = ask("GET", got["vm put"].headers[ASYNC])
    arm.hold("Microsoft.Compute/virtualMachines", 600)
    got["restart"] = ask("POST", f"{compute}/virtualMachines/vm/restart")
    got["restart poll 1"] = ask("GET", got["restart"].headers[ASYNC])
    got["restart poll 2"] = ask("GET", got["restart"].headers[ASYNC])
    arm.hold("Microsoft.Compute/virtualMachines", 0)
    got["deallocate"] = ask("POST", f"{compute}/virtualMachines/vm/deallocate")
    assert ask("GET", got["deallocate"].headers[ASYNC]).json()["status"] == "Succeeded"
    got["deallocate location"] = ask("GET", got["deallocate"].headers[LOCATION])
    arm.inject("POST", r"/start$", async_failure=True, code="AllocationFailed", message="No capacity.")
    started = ask("POST", f"{compute}/virtualMachines/vm/start")
    got["start failed"] = ask("GET", started.headers[ASYNC])
    arm.hold("Microsoft.Compute/virtualMachines", 600)
    got["vm delete"] = ask("DELETE", f"{compute}/virtualMachines/vm")
    got["vm delete poll"] = ask("GET", got["vm delete"].headers[ASYNC])
    arm.hold("Microsoft.Compute/virtualMachines", 0)

    arm.add_resource_group("roles", "eastus")
    role_id = f"{ask.sub}/providers/Microsoft.Authorization/roleDefinitions/88888888-0000-0000-0000-000000000001"
    role = {
        "properties": {
            "roleName": "cli-test-role000001",
            "permissions": [{"actions": ["Microsoft.Compute/*/read"]}],
            "assignableScopes": [ask.sub],
        }
    }
    got["role put"] = ask("PUT", role_id, role, api="2022-05-01-preview")
    got["role update"] = ask("PUT", role_id, role, api="2022-05-01-preview")
    by_name = "roleName eq 'cli-test-role000001'"
    got["role list after update"] = ask(
        "GET",
        f"{ask.sub}/providers/Microsoft.Authorization/roleDefinitions",
        api="2022-05-01-preview",
        **{"$filter": by_name},
    )
    identity = f"{ask.sub}/resourceGroups/roles/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"
    got["identity put"] = ask("PUT", identity, {"tags": {"tag1": "d1"}, "location": "westus"}, api="2024-11-30")
    principal = got["identity put"].json()["properties"]["principalId"]
    contributor = f"{ask.sub}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"
    assign = {
        "properties": {"roleDefinitionId": contributor, "principalId": principal, "principalType": "ServicePrincipal"}
    }
    assignments = "providers/Microsoft.Authorization/roleAssignments"
    got["assignment put"] = ask(
        "PUT", f"{ask.sub}/{assignments}/88888888-0000-0000-0000-000000000002", assign, api="2020-04-01-preview"
    )
    got["assignment at group"] = ask(
        "PUT",
        f"{ask.sub}/resourceGroups/roles/{assignments}/88888888-0000-0000-0000-000000000001",
        assign,
        api="2022-04-01",
    )
    untyped = {"properties": {k: v for k, v in assign["properties"].items() if k != "principalType"}}
    got["principal not found"] = ask(
        "PUT", f"{group}/{assignments}/88888888-0000-0000-0000-000000000003", untyped, api="2022-04-01"
    )
    got["subscription"] = ask("GET", ask.sub, api="2022-12-01")
    got["usages"] = ask("GET", f"{ask.sub}/providers/Microsoft.Compute/locations/eastus/usages")

    arm.hold("Microsoft.Resources/resourceGroups", 600)
    got["group delete"] = ask("DELETE", group)
    got["group delete poll"] = ask("GET", got["group delete"].headers[LOCATION])
    arm.hold("Microsoft.Resources/resourceGroups", 0)
    got["group delete done"] = ask("GET", got["group delete poll"].headers[LOCATION])
    return got


def vm_body(net: str) -> dict:
    return {
        "location": "eastus",
        "tags": {"owner": "recorded"},
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_NC4as_T4_v3"},
            "storageProfile": {"imageReference": IMAGE, "osDisk": {"createOption": "FromImage"}},
            "osProfile": {
                "computerName": "vm",
                "adminUsername": "azureuser",
                "linuxConfiguration": {
                    "disablePasswordAuthentication": True,
                    "ssh": {
                        "publicKeys": [{"path": "/home/azureuser/.ssh/authorized_keys", "keyData": "ssh-ed25519 AAAA"}]
                    },
                },
            },
            "networkProfile": {"networkInterfaces": [{"id": f"{net}/networkInterfaces/nic"}]},
        },
    }


@pytest.fixture(scope="module")
def answers() -> dict[str, requests.Response]:
    with FakeARM() as arm:  # time scale 1: Azure's own Retry-After values
        return replay(arm)


def facts(response: requests.Response) -> dict:
    """What the fake answered, in the terms of an Answer."""
    body = response.json() if response.content else None
    state = None
    if isinstance(body, dict):
        state = body.get("status") or (body.get("properties") or {}).get("provisioningState")
    retry_after = response.headers.get("Retry-After")
    return {
        "status": response.status_code,
        "lro": frozenset(h for h in (ASYNC, LOCATION) if h in response.headers),
        "retry_after": float(retry_after) if retry_after else None,
        "keys": frozenset(body) if isinstance(body, dict) else frozenset(),
        "properties": frozenset((body or {}).get("properties") or {}) if isinstance(body, dict) else frozenset(),
        "state": state,
    }


def test_every_recording_of_design_section_9_is_kept_here():
    assert {a.source.split(" ")[0] for a in RECORDED.values()} == set(SOURCES)
    assert all(a.interaction.strip() for a in RECORDED.values())
    assert set(FAKE_DIFFERS) <= set(RECORDED) and all(FAKE_DIFFERS.values())


@pytest.mark.parametrize("name", sorted(set(RECORDED) - set(FAKE_DIFFERS)))
def test_the_fake_answers_as_azure_did(answers, name):
    recorded, fake = RECORDED[name], facts(answers[name])
    where = f"{recorded.source}: {recorded.interaction}"
    assert fake["status"] == recorded.status, (where, answers[name].text)
    assert fake["lro"] == recorded.lro, where
    if recorded.retry_after != UNKNOWN:
        assert fake["retry_after"] == recorded.retry_after, where
    if recorded.keys is not None:
        assert fake["keys"] == recorded.keys, where
    assert recorded.properties <= fake["properties"], where
    if recorded.state is not None:
        assert fake["state"] == recorded.state, where


def test_what_else_was_recorded(answers):
    """Facts beyond the status, headers and keys: where an operation's Location points, the inner keys of a
    subscription and of a usage, a list that lags, and Azure's whole PrincipalNotFound message."""
    assert RECORDED["group delete"].extra["location"] in answers["group delete"].headers[LOCATION]
    assert "monitor=true" in answers["restart"].headers[LOCATION] and "?p=" in answers["vm put"].headers[ASYNC]
    assert not answers["deallocate location"].content and not answers["restart"].content
    subscription = answers["subscription"].json()
    assert set(subscription["subscriptionPolicies"]) == RECORDED["subscription"].extra["policies"]
    assert subscription["tenantId"]
    usage = answers["usages"].json()["value"][0]
    assert set(usage) == RECORDED["usages"].extra["usage"] and set(usage["name"]) == {"value", "localizedValue"}
    assert answers["role list after update"].json()["value"] == RECORDED["role list after update"].extra["value"]
    assert answers["role put"].json()["properties"]["createdBy"] is None  # F: null in the PUT's answer
    error = answers["principal not found"].json()["error"]
    assert error["code"] == RECORDED["principal not found"].extra["code"]
    assert RECORDED["principal not found"].extra["message"] in error["message"]
    assert error["message"].startswith("Principal ") and "does not exist in the directory" in error["message"]
    assert answers["start failed"].json()["error"]["code"] == "AllocationFailed"
