"""Issue 18: where a GPU fits (`provision quota`), asking Azure for more (`quota request`, `quota status`), and
`up` stopping before any write when no size and region has quota.

Unit tests for the logic (fits, choices, the wait, the lines), the fake's Quota API through the real SDK, and
three runs of the CLI against the fake ARM: a newcomer's fresh subscription from `up` to a created VM, a request
under review followed until approved, and the ways a request ends otherwise.
"""

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.quota import QuotaMgmtClient
from azure.mgmt.quota.models import QuotaRequestDetails

from provision.commands import quota as command
from provision.state import StateStore
from provision.targets import QuotaRequest
from provision.targets.azure import quota
from provision.targets.azure.quota import Region, Usage
from tests.conftest import provision
from tests.fakes.arm import access_token

T4, A100 = "Standard_NC4as_T4_v3", "Standard_NC24ads_A100_v4"
T4_FAMILY, A100_FAMILY = "standardNCASv3_T4Family", "standardNCADSA100v4Family"
REQUEST_T4 = f"provision quota request --size {T4} --region eastus"


def sku(name: str, family: str, vcpus: int, *, restricted: str = "", spot_capable: bool = True):
    """A ResourceSku as the SDK reads it, with what quota.py looks at."""
    restrictions = [SimpleNamespace(type="Location", reason_code=restricted)] if restricted else []
    capabilities = [
        SimpleNamespace(name="vCPUs", value=str(vcpus)),
        SimpleNamespace(name="LowPriorityCapable", value=str(spot_capable)),
    ]
    return SimpleNamespace(
        name=name, family=family, resource_type="virtualMachines", restrictions=restrictions, capabilities=capabilities
    )


def region(
    name: str = "eastus", *, family: int = 100, cores: int = 100, spot: int = 100, used: int = 0, **skus
) -> Region:
    offered = {
        T4.lower(): sku(T4, T4_FAMILY, 4, **skus),
        A100.lower(): sku(A100, A100_FAMILY, 24),
    }
    usages = [
        Usage(T4_FAMILY, family, used),
        Usage(A100_FAMILY, 0, 0),
        Usage("cores", cores, used),
        Usage("lowPriorityCores", spot, 0),
    ]
    return Region(name, offered, {quota.norm(u.name): u for u in usages})


# -- what fits, and why not --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "place, size, nodes, spot, verdict",
    [
        (region(), T4, 1, False, "yes"),
        (region(family=0), T4, 1, False, "no: family quota"),
        (region(family=15), T4, 4, False, "no: family quota"),  # 4 nodes of 4 need 16
        (region(cores=10, used=8), T4, 1, False, "no: regional total"),
        (region(family=0, spot=4), T4, 1, True, "yes"),  # Spot counts against the Spot total only
        (region(spot=3), T4, 1, True, "no: Spot total"),
        (region(), "Standard_NC8as_T4_v3", 1, False, "not offered"),
        (region(restricted="NotAvailableForSubscription"), T4, 1, False, "restricted (NotAvailableForSubscription)"),
        (region(spot_capable=False), T4, 1, True, "not offered as Spot"),
        (Region("marsnorth", {}, {}), T4, 1, False, "no VM sizes here"),
    ],
)
def test_a_size_fits_within_every_quota_its_vms_count_against(place, size, nodes, spot, verdict):
    found = quota.fit(place, size, nodes=nodes, spot=spot)
    assert found.verdict == verdict
    assert found.fits == (verdict == "yes")
    assert found.lacks_quota == verdict.startswith("no:")


@pytest.mark.parametrize(
    "place, nodes, spot, says",
    [
        (
            region(family=0),
            1,
            False,
            f"no quota for {T4} in eastus: family {T4_FAMILY} has a limit of 0 vCPUs, 0 in use, and up needs 4; "
            f"run `{REQUEST_T4}`",
        ),
        (
            region(cores=10, used=8),
            1,
            False,
            f"no quota for {T4} (family {T4_FAMILY}) in eastus: the regional vCPU total has a limit of 10 vCPUs, "
            f"8 in use, and up needs 4; run `{REQUEST_T4}`",
        ),
        (
            region(spot=2),
            1,
            True,
            f"no quota for {T4} as Spot (family {T4_FAMILY}) in eastus: the regional Spot (low-priority) vCPU total "
            f"has a limit of 2 vCPUs, 0 in use, and up needs 4; run `{REQUEST_T4} --spot`",
        ),
        (
            region(family=15),
            4,
            False,
            f"no quota for {T4} in eastus: family {T4_FAMILY} has a limit of 15 vCPUs, 0 in use, and up needs 16 "
            f"(4 nodes of 4); run `{REQUEST_T4} --vcpus 16`",
        ),
    ],
)
def test_no_quota_is_one_line_naming_family_region_limit_use_need_and_command(place, nodes, spot, says):
    error = quota.fit(place, T4, nodes=nodes, spot=spot).quota_error()
    assert (str(error), error.code) == (says, "QuotaExceeded")


