"""Checks that cost one second before a write, instead of a failure after five minutes."""

from dataclasses import dataclass

from provision.targets.azure.errors import AzureError

QUOTA_FIX = "request more in the portal (Subscriptions > Usage + quotas) or try another --region"


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


def _norm(name: str) -> str:
    return name.lower().replace(" ", "")


def check(
    call,
    compute,
    region: str,
    size: str,
    image: tuple[str, str, str, str],
    *,
    os_disk_gb: int,
    trusted_launch: bool,
    spot: bool = False,
    nodes: int = 1,
) -> Offer:
    """The size is offered in the region (as Spot, when asked for), not restricted, within quota; the image
    exists, the size boots it, the OS disk holds it, and Trusted Launch (when asked for) is allowed for both.

    `call(action, fn, *args)` runs an SDK call and turns its errors into AzureErrors. Several nodes need
    `nodes` times the size's vCPUs within each quota.
    """
    skus = call(
        f"list VM sizes in {region}",
        lambda: [
            s
            for s in compute.resource_skus.list(filter=f"location eq '{region}'")
            if s.resource_type == "virtualMachines"
        ],
    )
    if not skus:
        raise AzureError(
            f"region {region!r} offers no VM sizes to this subscription; check its name "
            "(`az account list-locations -o table`)",
            "LocationNotAvailable",
        )
    sku = next((s for s in skus if s.name.lower() == size.lower()), None)
    if sku is None:
        raise AzureError(
            f"size {size} is not offered in {region}; try another --region or --size",
            "SkuNotAvailable",
        )
    for restriction in sku.restrictions or []:
        if restriction.type == "Location":
            reason = getattr(restriction.reason_code, "value", restriction.reason_code)
            raise AzureError(
                f"size {size} is not available to this subscription in {region} "
                f"({reason}); try another --region or --size, or ask Azure "
                "support to enable it",
                "SkuNotAvailable",
            )
    capabilities = {c.name: c.value for c in sku.capabilities or []}
    if spot and capabilities.get("LowPriorityCapable", "").lower() != "true":
        raise AzureError(f"size {size} is not offered as Spot; drop --spot or choose another --size", "SkuNotAvailable")
    vcpus = int(capabilities.get("vCPUs", 0))
    needed = vcpus * nodes
    usages = {_norm(u.name.value): u for u in call(f"read quotas in {region}", compute.usage.list, region)}
    free = []
    for key, label in _quotas(sku.family, spot):
        usage = usages.get(_norm(key))
        if usage is None:
            continue
        available = usage.limit - usage.current_value
        free.append(available)
        if available < needed:
            nodes_text = f" ({nodes} nodes of {vcpus})" if nodes > 1 else ""
            raise AzureError(
                f"quota: {label} in {region} allows {max(available, 0)} of the {needed} vCPUs "
                f"needed{nodes_text}; {QUOTA_FIX} or --size",
                "QuotaExceeded",
            )
    found = _image(call, compute, region, image)
    _check_fit(size, capabilities, found, ":".join(image), os_disk_gb, trusted_launch)
    plan = found.plan
    return Offer(
        region,
        size,
        sku.family,
        vcpus,
        min(free, default=0),
        found.name,
        {"name": plan.name, "publisher": plan.publisher, "product": plan.product} if plan else None,
        _zones(sku),
        accelerated_networking=capabilities.get("AcceleratedNetworkingEnabled", "").lower() == "true",
    )


def _quotas(family: str, spot: bool) -> tuple[tuple[str, str], ...]:
    """(usage name, label) of the quotas a VM counts against. Spot VMs count against one regional
    "Total Regional Low-priority vCPUs" quota instead of the family and regional ones
    (learn.microsoft.com/azure/virtual-machines/spot-vms, "Quota")."""
    if spot:
        return (("lowPriorityCores", "the regional Spot (low-priority) vCPU total"),)
    return ((family, family), ("cores", "the regional vCPU total"))


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
    # SetMarketplaceTerms.json: PUT the agreement back with accepted = true (synchronous, 200: never polled).
    body = {"properties": {**(terms.properties or {}), "accepted": True}}
    poller = call(
        "accept the image's marketplace terms",
        resource.resources.begin_create_or_update_by_id,
        rid,
        body,
        api_version=MARKETPLACE_API,
        polling=False,
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
