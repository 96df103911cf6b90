"""Microsoft.ManagedIdentity: user-assigned identities, the principal a VM acts as when it is given one.

As Azure's recording shows it (Azure/azure-cli, src/azure-cli/azure/cli/command_modules/vm/tests/latest/recordings/
test_vm_explicit_msi.yaml, `identity create`: PUT .../userAssignedIdentities/id1?api-version=2024-11-30): the PUT is
synchronous, 201 with a relative `Location` header and the resource, whose id spells `resourcegroups` in lower case
and whose properties name the identity's principal (`principalId`), `clientId`, `tenantId` and `isolationScope`.
Deleting its group deletes it.
"""

from __future__ import annotations

import copy

from .errors import ArmError
from .models import ArmState, DeleteResult, Entry, KindSpec, PutResult, new_guid

IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities"


class IdentityModel:
    def __init__(self, state: ArmState, tenant_id: str):
        self.state = state
        self.tenant_id = tenant_id
        state.register(KindSpec(IDENTITY, put=self.put, delete=self.delete, view=state.plain_view))

    def put(self, group: str, name: str, body: dict, failure: ArmError | None) -> PutResult:
        del failure  # synchronous: nothing to fail later
        if not body.get("location"):
            raise ArmError("Resource location is required.", code="LocationRequired")
        state = self.state
        with state.lock:
            found = state.require_group(group, for_write=True)
            existing = state.lookup(group, IDENTITY, name)
            resource_id = (
                f"/subscriptions/{state.subscription_id}/resourcegroups/{found.name}/providers/{IDENTITY}/{name}"
            )
            entry = state.new_entry(found, IDENTITY, name, body, resource_id=resource_id)
            entry.body.setdefault("tags", {})
            entry.meta = dict(existing.meta) if existing else {"since": state.clock()}
            before = existing.properties if existing else {}
            entry.body["properties"] = {
                "isolationScope": "None",
                "tenantId": self.tenant_id,
                "principalId": before.get("principalId") or new_guid(),
                "clientId": before.get("clientId") or new_guid(),
            }
            state.store(entry)
            return PutResult(existing is None, copy.deepcopy(entry.body), headers={"Location": resource_id})

    def delete(self, group: str, name: str, failure: ArmError | None) -> DeleteResult:
        del failure
        with self.state.lock:
            entry = self.state.lookup(group, IDENTITY, name)
            if entry is None:
                return DeleteResult(False)
            self.state.remove(entry)
            return DeleteResult(True)

    def find(self, resource_id: str) -> Entry | None:
        entry = self.state.find(resource_id)
        return entry if entry is not None and entry.kind == IDENTITY else None

    def principals(self) -> dict[str, tuple[str, float]]:
        """principalId -> (the identity's id, when it was made) for every user-assigned identity."""
        with self.state.lock:
            return {e.properties["principalId"]: (e.id, e.meta["since"]) for e in self.state.entries_of(IDENTITY)}
