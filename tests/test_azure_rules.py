"""Azure's own rules for images, sizes, disks, networking, security type and marketplace terms.

For each rule: the fake ARM refuses the wrong request as ARM does (through the real SDK), and
`provision up` refuses it in one line before any write, or handles it as the rule allows.
"""

import json

import pytest
from azure.core.exceptions import HttpResponseError

from tests.conftest import provision
from tests.fakes.arm import FakeARM
from tests.fakes.arm.catalog import PlatformImage
from tests.test_fake_arm import GROUP, Clients, make_network, vm_body

NAME = "rules1"
A100 = "Standard_NC24ads_A100_v4"
T4 = "Standard_NC4as_T4_v3"
# A Gen1 image with a 30 GB disk, like Canonical's Gen1 Ubuntu SKUs.
GEN1 = PlatformImage("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts", ["22.04.202501010"], None, "V1", 30)
GEN1_URN = "canonical:0001-com-ubuntu-server-jammy:22_04-lts:latest"
PLAN = {"name": "2204-gen2", "publisher": "microsoft-dsvm", "product": "ubuntu-2204"}
DSVM_URN = "microsoft-dsvm:ubuntu-2204:2204-gen2:latest"


@pytest.fixture
def az(arm: FakeARM) -> Clients:
    return Clients(arm)


def refusal(az: Clients, body: dict, name: str = "dsvm") -> HttpResponseError:
    with pytest.raises(HttpResponseError) as caught:
        az.compute.virtual_machines.begin_create_or_update(GROUP, name, body)
    return caught.value


def on_image(body: dict, image: PlatformImage) -> dict:
    reference = {"publisher": image.publisher, "offer": image.offer, "sku": image.sku, "version": "latest"}
    body["properties"]["storageProfile"]["imageReference"] = reference
    return body


def trusted(body: dict) -> dict:
    body["properties"]["securityProfile"] = {
        "securityType": "TrustedLaunch",
        "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
    }
    return body


def writes(arm: FakeARM) -> list:
    return [r for r in arm.requests if r.method in ("PUT", "POST", "DELETE")]


def up(*argv: str):
    return provision("up", "--name", NAME, "--no-bootstrap", *argv)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# -- the fake refuses as ARM does ---------------------------------------------------------------


def test_fake_refuses_a_gen1_image_on_a_gen2_only_size(arm, az):
    arm.add_image(GEN1)
    nic_id = make_network(az)
    error = refusal(az, on_image(vm_body(nic_id, size=A100), GEN1))
    vm = az.compute.virtual_machines.begin_create_or_update(GROUP, "t4", on_image(vm_body(nic_id), GEN1)).result()
    assert (error.status_code, error.error.code) == (400, "BadRequest")
    assert f"The selected VM size '{A100}' cannot boot Hypervisor Generation '1'" in error.error.message
    assert vm.provisioning_state == "Succeeded"


def test_fake_refuses_an_os_disk_smaller_than_the_image(arm, az):
    body = vm_body(make_network(az))
    body["properties"]["storageProfile"]["osDisk"]["diskSizeGB"] = 64
    error = refusal(az, body)
    assert (error.status_code, error.error.code, error.error.target) == (
        409,
        "OperationNotAllowed",
        "osDisk.diskSizeGB",
    )
    assert "64 GB is smaller than the size of the corresponding disk in the VM image: 150 GB" in error.error.message


def test_fake_refuses_accelerated_networking_on_a_size_without_it(arm, az):
    nic_id = make_network(az)
    nic = az.network.network_interfaces.get(GROUP, "nic").as_dict()
    nic["properties"]["enableAcceleratedNetworking"] = True
    az.network.network_interfaces.begin_create_or_update(GROUP, "nic", nic).result()
    arm.set_capability(T4, "AcceleratedNetworkingEnabled", "False")
    error = refusal(az, vm_body(nic_id))
    arm.set_capability(T4, "AcceleratedNetworkingEnabled", "True")
    vm = az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", vm_body(nic_id)).result()
    assert (error.status_code, error.error.code) == (400, "VMSizeIsNotPermittedToEnableAcceleratedNetworking")
    assert vm.provisioning_state == "Succeeded"


def test_fake_refuses_a_plan_whose_terms_are_not_accepted(arm, az):
    arm.set_image_plan("microsoft-dsvm", "ubuntu-2204", "2204-gen2", PLAN)
    nic_id = make_network(az)
    error = refusal(az, vm_body(nic_id, plan=PLAN))
    terms = (
        f"/subscriptions/{arm.subscription_id}/providers/Microsoft.MarketplaceOrdering/offerTypes/virtualmachine"
        "/publishers/microsoft-dsvm/offers/ubuntu-2204/plans/2204-gen2/agreements/current"
    )
    before = az.resource.resources.get_by_id(terms, api_version="2021-01-01")
    accept = {"properties": {**before.properties, "accepted": True}}
    az.resource.resources.begin_create_or_update_by_id(terms, accept, api_version="2021-01-01").result()
    vm = az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", vm_body(nic_id, plan=PLAN)).result()
    assert (error.status_code, error.error.code) == (400, "ResourcePurchaseValidationFailed")
    assert f"You have not accepted the legal terms on this subscription: '{arm.subscription_id}'" in error.message
    assert before.properties["accepted"] is False
    assert az.resource.resources.get_by_id(terms, api_version="2021-01-01").properties["accepted"] is True
    assert vm.plan.name == "2204-gen2"


