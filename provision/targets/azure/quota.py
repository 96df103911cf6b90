"""Quota: what a size needs of which quota and what a region allows (the one place that knows families and
usages: preflight, `provision quota` and `plan --quota` read it), and asking Azure for more.

A VM counts against its size's family quota and the regional vCPU total; a Spot VM only against the regional
low-priority total (learn.microsoft.com/azure/virtual-machines/spot-vms, "Quota"). Compute's usages list gives
each one's limit and use, one list per region (DESIGN.md 6 and 9: a new subscription has its GPU families at 0).

Increases go through Azure's Quota API (Microsoft.Quota, azure-mgmt-quota, api-version 2025-09-01) at the scope
subscriptions/{s}/providers/Microsoft.Compute/locations/{region}, as Azure documents it: read the quota's limit
and usage, PUT the new limit (202 with a `location` on an operationsStatus URL whose last segment is the request's
id, or 200 when done at once), then read quotaRequests/{id} until it is Succeeded or Failed
(../shared/azure-rest-examples/Microsoft.Quota).
"""

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from provision.targets import QuotaRequest
from provision.targets.azure import polling
from provision.targets.azure.errors import AzureError

REGIONAL = "cores"
SPOT = "lowPriorityCores"
LABELS = {"cores": "the regional vCPU total", "lowprioritycores": "the regional Spot (low-priority) vCPU total"}
SHORT_LABELS = {"cores": "regional total", "lowprioritycores": "Spot total"}
READERS = 16  # regions read at once


def norm(name: str) -> str:
    """Families compare the way Azure's own tools compare them: lower case, spaces removed."""
    return name.lower().replace(" ", "")


@dataclass(frozen=True)
class Usage:
    """One quota of a region as compute's usages list reports it."""

    name: str  # Azure's name: a family ("standardNCASv3_T4Family"), "cores" or "lowPriorityCores"
    limit: int
    current: int

    @property
    def free(self) -> int:
        return self.limit - self.current


@dataclass(frozen=True)
class Region:
    """What a region offers this subscription: its VM SKUs (by lower-case size) and its usages (by norm)."""

    name: str
    skus: dict[str, Any]
    usages: dict[str, Usage]

    def usage(self, name: str) -> Usage | None:
        return self.usages.get(norm(name))


def capabilities(sku) -> dict[str, str]:
    return {c.name: c.value for c in sku.capabilities or []}


@dataclass(frozen=True)
class Fit:
    """Whether `up` fits a size in a region: its vCPUs times the nodes within every quota its VMs count against."""

    size: str
    region: str
    nodes: int = 1
    spot: bool = False
    sku: Any = None  # the size's ResourceSku there (None: not offered)
    unavailable: AzureError | None = None  # why the size cannot be had there at all, quota aside
    why: str = ""  # the same in a few words, for a table
    quotas: tuple[Usage, ...] = ()  # what its VMs count against, as the region reports them

    @property
    def family(self) -> str:
        return self.sku.family if self.sku is not None else ""

    @property
    def vcpus(self) -> int:
        return int(capabilities(self.sku).get("vCPUs", 0)) if self.sku is not None else 0

    @property
    def needed(self) -> int:
        return self.vcpus * self.nodes

    @property
    def short(self) -> Usage | None:
        """The first quota that cannot hold what `up` needs."""
        return next((u for u in self.quotas if u.free < self.needed), None)

    @property
    def fits(self) -> bool:
        return self.unavailable is None and self.short is None

    @property
    def lacks_quota(self) -> bool:
        return self.unavailable is None and self.short is not None

    @property
    def free(self) -> int:
        return min((u.free for u in self.quotas), default=0)

    def shortfall(self) -> str:
        """ "Standard_NC4as_T4_v3 in eastus: family standardNCASv3_T4Family has a limit of 0 vCPUs, 0 in use,
        and up needs 4"."""
        usage = self.short
        assert usage is not None
        kind = " as Spot" * self.spot
        if norm(usage.name) == norm(self.family):
            where, subject = f"{self.size}{kind} in {self.region}", f"family {self.family}"
        else:
            where, subject = f"{self.size}{kind} (family {self.family}) in {self.region}", LABELS[norm(usage.name)]
        nodes = f" ({self.nodes} nodes of {self.vcpus})" if self.nodes > 1 else ""
        return (
            f"{where}: {subject} has a limit of {usage.limit} vCPUs, {usage.current} in use, "
            f"and up needs {self.needed}{nodes}"
        )

    def request_command(self) -> str:
        """The `provision quota request` that asks for what `up` needs here."""
        return (
            f"provision quota request --size {self.size} --region {self.region}"
            + " --spot" * self.spot
            + (f" --vcpus {self.needed}" if self.nodes > 1 else "")
        )

    def quota_error(self) -> AzureError:
        return AzureError(f"no quota for {self.shortfall()}; run `{self.request_command()}`", "QuotaExceeded")

    @property
    def verdict(self) -> str:
        """A few words for a table: yes, or why not."""
        if self.unavailable is not None:
            return self.why
        usage = self.short
        if usage is None:
            return "yes"
        return "no: " + SHORT_LABELS.get(norm(usage.name), "family quota")

    def quota_names(self) -> tuple[str, ...]:
        """The quotas the VMs count against, by Azure's names."""
        return (SPOT,) if self.spot else (self.family, REGIONAL)


