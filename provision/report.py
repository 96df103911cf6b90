"""Read-only views: `status`, `list` and `plan`."""

from dataclasses import replace
from datetime import UTC, datetime

from provision import idle_view, power
from provision.deployment import settings_for
from provision.errors import ProvisionError, UsageError
from provision.output import Output
from provision.plan import Owner, redacted, summary_rows
from provision.prices import Price, Quote
from provision.settings import Settings, load
from provision.state import Record, StateStore
from provision.targets import CLOUD, cloud_target, target_for


def age(created: str, now: datetime | None = None) -> str:
    """ "3 d 4 h", "2 h 5 min" or "7 min" since an ISO timestamp."""
    minutes = int(((now or datetime.now(UTC)) - datetime.fromisoformat(created)).total_seconds() // 60)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {mins} min" if hours else f"{mins} min"


def _environment(record: Record) -> str:
    env = record.environment
    return f"{env['name']} (kernel {env['kernel']}, from {env['file']})" if env else ""


def status(name: str, store: StateStore) -> dict:
    """The record and the machine's live state, flat, for a table or JSON."""
    from provision import tunnel

    record = store.require(name)
    machine = record.machine or {}
    facts = {
        "name": record.name,
        "target": record.target,
        "phase": record.phase,
        "region": record.settings.get("region", ""),
        "size": record.settings.get("size", ""),
        "resource_group": record.settings.get("resource_group", ""),
        "public_ip": machine.get("host", ""),
        "fqdn": machine.get("fqdn") or "",
        "created": record.created,
        "age": age(record.created),
        "jupyter_port": (record.jupyter or {}).get("port", ""),
        "access": record.settings.get("access", "tunnel"),
        "tls_sha256": (record.jupyter or {}).get("tls_sha256", ""),
        "tunnel": "open" if tunnel.is_alive(store, name) else "closed",
        "last_check": (record.check or {}).get("summary", "never run"),
        "environment": _environment(record),
    }
    if record.idle is not None:
        facts["idle_policy"] = idle_view.policy(record)
    if record.machine:
        live = target_for(settings_for(record)).status(record)
        shown = _observed(store, record, live.get("power_state", ""))
        facts.update(live, power_state=idle_view.shown_state(record, shown))
        facts.update(idle_view.agent_facts(record, shown))
    facts.update(_costs(record))
    facts.update(_nodes(record))
    return facts


def _nodes(record: Record) -> dict:
    """Several nodes: each one's private address (head first) and the last all-reduce check across them."""
    if len(record.nodes) < 2:
        return {}
    return {
        "nodes": node_addresses(record),
        "last_allreduce": (record.allreduce or {}).get("summary", "never run"),
    }


def node_addresses(record: Record) -> str:
    """ "2: head 10.0.0.4, node1 10.0.0.5"; "1" for a single machine."""
    if len(record.nodes) < 2:
        return "1"
    named = (f"{'head' if k == 0 else f'node{k}'} {n.get('private_ip') or '?'}" for k, n in enumerate(record.nodes))
    return f"{len(record.nodes)}: {', '.join(named)}"


def _observed(store: StateStore, record: Record, live: str) -> str:
    """The power state to show; an eviction seen for the first time enters the record's history, unless another
    command holds the record (the next look notes it)."""
    shown, changed = power.observe(record, live)
    if changed:
        try:
            with store.lock(record.name, wait=1):
                fresh = store.require(record.name)
                if power.observe(fresh, live)[1]:
                    store.save(fresh)
        except ProvisionError:
            pass
    return shown


def _costs(record: Record) -> dict:
    """$/hour, the compute cost so far by the power history, and the last power change."""
    facts = {}
    if record.power:
        change = record.power[-1]
        facts["power_changed"] = f"{change['state']} at {change['at']} ({change['reason']})"
    price = power.hourly(record)
    if price is not None:
        spot = " Spot" if record.price.get("spot") else ""
        facts["usd_per_hour"] = f"{price:.3f}{spot} ({record.price.get('source')})"
        now = datetime.now(UTC)
        cost, hours = power.cost_so_far(record, now), power.running_hours(record, now)
        facts["compute_cost_so_far"] = f"${cost:.2f} for {hours:.2f} h running (the disk aside)"
    return facts


def deployments(store: StateStore, *, cloud: bool) -> list[dict]:
    """A row per recorded deployment; with cloud, also tagged groups that no record knows."""
    rows = []
    for name in store.names():
        record = store.require(name)
        rows.append(
            {
                "name": name,
                "target": record.target,
                "region": record.settings.get("region", ""),
                "size": record.settings.get("size", ""),
                "phase": record.phase,
                "state": _state(store, record),
                "usd_per_hour": power.hourly(record) or "",
                "age": age(record.created),
                "check": "passed" if (record.check or {}).get("passed") else "-",
                "nodes": node_addresses(record),
            }
        )
    if cloud:
        known = {row["name"] for row in rows}
        for group in cloud_target(load({"target": CLOUD})).list_groups():
            if group["deployment"] not in known:
                rows.append(
                    {
                        "name": group["deployment"],
                        "target": CLOUD,
                        "region": group["region"],
                        "size": "",
                        "phase": f"no local record (group {group['resource_group']})",
                        "state": "",
                        "usd_per_hour": "",
                        "age": age(group["created"]) if group["created"] else "",
                        "check": "-",
                        "nodes": "",
                    }
                )
    return rows


def _state(store: StateStore, record: Record) -> str:
    """The machine's power state as its target reports it now (`evicted` included); "unknown" when it cannot."""
    if record.machine is None:
        return "-"
    try:
        live = target_for(settings_for(record)).status(record).get("power_state", "")
    except ProvisionError:
        return "unknown"
    return _observed(store, record, live)


def running_total(rows: list[dict]) -> str:
    """One line: what everything running costs an hour, by the prices recorded at `up`."""
    running = [row for row in rows if row.get("state") == "running" and row.get("usd_per_hour") != ""]
    total = sum(row["usd_per_hour"] for row in running)
    return f"running now: {len(running)} priced deployment(s), ${total:.3f}/hour in all"


# Where allow_ip is unset, `plan` sends nothing to find the caller's address: `up` detects it.
DETECTED_AT_UP = "your address, detected at `up`"
SIGNED_IN_AT_UP = Owner("your Azure identity, read at `up`")


def plan_table(settings: Settings, out: Output, *, as_json: bool, with_quota: bool = False) -> None:
    """What `up` would create and what it costs; sends nothing to Azure Resource Manager and does not look up
    this machine's address, nor to the prices API: prices come from the cache `up` keeps, or the shipped table.
    With `with_quota` it signs in and reads (only reads) each region's sizes and quota: does `up` fit there?"""
    if as_json and with_quota:
        raise UsageError("plan --quota shows a table; for quota as JSON, run `provision quota --json`")
    plan = cloud_target(replace(settings, allow_ip=settings.allow_ip or DETECTED_AT_UP)).plan(owner=SIGNED_IN_AT_UP)
    if as_json:
        out.json([{"kind": s.kind, "name": s.name, "id": s.id, "body": redacted(s.body)} for s in plan.every_step()])
        return
    title = f"provision up would create, in subscription {plan.subscription}:"
    out.table(["resource", "name", "settings"], summary_rows(plan), title=title)
    target = cloud_target(settings)
    quotes = target.quotes(offline=True)
    verdicts = {}
    if with_quota:
        with out.step("Sizes and quota (read from Azure now)"):
            verdicts = {(fit.size, fit.region): fit.verdict for fit in target.fits()}
    sources = sorted({quote.sources() for quote in quotes})
    columns = ["size", "region", "US$/hour", "spot US$/hour", "disk US$/month"]
    columns += ["up fits (quota now)"] * with_quota + ["source"] * (len(sources) > 1)

    def cells(quote: Quote) -> tuple[str, ...]:
        price = price_row(quote)
        fits = (verdicts.get((quote.size, quote.region), ""),) if with_quota else ()
        return (*price[:5], *fits, *price[5:])[: len(columns)]

    out.table(
        columns,
        [cells(quote) for quote in quotes],
        title=f"What it costs ({sources[0] if len(sources) == 1 else 'sources in the last column'}); "
        "a deallocated VM bills only its disk:",
    )


def price_row(quote: Quote) -> tuple[str, ...]:
    def usd(price: Price, digits: int) -> str:
        return "unknown" if price.usd is None else f"{price.usd:.{digits}f}"

    disk = f"{usd(quote.disk, 2)} ({quote.disk_tier})"
    return (quote.size, quote.region, usd(quote.hourly, 3), usd(quote.spot, 3), disk, quote.sources())
