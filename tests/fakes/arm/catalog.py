"""Static facts the fake ARM serves: regions, VM sizes, quota names, platform images.

Values are realistic (taken from what Azure publishes for these regions and sizes), shaped
like the official REST examples; nothing here changes at run time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    name: str
    display_name: str
    geography_group: str
    geography: str
    physical_location: str
    longitude: str
    latitude: str
    paired_region: str
    category: str = "Recommended"


REGIONS: tuple[Region, ...] = (
    Region("eastus", "East US", "US", "United States", "Virginia", "-79.8164", "37.3719", "westus"),
    Region("eastus2", "East US 2", "US", "United States", "Virginia", "-78.3889", "36.6681", "centralus"),
    Region("centralus", "Central US", "US", "United States", "Iowa", "-93.6208", "41.5908", "eastus2"),
    Region("southcentralus", "South Central US", "US", "United States", "Texas", "-98.5", "29.4167", "northcentralus"),
    Region("westus", "West US", "US", "United States", "California", "-122.417", "37.783", "eastus", "Other"),
    Region("westus2", "West US 2", "US", "United States", "Washington", "-119.852", "47.233", "westcentralus"),
    Region("westus3", "West US 3", "US", "United States", "Phoenix", "-112.074036", "33.448376", "eastus"),
    Region("canadacentral", "Canada Central", "Canada", "Canada", "Toronto", "-79.383", "43.653", "canadaeast"),
    Region("northeurope", "North Europe", "Europe", "Europe", "Ireland", "-6.2597", "53.3478", "westeurope"),
    Region("westeurope", "West Europe", "Europe", "Europe", "Netherlands", "4.9", "52.3667", "northeurope"),
    Region("uksouth", "UK South", "Europe", "United Kingdom", "London", "-0.799", "50.941", "ukwest"),
    Region("swedencentral", "Sweden Central", "Europe", "Sweden", "Gävle", "17.14127", "60.67488", "swedensouth"),
    Region(
        "germanywestcentral",
        "Germany West Central",
        "Europe",
        "Germany",
        "Frankfurt",
        "8.682127",
        "50.110924",
        "germanynorth",
    ),
    Region("japaneast", "Japan East", "Asia Pacific", "Japan", "Tokyo, Saitama", "139.77", "35.68", "japanwest"),
    Region("koreacentral", "Korea Central", "Asia Pacific", "Korea", "Seoul", "126.978", "37.5665", "koreasouth"),
    Region(
        "southeastasia", "Southeast Asia", "Asia Pacific", "Asia Pacific", "Singapore", "103.833", "1.283", "eastasia"
    ),
    Region("centralindia", "Central India", "Asia Pacific", "India", "Pune", "73.9197", "18.5822", "southindia"),
    Region(
        "australiaeast",
        "Australia East",
        "Asia Pacific",
        "Australia",
        "New South Wales",
        "151.2094",
        "-33.86",
        "australiasoutheast",
    ),
)

REGION_NAMES = frozenset(region.name for region in REGIONS)


def normalize_location(location: str) -> str:
    """ARM's canonical location: lower case, no spaces ("East US" -> "eastus")."""
    return location.replace(" ", "").lower()


def location_body(region: Region, subscription_id: str) -> dict:
    """One entry of Subscriptions_ListLocations, as the real API returns it."""
    base = f"/subscriptions/{subscription_id}/locations"
    return {
        "id": f"{base}/{region.name}",
        "name": region.name,
        "type": "Region",
        "displayName": region.display_name,
        "regionalDisplayName": f"({region.geography_group}) {region.display_name}",
        "metadata": {
            "regionType": "Physical",
            "regionCategory": region.category,
            "geography": region.geography,
            "geographyGroup": region.geography_group,
            "longitude": region.longitude,
            "latitude": region.latitude,
            "physicalLocation": region.physical_location,
            "pairedRegion": [{"name": region.paired_region, "id": f"{base}/{region.paired_region}"}],
        },
    }


@dataclass(frozen=True)
class VmSize:
    name: str
    family: str
    vcpus: int
    memory_gb: str
    gpus: int
    max_data_disks: int
    temp_disk_mb: int
    max_nics: int
    hyper_v_generations: str  # "V1,V2" or "V2": which image generations the size boots
    vcpus_per_core: int
    accelerated_networking: bool = True

    @property
    def size(self) -> str:
        return self.name.removeprefix("Standard_")


