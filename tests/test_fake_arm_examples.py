"""The fake ARM answers Azure's own request/response examples (../shared/azure-rest-examples).

Each example's request is replayed against the fake (placeholders mapped to real values);
the status must be one the example allows, the LRO headers it shows must be there, and the
response must carry the fields the example's response has.
"""

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.fakes.arm import FakeARM

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "azure-rest-examples"
IMAGE = {"publisher": "microsoft-dsvm", "offer": "ubuntu-2204", "sku": "2204-gen2", "version": "latest"}
RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
NET = RG + "/providers/Microsoft.Network"
VM = RG + "/providers/Microsoft.Compute/virtualMachines/{vmName}"
PPG = RG + "/providers/Microsoft.Compute/proximityPlacementGroups/{proximityPlacementGroupName}"
LOCATION = "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/locations/{location}"
TERMS = (
    "/subscriptions/{subscriptionId}/providers/Microsoft.MarketplaceOrdering/offerTypes/{offerType}"
    "/publishers/{publisherId}/offers/{offerId}/plans/{planId}/agreements/current"
)
PERMISSIONS = RG + "/providers/Microsoft.Authorization/permissions"
RESOURCE_PERMISSIONS = (
    RG + "/providers/{resourceProviderNamespace}/{parentResourcePath}/{resourceType}/{resourceName}"
    "/providers/Microsoft.Authorization/permissions"
)
ROLE_DEFINITION = "/{scope}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionId}"
ROLE_ASSIGNMENT = "/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}"
QUOTA = "/{scope}/providers/Microsoft.Quota"
# The role-assignment examples' subscription, principal and custom role (made real in the fake by `arrange`).
EXAMPLE_SUBSCRIPTION = "a925f2f7-5c63-4b7b-8799-25a5f97bc3b2"
EXAMPLE_PRINCIPAL = "ce2ce14e-85d7-4629-bdbc-454d0519d987"
EXAMPLE_ROLE = "0b5fe924-9a61-425c-96af-cfe6e287ca2d"
ROLE_GUID = "2a7f2e2e-6f3b-4c55-9c1e-1d3b8f7c0a11"  # for the role-definition examples' "roleDefinitionId"
T4_FAMILY = "standardNCASv3_T4Family"