def fit(region: Region, size: str, *, nodes: int = 1, spot: bool = False) -> Fit:
    """How a size of `nodes` VMs fits a region's offer and quotas (a quota the region does not report is not
    checked)."""
    place = dict(size=size, region=region.name, nodes=nodes, spot=spot)

    def cannot(why: str, message: str, code: str, sku: Any = None) -> Fit:
        return Fit(**place, sku=sku, unavailable=AzureError(message, code), why=why)

    if not region.skus:
        return cannot(
            "no VM sizes here",
            f"region {region.name!r} offers no VM sizes to this subscription; check its name "
            "(`az account list-locations -o table`)",
            "LocationNotAvailable",
        )
    sku = region.skus.get(size.lower())
    if sku is None:
        return cannot(
            "not offered",
            f"size {size} is not offered in {region.name}; try another --region or --size",
            "SkuNotAvailable",
        )
    for restriction in sku.restrictions or []:
        if restriction.type == "Location":
            reason = getattr(restriction.reason_code, "value", restriction.reason_code)
            return cannot(
                f"restricted ({reason})",
                f"size {size} is not available to this subscription in {region.name} ({reason}); try another "
                "--region or --size, or ask Azure support to enable it",
                "SkuNotAvailable",
                sku,
            )
    if spot and capabilities(sku).get("LowPriorityCapable", "").lower() != "true":
        return cannot(
            "not offered as Spot",
            f"size {size} is not offered as Spot; drop --spot or choose another --size",
            "SkuNotAvailable",
            sku,
        )
    offered = Fit(**place, sku=sku)
    return replace(offered, quotas=tuple(u for u in map(region.usage, offered.quota_names()) if u is not None))


def choose(fits: list[Fit], note: Callable[[str], None]) -> list[Fit]:
    """The choices `up` tries, in order: those without quota are left out, each with a note naming where `up`
    goes instead. When no choice fits and one lacks quota, the error names the first that lacks it and the command
    that asks for it."""
    lacking = [f for f in fits if f.lacks_quota]
    kept = [f for f in fits if not f.lacks_quota]
    room = next((f for f in kept if f.fits), None)
    if lacking and room is None:
        first = lacking[0]
        if len(fits) == 1:
            raise first.quota_error()
        reasons = "; ".join(
            f"{f.size} in {f.region}: {f.unavailable.code if f.unavailable else 'QuotaExceeded'}" for f in fits
        )
        raise AzureError(
            f"none of the {len(fits)} size and region choices could be had ({reasons}); {first.quota_error()}",
            "QuotaExceeded",
        )
    for short in lacking:
        note(f"no quota for {short.shortfall()}; {room.size} in {room.region} has room, so up goes there")
    return kept