def test_up_leaves_out_the_choices_without_quota_and_says_where_it_goes():
    notes = []
    fits = [
        quota.fit(region("eastus", family=0), T4),
        quota.fit(region("westus2"), T4),
        quota.fit(region("westus3"), T4),
    ]
    kept = quota.choose(fits, notes.append)
    assert [f.region for f in kept] == ["westus2", "westus3"]
    assert notes == [
        f"no quota for {T4} in eastus: family {T4_FAMILY} has a limit of 0 vCPUs, 0 in use, and up needs 4; "
        f"{T4} in westus2 has room, so up goes there"
    ]


def test_up_keeps_the_choices_preflight_explains_when_none_lacks_quota():
    fits = [quota.fit(region(), "Standard_NC8as_T4_v3"), quota.fit(region(), T4)]
    assert quota.choose(fits, print) == fits


def test_no_choice_with_quota_names_each_reason_and_the_command_for_the_first():
    fits = [
        quota.fit(region("eastus", family=0), T4),
        quota.fit(region("westus2", restricted="NotAvailableForSubscription"), T4),
        quota.fit(region("westus3", family=0), T4),
    ]
    with pytest.raises(quota.AzureError) as caught:
        quota.choose(fits, print)
    assert str(caught.value) == (
        f"none of the 3 size and region choices could be had ({T4} in eastus: QuotaExceeded; {T4} in westus2: "
        f"SkuNotAvailable; {T4} in westus3: QuotaExceeded); no quota for {T4} in eastus: family {T4_FAMILY} has a "
        f"limit of 0 vCPUs, 0 in use, and up needs 4; run `{REQUEST_T4}`"
    )


def test_a_row_shows_family_limit_use_totals_and_both_fits():
    row = quota.row(region(family=0, spot=8), T4, 1)
    assert row == {
        "size": T4,
        "region": "eastus",
        "family": T4_FAMILY,
        "vcpus": 4,
        "nodes": 1,
        "needed": 4,
        "limit": 0,
        "in_use": 0,
        "regional_limit": 100,
        "regional_in_use": 0,
        "spot_limit": 8,
        "spot_in_use": 0,
        "fits": False,
        "spot_fits": True,
        "verdict": "no: family quota",
        "request": REQUEST_T4,
    }
    assert command._cells(row)[-1] == "no: family quota; Spot fits"


# -- waiting for Azure's answer ---------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def answers(*states: str):
    """A look that reports each state in turn (the last one from then on)."""
    remaining = list(states)

    def look():
        state = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return [QuotaRequest("ID", "eastus", T4_FAMILY, 4, state)]

    return look


@pytest.mark.parametrize(
    "states, bound, retry_after, slept, last",
    [
        (["Succeeded"], 120, 30, [], "Succeeded"),  # an answer at once: no wait
        (["InProgress", "InProgress", "Failed"], 120, 30, [30, 30], "Failed"),  # Azure's Retry-After paces
        (["InProgress"], 70, 30, [30, 30, 10], "InProgress"),  # never past the bound: still pending
        (["InProgress", "InProgress", "Succeeded"], 120, 0, [1.0, 1.5], "Succeeded"),  # no Retry-After: growing
        (["InProgress"], 0, 30, [], "InProgress"),  # --wait 0: one look
    ],
)
def test_the_wait_looks_at_once_then_as_azure_asks_within_the_bound(states, bound, retry_after, slept, last):
    clock = Clock()
    found = quota.settle(answers(*states), bound, retry_after, 5.0, clock=lambda: clock.now, sleep=clock.sleep)
    assert (clock.slept, found[0].state) == (slept, last)


