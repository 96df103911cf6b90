"""State of the fake ARM: resource groups, resources, long-running operations.

`ArmState` is the store every provider model (network.py, compute.py) writes through. It owns
one re-entrant lock; anything that can block (the booter) runs outside it. Long-running
operations finish lazily: `settle()` (called before every request and by every accessor of
FakeARM) completes those whose hold time has passed, so a test sees a deterministic order.
"""

from __future__ import annotations

import copy
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import pacing
from .catalog import normalize_location
from .errors import (
    ArmError,
    Conflict,
    InvalidParameter,
    NotFound,
    ResourceGroupBeingDeleted,
    ResourceGroupNotFound,
    ResourceNotFound,
)

GROUP_KIND = "Microsoft.Resources/resourceGroups"
SCHEDULE_KIND = "Microsoft.DevTestLab/schedules"


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


def new_guid() -> str:
    return str(uuid.uuid4())


@dataclass
class Entry:
    """One stored resource: `body` is what GET returns (before kind-specific views), `meta` is private."""

    kind: str
    group: str  # resource group key (lower case)
    body: dict
    meta: dict = field(default_factory=dict)
    generation: int = 0

    @property
    def id(self) -> str:
        return self.body["id"]

    @property
    def name(self) -> str:
        return self.body["name"]

    @property
    def properties(self) -> dict:
        return self.body.setdefault("properties", {})

    def set_state(self, state: str) -> None:
        self.properties["provisioningState"] = state


@dataclass
class Group:
    body: dict
    delete_operation: Operation | None = None

    @property
    def name(self) -> str:
        return self.body["name"]

    @property
    def location(self) -> str:
        return self.body["location"]

    @property
    def deleting(self) -> bool:
        return self.delete_operation is not None


class OperationCanceled(ArmError):
    """The resource an operation worked on was replaced or deleted before it finished."""

    code = "OperationPreempted"


@dataclass
class Operation:
    id: str
    kind: str  # whose hold applies
    location: str
    begun: float  # clock() when it started
    finish: Callable[[], None]
    failure: ArmError | None = None
    on_failure: Callable[[ArmError], None] | None = None
    status: str = "InProgress"
    error: ArmError | None = None
    started: str = field(default_factory=utc_now)
    ended: str | None = None
    claimed: bool = False
    early: Callable[[], None] | None = None  # runs FakeARM.boot_after seconds in, while still InProgress
    early_done: bool = False
    pace: pacing.Pace = pacing.NONE  # the Retry-After Azure sends when it starts and on each poll while it runs
    polls: int = 0  # status polls answered while it ran

    @property
    def namespace(self) -> str:
        return self.kind.split("/")[0]

    def status_body(self) -> dict:
        """The Azure-AsyncOperation status: Network's is the status alone, `{"status": "InProgress"}`; Compute's adds
        startTime and name, and endTime once done (DESIGN.md section 9, recordings A and B). A failed operation adds
        `error` (the Failed status of an action is a 200 on this URL, never a 4xx)."""
        body: dict = {"status": self.status}
        if self.namespace == "Microsoft.Compute":
            body = {
                "startTime": self.started,
                **({"endTime": self.ended} if self.ended else {}),
                **body,
                "name": self.id,
            }
        if self.error is not None:
            body["error"] = self.error.body()
        return body


@dataclass(frozen=True)
class PutResult:
    created: bool
    body: dict
    operation: Operation | None = None
    headers: dict[str, str] = field(default_factory=dict)  # a synchronous create's own (a Location, say)


@dataclass(frozen=True)
class DeleteResult:
    existed: bool
    operation: Operation | None = None


@dataclass(frozen=True)
class KindSpec:
    """How routes serve one resource type under /resourceGroups/{rg}/providers/{namespace}/{type}/{name}."""

    kind: str
    put: Callable[..., PutResult] | None
    delete: Callable[[str, str, ArmError | None], DeleteResult] | None
    view: Callable[[Entry], dict]
    release: Callable[[Entry], None] | None = None  # teardown when the group's delete removes it


