"""`provision env lock`: the exact versions in a deployment's environment, written beside the project's environment
file, so that a teammate's `up` (or the next one) builds exactly them."""

from datetime import UTC, datetime
from pathlib import Path

from bootstrap import environment
from provision import session
from provision.errors import ProvisionError
from provision.output import Output
from provision.state import StateStore
from provision.targets import Machine


def lock(name: str, store: StateStore, out: Output, output: Path | None = None) -> Path:
    """Write requirements.lock.txt (or environment.lock.yml) from the environment on the machine; its path."""
    record = store.require(name)
    made = record.environment
    if made is None or record.jupyter is None:
        raise ProvisionError(
            f'{name!r} has no environment: set `environment = "requirements.txt"` in provision.toml '
            "(or pass --environment) and run `provision up`"
        )
    path = output or Path(made["file"]).parent / environment.LOCK_FILES[made["kind"]]
    header = (
        f"# provision env lock: the exact versions in environment {made['name']} of deployment {name!r},\n"
        f"# built from {Path(made['file']).name} over {record.jupyter['python']} "
        f"({datetime.now(UTC):%Y-%m-%d}).\n"
        "# Packages of that base env (the image's torch among them) are not listed: they come with the image.\n"
        f'# Use it: environment = "{path.name}" in provision.toml, then `provision up`.\n'
    )
    remote = session.open_remote(Machine.from_dict(record.machine or {}), out, timeout=60)
    try:
        with out.step(f"Reading the exact versions in {made['name']}"):
            text = environment.lock(remote, record.jupyter["python"], made, header)
    finally:
        remote.close()
    path.write_text(text)
    count = sum(
        1 for line in text.splitlines() if line.strip() and not line.startswith(("#", "dependencies:", "  - pip:"))
    )
    out.result(f"wrote {path}: {count} package(s) at their exact versions")
    return path
