"""A deployment's power history as the kit saw it (created, stopped, started, evicted) and what its hours cost.

Each entry of `Record.power` is {"state": running | deallocated | evicted, "at": ISO time, "reason": ...}.
Azure says nothing when it evicts a Spot VM (it is simply deallocated: DESIGN.md section 8), so an eviction
enters the history when a command first sees it; its hours until then count as running: an upper bound.
"""

from datetime import UTC, datetime

from provision.state import Record
from provision.targets import RUNNING

DEALLOCATED = "deallocated"
EVICTED = "evicted"
STARTABLE = ("deallocated", "stopped")  # Azure's power states `provision start` can bring back


def note(record: Record, state: str, reason: str, at: datetime | None = None) -> None:
    """Add a change of power state to the record's history (the caller saves the record)."""
    when = (at or datetime.now(UTC)).isoformat(timespec="seconds")
    record.power.append({"state": state, "at": when, "reason": reason})


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
    hours, since = 0.0, None
    for entry in record.power:
        at = datetime.fromisoformat(entry["at"])
        if entry["state"] == RUNNING:
            since = since or at
        elif since is not None:
            hours += (at - since).total_seconds() / 3600
            since = None
    if since is not None:
        hours += ((now or datetime.now(UTC)) - since).total_seconds() / 3600
    return hours


def hourly(record: Record) -> float | None:
    """US$ an hour of this deployment's machine costs, as recorded when it was made (None: free or unknown)."""
    return (record.price or {}).get("usd_per_hour")


def cost_so_far(record: Record, now: datetime | None = None) -> float | None:
    """US$ its compute hours have cost so far (the disk aside); None when the price is unknown."""
    price = hourly(record)
    return None if price is None else running_hours(record, now) * price
