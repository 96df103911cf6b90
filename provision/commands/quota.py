"""`provision quota`: where a GPU fits today, asking Azure for more, and how those requests stand.

The Azure side (sizes, families, usages, the Quota API) is provision/targets/azure/quota.py. The requests filed
from this machine are kept in the state directory (quota-requests.json, 0600), so that `quota status` can find
them again.
"""

import json
from datetime import UTC, datetime

from provision.errors import ProvisionError, UsageError
from provision.output import Output
from provision.settings import GPU_SIZES, Settings
from provision.state import StateStore
from provision.targets import QuotaRequest, cloud_target

REQUESTS_FILE = "quota-requests.json"
REQUESTS_LOCK = ".quota-requests"  # not a deployment name (those start with a letter)
KEPT = 100  # requests remembered here, newest last
SHOWN = 5  # `quota status` without an id: the latest requests filed here
PORTALS = {"public": "https://portal.azure.com", "china": "https://portal.azure.cn", "usgov": "https://portal.azure.us"}
MY_QUOTAS = "/#view/Microsoft_Azure_Capacity/QuotaMenuBlade/~/myQuotas"
NEW_SUPPORT_REQUEST = "/#create/Microsoft.Support"
COLUMNS = ["size", "region", "family", "needs", "limit", "in use", "regional", "spot", "up fits"]


def show(settings: Settings, out: Output, *, sizes: tuple[str, ...] | None, all_regions: bool, as_json: bool) -> None:
    """Each size (the kit's GPU sizes and the configured ones by default) in each region (the configured ones, or
    every region that lists the size): its family, your limit and use, the regional and Spot totals, and whether
    `up` fits. One usages list per region, every region read at once."""
    wanted = sizes or tuple(dict.fromkeys((*settings.sizes, *GPU_SIZES)))
    where = "every region" if all_regions else ", ".join(settings.regions)
    with out.step(f"Quota in {where}"):
        rows = cloud_target(settings).quotas.rows(None if all_regions else settings.regions, wanted, settings.nodes)
    if as_json:
        out.json(rows)
        return
    nodes = f"{settings.nodes} nodes" if settings.nodes > 1 else "1 node"
    out.table(
        COLUMNS,
        [_cells(row) for row in rows],
        title=f"Quota of subscription {settings.subscription} in vCPUs (needs: one VM's x {nodes})",
    )
    out.result(_advice(rows))


def _cells(row: dict) -> tuple[str, ...]:
    def of(limit, used) -> str:
        return "-" if limit is None else f"{limit} ({used} used)"

    verdict = row["verdict"] + ("; Spot fits" if row["family"] and not row["fits"] and row["spot_fits"] else "")
    return (
        row["size"],
        row["region"],
        row["family"] or "-",
        str(row["needed"] or "-"),
        "-" if row["limit"] is None else str(row["limit"]),
        "-" if row["in_use"] is None else str(row["in_use"]),
        of(row["regional_limit"], row["regional_in_use"]),
        of(row["spot_limit"], row["spot_in_use"]),
        verdict,
    )


def _advice(rows: list[dict]) -> str:
    """What to do next, in one line."""
    fitting = next((row for row in rows if row["fits"]), None)
    if fitting is not None:
        size, region = fitting["size"], fitting["region"]
        return f"up fits {size} in {region}: `provision up --size {size} --region {region}`"
    lacking = next((row for row in rows if row["request"]), None)
    if lacking is not None:
        return (
            f"no room yet: `{lacking['request']}` asks Azure for {lacking['needed']} vCPUs of {lacking['family']} "
            f"in {lacking['region']}"
        )
    return "none of these sizes is offered to you in these regions; `provision quota --all-regions` looks everywhere"


