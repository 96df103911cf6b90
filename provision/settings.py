"""One Settings object from provision.toml < environment < flags, validated in one place.

Every bad value becomes a one-line UsageError before any request is sent.
"""

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from provision.errors import UsageError

CONFIG_FILE = "provision.toml"
DEFAULT_SIZE = "Standard_NC4as_T4_v3"
# The smallest size of each GPU series the kit knows (T4, A100, H100): what `provision quota` looks at by default.
GPU_SIZES = (DEFAULT_SIZE, "Standard_NC24ads_A100_v4", "Standard_NC40ads_H100_v5")
DEFAULT_IMAGE = "microsoft-dsvm:ubuntu-2204:2204-gen2:latest"
CLOUDS = {
    "public": "https://management.azure.com",
    "china": "https://management.chinacloudapi.cn",
    "usgov": "https://management.usgovcloudapi.net",
}

# Linux admin names that Azure refuses (the platform's documented list, lower case).
RESERVED_ADMIN_NAMES = frozenset(
    {
        *("1", "123", "a", "actuser", "adm", "admin", "admin1", "admin2", "administrator"),
        *("aspnet", "backup", "console", "david", "guest", "john", "owner", "root", "server"),
        *("sql", "support", "support_388945a0", "sys", "test", "test1", "test2", "test3"),
        *("user", "user1", "user2", "user3", "user4", "user5"),
    }
)
# GPU sizes Azure has retired: K80 (NC), P100 (NCv2) and V100 (NCv3).
RETIRED_SIZE = re.compile(r"^standard_nc\d+r?(s_v2|s_v3)?$")

NAME = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
ADMIN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
REGION = re.compile(r"^[a-z][a-z0-9]{2,39}$")
SIZE = re.compile(r"^Standard_[A-Za-z0-9_]+$")
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
SSH_TARGET = re.compile(
    r"^ssh://(?P<user>[a-z_][a-z0-9_.-]{0,31})@(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(:(?P<port>\d+))?$"
)
HOST_KEY_TYPE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521))$")
BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
OPEN_TO_ALL = ("*", "Internet", "0.0.0.0/0")
MAX_NODES = 16  # a sane bound for one proximity placement group made by hand


@dataclass(frozen=True)
class Settings:
    """What `provision` was asked to do; every field already validated."""

    name: str = "dsvm"
    target: str = "azure"  # "azure", "local" or "ssh://user@host[:port]"
    subscription: str | None = None
    regions: tuple[str, ...] = ("eastus",)
    sizes: tuple[str, ...] = (DEFAULT_SIZE,)
    image: str = DEFAULT_IMAGE
    admin_user: str = "azureuser"
    os_disk_gb: int = 256
    allow_ip: str | None = None  # None: detect the caller's public address
    ssh_port: int = 22
    cloud: str = "public"
    arm_endpoint: str = CLOUDS["public"]
    arm_ca_bundle: str | None = None
    arm_token: str | None = field(default=None, repr=False)
    allow_cpu: bool = False
    trusted_launch: bool = False  # securityType TrustedLaunch (Secure Boot + vTPM) instead of Standard
    accept_terms: bool = False  # accept the image plan's marketplace terms for the subscription
    spot: bool = False  # a Spot VM: spare capacity at a discount, deallocated when Azure needs it back
    max_price: float = -1.0  # Spot only: the most $/hour to pay; -1 is up to pay-as-you-go (no eviction for price)
    yes: bool = False  # create without asking to confirm the price
    access: str = "tunnel"  # or "public": TLS on jupyter_port, open to allow_ip only
    jupyter_port: int = 8888  # the VM's public Jupyter port (access public only)
    remote_python: str | None = None
    host_key: str | None = None  # pinned key of an ssh:// target: "ssh-ed25519 AAAA..."
    identity: str | None = None  # private key for an ssh:// target
    dataset: str = "synthetic"  # the check's data: made on the device, no download to fail
    nodes: int = 1  # VMs of one size in one VNet and proximity placement group; the first is the head
    epochs: int = 2
    check_timeout: int = 1800
    poll_interval: float = 5.0  # the longest wait between polls of an operation (see targets/azure/polling.py)
    idle_stop: float | None = 60.0  # minutes without activity before the VM deallocates itself; None: off
    auto_shutdown: str | None = None  # "HH:MM" local daily deallocation, "off"; None: only if idle stop cannot be
    idle_probe: float = 60.0  # seconds between the agent's looks at activity
    imds_url: str = "http://169.254.169.254"  # the instance metadata service as the VM reaches it
    environment: str | None = None  # requirements.txt or environment.yml (absolute once loaded): the project's kernel
    environment_allow_torch: bool = False  # let that environment replace the image's torch or CUDA libraries

    @property
    def region(self) -> str:
        return self.regions[0]

    @property
    def size(self) -> str:
        return self.sizes[0]

    @property
    def image_parts(self) -> tuple[str, str, str, str]:
        publisher, offer, sku, version = self.image.split(":")
        return publisher, offer, sku, version

    @property
    def ssh_target(self) -> tuple[str, str, int]:
        """(user, host, port) of an ssh:// target."""
        match = SSH_TARGET.match(self.target)
        assert match, self.target
        return match["user"], match["host"].strip("[]"), int(match["port"] or 22)

    @property
    def is_azure(self) -> bool:
        return self.target == "azure"

    @property
    def opens_to_everyone(self) -> bool:
        """True when allow_ip admits every address: a word for "all", or a /0 block."""
        if self.allow_ip is None:
            return False
        return self.allow_ip in OPEN_TO_ALL or ipaddress.ip_network(self.allow_ip).prefixlen == 0


