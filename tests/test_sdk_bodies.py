"""Every planned request body is valid for the api-version the installed SDK sends.

The azure-mgmt models are generated from Azure's API specs: each field is a `rest_field` with
its wire name, its visibility ("read" alone means read-only) and a type hint. A body is walked
against them (no unknown key, no wrong type, no enum value the SDK does not know, no read-only
field), then sent through the SDK's own `begin_create_or_update` into a transport that keeps the
request, to see the api-version and that the body goes out exactly as planned.
"""

import datetime
import enum
import importlib
import itertools
import json
import time
import typing

import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from provision import keys
from provision.plan import Owner, Plan, make_plan
from provision.settings import load

SUB = "11111111-2222-3333-4444-555555555555"
SIZES = ("Standard_NC4as_T4_v3", "Standard_NC24ads_A100_v4", "Standard_NC40ads_H100_v5")
PLAN = {"name": "2204-gen2", "publisher": "microsoft-dsvm", "product": "ubuntu-2204"}
# step kind -> (models package, model class name)
MODELS = {
    "resource_group": ("azure.mgmt.resource.resources.models", "ResourceGroup"),
    "vnet": ("azure.mgmt.network.models", "VirtualNetwork"),
    "nsg": ("azure.mgmt.network.models", "NetworkSecurityGroup"),
    "public_ip": ("azure.mgmt.network.models", "PublicIPAddress"),
    "nic": ("azure.mgmt.network.models", "NetworkInterface"),
    "vm": ("azure.mgmt.compute.models", "VirtualMachine"),
}
# What azure-core 1.41 / compute 39.0 / network 33.1 / resource 26.0 send (DESIGN.md 6). A new SDK
# that moves one of them fails here, so its bodies are checked again before anyone relies on them.
API_VERSIONS = {
    "resource_group": "2025-04-01",
    "vnet": "2026-03-01",
    "nsg": "2026-03-01",
    "public_ip": "2026-03-01",
    "nic": "2026-03-01",
    "vm": "2026-04-01",
}
# Enums whose known values are not the whole story, as the SDK itself documents.
OPEN_ENUMS = {
    # vmSize: "The enum data type is currently deprecated ... The recommended way to get the list of
    # available sizes is ... resourceskus/list" (azure-mgmt-compute 39 HardwareProfile.vm_size); preflight does.
    "VirtualMachineSizeTypes",
}
HOST_KEY = keys.generate()
CLIENT_KEY = keys.generate()


def plan(
    size: str,
    access: str,
    trusted_launch: bool,
    accelerated: bool,
    image_plan: dict | None,
    zone,
    spot: float | None,
    idle_stop: str = "60",
) -> Plan:
    """spot: None for a regular VM, else the Spot VM's max price (-1: up to pay-as-you-go); idle_stop "off":
    no managed identity."""
    flags = {
        "sizes": size,
        "access": access,
        "trusted_launch": trusted_launch,
        "subscription": SUB,
        "idle_stop": idle_stop,
    }
    if spot is not None:
        flags.update(spot=True, max_price=spot)
    settings = load(flags, env={})
    return make_plan(
        settings,
        region="eastus",
        size=size,
        allow_ip="203.0.113.7/32",
        ssh_public_key=CLIENT_KEY.public_openssh,
        host_key=HOST_KEY,
        owner=Owner("6f1c2a9e-0000-4000-8000-00000000a0a0", "ana@contoso.example"),
        now=datetime.datetime(2026, 11, 22, 9, 30, tzinfo=datetime.UTC),
        image_plan=image_plan,
        zone=zone,
        accelerated_networking=accelerated,
    )


PLANS = [
    plan(*choice)
    for choice in itertools.product(
        SIZES,
        ("tunnel", "public"),
        (False, True),
        (False, True),
        (None, PLAN),
        (None, "2"),
        (None, -1.0, 0.25),
        ("60", "off"),
    )
]