@pytest.mark.parametrize(
    "state, error, cloud, line",
    [
        ("Succeeded", "", "public", f"approved: {T4_FAMILY} in eastus now allows 8 vCPUs (request ID1)"),
        (
            "InProgress",
            "",
            "public",
            f"pending: Azure is still deciding on request ID1 (a limit of 8 vCPUs on {T4_FAMILY} in eastus: Request "
            "processing); `provision quota status ID1` shows where it stands, as does "
            "https://portal.azure.com/#view/Microsoft_Azure_Capacity/QuotaMenuBlade/~/myQuotas",
        ),
        (
            "Failed",
            "ContactSupport: Request failed, please contact support.",
            "usgov",
            f"refused: Azure declined request ID1 (a limit of 8 vCPUs on {T4_FAMILY} in eastus): ContactSupport: "
            "Request failed, please contact support.; ask for it in a support request: "
            "https://portal.azure.us/#create/Microsoft.Support",
        ),
    ],
)
def test_a_request_is_told_in_one_line(state, error, cloud, line):
    found = QuotaRequest("ID1", "eastus", T4_FAMILY, 8, state, "Request processing", error)
    assert command.describe(found, cloud) == line


# -- Azure's own answers, as the kit reads them ------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "azure-rest-examples" / "Microsoft.Quota" / "2025-09-01"


@pytest.mark.parametrize(
    "example, read",
    [
        ("getQuotaRequestStatusById.json", ("Succeeded", "", "standardNCPromoFamily", 50, False)),
        ("getQuotaRequestStatusInProgress.json", ("InProgress", "", "standardHCSFamily", 50, True)),
        (
            "getQuotaRequestStatusFailed.json",
            ("Failed", "ContactSupport: Request failed, please contact support.", "standardNCPromoFamily", 50, False),
        ),
    ],
)
def test_a_request_is_read_from_azures_examples_through_the_sdk_models(example, read):
    body = json.loads((EXAMPLES / example).read_text())["responses"]["200"]["body"]
    status = SimpleNamespace(get=lambda request_id, at: QuotaRequestDetails(body))
    clients = SimpleNamespace(subscription="s", quota=SimpleNamespace(quota_request_status=status))
    found = quota.Quotas(lambda action, fn, *args, **kwargs: fn(*args, **kwargs), clients).read("eastus", "ID")
    assert (found.state, found.error, found.quota, found.limit, found.pending) == read
    assert found.id == body["name"]


# -- the fake's Quota API, through the SDK --------------------------------------------------------------


@pytest.fixture
def sdk(arm):
    credential = SimpleNamespace(get_token=lambda *scopes, **kwargs: AccessToken(access_token(), 2**31))
    return SimpleNamespace(
        quota=QuotaMgmtClient(credential, arm.subscription_id, **arm.client_kwargs()),
        compute=ComputeManagementClient(credential, arm.subscription_id, **arm.client_kwargs()),
        scope=f"subscriptions/{arm.subscription_id}/providers/Microsoft.Compute/locations/eastus",
    )


def limit_of(sdk, name: str) -> int:
    return {u.name.value: u.limit for u in sdk.compute.usage.list("eastus")}[name]


def ask(sdk, name: str, value: int):
    """PUT a new limit; (status, headers) of Azure's answer."""
    body = {"properties": {"limit": {"limitObjectType": "LimitValue", "value": value}, "name": {"value": name}}}
    seen = []
    sdk.quota.quota.begin_create_or_update(name, sdk.scope, body, polling=False, raw_response_hook=seen.append)
    return seen[-1].http_response.status_code, seen[-1].http_response.headers


def test_the_fake_approves_small_requests_at_once_and_compute_reports_the_new_limit(arm, sdk):
    arm.fresh_subscription()
    assert {limit_of(sdk, family) for family in (T4_FAMILY, A100_FAMILY, "StandardNCadsH100v5Family")} == {0}
    status, headers = ask(sdk, T4_FAMILY, 8)
    assert status == 200 and "/quotaRequests/" in headers["location"]
    assert limit_of(sdk, T4_FAMILY) == 8
    assert sdk.quota.quota.get(T4_FAMILY, sdk.scope).properties.limit.value == 8
    assert sdk.quota.usages.get(T4_FAMILY, sdk.scope).properties.usages.value == 0


