"""A deployment as the commands after `up` see it: the settings its record keeps."""

from datetime import UTC, datetime
from typing import Any

from provision.settings import Settings, for_deployment
from provision.state import Record

# The settings a record keeps, so that later commands act on what `up` made.
RECORDED = (
    *("subscription", "cloud", "arm_endpoint", "image", "admin_user", "access", "jupyter_port", "spot"),
    "nodes",
)


def settings_for(record: Record, flags: dict[str, Any] | None = None) -> Settings:
    """Settings for a command on an existing deployment: the record says where it lives."""
    recorded = {key: record.settings[key] for key in RECORDED if key in record.settings}
    return for_deployment({**recorded, "name": record.name, "target": record.target}, flags)


def new_record(settings: Settings) -> Record:
    return Record(
        name=settings.name,
        target=settings.target,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        settings={key: getattr(settings, key) for key in RECORDED},
    )