class ArmState:
    def __init__(
        self,
        subscription_id: str,
        public_ip: str,
        booter,
        clock: Callable[[], float] = time.monotonic,
        time_scale: float = 1.0,
    ):
        self.lock = threading.RLock()
        self.time_scale = time_scale  # multiplies Azure's recorded waits (Retry-After, read lag, replication)
        self.subscription_id = subscription_id
        self.public_ip = public_ip
        self.booter = booter
        self.clock = clock
        self.groups: dict[str, Group] = {}
        self.entries: dict[str, Entry] = {}
        self.operations: dict[str, Operation] = {}
        self.holds: dict[str, float] = {}
        self.paces: dict[str, float] = {}
        self.boot_after: float | None = None
        self.kinds: dict[str, KindSpec] = {}
        # NIC id -> loopback address, when FakeARM(loopback_private_ips=True); the public IP's 127.0.0.1 stays out
        self.loopback_private_ips: dict[str, str] | None = None
        self.register(KindSpec(SCHEDULE_KIND, self.put_schedule, self.delete_schedule, self.plain_view))

    # -- registry and ids ---------------------------------------------------------------------

    def register(self, spec: KindSpec) -> None:
        self.kinds[spec.kind.lower()] = spec

    def kind_spec(self, namespace: str, type_name: str) -> KindSpec | None:
        return self.kinds.get(f"{namespace}/{type_name}".lower())

    def group_id(self, group: str) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{group}"

    def resource_id(self, group: str, kind: str, name: str) -> str:
        return f"{self.group_id(group)}/providers/{kind}/{name}"

    # -- holds and operations -----------------------------------------------------------------

    def hold(self, kind: str, seconds: float) -> None:
        with self.lock:
            if seconds > 0:
                self.holds[kind.lower()] = seconds
            else:
                self.holds.pop(kind.lower(), None)

    def hold_for(self, kind: str) -> float:
        with self.lock:
            return self.holds.get(kind.lower(), self.holds.get("*", 0.0))

    def pace(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.paces[kind.lower()] = seconds

    def retry_after(self, operation: Operation, *, first: bool) -> float | None:
        """Seconds of the Retry-After to send for `operation`: on the response that starts it (first), or on a status
        poll while it runs (counted); FakeARM.pace overrides the recorded polls' values, unscaled."""
        if first:
            seconds = operation.pace.first
        else:
            with self.lock:
                override = self.paces.get(operation.kind.lower())
                seconds = operation.pace.on_poll(operation.polls)
                operation.polls += 1
            if override is not None:
                return override or None
        return seconds * self.time_scale if seconds and self.time_scale else None

    def start_operation(
        self,
        kind: str,
        location: str,
        finish: Callable[[], None],
        *,
        failure: ArmError | None = None,
        on_failure: Callable[[ArmError], None] | None = None,
        early: Callable[[], None] | None = None,
        pace: pacing.Pace = pacing.NONE,
    ) -> Operation:
        """Register an LRO on `kind`; it stays InProgress while the kind's hold lasts. `early` runs
        boot_after seconds after it began, should it still be InProgress then (see FakeARM.boot_after)."""
        operation = Operation(
            id=new_guid(),
            kind=kind,
            location=normalize_location(location),
            begun=self.clock(),
            finish=finish,
            failure=failure,
            on_failure=on_failure,
            early=early,
            pace=pace,
        )
        with self.lock:
            self.operations[operation.id] = operation
        return operation

    def is_immediate(self, operation: Operation) -> bool:
        """True when nothing holds or fails it, so the request itself may complete it."""
        return operation.failure is None and self._is_due(operation, self.clock())

    def _is_due(self, operation: Operation, now: float) -> bool:
        """Holds are read now, not when the operation began: lowering one releases what it held."""
        return operation.begun + self.hold_for(operation.kind) <= now

    def complete_now(self, operation: Operation) -> None:
        with self.lock:
            if operation.claimed:
                return
            operation.claimed = True
        self._complete(operation)

    def operation(self, operation_id: str) -> Operation:
        with self.lock:
            operation = self.operations.get(operation_id.lower())
        if operation is None:
            raise NotFound(f"The operation '{operation_id}' was not found.")
        return operation

    def settle(self) -> None:
        """Finish every operation whose hold has passed (booter calls happen outside the lock)."""
        now = self.clock()
        with self.lock:
            due = [op for op in self.operations.values() if not op.claimed and self._is_due(op, now)]
            for operation in due:
                operation.claimed = True
            early = [
                op
                for op in self.operations.values()
                if op.early is not None
                and not op.claimed
                and not op.early_done
                and self.boot_after is not None
                and op.begun + self.boot_after <= now
            ]
            for operation in early:
                operation.early_done = True
        for operation in early:
            operation.early()
        for operation in due:
            self._complete(operation)

    def _complete(self, operation: Operation) -> None:
        status, error = "Succeeded", None
        try:
            if operation.failure is not None:
                raise operation.failure
            operation.finish()
        except OperationCanceled as canceled:
            status, error = "Canceled", canceled
        except ArmError as failed:
            status, error = "Failed", failed
        except Exception as bug:  # a bug in the fake: make it visible, fail the operation
            traceback.print_exc(file=sys.stderr)
            status, error = "Failed", ArmError(f"fake ARM bug: {bug!r}", code="InternalServerError")
        if status == "Failed" and operation.on_failure is not None:
            operation.on_failure(error)
        with self.lock:
            operation.status, operation.error, operation.ended = status, error, utc_now()

    # -- resource groups ----------------------------------------------------------------------

    def require_group(self, group: str, *, for_write: bool = False) -> Group:
        with self.lock:
            found = self.groups.get(group.lower())
            if found is None:
                raise ResourceGroupNotFound(group)
            if for_write and found.deleting:
                raise ResourceGroupBeingDeleted(found.name)
            return found

    def add_group(self, name: str, location: str, tags: dict | None) -> Group:
        body: dict = {
            "id": self.group_id(name),
            "name": name,
            "type": GROUP_KIND,
            "location": normalize_location(location),
            "properties": {"provisioningState": "Succeeded"},
        }
        if tags is not None:
            body["tags"] = dict(tags)
        group = Group(body)
        with self.lock:
            self.groups[name.lower()] = group
        return group

    def put_group(self, name: str, body: dict) -> PutResult:
        location = body.get("location")
        if not location:
            raise ArmError("The location property is required for this definition.", code="LocationRequired")
        with self.lock:
            existing = self.groups.get(name.lower())
            if existing is None:
                created = self.add_group(name, location, body.get("tags"))
                return PutResult(True, copy.deepcopy(created.body))
            if existing.deleting:
                raise ResourceGroupBeingDeleted(existing.name)
            if normalize_location(location) != existing.location:
                raise Conflict(
                    f"Invalid resource group location '{location}'. The Resource group already "
                    f"exists in location '{existing.location}'.",
                    code="InvalidResourceGroupLocation",
                )
            self._set_tags(existing.body, body.get("tags"))
            return PutResult(False, copy.deepcopy(existing.body))

    def patch_group(self, name: str, body: dict) -> dict:
        with self.lock:
            group = self.require_group(name, for_write=True)
            if "tags" in body:
                self._set_tags(group.body, body["tags"])
            return copy.deepcopy(group.body)

    @staticmethod
    def _set_tags(body: dict, tags: dict | None) -> None:
        if tags is None:
            body.pop("tags", None)
        else:
            body["tags"] = dict(tags)

    def get_group(self, name: str) -> dict:
        with self.lock:
            return copy.deepcopy(self.require_group(name).body)

    def list_groups(self, tag_filter: Callable[[dict], bool]) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(g.body) for g in self.groups.values() if tag_filter(g.body.get("tags") or {})]

    def delete_group(self, name: str, failure: ArmError | None) -> Operation:
        with self.lock:
            group = self.require_group(name)
            if group.delete_operation is not None:
                return group.delete_operation
            group.body["properties"]["provisioningState"] = "Deleting"

            def finish() -> None:
                with self.lock:
                    members = self.entries_in_group(group.name)
                for entry in members:
                    spec = self.kinds.get(entry.kind.lower())
                    if spec is not None and spec.release is not None:
                        spec.release(entry)
                with self.lock:
                    for entry in members:
                        self.entries.pop(entry.id.lower(), None)
                    self.groups.pop(group.name.lower(), None)

            def on_failure(_: ArmError) -> None:
                with self.lock:
                    group.delete_operation = None
                    group.body["properties"]["provisioningState"] = "Succeeded"

            group.delete_operation = self.start_operation(
                GROUP_KIND, group.location, finish, failure=failure, on_failure=on_failure
            )
            return group.delete_operation

    # -- resources ----------------------------------------------------------------------------

    def find(self, resource_id: str) -> Entry | None:
        with self.lock:
            return self.entries.get(resource_id.rstrip("/").lower())

    def lookup(self, group: str, kind: str, name: str) -> Entry | None:
        """The entry, None if absent; raises ResourceGroupNotFound if the group is missing."""
        with self.lock:
            found = self.require_group(group)
            return self.entries.get(self.resource_id(found.name, kind, name).lower())

    def require(self, group: str, kind: str, name: str) -> Entry:
        entry = self.lookup(group, kind, name)
        if entry is None:
            raise ResourceNotFound(kind, name, group)
        return entry

    def store(self, entry: Entry) -> None:
        with self.lock:
            entry.generation += 1
            self.entries[entry.id.lower()] = entry

    def remove(self, entry: Entry) -> None:
        with self.lock:
            self.entries.pop(entry.id.lower(), None)

    def is_current(self, entry: Entry, generation: int) -> bool:
        with self.lock:
            return self.entries.get(entry.id.lower()) is entry and entry.generation == generation

    def entries_in_group(self, group: str) -> list[Entry]:
        with self.lock:
            return [e for e in self.entries.values() if e.group == group.lower()]

    def entries_of(self, kind: str, group: str | None = None) -> list[Entry]:
        with self.lock:
            return [
                e
                for e in self.entries.values()
                if e.kind.lower() == kind.lower() and (group is None or e.group == group.lower())
            ]

    def view(self, entry: Entry) -> dict:
        spec = self.kinds.get(entry.kind.lower())
        with self.lock:
            return spec.view(entry) if spec else self.plain_view(entry)

    @staticmethod
    def plain_view(entry: Entry) -> dict:
        return copy.deepcopy(entry.body)

    def body_of(self, resource_id: str) -> dict | None:
        """GET's view of a resource group or resource, by id (case-insensitive)."""
        wanted = resource_id.rstrip("/").lower()
        with self.lock:
            group = next((g for g in self.groups.values() if g.body["id"].lower() == wanted), None)
            if group is not None:
                return copy.deepcopy(group.body)
            entry = self.entries.get(wanted)
            return self.view(entry) if entry is not None else None

    def inventory(self) -> list[str]:
        with self.lock:
            ids = [g.body["id"] for g in self.groups.values()] + [e.id for e in self.entries.values()]
        return sorted(ids)

    def new_entry(
        self,
        group: Group,
        kind: str,
        name: str,
        body: dict,
        *,
        type_name: str | None = None,
        resource_id: str | None = None,
    ) -> Entry:
        """An entry with ARM's envelope (id, name, type, location, tags) around `properties`."""
        stored: dict = {
            "id": resource_id or self.resource_id(group.name, kind, name),
            "name": name,
            "type": type_name or kind,
            "location": normalize_location(body.get("location") or group.location),
        }
        if body.get("tags") is not None:
            stored["tags"] = dict(body["tags"])
        stored["properties"] = {}
        return Entry(kind, group.name.lower(), stored)

    # -- Microsoft.DevTestLab/schedules (synchronous, generic by id) ---------------------------

    def put_schedule(self, group: str, name: str, body: dict, failure: ArmError | None) -> PutResult:
        del failure  # synchronous: nothing to fail later
        properties = body.get("properties")
        if not isinstance(properties, dict) or not properties.get("taskType"):
            raise InvalidParameter("The schedule must have properties.taskType.", target="taskType")
        if properties["taskType"] == "ComputeVmShutdownTask":
            _check_vm_shutdown_name(name, properties)
        with self.lock:
            found = self.require_group(group, for_write=True)
            existing = self.lookup(group, SCHEDULE_KIND, name)
            # Azure returns DevTestLab ids and types in lower case (GlobalSchedules_Get.json).
            entry = self.new_entry(
                found,
                SCHEDULE_KIND,
                name,
                body,
                type_name="microsoft.devtestlab/schedules",
                resource_id=f"/subscriptions/{self.subscription_id}/resourcegroups/{found.name}"
                f"/providers/microsoft.devtestlab/schedules/{name}",
            )
            entry.body["properties"] = {
                **copy.deepcopy(properties),
                "createdDate": existing.properties["createdDate"] if existing else utc_now(),
                "provisioningState": "Succeeded",
                "uniqueIdentifier": existing.properties["uniqueIdentifier"] if existing else new_guid(),
            }
            entry.body["properties"].setdefault("notificationSettings", {"status": "Disabled", "timeInMinutes": 0})
            self.store(entry)
            return PutResult(existing is None, copy.deepcopy(entry.body))

    def delete_schedule(self, group: str, name: str, failure: ArmError | None) -> DeleteResult:
        del failure
        with self.lock:
            entry = self.lookup(group, SCHEDULE_KIND, name)
            if entry is None:
                return DeleteResult(False)
            self.remove(entry)
            return DeleteResult(True)


def _check_vm_shutdown_name(name: str, properties: dict) -> None:
    """A VM's auto-shutdown schedule is named `shutdown-computevm-{vmName}` after the VM it targets: Azure answers
    400 to any other name (DESIGN.md section 8; github.com/Azure/terraform-azurerm-avm-res-compute-virtualmachine
    pull 422: "Azure returns a 400 for a compute VM shutdown schedule under any name other than
    shutdown-computevm-<machine name>"). Azure's exact code and message are published nowhere: ARM's generic
    BadRequest here."""
    target = properties.get("targetResourceId") or ""
    if "/providers/microsoft.compute/virtualmachines/" not in target.lower():
        raise InvalidParameter(
            "A ComputeVmShutdownTask needs the VM's id in targetResourceId.", target="targetResourceId"
        )
    expected = f"shutdown-computevm-{target.rstrip('/').rsplit('/', 1)[-1]}"
    if name.lower() != expected.lower():
        raise ArmError(f"The schedule of virtual machine '{target}' must be named '{expected}', not '{name}'.")
