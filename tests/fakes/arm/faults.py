"""Injected faults: an immediate ARM error, a dropped connection, or an LRO that ends Failed."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from . import pacing
from .errors import ArmError

_DEFAULT_CODES = {
    400: "BadRequest",
    404: "NotFound",
    409: "Conflict",
    429: "SubscriptionRequestsThrottled",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


@dataclass
class Fault:
    """Handle returned by FakeARM.inject; `fired` counts the requests it answered."""

    method: str
    pattern: re.Pattern
    status: int | None
    code: str | None
    message: str
    retry_after: float | None
    async_failure: bool
    drop_connection: bool
    remaining: int
    poll_of: str | None = None  # only status polls of operations on this kind
    fired: int = 0

    def matches(self, method: str, path: str, polled_kind: str | None = None) -> bool:
        if self.poll_of is not None and (polled_kind or "").lower() != self.poll_of.lower():
            return False
        return self.method in ("*", method.upper()) and self.pattern.search(path.lower()) is not None

    def error(self) -> ArmError:
        return ArmError(self.message, code=self.code, status=self.status)

    def headers(self, time_scale: float) -> dict[str, str]:
        """A 429 asks to wait `retry_after` seconds (ARM's throttling answer: 429 SubscriptionRequestsThrottled with
        Retry-After, DESIGN.md "checked facts"), scaled as every wait the fake imposes (pacing.headers)."""
        if self.status == 429:
            return pacing.headers((self.retry_after or 0) * time_scale, time_scale)
        return {}


class FaultRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        method: str,
        path_regex: str,
        *,
        status: int | None,
        code: str | None,
        message: str,
        retry_after: float | None,
        async_failure: bool,
        drop_connection: bool,
        times: int,
        poll_of: str | None = None,
    ) -> Fault:
        kinds = [status is not None and not async_failure, async_failure, drop_connection]
        if sum(kinds) != 1:
            raise ValueError("inject: give exactly one of status=..., async_failure=True, drop_connection=True")
        if poll_of is not None and (async_failure or method.upper() != "GET"):
            raise ValueError("inject: poll_of= is for faults on status polls (GET, not async_failure)")
        if async_failure and not code:
            raise ValueError("inject: async_failure needs code=")
        if times < 1:
            raise ValueError("inject: times must be at least 1")
        if status is not None and not code:
            code = _DEFAULT_CODES.get(status, "InjectedFault")
        fault = Fault(
            method.upper(),
            re.compile(path_regex),
            status,
            code,
            message,
            retry_after,
            async_failure,
            drop_connection,
            times,
            poll_of,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str, *, asynchronous: bool, polled_kind: str | None = None) -> Fault | None:
        """The first live fault of that sort matching the request, now counted as fired.

        polled_kind: the kind of the operation whose status the request polls, if it is a poll.
        """
        with self._lock:
            for fault in self._faults:
                if fault.async_failure == asynchronous and fault.matches(method, path, polled_kind):
                    fault.fired += 1
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def give_back(self, fault: Fault) -> None:
        """Undo `take` for a request that turned out not to start an operation."""
        with self._lock:
            fault.fired -= 1
            fault.remaining += 1
            if fault not in self._faults:
                self._faults.insert(0, fault)
