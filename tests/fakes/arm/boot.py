"""What the fake ARM tells a booter when a VM comes up or goes down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class BootSpec:
    vm_id: str                  # ARM id of the VM
    admin_username: str         # osProfile.adminUsername
    ssh_public_keys: list[str]  # osProfile.linuxConfiguration.ssh.publicKeys[].keyData
    custom_data: bytes          # base64-decoded osProfile.customData (b"" if none)
    public_ip: str              # ipAddress of the VM's public IP (the fake's public_ip)


class Booter(Protocol):
    def boot(self, spec: BootSpec) -> None:
        """Called when a VM create (or start) completes, before the operation reports Succeeded."""

    def halt(self, vm_id: str) -> None:
        """Called on VM delete, deallocate, powerOff, and when the VM's group is deleted."""