# example file -> (method, path template); templates take the example's path parameters.
REQUESTS = {
    "Microsoft.Resources/2025-04-01/CreateResourceGroup.json": ("PUT", RG),
    "Microsoft.Resources/2025-04-01/ResourceGroups_Get.json": ("GET", RG),
    "Microsoft.Resources/2025-04-01/ForceDeleteVMsInResourceGroup.json": ("DELETE", RG),
    "Microsoft.Resources/2025-04-01/ForceDeleteVMsAndVMSSInResourceGroup.json": ("DELETE", RG),
    "Microsoft.Network/2026-01-01/VirtualNetworkCreateSubnet.json": (
        "PUT",
        NET + "/virtualNetworks/{virtualNetworkName}",
    ),
    "Microsoft.Network/2026-01-01/VirtualNetworkGet.json": ("GET", NET + "/virtualNetworks/{virtualNetworkName}"),
    "Microsoft.Network/2026-01-01/VirtualNetworkDelete.json": ("DELETE", NET + "/virtualNetworks/{virtualNetworkName}"),
    "Microsoft.Network/2026-01-01/NetworkSecurityGroupCreateWithRule.json": (
        "PUT",
        NET + "/networkSecurityGroups/{networkSecurityGroupName}",
    ),
    "Microsoft.Network/2026-01-01/NetworkSecurityGroupGet.json": (
        "GET",
        NET + "/networkSecurityGroups/{networkSecurityGroupName}",
    ),
    "Microsoft.Network/2026-01-01/NetworkSecurityGroupDelete.json": (
        "DELETE",
        NET + "/networkSecurityGroups/{networkSecurityGroupName}",
    ),
    "Microsoft.Network/2026-01-01/PublicIpAddressCreateDns.json": (
        "PUT",
        NET + "/publicIPAddresses/{publicIpAddressName}",
    ),
    "Microsoft.Network/2026-01-01/PublicIpAddressCreateDefaults.json": (
        "PUT",
        NET + "/publicIPAddresses/{publicIpAddressName}",
    ),
    "Microsoft.Network/2026-01-01/PublicIpAddressGet.json": ("GET", NET + "/publicIPAddresses/{publicIpAddressName}"),
    "Microsoft.Network/2026-01-01/PublicIpAddressDelete.json": (
        "DELETE",
        NET + "/publicIPAddresses/{publicIpAddressName}",
    ),
    "Microsoft.Network/2026-01-01/NetworkInterfaceCreate.json": (
        "PUT",
        NET + "/networkInterfaces/{networkInterfaceName}",
    ),
    "Microsoft.Network/2026-01-01/NetworkInterfaceGet.json": ("GET", NET + "/networkInterfaces/{networkInterfaceName}"),
    "Microsoft.Network/2026-01-01/NetworkInterfaceDelete.json": (
        "DELETE",
        NET + "/networkInterfaces/{networkInterfaceName}",
    ),
    "Microsoft.Compute/2025-11-01/VirtualMachine_Create_WithSshAuthentication.json": ("PUT", VM),
    "Microsoft.Compute/2025-04-01/VirtualMachine_Create_WithUefiSettings.json": ("PUT", VM),
    "Microsoft.Compute/2025-11-01/VirtualMachine_Create_WithEncryptionIdentity.json": ("PUT", VM),
    "Microsoft.Compute/2025-11-01/VirtualMachine_Get.json": ("GET", VM),
    "Microsoft.Compute/2025-04-01/VirtualMachine_Get_InstanceView.json": ("GET", VM + "/instanceView"),
    "Microsoft.Compute/2025-11-01/VirtualMachine_Deallocate_MaximumSet_Gen.json": ("POST", VM + "/deallocate"),
    "Microsoft.Compute/2025-11-01/VirtualMachine_Start_MaximumSet_Gen.json": ("POST", VM + "/start"),
    "Microsoft.Compute/2025-04-01/VirtualMachine_PowerOff_MaximumSet_Gen.json": ("POST", VM + "/powerOff"),
    "Microsoft.Compute/2025-04-01/VirtualMachine_PowerOff_MinimumSet_Gen.json": ("POST", VM + "/powerOff"),
    "Microsoft.Compute/2025-11-01/VirtualMachine_Delete_Force.json": ("DELETE", VM),
    "Microsoft.Compute/2025-11-01/VirtualMachine_List_MaximumSet_Gen.json": (
        "GET",
        RG + "/providers/Microsoft.Compute/virtualMachines",
    ),
    "Microsoft.Compute/2025-11-01/VirtualMachine_ListAvailableVmSizes.json": ("GET", VM + "/vmSizes"),
    "Microsoft.Compute/2021-07-01/ListAvailableResourceSkus.json": (
        "GET",
        "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/skus",
    ),
    "Microsoft.Compute/2025-11-01/Usage_List_MaximumSet_Gen.json": ("GET", LOCATION + "/usages"),
    "Microsoft.Compute/2025-11-01/VirtualMachineImage_Get_MaximumSet_Gen.json": (
        "GET",
        LOCATION + "/publishers/{publisherName}/artifacttypes/vmimage/offers/{offer}/skus/{skus}/versions/{version}",
    ),
    "Microsoft.DevTestLab/2018-09-15/GlobalSchedules_CreateOrUpdate.json": (
        "PUT",
        RG + "/providers/Microsoft.DevTestLab/schedules/{name}",
    ),
    "Microsoft.DevTestLab/2018-09-15/GlobalSchedules_Get.json": (
        "GET",
        RG + "/providers/Microsoft.DevTestLab/schedules/{name}",
    ),
    "Microsoft.DevTestLab/2018-09-15/GlobalSchedules_Delete.json": (
        "DELETE",
        RG + "/providers/Microsoft.DevTestLab/schedules/{name}",
    ),
    "Microsoft.Authorization/2015-07-01/GetPermissions.json": ("GET", PERMISSIONS),
    "Microsoft.Authorization/2022-05-01-preview/GetPermissions.json": ("GET", PERMISSIONS),
    "Microsoft.Authorization/2015-07-01/GetResourcePermissions.json": ("GET", RESOURCE_PERMISSIONS),
    "Microsoft.Authorization/2022-05-01-preview/GetResourcePermissions.json": ("GET", RESOURCE_PERMISSIONS),
    "Microsoft.Authorization/2022-04-01/GetRoleDefinitionByName.json": ("GET", ROLE_DEFINITION),
    "Microsoft.Authorization/2022-04-01/DeleteRoleDefinition.json": ("DELETE", ROLE_DEFINITION),
    "Microsoft.Authorization/2022-04-01/RoleAssignments_CreateForResource.json": ("PUT", ROLE_ASSIGNMENT),
    "Microsoft.Authorization/2022-04-01/RoleAssignments_Get.json": ("GET", ROLE_ASSIGNMENT),
    "Microsoft.Authorization/2022-04-01/RoleAssignments_Delete.json": ("DELETE", ROLE_ASSIGNMENT),
    "Microsoft.Authorization/2022-04-01/RoleAssignments_ListForScope.json": (
        "GET",
        "/{scope}/providers/Microsoft.Authorization/roleAssignments",
    ),
    "Microsoft.Compute/2025-04-01/ProximityPlacementGroup_CreateOrUpdate.json": ("PUT", PPG),
    "Microsoft.Compute/2025-11-01/ProximityPlacementGroup_Get.json": ("GET", PPG),
    "Microsoft.Compute/2025-11-01/ProximityPlacementGroup_Delete.json": ("DELETE", PPG),
    "Microsoft.MarketplaceOrdering/2021-01-01/GetMarketplaceTerms.json": ("GET", TERMS),
    "Microsoft.MarketplaceOrdering/2021-01-01/SetMarketplaceTerms.json": ("PUT", TERMS),
    "Microsoft.Quota/2025-09-01/putComputeOneSkuQuotaRequest.json": ("PUT", QUOTA + "/quotas/{resourceName}"),
    "Microsoft.Quota/2021-03-15/getComputeOneSkuQuotaLimit.json": ("GET", QUOTA + "/quotas/{resourceName}"),
    "Microsoft.Quota/2025-09-01/getComputeOneSkuUsages.json": ("GET", QUOTA + "/usages/{resourceName}"),
    **dict.fromkeys(
        [
            "Microsoft.Quota/2025-09-01/getQuotaRequestStatusById.json",
            "Microsoft.Quota/2025-09-01/getQuotaRequestStatusFailed.json",
            "Microsoft.Quota/2025-09-01/getQuotaRequestStatusInProgress.json",
        ],
        ("GET", QUOTA + "/quotaRequests/{id}"),
    ),
}
# Azure's examples the fake does not serve yet, each with the issue that will model it (or why none will).
NOT_YET_MODELLED = {
    "Microsoft.Authorization/2022-04-01/PutRoleDefinition.json": (
        "malformed: its request has an empty `roleDefinition` and a `body` with roleName, permissions and "
        "assignableScopes outside `properties`, where the REST API and the SDK put them; the fake models the "
        "PUT as the kit sends it (test_fake_arm_authorization.py)"
    ),
    "Microsoft.Compute/2025-11-01/VirtualMachine_Create_WithNetworkInterfaceConfiguration.json": (
        "not used: every node's NIC is a resource of its own that the kit creates, records and deletes "
        "(issue 12 chose that over NICs made inline by the VM)"
    ),
    "Microsoft.Compute/2025-11-01/VirtualMachineSizes_List_MaximumSet_Gen.json": (
        "not used: the kit reads sizes and capabilities from resource SKUs"
    ),
    "Microsoft.MarketplaceOrdering/2021-01-01/SignMarketplaceTerms.json": (
        "not used: the kit, like `az vm image terms accept` (azure-cli accept_market_ordering_terms), "
        "accepts terms with PUT agreements/current"
    ),
}
# Machine-generated examples hold filler values ("aaaa"): map their names to real ones.
REAL_VALUES = {
    "location": "eastus",
    "publisherName": IMAGE["publisher"],
    "offer": IMAGE["offer"],
    "skus": IMAGE["sku"],
    "version": "latest",
}
QUERY = {"$expand", "forceDeletionTypes", "forceDeletion", "hibernate", "skipShutdown"}


