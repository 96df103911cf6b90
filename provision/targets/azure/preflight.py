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

    def describe(self) -> str:
        plan = "purchase plan " + self.image_plan["name"] if self.image_plan else "no purchase plan"
        return (
            f"{self.vcpus} vCPUs of {self.family} ({self.free_vcpus} free); image version {self.image_version}, {plan}"
        )


def _norm(name: str) -> str:
    return name.lower().replace(" ", "")


def check(call, compute, region: str, size: str, image: tuple[str, str, str, str]) -> Offer:
    """The size is offered in the region, not restricted, within quota; the image exists.

    `call(action, fn, *args)` runs an SDK call and turns its errors into AzureErrors.
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
    vcpus = int(next((c.value for c in sku.capabilities or [] if c.name == "vCPUs"), 0))
    usages = {_norm(u.name.value): u for u in call(f"read quotas in {region}", compute.usage.list, region)}
    free = []
    for key, label in ((sku.family, sku.family), ("cores", "the regional vCPU total")):
        usage = usages.get(_norm(key))
        if usage is None:
            continue
        available = usage.limit - usage.current_value
        free.append(available)
        if available < vcpus:
            raise AzureError(
                f"quota: {label} in {region} allows {max(available, 0)} of the {vcpus} vCPUs "
                f"needed; {QUOTA_FIX} or --size",
                "QuotaExceeded",
            )
    version, plan = _image(call, compute, region, image)
    return Offer(region, size, sku.family, vcpus, min(free, default=0), version, plan, _zones(sku))


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
    """The concrete image version and its purchase plan, or an error naming the URN."""
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
    plan = found.plan
    return found.name, ({"name": plan.name, "publisher": plan.publisher, "product": plan.product} if plan else None)
