"""How the kit waits for a long-running Azure operation: never asking about it before Azure said to, and as soon as
it is done.

Azure names, on the response that starts an operation and on each status poll, how long to wait before the next one
(`Retry-After`: a network PUT says 3 s, then 10; a VM create 10 s, then 50; DESIGN.md section 9). azure-core honours
it between polls but polls the first time at once, earlier than Azure asked; here every poll, the first included,
waits for the Retry-After its operation last sent. Without one, the wait starts at FIRST s and grows by GROWTH up to
`longest` (PROVISION_POLL_INTERVAL, 5 s by default).

A Retry-After paces the operation's status URL, not the resource: while it runs, a create (PUT) or delete reads the
resource itself, which says it is done (`provisioningState` Succeeded, or 404 once deleted) as soon as it is. Those
reads start at PROBE_FIRST s apart and grow by GROWTH up to PROBE_LONGEST, farther apart for Compute, which counts
reads of one VM (`x-ms-ratelimit-remaining-resource: Microsoft.Compute/LowCostGetResource;35` in recording B). ARM's
own read limits (a bucket of 250 reads per principal, region and subscription, refilled at 25 a second,
https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling) are far off.
Every wait is bounded by the caller (poller.wait(limit)).
"""

import time
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

FIRST = 1.0  # seconds before the second poll when Azure names no Retry-After (the first is at once)
GROWTH = 1.5
PROBE_FIRST = 0.25
PROBE_LONGEST = {"microsoft.compute": 2.0}
PROBE_LONGEST_DEFAULT = 0.5
DONE, GONE, FAILED = "Succeeded", 404, ("Failed", "Canceled")


def delay(polls: int, longest: float) -> float:
    """Seconds to wait after the `polls`-th poll (1 for the first) when Azure named no Retry-After."""
    return min(longest, FIRST * GROWTH ** (polls - 1))


def polling(longest: float, base_url: str, *, probe: bool = False) -> Any:
    """A polling method for one begin_* call (pass it as `polling=`), built as the SDK builds its own; with `probe`,
    the resource the request created or deletes is read while its operation's Retry-After runs."""
    return _paced_polling()(longest, probe, path_format_arguments={"endpoint": base_url})


def retry_after(response: Any) -> float | None:
    """The seconds a response asks to wait before the next poll (None: it names none): its Retry-After (ARM writes
    whole seconds), else its retry-after-ms or x-ms-retry-after-ms, in the order azure-core reads them."""
    headers = response.http_response.headers
    for name, unit in (("Retry-After", 1), ("retry-after-ms", 1000), ("x-ms-retry-after-ms", 1000)):
        try:
            seconds = float(headers.get(name) or "") / unit
        except ValueError:
            continue
        return seconds or None
    return None


@cache
def _paced_polling() -> type:
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    class PacedPolling(ARMPolling):
        """ARMPolling that waits out every Retry-After (see the module's docstring) and may probe the resource."""

        def __init__(self, longest: float, probe: bool, **kwargs: Any):
            super().__init__(timeout=delay(1, longest), **kwargs)
            self._longest, self._probe, self._polls = longest, probe, 0
            self._not_before = self._probe_at = 0.0
            self._probe_wait = PROBE_FIRST

        def initialize(self, client: Any, initial_response: Any, deserialization_callback: Any) -> None:
            super().initialize(client, initial_response, deserialization_callback)
            now = time.monotonic()
            self._not_before = now + (retry_after(initial_response) or 0)
            self._probe_at = now + PROBE_FIRST
            url = initial_response.http_response.request.url
            namespace = url.lower().split("/providers/")[-1].split("/")[0]
            self._probe_longest = PROBE_LONGEST.get(namespace, PROBE_LONGEST_DEFAULT)

        def _delay(self) -> None:
            """The waits happen in update_status, before every poll (azure-core sends the first without one)."""

        def update_status(self) -> None:
            if self._probe and self._probed_done():
                return
            time.sleep(max(0.0, self._not_before - time.monotonic()))
            super().update_status()
            self._polls += 1
            asked = retry_after(self._pipeline_response)
            self._not_before = time.monotonic() + (asked or delay(self._polls, self._longest))

        def _probed_done(self) -> bool:
            """Read the resource until the next poll is due; True (the operation done) when it says so."""
            request = self._initial_response.http_response.request
            url = _resource_url(request.url)
            while self._probe_at < self._not_before:
                time.sleep(max(0.0, self._probe_at - time.monotonic()))
                response = self.request_status(url)
                self._probe_wait = min(self._probe_wait * GROWTH, self._probe_longest)
                self._probe_at = time.monotonic() + self._probe_wait
                state = _state_of(response.http_response, request.method)
                if state == DONE:
                    self._pipeline_response, self._status = response, DONE
                    return True
                if state in FAILED:  # its operation's status says why, when Azure lets us ask
                    self._probe = False
                    return False
            return False

    return PacedPolling


def _resource_url(request_url: str) -> str:
    """The resource a PUT or DELETE acts on: its URL with the api-version alone (no forceDeletionTypes, say)."""
    split = urlsplit(request_url)
    query = urlencode([(k, v) for k, v in parse_qsl(split.query) if k.lower() == "api-version"])
    return urlunsplit(split._replace(query=query))


def _state_of(response: Any, method: str) -> str | None:
    """What a read of the resource says of a PUT (its provisioningState) or a DELETE (DONE once it is gone)."""
    if method == "DELETE":
        return DONE if response.status_code == GONE else None
    if response.status_code != 200:
        return None
    try:
        return (response.json().get("properties") or {}).get("provisioningState")
    except ValueError:
        return None