def row(region: Region, size: str, nodes: int) -> dict:
    """One line of `provision quota`: the family, its limit and use, the regional and Spot totals, and whether
    `up` fits (as a regular VM and as Spot)."""
    regular, spot = fit(region, size, nodes=nodes), fit(region, size, nodes=nodes, spot=True)
    family = region.usage(regular.family) if regular.family else None
    regional, low = region.usage(REGIONAL), region.usage(SPOT)
    return {
        "size": size,
        "region": region.name,
        "family": regular.family,
        "vcpus": regular.vcpus,
        "nodes": nodes,
        "needed": regular.needed,
        "limit": family.limit if family else None,
        "in_use": family.current if family else None,
        "regional_limit": regional.limit if regional else None,
        "regional_in_use": regional.current if regional else None,
        "spot_limit": low.limit if low else None,
        "spot_in_use": low.current if low else None,
        "fits": regular.fits,
        "spot_fits": spot.fits,
        "verdict": regular.verdict,
        "request": regular.request_command() if regular.lacks_quota else "",
    }


# -- asking for more (Microsoft.Quota) ------------------------------------------------------------------


def scope(subscription: str, region: str) -> str:
    return f"subscriptions/{subscription}/providers/Microsoft.Compute/locations/{region}"


def request_body(name: str, limit: int) -> dict:
    """Quota_CreateOrUpdate's body: the quota's new limit (putComputeOneSkuQuotaRequest.json)."""
    return {"properties": {"limit": {"limitObjectType": "LimitValue", "value": limit}, "name": {"value": name}}}


