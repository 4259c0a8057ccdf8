"""Seed the local emulator (``emulator/``) with a vault and protected VMs, the way a deployment
would leave Azure, and align the verifier's clock with the emulator's.

Used by the tests and by the offline rehearsal: the vault, policy and protected items are created
over HTTPS like ``pulumi up`` would, so the verifier then runs against realistic state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from protectedvm.ids import VaultRef, VmRef

API_VERSION_QUERY = "api-version=2025-02-01"


class EmulatorLike(Protocol):
    """The parts of :class:`emulator.Emulator` used here."""

    state: Any
    clock: Any

    def add_vm(self, vm_id: str) -> None: ...
    def create_vault(
        self, subscription_id: str, resource_group: str, vault_name: str, **props: Any
    ) -> dict[str, Any]: ...
    def raw_request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]: ...


def vm_ids(subscription: str, resource_group: str, count: int, prefix: str = "vm") -> list[str]:
    return [
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachines/"
        f"{prefix}{index:03d}"
        for index in range(1, count + 1)
    ]


def item_path(vault: VaultRef, container_name: str, item_name: str, fabric: str = "Azure") -> str:
    """The protected item's ARM path with the names percent-encoded as the SDK sends them."""
    return (
        f"{vault.id}/backupFabrics/{fabric}/protectionContainers/{quote(container_name, safe=';')}"
        f"/protectedItems/{quote(item_name, safe=';')}"
    )


def protect(
    emu: EmulatorLike,
    vault: VaultRef,
    ids: Sequence[str],
    policy: str = "DefaultPolicy",
    disk_exclusion: dict[str, Any] | None = None,
) -> list[VmRef]:
    """Create the vault (if needed) and enable protection of each VM with the vault's policy;
    ``disk_exclusion`` is the items' ``diskExclusionProperties`` (selective disk backup)."""
    emu.create_vault(vault.subscription_id, vault.resource_group, vault.name)
    refs = []
    for vm_id in ids:
        emu.add_vm(vm_id)
        vm = VmRef.from_id(vm_id)
        path = f"{item_path(vault, vm.container_name, vm.protected_item_name)}?{API_VERSION_QUERY}"
        props: dict[str, Any] = {
            "protectedItemType": "Microsoft.Compute/virtualMachines",
            "sourceResourceId": vm_id,
            "policyId": f"{vault.id}/backupPolicies/{policy}",
        }
        if disk_exclusion is not None:
            props["extendedProperties"] = {"diskExclusionProperties": dict(disk_exclusion)}
        body = {"properties": props}
        status, payload = emu.raw_request("PUT", path, body)
        if status not in (200, 202):
            raise RuntimeError(f"enabling protection of {vm_id} failed: {status} {payload}")
        refs.append(vm)
    return refs


def emulator_clock(emu: EmulatorLike) -> Callable[[], dt.datetime]:
    """The emulator's wall time, so job-list windows and recovery point times agree with it."""
    now: Callable[[], dt.datetime] = emu.state.now
    return now


def manual_sleep(emu: EmulatorLike) -> Callable[[float], None]:
    """With a ManualClock, "sleeping" is moving the emulator's time forward."""

    def sleep(seconds: float) -> None:
        emu.clock.advance(max(0.0, seconds))

    return sleep


def with_recovery_points(emu: EmulatorLike, vms: Sequence[VmRef]) -> None:
    """Give each protected VM one completed backup (a recovery point), as a deployed stack has."""
    start_job: Callable[..., str] = emu.start_job  # type: ignore[attr-defined]
    for vm in vms:
        start_job(vm.name, duration=0.0)