# Environment variable for each field that can be set from the environment.
ENVIRONMENT = {
    "name": "PROVISION_NAME",
    "target": "PROVISION_TARGET",
    "subscription": "AZURE_SUBSCRIPTION_ID",
    "regions": "PROVISION_REGION",
    "sizes": "PROVISION_SIZE",
    "image": "PROVISION_IMAGE",
    "admin_user": "PROVISION_ADMIN_USER",
    "os_disk_gb": "PROVISION_OS_DISK_GB",
    "allow_ip": "PROVISION_ALLOW_IP",
    "ssh_port": "PROVISION_SSH_PORT",
    "cloud": "PROVISION_CLOUD",
    "arm_endpoint": "PROVISION_ARM_ENDPOINT",
    "arm_ca_bundle": "PROVISION_ARM_CA_BUNDLE",
    "arm_token": "PROVISION_ARM_TOKEN",
    "access": "PROVISION_ACCESS",
    "trusted_launch": "PROVISION_TRUSTED_LAUNCH",
    "accept_terms": "PROVISION_ACCEPT_TERMS",
    "spot": "PROVISION_SPOT",
    "max_price": "PROVISION_MAX_PRICE",
    "yes": "PROVISION_YES",
    "jupyter_port": "PROVISION_JUPYTER_PORT",
    "remote_python": "PROVISION_REMOTE_PYTHON",
    "host_key": "PROVISION_HOST_KEY",
    "identity": "PROVISION_IDENTITY",
    "dataset": "PROVISION_DATASET",
    "nodes": "PROVISION_NODES",
    "epochs": "PROVISION_EPOCHS",
    "check_timeout": "PROVISION_CHECK_TIMEOUT",
    "poll_interval": "PROVISION_POLL_INTERVAL",
    "idle_stop": "PROVISION_IDLE_STOP",
    "auto_shutdown": "PROVISION_AUTO_SHUTDOWN",
    "idle_probe": "PROVISION_IDLE_PROBE",
    "imds_url": "PROVISION_IMDS_URL",
    "environment": "PROVISION_ENVIRONMENT",
    "environment_allow_torch": "PROVISION_ENVIRONMENT_ALLOW_TORCH",
}
# provision.toml spells the list fields in the singular, like the flags.
TOML_KEYS = {"region": "regions", "size": "sizes"}
# `yes` too: a file in a project should not silence the question about money.
NOT_IN_TOML = {"arm_token", "arm_ca_bundle", "arm_endpoint", "poll_interval", "yes", "idle_probe", "imds_url"}