def settle(
    look: Callable[[], list[QuotaRequest]],
    bound: float,
    retry_after: float,
    longest: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[QuotaRequest]:
    """Look at once, then again until none is pending or `bound` seconds have passed: after Azure's Retry-After
    when it gave one, else after a growing delay (polling.delay), never past the bound."""
    deadline = clock() + bound
    polls = 0
    while True:
        found = look()
        polls += 1
        left = deadline - clock()
        if not any(r.pending for r in found) or left <= 0:
            return found
        sleep(min(retry_after or polling.delay(polls, longest), left))


class Quotas:
    """A subscription's quotas through the SDK: what regions offer and allow, and asking for more.

    `call(action, fn, *args)` runs an SDK call and turns its errors into AzureErrors; `clients` has the compute
    and quota clients.
    """

    def __init__(self, call: Callable[..., Any], clients):
        self._call = call
        self._clients = clients

    def region(self, region: str, skus: list | None = None) -> Region:
        """The region's VM SKUs (unless given) and its usages: two reads; no usages where no size is offered."""
        compute = self._clients.compute
        if skus is None:
            skus = self._call(
                f"list VM sizes in {region}", lambda: list(compute.resource_skus.list(filter=f"location eq '{region}'"))
            )
        by_size = {s.name.lower(): s for s in skus if s.resource_type == "virtualMachines"}
        if not by_size:
            return Region(region, {}, {})
        listed = self._call(f"read quotas in {region}", lambda: list(compute.usage.list(region)))
        usages = {norm(u.name.value): Usage(u.name.value, u.limit, u.current_value) for u in listed}
        return Region(region, by_size, usages)

    def regions(self, regions: Iterable[str] | None, sizes: Iterable[str] = ()) -> list[Region]:
        """Each region read at once beside the others, in the order given; None: every region where one of
        `sizes` is listed for this subscription (from one unfiltered list of every region's SKUs, in which each
        VM size names its region)."""
        skus: dict[str, list] = {}
        if regions is None:
            wanted = {size.lower() for size in sizes}
            compute = self._clients.compute
            for sku in self._call("list VM sizes in every region", lambda: list(compute.resource_skus.list())):
                if sku.resource_type == "virtualMachines" and sku.locations:
                    skus.setdefault(sku.locations[0].lower(), []).append(sku)
            regions = sorted(r for r, found in skus.items() if wanted & {s.name.lower() for s in found})
        regions = list(regions)
        _ = self._clients.compute  # made once here, before the threads share it
        with ThreadPoolExecutor(max(1, min(len(regions), READERS))) as pool:
            return list(pool.map(lambda r: self.region(r, skus.get(r)), regions))

    def rows(self, regions: Iterable[str] | None, sizes: tuple[str, ...], nodes: int) -> list[dict]:
        """A row per size and region (every region that lists a size when `regions` is None): `provision quota`."""
        found = self.regions(regions, sizes)
        rows = [row(region, size, nodes) for size in sizes for region in found]
        return rows if regions is not None else [r for r in rows if r["family"]]  # only where the size is listed

    def fit(self, region: str, size: str, *, nodes: int, spot: bool) -> Fit:
        """Whether `up` fits `size` in `region` now (read from Azure)."""
        return fit(self.region(region), size, nodes=nodes, spot=spot)

    def answers(self, region: str, filed: list[tuple[str, float]], bound: float, longest: float) -> list[QuotaRequest]:
        """The requests filed (id, Retry-After) as Azure reports them once none is pending, or after `bound` s."""
        retry_after = max(wait for _, wait in filed)
        return settle(lambda: [self.read(region, request_id) for request_id, _ in filed], bound, retry_after, longest)

    def _scope(self, region: str) -> str:
        return scope(self._clients.subscription, region)

    def needs(self, fit: Fit, vcpus: int) -> list[tuple[str, int]]:
        """(quota, new limit) for each quota the size counts against whose limit is below its use plus `vcpus`,
        as Azure's Quota API reports them (Quota_Get, Usages_Get)."""
        client, region, at, found = self._clients.quota, fit.region, self._scope(fit.region), []
        for name in fit.quota_names():
            limit = self._call(f"read quota {name} in {region}", client.quota.get, name, at).properties.limit.value
            used = self._call(f"read the use of {name} in {region}", client.usages.get, name, at)
            if used.properties.usages.value + vcpus > limit:
                found.append((name, used.properties.usages.value + vcpus))
        return found

    def file(self, region: str, name: str, limit: int) -> tuple[str, float]:
        """PUT the quota's new limit (Quota_CreateOrUpdate); the request's id (the last segment of the
        `location` Azure answers with) and the seconds Azure asks to wait before reading it (0: none given)."""
        answers: list = []
        try:
            self._call(
                f"request {limit} vCPUs of quota {name} in {region}",
                self._clients.quota.quota.begin_create_or_update,
                name,
                self._scope(region),
                request_body(name, limit),
                polling=False,  # followed on quotaRequests/{id}, where Azure says how it ended
                raw_response_hook=answers.append,
            )
        except AzureError as e:
            if e.code != "AuthorizationFailed":
                raise
            raise AzureError(
                f"you may not request quota in subscription {self._clients.subscription} (AuthorizationFailed on "
                "Microsoft.Quota/quotas/write); ask an owner of the subscription for the Quota Request Operator role, "
                "or Contributor, on it",
                e.code,
            ) from None
        headers = answers[-1].http_response.headers
        location = headers.get("Location")
        if not location:
            raise AzureError(f"Azure took the request for quota {name} in {region} but named no request id")
        try:
            wait = float(headers.get("Retry-After") or 0)
        except ValueError:
            wait = 0.0
        return urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1], wait

    def read(self, region: str, request_id: str) -> QuotaRequest:
        """The request as Azure reports it now (QuotaRequestStatus_Get)."""
        found = self._call(
            f"read quota request {request_id} in {region}",
            self._clients.quota.quota_request_status.get,
            request_id,
            self._scope(region),
        )
        properties = found.properties
        value = (properties.value or [None])[0]  # one per quota asked for: the kit asks for one at a time
        error = properties.error
        return QuotaRequest(
            id=found.name or request_id,
            region=region,
            quota=value.name.value if value is not None and value.name else "",
            limit=value.limit.value if value is not None and value.limit else 0,
            state=str(getattr(properties.provisioning_state, "value", properties.provisioning_state) or ""),
            message=properties.message or "",
            error=f"{error.code}: {error.message}" if error is not None else "",
        )