class Client:
    """Raw HTTPS to the fake with a bearer token, as the SDK's pipeline sends it."""

    def __init__(self, arm: FakeARM):
        self.arm = arm
        self.session = requests.Session()
        self.session.headers["Authorization"] = "Bearer example-replay"

    def send(self, method: str, path: str, body=None, query=None) -> requests.Response:
        params = {"api-version": "2025-04-01", **(query or {})}
        return self.session.request(
            method, self.arm.url + path, json=body, params=params, timeout=10, verify=self.arm.ca_bundle
        )

    def put(self, path: str, body: dict) -> None:
        response = self.send("PUT", path, body)
        assert response.status_code in (200, 201), response.text


# A Get or Delete example's resource is made first by replaying its Create example.
CREATED_BY = {
    "VirtualNetwork": "VirtualNetworkCreateSubnet",
    "NetworkSecurityGroup": "NetworkSecurityGroupCreateWithRule",
    "PublicIpAddress": "PublicIpAddressCreateDns",
    "NetworkInterface": "NetworkInterfaceCreate",
    "GlobalSchedules_": "GlobalSchedules_CreateOrUpdate",
    "ProximityPlacementGroup_": "../2025-04-01/ProximityPlacementGroup_CreateOrUpdate",  # published one version back
}


def arrange(client: Client, sub: str, example: str, params: dict) -> None:
    """Create what the example's request needs to exist: its group, and what it refers to."""
    folder, name = example.rsplit("/", 1)
    group = params.get("resourceGroupName")
    if group and not name.startswith("CreateResourceGroup"):
        client.arm.add_resource_group(group, "eastus")
    network = f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Network"
    needs_vm = name.startswith("VirtualMachine_") and not name.startswith("VirtualMachine_List_")
    if name.startswith("NetworkInterface") or needs_vm:
        client.put(
            f"{network}/virtualNetworks/rg1-vnet",
            {
                "location": "eastus",
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                    "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}],
                },
            },
        )
        client.put(f"{network}/publicIPAddresses/test-ip", {"location": "eastus"})
    if name.startswith("VirtualMachine_Create"):
        client.put(f"{network}/networkInterfaces/existing-nic", nic_body(sub, group))
    elif needs_vm:
        client.put(f"{network}/networkInterfaces/nic1", nic_body(sub, group))
        client.put(
            VM.format(subscriptionId=sub, resourceGroupName=group, vmName=params["vmName"]), vm_body(sub, group, "nic1")
        )
    if name.startswith("VirtualMachine_Create_WithEncryptionIdentity"):  # the user-assigned identity it names
        identities = f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity"
        client.put(f"{identities}/userAssignedIdentities/myIdentity", {"location": "westus"})
    if folder.startswith("Microsoft.Authorization"):
        arrange_authorization(client, sub, name, params)
    if folder.startswith("Microsoft.Quota"):
        arrange_quota(client, name, params)
    creator = next((c for prefix, c in CREATED_BY.items() if name.startswith(prefix) and "Create" not in name), None)
    if creator:
        source = json.loads((EXAMPLES / folder / f"{creator}.json").read_text())
        _, template = REQUESTS[os.path.normpath(f"{folder}/{creator}.json")]
        body = next(v for v in source["parameters"].values() if isinstance(v, dict))
        client.put(template.format(**{**source["parameters"], **params}), fix_body(body, sub))


