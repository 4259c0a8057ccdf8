"""Re-check, after deployment, that every VM in the stack outputs is backed up right now.

``pulumi up`` proved each VM's *initial* backup once; this check answers the pipeline's recurring
question "is every VM still backed up?" from Azure's own view of each protected item:

* the item exists and its ``protectionState`` is ``Protected`` (``IRPending`` is Azure's
  "Warning (initial backup pending)"; ``ProtectionStopped``/``ProtectionPaused`` mean no new backups);
* its ``lastBackupStatus`` is ``Completed`` or ``CompletedWithWarnings`` (the latest backup job
  succeeded; a crash-consistent point is still a restorable point);
* its ``healthStatus`` is not ``ActionRequired``/``Invalid`` (Azure's own verdict on the item);
* at least one recovery point exists, optionally no older than ``max_age``.

The values are Azure's, not ours: Compute_ProtectedItem_Get.json and BackupProtectedItems_List.json
(azure-rest-api-specs, recoveryservicesbackup stable 2024-10-01 and 2026-10-01) show a healthy VM as
``protectionState: Protected``, ``lastBackupStatus: Completed``, ``healthStatus: Passed``,
``protectionStatus: Healthy``. ``lastBackupStatus`` is a free string in bms.json (it carries the last
backup job's status, JobStatus: InProgress/Completed/Failed/CompletedWithWarnings/Cancelled...);
``healthStatus`` is the HealthStatus enum Passed/ActionRequired/ActionSuggested/Invalid, where
ActionSuggested is advice (e.g. an outdated agent) on an item whose backups still work.
Before the first backup Azure answers ``lastBackupTime: 2001-01-01T00:00:00Z``; that sentinel is
read as "never" (``azure_client.NEVER_BACKED_UP``), never as a 25-year-old backup.

Two GETs per VM (protected item, recovery points), run concurrently with a bounded pool.
"""

from __future__ import annotations

import datetime as dt
import json
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from protectedvm.azure_client import BackupApi, describe_error, error_code
from protectedvm.ids import VaultRef, VmRef
from protectedvm.verifier import iso, utc_now

HEALTHY_STATE = "Protected"
#: lastBackupStatus values of a good last backup (Compute_ProtectedItem_Get.json: "Completed").
HEALTHY_BACKUP_STATUSES = ("Completed", "CompletedWithWarnings")
#: healthStatus values (bms.json HealthStatus enum) that mean the item needs attention.
UNHEALTHY_HEALTH_STATUSES = ("ActionRequired", "Invalid")


@dataclass(frozen=True)
class ProtectedVmEntry:
    """One element of the ``protectedVms`` stack output."""

    vm: VmRef
    vault: VaultRef

    @staticmethod
    def from_output(raw: object, index: int) -> ProtectedVmEntry:
        """One element, or ValueError naming the element and what is wrong with it."""
        where = f"protectedVms[{index}]"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where} must be an object with vmId and vaultId, got {reprlib.repr(raw)}")
        missing = [key for key in ("vmId", "vaultId") if key not in raw]
        if missing:
            raise ValueError(f"{where} has no {' and no '.join(missing)}")
        try:
            return ProtectedVmEntry(VmRef.from_id(raw["vmId"]), VaultRef.from_id(raw["vaultId"]))
        except ValueError as error:
            raise ValueError(f"{where} is not usable: {error}") from None


@dataclass(frozen=True)
class VmHealth:
    vm_name: str
    vm_id: str
    vault_name: str
    protection_state: str | None
    last_backup_status: str | None
    last_backup_time: str | None
    latest_recovery_point: str | None
    problem: str | None

    @property
    def healthy(self) -> bool:
        return self.problem is None


def load_protected_vms(outputs: Mapping[str, Any]) -> list[ProtectedVmEntry]:
    """Read ``protectedVms`` from ``pulumi stack output --json``; raise ValueError if it is missing."""
    raw = outputs.get("protectedVms")
    if not isinstance(raw, list) or not raw:
        keys = ", ".join(sorted(outputs)) or "none"
        raise ValueError(f"the stack outputs have no non-empty 'protectedVms' list (outputs: {keys})")
    return [ProtectedVmEntry.from_output(entry, i) for i, entry in enumerate(raw)]


