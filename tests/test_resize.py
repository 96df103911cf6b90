"""`provision resize` through the real SDK against the fake ARM: in place within the VM's hardware cluster, or
deallocate, resize and start; refusals before any change; AllocationFailed rolled back; two nodes; cost so far
counted at each size's price; the URL after a resize opens the notebook."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from provision import power
from provision.errors import ProvisionError
from provision.output import Output
from provision.settings import load
from provision.state import Record, StateStore
from provision.targets import target_for
from tests.conftest import provision
from tests.fakes.prices import ROWS, FakePrices, vm_row
from tests.test_e2e import URL, http, listing, render
from tests.test_stop_start import http_put, vm_id

T4, T4_8, A100 = "Standard_NC4as_T4_v3", "Standard_NC8as_T4_v3", "Standard_NC24ads_A100_v4"
A100_FAMILY = "standardNCADSA100v4Family"
SERVED = {T4: 0.5, A100: 3.5}  # $/hour the fake Retail Prices API serves (the A100 row added here)
A100_ROW = vm_row("eastus", A100, "Virtual Machines NCadsA100v4 Series", "NC24ads A100 v4", "NC24ads A100 v4", 3.5)


def vm_calls(arm, name: str) -> list[tuple[str, str]]:
    """The writes to the deployment's VMs, in order: ("PUT", vm) or ("POST", "vm/action")."""
    marker = "/providers/microsoft.compute/virtualmachines/"
    return [
        (r.method, r.path.lower().split(marker, 1)[1])
        for r in arm.requests
        if r.method in ("PUT", "POST") and marker in r.path.lower() and f"dsvm-{name}" in r.path.lower()
    ]


def size_of(arm, name: str, vm: str | None = None) -> str:
    return arm.resource(vm_id(arm, name) + ("" if vm is None else f"-{vm}"))["properties"]["hardwareProfile"]["vmSize"]


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def power_of(arm, name: str) -> str:
    found = provision("status", name, "--json")
    assert found.exit_code == 0, found.stderr
    return json.loads(found.stdout)["power_state"]


def test_an_in_place_resize_keeps_the_token_and_the_work_files_and_the_url_opens(cloud, state_dir, tmp_path):
    up = provision("up", "--name", "grow", "--detach", "--skip-check")
    assert up.exit_code == 0, up.stderr
    port, token = URL.search(up.stdout).groups()
    mine = {"type": "file", "format": "text", "content": "kept across a resize"}
    assert http_put(int(port), "/api/contents/mine.txt", token, mine) == 201
    known_hosts = (state_dir / "grow" / "known_hosts").read_text()
    cloud.arm.clear_log()

    moved = provision("resize", "grow", "--size", T4_8, "--yes", "--detach", "--skip-check")
    assert moved.exit_code == 0, moved.stderr
    assert vm_calls(cloud.arm, "grow") == [("PUT", "grow")]  # in place: no deallocate, no start
    assert (
        "the move takes about 3 min in place (Azure restarts the VM)" in moved.stderr
        and "deallocating" not in moved.stderr
    )
    assert f"'grow' is now {T4_8}" in moved.stdout
    port, again = URL.search(moved.stdout).groups()
    assert again == token  # the same token: the URL a user kept still opens
    assert http(int(port), "/api/status", token)[0] == 200
    assert "mine.txt" in listing(int(port), "", token)  # the disk (the work directory) survived the restart
    assert (state_dir / "grow" / "known_hosts").read_text() == known_hosts
    assert size_of(cloud.arm, "grow") == T4_8
    view = cloud.arm.resource(vm_id(cloud.arm, "grow"))
    assert view["properties"]["hardwareProfile"]["vmSize"] == T4_8
    dom = render(URL.search(moved.stdout).group(0), tmp_path, "jupyterlab-after-resize.png")
    assert "jp-NotebookPanel" in dom and "Train your first deep learning model" in dom
    record = StateStore(state_dir).require("grow")
    assert record.settings["size"] == T4_8 and record.power[-1]["reason"] == f"resized from {T4} to {T4_8}"
    assert provision("down", "grow", "--yes").exit_code == 0