def arrange_authorization(client: Client, sub: str, name: str, params: dict) -> None:
    """The group a scope lies in, the principal and custom role the assignment examples name, and the role or
    assignment a Get, Delete or List example reads."""
    parts = params.get("scope", "").split("/")
    if "resourceGroups" in parts:
        client.arm.add_resource_group(parts[parts.index("resourceGroups") + 1], "eastus")
    role = {"permissions": [{"actions": ["Microsoft.Compute/virtualMachines/read"]}]}
    api = {"api-version": "2022-04-01"}
    if name.startswith(("GetRoleDefinition", "DeleteRoleDefinition")):
        body = {"properties": {**role, "roleName": "example role", "assignableScopes": [f"/subscriptions/{sub}"]}}
        assert client.send("PUT", ROLE_DEFINITION.format(**params), body, api).status_code == 201
    if name.startswith("RoleAssignments_"):
        client.arm.add_principal(EXAMPLE_PRINCIPAL)
        body = {"properties": {**role, "roleName": "example role", "assignableScopes": [f"/subscriptions/{sub}"]}}
        definition = ROLE_DEFINITION.format(scope=f"subscriptions/{sub}", roleDefinitionId=EXAMPLE_ROLE)
        assert client.send("PUT", definition, body, api).status_code == 201
    if name.startswith("RoleAssignments_") and "Create" not in name:
        body = {
            "properties": {"roleDefinitionId": definition, "principalId": EXAMPLE_PRINCIPAL, "principalType": "User"}
        }
        assignment = ROLE_ASSIGNMENT.format(
            scope=params["scope"], roleAssignmentName="b0f43c54-e787-4862-89b1-a653fa9cf747"
        )
        assert client.send("PUT", assignment, body, api).status_code == 201