# NCasT4_v3 boots Gen1 and Gen2 images; NC_A100_v4 and NCads_H100_v5 only Gen2 (DESIGN.md 6; ARM refuses a
# Gen1 image on NC24ads_A100_v4: loft-sh/devpod issue 731). All three support accelerated networking
# (DESIGN.md 8). None reports TrustedLaunchDisabled=True; a test sets it with FakeARM.set_capability.
VM_SIZES: tuple[VmSize, ...] = (
    VmSize("Standard_NC4as_T4_v3", "standardNCASv3_T4Family", 4, "28", 1, 8, 184320, 2, "V1,V2", 1),
    VmSize("Standard_NC8as_T4_v3", "standardNCASv3_T4Family", 8, "56", 1, 16, 368640, 4, "V1,V2", 1),
    VmSize("Standard_NC16as_T4_v3", "standardNCASv3_T4Family", 16, "110", 1, 32, 368640, 8, "V1,V2", 1),
    VmSize("Standard_NC64as_T4_v3", "standardNCASv3_T4Family", 64, "440", 4, 32, 2949120, 8, "V1,V2", 1),
    VmSize("Standard_NC24ads_A100_v4", "standardNCADSA100v4Family", 24, "220", 1, 8, 65536, 2, "V2", 1),
    VmSize("Standard_NC40ads_H100_v5", "StandardNCadsH100v5Family", 40, "320", 1, 12, 262144, 2, "V2", 1),
    VmSize("Standard_D4s_v5", "standardDSv5Family", 4, "16", 0, 8, 0, 2, "V1,V2", 2),
)

SIZES_BY_NAME = {size.name.lower(): size for size in VM_SIZES}

# The fake's current Spot price ($/hour, Linux, eastus's figures for every region; DESIGN.md 8), below which
# a Spot VM's billingProfile.maxPrice is refused. Sizes not listed are not checked.
SPOT_PRICES = {"standard_nc4as_t4_v3": 0.0789, "standard_nc24ads_a100_v4": 0.44}

ZONES = ("1", "2", "3")


def capabilities(size: VmSize) -> dict[str, str]:
    """The size's ResourceSkus capabilities, in the order ListAvailableResourceSkus.json shows them."""
    table = {
        "MaxResourceVolumeMB": str(size.temp_disk_mb),
        "OSVhdSizeMB": "1047552",
        "vCPUs": str(size.vcpus),
        "MemoryPreservingMaintenanceSupported": "True",
        "HyperVGenerations": size.hyper_v_generations,
        "MemoryGB": size.memory_gb,
        "MaxDataDiskCount": str(size.max_data_disks),
        "CpuArchitectureType": "x64",
        "LowPriorityCapable": "True",
        "PremiumIO": "True",
        "VMDeploymentTypes": "IaaS",
        "vCPUsAvailable": str(size.vcpus),
        "vCPUsPerCore": str(size.vcpus_per_core),
        "EphemeralOSDiskSupported": "True" if size.temp_disk_mb else "False",
        "AcceleratedNetworkingEnabled": str(size.accelerated_networking),
        "RdmaEnabled": "False",
        "MaxNetworkInterfaces": str(size.max_nics),
    }
    if size.gpus:
        table = {**dict(list(table.items())[:4]), "GPUs": str(size.gpus), **dict(list(table.items())[4:])}
    return table


def sku_body(size: VmSize, location: str, restriction_reason: str | None, capability_values: dict[str, str]) -> dict:
    """One entry of ResourceSkus_List (shape of ListAvailableResourceSkus.json)."""
    restrictions = []
    if restriction_reason:
        restrictions.append(
            {
                "type": "Location",
                "values": [location],
                "restrictionInfo": {"locations": [location]},
                "reasonCode": restriction_reason,
            }
        )
    return {
        "resourceType": "virtualMachines",
        "name": size.name,
        "tier": "Standard",
        "size": size.size,
        "family": size.family,
        "locations": [location],
        "locationInfo": [{"location": location, "zones": list(ZONES), "zoneDetails": []}],
        "capabilities": [{"name": name, "value": value} for name, value in capability_values.items()],
        "restrictions": restrictions,
    }