def test_a_resize_off_the_cluster_deallocates_puts_and_starts_and_costs_each_size_at_its_price(
    cloud, state_dir, monkeypatch
):
    with FakePrices([*ROWS, A100_ROW]) as prices:
        monkeypatch.setenv("PROVISION_PRICES_ENDPOINT", prices.url)
        up = provision("up", "--name", "big", "--detach", "--skip-check")
        assert up.exit_code == 0, up.stderr
        token = URL.search(up.stdout).group(2)
        cloud.arm.clear_log()
        there = provision("resize", "big", "--size", A100, "--yes", "--detach", "--skip-check")
        assert there.exit_code == 0, there.stderr
        calls = vm_calls(cloud.arm, "big")
        shown = json.loads(provision("status", "big", "--json").stdout)
        (listed,) = json.loads(provision("list", "--json").stdout)
        cloud.arm.clear_log()
        back = provision("resize", "big", "--size", T4, "--yes", "--detach", "--skip-check")
        assert back.exit_code == 0, back.stderr
    print("T4 -> A100:\n" + there.stderr + there.stdout + "\nA100 -> T4:\n" + back.stderr + back.stdout)
    assert calls == [("POST", "big/deallocate"), ("PUT", "big"), ("POST", "big/start")]
    assert (shown["size"], shown["usd_per_hour"]) == (A100, "3.500 (Azure Retail Prices API)")
    assert (listed["size"], listed["usd_per_hour"]) == (A100, SERVED[A100])
    assert vm_calls(cloud.arm, "big") == [("POST", "big/deallocate"), ("PUT", "big"), ("POST", "big/start")]
    assert f"{A100} is not offered on the hardware that runs the VM: deallocating it to move" in there.stderr
    assert URL.search(there.stdout).group(2) == token == URL.search(back.stdout).group(2)
    assert size_of(cloud.arm, "big") == T4

    store = StateStore(state_dir)
    record = store.require("big")
    assert [(e["state"], e["reason"]) for e in record.power] == [
        ("running", "created"),
        ("deallocated", f"resizing to {A100}"),
        ("running", f"resized from {T4} to {A100}"),
        ("deallocated", f"resizing to {T4}"),
        ("running", f"resized from {A100} to {T4}"),
    ]
    assert (record.power[2]["was"], record.power[2]["usd_per_hour"]) == (SERVED[T4], SERVED[A100])
    assert (record.power[4]["was"], record.power[4]["usd_per_hour"]) == (SERVED[A100], SERVED[T4])
    # Cost so far: one hour on the T4, two on the A100, then the T4 again up to now.
    now = datetime.fromisoformat(record.power[4]["at"])
    for entry, hours_before in zip(record.power, (3, 2, 2, 0, 0), strict=True):
        entry["at"] = (now - timedelta(hours=hours_before)).isoformat(timespec="seconds")
    store.save(record)
    status = json.loads(provision("status", "big", "--json").stdout)
    cost = float(re.match(r"\$(\S+) for", status["compute_cost_so_far"]).group(1))
    assert abs(cost - (1 * SERVED[T4] + 2 * SERVED[A100])) < 0.02, status
    assert status["usd_per_hour"].startswith("0.500 ")
    assert provision("down", "big", "--yes").exit_code == 0


def test_cost_so_far_counts_each_period_at_its_own_sizes_price():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    record = Record("c", "azure", at.isoformat(), price={"usd_per_hour": 3.0})
    power.note(record, "running", "created", at)
    power.note(record, "running", "resized", at + timedelta(hours=1), usd_per_hour=3.0, was=0.5)
    power.note(record, "deallocated", "by hand", at + timedelta(hours=3))
    assert power.cost_so_far(record, at + timedelta(hours=9)) == 1 * 0.5 + 2 * 3.0
    assert power.running_hours(record, at + timedelta(hours=9)) == 3