def load(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    only: Collection[str] | None = None,
) -> Settings:
    """Merge provision.toml, the environment and flags (None means not given); validate.
    With `only`, the other settings are not read, so that their values cannot stand in the way."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    raw.update(_read_toml((cwd or Path.cwd()) / CONFIG_FILE))
    raw.update({key: env[var] for key, var in ENVIRONMENT.items() if env.get(var)})
    raw.update({key: value for key, value in (flags or {}).items() if value is not None})
    if only is not None:
        raw = {key: value for key, value in raw.items() if key in only}
    if raw.get("environment"):  # relative to the project: the directory of provision.toml
        raw["environment"] = str((cwd or Path.cwd()) / Path(str(raw["environment"])).expanduser())
    if "subscription" not in raw and raw.get("target", "azure") == "azure":
        raw["subscription"] = azure_cli_subscription(env)
    return validate(raw)


def deployment_name(given: str | None, *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    """The deployment a command on an existing one acts on: given, else PROVISION_NAME, else
    provision.toml's `name`, else the default. Only the name is read and validated, so that a
    setting edited since `up` never stands in the way of `down`."""
    env = os.environ if env is None else env
    path = (cwd or Path.cwd()) / CONFIG_FILE
    name = given or env.get(ENVIRONMENT["name"])
    if not name and path.is_file():
        try:
            name = tomllib.loads(path.read_text()).get("name")
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"{path.name}: {e} (or give the deployment's name)") from None
    settings = Settings(name=str(name or Settings.name))
    _check_name(settings)
    return settings.name


# What a command on an existing deployment still takes from the environment: credentials and
# how to run the check. The rest comes from the deployment's record, so that an edited
# provision.toml or environment can never stand in the way of `down`.
# Where a deployment lives on Azure: all that `down` needs when its record is lost (it finds the group by tags).
WHERE = ("name", "target", "subscription", "cloud", "arm_endpoint", "arm_ca_bundle", "arm_token", "poll_interval")
RUNTIME = (
    "arm_token",
    "arm_ca_bundle",
    "poll_interval",
    "remote_python",
    "dataset",
    "epochs",
    "check_timeout",
    "idle_probe",
    "imds_url",
)


def for_deployment(
    recorded: Mapping[str, Any], flags: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None
) -> Settings:
    """Settings for a command on a deployment that exists: its recorded settings, then flags."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {key: env[ENVIRONMENT[key]] for key in RUNTIME if env.get(ENVIRONMENT[key])}
    raw.update({key: value for key, value in (flags or {}).items() if value is not None})
    raw.update(recorded)
    return validate(raw)


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path.name}: {e}") from None
    allowed = ({f.name for f in fields(Settings)} - NOT_IN_TOML - set(TOML_KEYS.values())) | set(TOML_KEYS)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UsageError(f"{path.name}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
    return {TOML_KEYS.get(key, key): value for key, value in data.items()}


def azure_cli_subscription(env: Mapping[str, str]) -> str | None:
    """The Azure CLI's default subscription id, if the CLI has logged in here."""
    config_dir = Path(env.get("AZURE_CONFIG_DIR") or Path.home() / ".azure")
    try:
        profile = json.loads((config_dir / "azureProfile.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    return next((s["id"] for s in profile.get("subscriptions", []) if s.get("isDefault")), None)


def validate(raw: Mapping[str, Any]) -> Settings:
    """Turn raw values (strings from files and the environment, or typed flags) into Settings."""
    values = dict(raw)
    for key in ("regions", "sizes"):
        if key in values:
            values[key] = _as_list(values[key])
    for key in ("os_disk_gb", "ssh_port", "jupyter_port", "epochs", "check_timeout", "nodes"):
        if key in values:
            values[key] = _as_int(key, values[key])
    if "idle_stop" in values:
        values["idle_stop"] = _as_minutes(values["idle_stop"])
    for key in ("poll_interval", "max_price", "idle_probe"):
        if key in values:
            values[key] = _as_float(key, values[key])
    for key in ("allow_cpu", "trusted_launch", "accept_terms", "spot", "yes", "environment_allow_torch"):
        if key in values:
            values[key] = _as_bool(key, values[key])
    if values.get("host_key"):
        values["host_key"] = _as_host_key(str(values["host_key"]))
    if values.get("allow_ip") is not None:
        values["allow_ip"] = _as_source(str(values["allow_ip"]))
    if "cloud" in values and "arm_endpoint" not in values:
        values["arm_endpoint"] = CLOUDS.get(str(values["cloud"]), "")
    settings = Settings(**values)
    for check in CHECKS:
        check(settings)
    return settings


def _as_list(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _as_int(key: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{key.replace('_', '-')} must be a whole number, not {value!r}") from None


def _as_float(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{key.replace('_', '-')} must be a number, not {value!r}") from None


def _as_minutes(value: Any) -> float | None:
    """idle-stop: minutes (above 0), or off."""
    if value is None or str(value).lower() == "off":
        return None
    minutes = _as_float("idle_stop", value)
    if minutes <= 0:
        raise UsageError(f"idle-stop must be minutes above 0, or off, not {value!r}")
    return minutes


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"{key.replace('_', '-')} must be true or false, not {value!r}")


def _as_host_key(value: str) -> str:
    """A public key line "type base64", given as it is or as a file holding it."""
    path = Path(value).expanduser()
    if path.is_file():
        value = path.read_text()
    parts = value.split()
    if len(parts) < 2 or not HOST_KEY_TYPE.match(parts[0]) or not BASE64.match(parts[1]):
        raise UsageError(
            "host-key must be a public key line such as 'ssh-ed25519 AAAA...' (from "
            "/etc/ssh/ssh_host_ed25519_key.pub on the machine) or a file holding one"
        )
    return f"{parts[0]} {parts[1]}"


def _as_source(value: str) -> str:
    """An NSG source: a normalised CIDR block, or an explicit open-to-all word."""
    if value in OPEN_TO_ALL:
        return value
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise UsageError(f"allow-ip {value!r} is not an address or CIDR block such as 203.0.113.7/32") from None


def _check_name(s: Settings) -> None:
    if not NAME.match(s.name):
        raise UsageError(
            f"deployment name {s.name!r} must be 3-40 characters of lower-case letters, digits and "
            "hyphens, starting with a letter and ending with a letter or digit "
            "(it becomes Azure resource and DNS names)"
        )


def _check_target(s: Settings) -> None:
    if s.target not in ("azure", "local") and not SSH_TARGET.match(s.target):
        raise UsageError(f"target {s.target!r} is not one of azure, local or ssh://user@host[:port]")
    if s.target.startswith("ssh://") and not 0 < s.ssh_target[2] < 65536:
        raise UsageError(f"port in target {s.target!r} must be between 1 and 65535")


def _check_subscription(s: Settings) -> None:
    if not s.is_azure:
        return
    if not s.subscription:
        raise UsageError(
            "no Azure subscription: set AZURE_SUBSCRIPTION_ID or `subscription` in provision.toml, "
            "or run `az login` (or use --target local, which needs no cloud account)"
        )
    if not GUID.match(s.subscription):
        raise UsageError(f"subscription {s.subscription!r} is not a subscription id (a GUID)")


def _check_regions(s: Settings) -> None:
    if not s.regions:
        raise UsageError("region must name at least one Azure region, such as eastus")
    for region in s.regions:
        if not REGION.match(region):
            hint = re.sub(r"[^a-z0-9]", "", region.lower())
            raise UsageError(
                f"region {region!r} is not an Azure region name; use the short form such as "
                f"{hint if REGION.match(hint) else 'eastus'} (`az account list-locations -o table`)"
            )


def _check_sizes(s: Settings) -> None:
    if not s.sizes:
        raise UsageError(f"size must name at least one VM size, such as {DEFAULT_SIZE}")
    for size in s.sizes:
        if not SIZE.match(size):
            raise UsageError(f"size {size!r} is not an Azure VM size name such as {DEFAULT_SIZE}")
        if RETIRED_SIZE.match(size.lower()):
            raise UsageError(
                f"size {size} belongs to a GPU series Azure has retired; use {DEFAULT_SIZE} (T4) "
                "or Standard_NC24ads_A100_v4 (A100)"
            )
        if not size.startswith("Standard_N") and not s.allow_cpu:
            raise UsageError(
                f"size {size} has no GPU; choose an N-series size such as {DEFAULT_SIZE}, "
                "or pass --allow-cpu to accept a CPU-only machine"
            )


def _check_image(s: Settings) -> None:
    parts = s.image.split(":")
    if len(parts) != 4 or not all(parts) or any(c.isspace() for c in s.image):
        raise UsageError(f"image {s.image!r} is not an image URN publisher:offer:sku:version, such as {DEFAULT_IMAGE}")


def _check_admin_user(s: Settings) -> None:
    if not ADMIN.match(s.admin_user):
        raise UsageError(
            f"admin user {s.admin_user!r} must be 1-32 characters of lower-case letters, digits, "
            "'_' or '-', starting with a letter or '_'"
        )
    if s.admin_user in RESERVED_ADMIN_NAMES:
        raise UsageError(f"admin user {s.admin_user!r} is a name Azure refuses; try azureuser")


def _check_numbers(s: Settings) -> None:
    if not 30 <= s.os_disk_gb <= 4095:
        raise UsageError(f"os-disk-gb must be between 30 and 4095, not {s.os_disk_gb}")
    if not 0 < s.ssh_port < 65536:
        raise UsageError(f"ssh-port must be between 1 and 65535, not {s.ssh_port}")
    if not 0 < s.jupyter_port < 65536:
        raise UsageError(f"jupyter-port must be between 1 and 65535, not {s.jupyter_port}")
    if s.epochs < 1:
        raise UsageError(f"epochs must be at least 1, not {s.epochs}")
    if s.check_timeout < 10:
        raise UsageError(f"check-timeout must be at least 10 seconds, not {s.check_timeout}")
    if s.poll_interval < 0:
        raise UsageError(f"PROVISION_POLL_INTERVAL must not be negative, not {s.poll_interval}")


def _check_nodes(s: Settings) -> None:
    """Several nodes need a cloud that makes them in one private network: Azure only."""
    if not 1 <= s.nodes <= MAX_NODES:
        raise UsageError(f"nodes must be between 1 and {MAX_NODES}, not {s.nodes}")
    if s.nodes > 1 and not s.is_azure:
        raise UsageError(
            f"--nodes {s.nodes} needs --target azure, which makes the nodes in one private network; "
            f"{s.target} is one machine"
        )


def _check_spot(s: Settings) -> None:
    """maxPrice is -1 or above zero, and for Spot only (learn.microsoft.com/azure/virtual-machines/error-codes-spot:
    MaxPriceValueInvalid)."""
    if s.max_price != -1 and s.max_price <= 0:
        raise UsageError(f"max-price must be US$/hour above 0, or -1 (up to pay-as-you-go), not {s.max_price}")
    if s.max_price != -1 and not s.spot:
        raise UsageError("max-price applies to Spot VMs only; add --spot, or drop --max-price")


def _check_cloud(s: Settings) -> None:
    if s.cloud not in CLOUDS:
        raise UsageError(f"cloud {s.cloud!r} is not one of {', '.join(CLOUDS)}")
    if not s.arm_endpoint.startswith("https://"):
        raise UsageError(
            f"ARM endpoint {s.arm_endpoint!r} must be an https:// URL (Azure refuses bearer tokens over plain http)"
        )
    if s.arm_ca_bundle and not Path(s.arm_ca_bundle).is_file():
        raise UsageError(f"PROVISION_ARM_CA_BUNDLE {s.arm_ca_bundle!r} is not a file")


def _check_idle(s: Settings) -> None:
    if s.auto_shutdown not in (None, "off") and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", s.auto_shutdown):
        raise UsageError(
            f"auto-shutdown must be HH:MM (24-hour, this machine's time zone) or off, not {s.auto_shutdown!r}"
        )
    if s.idle_probe <= 0:
        raise UsageError(f"PROVISION_IDLE_PROBE must be seconds above 0, not {s.idle_probe}")
    if not s.imds_url.startswith("http://"):
        raise UsageError(f"PROVISION_IMDS_URL {s.imds_url!r} must be an http:// URL (the VM's metadata service)")


def _check_identity(s: Settings) -> None:
    if s.identity and not Path(s.identity).expanduser().is_file():
        raise UsageError(f"identity {s.identity!r} is not a file (a private SSH key)")


def _check_environment(s: Settings) -> None:
    """The environment file exists and parses, before anything is created."""
    if s.environment is None:
        return
    from bootstrap.environment import SpecError, read

    path = Path(s.environment)
    if not path.is_file():
        raise UsageError(f"environment {path} is not a file (a requirements.txt or environment.yml of the project)")
    try:
        read(path)
    except SpecError as e:
        raise UsageError(str(e)) from None


def _check_choices(s: Settings) -> None:
    if s.access not in ("tunnel", "public"):
        raise UsageError(f"access {s.access!r} is not one of tunnel, public")
    if s.dataset not in ("cifar10", "digits", "synthetic"):
        raise UsageError(f"dataset {s.dataset!r} is not one of cifar10, digits, synthetic")


def _check_public_access(s: Settings) -> None:
    """Jupyter on a public port only where an NSG admits the caller alone, and only to a narrow source."""
    if s.access != "public":
        return
    if s.target == "local":
        raise UsageError(
            "--access public makes no sense with --target local: Jupyter runs on this machine, "
            "so open the http://127.0.0.1 URL that `up` prints (drop --access public)"
        )
    if not s.is_azure:
        raise UsageError(
            f"--access public needs --target azure, whose security group admits only --allow-ip; on {s.target} "
            "nothing would limit who reaches Jupyter: use the SSH tunnel (the default)"
        )
    if s.opens_to_everyone:
        raise UsageError(
            f"--access public with --allow-ip {s.allow_ip} would open Jupyter to the whole internet; give your "
            "address or range (or leave --allow-ip out to use your detected address), or use the SSH tunnel"
        )
    if s.jupyter_port == s.ssh_port:
        raise UsageError(f"jupyter-port {s.jupyter_port} is also the SSH port; choose another")


CHECKS = (
    _check_name,
    _check_target,
    _check_subscription,
    _check_regions,
    _check_sizes,
    _check_image,
    _check_admin_user,
    _check_numbers,
    _check_spot,
    _check_nodes,
    _check_cloud,
    _check_identity,
    _check_idle,
    _check_choices,
    _check_public_access,
    _check_environment,
)