def plan_id(p: Plan) -> str:
    return "-".join(
        [p.size.split("_")[1], "public" if p.open_jupyter else "tunnel"]
        + ["tl"] * p.trusted_launch
        + ["an"] * p.accelerated_networking
        + ["plan"] * bool(p.image_plan)
        + [f"z{p.zone}"] * bool(p.zone)
        + [f"spot{p.max_price:g}"] * p.spot
        + ["identity"] * p.managed_identity
    )


# -- the walk through the SDK's models ---------------------------------------------------------


def fields_of(model: type) -> dict[str, tuple[str, typing.Any, list[str] | None]]:
    """wire name -> (attribute, type hint, visibility) for an SDK model class."""
    model()  # the SDK computes _attr_to_rest_field on first construction
    package = importlib.import_module(model.__module__.rsplit(".", 1)[0])
    hints = typing.get_type_hints(model, localns={"_models": package})
    return {
        field._rest_name: (attr, hints[attr], field._visibility) for attr, field in model._attr_to_rest_field.items()
    }


def problems(value: typing.Any, hint: typing.Any, where: str) -> list[str]:
    """Why `value` does not fit the type `hint` of the SDK's model (empty when it fits)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        if value is None:
            return [] if type(None) in args else [f"{where}: null"]
        enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
        if enums and isinstance(value, str) and enums[0].__name__ not in OPEN_ENUMS:
            known = {e.value for e in enums[0]}
            return [] if value in known else [f"{where}: {value!r} is not one of {sorted(known)}"]
        fits = [problems(value, a, where) for a in args if a is not type(None)]
        return [] if any(not f for f in fits) else min(fits, key=len)
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [p for i, item in enumerate(value) for p in problems(item, args[0], f"{where}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        return [p for key, item in value.items() for p in problems(item, args[1], f"{where}.{key}")]
    if hint is typing.Any:
        return []
    if origin is typing.Literal:  # a discriminator's value
        known = {getattr(a, "value", a) for a in args}
        return [] if value in known else [f"{where}: {value!r} is not one of {sorted(known)}"]
    if is_model(hint):
        return model_problems(value, hint, where)
    expected = {bool: bool, int: int, float: (int, float), str: str, datetime.datetime: str}.get(hint)
    if expected is None:
        return [f"{where}: the walk does not know type {hint!r}"]
    if isinstance(value, bool) and hint is not bool:
        return [f"{where}: {value!r} is a boolean, not {hint.__name__}"]
    return [] if isinstance(value, expected) else [f"{where}: {value!r} is not {hint.__name__}"]


def is_model(hint: typing.Any) -> bool:
    """A generated model class (each azure-mgmt package has its own `_utils.model_base.Model`)."""
    mro = getattr(hint, "__mro__", ())
    return any(c.__name__ == "Model" and c.__module__.endswith("_utils.model_base") for c in mro)


def model_problems(body: typing.Any, model: type, where: str) -> list[str]:
    if not isinstance(body, dict):
        return [f"{where}: not an object (a {model.__name__})"]
    subclasses = getattr(model, "__mapping__", None) or {}  # a polymorphic model: its discriminator picks one
    model = next((subclasses[v] for v in body.values() if isinstance(v, str) and v in subclasses), model)
    found = []
    known = fields_of(model)
    for key, value in body.items():
        if key not in known:
            found.append(f"{where}.{key}: {model.__name__} has no such field")
            continue
        _, hint, visibility = known[key]
        if visibility == ["read"]:
            found.append(f"{where}.{key}: read-only in {model.__name__}")
        found += problems(value, hint, f"{where}.{key}")
    return found


def model_for(kind: str) -> type:
    package, name = MODELS[kind]
    return getattr(importlib.import_module(package), name)


def test_the_walk_catches_what_it_must():
    vm = model_for("vm")
    bad = {
        "location": "eastus",
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_NC4as_T4_v3"},
            "securityProfile": {"securityType": "Trusted", "uefiSettings": {"secureBootEnabled": "yes"}},
            "vmId": "0000",
            "hardware_profile": {},
        },
        "zones": "2",
    }
    found = "\n".join(model_problems(bad, vm, "vm"))
    assert "securityType: 'Trusted' is not one of" in found
    assert "secureBootEnabled: 'yes' is not bool" in found
    assert "vm.properties.vmId: read-only" in found
    assert "hardware_profile: VirtualMachineProperties has no such field" in found
    assert "vm.zones: not a list" in found


@pytest.mark.parametrize("planned", PLANS, ids=plan_id)
def test_every_planned_body_fits_the_sdk_models(planned: Plan):
    found = [p for step in planned.steps() for p in model_problems(step.body, model_for(step.kind), step.kind)]
    assert found == []


# -- the SDK sends the body as planned ---------------------------------------------------------


class Captured(Exception):
    def __init__(self, request):
        super().__init__(request.url)
        self.request = request


class CapturingTransport(HttpTransport):
    """Keeps the request the SDK would send and stops there (nothing goes on the wire)."""

    def send(self, request, **kwargs):
        raise Captured(request)

    def open(self):
        pass

    def close(self):
        pass

    def __exit__(self, *args):
        pass


class Credential:
    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken("token", int(time.time()) + 3600)


@pytest.fixture(scope="module")
def clients():
    options = {"transport": CapturingTransport(), "retry_total": 0}
    return {
        "resource": ResourceManagementClient(Credential(), SUB, **options),
        "network": NetworkManagementClient(Credential(), SUB, **options),
        "compute": ComputeManagementClient(Credential(), SUB, **options),
    }


def send(clients, planned: Plan, kind: str, name: str, body: dict):
    group = planned.names.resource_group
    call = {
        "resource_group": lambda: clients["resource"].resource_groups.create_or_update(group, body),
        "vnet": lambda: clients["network"].virtual_networks.begin_create_or_update(group, name, body),
        "nsg": lambda: clients["network"].network_security_groups.begin_create_or_update(group, name, body),
        "public_ip": lambda: clients["network"].public_ip_addresses.begin_create_or_update(group, name, body),
        "nic": lambda: clients["network"].network_interfaces.begin_create_or_update(group, name, body),
        "vm": lambda: clients["compute"].virtual_machines.begin_create_or_update(group, name, body),
    }[kind]
    with pytest.raises(Captured) as caught:
        call()
    return caught.value.request


@pytest.mark.parametrize("planned", PLANS[:: len(PLANS) // 8] + PLANS[-1:], ids=plan_id)
def test_the_sdk_sends_each_body_as_planned(clients, planned: Plan):
    for step in planned.steps():
        request = send(clients, planned, step.kind, step.name, step.body)
        assert request.method == "PUT"
        assert request.url.split("?")[0].lower() == f"https://management.azure.com{step.id}".lower()
        assert (
            dict(p.split("=", 1) for p in request.url.split("?")[1].split("&"))["api-version"]
            == (API_VERSIONS[step.kind])
        ), step.kind
        assert json.loads(request.body) == step.body, step.kind


# -- the quota request (provision/targets/azure/quota.py) ---------------------------------------------


def test_the_quota_request_fits_the_sdk_model_and_goes_to_a_compute_location():
    from azure.mgmt.quota import QuotaMgmtClient
    from azure.mgmt.quota.models import CurrentQuotaLimitBase

    from provision.targets.azure import quota

    body = quota.request_body("standardNCASv3_T4Family", 4)
    assert model_problems(body, CurrentQuotaLimitBase, "quota") == []
    wrong = {"properties": {"limit": {"limitObjectType": "LimitValues", "value": 4}}}
    assert model_problems(wrong, CurrentQuotaLimitBase, "quota") != []
    client = QuotaMgmtClient(Credential(), SUB, transport=CapturingTransport(), retry_total=0)
    with pytest.raises(Captured) as caught:
        client.quota.begin_create_or_update("standardNCASv3_T4Family", quota.scope(SUB, "eastus"), body, polling=False)
    request = caught.value.request
    assert (request.method, request.url) == (
        "PUT",
        f"https://management.azure.com/subscriptions/{SUB}/providers/Microsoft.Compute/locations/eastus"
        "/providers/Microsoft.Quota/quotas/standardNCASv3_T4Family?api-version=2025-09-01",
    )
    assert json.loads(request.body) == body
