"""Idle stop's Azure side: may the caller grant roles (the permissions API); the deployment's user-assigned identity,
which the head VM carries, and its role; the daily auto-shutdown schedule; and their removal on `down`.

The role may read and deallocate virtual machines, and nothing else, at the deployment's resource group, which holds
only the deployment's own resources: exactly its VMs. A role's assignableScopes are "management group,
subscriptions, or resource groups" (learn.microsoft.com/azure/role-based-access-control/custom-roles): none lists a
single resource, so a role assignable at a VM's own id may be refused. The identity is a resource of its own, made
beside the network: its role is granted while the network and the VM are made, off the path to the VM, with no wait
for a new VM identity to replicate once the VM exists.

Role definition and assignment PUTs are synchronous (201, on update too: DESIGN.md section 9, recordings F and H), so
they are sent once and never polled. Reads of them lag for seconds (a 404, a list without them), and a new
identity's principal may be unknown to the directory for a while: the writes that depend on them are retried,
boundedly, each reason logged (shown with --verbose). The ids follow from the group's, so `down` deletes them
without listing (lists lag), even when the record is lost.

Through the generic resources client by id, and for the permissions list the same client's pipeline: one SDK fewer
to install, and the bodies are the REST ones (Microsoft.Authorization 2022-04-01, Microsoft.ManagedIdentity
2023-01-31, DevTestLab 2018-09-15; DESIGN.md section 8).
"""

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

ROLE_API = "2022-04-01"
IDENTITY_API = "2023-01-31"
COMPUTE_API = "2026-04-01"  # what azure-mgmt-compute 39 sends for virtualMachines/deallocate; the agent sends it too
FALLBACK_SHUTDOWN = "19:00"  # the daily stop when idle stop cannot be installed
SCHEDULE_API = "2018-09-15"
DEALLOCATE = "Microsoft.Compute/virtualMachines/deallocate/action"
READ = "Microsoft.Compute/virtualMachines/read"
GRANTS = ("Microsoft.Authorization/roleDefinitions/write", "Microsoft.Authorization/roleAssignments/write")
# Seconds between tries of a write Azure refuses while its reads lag: about a minute in all.
LAG_RETRIES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
LAGGING = {
    "RoleDefinitionDoesNotExist": "Azure does not yet show the new role",
    "PrincipalNotFound": "the directory does not yet know the new identity",
}
log = logging.getLogger("provision.azure.idle")


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


def _guid(group_id: str, purpose: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{group_id.lower()}#{purpose}")


def role_definition_id(subscription: str, group_id: str) -> str:
    """The deployment's role, named after its group: `down` finds it again even when the record is lost."""
    return f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{_guid(group_id, 'role')}"


def role_assignment_id(group_id: str) -> str:
    """The role's one assignment, at the group, named after it too."""
    return f"{group_id}/providers/Microsoft.Authorization/roleAssignments/{_guid(group_id, 'assignment')}"


def identity_body(location: str, tags: dict[str, str]) -> dict:
    return {"location": location, "tags": tags}


def role_body(group_id: str, deployment: str) -> dict:
    """A custom role that may read and deallocate the VMs of this group, and nothing else: any code on the head can get
    its identity's token, so the role must allow nothing more."""
    group = group_id.rstrip("/").rsplit("/", 1)[-1]
    return {
        "properties": {
            "roleName": f"dsvm-kit idle stop {group} {_guid(group_id, 'role')}",
            "description": f"Lets deployment {deployment}'s VMs deallocate themselves when idle (dsvm-kit).",
            "assignableScopes": [group_id],
            "permissions": [{"actions": [DEALLOCATE, READ], "notActions": [], "dataActions": [], "notDataActions": []}],
        }
    }


def assignment_body(role_id: str, principal_id: str) -> dict:
    # principalType ServicePrincipal: ARM does not wait for a new identity to replicate (DESIGN.md section 8).
    return {
        "properties": {"roleDefinitionId": role_id, "principalId": principal_id, "principalType": "ServicePrincipal"}
    }


def put_by_id(clients: Any, resource_id: str, api_version: str, body: dict) -> Any:
    """A synchronous PUT (identity, role, assignment: 201 with the resource): sent once, its answer taken as it is.
    Polling it would read the resource back, which lags (RoleDefinitionDoesNotExist)."""
    return clients.resource.resources.begin_create_or_update_by_id(
        resource_id, body, api_version=api_version, polling=False
    ).result()


def while_lagging(put: Callable[[], Any], what: str, sleep: Callable[[float], None] = time.sleep) -> Any:
    """put(), again after each of LAG_RETRIES while Azure refuses it because its reads lag (LAGGING); each retry's
    reason is logged."""
    from azure.core.exceptions import HttpResponseError

    for wait in (*LAG_RETRIES, None):
        try:
            return put()
        except HttpResponseError as e:
            code = getattr(e.error, "code", None) if e.error else None
            if wait is None or code not in LAGGING:
                raise
            log.info("%s: %s (%s); trying again in %g s", what, LAGGING[code], code, wait)
            sleep(wait)
    raise AssertionError("unreachable")


def delete_by_id(clients: Any, resource_id: str, api_version: str) -> None:
    """Delete (synchronous for what idle stop makes: 200, or 204 when absent); already gone is success."""
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):
        clients.resource.resources.begin_delete_by_id(resource_id, api_version=api_version, polling=False).result()


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
