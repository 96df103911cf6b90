"""When Azure asks to be polled again: the Retry-After of the response that starts an operation and of its status
polls while it runs, as Azure's own recordings show them (DESIGN.md section 9; tests/test_recorded_azure.py keeps
the recorded facts beside their sources). Seconds at time scale 1: FakeARM(time_scale=...) multiplies them.

Source B: Azure/azure-sdk-assets, python/sdk/compute/azure-mgmt-compute/tests/recordings/
test_mgmt_compute_vm.pyTestMgmtComputetest_compute_vm.json (a test-proxy recording, which keeps Retry-After; the
YAML recordings strip it). Where no recording shows a Retry-After (NIC PUTs, start, deallocate, powerOff, group
and network deletes), the fake sends none.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pace:
    first: float | None  # on the response that starts the operation (None: no Retry-After)
    polls: tuple[float, ...] = ()  # on the 1st, 2nd, ... status poll while it runs; the last repeats

    def on_poll(self, index: int) -> float | None:
        """The Retry-After of the status poll `index` (0 for the first) while the operation runs."""
        return self.polls[min(index, len(self.polls) - 1)] if self.polls else None


NONE = Pace(None)
# B, PUT virtualNetworks/networknamexeb772750 and PUT .../subnets/subnetxeb772750: 201 Retry-After 3; the
# VNet's first poll {"status": "InProgress"} Retry-After 10 (the same for NSGs and public IPs: DESIGN.md section 9).
NETWORK_PUT = Pace(3, (10,))
# B, PUT virtualMachines/virtualmachinexeb772750: 201 Retry-After 10; its first poll InProgress Retry-After 50.
VM_PUT = Pace(10, (50,))
# B, DELETE virtualMachines/virtualmachinexeb772750: 202 Retry-After 10; its first poll Retry-After 30.
VM_DELETE = Pace(10, (30,))
# B, POST virtualMachines/virtualmachinexeb772750/restart: 202 Retry-After 10; polls Retry-After 10, 30, 30.
VM_RESTART = Pace(10, (10, 30))

_PUTS = {
    "microsoft.network/virtualnetworks": NETWORK_PUT,
    "microsoft.network/networksecuritygroups": NETWORK_PUT,
    "microsoft.network/publicipaddresses": NETWORK_PUT,
    "microsoft.compute/virtualmachines": VM_PUT,
}


def for_put(kind: str) -> Pace:
    return _PUTS.get(kind.lower(), NONE)


def for_delete(kind: str) -> Pace:
    return VM_DELETE if kind.lower() == "microsoft.compute/virtualmachines" else NONE


def for_action(action: str) -> Pace:
    return VM_RESTART if action.lower() == "restart" else NONE


def headers(seconds: float, time_scale: float) -> dict[str, str]:
    """The header that asks to wait `seconds`: Retry-After in whole seconds, as Azure writes it, at time scale 1. A
    scaled wait cannot be a decimal Retry-After: the azure-mgmt clients read that header as an int on every
    operation's first response (ValueError on "0.03"). It goes as `retry-after-ms`, which azure-core's pollers and
    retries read when there is no Retry-After (azure.core.pipeline.policies._utils.get_retry_after)."""
    if time_scale == 1:
        return {"Retry-After": f"{seconds:g}"}
    return {"retry-after-ms": str(max(1, round(seconds * 1000)))}


def seconds_asked(headers: dict[str, str]) -> float | None:
    """The wait a response's headers ask for, in seconds (None: none)."""
    if "Retry-After" in headers:
        return float(headers["Retry-After"])
    return int(headers["retry-after-ms"]) / 1000 if "retry-after-ms" in headers else None
