"""A tiny slice of Microsoft.Compute: the source VMs' disk layout and the managed disks a
"RestoreDisks" restore creates, so the restore drill can be checked end to end.

Only what the drill touches: GET a virtual machine (its ``storageProfile``), LIST/GET/PATCH (tags)
/DELETE managed disks of a resource group. Shapes follow the official examples vendored under
``tests/emulator/examples/restore/`` (``Disk_ListByResourceGroup.json``, ``Disk_Delete.json``, both
Microsoft.Compute DiskRP 2024-03-02). DELETE answers 200 at once (the spec also allows 202 + Location
and 204; the synchronous form keeps the emulator free of a second LRO family).

Restored disk names: no source was found for the exact names Azure Backup gives the managed disks it
restores. The emulator names them after the source disks (``<source disk name>-<8 hex>``), and source
disks get the portal's default names (``<vm>_OsDisk_1_<hex>``, ``<vm>_disk<n>_<hex>``). The drill
attributes a new disk to a VM by either prefix (VM name or source disk name), see protectedvm/drill.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, invalid_input

#: Microsoft.Compute api-versions the emulator answers (disks 2024-03-02 as in the vendored examples).
COMPUTE_API_VERSIONS = ("2024-07-01", "2024-03-02")
DISK_TYPE = "Microsoft.Compute/disks"
VM_TYPE = "Microsoft.Compute/virtualMachines"
DEFAULT_DATA_DISKS = 1


@dataclass
class Disk:
    subscription: str
    resource_group: str
    name: str
    location: str
    size_gb: int
    os_type: str | None
    time_created: dt.datetime
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{DISK_TYPE}/{self.name}"
        )


@dataclass
class VmLayout:
    """A source VM as the compute API shows it: its location and the names of its disks."""

    vm_id: str
    name: str
    location: str
    os_disk: str
    data_disks: list[str]

    @property
    def disk_count(self) -> int:
        return 1 + len(self.data_disks)


def _rg_key(subscription: str, resource_group: str) -> tuple[str, str]:
    return subscription.lower(), resource_group.lower()


class ComputeState:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._vms: dict[str, VmLayout] = {}
        self._disks: dict[tuple[str, str], dict[str, Disk]] = {}
        self.deleted: list[str] = []

    # --- source VMs -------------------------------------------------------------
    def layout(self, vm_id: str, name: str, location: str = "westeurope") -> VmLayout:
        """The VM's layout, created on first use with an OS disk and ``DEFAULT_DATA_DISKS`` data disks."""
        with self._lock:
            found = self._vms.get(vm_id.lower())
            if found is None:
                found = self._new_layout(vm_id, name, location, DEFAULT_DATA_DISKS)
            return found

    def set_data_disks(self, vm_id: str, name: str, count: int, location: str = "westeurope") -> VmLayout:
        with self._lock:
            return self._new_layout(vm_id, name, location, count)

    def _new_layout(self, vm_id: str, name: str, location: str, data_disks: int) -> VmLayout:
        suffix = uuid.uuid4().hex[:12]
        layout = VmLayout(
            vm_id,
            name,
            location,
            f"{name}_OsDisk_1_{suffix}",
            [f"{name}_disk{lun + 2}_{suffix}" for lun in range(data_disks)],
        )
        self._vms[vm_id.lower()] = layout
        return layout

    def vm_body(self, layout: VmLayout) -> dict[str, Any]:
        rg = layout.vm_id.split("/")[4]
        sub = layout.vm_id.split("/")[2]

        def managed(name: str) -> dict[str, str]:
            return {"id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{DISK_TYPE}/{name}"}

        return {
            "id": layout.vm_id,
            "name": layout.name,
            "type": VM_TYPE,
            "location": layout.location,
            "properties": {
                "provisioningState": "Succeeded",
                "storageProfile": {
                    "osDisk": {
                        "name": layout.os_disk,
                        "createOption": "FromImage",
                        "managedDisk": managed(layout.os_disk),
                    },
                    "dataDisks": [
                        {"lun": lun, "name": disk, "createOption": "Empty", "managedDisk": managed(disk)}
                        for lun, disk in enumerate(layout.data_disks)
                    ],
                },
            },
        }

    # --- managed disks --------------------------------------------------------------
    def create_disk(
        self, subscription: str, resource_group: str, name: str, location: str, now: dt.datetime, os_type: str | None
    ) -> Disk:
        with self._lock:
            group = self._disks.setdefault(_rg_key(subscription, resource_group), {})
            if name.lower() in group:
                raise ApiError(409, "Conflict", f"Disk '{name}' already exists in resource group '{resource_group}'.")
            disk = Disk(subscription, resource_group, name, location, 128 if os_type else 32, os_type, now)
            group[name.lower()] = disk
            return disk

    def disks(self, subscription: str, resource_group: str) -> list[Disk]:
        with self._lock:
            return sorted(self._disks.get(_rg_key(subscription, resource_group), {}).values(), key=lambda d: d.name)

    def require_disk(self, subscription: str, resource_group: str, name: str) -> Disk:
        with self._lock:
            disk = self._disks.get(_rg_key(subscription, resource_group), {}).get(name.lower())
            if disk is None:
                # ARM's ResourceNotFound wording (emulator/errors.py resource_not_found).
                raise ApiError(
                    404,
                    "ResourceNotFound",
                    f"The Resource '{DISK_TYPE}/{name}' under resource group '{resource_group}' was not found. "
                    "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                )
            return disk

    def patch_disk(self, subscription: str, resource_group: str, name: str, body: dict[str, Any]) -> Disk:
        tags = body.get("tags")
        if tags is not None and (not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values())):
            raise invalid_input("tags must be an object of string values.")
        with self._lock:
            disk = self.require_disk(subscription, resource_group, name)
            if tags is not None:
                disk.tags = dict(tags)
            return disk

    def delete_disk(self, subscription: str, resource_group: str, name: str) -> bool:
        """True if a disk was deleted; deleting a missing disk is a 204 in ARM, not an error."""
        with self._lock:
            group = self._disks.get(_rg_key(subscription, resource_group), {})
            disk = group.pop(name.lower(), None)
            if disk is not None:
                self.deleted.append(disk.id)
            return disk is not None

    @staticmethod
    def disk_body(disk: Disk) -> dict[str, Any]:
        props: dict[str, Any] = {
            "creationData": {"createOption": "Restore"},
            "diskSizeGB": disk.size_gb,
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "timeCreated": disk.time_created.astimezone(dt.UTC).isoformat(),
            "provisioningState": "Succeeded",
        }
        if disk.os_type:
            props["osType"] = disk.os_type
        body: dict[str, Any] = {
            "properties": props,
            "type": DISK_TYPE,
            "location": disk.location,
            "id": disk.id,
            "name": disk.name,
        }
        if disk.tags:
            body["tags"] = copy.deepcopy(disk.tags)
        return body