def request(settings: Settings, out: Output, store: StateStore, *, vcpus: int | None, spot: bool, wait: float) -> None:
    """Ask Azure for what `up` needs of `settings.size` in `settings.region` (or `vcpus`), for each quota that
    lacks it (the family and the regional total, or the Spot total); wait for the answers at most `wait` s."""
    if vcpus is not None and vcpus < 1:
        raise UsageError(f"--vcpus must be 1 or more, not {vcpus}")
    if wait < 0:
        raise UsageError(f"--wait must be 0 seconds or more, not {wait:g}")
    size, region = settings.size, settings.region
    quotas = cloud_target(settings).quotas
    with out.step(f"Size {size} in {region}"):
        choice = quotas.fit(region, size, nodes=settings.nodes, spot=spot)
    if choice.unavailable is not None:
        raise choice.unavailable
    wanted = vcpus or choice.needed
    with out.step(f"Your quota for {wanted} vCPUs of {size}{' as Spot' * spot} in {region}"):
        needs = quotas.needs(choice, wanted)
    if not needs:
        names = " and ".join(choice.quota_names())
        out.result(f"nothing to ask: {names} in {region} already allow {wanted} more vCPUs")
        return
    filed: list[tuple[str, float]] = []
    for name, limit in needs:
        with out.step(f"Asking Azure for a limit of {limit} vCPUs on {name} in {region}"):
            request_id, retry_after = quotas.file(region, name, limit)
        _remember(store, settings, QuotaRequest(request_id, region, name, limit, "Accepted"), size=size)
        filed.append((request_id, retry_after))
    with out.step(f"Waiting for Azure's answer (at most {wait:g} s)"):
        found = quotas.answers(region, filed, wait, settings.poll_interval)
    for answer in found:
        _remember(store, settings, answer)
    _report(found, settings, out)


def status(settings: Settings, out: Output, store: StateStore, *, request_id: str | None) -> None:
    """The request (or the latest ones filed here for this subscription) as Azure reports it now. A request
    filed elsewhere is looked for in `settings.region`."""
    mine = [entry for entry in _filed(store) if entry["subscription"] == settings.subscription]
    if request_id is not None:
        known = next((e for e in mine if e["id"].lower() == request_id.lower()), None)
        asked = [(known["region"] if known else settings.region, request_id)]
    else:
        asked = [(entry["region"], entry["id"]) for entry in mine[-SHOWN:]]
    if not asked:
        out.result(
            f"no quota requests filed from here for subscription {settings.subscription}; "
            "`provision quota` shows where you have room"
        )
        return
    quotas = cloud_target(settings).quotas
    found = [quotas.read(region, asked_id) for region, asked_id in asked]
    for answer in found:
        _remember(store, settings, answer)
    _report(found, settings, out, refusal_fails=False)


def describe(found: QuotaRequest, cloud: str) -> str:
    """One line: approved with the new limit, pending with where to follow it, or refused with Azure's reason."""
    portal = PORTALS.get(cloud, PORTALS["public"])
    asked = f"a limit of {found.limit} vCPUs on {found.quota} in {found.region}"
    if found.approved:
        return f"approved: {found.quota} in {found.region} now allows {found.limit} vCPUs (request {found.id})"
    if found.pending:
        return (
            f"pending: Azure is still deciding on request {found.id} ({asked}: {found.message or found.state}); "
            f"`provision quota status {found.id}` shows where it stands, as does {portal}{MY_QUOTAS}"
        )
    return (
        f"refused: Azure declined request {found.id} ({asked}): {found.error or found.message or found.state}; "
        f"ask for it in a support request: {portal}{NEW_SUPPORT_REQUEST}"
    )


def _report(found: list[QuotaRequest], settings: Settings, out: Output, *, refusal_fails: bool = True) -> None:
    """A line per request; with refusal_fails, a refusal is the command's error."""
    refused = [answer for answer in found if refusal_fails and not (answer.approved or answer.pending)]
    for answer in found:
        if answer not in refused:
            out.result(describe(answer, settings.cloud))
    if refused:
        raise ProvisionError("; ".join(describe(answer, settings.cloud) for answer in refused))


def _filed(store: StateStore) -> list[dict]:
    return json.loads(store.read_own(REQUESTS_FILE) or "[]")


def _remember(store: StateStore, settings: Settings, found: QuotaRequest, *, size: str | None = None) -> None:
    """Keep a request filed here for `size` in the state directory, or the state last read of one kept."""
    with store.lock(REQUESTS_LOCK):
        entries = _filed(store)
        entry = next((e for e in entries if e["id"].lower() == found.id.lower()), None)
        if entry is None and size is None:  # not filed from here
            return
        if entry is None:
            entry = {
                "id": found.id,
                "subscription": settings.subscription,
                "region": found.region,
                "quota": found.quota,
                "limit": found.limit,
                "size": size,
                "filed": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            entries.append(entry)
        entry["state"] = found.state
        store.write_own(REQUESTS_FILE, json.dumps(entries[-KEPT:], indent=2) + "\n")
