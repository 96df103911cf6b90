"""Microsoft.Compute: virtual machines (with their OS disks), power actions, SKUs, usages, images.

A VM create answers 201 "Creating" (VirtualMachine_Create_WithSshAuthentication.json); when the
operation completes the booter boots it. Quota, SKU restrictions and marketplace plans are
checked the way Azure checks them, with Azure's codes.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
from collections.abc import Callable

from . import catalog, pacing
from .boot import BootSpec
from .catalog import PlatformImage, Usage, VmSize, family_key, image_key, normalize_location
from .errors import ArmError, Conflict, InUse, InvalidParameter, NotFound
from .identity import IdentityModel
from .marketplace import MarketplaceModel
from .models import (
    ArmState,
    DeleteResult,
    Entry,
    KindSpec,
    OperationCanceled,
    PutResult,
    new_guid,
    utc_now,
)
from .network import NetworkModel
from .placement import PlacementModel

VM = "Microsoft.Compute/virtualMachines"
DISK = "Microsoft.Compute/disks"

# Azure refuses these admin user names (InvalidParameter, target adminUsername).
RESERVED_USERNAMES = frozenset(
    {
        "1",
        "123",
        "a",
        "actuser",
        "adm",
        "admin",
        "admin1",
        "admin2",
        "administrator",
        "aspnet",
        "backup",
        "console",
        "david",
        "guest",
        "john",
        "owner",
        "root",
        "server",
        "sql",
        "support",
        "support_388945a0",
        "sys",
        "test",
        "test1",
        "test2",
        "test3",
        "user",
        "user1",
        "user2",
        "user3",
        "user4",
        "user5",
    }
)
MAX_CUSTOM_DATA_BYTES = 65535

_POWER_DISPLAY = {
    "running": "VM running",
    "starting": "VM starting",
    "stopped": "VM stopped",
    "stopping": "VM stopping",
    "deallocated": "VM deallocated",
    "deallocating": "VM deallocating",
}


@dataclasses.dataclass(frozen=True)
class _Action:
    transitional: str  # power state while the operation runs
    final: str
    halts: bool
    boots: bool


ACTIONS = {
    "start": _Action("starting", "running", halts=False, boots=True),
    "deallocate": _Action("deallocating", "deallocated", halts=True, boots=False),
    "poweroff": _Action("stopping", "stopped", halts=True, boots=False),
    "restart": _Action("starting", "running", halts=True, boots=True),
}


def _quota_message(quota_name: str, location: str, limit: int, usage: int, required: int) -> str:
    return (
        f"Operation could not be completed as it results in exceeding approved {quota_name} quota. Additional "
        f"details - Deployment Model: Resource Manager, Location: {location}, Current Limit: {limit}, Current "
        f"Usage: {usage}, Additional Required: {required}, (Minimum) New Limit Required: {usage + required}. "
        "Submit a request for Quota increase at https://aka.ms/ProdportalCRP by specifying parameters listed "
        "in the 'Details' section for deployment to succeed. Please read more about quota limits at "
        "https://docs.microsoft.com/en-us/azure/azure-supportability/per-vm-quota-requests"
    )


class ComputeModel:
    def __init__(
        self, state: ArmState, network: NetworkModel, marketplace: MarketplaceModel, identities: IdentityModel
    ):
        self.state = state
        self.network = network
        self.marketplace = marketplace
        self.identities = identities
        self.tenant_id = ""  # the directory of VMs' managed identities (FakeARM sets it)
        self.quotas: dict[tuple[str, str], Usage] = {}  # (location, family key) -> usage set by a test
        self.restrictions: dict[tuple[str, str], str] = {}
        self.capability_overrides: dict[str, dict[str, str]] = {}  # size (lower case) -> capability -> value
        self.no_capacity: set[str] = set()  # sizes (lower case) Azure cannot allocate now (FakeARM.no_capacity)
        self.images: dict[tuple[str, str, str], PlatformImage] = {i.key: i for i in catalog.default_images()}
        state.register(KindSpec(VM, put=self.put_vm, delete=self.delete_vm, view=self.vm_view, release=self.release_vm))
        state.register(KindSpec(DISK, put=None, delete=self.delete_disk, view=state.plain_view))
        self.placement = PlacementModel(state)

    # -- catalog settings (FakeARM.set_quota / restrict_sku / set_image_plan) -------------------

    def set_quota(self, location: str, family: str, limit: int, current: int) -> None:
        default = next((u for u in catalog.DEFAULT_USAGES if family_key(u.name) == family_key(family)), None)
        label = default.label if default else f"{family} vCPUs"
        with self.state.lock:
            self.quotas[(normalize_location(location), family_key(family))] = Usage(
                default.name if default else family, label, limit, current
            )

    def set_limit(self, location: str, name: str, limit: int) -> None:
        """A quota's new limit (an approved quota request, or a fresh subscription: quota.py); its use stays."""
        key = (normalize_location(location), family_key(name))
        with self.state.lock:
            usage = self.quotas.get(key) or next(u for u in catalog.DEFAULT_USAGES if family_key(u.name) == key[1])
            self.quotas[key] = dataclasses.replace(usage, limit=limit)

    def usage(self, location: str, name: str) -> Usage | None:
        """One quota of `location` as its usages list reports it (quota.py reads limits and use here)."""
        with self.state.lock:
            return self._usages(normalize_location(location)).get(family_key(name))

    def restrict_sku(self, location: str, size: str, reason: str) -> None:
        with self.state.lock:
            self.restrictions[(normalize_location(location), size.lower())] = reason

    def set_capability(self, size: str, name: str, value: str) -> None:
        with self.state.lock:
            self.capability_overrides.setdefault(size.lower(), {})[name] = value

    def set_no_capacity(self, size: str, gone: bool = True) -> None:
        with self.state.lock:
            (self.no_capacity.add if gone else self.no_capacity.discard)(size.lower())

    def _allocation(self, size: VmSize) -> ArmError | None:
        """The failure of an operation that must place `size` on hardware, while Azure has none for it."""
        if size.name.lower() not in self.no_capacity:
            return None
        return ArmError(
            "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read "
            "more about improving likelihood of allocation success at http://aka.ms/allocation-guidance",
            code="AllocationFailed",
        )

    def capabilities(self, size: VmSize) -> dict[str, str]:
        return {**catalog.capabilities(size), **self.capability_overrides.get(size.name.lower(), {})}

    def add_image(self, image: PlatformImage) -> None:
        with self.state.lock:
            self.images[image.key] = image

    def set_image_plan(self, publisher: str, offer: str, sku: str, plan: dict | None) -> None:
        with self.state.lock:
            image = self.images.setdefault(
                image_key(publisher, offer, sku), PlatformImage(publisher, offer, sku, ["1.0.0"])
            )
            image.plan = dict(plan) if plan else None

    # -- usages, SKUs, images ------------------------------------------------------------------

    def _usages(self, location: str) -> dict[str, Usage]:
        """Quota key -> usage in `location`, counting what live (not deallocated) VMs consume."""
        table = {family_key(u.name): u for u in catalog.DEFAULT_USAGES}
        table.update({key: usage for (where, key), usage in self.quotas.items() if where == location})
        live: dict[str, int] = {}
        for vm in self.state.entries_of(VM):
            if vm.body["location"] != location:
                continue
            live["virtualmachines"] = live.get("virtualmachines", 0) + 1
            if vm.meta["power"] == "deallocated":
                continue
            size = catalog.SIZES_BY_NAME[vm.meta["size"].lower()]
            for key in self._quota_keys(size, vm.meta["spot"]):
                live[key] = live.get(key, 0) + size.vcpus
        return {
            key: dataclasses.replace(usage, current=usage.current + live.get(key, 0)) for key, usage in table.items()
        }

    @staticmethod
    def _quota_keys(size: VmSize, spot: bool) -> tuple[str, ...]:
        return ("lowprioritycores",) if spot else ("cores", family_key(size.family))

    def list_usages(self, location: str) -> list[dict]:
        with self.state.lock:
            usages = self._usages(normalize_location(location))
        return [
            {
                "unit": "Count",
                "currentValue": u.current,
                "limit": u.limit,
                "name": {"value": u.name, "localizedValue": u.label},
            }
            for u in usages.values()
        ]

    def _check_quota(self, location: str, size: VmSize, spot: bool, instead_of: Entry | None = None) -> None:
        """The size's vCPUs fit every quota it counts against; a resize of a live VM (`instead_of`) needs only
        what it adds to the VM's own use."""
        usages = self._usages(location)
        labels = {"cores": "Total Regional Cores", "lowprioritycores": "Low Priority Cores"}
        freed: dict[str, int] = {}
        if instead_of is not None and instead_of.meta["power"] != "deallocated":
            old = catalog.SIZES_BY_NAME[instead_of.meta["size"].lower()]
            freed = dict.fromkeys(self._quota_keys(old, instead_of.meta["spot"]), old.vcpus)
        for key in self._quota_keys(size, spot):
            usage, required = usages[key], size.vcpus - freed.get(key, 0)
            if required > 0 and usage.current + required > usage.limit:
                raise Conflict(
                    _quota_message(
                        labels.get(key, f"{usage.name} Cores"), location, usage.limit, usage.current, required
                    ),
                    code="OperationNotAllowed",
                )

    def list_skus(self, location: str | None) -> list[dict]:
        locations = [normalize_location(location)] if location else [r.name for r in catalog.REGIONS]
        with self.state.lock:
            return [
                catalog.sku_body(
                    size, where, self.restrictions.get((where, size.name.lower())), self.capabilities(size)
                )
                for where in locations
                if where in catalog.REGION_NAMES
                for size in catalog.VM_SIZES
            ]

    def _image(self, publisher: str, offer: str, sku: str) -> PlatformImage:
        image = self.images.get(image_key(publisher, offer, sku))
        if image is None:
            raise NotFound("Artifact: VMImage was not found.", target="imageReference")
        return image

    def get_image(self, location: str, publisher: str, offer: str, sku: str, version: str) -> dict:
        with self.state.lock:
            image = self._image(publisher, offer, sku)
            resolved = image.resolve(version)
            if resolved is None:
                raise NotFound("Artifact: VMImage was not found.", target="imageReference")
            return image.version_body(self.state.subscription_id, normalize_location(location), resolved)

    def list_image_versions(
        self, location: str, publisher: str, offer: str, sku: str, *, orderby: str | None, top: int | None
    ) -> list[dict]:
        """VirtualMachineImages_List: `$orderby=name desc&$top=1` is how clients find the latest."""
        location = normalize_location(location)
        with self.state.lock:
            image = self._image(publisher, offer, sku)
            versions = sorted(
                image.versions, key=catalog.version_key, reverse=(orderby or "").lower().endswith(" desc")
            )
            return [
                {
                    "location": location,
                    "name": version,
                    "id": image.version_id(self.state.subscription_id, location, version),
                }
                for version in versions[:top]
            ]

    # -- virtual machines: create / update -----------------------------------------------------

    def put_vm(self, group: str, name: str, body: dict, failure: ArmError | None) -> PutResult:
        if not body.get("location"):
            raise ArmError("Resource location is required.", code="LocationRequired")
        properties = body.get("properties") or {}
        size = self._requested_size(properties)
        spot = str(properties.get("priority", "")).lower() == "spot"
        state = self.state
        with state.lock:
            found = state.require_group(group, for_write=True)
            existing = state.lookup(group, VM, name)
            entry = state.new_entry(found, VM, name, body)
            location = entry.body["location"]
            self._check_sku(size, location)
            nics = self._resolve_nics(properties, entry.id)
            self.placement.require_for(properties, entry.id, location)
            if existing is None:
                os_profile = self._validate_os_profile(properties.get("osProfile"))
                image = self._check_image(properties, body, entry.id)
                self._check_image_fits(size, image, properties)
                self._check_security(size, image, properties)
                self._check_spot(size, properties, spot)
                self._check_accelerated_networking(size, nics, entry.id)
                self._check_quota(location, size, spot)
                entry.meta = {
                    "vmId": new_guid(),
                    "timeCreated": utc_now(),
                    "power": "deallocated",
                    "provisioned": False,
                    "booted": False,
                    "image": image,
                    "custom_data": self._custom_data(os_profile),
                }
            else:
                os_profile = properties.get("osProfile") or existing.body["properties"]["osProfile"]
                resized = existing.meta["size"].lower() != size.name.lower()
                if resized:
                    self._check_resize(existing, size, properties, nics)
                    self._check_quota(location, size, spot, instead_of=existing)
                entry.meta = dict(existing.meta)
                self._detach_dropped_nics(existing, nics)
            entry.meta.update(size=size.name, spot=spot, user_data=properties.get("userData"))
            for key in ("plan", "zones"):
                if body.get(key) is not None:
                    entry.body[key] = copy.deepcopy(body[key])
            identity = self._identity(body.get("identity"), existing)
            if identity is not None:
                entry.body["identity"] = identity
                if identity.get("principalId"):  # a system-assigned identity is new to the directory from now
                    entry.meta.setdefault("principal_since", state.clock())
            entry.body["properties"] = self._vm_properties(entry, properties, os_profile, existing)
            self._attach_os_disk(entry)
            for nic in nics:
                self.network.attach_nic(nic, entry.id)
            entry.set_state("Creating" if existing is None else "Updating")
            state.store(entry)
            # A create provisions (boots) the VM; an update does so only if provisioning never succeeded.
            previous_power = entry.meta["power"]
            provision = not entry.meta["provisioned"]
            # A resize of a running VM restarts it on the new size's hardware (learn.microsoft.com/azure/
            # virtual-machines/sizes/resize-vm: "resizing a running VM restarts it"); its disk stays.
            moved = existing is not None and resized and previous_power == "running"
            if provision or moved:
                entry.meta["power"] = "starting"
            on_failure = self._failer(entry, previous_power)
            if moved:
                failure = failure or self._allocation(size)
                on_failure = self._failer(entry, previous_power, existing)
            operation = state.start_operation(
                VM,
                location,
                self._finisher(entry, provision or moved, "running" if provision else previous_power, halt=moved),
                failure=failure,
                on_failure=on_failure,
                early=self._early_boot(entry) if provision else None,
                pace=pacing.VM_PUT,
            )
            return PutResult(existing is None, self.vm_view(entry), operation)

    def _identity(self, requested: dict | None, existing: Entry | None) -> dict | None:
        """The VM's managed identity as Azure returns it: a system-assigned one gets a principalId and the
        tenantId (kept across updates); each user-assigned one, which must exist, shows its principalId and clientId
        (VirtualMachine_Create_WithEncryptionIdentity.json; learn.microsoft.com/entra/identity/managed-identities-
        azure-resources/qs-configure-rest-vm: type SystemAssigned, UserAssigned, "SystemAssigned, UserAssigned" or None,
        and the VM's userAssignedIdentities values {principalId, clientId}). Azure publishes no example of a VM naming
        an identity that does not exist: 400 InvalidParameter here."""
        if requested is None:
            return copy.deepcopy(existing.body.get("identity")) if existing else None
        kind = str(requested.get("type", ""))
        kinds = {k.strip().lower() for k in kind.split(",")}
        if not kinds <= {"systemassigned", "userassigned", "none"} or ("none" in kinds and len(kinds) > 1):
            raise InvalidParameter(
                f"The value '{kind}' of parameter 'identity.type' is invalid.", target="identity.type"
            )
        if "userassigned" in kinds and not requested.get("userAssignedIdentities"):
            raise InvalidParameter(
                "The identity type UserAssigned needs userAssignedIdentities.", target="identity.userAssignedIdentities"
            )
        identity = copy.deepcopy(requested)
        for identity_id in identity.get("userAssignedIdentities") or {}:
            found = self.identities.find(identity_id)
            if found is None:
                raise InvalidParameter(
                    f"The user-assigned identity '{identity_id}' was not found.",
                    target="identity.userAssignedIdentities",
                )
            identity["userAssignedIdentities"][identity_id] = {
                "principalId": found.properties["principalId"],
                "clientId": found.properties["clientId"],
            }
        if "systemassigned" in kinds:
            before = (existing.body.get("identity") or {}) if existing else {}
            identity["principalId"] = before.get("principalId") or new_guid()
            identity["tenantId"] = self.tenant_id
        return identity

    @staticmethod
    def _requested_size(properties: dict) -> VmSize:
        size_name = (properties.get("hardwareProfile") or {}).get("vmSize", "")
        size = catalog.SIZES_BY_NAME.get(size_name.lower())
        if size is None:
            raise InvalidParameter(
                f"The value {size_name!r} provided for the VM size is not valid in the fake "
                f"ARM; known sizes: {', '.join(s.name for s in catalog.VM_SIZES)}.",
                target="vmSize",
            )
        return size

    def _detach_dropped_nics(self, existing: Entry, kept: list[Entry]) -> None:
        for reference in existing.body["properties"]["networkProfile"]["networkInterfaces"]:
            nic = self.state.find(reference["id"])
            if nic is not None and nic not in kept:
                self.network.detach_nic(nic)

    def _check_sku(self, size: VmSize, location: str) -> None:
        if location not in catalog.REGION_NAMES or (location, size.name.lower()) in self.restrictions:
            raise Conflict(
                f"The requested VM size for resource 'Following SKUs have failed for Capacity "
                f"Restrictions: {size.name}' is currently not available in location '{location}'. "
                "Please try another size or deploy to a different location or different zone. See "
                "https://aka.ms/azureskunotavailable for details.",
                code="SkuNotAvailable",
            )

    @staticmethod
    def _validate_os_profile(os_profile: dict | None) -> dict:
        if not os_profile:
            raise InvalidParameter("Required parameter 'osProfile' is missing (null).", target="osProfile")
        username = os_profile.get("adminUsername") or ""
        if not username or username.lower() in RESERVED_USERNAMES or len(username) > 64:
            raise InvalidParameter("The Admin Username specified is not allowed.", target="adminUsername")
        linux = os_profile.get("linuxConfiguration") or {}
        keys = ((linux.get("ssh") or {}).get("publicKeys")) or []
        if linux.get("disablePasswordAuthentication") and not keys:
            raise InvalidParameter(
                "Authentication using either SSH or by user name and password must be enabled in Linux profile.",
                target="linuxConfiguration",
            )
        return os_profile

    @staticmethod
    def _custom_data(os_profile: dict) -> bytes:
        encoded = os_profile.get("customData")
        if not encoded:
            return b""
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameter(
                "Custom data in OSProfile must be in Base64 encoding.", target="customData"
            ) from None
        if len(decoded) > MAX_CUSTOM_DATA_BYTES:
            raise InvalidParameter(
                f"Custom data in OSProfile must be at most {MAX_CUSTOM_DATA_BYTES} bytes.", target="customData"
            )
        return decoded

    def _check_image(self, properties: dict, body: dict, vm_id: str) -> dict:
        reference = (properties.get("storageProfile") or {}).get("imageReference") or {}
        if reference.get("id"):  # a custom or gallery image: not modelled, taken as is
            return {"reference": dict(reference), "version": None, "generation": "V2", "os_disk_gb": 0}
        urn = ":".join(str(reference.get(k, "")) for k in ("publisher", "offer", "sku", "version"))
        image = self.images.get(
            image_key(reference.get("publisher", ""), reference.get("offer", ""), reference.get("sku", ""))
        )
        version = image.resolve(str(reference.get("version", "latest"))) if image else None
        if version is None:
            raise ArmError(
                f"The platform image '{urn}' is not available. Verify that all fields in the storage "
                "profile are correct. For more details about storage profile information, please refer "
                "to https://aka.ms/storageprofile",
                code="PlatformImageNotFound",
                status=404,
                target="imageReference",
            )
        if image.plan and not body.get("plan"):
            # Azure's code and message: Azure/sap-automation issue 433, azure-cli issue 1812 (Azure reports it
            # when the create operation fails; the fake answers the PUT itself, which the kit treats alike).
            raise ArmError(
                "Creating a virtual machine from Marketplace image or a custom image sourced from a "
                "Marketplace image requires Plan information in the request. VM: "
                f"'{vm_id}'.",
                code="VMMarketplaceInvalidInput",
            )
        if image.plan and not self.marketplace.is_accepted(
            image.plan["publisher"], image.plan["product"], image.plan["name"]
        ):
            # Azure's answer to a plan whose terms this subscription has not accepted (400, sync):
            # nforgeio/neonKUBE issue 1673, hashicorp/terraform-provider-azurerm issue 1145.
            raise ArmError(
                "User failed validation to purchase resources. Error message: 'You have not accepted the legal "
                f"terms on this subscription: '{self.state.subscription_id}' for this plan. Before the "
                "subscription can be used, you need to accept the legal terms of the image. To read and accept "
                "legal terms, use the Azure CLI commands described at https://go.microsoft.com/fwlink/?linkid=2110637 "
                "or the PowerShell commands available at https://go.microsoft.com/fwlink/?linkid=862451. "
                "Alternatively, deploying via the Azure portal provides a UI experience for reading and accepting "
                f"the legal terms. Offer details: publisher='{image.plan['publisher']}' offer = "
                f"'{image.plan['product']}', sku = '{image.plan['name']}', Correlation Id: '{new_guid()}'.'",
                code="ResourcePurchaseValidationFailed",
            )
        return {
            "reference": dict(reference),
            "version": version,
            "os_disk_gb": image.os_disk_gb,
            "generation": image.hyper_v_generation,
            "version_id": image.version_id(self.state.subscription_id, body["location"], version),
        }

    def _check_image_fits(self, size: VmSize, image: dict, properties: dict) -> None:
        """The size boots the image's Hyper-V generation; the OS disk is at least the image's."""
        generations = self.capabilities(size)["HyperVGenerations"].split(",")
        if image["generation"] not in generations:
            number = image["generation"].removeprefix("V")
            # 400 BadRequest, sync (loft-sh/devpod issue 731, skypilot-org/skypilot issue 133).
            raise ArmError(
                f"The selected VM size '{size.name}' cannot boot Hypervisor Generation '{number}'. If this was a "
                "Create operation please check that the Hypervisor Generation of the Image matches the Hypervisor "
                f"Generation of the selected VM Size. If this was an Update operation please select a Hypervisor "
                f"Generation '{number}' VM Size. For more information, see https://aka.ms/azuregen2vm"
            )
        os_disk = (properties.get("storageProfile") or {}).get("osDisk") or {}
        wanted = os_disk.get("diskSizeGB")
        if wanted is not None and int(wanted) < image["os_disk_gb"]:
            # 409 OperationNotAllowed, target osDisk.diskSizeGB (skypilot-org/skypilot issue 2219,
            # Azure/azure-sdk-for-python issue 23051).
            raise Conflict(
                f"The specified disk size {wanted} GB is smaller than the size of the corresponding disk in the VM "
                f"image: {image['os_disk_gb']} GB. This is not allowed. Please choose equal or greater size or do "
                "not specify an explicit size.",
                code="OperationNotAllowed",
                target="osDisk.diskSizeGB",
            )

    @staticmethod
    def _check_spot(size: VmSize, properties: dict, spot: bool) -> None:
        """Spot's fields as Azure checks them; codes and messages from
        learn.microsoft.com/azure/virtual-machines/error-codes-spot (which gives no status: 400, as for other
        parameter errors)."""
        if properties.get("evictionPolicy") is not None and not spot:
            raise ArmError(
                "Eviction policy can be set only on Azure Spot Virtual Machines.",
                code="EvictionPolicyCanBeSetOnlyOnAzureSpotVirtualMachines",
            )
        max_price = (properties.get("billingProfile") or {}).get("maxPrice")
        if max_price is None or max_price == -1:
            return
        if not isinstance(max_price, int | float) or max_price <= 0:
            raise ArmError(
                "Invalid max price value. The only supported values for max price are -1 or a decimal greater than "
                "zero. Max price value of -1 indicates the Azure Spot virtual machine will not be evicted for price "
                "reasons.",
                code="MaxPriceValueInvalid",
            )
        current = catalog.SPOT_PRICES.get(size.name.lower())
        if spot and current is not None and max_price < current:
            raise ArmError(
                f"Unable to perform operation 'Create VM' since the provided max price '{max_price} USD' is lower "
                f"than the current spot price '{current} USD' for Azure Spot VM size '{size.name}'.",
                code="SpotPriceGreaterThanProvidedMaxPrice",
            )

    def _check_security(self, size: VmSize, image: dict, properties: dict) -> None:
        """securityType is one Azure knows; Trusted Launch needs a Gen2 image and a size that allows it."""
        security = properties.get("securityProfile") or {}
        kind = security.get("securityType")
        if kind is None:
            return
        if kind not in ("Standard", "TrustedLaunch", "ConfidentialVM"):  # the SDK's SecurityTypes
            raise InvalidParameter(
                f"The value '{kind}' of parameter 'securityProfile.securityType' is invalid.",
                target="securityProfile.securityType",
            )
        if kind != "TrustedLaunch":
            return
        # Both 400 BadRequest, sync; messages as Azure/azure-cli issues 27975 and 28005 quote them.
        if image["generation"] != "V2":
            raise ArmError(
                "Use of TrustedLaunch setting is not supported for the provided image. Please select Trusted "
                "Launch Supported Gen2 OS Image. For more information, see https://aka.ms/TrustedLaunch-FAQ."
            )
        if self.capabilities(size).get("TrustedLaunchDisabled", "False") == "True":
            raise ArmError(
                f"The VM size '{size.name}' is not supported for creation of VMs and Virtual Machine Scale Set "
                "with 'TrustedLaunch' security type. For more information, see https://aka.ms/TrustedLaunch-FAQ"
            )

    def _cluster_sizes(self, vm: Entry) -> list[VmSize]:
        """The sizes a VM may move to (VirtualMachines_ListAvailableSizes): while it is allocated, those its
        hardware cluster offers (here: its own size's family, where not restricted); deallocated, every size of
        its region (learn.microsoft.com/azure/virtual-machines/sizes/resize-vm)."""
        location = vm.body["location"]
        if vm.meta["power"] == "deallocated":
            return list(catalog.VM_SIZES)
        family = catalog.SIZES_BY_NAME[vm.meta["size"].lower()].family
        return [
            s for s in catalog.VM_SIZES if s.family == family and (location, s.name.lower()) not in self.restrictions
        ]

    def available_sizes(self, group: str, name: str) -> list[dict]:
        """Shape of VirtualMachine_ListAvailableVmSizes.json."""
        with self.state.lock:
            vm = self.state.require(group, VM, name)
            return [
                {
                    "name": s.name,
                    "numberOfCores": s.vcpus,
                    "osDiskSizeInMB": 1047552,
                    "resourceDiskSizeInMB": s.temp_disk_mb,
                    "memoryInMB": int(float(s.memory_gb) * 1024),
                    "maxDataDiskCount": s.max_data_disks,
                }
                for s in self._cluster_sizes(vm)
            ]

    def _check_resize(self, vm: Entry, size: VmSize, properties: dict, nics: list[Entry]) -> None:
        """A new size for an existing VM: one of its cluster's while it runs (409 OperationNotAllowed, target
        vmSize, naming them: microsoft/service-fabric-issues 472, AutomatedLab/AutomatedLab 380); and, as at
        create, the image's generation, Trusted Launch and accelerated networking."""
        offered = self._cluster_sizes(vm)
        if size not in offered:
            raise Conflict(
                f"Unable to resize the VM '{vm.name}' because the requested size {size.name} is not available in "
                f"the current hardware cluster. The available sizes are: {','.join(s.name for s in offered)}. Read "
                "more on VM resizing strategy at https://aka.ms/azure-resizevm.",
                code="OperationNotAllowed",
                target="vmSize",
            )
        self._check_image_fits(size, vm.meta["image"], {})
        self._check_security(size, vm.meta["image"], properties)
        self._check_accelerated_networking(size, nics, vm.id)

    def _check_accelerated_networking(self, size: VmSize, nics: list[Entry], vm_id: str) -> None:
        """A NIC with accelerated networking needs a size whose SKU has AcceleratedNetworkingEnabled."""
        if self.capabilities(size).get("AcceleratedNetworkingEnabled") == "True":
            return
        for nic in nics:
            if nic.properties.get("enableAcceleratedNetworking"):
                # 400 (Azure/Moodle PR 124, Azure/acs-engine PR 3600 quote Azure's message).
                raise ArmError(
                    f"Virtual Machine size {size.name} is not in the allowed list of VM sizes for accelerated "
                    f"networking to be enabled on Network Interface {vm_id}.",
                    code="VMSizeIsNotPermittedToEnableAcceleratedNetworking",
                )

    def _resolve_nics(self, properties: dict, vm_id: str) -> list[Entry]:
        references = (properties.get("networkProfile") or {}).get("networkInterfaces") or []
        if not references:
            raise InvalidParameter("At least one network interface is required.", target="networkProfile")
        nics = []
        for reference in references:
            nic = self.network.require_nic(reference.get("id"), vm_id)
            owner = nic.meta.get("virtual_machine")
            if owner and owner.lower() != vm_id.lower():
                raise InUse(
                    f"Network Interface {nic.id} is used by existing resource {owner}. In order to delete "
                    "the network interface, it must be dissociated from the resource. To learn more, see "
                    "aka.ms/deletenic.",
                    code="NicInUse",
                )
            nics.append(nic)
        return nics

    def _vm_properties(self, entry: Entry, properties: dict, os_profile: dict, existing: Entry | None) -> dict:
        built = copy.deepcopy(properties)
        built.pop("userData", None)
        shown_profile = {k: v for k, v in copy.deepcopy(os_profile).items() if k not in ("customData", "adminPassword")}
        shown_profile.setdefault("computerName", entry.name)
        shown_profile.setdefault("secrets", [])
        shown_profile.setdefault("allowExtensionOperations", True)
        shown_profile.setdefault("requireGuestProvisionSignal", True)
        built["osProfile"] = shown_profile
        storage = built.setdefault("storageProfile", {})
        image = entry.meta["image"]
        if existing is not None:
            storage["osDisk"] = copy.deepcopy(existing.body["properties"]["storageProfile"]["osDisk"])
            storage["imageReference"] = copy.deepcopy(existing.body["properties"]["storageProfile"]["imageReference"])
        else:
            os_disk = storage.setdefault("osDisk", {})
            os_disk.setdefault("name", f"{entry.name}_OsDisk_1_{entry.meta['vmId'].replace('-', '')}")
            os_disk.setdefault("createOption", "FromImage")
            os_disk.setdefault("caching", "ReadWrite")
            os_disk.setdefault("deleteOption", "Detach")
            os_disk.setdefault("diskSizeGB", 150)
            os_disk["osType"] = "Linux"
            managed = os_disk.setdefault("managedDisk", {})
            managed.setdefault("storageAccountType", "Premium_LRS")
            managed["id"] = self.state.resource_id(self.state.groups[entry.group].name, DISK, os_disk["name"])
            if image["version"]:
                storage["imageReference"] = {**image["reference"], "exactVersion": image["version"]}
        storage.setdefault("dataDisks", [])
        network = built.setdefault("networkProfile", {})
        for reference in network.get("networkInterfaces", []):
            reference["id"] = self.state.find(reference["id"]).id
        built["vmId"] = entry.meta["vmId"]
        built["timeCreated"] = entry.meta["timeCreated"]
        return built

    def _attach_os_disk(self, vm: Entry) -> None:
        """The VM's OS disk as a Microsoft.Compute/disks resource: made on create, re-owned on update."""
        os_disk = vm.body["properties"]["storageProfile"]["osDisk"]
        disk_id = os_disk["managedDisk"]["id"]
        disk = self.state.find(disk_id)
        if disk is not None:
            disk.body["managedBy"] = vm.id
            disk.properties["diskState"] = "Attached"
            return
        image = vm.meta["image"]
        account = os_disk["managedDisk"]["storageAccountType"]
        disk_body: dict = {
            "id": disk_id,
            "name": os_disk["name"],
            "type": DISK,
            "location": vm.body["location"],
            "managedBy": vm.id,
            "sku": {"name": account, "tier": "Premium" if account.startswith("Premium") else "Standard"},
            "properties": {
                "osType": "Linux",
                "hyperVGeneration": image["generation"],
                "creationData": {
                    "createOption": "FromImage",
                    "imageReference": {"id": image.get("version_id") or image["reference"].get("id")},
                },
                "diskSizeGB": os_disk["diskSizeGB"],
                "diskState": "Attached",
                "provisioningState": "Succeeded",
                "timeCreated": utc_now(),
                "uniqueId": new_guid(),
                "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
                "networkAccessPolicy": "AllowAll",
            },
        }
        if vm.body.get("zones"):
            disk_body["zones"] = list(vm.body["zones"])
        self.state.store(Entry(DISK, vm.group, disk_body))

    # -- virtual machines: operations' completion ----------------------------------------------

    def _boot_spec(self, vm: Entry) -> BootSpec:
        properties = vm.body["properties"]
        os_profile = properties.get("osProfile") or {}
        keys = ((os_profile.get("linuxConfiguration") or {}).get("ssh") or {}).get("publicKeys") or []
        address = private = None
        for reference in properties["networkProfile"]["networkInterfaces"]:
            nic = self.state.find(reference["id"])
            if nic is not None:
                address = address or self.network.public_address_of(nic)
                private = private or nic.properties["ipConfigurations"][0]["properties"].get("privateIPAddress")
        return BootSpec(
            vm_id=vm.id,
            admin_username=os_profile.get("adminUsername", ""),
            ssh_public_keys=[k["keyData"] for k in keys if k.get("keyData")],
            custom_data=vm.meta["custom_data"],
            public_ip=address,
            private_ip=private,
        )

    def _boot(self, vm: Entry, spec: BootSpec) -> None:
        if self.state.booter is None:
            return
        try:
            self.state.booter.boot(spec)
        except Exception as failure:
            raise ArmError(
                f"OS Provisioning for VM '{vm.name}' failed: {type(failure).__name__}: {failure}",
                code="OSProvisioningInternalError",
            ) from failure

    def release_vm(self, vm: Entry, *, keep_disk: bool = False) -> None:
        """Halt the VM through the booter: keeping its OS disk (deallocate, powerOff, restart, an eviction)
        if it is booted, or for good (delete, group delete) if it ever booted."""
        with self.state.lock:
            booted = vm.meta.get("booted")
            vm.meta["booted"] = False
        if self.state.booter is not None and (booted or (not keep_disk and vm.meta.get("provisioned"))):
            self.state.booter.halt(vm.id, keep_disk=keep_disk)

    def _finisher(self, vm: Entry, boot: bool, power: str, halt: bool = False) -> Callable[[], None]:
        generation = vm.generation

        def finish() -> None:
            with self.state.lock:
                if not self.state.is_current(vm, generation):
                    raise OperationCanceled("The operation was preempted by a later one.")
                spec = self._boot_spec(vm) if boot else None
            if halt:
                self.release_vm(vm, keep_disk=True)
            if spec is not None and not vm.meta["booted"]:
                self._boot(vm, spec)
                with self.state.lock:
                    vm.meta.update(booted=True, provisioned=True)
            with self.state.lock:
                vm.meta["power"] = power
                vm.meta.pop("failure", None)
                vm.set_state("Succeeded")

        return finish

    def _early_boot(self, vm: Entry) -> Callable[[], None]:
        """Boot the VM while its create still runs (FakeARM.boot_after); should the booter fail, the
        create's completion boots it again and fails as it would have."""
        generation = vm.generation

        def boot() -> None:
            with self.state.lock:
                if not self.state.is_current(vm, generation) or vm.meta["booted"]:
                    return
                spec = self._boot_spec(vm)
            try:
                self._boot(vm, spec)
            except ArmError:
                return
            with self.state.lock:
                vm.meta["booted"] = True

        return boot

    def _failer(self, vm: Entry, previous_power: str, before: Entry | None = None) -> Callable[[ArmError], None]:
        """A failed operation leaves the VM "Failed" in the power state it had before; a resize that could not be
        placed (`before`: the VM as it was), on the size it had."""

        def on_failure(error: ArmError) -> None:
            with self.state.lock:
                vm.meta.update(failure=error, power=previous_power)
                if before is not None:
                    vm.meta["size"] = before.meta["size"]
                    vm.body["properties"]["hardwareProfile"] = copy.deepcopy(
                        before.body["properties"]["hardwareProfile"]
                    )
                vm.set_state("Failed")

        return on_failure

    def act(self, group: str, name: str, action: str, failure: ArmError | None):
        """POST start | deallocate | powerOff | restart: returns the Operation."""
        spec = ACTIONS.get(action.lower())
        if spec is None:
            raise ArmError(
                f"The fake ARM does not serve VM action '{action}'.", code="NotImplementedInFakeARM", status=501
            )
        with self.state.lock:
            vm = self.state.require(group, VM, name)
            if vm.properties.get("provisioningState") == "Deleting":
                raise Conflict(
                    f"Operation '{action}' is not allowed on VM '{vm.name}' since the VM is marked for "
                    "deletion. You can only retry the Delete operation (or wait for an ongoing one to "
                    "complete).",
                    code="OperationNotAllowed",
                )
            size = catalog.SIZES_BY_NAME[vm.meta["size"].lower()]
            if spec.boots and vm.meta["power"] == "deallocated":
                self._check_quota(vm.body["location"], size, vm.meta["spot"])
                failure = failure or self._allocation(size)
            previous_power = vm.meta["power"]
            vm.meta["power"] = spec.transitional
            vm.set_state("Updating")
            return self.state.start_operation(
                VM,
                vm.body["location"],
                self._finisher(vm, spec.boots, spec.final, halt=spec.halts),
                failure=failure,
                on_failure=self._failer(vm, previous_power),
                pace=pacing.for_action(action),
            )

    def evict(self, vm_id: str) -> None:
        """Deallocate a Spot VM out of band, as Azure does when it wants the capacity back: no operation,
        no distinct status; the instance view just says PowerState/deallocated (DESIGN.md section 8,
        learn.microsoft.com/azure/virtual-machines/spot-vms, eviction policy Deallocate)."""
        with self.state.lock:
            vm = self.state.find(vm_id)
            if vm is None or not vm.meta["spot"]:
                raise ValueError(f"{vm_id} is not a Spot VM of this fake")
            if vm.body["properties"].get("evictionPolicy", "Deallocate").lower() != "deallocate":
                raise ValueError(f"{vm_id} is evicted by deletion (evictionPolicy Delete): delete it instead")
        self.release_vm(vm, keep_disk=True)
        with self.state.lock:
            vm.meta["power"] = "deallocated"

    # -- virtual machines: delete --------------------------------------------------------------

    def delete_vm(self, group: str, name: str, failure: ArmError | None) -> DeleteResult:
        state = self.state
        with state.lock:
            vm = state.lookup(group, VM, name)
            if vm is None:
                return DeleteResult(False)
            vm.set_state("Deleting")

            def finish() -> None:
                if state.find(vm.id) is not vm:
                    return
                self.release_vm(vm)
                with state.lock:
                    self._release_dependents(vm)
                    state.remove(vm)

            operation = state.start_operation(
                VM,
                vm.body["location"],
                finish,
                failure=failure,
                on_failure=self._failer(vm, vm.meta["power"]),
                pace=pacing.VM_DELETE,
            )
        return DeleteResult(True, operation)

    def _release_dependents(self, vm: Entry) -> None:
        """Delete or detach the OS disk and NICs, as their deleteOption says."""
        os_disk = vm.body["properties"]["storageProfile"]["osDisk"]
        disk = self.state.find(os_disk["managedDisk"]["id"])
        if disk is not None:
            if os_disk.get("deleteOption", "Detach").lower() == "delete":
                self.state.remove(disk)
            else:
                disk.body.pop("managedBy", None)
                disk.properties["diskState"] = "Unattached"
        for reference in vm.body["properties"]["networkProfile"]["networkInterfaces"]:
            nic = self.state.find(reference["id"])
            if nic is None:
                continue
            option = (reference.get("properties") or {}).get("deleteOption", "Detach")
            if option.lower() == "delete":
                self.network.delete_nic_with_vm(nic)
            else:
                self.network.detach_nic(nic)

    def delete_disk(self, group: str, name: str, failure: ArmError | None) -> DeleteResult:
        state = self.state
        with state.lock:
            disk = state.lookup(group, DISK, name)
            if disk is None:
                return DeleteResult(False)
            if disk.body.get("managedBy"):
                raise Conflict(
                    f"Disk {disk.name} is attached to VM {disk.body['managedBy']}.", code="OperationNotAllowed"
                )

            def finish() -> None:
                with state.lock:
                    if state.find(disk.id) is disk:
                        state.remove(disk)

            operation = state.start_operation(DISK, disk.body["location"], finish, failure=failure)
        return DeleteResult(True, operation)

    # -- virtual machines: views ---------------------------------------------------------------

    def vm_view(self, vm: Entry, expand: str | None = None) -> dict:
        view = copy.deepcopy(vm.body)
        expand = (expand or "").lower()
        if "instanceview" in expand:
            view["properties"]["instanceView"] = self.instance_view(vm)
        if "userdata" in expand and vm.meta.get("user_data"):
            view["properties"]["userData"] = vm.meta["user_data"]
        return view

    def get_vm(self, group: str, name: str, expand: str | None) -> dict:
        with self.state.lock:
            return self.vm_view(self.state.require(group, VM, name), expand)

    def get_instance_view(self, group: str, name: str) -> dict:
        with self.state.lock:
            return self.instance_view(self.state.require(group, VM, name))

    def instance_view(self, vm: Entry) -> dict:
        """VirtualMachines_InstanceView (shape of VirtualMachine_Get_InstanceView.json)."""
        now = utc_now()
        properties = vm.body["properties"]
        state = properties.get("provisioningState", "Succeeded")
        failure: ArmError | None = vm.meta.get("failure")
        if state == "Failed" and failure is not None:
            provisioning = {
                "code": f"ProvisioningState/failed/{failure.code}",
                "level": "Error",
                "displayStatus": "Provisioning failed",
                "message": failure.message,
                "time": now,
            }
        else:
            provisioning = {
                "code": f"ProvisioningState/{state.lower()}",
                "level": "Info",
                "displayStatus": "Provisioning succeeded" if state == "Succeeded" else state,
                "time": now,
            }
        power = vm.meta["power"]
        view: dict = {
            "computerName": properties["osProfile"].get("computerName", vm.name),
            "osName": "ubuntu",
            "osVersion": "22.04",
            "hyperVGeneration": vm.meta["image"]["generation"],
            "disks": [
                {
                    "name": properties["storageProfile"]["osDisk"]["name"],
                    "statuses": [
                        {
                            "code": "ProvisioningState/succeeded",
                            "level": "Info",
                            "displayStatus": "Provisioning succeeded",
                            "time": now,
                        }
                    ],
                }
            ],
            "statuses": [
                provisioning,
                {"code": f"PowerState/{power}", "level": "Info", "displayStatus": _POWER_DISPLAY[power]},
            ],
        }
        if power == "running":
            view["vmAgent"] = {
                "vmAgentVersion": "2.13.1.1",
                "extensionHandlers": [],
                "statuses": [
                    {
                        "code": "ProvisioningState/succeeded",
                        "level": "Info",
                        "displayStatus": "Ready",
                        "message": "Guest Agent is running",
                        "time": now,
                    }
                ],
            }
        return view