def test_the_fake_reviews_larger_requests_until_a_verdict(arm, sdk):
    arm.quota_review(auto_approve_up_to=16)
    status, headers = ask(sdk, A100_FAMILY, 48)
    assert (status, headers["Retry-After"]) == (202, "30")
    request_id = headers["location"].split("?")[0].rsplit("/", 1)[-1]
    assert "/operationsStatus/" in headers["location"]
    read = sdk.quota.quota_request_status.get
    assert read(request_id, sdk.scope).properties.provisioning_state == "InProgress"
    arm.quota_review(verdict="refuse")
    refused = read(request_id, sdk.scope).properties
    assert (refused.provisioning_state, refused.error.code) == ("Failed", "ContactSupport")
    assert limit_of(sdk, A100_FAMILY) == 100  # unchanged
    status, headers = ask(sdk, A100_FAMILY, 48)
    arm.quota_review(verdict="approve")
    assert (
        read(headers["location"].split("?")[0].rsplit("/", 1)[-1], sdk.scope).properties.provisioning_state
        == "Succeeded"
    )
    assert limit_of(sdk, A100_FAMILY) == 48


def test_a_reader_may_read_quota_but_not_request_it(arm, sdk):
    arm.make_caller_reader()
    assert sdk.quota.quota.get(T4_FAMILY, sdk.scope).properties.limit.value == 100
    with pytest.raises(HttpResponseError) as caught:
        ask(sdk, T4_FAMILY, 8)
    assert caught.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Quota/quotas/write" in caught.value.error.message


# -- the CLI against the fake ARM ------------------------------------------------------------------------


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def writes(arm):
    return [r for r in arm.requests if r.method != "GET"]