# A quota request status example: (auto_approve_up_to, verdict) that gives a request its state.
REVIEWS = {"ById": (16, None), "InProgress": (0, None), "Failed": (0, "refuse")}


def arrange_quota(client: Client, name: str, params: dict) -> None:
    """The quota the example names, known to the fake; for a status example, a request in the example's state,
    filed first (its id replaces the example's)."""
    if "resourceName" in params:
        client.arm.set_quota("eastus", params["resourceName"], 100)
    review = next((r for key, r in REVIEWS.items() if name == f"getQuotaRequestStatus{key}.json"), None)
    if review is None:
        return
    client.arm.quota_review(auto_approve_up_to=review[0], verdict=review[1])
    body = {"properties": {"limit": {"limitObjectType": "LimitValue", "value": 8}, "name": {"value": T4_FAMILY}}}
    path = QUOTA.format(scope=params["scope"]) + f"/quotas/{T4_FAMILY}"
    filed = client.send("PUT", path, body, {"api-version": params["api-version"]})
    assert filed.status_code in (200, 202), filed.text
    params["id"] = urlsplit(filed.headers["location"]).path.rsplit("/", 1)[-1]


def nic_body(sub: str, group: str) -> dict:
    base = f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Network"
    return {
        "location": "eastus",
        "properties": {
            "ipConfigurations": [
                {
                    "name": "ipconfig1",
                    "properties": {
                        "subnet": {"id": f"{base}/virtualNetworks/rg1-vnet/subnets/default"},
                        "publicIPAddress": {"id": f"{base}/publicIPAddresses/test-ip"},
                    },
                }
            ]
        },
    }


def vm_body(sub: str, group: str, nic: str) -> dict:
    nic_id = f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Network/networkInterfaces/{nic}"
    return {
        "location": "eastus",
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_NC4as_T4_v3"},
            "storageProfile": {"imageReference": IMAGE, "osDisk": {"createOption": "FromImage"}},
            "osProfile": {
                "computerName": "vm",
                "adminUsername": "azureuser",
                "linuxConfiguration": {
                    "disablePasswordAuthentication": True,
                    "ssh": {
                        "publicKeys": [
                            {
                                "path": "/home/azureuser/.ssh/authorized_keys",
                                "keyData": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI",
                            }
                        ]
                    },
                },
            },
            "networkProfile": {"networkInterfaces": [{"id": nic_id}]},
        },
    }


