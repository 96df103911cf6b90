"""The fake ARM's Microsoft.Authorization, VM identities and its instance metadata service, over raw HTTPS."""

import uuid

import pytest
import requests

from tests.fakes.arm import FakeARM, access_token, user_token
from tests.test_fake_arm_examples import nic_body, vm_body

API = {"api-version": "2022-04-01"}
DEALLOCATE = "Microsoft.Compute/virtualMachines/deallocate/action"


class Caller:
    def __init__(self, arm: FakeARM, token: str):
        self.arm, self.session = arm, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, body=None, api="2025-04-01") -> requests.Response:
        return self.session.request(
            method, self.arm.url + path, json=body, params={"api-version": api}, timeout=10, verify=self.arm.ca_bundle
        )


@pytest.fixture
def fake():
    with FakeARM(time_scale=0) as arm:  # no lag: tests of lag are in test_recorded_azure.py
        yield arm


def make_vm(fake: FakeARM, caller: Caller, identity: dict | None = None) -> dict:
    sub = fake.subscription_id
    fake.add_resource_group("rg", "eastus")
    net = f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Network"
    vnet = {
        "location": "eastus",
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}],
        },
    }
    assert caller("PUT", f"{net}/virtualNetworks/rg1-vnet", vnet).ok
    assert caller("PUT", f"{net}/publicIPAddresses/test-ip", {"location": "eastus"}).ok
    assert caller("PUT", f"{net}/networkInterfaces/nic1", nic_body(sub, "rg")).ok
    body = vm_body(sub, "rg", "nic1") | ({"identity": identity} if identity else {})
    response = caller(
        "PUT", f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm", body
    )
    assert response.status_code == 201, response.text
    return response.json()


def custom_role(caller: Caller, scope: str, actions: list[str]) -> str:
    guid = str(uuid.uuid4())
    body = {
        "properties": {
            "roleName": f"role {guid}",
            "assignableScopes": [scope],
            "permissions": [{"actions": actions, "notActions": []}],
        }
    }
    sub = scope.split("/")[2]
    response = caller(
        "PUT", f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}", body, "2022-04-01"
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_system_assigned_identity_gets_a_principal_and_the_tenant(fake):
    vm = make_vm(fake, Caller(fake, user_token()), {"type": "SystemAssigned"})
    assert vm["identity"]["type"] == "SystemAssigned"
    uuid.UUID(vm["identity"]["principalId"])
    assert vm["identity"]["tenantId"]
    again = Caller(fake, user_token())("GET", vm["id"]).json()
    assert again["identity"]["principalId"] == vm["identity"]["principalId"]


def test_an_unknown_identity_type_is_refused(fake):
    with pytest.raises(AssertionError, match="identity.type"):
        make_vm(fake, Caller(fake, user_token()), {"type": "Everything"})


def test_the_vm_deallocates_itself_only_with_the_role_at_its_scope(fake):
    owner = Caller(fake, user_token())
    vm = make_vm(fake, owner, {"type": "SystemAssigned"})
    principal = vm["identity"]["principalId"]
    itself = Caller(fake, access_token(principal, xms_mirid=vm["id"]))

    refused = itself("POST", vm["id"] + "/deallocate")
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "AuthorizationFailed"
    assert f"object id '{principal}'" in error["message"] and DEALLOCATE in error["message"]

    role = custom_role(owner, vm["id"], [DEALLOCATE, "Microsoft.Compute/virtualMachines/read"])
    name = str(uuid.uuid4())
    assignment = {
        "properties": {"roleDefinitionId": role, "principalId": principal, "principalType": "ServicePrincipal"}
    }
    put = owner("PUT", f"{vm['id']}/providers/Microsoft.Authorization/roleAssignments/{name}", assignment, "2022-04-01")
    assert put.status_code == 201, put.text
    assert put.json()["properties"]["scope"] == vm["id"]

    assert itself("POST", vm["id"] + "/deallocate").status_code == 202
    assert itself("POST", vm["id"] + "/start").status_code == 403  # the role allows nothing else
    assert itself("DELETE", vm["id"]).status_code == 403

    # the role cannot go while assigned; the assignment goes with the group
    role_path = role[role.index("/subscriptions") :]
    assert owner("DELETE", role_path, api="2022-04-01").json()["error"]["code"] == "RoleDefinitionHasAssignments"
    assert owner("DELETE", f"/subscriptions/{fake.subscription_id}/resourceGroups/rg").status_code == 202
    fake.inventory()
    assert fake.role_assignments() == []
    assert owner("DELETE", role_path, api="2022-04-01").status_code == 200
    assert fake.role_definitions() == []


def test_a_role_assigned_to_an_unknown_principal_is_refused(fake):
    owner = Caller(fake, user_token())
    sub = f"/subscriptions/{fake.subscription_id}"
    role = custom_role(owner, sub, ["Microsoft.Compute/virtualMachines/read"])
    body = {"properties": {"roleDefinitionId": role, "principalId": str(uuid.uuid4())}}
    response = owner(
        "PUT", f"{sub}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}", body, "2022-04-01"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "PrincipalNotFound"


def test_permissions_owner_and_plain_contributor(fake):
    caller = Caller(fake, user_token())
    path = f"/subscriptions/{fake.subscription_id}/providers/Microsoft.Authorization/permissions"
    (owner,) = caller("GET", path, api="2022-04-01").json()["value"]
    assert owner["actions"] == ["*"] and owner["notActions"] == []

    fake.make_caller_contributor()
    (contributor,) = caller("GET", path, api="2022-04-01").json()["value"]
    assert "Microsoft.Authorization/*/Write" in contributor["notActions"]
    guid = uuid.uuid4()
    body = {
        "properties": {
            "roleName": "x",
            "assignableScopes": [f"/subscriptions/{fake.subscription_id}"],
            "permissions": [{"actions": ["*/read"]}],
        }
    }
    response = caller(
        "PUT",
        f"/subscriptions/{fake.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
        body,
        "2022-04-01",
    )
    assert response.status_code == 403
    assert "Microsoft.Authorization/roleDefinitions/write" in response.json()["error"]["message"]


def test_imds_wants_the_metadata_header_and_knows_no_stranger(fake):
    url = fake.imds_url + "/metadata/identity/oauth2/token"
    query = {"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
    assert requests.get(url, params=query, timeout=5).status_code == 400
    response = requests.get(url, params=query, headers={"Metadata": "true"}, timeout=5)
    assert response.status_code == 400  # this test's user runs no fake VM
    assert response.json()["error_description"] == "Identity not found"
