"""Polls of long-running operations through the real SDK: a Retry-After the fake ARM sends is honoured;
without one the wait starts short and grows (provision/targets/azure/polling.py)."""

from itertools import pairwise

from provision.settings import load
from provision.targets.azure import polling
from provision.targets.azure.clients import Clients

NSG = "Microsoft.Network/networkSecurityGroups"


def test_the_wait_without_a_retry_after_starts_at_a_second_and_grows_to_the_longest():
    assert [polling.delay(n, 5.0) for n in range(1, 7)] == [1.0, 1.5, 2.25, 3.375, 5.0, 5.0]
    assert [polling.delay(n, 0.02) for n in (1, 5)] == [0.02, 0.02]  # PROVISION_POLL_INTERVAL, as tests set it


def poll_intervals(arm, hold: float) -> list[float]:
    """Create a security group held `hold` s through the kit's clients; the seconds between its polls."""
    arm.add_resource_group("rg-polls", "eastus")
    arm.hold(NSG, hold)
    clients = Clients(load({"name": "polls"}))
    network = clients.network
    poller = network.network_security_groups.begin_create_or_update(
        "rg-polls", "nsg", {"location": "eastus"}, polling=clients.polling()
    )
    assert poller.result().provisioning_state == "Succeeded"
    polls = [r.at for r in arm.requests if r.is_poll]
    return [later - earlier for earlier, later in pairwise(polls)]


def test_polls_wait_the_retry_after_azure_sends(arm, azure_env):
    arm.pace(NSG, 1)  # every status answer says Retry-After: 1; PROVISION_POLL_INTERVAL is 0.02
    intervals = poll_intervals(arm, 2.5)
    assert len(intervals) >= 2
    assert all(interval >= 1.0 for interval in intervals), intervals


def test_polls_without_a_retry_after_come_quickly_then_less_often(arm, azure_env, monkeypatch):
    monkeypatch.delenv("PROVISION_POLL_INTERVAL")  # the kit's default: at most 5 s apart
    arm.pace(NSG, 0)  # its polls name no Retry-After (Azure's would ask for 10 s)
    intervals = poll_intervals(arm, 3.0)
    assert len(intervals) == 3, intervals  # polls at once, then after 1, 1.5 and 2.25 s
    assert intervals[0] >= 1.0 and intervals[1] >= 1.5 and intervals[2] >= 2.25
    assert intervals[2] > intervals[0]
