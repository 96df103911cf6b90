"""Checks that cost one second before a write, instead of a failure after five minutes."""

from dataclasses import dataclass

from provision.targets.azure import quota
from provision.targets.azure.errors import AzureError


@dataclass(frozen=True)
class Offer:
    """What preflight learned about a size in a region."""

    region: str
    size: str
    family: str
    vcpus: int
    free_vcpus: int
    image_version: str
    image_plan: dict | None  # the purchase plan the VM body must name, if the image has one
    zones: tuple[str, ...] = ()  # availability zones that offer the size here
    accelerated_networking: bool = False  # the size's SKU has AcceleratedNetworkingEnabled

    def describe(self) -> str:
        plan = "purchase plan " + self.image_plan["name"] if self.image_plan else "no purchase plan"
        return (
            f"{self.vcpus} vCPUs of {self.family} ({self.free_vcpus} free); image version {self.image_version}, {plan}"
        )


def check(
    call,
    compute,
    fit: quota.Fit,
    image: tuple[str, str, str, str],
    *,
    os_disk_gb: int,
    trusted_launch: bool,
) -> Offer:
    """The size is offered in the region (as Spot, when asked for) and not restricted (its quota was weighed
    before, by quota.choose); the image exists, the size boots it, the OS disk holds it, and Trusted Launch (when
    asked for) is allowed for both.

    `call(action, fn, *args)` runs an SDK call and turns its errors into AzureErrors.
    """
    if fit.unavailable is not None:
        raise fit.unavailable
    found = _image(call, compute, fit.region, image)
    capabilities = quota.capabilities(fit.sku)
    _check_fit(fit.size, capabilities, found, ":".join(image), os_disk_gb, trusted_launch)
    plan = found.plan
    return Offer(
        fit.region,
        fit.size,
        fit.family,
        fit.vcpus,
        fit.free,
        found.name,
        {"name": plan.name, "publisher": plan.publisher, "product": plan.product} if plan else None,
        _zones(fit.sku),
        accelerated_networking=capabilities.get("AcceleratedNetworkingEnabled", "").lower() == "true",
    )


def _check_fit(size: str, capabilities: dict, found, urn: str, os_disk_gb: int, trusted_launch: bool) -> None:
    """What ARM would refuse at the VM's PUT, told now: generation, OS disk size, Trusted Launch."""
    properties = found.properties
    generation = str(getattr(properties.hyper_v_generation, "value", properties.hyper_v_generation) or "V1")
    generations = [g.strip() for g in capabilities.get("HyperVGenerations", "V1").split(",")]
    if generation not in generations:
        raise AzureError(
            f"size {size} boots only {'/'.join(generations)} images but image {urn} is {generation}; "
            "choose a Gen2 image (a -gen2 SKU) or another --size",
            "HyperVGenerationMismatch",
        )
    # Azure returns osDiskImage.sizeInGb though its spec does not list it (MicrosoftDocs/feedback 2227).
    image_gb = (properties.os_disk_image or {}).get("sizeInGb")
    if image_gb is not None and os_disk_gb < int(image_gb):
        raise AzureError(
            f"--os-disk-gb {os_disk_gb} is smaller than image {urn}'s {image_gb} GB disk; "
            f"use --os-disk-gb {image_gb} or more",
            "OsDiskTooSmall",
        )
    if not trusted_launch:
        return
    if generation != "V2":
        raise AzureError(
            f"--trusted-launch needs a Gen2 image and {urn} is {generation}; "
            "choose a Gen2 image or drop --trusted-launch",
            "TrustedLaunchNotSupported",
        )
    if capabilities.get("TrustedLaunchDisabled", "").lower() == "true":
        raise AzureError(
            f"size {size} does not allow Trusted Launch; drop --trusted-launch or choose another --size",
            "TrustedLaunchNotSupported",
        )


MARKETPLACE_API = "2021-01-01"


def terms_id(subscription: str, plan: dict) -> str:
    """The marketplace agreement of an image plan (GetMarketplaceTerms.json)."""
    return (
        f"/subscriptions/{subscription}/providers/Microsoft.MarketplaceOrdering/offerTypes/virtualmachine"
        f"/publishers/{plan['publisher']}/offers/{plan['product']}/plans/{plan['name']}/agreements/current"
    )


def ensure_terms(call, resource, subscription: str, plan: dict, image: tuple[str, str, str, str], accept: bool) -> bool:
    """The plan's marketplace terms are accepted for the subscription, or accepted now when `accept`.

    Returns True when this call accepted them; raises a one-line error naming the command otherwise.
    """
    rid = terms_id(subscription, plan)
    terms = call("read the image's marketplace terms", resource.resources.get_by_id, rid, api_version=MARKETPLACE_API)
    if (terms.properties or {}).get("accepted"):
        return False
    if not accept:
        urn = ":".join(image)
        raise AzureError(
            f"image {urn} has purchase plan {plan['name']} whose marketplace terms this subscription has not "
            f"accepted; read them at {(terms.properties or {}).get('licenseTextLink', 'the Azure portal')}, then "
            f"run `provision up --accept-terms` (or `az vm image terms accept --urn {urn}`)",
            "MarketplaceTermsNotAccepted",
        )
    # SetMarketplaceTerms.json: PUT the agreement back with accepted = true.
    body = {"properties": {**(terms.properties or {}), "accepted": True}}
    poller = call(
        "accept the image's marketplace terms",
        resource.resources.begin_create_or_update_by_id,
        rid,
        body,
        api_version=MARKETPLACE_API,
    )
    call("accept the image's marketplace terms", poller.result)
    return True


def _zones(sku) -> tuple[str, ...]:
    """The zones of the SKU's location, less those restricted for this subscription."""
    offered = [zone for info in sku.location_info or [] for zone in info.zones or []]
    restricted = {
        zone
        for r in sku.restrictions or []
        if r.type == "Zone" and r.restriction_info
        for zone in r.restriction_info.zones or []
    }
    return tuple(sorted(set(offered) - restricted))


def _image(call, compute, region: str, image: tuple[str, str, str, str]):
    """The concrete image version (VirtualMachineImage), or an error naming the URN."""
    from azure.core.exceptions import ResourceNotFoundError

    publisher, offer, sku, version = image
    images = compute.virtual_machine_images
    urn = ":".join(image)
    missing = AzureError(
        f"image {urn} is not found in {region}; check --image "
        f"(`az vm image list --publisher {publisher} --all -o table`)",
        "ImageNotFound",
    )

    def resolve():
        try:
            if version != "latest":
                return images.get(region, publisher, offer, sku, version)
            versions = images.list(region, publisher, offer, sku, top=1, orderby="name desc")
            return images.get(region, publisher, offer, sku, versions[0].name) if versions else None
        except ResourceNotFoundError:
            return None

    found = call(f"look up image {urn}", resolve)
    if found is None:
        raise missing
    return found