def test_fake_refuses_trusted_launch_on_a_gen1_image_or_a_size_without_it(arm, az):
    arm.add_image(GEN1)
    nic_id = make_network(az)
    gen1 = refusal(az, trusted(on_image(vm_body(nic_id), GEN1)))
    arm.set_capability(T4, "TrustedLaunchDisabled", "True")
    size = refusal(az, trusted(vm_body(nic_id)))
    arm.set_capability(T4, "TrustedLaunchDisabled", "False")
    vm = az.compute.virtual_machines.begin_create_or_update(GROUP, "dsvm", trusted(vm_body(nic_id))).result()
    assert (gen1.status_code, gen1.error.code) == (400, "BadRequest")
    assert "Use of TrustedLaunch setting is not supported for the provided image" in gen1.error.message
    assert (size.status_code, size.error.code) == (400, "BadRequest")
    assert f"The VM size '{T4}' is not supported for creation of VMs" in size.error.message
    fetched = az.compute.virtual_machines.get(GROUP, "dsvm")
    assert fetched.security_profile.security_type == vm.security_profile.security_type == "TrustedLaunch"
    assert fetched.security_profile.uefi_settings.secure_boot_enabled is True


def test_fake_refuses_an_unknown_security_type(arm, az):
    body = vm_body(make_network(az))
    body["properties"]["securityProfile"] = {"securityType": "Trusted"}
    error = refusal(az, body)
    assert (error.error.code, error.error.target) == ("InvalidParameter", "securityProfile.securityType")


def test_fake_skus_carry_the_capabilities_preflight_reads(arm, az):
    skus = {
        s.name: {c.name: c.value for c in s.capabilities}
        for s in az.compute.resource_skus.list(filter="location eq 'eastus'")
    }
    assert skus[A100]["HyperVGenerations"] == skus["Standard_NC40ads_H100_v5"]["HyperVGenerations"] == "V2"
    assert skus[T4]["HyperVGenerations"] == "V1,V2"
    assert all(skus[s]["AcceleratedNetworkingEnabled"] == "True" for s in (T4, A100, "Standard_NC40ads_H100_v5"))
    image = az.compute.virtual_machine_images.get("eastus", "microsoft-dsvm", "ubuntu-2204", "2204-gen2", "latest")
    assert image.hyper_v_generation == "V2" and image.properties.os_disk_image["sizeInGb"] == 150


# -- the kit refuses before any write -----------------------------------------------------------


@pytest.mark.parametrize(
    "arrange, argv, message",
    [
        (
            lambda arm: arm.add_image(GEN1),
            ["--size", A100, "--image", GEN1_URN],
            f"error: size {A100} boots only V2 images but image {GEN1_URN} is V1; choose a Gen2 image",
        ),
        (
            lambda arm: None,
            ["--os-disk-gb", "64"],
            f"error: --os-disk-gb 64 is smaller than image {DSVM_URN}'s 150 GB disk; use --os-disk-gb 150 or more",
        ),
        (
            lambda arm: arm.add_image(GEN1),
            ["--trusted-launch", "--image", GEN1_URN],
            f"error: --trusted-launch needs a Gen2 image and {GEN1_URN} is V1",
        ),
        (
            lambda arm: arm.set_capability(T4, "TrustedLaunchDisabled", "True"),
            ["--trusted-launch"],
            f"error: size {T4} does not allow Trusted Launch; drop --trusted-launch or choose another --size",
        ),
        (
            lambda arm: arm.set_image_plan("microsoft-dsvm", "ubuntu-2204", "2204-gen2", PLAN),
            [],
            f"then run `provision up --accept-terms` (or `az vm image terms accept --urn {DSVM_URN}`)",
        ),
    ],
    ids=["generation", "os-disk", "trusted-launch-gen1", "trusted-launch-size", "terms"],
)
def test_the_kit_refuses_in_one_line_before_any_write(arm, azure_env, arrange, argv, message):
    arrange(arm)
    result = up(*argv)
    assert result.exit_code == 1
    assert message in last_line(result.stderr)
    assert "Traceback" not in result.stderr
    assert writes(arm) == [] and arm.inventory() == []


def test_accept_terms_accepts_them_then_creates(arm, azure_env):
    arm.set_image_plan("microsoft-dsvm", "ubuntu-2204", "2204-gen2", PLAN)
    result = up("--accept-terms")
    assert result.exit_code == 0, result.stderr
    first = writes(arm)[0]
    assert "/agreements/current" in first.path and first.body["properties"]["accepted"] is True
    vm_put = next(r for r in writes(arm) if "/virtualmachines/" in r.path.lower())
    assert vm_put.body["plan"] == PLAN


def bodies(arm: FakeARM) -> dict[str, dict]:
    return {r.path.lower().rsplit("/", 2)[-2]: r.body for r in writes(arm) if r.method == "PUT"}


def test_accelerated_networking_exactly_when_the_size_has_it(arm, azure_env):
    assert up().exit_code == 0
    on = bodies(arm)["networkinterfaces"]["properties"]["enableAcceleratedNetworking"]
    assert provision("down", NAME, "--yes").exit_code == 0
    arm.clear_log()
    arm.set_capability(T4, "AcceleratedNetworkingEnabled", "False")
    assert up().exit_code == 0
    off = bodies(arm)["networkinterfaces"]["properties"]["enableAcceleratedNetworking"]
    assert (on, off) == (True, False)


@pytest.mark.parametrize(
    "argv, security",
    [
        ([], {"securityType": "Standard"}),
        (
            ["--trusted-launch"],
            {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}},
        ),
    ],
)
def test_the_security_type_is_stated_and_status_shows_what_azure_reports(arm, azure_env, argv, security):
    assert up(*argv).exit_code == 0
    assert bodies(arm)["virtualmachines"]["properties"]["securityProfile"] == security
    status = json.loads(provision("status", NAME, "--json").stdout)
    assert status["security_type"] == security["securityType"]