def test_a_fresh_subscription_from_up_to_a_created_vm(arm, azure_env, state_dir, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    arm.fresh_subscription()

    up = provision("up", "--name", "newbie", "--no-bootstrap")
    assert up.exit_code == 1
    assert error_lines(up.stderr) == [
        f"error: no quota for {T4} in eastus: family {T4_FAMILY} has a limit of 0 vCPUs, 0 in use, and up needs 4; "
        f"run `{REQUEST_T4}`"
    ]
    assert writes(arm) == [] and StateStore().load("newbie") is None and not (state_dir / "newbie").exists()

    table = provision("quota")
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any(T4 in line and T4_FAMILY in line and "no: family quota; Spot fits" in line for line in lines)
    assert lines[-1] == f"no room yet: `{REQUEST_T4}` asks Azure for 4 vCPUs of {T4_FAMILY} in eastus"
    rows = json.loads(provision("quota", "--json").stdout)
    assert [(r["size"], r["limit"], r["fits"]) for r in rows] == [
        (T4, 0, False),
        (A100, 0, False),
        ("Standard_NC40ads_H100_v5", 0, False),
    ]

    asked = provision(*REQUEST_T4.split()[1:])
    assert asked.exit_code == 0, asked.stderr
    assert asked.stdout.startswith(f"approved: {T4_FAMILY} in eastus now allows 4 vCPUs (request ")
    [put] = writes(arm)
    assert put.path.endswith(
        f"/providers/Microsoft.Compute/locations/eastus/providers/Microsoft.Quota/quotas/{T4_FAMILY}"
    )
    assert (put.query["api-version"], put.body["properties"]["limit"]["value"]) == ("2025-09-01", 4)
    kept = state_dir / command.REQUESTS_FILE
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
    assert [(e["quota"], e["limit"], e["state"]) for e in json.loads(kept.read_text())] == [(T4_FAMILY, 4, "Succeeded")]

    arm.clear_log()
    everywhere = json.loads(provision("quota", "--all-regions", "--size", T4, "--json").stdout)
    assert [r["region"] for r in everywhere if r["fits"]] == ["eastus"]
    assert len(everywhere) == len({r["region"] for r in everywhere}) > 10
    paths = [r.path.rsplit("/", 1)[-1] for r in arm.requests]
    assert (paths.count("skus"), paths.count("usages")) == (1, len(everywhere))  # one usages list per region

    up = provision("up", "--name", "newbie", "--no-bootstrap")
    assert up.exit_code == 0, up.stderr
    assert arm.resource(
        f"/subscriptions/{arm.subscription_id}/resourceGroups/dsvm-newbie/providers/Microsoft.Compute/virtualMachines/newbie"
    )


def test_a_request_under_review_is_followed_until_approved(arm, azure_env):
    arm.fresh_subscription()
    arm.quota_review(auto_approve_up_to=16)
    asked = provision("quota", "request", "--size", A100, "--region", "westus2", "--vcpus", "48", "--wait", "0")
    assert asked.exit_code == 0, asked.stderr
    [filed] = arm.quota_requests()
    assert (filed["name"], filed["limit"], filed["state"]) == (A100_FAMILY, 48, "InProgress")
    assert asked.stdout.strip() == (
        f"pending: Azure is still deciding on request {filed['id']} (a limit of 48 vCPUs on {A100_FAMILY} in westus2: "
        f"Request processing); `provision quota status {filed['id']}` shows where it stands, as does "
        "https://portal.azure.com/#view/Microsoft_Azure_Capacity/QuotaMenuBlade/~/myQuotas"
    )

    assert provision("quota", "status", filed["id"]).stdout.startswith("pending: ")
    arm.quota_review(auto_approve_up_to=0, verdict="approve")
    assert provision("quota", "status").stdout.strip() == (
        f"approved: {A100_FAMILY} in westus2 now allows 48 vCPUs (request {filed['id']})"
    )
    rows = json.loads(provision("quota", "--size", A100, "--region", "westus2", "--json").stdout)
    assert (rows[0]["limit"], rows[0]["fits"]) == (48, True)


def refused(arm):
    arm.set_quota("eastus", T4_FAMILY, 0)
    arm.quota_review(auto_approve_up_to=0, verdict="refuse")


def reader(arm):
    arm.set_quota("eastus", T4_FAMILY, 0)
    arm.make_caller_reader()


@pytest.mark.parametrize(
    "arrange, argv, code, says, filed",
    [
        (
            refused,
            [],
            1,
            "error: refused: Azure declined request {id} (a limit of 4 vCPUs on standardNCASv3_T4Family in eastus): "
            "ContactSupport: Request failed, please contact support.; ask for it in a support request: "
            "https://portal.azure.com/#create/Microsoft.Support",
            [(T4_FAMILY, 4, "Failed")],
        ),
        (
            reader,
            [],
            1,
            "error: you may not request quota in subscription {sub} (AuthorizationFailed on "
            "Microsoft.Quota/quotas/write); ask an owner of the subscription for the Quota Request Operator role, or "
            "Contributor, on it",
            [],
        ),
        (
            lambda arm: arm.set_quota("eastus", "lowPriorityCores", 0),
            ["--spot"],
            0,
            "approved: lowPriorityCores in eastus now allows 4 vCPUs (request {id})",
            [("lowPriorityCores", 4, "Succeeded")],
        ),
        (
            lambda arm: arm.set_quota("eastus", "cores", 10, current=8),
            [],
            0,
            "approved: cores in eastus now allows 12 vCPUs (request {id})",
            [("cores", 12, "Succeeded")],  # the family had room; the regional total did not
        ),
    ],
    ids=["refused", "no permission", "spot", "regional total"],
)
def test_how_else_a_request_ends(arm, azure_env, arrange, argv, code, says, filed):
    arrange(arm)
    result = provision(*REQUEST_T4.split()[1:], *argv)
    assert result.exit_code == code, result.stderr
    found = arm.quota_requests()
    assert [(r["name"], r["limit"], r["state"]) for r in found] == filed
    line = says.format(id=found[0]["id"] if found else "", sub=arm.subscription_id)
    assert (error_lines(result.stderr) if code else result.stdout.splitlines()) == [line]


def test_plan_with_quota_reads_only_and_shows_whether_up_fits(arm, azure_env, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    arm.fresh_subscription()
    plain = provision("plan")
    assert plain.exit_code == 0 and arm.requests == []
    shown = provision("plan", "--quota", "--region", "eastus,westus2")
    assert shown.exit_code == 0, shown.stderr
    assert "up fits (quota now)" in shown.stdout
    verdicts = [line for line in shown.stdout.splitlines() if "no: family quota" in line]
    assert len(verdicts) == 2 and all(T4 in line for line in verdicts)
    assert arm.requests and writes(arm) == []
