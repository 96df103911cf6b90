"""A deployment's power history as the kit saw it (created, stopped, started, evicted) and what its hours cost.

Each entry of `Record.power` is {"state": running | deallocated | evicted, "at": ISO time, "reason": ...}; a
resize's adds the new size's `usd_per_hour` and the old one's (`was`): each period costs its own size's price.
Azure says nothing when it evicts a Spot VM (it is simply deallocated: DESIGN.md section 8), so an eviction
enters the history when a command first sees it; its hours until then count as running: an upper bound.
"""

from datetime import UTC, datetime

from provision.state import Record
from provision.targets import RUNNING

DEALLOCATED = "deallocated"
EVICTED = "evicted"
STARTABLE = ("deallocated", "stopped")  # Azure's power states `provision start` can bring back


def note(record: Record, state: str, reason: str, at: datetime | None = None, **price: float | None) -> None:
    """Add a change of power state to the record's history (the caller saves the record); a resize gives the
    prices before and after (usd_per_hour, was)."""
    when = (at or datetime.now(UTC)).isoformat(timespec="seconds")
    record.power.append({"state": state, "at": when, "reason": reason, **price})


def last(record: Record) -> str | None:
    return record.power[-1]["state"] if record.power else None


def observe(record: Record, live: str) -> tuple[str, bool]:
    """The state to show for what the cloud reports (`evicted` for a Spot VM deallocated that the kit did not
    stop), and whether the record changed: an eviction enters the history when first seen."""
    if live != DEALLOCATED or not record.settings.get("spot") or last(record) == DEALLOCATED:
        return live, False
    if last(record) == EVICTED:
        return EVICTED, False
    note(record, EVICTED, "eviction seen")
    return EVICTED, True


def running_hours(record: Record, now: datetime | None = None) -> float:
    """Hours the machine ran, by the history: from each `running` to the next other state, or to now."""
    return sum(hours for hours, _ in _periods(record, now))


def _periods(record: Record, now: datetime | None) -> list[tuple[float, float | None]]:
    """(hours, $/hour) of each running period by the history; a resize ends one period and begins the next at
    the new size's price. The first period's price is the one before the first resize, else the record's."""
    resized = [entry for entry in record.power if "usd_per_hour" in entry]
    price = resized[0].get("was") if resized else hourly(record)
    periods, since = [], None
    for entry in record.power:
        at = datetime.fromisoformat(entry["at"])
        if since is not None and (entry["state"] != RUNNING or "usd_per_hour" in entry):
            periods.append(((at - since).total_seconds() / 3600, price))
            since = None
        price = entry.get("usd_per_hour", price)
        if entry["state"] == RUNNING:
            since = since or at
    if since is not None:
        periods.append((((now or datetime.now(UTC)) - since).total_seconds() / 3600, price))
    return periods


def hourly(record: Record) -> float | None:
    """US$ an hour of this deployment's machine costs now, as recorded when it was made or resized (None: free
    or unknown)."""
    return (record.price or {}).get("usd_per_hour")


def cost_so_far(record: Record, now: datetime | None = None) -> float | None:
    """US$ its compute hours have cost so far (the disk aside), each period at its size's price; None when a
    price is unknown."""
    periods = _periods(record, now)
    if hourly(record) is None or any(price is None for _, price in periods):
        return None
    return sum(hours * price for hours, price in periods if price is not None)
