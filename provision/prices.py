"""What a VM and its OS disk cost, and where the figure came from.

Sources, best first: a week-old-at-most cache on disk; the Azure Retail Prices API (public, no sign-in;
PROVISION_PRICES_ENDPOINT points it elsewhere); an older cache; the table shipped with the kit. A price is
never worth failing a command for: any failure of the API falls back, and says so in the price's source.
"""

import json
import os
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from provision import price_table
from provision.state import StateStore

ENDPOINT = "https://prices.azure.com/api/retail/prices"
API = "Azure Retail Prices API"
SHIPPED = f"shipped table of {price_table.DATE}"
CACHE_FOR = timedelta(days=7)
CACHE_DIR, CACHE_FILE = "_prices", "cache.json"  # "_prices" can never be a deployment's name
TIMEOUT = 5.0  # seconds per request
ATTEMPTS = 3  # per page, on a 5xx or 429 only; a refused connection or a timeout falls back at once
MAX_PAGES = 20
# Standard SSD managed disk tiers and their sizes in GiB; a disk bills by the smallest tier that holds it
# (https://learn.microsoft.com/azure/virtual-machines/disks-types#standard-ssds).
DISK_TIERS = (
    *(("E1", 4), ("E2", 8), ("E3", 16), ("E4", 32), ("E6", 64), ("E10", 128)),
    *(("E15", 256), ("E20", 512), ("E30", 1024), ("E40", 2048), ("E50", 4096)),
)


@dataclass(frozen=True)
class Price:
    usd: float | None  # None: no source knew it
    source: str  # "Azure Retail Prices API", "cache of 2026-11-28", "shipped table of 2026-12-01"...
    indicative: bool = False  # a spot figure from the shipped table: spot prices move daily

    def text(self, unit: str) -> str:
        if self.usd is None:
            return "unknown"
        figure = f"${self.usd:.3f}/{unit}" if unit == "h" else f"${self.usd:.2f}/{unit}"
        return f"~{figure}" if self.indicative else figure


@dataclass(frozen=True)
class Quote:
    """The prices of one size in one region, with the OS disk that bills even while it is deallocated."""

    size: str
    region: str
    hourly: Price  # pay-as-you-go
    spot: Price
    disk: Price  # per month
    disk_tier: str

    def compute(self, spot: bool) -> Price:
        return self.spot if spot else self.hourly

    def sources(self, *, spot: bool = True) -> str:
        """Where the figures shown came from, each source once (a shipped spot figure's says it is indicative)."""
        compute = self.spot if spot and self.spot.usd is not None else self.hourly
        return compute.source if self.disk.source == self.hourly.source else f"{compute.source}; {self.disk.source}"


def disk_tier(disk_gb: int) -> str:
    return next((tier for tier, gib in DISK_TIERS if gib >= disk_gb), DISK_TIERS[-1][0])


