"""How often to ask Azure whether a long-running operation is done: as fast as it answers, never faster
than it asks.

azure-core's ARMPolling asks again after the operation's `Retry-After` when Azure sends one (compute
sends generous ones), else after a fixed `polling_interval` (30 s by default). A fixed interval either
wastes reads or adds up to one interval to every operation. Here, without a Retry-After, the wait
starts at FIRST s and grows by GROWTH up to `longest` (PROVISION_POLL_INTERVAL, 5 s by default): a
network resource made in 3 s is seen done within a second of it, a VM made in minutes costs a poll
every 5 s. ARM's read limits (per principal, region and subscription: a bucket of 250 reads refilled
at 25 a second, https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling)
are far off: a create polls at most four operations at once, each at most once a second.
"""

from functools import cache
from typing import Any

FIRST = 1.0  # seconds before the second poll (azure-core polls the first time at once)
GROWTH = 1.5


def delay(polls: int, longest: float) -> float:
    """Seconds to wait after the `polls`-th poll (1 for the first) when Azure named no Retry-After."""
    return min(longest, FIRST * GROWTH ** (polls - 1))


def polling(longest: float, base_url: str) -> Any:
    """A polling method for one begin_* call (pass it as `polling=`), built as the SDK builds its own."""
    return _growing_polling()(longest, path_format_arguments={"endpoint": base_url})


@cache
def _growing_polling() -> type:
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    class GrowingPolling(ARMPolling):
        """ARMPolling whose interval without a Retry-After grows (see `delay`)."""

        def __init__(self, longest: float, **kwargs: Any):
            super().__init__(timeout=delay(1, longest), **kwargs)
            self._longest, self._polls = longest, 0

        def _extract_delay(self) -> float:
            # azure-core's own choice: the response's Retry-After if any, else self._timeout.
            self._polls += 1
            self._timeout = delay(self._polls, self._longest)
            return super()._extract_delay()

    return GrowingPolling