def fix_body(body: dict, sub: str) -> dict:
    """The example's request body with its placeholders made real."""
    text = json.dumps(body)
    for placeholder, value in {
        "{subscription-id}": sub,
        EXAMPLE_SUBSCRIPTION: sub,
        "/subscriptions/subid/": f"/subscriptions/{sub}/",
        "{your-username}": "azureuser",
        "{existing-nic-name}": "existing-nic",
        "{image_publisher}": IMAGE["publisher"],
        "{image_offer}": IMAGE["offer"],
        "{image_sku}": IMAGE["sku"],
        "Standard_D1_v2": "Standard_NC4as_T4_v3",
        "Standard_D2s_v3": "Standard_NC4as_T4_v3",
        # VirtualMachine_Create_WithUefiSettings.json's Windows Gen2 image -> the DSVM (Gen2, Trusted Launch capable)
        '"MicrosoftWindowsServer"': f'"{IMAGE["publisher"]}"',
        "windowsserver-gen2preview-preview": IMAGE["offer"],
        "windows10-tvm": IMAGE["sku"],
        # VirtualMachine_Create_WithEncryptionIdentity.json's Windows image and password -> the DSVM
        '"WindowsServer"': f'"{IMAGE["offer"]}"',
        "2019-Datacenter": IMAGE["sku"],
        "{your-password}": "an-example-password-1!",
        "18363.592.2001092016": "latest",
    }.items():
        text = text.replace(placeholder, value)
    return json.loads(text)


