"""`provision stop` and `start`: deallocate and start through the real SDK against the fake ARM; the fake VM's
real sshd stops and comes back with the same host key, Jupyter with the same token and notebooks; eviction."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from provision import power
from provision.errors import ProvisionError
from provision.output import Output
from provision.settings import load
from provision.state import Record, StateStore
from provision.targets.ssh import SSHTarget
from tests.conftest import console, provision
from tests.fakes.prices import FakePrices
from tests.test_e2e import URL, http, jupyter_pids, listing, port_open, render

VM_ID = "/subscriptions/{sub}/resourceGroups/dsvm-{name}/providers/Microsoft.Compute/virtualMachines/{name}"


def vm_id(arm, name: str) -> str:
    return VM_ID.format(sub=arm.subscription_id, name=name)


def status_of(name: str) -> dict:
    result = provision("status", name, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


SERVED_T4 = 0.5  # $/hour of the fake Retail Prices API's Linux pay-as-you-go T4 row (tests/fakes/prices.py)


def test_stop_deallocates_and_start_brings_back_the_same_machine_token_and_notebooks(cloud, state_dir, tmp_path):
    with FakePrices() as prices:  # `up` records the price it quoted; status and stop use that record
        env = {**cloud.env, "PROVISION_PRICES_ENDPOINT": prices.url}
        up = console("up", "--name", "sst", "--detach", "--skip-check", env=env, timeout=600)
    assert up.exit_code == 0, up.stderr
    port, token = URL.search(up.stdout).groups()
    ssh_port = int(cloud.env["PROVISION_SSH_PORT"])
    mine = {"type": "file", "format": "text", "content": "kept across a deallocation"}
    assert http_put(int(port), "/api/contents/mine.txt", token, mine) == 201
    known_hosts = (state_dir / "sst" / "known_hosts").read_text()

    stop = console("stop", "sst", env=cloud.env)
    assert stop.exit_code == 0, stop.stderr
    disk = StateStore(state_dir).require("sst").price["disk_usd_per_month"]  # quoted at `up`
    assert f"'sst' is deallocated: its compute no longer bills, its OS disk (E15) still bills ${disk:.2f}/month" in (
        stop.stdout
    )
    assert "closed the SSH tunnel" in stop.stderr
    assert not port_open(ssh_port) and not port_open(int(port))  # the VM's sshd and the tunnel are gone
    assert jupyter_pids(cloud.user) == []  # powered off: no process of the user survives
    stopped = status_of("sst")
    assert (stopped["power_state"], stopped["tunnel"]) == ("deallocated", "closed")
    assert stopped["power_changed"].startswith("deallocated at ") and stopped["power_changed"].endswith("(by hand)")

    start = console("start", "sst", "--detach", env=cloud.env, timeout=600)
    assert start.exit_code == 0, start.stderr
    port, again = URL.search(start.stdout).groups()
    assert again == token  # the same token: the URL a user kept still opens
    assert http(int(port), "/api/status", token)[0] == 200
    assert http(int(port), "/api/status", "wrong-token")[0] == 403
    assert "mine.txt" in listing(int(port), "", token)  # the disk survived the deallocation
    dom = render(URL.search(start.stdout).group(0), tmp_path, "jupyterlab-after-start.png")
    assert "jp-NotebookPanel" in dom and "Train your first deep learning model" in dom  # the URL works in a browser
    assert (state_dir / "sst" / "known_hosts").read_text() == known_hosts
    ssh = console("ssh", "sst", "--", "echo", "pinned", env=cloud.env, timeout=60)  # OpenSSH, StrictHostKeyChecking
    assert (ssh.exit_code, ssh.stdout.strip()) == (0, "pinned"), ssh.stderr

    status = console("status", "sst", env=cloud.env)
    print(status.stdout)  # for the report
    store = StateStore(state_dir)
    record = store.require("sst")
    assert [(e["state"], e["reason"]) for e in record.power] == [
        ("running", "created"),
        ("deallocated", "by hand"),
        ("running", "started"),
    ]
    # The cost so far, from the history: stretch its first running spell to an hour, so that a wrong figure shows.
    started_at = datetime.fromisoformat(record.power[2]["at"])
    record.power[0]["at"] = (started_at - timedelta(hours=2)).isoformat(timespec="seconds")
    record.power[1]["at"] = (started_at - timedelta(hours=1)).isoformat(timespec="seconds")
    store.save(record)
    before = datetime.now(UTC)
    started = status_of("sst")
    after = datetime.now(UTC)
    assert (started["power_state"], started["tunnel"]) == ("running", "open")
    assert started["usd_per_hour"] == f"{SERVED_T4:.3f} (Azure Retail Prices API)"
    hours = [1 + (now - started_at).total_seconds() / 3600 for now in (before, after)]
    cost, ran = re.fullmatch(r"\$(\S+) for (\S+) h running \(the disk aside\)", started["compute_cost_so_far"]).groups()
    assert float(f"{hours[0]:.2f}") <= float(ran) <= float(f"{hours[1]:.2f}"), (hours, started)
    assert float(f"{hours[0] * SERVED_T4:.2f}") <= float(cost) <= float(f"{hours[1] * SERVED_T4:.2f}"), (hours, started)
    assert console("down", "sst", "--yes", env=cloud.env).exit_code == 0
    assert cloud.arm.inventory() == []


def http_put(port: int, path: str, token: str, body: dict) -> int:
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def test_an_evicted_spot_vm_shows_as_evicted_and_start_resumes_it_once_azure_has_capacity(arm, azure_env, state_dir):
    assert provision("up", "--name", "spot", "--spot", "--no-bootstrap").exit_code == 0
    arm.evict(vm_id(arm, "spot"))

    assert status_of("spot")["power_state"] == "evicted"
    listed = json.loads(provision("list", "--json").stdout)
    assert [(row["name"], row["state"]) for row in listed] == [("spot", "evicted")]
    history = StateStore(state_dir).require("spot").power
    assert [(e["state"], e["reason"]) for e in history] == [("running", "created"), ("evicted", "eviction seen")]

    for code in ("AllocationFailed", "SkuNotAvailable", "OverconstrainedAllocationRequest"):
        arm.inject("POST", r"/virtualmachines/spot/start$", code=code, async_failure=True)
        refused = provision("start", "spot")
        assert refused.exit_code == 1
        assert refused.stderr.strip().splitlines()[-1] == (
            f"error: Azure has no Spot capacity for Standard_NC4as_T4_v3 in eastus right now ({code}); "
            "try `provision start spot` later"
        )
        assert status_of("spot")["power_state"] == "evicted"

    resumed = provision("start", "spot")
    assert resumed.exit_code == 0, resumed.stderr
    assert status_of("spot")["power_state"] == "running"
    listed = provision("list")
    assert "running now: 1 priced deployment(s), $" in listed.stdout


def test_up_on_a_stopped_deployment_starts_it_only_when_told_yes(arm, azure_env, monkeypatch):
    assert provision("up", "--name", "stp", "--no-bootstrap").exit_code == 0
    assert provision("stop", "stp").exit_code == 0
    monkeypatch.delenv("PROVISION_YES")

    refused = provision("up", "--name", "stp", "--no-bootstrap")
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: the VM of 'stp' is deallocated; `provision start stp` starts it"
    )
    assert status_of("stp")["power_state"] == "deallocated"

    assert provision("up", "--name", "stp", "--no-bootstrap", "--yes").exit_code == 0
    assert status_of("stp")["power_state"] == "running"


def test_local_and_ssh_targets_refuse_to_stop_in_one_line(state_dir, tmp_path):
    assert provision("up", "--name", "here", "--target", "local", "--no-bootstrap").exit_code == 0
    for verb in ("stop", "start"):
        result = provision(verb, "here")
        assert result.exit_code == 1
        assert result.stderr.strip() == (
            f"error: --target local has no VM to {verb}: `provision {'down' if verb == 'stop' else 'up'}` "
            f"{'stops' if verb == 'stop' else 'starts'} its Jupyter"
        )
    target = SSHTarget(load({"target": "ssh://me@example.net:2222"}))
    record = Record("far", "ssh://me@example.net:2222", "2026-12-01T00:00:00+00:00")
    with pytest.raises(ProvisionError, match=r"^ssh://me@example.net:2222 is a machine the kit did not create"):
        target.stop(record, Output())


def test_cost_so_far_counts_running_hours_only():
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    record = Record("c", "azure", t0.isoformat(), price={"usd_per_hour": 0.5})
    power.note(record, "running", "created", at=t0)
    power.note(record, "deallocated", "by hand", at=t0 + timedelta(hours=2))
    power.note(record, "running", "started", at=t0 + timedelta(hours=3))
    assert power.running_hours(record, now=t0 + timedelta(hours=3.5)) == 2.5
    assert power.cost_so_far(record, now=t0 + timedelta(hours=3.5)) == 1.25
    power.note(record, "evicted", "eviction seen", at=t0 + timedelta(hours=4))
    assert power.running_hours(record, now=t0 + timedelta(hours=9)) == 3.0