@dataclass(frozen=True)
class Usage:
    """One Usage_List entry: name.value, name.localizedValue, limit, currentValue."""

    name: str
    label: str
    limit: int
    current: int = 0


# Defaults a new subscription is given here (generous, so tests need not set quotas). Families
# compare the way Azure's own tools do: lower case, spaces removed.
DEFAULT_USAGES: tuple[Usage, ...] = (
    Usage("availabilitySets", "Availability Sets", 2500),
    Usage("cores", "Total Regional vCPUs", 100),
    Usage("virtualMachines", "Virtual Machines", 25000),
    Usage("virtualMachineScaleSets", "Virtual Machine Scale Sets", 2500),
    Usage("lowPriorityCores", "Total Regional Low-priority vCPUs", 100),
    Usage("standardDSv5Family", "Standard DSv5 Family vCPUs", 100),
    Usage("standardNCASv3_T4Family", "Standard NCASv3_T4 Family vCPUs", 100),
    Usage("standardNCADSA100v4Family", "Standard NCADS_A100_v4 Family vCPUs", 100),
    Usage("StandardNCadsH100v5Family", "Standard NCadsH100v5 Family vCPUs", 100),
)


def family_key(name: str) -> str:
    return name.replace(" ", "").lower()


@dataclass
class PlatformImage:
    publisher: str
    offer: str
    sku: str
    versions: list[str]
    plan: dict | None = None
    hyper_v_generation: str = "V2"
    os_disk_gb: int = 150  # osDiskImage.sizeInGb: a VM's OS disk may not be smaller

    @property
    def key(self) -> tuple[str, str, str]:
        return image_key(self.publisher, self.offer, self.sku)

    def resolve(self, version: str) -> str | None:
        if version.lower() == "latest":
            return max(self.versions, key=version_key)
        return version if version in self.versions else None

    def version_id(self, subscription_id: str, location: str, version: str) -> str:
        return (
            f"/Subscriptions/{subscription_id}/Providers/Microsoft.Compute/Locations/{location}"
            f"/Publishers/{self.publisher}/ArtifactTypes/VMImage/Offers/{self.offer}"
            f"/Skus/{self.sku}/Versions/{version}"
        )

    def version_body(self, subscription_id: str, location: str, version: str) -> dict:
        """VirtualMachineImages_Get (shape of VirtualMachineImage_Get_MaximumSet_Gen.json)."""
        properties: dict = {
            "hyperVGeneration": self.hyper_v_generation,
            "architecture": "x64",
            # sizeInGb and sizeInBytes: returned by Azure though its spec lists only operatingSystem
            # (MicrosoftDocs/feedback issue 2227).
            "osDiskImage": {
                "operatingSystem": "Linux",
                "sizeInGb": self.os_disk_gb,
                "sizeInBytes": self.os_disk_gb << 30,
            },
            "dataDiskImages": [],
            "automaticOSUpgradeProperties": {"automaticOSUpgradeSupported": False},
            "disallowed": {"vmDiskType": "None"},
            "features": [
                {"name": "IsAcceleratedNetworkSupported", "value": "True"},
                {"name": "DiskControllerTypes", "value": "SCSI, NVMe"},
                # Gen1 images cannot use Trusted Launch (azure-cli issue 17599).
                *(
                    [{"name": "SecurityType", "value": "TrustedLaunchSupported"}]
                    if self.hyper_v_generation == "V2"
                    else []
                ),
            ],
            "imageDeprecationStatus": {"imageState": "Active"},
        }
        if self.plan:
            properties["plan"] = dict(self.plan)
        return {
            "properties": properties,
            "location": location,
            "name": version,
            "id": self.version_id(subscription_id, location, version),
        }


def version_key(version: str) -> tuple[int, ...]:
    """Image versions order numerically part by part ("25.05.29" > "9.1.0")."""
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def image_key(publisher: str, offer: str, sku: str) -> tuple[str, str, str]:
    return publisher.lower(), offer.lower(), sku.lower()


def default_images() -> list[PlatformImage]:
    return [PlatformImage("microsoft-dsvm", "ubuntu-2204", "2204-gen2", ["24.11.19", "25.02.18", "25.05.29"])]