def missing_fields(expected, actual, where="") -> list[str]:
    """Fields (dict keys, recursively) the example's response has and the fake's lacks."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [where or "<body>"]
        return [
            m
            for key, value in expected.items()
            for m in ([f"{where}.{key}"] if key not in actual else missing_fields(value, actual[key], f"{where}.{key}"))
        ]
    if isinstance(expected, list) and expected and isinstance(actual, list) and actual:
        return missing_fields(expected[0], actual[0], f"{where}[0]")
    return []


# Fields of Azure's examples the fake does not model; nothing in dsvm-kit reads them.
NO_PAGING = {".nextLink"}  # lists come in one page
NOT_MODELLED = {
    "VirtualMachine_Get_InstanceView.json": {
        ".bootDiagnostics",
        ".extensions",
        ".isVMInStandbyPool",
        ".patchStatus",
        ".platformFaultDomain",
        ".platformUpdateDomain",
    },
    "VirtualMachine_Get.json": {
        ".properties.applicationProfile",
        ".properties.availabilitySet",
        ".properties.diagnosticsProfile",
        ".properties.osProfile.windowsConfiguration",
        ".properties.proximityPlacementGroup",
        ".properties.securityProfile",
        ".properties.userData",
        ".properties.extensionsTimeBudget",
        ".properties.storageProfile.dataDisks[0]",
        ".resources",
        ".etag",
        ".managedBy",
        ".tags",
    },
    "VirtualMachine_Create_WithSshAuthentication.json": {".properties.securityProfile"},
    "VirtualMachine_Create_WithUefiSettings.json": {".properties.osProfile.windowsConfiguration"},  # Linux here
    "VirtualMachine_Create_WithEncryptionIdentity.json": {
        ".properties.osProfile.windowsConfiguration",  # Linux here
        ".properties.securityProfile.securityType",  # Azure's default; the kit always states it
        # The response names the identity by the example's placeholder id; the fake's names the real one.
        ".identity.userAssignedIdentities./subscriptions/{subscription-id}/resourceGroups/myResourceGroup"
        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/myIdentity",
    },
    "VirtualMachineImage_Get_MaximumSet_Gen.json": {".extendedLocation", ".tags"},
    "GlobalSchedules_CreateOrUpdate.json": {".tags"},
    "GlobalSchedules_Get.json": {".tags"},
    # Unattached public IPs and subnets without NICs have nothing to point at.
    "PublicIpAddressCreateDns.json": {".properties.ipConfiguration", ".properties.ddosSettings"},
    "PublicIpAddressCreateDefaults.json": {".properties.ipConfiguration"},
    "PublicIpAddressGet.json": {".properties.ipConfiguration", ".properties.ddosSettings", ".properties.ipTags"},
    "NetworkInterfaceGet.json": {  # the example's NIC is attached to a VM and an NSG; this one is not
        ".properties.dscpConfiguration",
        ".properties.macAddress",
        ".properties.networkSecurityGroup",
        ".properties.primary",
        ".properties.virtualMachine",
    },
    "VirtualNetworkGet.json": {
        ".properties.defaultPublicNatGateway",
        ".properties.subnets[0].properties.ipConfigurations",
    },
}


# Where Azure's recordings contradict an example, the fake follows the recordings (tests/test_recorded_azure.py,
# DESIGN.md section 9): example -> (the provisioningState the example shows, the one the fake answers, why).
RECORDINGS_OVERRULE = {
    **dict.fromkeys(
        ["VirtualNetworkCreateSubnet.json", "PublicIpAddressCreateDns.json", "PublicIpAddressCreateDefaults.json"],
        (
            "Succeeded",
            "Updating",
            "recordings B and E: a VNet or public IP PUT answers Updating, its operation runs on",
        ),
    ),
    "NetworkSecurityGroupCreateWithRule.json": (
        "Succeeded",
        "Updating",
        "recording I: an NSG PUT answers Updating, its operation runs on",
    ),
}


def test_every_example_is_replayed():
    assert EXAMPLES.is_dir(), f"Azure's examples are not at {EXAMPLES} (CI puts ../shared beside the checkout)"
    assert not set(REQUESTS) & set(NOT_YET_MODELLED)
    on_disk = sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.glob("*/*/*.json"))
    assert on_disk == sorted({*REQUESTS, *NOT_YET_MODELLED})
    assert all(reason.strip() for reason in NOT_YET_MODELLED.values())


@pytest.mark.parametrize("example", sorted(REQUESTS))
def test_the_fake_answers_like_the_example(example):
    spec = json.loads((EXAMPLES / example).read_text())
    params = {k: v for k, v in spec["parameters"].items() if not isinstance(v, dict | list)}
    if "MaximumSet" in example:
        params.update({k: REAL_VALUES[k] for k in params if k in REAL_VALUES})
    with FakeARM(time_scale=0) as arm:  # Azure waits nothing: the examples show none
        sub = arm.subscription_id
        client = Client(arm)
        params = {
            **params,
            "subscriptionId": sub,
            "resourceGroupName": str(params.get("resourceGroupName", "")).strip("{}"),
        }
        if example.startswith("Microsoft.Authorization"):  # "scope" stands for one: the subscription
            scope = params.get("scope")
            if scope:
                params.update(scope=f"subscriptions/{sub}" if scope == "scope" else fix_body(scope, sub))
            params.update(roleDefinitionId=ROLE_GUID)
        if example.startswith("Microsoft.Quota"):  # a compute location of another subscription: the fake's
            params.update(scope=re.sub(r"^subscriptions/[^/]+", f"subscriptions/{sub}", params["scope"]))
        arrange(client, sub, example, params)
        method, template = REQUESTS[example]
        body = next((v for v in spec["parameters"].values() if isinstance(v, dict)), None)
        query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items() if k in QUERY}
        if example.startswith(("Microsoft.Authorization", "Microsoft.Quota")):
            query["api-version"] = params["api-version"]
        if example.endswith("ListAvailableResourceSkus.json"):
            query["$filter"] = "location eq 'eastus'"
        response = client.send(method, template.format(**params), fix_body(body, sub) if body else None, query)

    allowed = spec["responses"]
    assert str(response.status_code) in allowed, f"{response.status_code} not in {list(allowed)}: {response.text}"
    shown = allowed[str(response.status_code)]
    if Path(example).name in RECORDINGS_OVERRULE:
        shows, answers, _ = RECORDINGS_OVERRULE[Path(example).name]
        assert (
            shown["body"]["properties"]["provisioningState"],
            response.json()["properties"]["provisioningState"],
        ) == (
            shows,
            answers,
        )
    headers = {h.lower() for h in response.headers}
    assert {h.lower() for h in shown.get("headers") or {}} <= headers
    if shown.get("body"):
        example_body = shown["body"]
        if "MaximumSet" in example:  # filler values: compare the top level only
            example_body = dict.fromkeys(example_body)
        gaps = (
            set(missing_fields(example_body, response.json())) - NO_PAGING - NOT_MODELLED.get(Path(example).name, set())
        )
        assert not gaps, sorted(gaps)
        if "getQuotaRequestStatus" in example:  # the request arranged is in the example's state
            state = response.json()["properties"]["provisioningState"]
            assert state == example_body["properties"]["provisioningState"]