def test_a_resize_without_quota_is_one_line_and_changes_nothing(azure_env, arm, state_dir):
    assert provision("up", "--name", "noquota", "--no-bootstrap").exit_code == 0
    arm.set_quota("eastus", A100_FAMILY, limit=16)
    arm.clear_log()
    refused = provision("resize", "noquota", "--size", A100, "--yes")
    assert refused.exit_code != 0
    assert len(errors(refused.stderr)) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert (
        f"no quota to resize to {A100} in eastus: family {A100_FAMILY} has a limit of 16 vCPUs, 0 in use, and the "
        f"resize needs 24 more; nothing was changed; run `provision quota request --size {A100} --region eastus "
        "--vcpus 24`"
    ) in refused.stderr
    assert vm_calls(arm, "noquota") == []  # nothing was asked of the VM
    assert size_of(arm, "noquota") == T4 and power_of(arm, "noquota") == "running"
    assert StateStore(state_dir).require("noquota").settings["size"] == T4


def test_allocation_failed_on_the_new_size_puts_the_old_one_back_running(azure_env, arm, booter, state_dir):
    assert provision("up", "--name", "nocap", "--no-bootstrap").exit_code == 0
    arm.no_capacity(A100)
    arm.clear_log()
    failed = provision("resize", "nocap", "--size", A100, "--yes")
    assert failed.exit_code != 0
    assert (
        f"Azure could not allocate {A100} in eastus (AllocationFailed); 'nocap' is back on {T4} and running"
        in failed.stderr
    ), failed.stderr
    assert len(errors(failed.stderr)) == 1 and "Traceback" not in failed.stderr
    assert vm_calls(arm, "nocap") == [
        ("POST", "nocap/deallocate"),
        ("PUT", "nocap"),
        ("POST", "nocap/start"),  # fails: no A100 to be had
        ("PUT", "nocap"),
        ("POST", "nocap/start"),
    ]
    assert size_of(arm, "nocap") == T4 and power_of(arm, "nocap") == "running"
    record = StateStore(state_dir).require("nocap")
    assert record.settings["size"] == T4  # the record matches Azure
    assert [e["state"] for e in record.power] == ["running", "deallocated", "running"]


def test_two_nodes_resize_together_and_the_all_reduce_runs_again(cloud, state_dir, monkeypatch):
    monkeypatch.setenv("PROVISION_EPOCHS", "1")  # the check's verdict, not its training, is under test
    up = provision("up", "--name", "pair", "--nodes", "2", "--detach", "--skip-check")
    assert up.exit_code == 0, up.stderr
    cloud.arm.clear_log()
    moved = provision("resize", "pair", "--size", T4_8, "--yes", "--detach", "--allow-cpu")
    assert moved.exit_code == 0, moved.stderr
    assert sorted(vm_calls(cloud.arm, "pair")) == [("PUT", "pair"), ("PUT", "pair-1")]
    assert size_of(cloud.arm, "pair") == T4_8 == size_of(cloud.arm, "pair", "1")
    assert re.search(r"^all-reduce passed: 4 processes", moved.stdout, re.M), moved.stdout + moved.stderr
    assert "the notebook trained on: cpu" in moved.stderr  # the GPU check ran on the new size; its verdict names it
    assert StateStore(state_dir).require("pair").allreduce["passed"]
    assert provision("down", "pair", "--yes").exit_code == 0


def test_a_machine_the_kit_did_not_make_cannot_be_resized(state_dir):
    settings = load({"target": "local", "name": "here"})
    record = Record("here", "local", "2026-01-01T00:00:00+00:00", settings={"size": T4})
    try:
        target_for(settings).plan_resize(record, A100, Output(quiet=True))
    except ProvisionError as e:
        assert str(e) == "local is a machine the kit did not create: it cannot be resized (only a VM `up` made can)"
    else:
        raise AssertionError("resize of a local machine was not refused")


