"""Prices: the Retail Prices API client against a fake server, its week-long cache, the shipped fallback."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from provision import price_table
from provision.prices import API, CACHE_DIR, CACHE_FILE, DISK_TIERS, Prices, describe, disk_tier
from provision.state import StateStore
from tests.fakes.prices import ROWS, FakePrices

T4 = "Standard_NC4as_T4_v3"
UNREACHABLE = "http://127.0.0.1:9/api/retail/prices"  # the discard port: nothing listens, refused at once


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path / "state")


@pytest.fixture(params=["listed", "reversed"])
def order(request):
    """The fake's rows as listed (each Linux row before those it must beat) and reversed (after them)."""
    return list if request.param == "listed" else lambda rows: list(reversed(rows))


@pytest.fixture
def fake(order):
    with FakePrices(order(ROWS)) as server:
        yield server


def test_linux_pay_as_you_go_and_spot_over_pages_skipping_windows_and_low_priority(fake, store):
    quote = Prices(store, fake.url).quote(T4, "eastus", 256)
    assert (quote.hourly.usd, quote.spot.usd) == (0.5, 0.0789)
    assert (quote.disk_tier, quote.disk.usd) == ("E15", 18.5)  # the disk's meter, not its operations
    assert quote.hourly.source == quote.disk.source == API
    # five T4 rows at two a page: three pages followed by NextPageLink
    assert sum("NC4as_T4_v3" in path for path in fake.requests) == 3
    assert "%24skip=4" in fake.requests[2]


def test_h100_windows_rows_say_win(fake, store):
    quote = Prices(store, fake.url).quote("Standard_NC40ads_H100_v5", "eastus", 256)
    assert quote.hourly.usd == 6.9


def test_the_newest_effective_price_wins_in_any_order(order, store):
    older = [
        {**row, "retailPrice": row["retailPrice"] * 3, "effectiveStartDate": "2019-01-01T00:00:00Z"}
        for row in ROWS
        if row["serviceName"] == "Virtual Machines" or row["meterName"] == "E15 LRS Disk"
    ]
    with FakePrices(order([*older, *ROWS]), page_size=100) as server:
        quote = Prices(store, server.url).quote(T4, "eastus", 256)
    assert (quote.hourly.usd, quote.spot.usd, quote.disk.usd) == (0.5, 0.0789, 18.5)


def test_a_500_then_success_is_retried(fake, store):
    fake.fail(1)
    quote = Prices(store, fake.url).quote(T4, "eastus", 256)
    assert quote.hourly.usd == 0.5 and quote.hourly.source == API
    assert len(fake.requests) == 1 + 3 + 1  # the 500, the three VM pages, the disk page


def test_server_down_falls_back_to_the_shipped_table_and_says_so(store):
    quote = Prices(store, UNREACHABLE).quote(T4, "eastus", 1024)
    assert (quote.hourly.usd, quote.spot.usd) == price_table.COMPUTE["eastus"][T4]
    assert (quote.disk_tier, quote.disk.usd) == ("E30", price_table.DISK["eastus"]["E30"])
    assert quote.hourly.source == quote.disk.source == f"shipped table of {price_table.DATE}"
    assert store.read_secret(CACHE_DIR, CACHE_FILE) is None  # nothing learnt, nothing cached


def test_a_shipped_spot_price_says_it_is_indicative_wherever_it_shows(store):
    quote = Prices(store, UNREACHABLE).quote(T4, "eastus", 1024)
    shipped = f"shipped table of {price_table.DATE}"
    assert quote.spot.source == f"{shipped}, {price_table.SPOT_NOTE}"  # what status and the max-price warning show
    assert quote.spot.text("h") == f"~${price_table.COMPUTE['eastus'][T4][1]:.3f}/h"  # the price question
    assert describe(quote, spot=True).endswith(f"(prices: {shipped}, {price_table.SPOT_NOTE})")
    assert describe(quote, spot=False).endswith(f"(prices: {shipped})")
    assert quote.hourly.text("h") == f"${price_table.COMPUTE['eastus'][T4][0]:.3f}/h"  # list prices hold


def test_an_unknown_region_with_no_api_has_no_price(store):
    quote = Prices(store, UNREACHABLE).quote(T4, "brazilsouth", 256)
    assert quote.hourly.usd is None and quote.hourly.source == "no price known"
    assert "unknown" in describe(quote, spot=False)


def test_a_fresh_cache_is_used_without_asking(fake, store):
    Prices(store, fake.url).quote(T4, "eastus", 256)
    asked = len(fake.requests)
    quote = Prices(store, fake.url).quote(T4, "eastus", 256)
    assert len(fake.requests) == asked
    assert quote.hourly.usd == 0.5 and quote.hourly.source == f"cache of {datetime.now(UTC).date()}"


def age_cache(store: StateStore, days: int) -> str:
    cache = json.loads(store.read_secret(CACHE_DIR, CACHE_FILE))
    then = datetime.now(UTC) - timedelta(days=days)
    for entry in cache.values():
        entry["fetched"] = then.isoformat(timespec="seconds")
    store.write_secret(CACHE_DIR, CACHE_FILE, json.dumps(cache))
    return str(then.date())


def test_a_week_old_cache_is_refreshed(fake, store):
    Prices(store, fake.url).quote(T4, "eastus", 256)
    age_cache(store, 8)
    fake.rows = [{**row, "retailPrice": 0.61} if row["meterName"] == "NC4as T4 v3" else row for row in fake.rows]
    asked = len(fake.requests)
    quote = Prices(store, fake.url).quote(T4, "eastus", 256)
    assert len(fake.requests) > asked
    assert quote.hourly.usd == 0.61 and quote.hourly.source == API


def test_a_stale_cache_beats_the_shipped_table_when_the_api_is_down(fake, store):
    Prices(store, fake.url).quote(T4, "eastus", 256)
    day = age_cache(store, 30)
    quote = Prices(store, UNREACHABLE).quote(T4, "eastus", 256)
    assert quote.hourly.usd == 0.5 and quote.hourly.source == f"cache of {day}"


def test_the_endpoint_comes_from_the_environment(fake, store, monkeypatch):
    monkeypatch.setenv("PROVISION_PRICES_ENDPOINT", fake.url)
    assert Prices(store).quote(T4, "eastus", 256).hourly.source == API


@pytest.mark.parametrize(("gb", "tier"), [(30, "E4"), (128, "E10"), (129, "E15"), (256, "E15"), (4095, "E50")])
def test_disk_tier_is_the_smallest_that_holds_the_disk(gb, tier):
    assert disk_tier(gb) == tier


def test_the_shipped_table_is_whole():
    for region, sizes in price_table.COMPUTE.items():
        for size, (hourly, spot) in sizes.items():
            assert spot is None or 0 < spot < hourly, (region, size)
    assert {tier for tiers in price_table.DISK.values() for tier in tiers} <= {tier for tier, _ in DISK_TIERS}


def test_describe_names_spot_and_pay_as_you_go(fake, store):
    line = describe(Prices(store, fake.url).quote(T4, "eastus", 256), spot=True)
    assert "$0.079/h spot (pay-as-you-go $0.500/h)" in line
    assert "E15 $18.50/month" in line and API in line
