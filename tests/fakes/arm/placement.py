"""Microsoft.Compute/proximityPlacementGroups: synchronous create, get (with the VMs in it) and delete.

Shapes from Azure's examples: ProximityPlacementGroup_CreateOrUpdate.json (200/201, no operation),
ProximityPlacementGroup_Get.json (properties.virtualMachines lists the members), ProximityPlacementGroup_Delete.json.
"""

from __future__ import annotations

import copy

from .errors import ArmError, InvalidParameter, InvalidResourceReference
from .models import ArmState, DeleteResult, Entry, KindSpec, PutResult

PPG = "Microsoft.Compute/proximityPlacementGroups"
VM = "Microsoft.Compute/virtualMachines"
TYPES = ("Standard", "Ultra")  # proximityPlacementGroupType, as the Compute REST reference lists it


class PlacementModel:
    def __init__(self, state: ArmState):
        self.state = state
        state.register(KindSpec(PPG, put=self.put, delete=self.delete, view=self.view))

    def put(self, group: str, name: str, body: dict, failure: ArmError | None) -> PutResult:
        del failure  # synchronous: nothing to fail later
        properties = copy.deepcopy(body.get("properties") or {})
        kind = properties.setdefault("proximityPlacementGroupType", "Standard")
        if kind not in TYPES:
            raise InvalidParameter(
                f"The value {kind!r} of proximityPlacementGroupType is not valid.", target="proximityPlacementGroupType"
            )
        with self.state.lock:
            found = self.state.require_group(group, for_write=True)
            existing = self.state.lookup(group, PPG, name)
            entry = self.state.new_entry(found, PPG, name, body)
            entry.body["properties"] = properties
            if body.get("zones") is not None:
                entry.body["zones"] = list(body["zones"])
            self.state.store(entry)
            return PutResult(existing is None, self.view(entry))

    def view(self, entry: Entry) -> dict:
        shown = copy.deepcopy(entry.body)
        members = [vm.id for vm in self.state.entries_of(VM) if self.member_of(vm) == entry.id.lower()]
        shown["properties"].update(
            virtualMachines=[{"id": member} for member in members], virtualMachineScaleSets=[], availabilitySets=[]
        )
        return shown

    @staticmethod
    def member_of(vm: Entry) -> str | None:
        reference = (vm.body.get("properties") or {}).get("proximityPlacementGroup") or {}
        return str(reference["id"]).lower() if reference.get("id") else None

    def delete(self, group: str, name: str, failure: ArmError | None) -> DeleteResult:
        del failure
        with self.state.lock:
            entry = self.state.lookup(group, PPG, name)
            if entry is None:
                return DeleteResult(False)
            self.state.remove(entry)
            return DeleteResult(True)

    def require_for(self, properties: dict, vm_id: str, location: str) -> None:
        """A VM's proximityPlacementGroup must exist, in the VM's region (a group co-locates within one region:
        learn.microsoft.com/azure/virtual-machines/co-location)."""
        reference = properties.get("proximityPlacementGroup")
        if not reference:
            return
        found = self.state.find(str(reference.get("id") or ""))
        if found is None or found.kind != PPG or found.body["location"] != location:
            raise InvalidResourceReference(str(reference.get("id")), vm_id)