def check_vm(api: BackupApi, entry: ProtectedVmEntry, now: dt.datetime, max_age: dt.timedelta | None) -> VmHealth:
    vm = entry.vm

    def result(problem: str | None, **found: str | None) -> VmHealth:
        base: dict[str, str | None] = {
            "protection_state": None,
            "last_backup_status": None,
            "last_backup_time": None,
            "latest_recovery_point": None,
        }
        base.update(found)
        return VmHealth(vm.name, vm.vm_id, entry.vault.name, problem=problem, **base)

    try:
        item = api.protected_item(vm)
    except ResourceNotFoundError as error:
        return result(_not_found(error, entry))
    except AzureError as error:
        return result(f"protected item unreadable: {describe_error(error)}")
    found: dict[str, str | None] = {
        "protection_state": item.protection_state,
        "last_backup_status": item.last_backup_status,
        "last_backup_time": iso(item.last_backup_time),
    }
    try:
        points = api.recovery_points(vm)
    except AzureError as error:
        return result(f"recovery points unreadable: {describe_error(error)}", **found)
    dated = [p.time for p in points if p.time is not None]
    latest = max(dated) if dated else None
    found["latest_recovery_point"] = iso(latest)
    problems: list[str] = []
    if item.protection_state != HEALTHY_STATE:
        pending = " (initial backup pending)" if item.protection_state == "IRPending" else ""
        problems.append(f"protection state {item.protection_state or 'unknown'}{pending}")
    if item.last_backup_status not in HEALTHY_BACKUP_STATUSES:
        problems.append(f"last backup {item.last_backup_status or 'never ran'}")
    if item.health_status in UNHEALTHY_HEALTH_STATUSES:
        problems.append(f"health {item.health_status}")
    if latest is None:
        problems.append("no recovery point")
    elif max_age is not None and now - latest > max_age:
        problems.append(f"latest recovery point is older than {max_age.total_seconds() / 3600:g} h")
    return result("; ".join(problems) or None, **found)


def _not_found(error: ResourceNotFoundError, entry: ProtectedVmEntry) -> str:
    """A 404 on the item GET means one of three different things to fix. ARM answers a missing vault
    with ``ResourceNotFound`` "The Resource 'Microsoft.RecoveryServices/vaults/<name>' under resource
    group '<rg>' was not found" (Azure/azure-sdk-for-python#12685, on a backup call) and a missing
    resource group with ``ResourceGroupNotFound``; the backup service answers a missing item with its
    own ``BMSUserError...NotFound`` code (e.g. ``BMSUserErrorDataSourceObjectNotFound``,
    hashicorp/terraform-provider-azurerm#9452)."""
    vault = entry.vault
    code = error_code(error)
    if code == "ResourceGroupNotFound":
        return f"vault missing: resource group {vault.resource_group} not found in subscription {vault.subscription_id}"
    message = str(getattr(error.error, "message", None) or error).lower()
    if code == "ResourceNotFound" and "microsoft.recoveryservices/vaults" in message:
        return (
            f"vault missing: {vault.name} not found in resource group {vault.resource_group} "
            f"(subscription {vault.subscription_id}); check vaultId in the stack outputs"
        )
    return "not protected: no protected item in the vault"


def _client_or_error(
    api_factory: Callable[[VaultRef], BackupApi], vault: VaultRef
) -> BackupApi | Exception:
    try:
        return api_factory(vault)
    except (AzureError, ValueError, OSError) as error:  # e.g. a credential that cannot be built
        return error


def _unreachable(entry: ProtectedVmEntry, error: Exception) -> VmHealth:
    problem = f"no client for vault {entry.vault.name}: {describe_error(error)}"
    return VmHealth(entry.vm.name, entry.vm.vm_id, entry.vault.name, None, None, None, None, problem)


def check_all(
    entries: Sequence[ProtectedVmEntry],
    api_factory: Callable[[VaultRef], BackupApi] = BackupApi.for_vault,
    *,
    max_age: dt.timedelta | None = None,
    now: dt.datetime | None = None,
    workers: int = 16,
) -> list[VmHealth]:
    """Health of every VM, in input order; one client per vault."""
    now = now or utc_now()
    apis: dict[str, BackupApi | Exception] = {}
    for entry in entries:
        key = entry.vault.id.lower()
        if key not in apis:
            apis[key] = _client_or_error(api_factory, entry.vault)

    def check(entry: ProtectedVmEntry) -> VmHealth:
        api = apis[entry.vault.id.lower()]
        return _unreachable(entry, api) if isinstance(api, Exception) else check_vm(api, entry, now, max_age)

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(entries)))) as pool:
            return list(pool.map(check, entries))
    finally:
        for api in apis.values():
            if not isinstance(api, Exception):
                api.close()


COLUMNS = (
    ("VM", "vm_name"),
    ("VAULT", "vault_name"),
    ("STATE", "protection_state"),
    ("LAST BACKUP", "last_backup_status"),
    ("LAST BACKUP TIME", "last_backup_time"),
    ("LATEST RECOVERY POINT", "latest_recovery_point"),
)


def render_table(rows: Iterable[VmHealth]) -> str:
    rows = list(rows)
    header = [title for title, _ in COLUMNS] + ["RESULT"]
    body = [
        [str(getattr(row, attr) or "-") for _, attr in COLUMNS] + ["OK" if row.healthy else f"FAIL: {row.problem}"]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for line in [header, *body]:
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        )
    unhealthy = sum(not row.healthy for row in rows)
    lines.append(f"{len(rows) - unhealthy} of {len(rows)} VM(s) healthy" + (f", {unhealthy} not" if unhealthy else ""))
    return "\n".join(lines)


def render_json(rows: Iterable[VmHealth]) -> str:
    return json.dumps([{**asdict(row), "healthy": row.healthy} for row in rows], indent=2)
