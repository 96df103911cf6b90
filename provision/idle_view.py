"""What `status` and `start` say about idle stop: the policy, what the agent on the VM last wrote (read over
SSH in one command, only while the VM runs), and why a VM the kit did not stop is deallocated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from provision import power
from provision.state import Record
from provision.targets import RUNNING, Machine

if TYPE_CHECKING:
    from bootstrap.remote import Remote

NOT_BY_THE_KIT = "not by the kit: idle stop, the schedule or Azure"
STATUS_SSH_WAIT = 10  # seconds `status` waits for SSH before it shows "unknown"


def policy(record: Record) -> str:
    """ "idle stop after 60 min", "off: auto-shutdown 19:00 W. Europe Standard Time", or both."""
    idle_policy = record.idle or {}
    shutdown = idle_policy.get("auto_shutdown")
    daily = f"auto-shutdown {shutdown} {idle_policy.get('time_zone', '')}".strip() if shutdown else ""
    if idle_policy.get("idle_stop") is None:
        return f"off: {daily}" if daily else "off"
    return f"idle stop after {idle_policy['idle_stop']:g} min" + (f"; {daily}" if daily else "")


def shown_state(record: Record, live: str) -> str:
    """The power state, saying so when the VM is deallocated and the kit's history has it running."""
    if live == power.DEALLOCATED and power.last(record) == RUNNING:
        return f"{live} ({NOT_BY_THE_KIT})"
    return live


def agent_facts(record: Record, live: str) -> dict:
    """Minutes idle so far and the agent's last error, while the VM runs an agent; "unknown" when SSH does not
    answer or the agent has written nothing yet. Never raises."""
    if live != RUNNING or not (record.idle or {}).get("agent") or not record.machine:
        return {}
    from bootstrap import idle  # SSH only here: `plan` and `list` need none of it
    from bootstrap.remote import BootstrapError, connect
    from provision import session

    try:
        remote = connect(session.endpoint(Machine.from_dict(record.machine)), timeout=STATUS_SSH_WAIT)
        try:
            state = idle.read_state(remote).get("state")
        finally:
            remote.close()
    except (BootstrapError, OSError):
        state = None
    if not state:
        return {"idle_minutes": "unknown", "idle_agent_error": "unknown"}
    return {
        "idle_minutes": f"{state['idle_s'] / 60:.1f} of {state['window'] / 60:g}",
        "idle_agent_error": state.get("last_error") or "none",
    }


def note_stop(record: Record, remote: Remote) -> bool:
    """At `start`, once SSH is back: when the history has the VM running until this start (the kit did not stop
    it), enter why it stopped before the start's entry: idle stop, with the agent's time, if its stopped.json
    says so; else what the kit cannot tell apart. Whether the record changed."""
    if len(record.power) < 2 or record.power[-2]["state"] != RUNNING:
        return False
    from bootstrap import idle

    started = record.power.pop()
    stopped = idle.read_state(remote).get("stopped") or {}
    since = datetime.fromisoformat(record.power[-1]["at"]).timestamp()
    if stopped.get("reason") == "idle" and since < stopped.get("at", 0):
        at = datetime.fromtimestamp(stopped["at"], UTC)
        power.note(record, power.DEALLOCATED, f"idle stop after {stopped['idle_s'] / 60:.1f} min without use", at)
    else:
        at = datetime.fromisoformat(started["at"])
        power.note(record, power.DEALLOCATED, "seen at start: not by the kit (the schedule, Azure or the portal)", at)
    record.power.append(started)
    return True
