"""The fake ARM, driven by the real azure-mgmt clients over HTTPS."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.rest import HttpRequest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from tests.fakes.arm import FAST, BootSpec, FakeARM, RecordingBooter

LOCATION = "eastus"
GROUP = "dsvm-rg"
SIZE = "Standard_NC4as_T4_v3"
DSVM_IMAGE = {"publisher": "microsoft-dsvm", "offer": "ubuntu-2204", "sku": "2204-gen2", "version": "latest"}
CLOUD_INIT = b"#cloud-config\nssh_keys: {}\n"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheFakeArmTests dsvm"


class TokenCredential:
    def __init__(self, token: str = "test-token"):
        self.token = token

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class Clients:
    def __init__(self, arm: FakeARM, credential: TokenCredential | None = None):
        credential = credential or TokenCredential()
        kwargs = arm.client_kwargs(polling_interval=0.02, retry_total=2)
        self.resource = ResourceManagementClient(credential, arm.subscription_id, **kwargs)
        self.network = NetworkManagementClient(credential, arm.subscription_id, **kwargs)
        self.compute = ComputeManagementClient(credential, arm.subscription_id, **kwargs)


@pytest.fixture
def booter() -> RecordingBooter:
    return RecordingBooter()


@pytest.fixture
def arm(booter):
    with FakeARM(booter=booter, time_scale=FAST) as fake:
        yield fake


@pytest.fixture
def az(arm) -> Clients:
    return Clients(arm)


# -- request bodies (REST-shaped, as the lead's plan produces them) -------------------------------


def make_network(az: Clients, group: str = GROUP) -> str:
    """Group, VNet + subnet, NSG with an SSH rule, static Standard public IP, NIC: returns the NIC id."""
    az.resource.resource_groups.create_or_update(group, {"location": LOCATION, "tags": {"managed-by": "dsvm-kit"}})
    vnet = az.network.virtual_networks.begin_create_or_update(
        group,
        "vnet",
        {
            "location": LOCATION,
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}],
            },
        },
    ).result()
    nsg = az.network.network_security_groups.begin_create_or_update(
        group,
        "nsg",
        {
            "location": LOCATION,
            "properties": {
                "securityRules": [
                    {
                        "name": "ssh",
                        "properties": {
                            "protocol": "Tcp",
                            "sourceAddressPrefix": "203.0.113.7/32",
                            "sourcePortRange": "*",
                            "destinationAddressPrefix": "*",
                            "destinationPortRange": "22",
                            "access": "Allow",
                            "priority": 100,
                            "direction": "Inbound",
                        },
                    }
                ]
            },
        },
    ).result()
    public_ip = az.network.public_ip_addresses.begin_create_or_update(
        group,
        "pip",
        {
            "location": LOCATION,
            "sku": {"name": "Standard"},
            "properties": {"publicIPAllocationMethod": "Static", "dnsSettings": {"domainNameLabel": "dsvm-test"}},
        },
    ).result()
    nic = az.network.network_interfaces.begin_create_or_update(
        group, "nic", nic_body(vnet.subnets[0].id, nsg.id, public_ip.id)
    ).result()
    return nic.id


def nic_body(subnet_id: str, nsg_id: str | None = None, public_ip_id: str | None = None) -> dict:
    config: dict = {"subnet": {"id": subnet_id}}
    if public_ip_id:
        config["publicIPAddress"] = {"id": public_ip_id}
    properties: dict = {"ipConfigurations": [{"name": "ipconfig1", "properties": config}]}
    if nsg_id:
        properties["networkSecurityGroup"] = {"id": nsg_id}
    return {"location": LOCATION, "properties": properties}


def vm_body(nic_id: str, *, size: str = SIZE, delete_option: str = "Delete", plan: dict | None = None) -> dict:
    body: dict = {
        "location": LOCATION,
        "tags": {"managed-by": "dsvm-kit"},
        "properties": {
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {
                "imageReference": DSVM_IMAGE,
                "osDisk": {
                    "createOption": "FromImage",
                    "deleteOption": delete_option,
                    "managedDisk": {"storageAccountType": "Premium_LRS"},
                },
            },
            "osProfile": {
                "computerName": "dsvm",
                "adminUsername": "azureuser",
                "customData": base64.b64encode(CLOUD_INIT).decode(),
                "linuxConfiguration": {
                    "disablePasswordAuthentication": True,
                    "ssh": {"publicKeys": [{"path": "/home/azureuser/.ssh/authorized_keys", "keyData": SSH_KEY}]},
                },
            },
            "networkProfile": {
                "networkInterfaces": [{"id": nic_id, "properties": {"primary": True, "deleteOption": delete_option}}]
            },
        },
    }
    if plan:
        body["plan"] = plan
    return body


def create_vm(az: Clients, name: str = "dsvm", **options):
    nic_id = make_network(az)
    return az.compute.virtual_machines.begin_create_or_update(GROUP, name, vm_body(nic_id, **options)).result()


def power_state(az: Clients, name: str = "dsvm") -> str:
    view = az.compute.virtual_machines.instance_view(GROUP, name)
    return next(s.code for s in view.statuses if s.code.startswith("PowerState/"))


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def send(az: Clients, method: str, path: str, api_version: str = "2025-04-01"):
    return az.resource.send_request(HttpRequest(method, f"{path}?api-version={api_version}"))


# -- the whole stack ------------------------------------------------------------------------------


def test_stack_is_created_and_read_back_in_rest_shape(arm, az, booter):
    vm = create_vm(az)

    assert vm.provisioning_state == "Succeeded"
    assert vm.vm_id and vm.time_created
    read = az.compute.virtual_machines.get(GROUP, "dsvm")
    assert read.hardware_profile.vm_size == SIZE
    assert read.os_profile.admin_username == "azureuser"
    assert read.os_profile.custom_data is None  # Azure never returns customData
    sent = next(r for r in arm.requests if r.method == "PUT" and r.path.endswith("/virtualMachines/dsvm"))
    assert base64.b64decode(sent.body["properties"]["osProfile"]["customData"]) == CLOUD_INIT
    disk_id = read.storage_profile.os_disk.managed_disk.id
    assert disk_id in arm.inventory()
    assert read.storage_profile.image_reference.exact_version == "25.05.29"

    nic = az.network.network_interfaces.get(GROUP, "nic")
    assert nic.virtual_machine.id == vm.id and nic.mac_address
    assert nic.ip_configurations[0].private_ip_address == "10.0.0.4"
    public_ip = az.network.public_ip_addresses.get(GROUP, "pip")
    assert public_ip.ip_address == "127.0.0.1"
    assert public_ip.dns_settings.fqdn == "dsvm-test.eastus.cloudapp.azure.com"
    assert public_ip.ip_configuration.id == nic.ip_configurations[0].id
    nsg = az.network.network_security_groups.get(GROUP, "nsg")
    assert [r.name for r in nsg.security_rules] == ["ssh"]
    assert nsg.security_rules[0].id.endswith("/networkSecurityGroups/nsg/securityRules/ssh")
    assert len(nsg.default_security_rules) == 6
    assert nsg.network_interfaces[0].id == nic.id
    subnet = az.network.subnets.get(GROUP, "vnet", "default")
    assert subnet.ip_configurations[0].id == nic.ip_configurations[0].id

    [(event, spec)] = booter.events
    assert event == "boot"
    assert spec == BootSpec(
        vm_id=vm.id,
        admin_username="azureuser",
        ssh_public_keys=[SSH_KEY],
        custom_data=CLOUD_INIT,
        public_ip="127.0.0.1",
        private_ip="10.0.0.4",  # the subnet's first address Azure gives (its first four are reserved)
    )
    assert power_state(az) == "PowerState/running"


def test_held_create_stays_in_progress_and_is_polled(arm, az, booter):
    nic_id = make_network(az)
    arm.hold("Microsoft.Compute/virtualMachines", 600)
    arm.clear_log()

    poller = az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", vm_body(nic_id))
    assert az.compute.virtual_machines.get(GROUP, "dsvm").provisioning_state == "Creating"
    assert power_state(az) == "PowerState/starting" and booter.events == []
    arm.hold("Microsoft.Compute/virtualMachines", 0)
    assert poller.result().provisioning_state == "Succeeded"

    put = arm.requests[0]
    assert (put.method, put.status) == ("PUT", 201)
    polls = [r for r in arm.requests if r.is_poll]
    assert polls and all(r.method == "GET" and "/operations/" in r.path for r in polls)
    assert all(r.status == 200 for r in polls)


def test_network_puts_answer_like_the_examples(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    arm.hold("Microsoft.Network/virtualNetworks", 600)
    poller = az.network.virtual_networks.begin_create_or_update(
        GROUP, "vnet", {"location": LOCATION, "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}}}
    )
    vnet_id = (
        f"/subscriptions/{arm.subscription_id}/resourceGroups/{GROUP}/providers/Microsoft.Network/virtualNetworks/vnet"
    )
    assert arm.resource(vnet_id)["properties"]["provisioningState"] == "Updating"
    arm.hold("Microsoft.Network/virtualNetworks", 0)
    assert poller.result().provisioning_state == "Succeeded"

    nsg = az.network.network_security_groups.begin_create_or_update(GROUP, "nsg", {"location": LOCATION}).result()
    put = [r for r in arm.requests if r.method == "PUT"][-1]
    assert put.status == 201 and nsg.provisioning_state == "Succeeded"
    az.network.network_security_groups.begin_create_or_update(GROUP, "nsg", {"location": LOCATION}).result()
    assert [r for r in arm.requests if r.method == "PUT"][-1].status == 200


def test_subnets_are_served_on_their_own_path(arm, az):
    make_network(az)
    created = az.network.subnets.begin_create_or_update(
        GROUP, "vnet", "second", {"properties": {"addressPrefix": "10.0.1.0/24"}}
    ).result()
    listed = [s.name for s in az.network.subnets.list(GROUP, "vnet")]

    assert created.id.endswith("/virtualNetworks/vnet/subnets/second") and created.provisioning_state == "Succeeded"
    assert listed == ["default", "second"]
    assert [s.name for s in az.network.virtual_networks.get(GROUP, "vnet").subnets] == listed
    az.network.subnets.begin_delete(GROUP, "vnet", "second").result()
    with pytest.raises(HttpResponseError) as caught:
        az.network.subnets.begin_delete(GROUP, "vnet", "default").result()
    assert caught.value.error.code == "InUseSubnetCannotBeDeleted"
    assert [s.name for s in az.network.subnets.list(GROUP, "vnet")] == ["default"]


def test_vm_update_answers_200_and_does_not_boot_again(arm, az, booter):
    nic_id = make_network(az)
    az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", vm_body(nic_id)).result()
    body = vm_body(nic_id)
    body["tags"]["state"] = "updated"

    updated = az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", body).result()

    assert [r.status for r in arm.requests if r.method == "PUT" and "/virtualMachines/" in r.path] == [201, 200]
    assert updated.tags["state"] == "updated" and updated.provisioning_state == "Succeeded"
    assert [event for event, _ in booter.events] == ["boot"]


def test_concurrent_creates_are_served_in_parallel(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    arm.hold("Microsoft.Network/publicIPAddresses", 0.2)
    names = [f"pip{i}" for i in range(3)]
    with ThreadPoolExecutor(len(names)) as pool:
        results = list(
            pool.map(
                lambda name: az.network.public_ip_addresses.begin_create_or_update(
                    GROUP, name, {"location": LOCATION}
                ).result(),
                names,
            )
        )

    assert [r.name for r in results] == names
    assert all(r.provisioning_state == "Succeeded" for r in results)


# -- deletes ---------------------------------------------------------------------------------------


def test_group_delete_removes_everything_and_halts_the_vm(arm, az, booter):
    vm = create_vm(az)
    arm.hold("Microsoft.Resources/resourceGroups", 600)
    arm.clear_log()

    poller = az.resource.resource_groups.begin_delete(GROUP)
    wait_until(lambda: any(r.is_poll for r in arm.requests))
    assert az.resource.resource_groups.get(GROUP).properties.provisioning_state == "Deleting"
    assert booter.running == {vm.id}
    arm.hold("Microsoft.Resources/resourceGroups", 0)
    poller.result()

    assert arm.inventory() == []
    assert booter.events[-1] == ("halt", vm.id) and booter.running == set()
    delete, *others = arm.requests
    assert (delete.method, delete.status) == ("DELETE", 202)
    polls = [r.status for r in others if r.is_poll]
    assert polls[0] == 202 and polls[-1] == 200
    assert not az.resource.resource_groups.check_existence(GROUP)


def test_vm_delete_follows_delete_options(arm, az, booter):
    vm = create_vm(az, delete_option="Detach")
    disk_id = vm.storage_profile.os_disk.managed_disk.id

    az.compute.virtual_machines.begin_delete(GROUP, "dsvm").result()

    inventory = arm.inventory()
    assert vm.id not in inventory and booter.events[-1] == ("halt", vm.id)
    assert disk_id in inventory and arm.resource(disk_id)["properties"]["diskState"] == "Unattached"
    assert az.network.network_interfaces.get(GROUP, "nic").virtual_machine is None
    az.network.network_interfaces.begin_delete(GROUP, "nic").result()
    az.network.public_ip_addresses.begin_delete(GROUP, "pip").result()
    assert not any("/networkInterfaces/" in i or "/publicIPAddresses/" in i for i in arm.inventory())


def test_vm_delete_with_delete_option_takes_disk_and_nic(arm, az):
    vm = create_vm(az, delete_option="Delete")

    az.compute.virtual_machines.begin_delete(GROUP, "dsvm").result()

    kinds = {i.split("/providers/")[-1].rsplit("/", 1)[0] for i in arm.inventory() if "/providers/" in i}
    assert kinds == {
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/publicIPAddresses",
    }
    assert vm.storage_profile.os_disk.managed_disk.id not in arm.inventory()


def test_what_is_attached_cannot_be_deleted(arm, az):
    create_vm(az)

    with pytest.raises(HttpResponseError) as nic_error:
        az.network.network_interfaces.begin_delete(GROUP, "nic").result()
    with pytest.raises(HttpResponseError) as ip_error:
        az.network.public_ip_addresses.begin_delete(GROUP, "pip").result()
    with pytest.raises(HttpResponseError) as vnet_error:
        az.network.virtual_networks.begin_delete(GROUP, "vnet").result()

    assert (nic_error.value.status_code, nic_error.value.error.code) == (400, "NicInUse")
    assert ip_error.value.error.code == "PublicIPAddressCannotBeDeleted"
    assert vnet_error.value.error.code == "InUseSubnetCannotBeDeleted"


def test_delete_of_missing_resource_is_204_and_of_missing_group_404(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    az.network.virtual_networks.begin_delete(GROUP, "never-made").result()
    assert arm.requests[-1].status == 204

    with pytest.raises(ResourceNotFoundError) as caught:
        az.resource.resource_groups.begin_delete("no-such-group").result()
    assert caught.value.error.code == "ResourceGroupNotFound"


def test_nsg_in_use_is_refused_then_deleted_once_free(arm, az):
    make_network(az)
    with pytest.raises(HttpResponseError) as caught:
        az.network.network_security_groups.begin_delete(GROUP, "nsg").result()
    az.network.network_interfaces.begin_delete(GROUP, "nic").result()
    az.network.network_security_groups.begin_delete(GROUP, "nsg").result()

    assert caught.value.error.code == "InUseNetworkSecurityGroupCannotBeDeleted"
    assert not any("/networkSecurityGroups/" in i for i in arm.inventory())


# -- power actions and boots ---------------------------------------------------------------------


def test_deallocate_halts_and_start_boots_again(arm, az, booter):
    vm = create_vm(az)

    az.compute.virtual_machines.begin_deallocate(GROUP, "dsvm").result()
    assert power_state(az) == "PowerState/deallocated"
    assert booter.events[-1] == ("halt", vm.id)
    deallocate = next(r for r in arm.requests if r.method == "POST")
    assert deallocate.status == 202 and deallocate.path.endswith("/deallocate")

    az.compute.virtual_machines.begin_start(GROUP, "dsvm").result()
    assert power_state(az) == "PowerState/running"
    assert [event for event, _ in booter.events] == ["boot", "halt", "boot"]

    az.compute.virtual_machines.begin_power_off(GROUP, "dsvm").result()
    assert power_state(az) == "PowerState/stopped"


def resized(az: Clients, size: str, name: str = "dsvm"):
    """GET the VM and PUT it back with another size, as `az vm resize` does."""
    model = az.compute.virtual_machines.get(GROUP, name)
    model.hardware_profile.vm_size = size
    return az.compute.virtual_machines.begin_create_or_update(GROUP, name, model).result()


def test_a_running_vm_resizes_only_within_its_hardware_cluster_a_deallocated_one_to_any_size(arm, az, booter):
    create_vm(az)
    cluster = [s.name for s in az.compute.virtual_machines.list_available_sizes(GROUP, "dsvm")]
    assert "Standard_NC8as_T4_v3" in cluster and "Standard_NC24ads_A100_v4" not in cluster
    with pytest.raises(HttpResponseError) as refused:
        resized(az, "Standard_NC24ads_A100_v4")
    assert (refused.value.status_code, refused.value.error.code) == (409, "OperationNotAllowed")
    assert (
        "Unable to resize the VM 'dsvm' because the requested size Standard_NC24ads_A100_v4 is not available in the "
        "current hardware cluster. The available sizes are: Standard_NC4as_T4_v3,Standard_NC8as_T4_v3,"
    ) in refused.value.error.message

    assert resized(az, "Standard_NC8as_T4_v3").hardware_profile.vm_size == "Standard_NC8as_T4_v3"
    assert [event for event, _ in booter.events] == ["boot", "halt", "boot"]  # in place: a restart, disk kept
    assert power_state(az) == "PowerState/running"

    az.compute.virtual_machines.begin_deallocate(GROUP, "dsvm").result()
    anywhere = [s.name for s in az.compute.virtual_machines.list_available_sizes(GROUP, "dsvm")]
    assert "Standard_NC24ads_A100_v4" in anywhere
    assert resized(az, "Standard_NC24ads_A100_v4").hardware_profile.vm_size == "Standard_NC24ads_A100_v4"
    assert power_state(az) == "PowerState/deallocated"  # a resize of a deallocated VM does not start it
    arm.set_capability("Standard_NC4as_T4_v3", "HyperVGenerations", "V1")  # the image is Gen2
    with pytest.raises(HttpResponseError) as generation:
        resized(az, "Standard_NC4as_T4_v3")
    assert "cannot boot Hypervisor Generation '2'" in generation.value.error.message


def test_no_capacity_fails_a_start_and_an_in_place_resize_which_keeps_its_size(arm, az):
    create_vm(az)
    arm.no_capacity("Standard_NC8as_T4_v3")
    with pytest.raises(HttpResponseError) as failed:
        resized(az, "Standard_NC8as_T4_v3")
    assert failed.value.error.code == "AllocationFailed"
    assert az.compute.virtual_machines.get(GROUP, "dsvm").hardware_profile.vm_size == SIZE
    assert power_state(az) == "PowerState/running"
    az.compute.virtual_machines.begin_deallocate(GROUP, "dsvm").result()
    resized(az, "Standard_NC8as_T4_v3")
    with pytest.raises(HttpResponseError) as no_start:
        az.compute.virtual_machines.begin_start(GROUP, "dsvm").result()
    assert no_start.value.error.code == "AllocationFailed" and power_state(az) == "PowerState/deallocated"


def test_deallocate_and_start_pass_through_their_transitional_power_states(arm, az):
    create_vm(az)
    arm.hold("Microsoft.Compute/virtualMachines", 600)
    arm.clear_log()
    deallocating = az.compute.virtual_machines.begin_deallocate(GROUP, "dsvm")
    assert power_state(az) == "PowerState/deallocating"
    arm.hold("Microsoft.Compute/virtualMachines", 0)
    deallocating.result()
    view = az.compute.virtual_machines.instance_view(GROUP, "dsvm")
    power = next(s for s in view.statuses if s.code.startswith("PowerState/"))
    assert (power.code, power.display_status) == ("PowerState/deallocated", "VM deallocated")

    arm.hold("Microsoft.Compute/virtualMachines", 600)
    starting = az.compute.virtual_machines.begin_start(GROUP, "dsvm")
    assert power_state(az) == "PowerState/starting"
    arm.hold("Microsoft.Compute/virtualMachines", 0)
    starting.result()
    assert power_state(az) == "PowerState/running"
    # VirtualMachine_Deallocate/Start_MaximumSet_Gen.json (their Location header: test_fake_arm_examples).
    posts = [r for r in arm.requests if r.method == "POST"]
    assert [(r.path.rsplit("/", 1)[1], r.status) for r in posts] == [("deallocate", 202), ("start", 202)]


def test_evicting_a_spot_vm_deallocates_it_out_of_band_and_start_resumes_it(arm, az, booter):
    nic_id = make_network(az)
    body = vm_body(nic_id)
    body["properties"].update(priority="Spot", evictionPolicy="Deallocate", billingProfile={"maxPrice": -1})
    vm = az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", body).result()
    arm.clear_log()

    arm.evict(vm.id)
    assert power_state(az) == "PowerState/deallocated" and booter.running == set()
    assert az.compute.virtual_machines.get(GROUP, "dsvm").provisioning_state == "Succeeded"
    assert [r.method for r in arm.requests] == ["GET", "GET"]  # nobody asked: no operation

    arm.inject("POST", r"/virtualmachines/dsvm/start$", code="AllocationFailed", async_failure=True)
    with pytest.raises(HttpResponseError) as caught:
        az.compute.virtual_machines.begin_start(GROUP, "dsvm").result()
    assert caught.value.error.code == "AllocationFailed" and power_state(az) == "PowerState/deallocated"
    az.compute.virtual_machines.begin_start(GROUP, "dsvm").result()
    assert power_state(az) == "PowerState/running" and booter.running == {vm.id}


def test_only_a_spot_vm_can_be_evicted(arm, az):
    vm = create_vm(az)
    with pytest.raises(ValueError, match="not a Spot VM"):
        arm.evict(vm.id)


def test_stopping_the_fake_halts_booted_vms():
    booter = RecordingBooter()
    with FakeARM(booter=booter, time_scale=FAST) as arm:
        vm = create_vm(Clients(arm))
        assert booter.running == {vm.id}
    assert booter.running == set()


def test_boot_failure_fails_the_create():
    with FakeARM(booter=RecordingBooter(fail_with=RuntimeError("sshd did not start")), time_scale=FAST) as failing:
        clients = Clients(failing)
        with pytest.raises(HttpResponseError) as caught:
            create_vm(clients)
        assert caught.value.error.code == "OSProvisioningInternalError"
        assert clients.compute.virtual_machines.get(GROUP, "dsvm").provisioning_state == "Failed"


def test_instance_view_expand_on_get(arm, az):
    create_vm(az)
    vm = az.compute.virtual_machines.get(GROUP, "dsvm", expand="instanceView")
    assert [s.code for s in vm.instance_view.statuses] == ["ProvisioningState/succeeded", "PowerState/running"]
    assert vm.instance_view.hyper_v_generation == "V2"


# -- injected faults ------------------------------------------------------------------------------


def test_async_allocation_failure_raises_with_the_code(arm, az):
    nic_id = make_network(az)
    fault = arm.inject(
        "PUT",
        r"/virtualmachines/dsvm$",
        async_failure=True,
        code="AllocationFailed",
        message="Allocation failed. We do not have sufficient capacity.",
    )

    with pytest.raises(HttpResponseError) as caught:
        az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", vm_body(nic_id)).result()

    assert caught.value.error.code == "AllocationFailed"
    assert fault.fired == 1
    assert az.compute.virtual_machines.get(GROUP, "dsvm").provisioning_state == "Failed"
    statuses = [s.code for s in az.compute.virtual_machines.instance_view(GROUP, "dsvm").statuses]
    assert "ProvisioningState/failed/AllocationFailed" in statuses


def dns_ip(az: Clients, group: str, name: str, label: str):
    az.resource.resource_groups.create_or_update(group, {"location": LOCATION})
    body = {
        "location": LOCATION,
        "sku": {"name": "Standard"},
        "properties": {"dnsSettings": {"domainNameLabel": label}},
    }
    return az.network.public_ip_addresses.begin_create_or_update(group, name, body).result()


def test_a_dns_label_taken_in_the_region_is_refused_as_azure_does(arm, az):
    assert dns_ip(az, "rg-a", "pip", "team-lab").dns_settings.fqdn == "team-lab.eastus.cloudapp.azure.com"
    assert dns_ip(az, "rg-a", "pip", "team-lab").dns_settings.fqdn  # the same IP may ask again

    with pytest.raises(HttpResponseError) as caught:
        dns_ip(az, "rg-b", "other", "team-lab")
    assert (caught.value.status_code, caught.value.error.code) == (400, "DnsRecordInUse")
    assert (
        caught.value.error.message
        == "DNS record team-lab.eastus.cloudapp.azure.com is already used by another public IP."
    )


@pytest.mark.parametrize(
    ("cloud", "zone"),
    [("public", "cloudapp.azure.com"), ("china", "cloudapp.chinacloudapi.cn"), ("usgov", "cloudapp.usgovcloudapi.net")],
)
def test_the_fqdn_is_in_the_clouds_dns_zone(cloud, zone):
    with FakeARM(cloud=cloud, time_scale=FAST) as arm:
        assert dns_ip(Clients(arm), "rg", "pip", "lab").dns_settings.fqdn == f"lab.{LOCATION}.{zone}"


def test_async_failure_of_a_network_put_leaves_it_failed(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    arm.inject("PUT", r"/publicipaddresses/pip$", async_failure=True, code="PublicIPCountLimitReached")

    poller = az.network.public_ip_addresses.begin_create_or_update(GROUP, "pip", {"location": LOCATION})
    with pytest.raises(HttpResponseError) as caught:
        poller.result()

    assert caught.value.error.code == "PublicIPCountLimitReached"
    assert az.network.public_ip_addresses.get(GROUP, "pip").provisioning_state == "Failed"


def test_async_failure_of_a_delete_arrives_through_the_location_poll(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    arm.inject("DELETE", r"/resourcegroups/" + GROUP + "$", async_failure=True, code="ResourceGroupDeletionBlocked")

    with pytest.raises(HttpResponseError) as caught:
        az.resource.resource_groups.begin_delete(GROUP).result()

    assert caught.value.error.code == "ResourceGroupDeletionBlocked"
    assert az.resource.resource_groups.check_existence(GROUP)


def test_injected_409_arrives_with_its_code(arm, az):
    nic_id = make_network(az)
    arm.inject(
        "PUT",
        r"/virtualmachines/",
        status=409,
        code="OperationNotAllowed",
        message="Operation could not be completed as it results in exceeding approved quota.",
    )

    with pytest.raises(HttpResponseError) as caught:
        az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", vm_body(nic_id))

    assert (caught.value.status_code, caught.value.error.code) == (409, "OperationNotAllowed")


def test_throttling_with_retry_after_is_absorbed_by_the_sdk(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    fault = arm.inject("GET", r"/resourcegroups/" + GROUP + "$", status=429, retry_after=0)
    arm.clear_log()

    assert az.resource.resource_groups.get(GROUP).name == GROUP

    assert [r.status for r in arm.requests] == [429, 200]
    assert fault.fired == 1


def test_dropped_connection_is_retried_by_azure_core(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    fault = arm.inject("GET", r"/resourcegroups/", drop_connection=True)
    arm.clear_log()

    assert az.resource.resource_groups.get(GROUP).name == GROUP

    assert [r.status for r in arm.requests] == [None, 200]
    assert fault.fired == 1


def test_fault_on_the_operation_poll(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    fault = arm.inject("GET", r"/operations/", status=503, times=1)

    vnet = az.network.virtual_networks.begin_create_or_update(GROUP, "vnet", {"location": LOCATION}).result()

    assert vnet.provisioning_state == "Succeeded" and fault.fired == 1
    assert [r.status for r in arm.requests if r.is_poll] == [503, 200]


# -- ARM's rules ----------------------------------------------------------------------------------


def test_missing_group_is_resource_group_not_found(arm, az):
    with pytest.raises(ResourceNotFoundError) as read:
        az.resource.resource_groups.get("absent")
    with pytest.raises(ResourceNotFoundError) as write:
        az.network.virtual_networks.begin_create_or_update("absent", "vnet", {"location": LOCATION})

    assert read.value.error.code == write.value.error.code == "ResourceGroupNotFound"


def test_missing_resource_is_resource_not_found(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    with pytest.raises(ResourceNotFoundError) as caught:
        az.compute.virtual_machines.get(GROUP, "absent")
    assert caught.value.error.code == "ResourceNotFound"


def test_nic_needs_its_subnet(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    subnet_id = (
        f"/subscriptions/{arm.subscription_id}/resourceGroups/{GROUP}/providers/Microsoft.Network/"
        "virtualNetworks/vnet/subnets/default"
    )

    with pytest.raises(HttpResponseError) as caught:
        az.network.network_interfaces.begin_create_or_update(GROUP, "nic", nic_body(subnet_id))

    assert (caught.value.status_code, caught.value.error.code) == (400, "InvalidResourceReference")
    assert subnet_id in caught.value.error.message


def test_vm_needs_its_nic(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    nic_id = (
        f"/subscriptions/{arm.subscription_id}/resourceGroups/{GROUP}/providers/Microsoft.Network/networkInterfaces/x"
    )
    with pytest.raises(HttpResponseError) as caught:
        az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", vm_body(nic_id))
    assert caught.value.error.code == "InvalidResourceReference"


def test_quota_and_sku_restrictions_are_enforced_on_create(arm, az):
    nic_id = make_network(az)
    arm.set_quota(LOCATION, "standardNCASv3_T4Family", limit=4, current=2)
    with pytest.raises(HttpResponseError) as quota:
        az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", vm_body(nic_id))
    arm.restrict_sku(LOCATION, SIZE)
    with pytest.raises(HttpResponseError) as sku:
        az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", vm_body(nic_id))

    assert (quota.value.status_code, quota.value.error.code) == (409, "OperationNotAllowed")
    assert "standardNCASv3_T4Family" in quota.value.error.message
    assert (sku.value.status_code, sku.value.error.code) == (409, "SkuNotAvailable")


def test_marketplace_plan_is_required_when_the_image_has_one(arm, az):
    nic_id = make_network(az)
    plan = {"name": "2204-gen2", "publisher": "microsoft-dsvm", "product": "ubuntu-2204"}
    arm.set_image_plan("microsoft-dsvm", "ubuntu-2204", "2204-gen2", plan)

    with pytest.raises(HttpResponseError) as caught:
        az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", vm_body(nic_id))
    arm.accept_terms("microsoft-dsvm", "ubuntu-2204", "2204-gen2")
    vm = az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", vm_body(nic_id, plan=plan)).result()

    assert caught.value.error.code == "VMMarketplaceInvalidInput"
    assert vm.plan.product == "ubuntu-2204"


def test_reserved_admin_username_is_refused(arm, az):
    nic_id = make_network(az)
    body = vm_body(nic_id)
    body["properties"]["osProfile"]["adminUsername"] = "admin"
    with pytest.raises(HttpResponseError) as caught:
        az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", body)
    assert (caught.value.error.code, caught.value.error.target) == ("InvalidParameter", "adminUsername")


# -- resource groups -------------------------------------------------------------------------------


def test_group_create_is_201_then_200_and_tags_filter_the_list(arm, az):
    az.resource.resource_groups.create_or_update(
        "ours-1", {"location": LOCATION, "tags": {"managed-by": "dsvm-kit", "deployment": "a"}}
    )
    az.resource.resource_groups.create_or_update(
        "ours-2", {"location": LOCATION, "tags": {"managed-by": "dsvm-kit", "deployment": "b"}}
    )
    assert [r.status for r in arm.requests] == [201, 201]
    az.resource.resource_groups.create_or_update(
        "ours-2", {"location": LOCATION, "tags": {"managed-by": "dsvm-kit", "deployment": "b"}}
    )
    assert arm.requests[-1].status == 200
    arm.add_resource_group("foreign")
    arm.add_resource_group("other-tool", tags={"managed-by": "terraform"})

    by_value = az.resource.resource_groups.list(filter="tagName eq 'managed-by' and tagValue eq 'dsvm-kit'")
    by_name = az.resource.resource_groups.list(filter="tagName eq 'deployment'")
    everything = az.resource.resource_groups.list()

    assert sorted(g.name for g in by_value) == ["ours-1", "ours-2"]
    assert sorted(g.name for g in by_name) == ["ours-1", "ours-2"]
    assert sorted(g.name for g in everything) == ["foreign", "other-tool", "ours-1", "ours-2"]


def test_group_patch_and_resources_listing(arm, az):
    create_vm(az)
    group = az.resource.resource_groups.update(GROUP, {"tags": {"managed-by": "dsvm-kit", "state": "up"}})
    resources = list(az.resource.resources.list_by_resource_group(GROUP))

    assert group.tags == {"managed-by": "dsvm-kit", "state": "up"}
    assert {r.type for r in resources} == {
        "Microsoft.Compute/virtualMachines",
        "Microsoft.Compute/disks",
        "Microsoft.Network/networkInterfaces",
        "Microsoft.Network/publicIPAddresses",
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/virtualNetworks",
    }


def test_auto_shutdown_schedule_by_id(arm, az):
    vm = create_vm(az)
    schedule_id = (
        f"/subscriptions/{arm.subscription_id}/resourceGroups/{GROUP}/providers/Microsoft.DevTestLab/"
        "schedules/shutdown-computevm-dsvm"
    )
    body = {
        "location": LOCATION,
        "properties": {
            "status": "Enabled",
            "taskType": "ComputeVmShutdownTask",
            "dailyRecurrence": {"time": "1900"},
            "timeZoneId": "UTC",
            "targetResourceId": vm.id,
        },
    }

    created = az.resource.resources.begin_create_or_update_by_id(schedule_id, body, api_version="2018-09-15").result()
    fetched = az.resource.resources.get_by_id(schedule_id, api_version="2018-09-15")

    assert created.properties["provisioningState"] == "Succeeded"
    assert fetched.properties["dailyRecurrence"] == {"time": "1900"}
    assert created.id.lower() == schedule_id.lower()
    az.resource.resources.begin_delete_by_id(schedule_id, api_version="2018-09-15").result()
    assert created.id not in arm.inventory()

    # Azure ties a VM's auto-shutdown schedule to its name: another name is a 400 (tests/fakes/arm/models.py).
    with pytest.raises(HttpResponseError) as wrong:
        az.resource.resources.begin_create_or_update_by_id(
            schedule_id.replace("shutdown-computevm-dsvm", "nightly-dsvm"), body, api_version="2018-09-15"
        ).result()
    assert wrong.value.status_code == 400 and "shutdown-computevm-dsvm" in str(wrong.value)
    assert not [entry for entry in arm.inventory() if "schedules" in entry.lower()]


# -- catalog: usages, SKUs, images, subscription ------------------------------------------------


def test_usages_parse_into_sdk_models(arm, az):
    arm.set_quota(LOCATION, "standardNCASv3_T4Family", limit=8, current=4)
    usages = {u.name.value: u for u in az.compute.usage.list(LOCATION)}

    t4 = usages["standardNCASv3_T4Family"]
    assert (t4.current_value, t4.limit, t4.unit) == (4, 8, "Count")
    assert t4.name.localized_value == "Standard NCASv3_T4 Family vCPUs"
    assert usages["cores"].limit == 100
    assert {"standardNCADSA100v4Family", "StandardNCadsH100v5Family"} <= usages.keys()


def test_running_vm_counts_against_quota(arm, az):
    create_vm(az)
    usages = {u.name.value: u.current_value for u in az.compute.usage.list(LOCATION)}
    assert (usages["cores"], usages["standardNCASv3_T4Family"], usages["virtualMachines"]) == (4, 4, 1)


def test_spot_vm_counts_against_low_priority_quota(arm, az):
    nic_id = make_network(az)
    body = vm_body(nic_id)
    body["properties"].update(priority="Spot", evictionPolicy="Deallocate", billingProfile={"maxPrice": -1})
    az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", body).result()

    usages = {u.name.value: u.current_value for u in az.compute.usage.list(LOCATION)}
    assert (usages["lowPriorityCores"], usages["cores"], usages["standardNCASv3_T4Family"]) == (4, 0, 0)


def test_resource_skus_parse_with_capabilities_and_restrictions(arm, az):
    arm.restrict_sku("westus2", "Standard_NC24ads_A100_v4")
    skus = {s.name: s for s in az.compute.resource_skus.list(filter="location eq 'westus2'")}

    t4 = skus["Standard_NC4as_T4_v3"]
    capabilities = {c.name: c.value for c in t4.capabilities}
    assert (capabilities["vCPUs"], capabilities["GPUs"]) == ("4", "1")
    assert t4.family == "standardNCASv3_T4Family" and t4.locations == ["westus2"]
    assert t4.location_info[0].zones == ["1", "2", "3"] and t4.restrictions == []
    a100 = skus["Standard_NC24ads_A100_v4"]
    assert a100.restrictions[0].reason_code == "NotAvailableForSubscription"
    assert a100.restrictions[0].values_property == ["westus2"]
    assert skus["Standard_NC40ads_H100_v5"].family == "StandardNCadsH100v5Family"
    assert "GPUs" not in {c.name for c in skus["Standard_D4s_v5"].capabilities}


def test_image_get_resolves_latest_and_reports_plan(arm, az):
    images = az.compute.virtual_machine_images
    image = images.get(LOCATION, "microsoft-dsvm", "ubuntu-2204", "2204-gen2", "latest")
    versions = [v.name for v in images.list(LOCATION, "microsoft-dsvm", "ubuntu-2204", "2204-gen2")]
    [newest] = images.list(LOCATION, "microsoft-dsvm", "ubuntu-2204", "2204-gen2", top=1, orderby="name desc")
    assert image.plan is None and image.hyper_v_generation == "V2"
    assert image.name == newest.name == versions[-1] and len(versions) > 1

    arm.set_image_plan("microsoft-dsvm", "ubuntu-2204", "2204-gen2", {"name": "n", "publisher": "p", "product": "o"})
    assert images.get(LOCATION, "microsoft-dsvm", "ubuntu-2204", "2204-gen2", versions[0]).plan.product == "o"

    with pytest.raises(ResourceNotFoundError) as caught:
        images.get(LOCATION, "canonical", "ubuntuserver", "18.04-lts", "latest")
    assert caught.value.error.code == "NotFound"


def test_subscription_and_locations(arm, az):
    subscription = send(az, "GET", f"/subscriptions/{arm.subscription_id}", "2022-12-01")
    locations = send(az, "GET", f"/subscriptions/{arm.subscription_id}/locations", "2022-12-01").json()["value"]

    assert subscription.json()["state"] == "Enabled"
    by_name = {location["name"]: location for location in locations}
    assert {
        "eastus",
        "eastus2",
        "westus2",
        "westus3",
        "southcentralus",
        "northeurope",
        "westeurope",
        "uksouth",
        "japaneast",
    } <= by_name.keys()
    assert by_name["eastus"]["regionalDisplayName"] == "(US) East US"
    assert by_name["eastus"]["metadata"]["pairedRegion"][0]["name"] == "westus"


# -- HTTP-level behaviour ----------------------------------------------------------------------------


def test_paths_are_case_insensitive(arm, az):
    az.resource.resource_groups.create_or_update(GROUP, {"location": LOCATION})
    for spelling in ("resourceGroups", "resourcegroups", "RESOURCEGROUPS"):
        response = send(az, "GET", f"/subscriptions/{arm.subscription_id}/{spelling}/{GROUP.upper()}")
        assert response.status_code == 200 and response.json()["name"] == GROUP
    listed = send(
        az,
        "GET",
        f"/subscriptions/{arm.subscription_id}/resourcegroups/{GROUP}/providers/microsoft.network/VIRTUALNETWORKS",
        "2026-03-01",
    )
    assert (listed.status_code, listed.json()) == (200, {"value": []})


def test_unserved_requests_are_501_not_404(arm, az):
    response = send(az, "GET", f"/subscriptions/{arm.subscription_id}/providers/Microsoft.Storage/storageAccounts")
    assert response.status_code == 501
    assert response.json()["error"]["code"] == "NotImplementedInFakeARM"


def test_requests_without_a_bearer_token_get_401(arm):
    context = ssl.create_default_context(cafile=arm.ca_bundle)
    host, port = arm.url.removeprefix("https://").split(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context)
    connection.request("GET", f"/subscriptions/{arm.subscription_id}/resourcegroups?api-version=2025-04-01")
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 401
    assert body["error"]["code"] == "AuthenticationFailed"

    with FakeARM(token="the-real-token", time_scale=FAST) as strict:
        with pytest.raises(ClientAuthenticationError) as caught:
            Clients(strict, TokenCredential("a-wrong-token")).resource.resource_groups.get(GROUP)
        assert caught.value.error.code == "InvalidAuthenticationToken"
        assert (
            Clients(strict, TokenCredential("the-real-token")).resource.resource_groups.check_existence(GROUP) is False
        )
