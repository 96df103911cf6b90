"""What the fake ARM tells a booter when a VM comes up or goes down."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class BootSpec:
    vm_id: str  # ARM id of the VM
    admin_username: str  # osProfile.adminUsername
    ssh_public_keys: list[str]  # osProfile.linuxConfiguration.ssh.publicKeys[].keyData
    custom_data: bytes  # base64-decoded osProfile.customData (b"" if none)
    public_ip: str | None  # ipAddress of the VM's public IP (the fake's public_ip); None: it has none
    private_ip: str | None = None  # privateIPAddress of its primary NIC


class Booter(Protocol):
    def boot(self, spec: BootSpec) -> None:
        """Called when a VM create (or start) completes, before the operation reports Succeeded."""

    def halt(self, vm_id: str, *, keep_disk: bool = False) -> None:
        """Called on VM deallocate, powerOff, restart and eviction (keep_disk: the next boot finds the
        OS disk as it was left), and on VM delete and the VM's group's delete (also of a VM halted before)."""


class RecordingBooter:
    """A Booter that boots nothing and remembers every call (thread-safe: the server calls it).

    `events` is [("boot", BootSpec) | ("halt", vm_id), ...]; `running` the VM ids booted and not
    halted since. With `fail_with`, every boot raises it (the create then ends Failed with
    OSProvisioningInternalError).
    """

    def __init__(self, fail_with: Exception | None = None):
        self.fail_with = fail_with
        self.events: list[tuple[str, BootSpec | str]] = []
        self.running: set[str] = set()
        self._lock = threading.Lock()

    def boot(self, spec: BootSpec) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            self.events.append(("boot", spec))
            self.running.add(spec.vm_id)

    def halt(self, vm_id: str, *, keep_disk: bool = False) -> None:
        with self._lock:
            self.events.append(("halt", vm_id))
            self.running.discard(vm_id)