def test_a_spot_resize_shows_the_new_spot_price_and_reports_an_eviction_during_the_move(
    azure_env, arm, booter, state_dir, monkeypatch
):
    from provision.targets.azure import AzureTarget

    assert provision("up", "--name", "spotty", "--spot", "--no-bootstrap").exit_code == 0
    moved = AzureTarget._set_size

    def moved_then_evicted(self, group: str, size: str) -> None:  # Azure takes the capacity back once it moved
        moved(self, group, size)
        arm.evict(vm_id(arm, "spotty"))

    monkeypatch.setattr(AzureTarget, "_set_size", moved_then_evicted)
    evicted = provision("resize", "spotty", "--size", T4_8, "--yes")  # in place: the PUT is the last step
    assert evicted.exit_code != 0
    assert re.search(rf"{T4_8}: ~\$\S+/h Spot", evicted.stderr), evicted.stderr  # the new size's spot price
    assert errors(evicted.stderr) == [
        "error: Azure evicted the Spot VM of 'spotty' during the resize (it wanted the capacity back): it is "
        f"deallocated, now {T4_8}; `provision start spotty` resumes it"
    ]
    record = StateStore(state_dir).require("spotty")
    assert record.settings["size"] == T4_8 == size_of(arm, "spotty")  # the record matches Azure
    assert (record.power[-1]["state"], record.power[-1]["reason"]) == ("evicted", "eviction seen")


def test_the_question_shows_both_prices_and_the_moves_cost_and_no_answer_changes_nothing(azure_env, arm, state_dir):
    assert provision("up", "--name", "asked", "--no-bootstrap").exit_code == 0
    arm.clear_log()
    unanswered = provision("resize", "asked", "--size", A100)  # no terminal to answer on, no --yes
    assert unanswered.exit_code != 0
    assert f"{T4}: $0.526/h; {A100}: $3.673/h" in unanswered.stderr  # the shipped table's prices
    assert "the move takes about 8 min (deallocate, resize, start): it bills at most $0.49" in unanswered.stderr
    assert errors(unanswered.stderr) == [
        "error: nothing changed (answer yes on a terminal, or pass --yes to resize without asking)"
    ]
    assert vm_calls(arm, "asked") == [] and size_of(arm, "asked") == T4


@pytest.mark.parametrize(
    ("argv", "size", "capability", "message"),
    [
        (
            [],
            A100,
            ("HyperVGenerations", "V1"),
            f"size {A100} boots only V1 images but image microsoft-dsvm:ubuntu-2204:2204-gen2:latest is V2",
        ),
        (
            ["--trusted-launch"],
            A100,
            ("TrustedLaunchDisabled", "True"),
            f"size {A100} does not allow Trusted Launch",
        ),
        (
            [],
            T4_8,
            ("AcceleratedNetworkingEnabled", "False"),
            f"size {T4_8} does not support accelerated networking, which the VM's network interface uses",
        ),
    ],
    ids=["generation", "trusted-launch", "accelerated-networking"],
)
def test_a_size_that_does_not_suit_the_image_or_network_is_one_line_and_changes_nothing(
    azure_env, arm, state_dir, argv, size, capability, message
):
    assert provision("up", "--name", "unfit", "--no-bootstrap", *argv).exit_code == 0
    arm.set_capability(size, *capability)
    arm.clear_log()
    refused = provision("resize", "unfit", "--size", size, "--yes")
    assert refused.exit_code != 0
    (error,) = errors(refused.stderr)
    assert message in error, refused.stderr
    assert vm_calls(arm, "unfit") == [] and size_of(arm, "unfit") == T4


def test_a_deallocated_deployment_takes_any_size_of_its_region_and_stays_deallocated(azure_env, arm, state_dir):
    assert provision("up", "--name", "idle", "--no-bootstrap").exit_code == 0
    assert provision("stop", "idle").exit_code == 0
    arm.clear_log()
    moved = provision("resize", "idle", "--size", A100, "--yes")
    assert moved.exit_code == 0, moved.stderr
    assert f"'idle' is now {A100}, still deallocated; `provision start idle` runs it at $" in moved.stdout
    assert "nothing bills until `provision start`" in moved.stderr
    assert vm_calls(arm, "idle") == [("PUT", "idle")]  # the size alone: no deallocate, no start
    assert size_of(arm, "idle") == A100 and power_of(arm, "idle") == "deallocated"
    record = StateStore(state_dir).require("idle")
    assert record.settings["size"] == A100
    assert [e["state"] for e in record.power] == ["running", "deallocated", "deallocated"]
    assert power.running_hours(record) < 0.1  # the resize started no billing period