class Prices:
    """Looks prices up, once per run per item; remembers when the API is down so as not to wait twice."""

    def __init__(self, store: StateStore | None = None, endpoint: str | None = None, *, offline: bool = False):
        self.endpoint = endpoint or os.environ.get("PROVISION_PRICES_ENDPOINT") or ENDPOINT
        self.store = store or StateStore()
        self._api_down = offline  # offline: never ask the API
        self._found: dict[str, tuple] = {}  # key -> (value, source) found this run

    def quote(self, size: str, region: str, disk_gb: int) -> Quote:
        compute, compute_source = self._values(
            f"vm:{region}:{size}",
            f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' and armSkuName eq '{size}' "
            "and priceType eq 'Consumption'",
            _compute_prices,
            price_table.COMPUTE.get(region, {}).get(size),
        )
        tier = disk_tier(disk_gb)
        disk, disk_source = self._values(
            f"disk:{region}:{tier}",
            f"serviceName eq 'Storage' and armRegionName eq '{region}' and skuName eq '{tier} LRS' "
            "and priceType eq 'Consumption'",
            lambda rows: _disk_price(rows, tier),
            price_table.DISK.get(region, {}).get(tier),
        )
        hourly, spot = compute if compute else (None, None)
        shipped_spot = spot is not None and compute_source == SHIPPED
        return Quote(
            size,
            region,
            Price(hourly, compute_source),
            Price(spot, f"{SHIPPED}, {price_table.SPOT_NOTE}", True) if shipped_spot else Price(spot, compute_source),
            Price(disk, disk_source),
            tier,
        )

    def _values(self, key: str, query: str, parse: Callable[[list[dict]], object], shipped: object):
        if key not in self._found:
            self._found[key] = self._lookup(key, query, parse, shipped)
        return self._found[key]

    def _lookup(self, key: str, query: str, parse: Callable[[list[dict]], object], shipped: object):
        """(value, source): fresh cache, else the API, else stale cache, else the shipped table."""
        cache = self._read_cache()
        cached = cache.get(key)
        fetched = datetime.fromisoformat(cached["fetched"]) if cached else None
        if cached and datetime.now(UTC) - fetched < CACHE_FOR:
            return cached["value"], f"cache of {fetched.date()}"
        if not self._api_down:
            try:
                value = parse(self._fetch(query))
            except Exception:  # unreachable, refused, slow, malformed: fall back, say so
                self._api_down = True
            else:
                cache[key] = {"fetched": datetime.now(UTC).isoformat(timespec="seconds"), "value": value}
                self.store.write_secret(CACHE_DIR, CACHE_FILE, json.dumps(cache, indent=1, sort_keys=True))
                return value, API
        if cached:
            return cached["value"], f"cache of {fetched.date()}"
        if shipped is not None:
            return shipped, SHIPPED
        return None, "no price known"

    def _read_cache(self) -> dict:
        try:
            return json.loads(self.store.read_secret(CACHE_DIR, CACHE_FILE) or "{}")
        except ValueError:
            return {}  # a damaged cache is no cache

    def _fetch(self, query: str) -> list[dict]:
        """Every row the filter matches, page by page (NextPageLink)."""
        url: str | None = f"{self.endpoint}?" + urllib.parse.urlencode(
            {"currencyCode": "'USD'", "$filter": query}, quote_via=urllib.parse.quote
        )
        rows: list[dict] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return rows
            page = _get(url)
            rows += page.get("Items") or []
            url = page.get("NextPageLink")
        raise ValueError(f"more than {MAX_PAGES} pages of prices")


def _get(url: str) -> dict:
    import urllib.error  # here: with http.client, ssl and email they cost every command ~15 ms; few ask prices
    import urllib.request

    for attempt in range(ATTEMPTS):
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            if (e.code < 500 and e.code != 429) or attempt == ATTEMPTS - 1:
                raise
        time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _latest(rows: list[dict]) -> list[dict]:
    """Rows oldest first, so that a newer price of the same meter wins."""
    return sorted(rows, key=lambda row: row.get("effectiveStartDate", ""))


def _compute_prices(rows: list[dict]) -> tuple[float | None, float | None] | None:
    """(pay-as-you-go, spot) $/hour from Linux rows; None when the size is not sold there."""
    hourly = spot = None
    for row in _latest(rows):
        # Windows rows say " Windows" in productName, H100 rows " Win" (DESIGN.md 8).
        if row.get("unitOfMeasure") != "1 Hour" or " Win" in row.get("productName", ""):
            continue
        names = f"{row.get('skuName', '')} {row.get('meterName', '')}"
        if "Low Priority" in names:
            continue
        if "Spot" in names:
            spot = row["retailPrice"]
        else:
            hourly = row["retailPrice"]
    return None if hourly is None and spot is None else (hourly, spot)


def _disk_price(rows: list[dict], tier: str) -> float | None:
    """$/month of a Standard SSD LRS disk of this tier (its meter "E15 LRS Disk"; not its operations)."""
    price = None
    for row in _latest(rows):
        if row.get("meterName") == f"{tier} LRS Disk" and row.get("unitOfMeasure") == "1/Month":
            price = row["retailPrice"]
    return price


def describe(quote: Quote, *, spot: bool) -> str:
    """One line: what the machine costs an hour, and what its disk costs a month, and from where."""
    if spot:
        compute = f"{quote.spot.text('h')} spot (pay-as-you-go {quote.hourly.text('h')})"
    else:
        compute = quote.hourly.text("h")
    return (
        f"{quote.size} in {quote.region}: {compute}; OS disk {quote.disk_tier} {quote.disk.text('month')}, "
        f"billed while the VM is deallocated too (prices: {quote.sources(spot=spot)})"
    )
