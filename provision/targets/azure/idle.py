"""Idle stop's Azure side: may the caller grant roles (the permissions API), the VM's least-privilege role
to deallocate itself, the daily auto-shutdown schedule, and their removal on `down`.

Through the generic resources client by id (role definitions and assignments are ARM resources like any
other at their scope) and, for the permissions list, the same client's pipeline: one SDK fewer to install,
and the bodies are the REST ones of Azure's examples (Microsoft.Authorization 2022-04-01, DevTestLab
2018-09-15; DESIGN.md section 8).
"""

import contextlib
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

ROLE_API = "2022-04-01"
COMPUTE_API = "2026-04-01"  # what azure-mgmt-compute 39 sends for virtualMachines/deallocate; the agent sends it too
FALLBACK_SHUTDOWN = "19:00"  # the daily stop when idle stop cannot be installed
SCHEDULE_API = "2018-09-15"
DEALLOCATE = "Microsoft.Compute/virtualMachines/deallocate/action"
READ = "Microsoft.Compute/virtualMachines/read"
GRANTS = ("Microsoft.Authorization/roleDefinitions/write", "Microsoft.Authorization/roleAssignments/write")
# Role changes replicate slowly: a fresh identity may be PrincipalNotFound, a fresh role 403, for a while.
GRANT_RETRIES = (2.0, 4.0, 8.0, 16.0, 30.0)
RETRIED = ("PrincipalNotFound", "AuthorizationFailed", "RoleDefinitionDoesNotExist")


def _allows(permissions: list[dict], action: str) -> bool:
    """Whether a permissions list (GetPermissions.json) allows an action: one entry's actions match it and
    the same entry's notActions do not (wildcards, any case)."""

    def match(pattern: str) -> bool:
        return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), action, re.IGNORECASE) is not None

    return any(
        any(map(match, p.get("actions") or [])) and not any(map(match, p.get("notActions") or [])) for p in permissions
    )


def may_grant(clients: Any, scope: str) -> bool:
    """Whether the caller may write role definitions and assignments at `scope` (GET {scope}/providers/
    Microsoft.Authorization/permissions)."""
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest
    from azure.mgmt.core.exceptions import ARMErrorFormat

    request = HttpRequest(
        "GET", f"{scope}/providers/Microsoft.Authorization/permissions", params={"api-version": ROLE_API}
    )
    response = clients.resource.send_request(request)
    if response.status_code != 200:
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    permissions = response.json().get("value") or []
    return all(_allows(permissions, action) for action in GRANTS)


def role_definition_id(subscription: str, head_vm_id: str) -> str:
    """The deployment's role, named after its head VM: `down` finds it again even when the record is lost."""
    guid = uuid.uuid5(uuid.NAMESPACE_URL, head_vm_id.lower())
    return f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def role_body(vm_ids: list[str], deployment: str) -> dict:
    """A custom role that may read and deallocate these VMs (the deployment's nodes, head first), and nothing else:
    any code on the head can get its token, so the role must allow nothing more."""
    head = vm_ids[0]
    return {
        "properties": {
            "roleName": f"dsvm-kit idle stop {head.rsplit('/', 1)[-1]} {uuid.uuid5(uuid.NAMESPACE_URL, head.lower())}",
            "description": f"Lets deployment {deployment}'s VM deallocate itself when idle (dsvm-kit).",
            "assignableScopes": list(vm_ids),
            "permissions": [{"actions": [DEALLOCATE, READ], "notActions": [], "dataActions": [], "notDataActions": []}],
        }
    }


def assignment_body(role_id: str, principal_id: str) -> dict:
    # principalType ServicePrincipal: ARM does not wait for a new identity to replicate (DESIGN.md section 8).
    return {
        "properties": {"roleDefinitionId": role_id, "principalId": principal_id, "principalType": "ServicePrincipal"}
    }


def put_by_id(clients: Any, resource_id: str, api_version: str, body: dict) -> Any:
    poller = clients.resource.resources.begin_create_or_update_by_id(resource_id, body, api_version=api_version)
    return poller.result()


def put_with_retries(put: Callable[[], Any], sleep: Callable[[float], None] = time.sleep) -> Any:
    """put(), again after each backoff while Azure has not yet replicated the identity or the role."""
    from azure.core.exceptions import HttpResponseError

    for delay in (*GRANT_RETRIES, None):
        try:
            return put()
        except HttpResponseError as e:
            code = getattr(e.error, "code", None) if e.error else None
            if delay is None or (code not in RETRIED and e.status_code != 403):
                raise
            sleep(delay)
    raise AssertionError("unreachable")


def delete_by_id(clients: Any, resource_id: str, api_version: str) -> None:
    """Delete; already gone is success."""
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):
        clients.resource.resources.begin_delete_by_id(resource_id, api_version=api_version).result()


def schedule_id(group_id: str, vm_name: str) -> str:
    """Azure looks for the VM's auto-shutdown schedule under exactly this name (DESIGN.md section 8)."""
    return f"{group_id}/providers/Microsoft.DevTestLab/schedules/shutdown-computevm-{vm_name}"


def schedule_body(location: str, vm_id: str, hhmm: str, time_zone: str) -> dict:
    return {
        "location": location,
        "properties": {
            "status": "Enabled",
            "taskType": "ComputeVmShutdownTask",
            "dailyRecurrence": {"time": hhmm.replace(":", "")},
            "timeZoneId": time_zone,
            "targetResourceId": vm_id,
            "notificationSettings": {"status": "Disabled", "timeInMinutes": 30},
        },
    }


def windows_time_zone() -> str:
    """This machine's time zone as the Windows zone id Azure's schedules take (tzlocal's CLDR table); UTC if
    it has none."""
    import tzlocal
    from tzlocal.windows_tz import tz_win

    return tz_win.get(tzlocal.get_localzone_name(), "UTC")
