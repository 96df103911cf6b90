"""Files and command lines that let plain OpenSSH reach a deployment with its pinned key."""

from provision.errors import ProvisionError
from provision.state import StateStore
from provision.targets import Machine

KNOWN_HOSTS = "known_hosts"


def host_pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def write_known_hosts(store: StateStore, name: str, machine: Machine) -> None:
    """known_hosts with the pinned key under the machine's address (and FQDN, if any)."""
    if machine.local or not machine.host_key:
        return
    hosts = [host_pattern(h, machine.port) for h in (machine.host, machine.fqdn) if h]
    store.write_secret(name, KNOWN_HOSTS, f"{','.join(hosts)} {machine.host_key}\n")


def _options(store: StateStore, name: str, machine: Machine) -> list[tuple[str, str]]:
    return [
        ("HostName", machine.host),
        ("Port", str(machine.port)),
        ("User", machine.user),
        ("IdentityFile", str(machine.key_path)),
        ("IdentitiesOnly", "yes"),
        ("UserKnownHostsFile", str(store.root / name / KNOWN_HOSTS)),
        ("StrictHostKeyChecking", "yes"),
    ]


def _ssh_machine(store: StateStore, name: str) -> Machine:
    record = store.load(name)
    if record is None or not record.machine:
        raise ProvisionError(f"no machine recorded for {name!r}; see `provision list`")
    machine = Machine.from_dict(record.machine)
    if machine.local:
        raise ProvisionError(f"{name!r} is this machine (--target local): no SSH needed")
    return machine


def ssh_argv(store: StateStore, name: str, command: list[str]) -> list[str]:
    """`ssh` with the deployment's key and known_hosts only, then the command if any."""
    machine = _ssh_machine(store, name)
    argv = ["ssh"]
    for key, value in _options(store, name, machine):
        if key != "HostName":
            argv += ["-o", f"{key}={value}"]
    return [*argv, machine.host, *command]  # ssh takes no options after the destination


def ssh_config_block(store: StateStore, name: str) -> str:
    machine = _ssh_machine(store, name)
    lines = [f"Host dsvm-{name}"] + [f"    {k} {v}" for k, v in _options(store, name, machine)]
    return "\n".join(lines)
