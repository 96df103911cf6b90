"""Microsoft.Authorization for the fake ARM: role definitions and assignments at any scope, the
permissions API, and the check ARM makes before it lets a principal act.

Who may do what (learn.microsoft.com/azure/role-based-access-control/overview): a principal's
permissions at a scope are the union of the roles assigned to it at that scope or above; an action is
allowed when one role's `actions` match it and the same role's `notActions` do not (wildcards `*`,
case-insensitive). The signed-in caller (any principal that is not a VM's managed identity) holds a
built-in role on the whole subscription: Owner unless a test makes it a plain Contributor. A VM's
system-assigned identity holds only what is assigned to it.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable

from .errors import ArmError, Conflict, InvalidParameter, NotFound

PROVIDER = "/providers/microsoft.authorization/"
ROLE_DEFINITIONS = "Microsoft.Authorization/roleDefinitions"
ROLE_ASSIGNMENTS = "Microsoft.Authorization/roleAssignments"
# Built-in roles as `az role definition list --name Owner|Contributor|Reader` shows them (ids are Azure's).
BUILT_IN = {
    "Owner": ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", ["*"], []),
    "Reader": ("acdd72a7-3385-48ef-bd42-f606fba81ae7", ["*/read"], []),
    "Contributor": (
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        ["*"],
        [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ],
    ),
}
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


class AuthorizationFailed(ArmError):
    status = 403
    code = "AuthorizationFailed"


def _matches(pattern: str, action: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, action, re.IGNORECASE) is not None


def _under(scope: str, target: str) -> bool:
    """Whether `target` is `scope` or lies below it (whole path segments, any case)."""
    scope, target = scope.rstrip("/").lower(), target.rstrip("/").lower()
    return target == scope or target.startswith(scope + "/")


def action_for(method: str, path: str) -> tuple[str, str]:
    """The RBAC action a request needs and the scope it acts on: `{namespace}/{type}[/{child}]/{verb}`
    with read (GET), write (PUT, PATCH), delete (DELETE) or `{name}/action` (POST), as ARM derives
    it from the URL (learn.microsoft.com/azure/role-based-access-control/resource-provider-operations)."""
    parts = path.strip("/").split("/")
    verb = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method)
    scope_parts = parts
    if method == "POST":
        verb, scope_parts = f"{parts[-1]}/action", parts[:-1]
    lower = [p.lower() for p in scope_parts]
    if "providers" in lower:
        at = len(lower) - 1 - lower[::-1].index("providers")
        namespace, rest = scope_parts[at + 1], scope_parts[at + 2 :]
        types = rest[0::2]
        return "/".join([namespace, *types, verb]), "/" + "/".join(scope_parts)
    types = ["subscriptions", *(["resourceGroups"] if "resourcegroups" in lower else [])]
    return "/".join(["Microsoft.Resources", *types, verb]), "/" + "/".join(scope_parts)


class AuthorizationModel:
    """Role definitions (kept at subscription scope, as Azure keeps custom roles) and assignments."""

    def __init__(
        self,
        subscription_id: str,
        managed_identity_of: Callable[[str], str | None],
        scope_exists: Callable[[str], bool],
    ):
        """`managed_identity_of(principal)` is the VM id whose identity it is (None for other principals);
        `scope_exists(scope)` tells whether a scope's resource group still exists."""
        self.subscription_id = subscription_id
        self._identity_of = managed_identity_of
        self._scope_exists = scope_exists
        self.caller_role = "Owner"
        self.extra_principals: dict[str, str] = {}  # principal id -> principalType, known to the directory
        self._definitions: dict[str, dict] = {}  # guid (lower) -> body
        self._assignments: dict[str, dict] = {}  # id (lower) -> body
        self._lock = threading.RLock()

    # -- the check ------------------------------------------------------------------------------

    def _permissions_of(self, principal: str, target: str) -> list[dict]:
        if self._identity_of(principal) is None:
            _, actions, not_actions = BUILT_IN[self.caller_role]
            return [
                {"actions": list(actions), "notActions": list(not_actions), "dataActions": [], "notDataActions": []}
            ]
        with self._lock:
            self._prune()
            found = []
            for assignment in self._assignments.values():
                properties = assignment["properties"]
                if properties["principalId"] == principal and _under(properties["scope"], target):
                    definition = self._definition_by_id(properties["roleDefinitionId"])
                    if definition is not None:
                        found.extend(copy.deepcopy(definition["properties"]["permissions"]))
            return found

    def require(self, principal: str, method: str, path: str) -> None:
        """Raise 403 AuthorizationFailed unless `principal` may make this request (Azure's message)."""
        action, scope = action_for(method, path)
        for permission in self._permissions_of(principal, scope):
            if any(_matches(a, action) for a in permission.get("actions", [])) and not any(
                _matches(n, action) for n in permission.get("notActions", [])
            ):
                return
        raise AuthorizationFailed(
            f"The client '{principal}' with object id '{principal}' does not have authorization to perform "
            f"action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
            "please refresh your credentials."
        )

    def permissions(self, principal: str, scope: str) -> dict:
        """GET {scope}/providers/Microsoft.Authorization/permissions (GetPermissions.json)."""
        self._require_in_subscription(scope)
        return {"value": self._permissions_of(principal, scope)}

    # -- role definitions -------------------------------------------------------------------------

    def _require_in_subscription(self, scope: str) -> None:
        if not _under(f"/subscriptions/{self.subscription_id}", scope):
            raise InvalidParameter(f"The scope '{scope}' is not valid for this subscription.", target="scope")

    def _definition_id(self, guid: str) -> str:
        return f"/subscriptions/{self.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"

    def _definition_by_id(self, definition_id: str) -> dict | None:
        guid = definition_id.rstrip("/").rsplit("/", 1)[-1].lower()
        for name, (builtin_id, actions, not_actions) in BUILT_IN.items():
            if guid == builtin_id:
                return {
                    "id": f"/providers/Microsoft.Authorization/roleDefinitions/{builtin_id}",
                    "name": builtin_id,
                    "type": ROLE_DEFINITIONS,
                    "properties": {
                        "roleName": name,
                        "type": "BuiltInRole",
                        "assignableScopes": ["/"],
                        "permissions": [{"actions": actions, "notActions": not_actions}],
                    },
                }
        return self._definitions.get(guid)

    def put_definition(self, scope: str, guid: str, body: dict) -> tuple[bool, dict]:
        """PUT a custom role (PutRoleDefinition.json). Rules from Azure's docs on custom roles: the name is a
        GUID, roleName is unique in the directory, assignableScopes is required and lies in the subscription."""
        self._require_in_subscription(scope)
        if not _GUID.match(guid):
            raise ArmError(f"The role definition ID '{guid}' is not valid.", code="RoleDefinitionIdNotValidGuid")
        properties = (body or {}).get("properties") or {}
        scopes = properties.get("assignableScopes") or []
        if not scopes:
            raise InvalidParameter(
                "Role definition must have at least one assignable scope.", target="assignableScopes"
            )
        for assignable in scopes:
            self._require_in_subscription(assignable)
        if not properties.get("roleName") or not properties.get("permissions"):
            raise InvalidParameter("A role definition needs roleName and permissions.", target="properties")
        with self._lock:
            for other_guid, other in self._definitions.items():
                if other_guid != guid.lower() and other["properties"]["roleName"] == properties["roleName"]:
                    raise Conflict(
                        "A role definition cannot be updated with a name that already exists.",
                        code="RoleDefinitionWithSameNameExists",
                    )
            created = guid.lower() not in self._definitions
            stored = {
                "id": self._definition_id(guid),
                "name": guid,
                "type": ROLE_DEFINITIONS,
                "properties": {
                    "roleName": properties["roleName"],
                    "type": "CustomRole",
                    "description": properties.get("description", ""),
                    "assignableScopes": list(scopes),
                    "permissions": [
                        {
                            key: list(p.get(key) or [])
                            for key in ("actions", "notActions", "dataActions", "notDataActions")
                        }
                        for p in properties["permissions"]
                    ],
                },
            }
            self._definitions[guid.lower()] = stored
            return created, copy.deepcopy(stored)

    def get_definition(self, scope: str, guid: str) -> dict:
        self._require_in_subscription(scope)
        found = self._definition_by_id(guid)
        if found is None:
            raise NotFound(f"The role definition '{guid}' could not be found.", code="RoleDefinitionDoesNotExist")
        return copy.deepcopy(found)

    def delete_definition(self, scope: str, guid: str) -> dict | None:
        """DELETE (DeleteRoleDefinition.json: 200 with the body, 204 when absent). A role still assigned
        cannot be deleted (RoleDefinitionHasAssignments)."""
        self._require_in_subscription(scope)
        with self._lock:
            self._prune()
            found = self._definitions.get(guid.lower())
            if found is None:
                return None
            if any(
                a["properties"]["roleDefinitionId"].lower().endswith(guid.lower()) for a in self._assignments.values()
            ):
                raise ArmError(
                    "There are existing role assignments referencing role (code: RoleDefinitionHasAssignments).",
                    code="RoleDefinitionHasAssignments",
                )
            return self._definitions.pop(guid.lower())

    def definitions(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self._definitions.values()))

    # -- role assignments -------------------------------------------------------------------------

    def _prune(self) -> None:
        """Assignments at a scope whose resource group is gone went with it."""
        for key, assignment in list(self._assignments.items()):
            if not self._scope_exists(assignment["properties"]["scope"]):
                del self._assignments[key]

    def put_assignment(self, scope: str, name: str, body: dict, caller: str) -> tuple[bool, dict]:
        """PUT (RoleAssignments_CreateForResource.json). Rules from Azure's RBAC docs: the name is a GUID;
        the role exists and lists this scope (or one above) among its assignableScopes; the principal exists
        in the directory, except that with principalType ServicePrincipal ARM does not wait for a new one to
        replicate; one principal holds a role at a scope once (RoleAssignmentExists)."""
        self._require_in_subscription(scope)
        if not _GUID.match(name):
            raise ArmError(f"The role assignment ID '{name}' is not valid.", code="InvalidRoleAssignmentId")
        properties = (body or {}).get("properties") or {}
        definition = self._definition_by_id(properties.get("roleDefinitionId") or "")
        if definition is None:
            raise ArmError(
                f"The specified role definition with ID '{properties.get('roleDefinitionId')}' does not exist.",
                code="RoleDefinitionDoesNotExist",
            )
        if not any(_under(s, scope) for s in definition["properties"]["assignableScopes"]):
            raise AuthorizationFailed(
                f"The role definition '{definition['name']}' is not assignable at scope '{scope}'.",
                code="InvalidCreateRoleAssignmentRequest",
            )
        principal = properties.get("principalId") or ""
        principal_type = properties.get("principalType")
        known = principal == caller or principal in self.extra_principals or self._identity_of(principal)
        if not known:
            raise ArmError(
                f"Principal {principal.replace('-', '')} does not exist in the directory.", code="PrincipalNotFound"
            )
        assignment_id = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{name}"
        with self._lock:
            self._prune()
            for key, other in self._assignments.items():
                p = other["properties"]
                if (
                    key != assignment_id.lower()
                    and p["principalId"] == principal
                    and p["scope"].lower() == scope.lower()
                    and p["roleDefinitionId"].lower() == properties["roleDefinitionId"].lower()
                ):
                    raise Conflict("The role assignment already exists.", code="RoleAssignmentExists")
            created = assignment_id.lower() not in self._assignments
            stored = {
                "id": assignment_id,
                "name": name,
                "type": ROLE_ASSIGNMENTS,
                "properties": {
                    "roleDefinitionId": properties["roleDefinitionId"],
                    "principalId": principal,
                    "principalType": principal_type or self.extra_principals.get(principal, "ServicePrincipal"),
                    "scope": scope,
                },
            }
            self._assignments[assignment_id.lower()] = stored
            return created, copy.deepcopy(stored)

    def _assignment_id(self, scope: str, name: str) -> str:
        return f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{name}".lower()

    def get_assignment(self, scope: str, name: str) -> dict:
        with self._lock:
            self._prune()
            found = self._assignments.get(self._assignment_id(scope, name))
            if found is None:
                raise NotFound(f"The role assignment '{name}' is not found.", code="RoleAssignmentNotFound")
            return copy.deepcopy(found)

    def delete_assignment(self, scope: str, name: str) -> dict | None:
        """DELETE (RoleAssignments_Delete.json: 200 with the body, 204 when absent)."""
        with self._lock:
            self._prune()
            return self._assignments.pop(self._assignment_id(scope, name), None)

    def list_assignments(self, scope: str) -> dict:
        """Assignments at, above or below the scope (RoleAssignments_ListForScope.json, no $filter)."""
        self._require_in_subscription(scope)
        with self._lock:
            self._prune()
            return {
                "value": [
                    copy.deepcopy(a)
                    for a in self._assignments.values()
                    if _under(a["properties"]["scope"], scope) or _under(scope, a["properties"]["scope"])
                ]
            }
