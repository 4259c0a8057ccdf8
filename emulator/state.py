"""In-memory Recovery Services state and the rules Azure Backup applies to it.

Time is derived from the injected clock on every access instead of background
threads, so a ManualClock fully controls when jobs finish and nothing races.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .catalog import IN_PROGRESS_ERROR, JobError
from .clock import Clock
from .compute import ComputeState, Disk, VmLayout
from .errors import ApiError, invalid_input, resource_not_found
from .faults import HANG, Faults, JobOutcome, vm_key
from .names import (
    ITEM_TYPE,
    JOB_TYPE,
    POLICY_TYPE,
    RP_TYPE,
    VAULT_TYPE,
    VmRef,
    container_name,
    iso,
    iso_duration,
    item_name,
    parse_container,
    parse_item,
    parse_vm_id,
)
from .policy_rules import check_iaas_vm_policy
from .vault_settings import check_vault_settings

VaultKey = tuple[str, str, str]

TERMINAL_JOB_STATES = ("Completed", "Failed", "Cancelled", "CompletedWithWarnings")

#: ``lastBackupTime`` of an item that was never backed up. Azure does not omit the key: it answers this
#: sentinel (reported in this project's issue 12 from real answers; no official example shows an
#: IRPending item, so this is the one value here not backed by a spec file).
NEVER_BACKED_UP = "2001-01-01T00:00:00Z"
#: endTime of an operation still InProgress (ProtectedItem_Delete_OperationStatus.json).
OPERATION_NOT_ENDED = "0001-01-01T00:00:00.00000Z"

# Azure creates these with every vault, and ARM templates routinely point items at them.
DEFAULT_POLICY: dict[str, Any] = {
    "backupManagementType": "AzureIaasVM",
    "instantRpRetentionRangeInDays": 2,
    "policyType": "V1",
    "retentionPolicy": {
        "retentionPolicyType": "LongTermRetentionPolicy",
        "dailySchedule": {
            "retentionTimes": ["2018-01-01T22:00:00Z"],
            "retentionDuration": {"count": 30, "durationType": "Days"},
        },
    },
    "schedulePolicy": {
        "schedulePolicyType": "SimpleSchedulePolicy",
        "scheduleRunFrequency": "Daily",
        "scheduleRunTimes": ["2018-01-01T22:00:00Z"],
        "scheduleWeeklyFrequency": 0,
    },
    "timeZone": "UTC",
}


@dataclass
class Policy:
    name: str
    properties: dict[str, Any]


@dataclass
class Vault:
    subscription: str
    resource_group: str
    name: str
    location: str
    sku: dict[str, Any]
    properties: dict[str, Any]
    tags: dict[str, Any]
    identity: dict[str, Any] | None
    etag: str
    policies: dict[str, Policy] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{self.name}"
        )


@dataclass
class RecoveryPoint:
    name: str
    time: dt.datetime
    consistency: str
    #: ``recoveryPointDiskConfiguration`` as the point's GET shows it, taken when the backup ran
    #: (the selection applies to later points: docs selective-disk-backup-restore); None for an item
    #: without selective disk backup, whose points the official examples show without the field.
    disk_configuration: dict[str, Any] | None = None


@dataclass
class Item:
    vault_id: str
    vm: VmRef
    policy_id: str
    policy_type: str
    data_id: str
    protection_state: str = "IRPending"
    # Before the first backup: no status and the 2001-01-01 sentinel time (see NEVER_BACKED_UP).
    last_backup_status: str = ""
    health_status: str = "Passed"
    protection_status: str = "Healthy"
    last_backup_time: dt.datetime | None = None
    recovery_points: list[RecoveryPoint] = field(default_factory=list)
    #: Set while soft-deleted: when Azure purges the item (the vault's soft-delete retention).
    deferred_delete_at: dt.datetime | None = None
    #: Selective disk backup, as PUT (``extendedProperties.diskExclusionProperties``); None = every disk.
    disk_exclusion: dict[str, Any] | None = None

    @property
    def container(self) -> str:
        return container_name(self.vm.resource_group, self.vm.name)

    @property
    def name(self) -> str:
        return item_name(self.vm.resource_group, self.vm.name)

    @property
    def id(self) -> str:
        return f"{self.vault_id}/backupFabrics/Azure/protectionContainers/{self.container}/protectedItems/{self.name}"


@dataclass
class Job:
    job_id: str
    vault_key: VaultKey
    vault_id: str
    item_key: str
    vm_name: str
    container: str
    operation: str
    started_at: float
    start_time: dt.datetime
    outcome: JobOutcome
    user_triggered: bool
    seq: int
    activity_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "InProgress"
    ended_at: float | None = None
    end_time: dt.datetime | None = None
    duration: float | None = None  # clock seconds this job takes; None = emulator default
    #: Clock time from which list/get show the job (asynchronous appearance, see State.job_appearance_delay).
    visible_at: float = 0.0
    #: Clock time a cancel was requested (POST .../cancel); the job is Cancelling until cancel_duration later.
    cancel_requested_at: float | None = None


@dataclass
class Operation:
    op_id: str
    vault_key: VaultKey
    item_key: str | None
    kind: str  # "protect", "backup" or "delete"
    started_at: float
    start_time: dt.datetime
    job_id: str | None = None
    error: JobError | None = None


@dataclass(frozen=True)
class JobView:
    """Read-only snapshot handed to tests so they can assert without going through HTTP."""

    job_id: str
    vault_name: str
    item_name: str
    vm_name: str
    operation: str
    status: str
    start_time: dt.datetime
    end_time: dt.datetime | None
    error_code: str | None
    user_triggered: bool


@dataclass
class Restore:
    """What a "RestoreDisks" request asked for, kept beside its Restore job until the job ends."""

    job_id: str
    vm_id: str
    vm_name: str
    recovery_point_time: dt.datetime
    storage_account: str
    target_subscription: str
    target_resource_group: str
    region: str
    #: (LUN, name) of the disks the recovery point holds, for a selective disk backup; None = every disk.
    included: list[tuple[int, str]] | None = None
    disks: list[str] = field(default_factory=list)
    applied: bool = False


#: ``IaasVMRestoreRequest`` and its one subtype (swagger discriminator values; SDK 11.x models).
RESTORE_REQUEST_TYPES = ("IaasVMRestoreRequest", "IaasVMRestoreWithRehydrationRequest")
#: The ``RecoveryType`` enum values (SDK ``models.RecoveryType``, from the swagger).
RECOVERY_TYPES = ("Invalid", "OriginalLocation", "AlternateLocation", "RestoreDisks", "Offline")


class State:
    def __init__(
        self,
        clock: Clock,
        faults: Faults,
        job_duration: float,
        operation_delay: float,
        job_appearance_delay: float = 0.0,
        cancel_duration: float = 10.0,
        start_time: dt.datetime | None = None,
    ) -> None:
        self.clock = clock
        self.faults = faults
        self.job_duration = job_duration
        self.operation_delay = operation_delay
        #: A triggered job is listed only after its trigger operation ran this long: on Azure the
        #: job appears asynchronously, and until then the operation status says InProgress.
        self.job_appearance_delay = job_appearance_delay
        #: How long a job stays "Cancelling" (bms.json JobStatus) before "Cancelled". The duration is a
        #: belief: Azure documents the state, not how long it lasts.
        self.cancel_duration = cancel_duration
        self._lock = threading.RLock()
        self._clock_origin = clock.now()
        #: Wall time at the clock's origin; a conformance replay starts at an example's own date.
        self._wall_origin = start_time.astimezone(dt.UTC) if start_time is not None else dt.datetime.now(dt.UTC)
        self._vms: dict[str, VmRef] = {}
        self._vm_locations: dict[str, str] = {}
        self._vaults: dict[VaultKey, Vault] = {}
        self._jobs: dict[str, Job] = {}
        #: The jobs not finished yet (InProgress or Cancelling), in start order: what _advance and a
        #: trigger's running-backup check look at, so a request costs O(running jobs), not O(all jobs)
        #: (2,000 triggers otherwise cost the emulator ~4 s of CPU, which the benchmarks then measure).
        self._open_jobs: dict[str, Job] = {}
        self._operations: dict[str, Operation] = {}
        self._triggers: Counter[str] = Counter()
        self._seq = 0
        self._rng = random.Random()
        self.compute = ComputeState()
        self._restores: dict[str, Restore] = {}

    # --- time -------------------------------------------------------------
    def now(self) -> dt.datetime:
        """Wall time that moves with the emulator clock, so timestamps agree with job progress."""
        return self._wall_origin + dt.timedelta(seconds=self.clock.now() - self._clock_origin)

    # --- VMs ----------------------------------------------------------------
    def add_vm(self, vm_id: str, location: str = "westeurope") -> VmRef:
        ref = parse_vm_id(vm_id)
        with self._lock:
            self._vms[ref.key] = ref
            self._vm_locations[ref.key] = location.replace(" ", "").lower()
        return ref

    def backup_status(self, region: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST .../locations/{region}/backupStatus`` for a VM: which vault holds an item for it
        (azure-rest-api-specs ``examples/AzureIaasVm/GetBackupStatus.json``). An item stopped
        with its data retained or soft-deleted still ties the VM to its vault here (assumption:
        no example shows those states; Azure refuses to protect such a VM in another vault)."""
        resource_id = body.get("resourceId")
        if not isinstance(resource_id, str) or str(body.get("resourceType", "")).lower() != "vm":
            raise invalid_input("backupStatus needs resourceId and resourceType 'VM'.")
        ref = parse_vm_id(resource_id)
        with self._lock:
            for vault in self._vaults.values():
                found = vault.items.get(item_name(ref.resource_group, ref.name).lower())
                if found is not None and found.vm.key == ref.key:
                    policy = found.policy_id.rsplit("/", 1)[-1] if found.policy_id else None
                    answer: dict[str, Any] = {
                        "protectionStatus": "Protected",
                        "vaultId": vault.id,
                        "fabricName": "Azure",
                        "containerName": found.container,
                        "protectedItemName": found.name,
                        "errorCode": "Success",
                    }
                    if policy:
                        answer["policyName"] = policy
                    return answer
            return {"protectionStatus": "NotProtected", "errorCode": "Success"}

    # --- vaults ---------------------------------------------------------
    def put_vault(self, sub: str, rg: str, name: str, body: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise ApiError(400, "LocationRequired", "The location property is required for this definition.")
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise ApiError(400, "InvalidRequestContent", "The 'properties' value must be an object.")
        sku = body.get("sku") or {"name": "Standard"}
        identity = copy.deepcopy(body.get("identity"))
        if isinstance(identity, dict) and "systemassigned" in str(identity.get("type", "")).lower():
            identity.setdefault("principalId", str(uuid.uuid4()))
            identity.setdefault("tenantId", "00000000-0000-0000-0000-000000000000")
        check_vault_settings(props, identity)
        key = (sub.lower(), rg.lower(), name.lower())
        with self._lock:
            existing = self._vaults.get(key)
            _check_irreversible(existing.properties if existing else None, props)
            if existing:
                props = _keep_irreversible(existing.properties, props)
            vault = Vault(
                subscription=existing.subscription if existing else sub,
                resource_group=existing.resource_group if existing else rg,
                name=existing.name if existing else name,
                location=location.replace(" ", "").lower(),
                sku=_normalise_sku(sku),
                properties=copy.deepcopy(props),
                tags=copy.deepcopy(body.get("tags") or {}),
                identity=identity,
                etag=f"W/\"datetime'{iso(self.now()).replace(':', '%3A')}'\"",
            )
            if existing:
                vault.policies, vault.items = existing.policies, existing.items
            else:
                vault.policies = {
                    "defaultpolicy": Policy("DefaultPolicy", copy.deepcopy(DEFAULT_POLICY)),
                }
            self._vaults[key] = vault
            return existing is None, self._vault_body(vault)

    def patch_vault(self, sub: str, rg: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH merges ``properties`` into the vault (how azurerm locks a vault after creating it
        Unlocked: ``client.UpdateThenPoll`` with only ``securitySettings``), under the same
        one-way rules as PUT."""
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise ApiError(400, "InvalidRequestContent", "The 'properties' value must be an object.")
        with self._lock:
            vault = self.require_vault(sub, rg, name)
            merged = _merge(vault.properties, props)
            check_vault_settings(merged, vault.identity)
            _check_irreversible(vault.properties, merged)
            vault.properties = merged
            vault.etag = f"W/\"datetime'{iso(self.now()).replace(':', '%3A')}'\""
            return self._vault_body(vault)

    def get_vault(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        with self._lock:
            return self._vault_body(self.require_vault(sub, rg, name))

    def require_vault(self, sub: str, rg: str, name: str) -> Vault:
        with self._lock:
            vault = self._vaults.get((sub.lower(), rg.lower(), name.lower()))
            if vault is None:
                raise resource_not_found(VAULT_TYPE, name, rg)
            return vault

    def _vault_body(self, vault: Vault) -> dict[str, Any]:
        props = copy.deepcopy(vault.properties)
        props["provisioningState"] = "Succeeded"
        body: dict[str, Any] = {
            "id": vault.id,
            "name": vault.name,
            "type": VAULT_TYPE,
            "etag": vault.etag,
            "location": vault.location,
            "tags": copy.deepcopy(vault.tags),
            "sku": copy.deepcopy(vault.sku),
            "properties": props,
        }
        if vault.identity is not None:
            body["identity"] = copy.deepcopy(vault.identity)
        return body

    # --- policies -------------------------------------------------------
    def put_policy(self, vault: Vault, name: str, body: dict[str, Any]) -> dict[str, Any]:
        props = body.get("properties")
        if not isinstance(props, dict) or not props.get("backupManagementType"):
            raise invalid_input("Policy properties with a backupManagementType are required.")
        props = copy.deepcopy(props)
        check_iaas_vm_policy(props)
        schedule = props.get("schedulePolicy")
        if isinstance(schedule, dict) and schedule.get("schedulePolicyType") == "SimpleSchedulePolicy":
            schedule.setdefault("scheduleWeeklyFrequency", 0)
        with self._lock:
            existing = vault.policies.get(name.lower())
            policy = Policy(existing.name if existing else name, props)
            vault.policies[name.lower()] = policy
            return self._policy_body(vault, policy)

    def get_policy(self, vault: Vault, name: str) -> dict[str, Any]:
        with self._lock:
            policy = vault.policies.get(name.lower())
            if policy is None:
                raise ApiError(404, "BMSUserErrorPolicyNotFound", f"Backup policy '{name}' was not found.")
            return self._policy_body(vault, policy)

    def _policy_body(self, vault: Vault, policy: Policy) -> dict[str, Any]:
        props = copy.deepcopy(policy.properties)
        policy_id = f"{vault.id}/backupPolicies/{policy.name}".lower()
        props["protectedItemsCount"] = sum(1 for i in vault.items.values() if i.policy_id.lower() == policy_id)
        return {
            "id": f"{vault.id}/backupPolicies/{policy.name}",
            "name": policy.name,
            "type": POLICY_TYPE,
            "properties": props,
        }

    # --- protected items ------------------------------------------------
    def put_item(self, vault: Vault, container: str, item: str, body: dict[str, Any]) -> Operation:
        c_rg, c_vm = parse_container(container)
        i_rg, i_vm = parse_item(item)
        if (c_rg, c_vm) != (i_rg, i_vm):
            raise invalid_input(f"Protected item '{item}' does not belong to container '{container}'.")
        props = body.get("properties")
        if not isinstance(props, dict):
            raise invalid_input("The request body must contain 'properties'.")
        item_type = props.get("protectedItemType")
        if str(item_type).lower() != "microsoft.compute/virtualmachines":
            raise invalid_input(
                f"protectedItemType '{item_type}' is not supported; use 'Microsoft.Compute/virtualMachines'."
            )
        if props.get("isRehydrate") is True:  # azurerm's undelete body carries nothing else
            with self._lock:
                return self._undelete(vault, vault.items.get(item.lower()), item)
        source = props.get("sourceResourceId")
        if not isinstance(source, str):
            raise invalid_input("properties.sourceResourceId is required.")
        ref = parse_vm_id(source)
        with self._lock:
            key = item.lower()
            existing = vault.items.get(key)
            if existing is not None and existing.deferred_delete_at is not None:
                # Azure refuses to touch a soft-deleted item until it is undeleted (docs:
                # soft-delete-virtual-machines "To restore the soft-deleted VM, it must first be
                # undeleted"). The exact error code is not documented anywhere we found.
                raise ApiError(
                    400,
                    "UserErrorBackupItemSoftDeleted",
                    f"Protected item '{item}' is in soft-deleted state; undelete it before configuring protection.",
                )
            if props.get("protectionState") == "ProtectionStopped":
                return self._stop_protection(vault, existing, item)
            policy_id = props.get("policyId")
            if not isinstance(policy_id, str) or not policy_id:
                raise invalid_input("properties.policyId is required to enable protection.")
            vm = self._vms.get(ref.key)
            if vm is None:
                raise resource_not_found("Microsoft.Compute/virtualMachines", ref.name, ref.resource_group)
            if (vm.resource_group.lower(), vm.name.lower()) != (i_rg, i_vm):
                raise invalid_input(f"sourceResourceId '{source}' does not match protected item '{item}'.")
            policy = self._policy_for_id(vault, policy_id)
            exclusion = _disk_exclusion(props)
            if existing is None:
                existing = Item(
                    vault_id=vault.id,
                    vm=vm,
                    policy_id=policy_id,
                    policy_type=str(policy.properties.get("policyType", "V1")),
                    data_id=str(self._rng.randrange(10**17, 10**18)),
                )
                vault.items[key] = existing
            else:
                existing.policy_id = policy_id
                existing.policy_type = str(policy.properties.get("policyType", "V1"))
                if existing.protection_state == "ProtectionStopped":
                    # "Resume backup" of an item stopped with retained data: protected again.
                    existing.protection_state = "Protected" if existing.recovery_points else "IRPending"
            # "The configure protection operation overrides the previous settings" (docs:
            # selective-disk-backup-restore): each PUT replaces the selection, none resets it.
            existing.disk_exclusion = exclusion
            vault_key = _vault_key(vault)
            op = self._new_operation(vault_key, key, "protect")
            job = self._new_job(
                vault, existing, "ConfigureBackup", JobOutcome("Completed"), user_triggered=True, duration=0.0
            )
            op.job_id = job.job_id
            return op

    def _stop_protection(self, vault: Vault, existing: Item | None, item: str) -> Operation:
        """"Stop backup and retain data": ``protectionState: ProtectionStopped`` without a policy
        (``examples/AzureIaasVm/StopProtection.json``, whose answer keeps ``policyId``).
        Recovery points stay; no backup runs any more."""
        if existing is None:
            raise ApiError(
                404,
                "BMSUserErrorItemNotFound",
                f"Protected item '{item}' was not found in vault '{vault.name}'.",
            )
        existing.protection_state = "ProtectionStopped"
        op = self._new_operation(_vault_key(vault), item.lower(), "protect")
        # "DisableBackup"/"Undelete" are values of the spec's job operation enum (JobOperationType:
        # ... ConfigureBackup, Backup, Restore, DisableBackup, DeleteBackupData, ..., Undelete).
        job = self._new_job(
            vault, existing, "DisableBackup", JobOutcome("Completed"), user_triggered=True, duration=0.0
        )
        op.job_id = job.job_id
        return op

    def _undelete(self, vault: Vault, existing: Item | None, item: str) -> Operation:
        """``isRehydrate: true`` moves a soft-deleted item "into Pause state" (the SDK's model
        docs; azurerm ``resourceRecoveryServicesVaultBackupProtectedVMRecoverSoftDeleted`` sends
        exactly this body): ProtectionStopped with its recovery points."""
        if existing is None or existing.deferred_delete_at is None:
            raise invalid_input(f"Protected item '{item}' is not in soft-deleted state.")
        existing.deferred_delete_at = None
        existing.protection_state = "ProtectionStopped"
        op = self._new_operation(_vault_key(vault), item.lower(), "protect")
        job = self._new_job(vault, existing, "Undelete", JobOutcome("Completed"), user_triggered=True, duration=0.0)
        op.job_id = job.job_id
        return op

    def _policy_for_id(self, vault: Vault, policy_id: str) -> Policy:
        parts = [p for p in policy_id.split("/") if p]
        if (
            len(parts) < 2
            or parts[-2].lower() != "backuppolicies"
            or not policy_id.lower().startswith(vault.id.lower() + "/")
        ):
            raise invalid_input(f"policyId '{policy_id}' does not refer to a backup policy of vault '{vault.name}'.")
        policy = vault.policies.get(parts[-1].lower())
        if policy is None:
            raise ApiError(404, "BMSUserErrorPolicyNotFound", f"Backup policy '{parts[-1]}' was not found.")
        return policy

    def require_item(self, vault: Vault, container: str, item: str) -> Item:
        c_rg, c_vm = parse_container(container)
        i_rg, i_vm = parse_item(item)
        with self._lock:
            found = vault.items.get(item.lower())
            if found is None or (c_rg, c_vm) != (i_rg, i_vm):
                raise ApiError(
                    404,
                    "BMSUserErrorItemNotFound",
                    f"Protected item '{item}' was not found in container '{container}' of vault '{vault.name}'.",
                )
            return found

    def get_item(self, vault: Vault, container: str, item: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            return self._item_body(self.require_item(vault, container, item))

    def list_items(self, vault: Vault) -> list[dict[str, Any]]:
        """BackupProtectedItems_List (BackupProtectedItems_List.json): every item of the vault."""
        with self._lock:
            self._advance()
            return [self._item_body(found) for found in vault.items.values()]

    def delete_item(self, vault: Vault, container: str, item: str) -> Operation:
        """"Stop backup and delete data". With soft delete Enabled/AlwaysON the item and its
        recovery points stay, flagged ``isScheduledForDeferredDelete`` until
        ``deferredDeleteTimeInUTC`` = now + the vault's soft-delete retention (docs:
        soft-delete-virtual-machines; the fields are AzureIaaSVMProtectedItem's in the spec);
        without soft delete the item is gone at once."""
        with self._lock:
            found = self.require_item(vault, container, item)
            soft = (vault.properties.get("securitySettings") or {}).get("softDeleteSettings") or {}
            if str(soft.get("softDeleteState", "Enabled")) in ("Enabled", "AlwaysON"):
                if found.deferred_delete_at is None:
                    days = int(soft.get("softDeleteRetentionPeriodInDays") or 14)
                    found.deferred_delete_at = self.now() + dt.timedelta(days=days)
                    found.protection_state = "ProtectionStopped"
            else:
                del vault.items[item.lower()]
            return self._new_operation(_vault_key(vault), item.lower(), "delete")

    def _item_body(self, item: Item) -> dict[str, Any]:
        props: dict[str, Any] = {
            "protectedItemType": "Microsoft.Compute/virtualMachines",
            "backupManagementType": "AzureIaasVM",
            "workloadType": "VM",
            "containerName": item.container.split(";", 1)[1],
            "friendlyName": item.vm.name,
            "sourceResourceId": item.vm.id,
            "virtualMachineId": item.vm.id,
            "policyId": item.policy_id,
            "policyType": item.policy_type,
            "protectionState": item.protection_state,
            "protectionStatus": item.protection_status,
            "healthStatus": item.health_status,
            "lastBackupStatus": item.last_backup_status,
            "protectedItemDataId": item.data_id,
        }
        # Azure answers a time before the first backup too: the 2001-01-01 sentinel, not an absent key.
        props["lastBackupTime"] = NEVER_BACKED_UP if item.last_backup_time is None else iso(item.last_backup_time)
        if item.recovery_points:
            props["lastRecoveryPoint"] = iso(item.recovery_points[-1].time)
        if item.disk_exclusion is not None:
            props["extendedProperties"] = {"diskExclusionProperties": dict(item.disk_exclusion)}
        if item.deferred_delete_at is not None:
            props["isScheduledForDeferredDelete"] = True
            props["deferredDeleteTimeInUTC"] = iso(item.deferred_delete_at)
        return {"id": item.id, "name": item.name, "type": ITEM_TYPE, "properties": props}

    # --- backups ----------------------------------------------------------
    def trigger_backup(self, vault: Vault, container: str, item: str, body: dict[str, Any]) -> Operation:
        props = body.get("properties")
        if not isinstance(props, dict) or props.get("objectType") != "IaasVMBackupRequest":
            raise invalid_input("The backup request must have properties.objectType 'IaasVMBackupRequest'.")
        expiry_text = props.get("recoveryPointExpiryTimeInUTC")
        with self._lock:
            if expiry_text is not None:
                expiry = _parse_iso(expiry_text)
                if expiry is None:
                    raise invalid_input(f"recoveryPointExpiryTimeInUTC '{expiry_text}' is not a valid ISO-8601 time.")
                if expiry <= self.now():
                    raise invalid_input("recoveryPointExpiryTimeInUTC must be in the future.")
            self._advance()
            found = self.require_item(vault, container, item)
            self._triggers[found.vm.name.lower()] += 1
            op = self._new_operation(_vault_key(vault), item.lower(), "backup")
            if self._running_backup(found) is not None:
                op.error = IN_PROGRESS_ERROR
                return op
            outcome = self.faults.take_job_outcome(found.vm.name)
            job = self._new_job(vault, found, "Backup", outcome, user_triggered=True, appears_later=True)
            op.job_id = job.job_id
            return op

    def start_job(self, vm_or_item_name: str, hang: bool = False, duration: float | None = None) -> str:
        """A backup started outside the caller's code (portal "Backup now"), for adopt-in-progress tests."""
        wanted = vm_key(vm_or_item_name)
        with self._lock:
            self._advance()
            for vault in self._vaults.values():
                for found in vault.items.values():
                    if found.vm.name.lower() == wanted:
                        outcome = JobOutcome(HANG) if hang else self.faults.take_job_outcome(found.vm.name)
                        return self._new_job(
                            vault, found, "Backup", outcome, user_triggered=True, duration=duration
                        ).job_id
        raise KeyError(f"no protected item for {vm_or_item_name!r}; enable protection first")

    def _running_backup(self, item: Item) -> Job | None:
        item_key, vault_id = item.name.lower(), item.vault_id.lower()
        for job in self._open_jobs.values():
            if (
                job.item_key == item_key
                and job.operation == "Backup"
                and job.status in ("InProgress", "Cancelling")
                and job.vault_id.lower() == vault_id
            ):
                return job
        return None

    def trigger_count(self, vm_or_item_name: str) -> int:
        with self._lock:
            return self._triggers[vm_key(vm_or_item_name)]

    # --- operations ---------------------------------------------------
    def _new_operation(self, vault_key: VaultKey, item_key: str | None, kind: str) -> Operation:
        op = Operation(str(uuid.uuid4()), vault_key, item_key, kind, self.clock.now(), self.now())
        self._operations[op.op_id] = op
        return op

    def operation_status(self, vault: Vault, op_id: str, item: str | None = None) -> dict[str, Any]:
        with self._lock:
            self._advance()
            op = self._require_operation(vault, op_id, item)
            status = self._op_status(op)
            body: dict[str, Any] = {
                "id": op.op_id,
                "name": op.op_id,
                "status": status,
                "startTime": iso(op.start_time),
            }
            # ProtectedItem_Delete_OperationStatus.json: an InProgress operation carries .NET's
            # DateTime.MinValue as its endTime, not an absent key.
            body["endTime"] = (
                OPERATION_NOT_ENDED
                if status == "InProgress"
                else iso(op.start_time + dt.timedelta(seconds=self.operation_delay))
            )
            if status == "Failed" and op.error is not None:
                body["error"] = {"code": op.error.code, "message": op.error.message}
            if status == "Succeeded" and op.job_id is not None:
                body["properties"] = {"objectType": "OperationStatusJobExtendedInfo", "jobId": op.job_id}
            return body

    def operation_result(self, vault: Vault, op_id: str, item: str) -> tuple[str, dict[str, Any] | None]:
        """(status, item body for a finished protect operation)."""
        with self._lock:
            self._advance()
            op = self._require_operation(vault, op_id, item)
            status = self._op_status(op)
            if status == "Succeeded" and op.kind == "protect":
                found = vault.items.get(item.lower())
                return status, self._item_body(found) if found else None
            return status, None

    def operation_ref(self, vault: Vault, op_id: str) -> Operation:
        with self._lock:
            return self._require_operation(vault, op_id, None)

    def _require_operation(self, vault: Vault, op_id: str, item: str | None) -> Operation:
        op = self._operations.get(op_id.lower())
        if op is None or op.vault_key != _vault_key(vault) or (item is not None and op.item_key != item.lower()):
            raise ApiError(404, "BMSUserErrorOperationNotFound", f"Operation '{op_id}' was not found.")
        return op

    def _op_status(self, op: Operation) -> str:
        now = self.clock.now()
        if now - op.started_at < self.operation_delay:
            return "InProgress"
        job = self._jobs.get(op.job_id) if op.job_id else None
        if job is not None and now < job.visible_at:
            return "InProgress"  # the operation has not produced its job yet
        return "Failed" if op.error is not None else "Succeeded"

    # --- jobs -------------------------------------------------------------
    def _new_job(
        self,
        vault: Vault,
        item: Item,
        operation: str,
        outcome: JobOutcome,
        user_triggered: bool,
        duration: float | None = None,
        appears_later: bool = False,
    ) -> Job:
        self._seq += 1
        job = Job(
            job_id=str(uuid.uuid4()),
            vault_key=_vault_key(vault),
            vault_id=vault.id,
            item_key=item.name.lower(),
            vm_name=item.vm.name,
            container=item.container,
            operation=operation,
            started_at=self.clock.now(),
            start_time=self.now(),
            outcome=outcome,
            user_triggered=user_triggered,
            seq=self._seq,
            duration=duration,
            visible_at=self.clock.now() + (self.job_appearance_delay if appears_later else 0.0),
        )
        self._jobs[job.job_id] = job
        self._open_jobs[job.job_id] = job
        self._advance()
        return job

    def _job_duration(self, job: Job) -> float:
        return self.job_duration if job.duration is None else job.duration

    def _advance(self) -> None:
        """Finish every job whose time is up and apply its effects on items and recovery points."""
        now = self.clock.now()
        for job in list(self._open_jobs.values()):  # created in seq order
            if job.status not in ("InProgress", "Cancelling"):
                del self._open_jobs[job.job_id]
                continue
            if job.cancel_requested_at is not None:
                self._advance_cancel(job, now)
                continue
            if job.outcome.status == HANG:
                continue
            ends_at = job.started_at + self._job_duration(job)
            if job.outcome.status == "Cancelled" and now >= ends_at - self.cancel_duration:
                # Someone cancelled it (portal): Azure shows Cancelling before Cancelled.
                job.status = "Cancelling"
            if now < ends_at:
                continue
            job.status = job.outcome.status
            job.ended_at = ends_at
            job.end_time = job.start_time + dt.timedelta(seconds=ends_at - job.started_at)
            if job.operation == "Backup":
                self._apply_backup_result(job)
            elif job.operation == "Restore":
                self._apply_restore_result(job)

    def _advance_cancel(self, job: Job, now: float) -> None:
        assert job.cancel_requested_at is not None
        job.status = "Cancelling"
        ends_at = job.cancel_requested_at + self.cancel_duration
        if now >= ends_at:
            job.status = "Cancelled"
            job.ended_at = ends_at
            job.end_time = job.start_time + dt.timedelta(seconds=ends_at - job.started_at)

    def cancel_job(self, vault: Vault, name: str) -> Operation:
        """POST backupJobs/{job}/cancel (TriggerCancelJob.json): 202, the job turns Cancelling."""
        with self._lock:
            self._advance()
            job = self._visible_job(vault, name)
            if job.status in TERMINAL_JOB_STATES:
                raise ApiError(
                    400,
                    "BMSUserErrorJobNotCancellable",  # belief: no stored source names this code
                    f"Job '{name}' is {job.status} and cannot be cancelled.",
                )
            if job.cancel_requested_at is None:
                job.cancel_requested_at = self.clock.now()
                job.status = "Cancelling"
            op = self._new_operation(_vault_key(vault), None, "cancel")
            op.job_id = job.job_id
            return op

    def cancel_result(self, vault: Vault, name: str, op_id: str) -> str:
        """JobOperationResults_Get (CancelJobOperationResult.json): InProgress while Cancelling."""
        with self._lock:
            self._advance()
            op = self._operations.get(op_id.lower())
            job = self._visible_job(vault, name)
            if op is None or op.job_id != job.job_id:
                raise ApiError(404, "BMSUserErrorOperationNotFound", f"Operation '{op_id}' was not found.")
            return "InProgress" if job.status == "Cancelling" else "Succeeded"

    def _visible_job(self, vault: Vault, name: str) -> Job:
        job = self._jobs.get(name.lower())
        if job is None or job.vault_key != _vault_key(vault) or self.clock.now() < job.visible_at:
            raise ApiError(404, "BMSUserErrorJobNotFound", f"Job '{name}' was not found in vault '{vault.name}'.")
        return job

    def _apply_backup_result(self, job: Job) -> None:
        vault = self._vaults.get(job.vault_key)
        item = vault.items.get(job.item_key) if vault else None
        if item is None or job.end_time is None:
            return
        if job.status in ("Completed", "CompletedWithWarnings"):
            consistency = "AppConsistent" if job.status == "Completed" else "CrashConsistent"
            disks = None
            if item.disk_exclusion is not None:
                disks = _disk_configuration(self._layout(item.vm), item.disk_exclusion)
            item.recovery_points.append(
                RecoveryPoint(str(self._rng.randrange(10**13, 10**14)), job.start_time, consistency, disks)
            )
            item.protection_state = "Protected"
            # Compute_ProtectedItem_Get.json / BackupProtectedItems_List.json (2024-10-01, 2026-10-01):
            # after a good backup lastBackupStatus is "Completed" (the job's status), protectionStatus
            # "Healthy", healthStatus "Passed". CompletedWithWarnings is mirrored the same way (belief:
            # no official example shows it).
            item.last_backup_status = job.status
            item.protection_status = "Healthy"
            item.health_status = "Passed"
            item.last_backup_time = job.start_time
        elif job.status == "Failed":
            # Belief (no official example of a failed item): lastBackupStatus mirrors the job status;
            # healthStatus takes the spec's HealthStatus enum value ActionRequired (bms.json).
            item.last_backup_status = "Failed"
            item.protection_status = "Unhealthy"
            item.health_status = "ActionRequired"

    def get_job(self, vault: Vault, name: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            return self._job_body(self._visible_job(vault, name), detailed=True)

    def list_jobs(self, vault: Vault, predicate: Any) -> list[dict[str, Any]]:
        """Newest first, like the portal and the service."""
        with self._lock:
            self._advance()
            now = self.clock.now()
            jobs = [
                j
                for j in self._jobs.values()
                if j.vault_key == _vault_key(vault) and now >= j.visible_at and predicate(j)
            ]
            jobs.sort(key=lambda j: (j.start_time, j.seq), reverse=True)
            return [self._job_body(j, detailed=False) for j in jobs]

    def _job_body(self, job: Job, detailed: bool) -> dict[str, Any]:
        now = self.clock.now()
        finished_at = job.ended_at if job.ended_at is not None else now
        elapsed = finished_at - job.started_at
        props: dict[str, Any] = {
            "jobType": "AzureIaaSVMJob",
            "activityId": job.activity_id,
            "backupManagementType": "AzureIaasVM",
            "duration": iso_duration(elapsed),
            "entityFriendlyName": job.vm_name,
            "operation": job.operation,
            "startTime": iso(job.start_time),
            "status": job.status,
            "virtualMachineVersion": "Compute",
            "containerName": job.container.split(";", 1)[1],
            "isUserTriggered": job.user_triggered,
        }
        if job.end_time is not None:
            props["endTime"] = iso(job.end_time)
        if job.status == "Failed" and job.outcome.error is not None:
            err = job.outcome.error
            props["errorDetails"] = [
                {
                    "errorCode": err.numeric_code,
                    "errorTitle": err.code,
                    "errorString": err.message,
                    "recommendations": list(err.recommendations),
                }
            ]
        if detailed and job.operation == "Restore":
            props["extendedInfo"] = self._restore_extended_info(job, elapsed)
        elif detailed:
            props["extendedInfo"] = self._extended_info(job, elapsed)
        return {
            "id": f"{job.vault_id}/backupJobs/{job.job_id}",
            "name": job.job_id,
            "type": JOB_TYPE,
            "properties": props,
        }

    def _extended_info(self, job: Job, elapsed: float) -> dict[str, Any]:
        total = self._job_duration(job)
        if job.status in ("InProgress", "Cancelling"):
            progress = 99.0 if total <= 0 else min(99.0, round(100.0 * elapsed / total, 1))
        else:
            progress = 100.0
        half = total / 2
        snap_status, transfer_status = _task_statuses(job.status, elapsed, half, job.outcome.error is not None)
        snap_elapsed = min(elapsed, half)
        transfer_elapsed = max(0.0, elapsed - half) if transfer_status != "NotStarted" else 0.0
        info: dict[str, Any] = {
            "propertyBag": {"VM Name": job.vm_name, "Backup Size": "0 MB"},
            "progressPercentage": progress,
            "tasksList": [
                {
                    "taskId": "Take Snapshot",
                    "duration": iso_duration(snap_elapsed),
                    "status": snap_status,
                    "progressPercentage": 100.0 if snap_status != "InProgress" else progress,
                },
                {
                    "taskId": "Transfer data to vault",
                    "duration": iso_duration(transfer_elapsed),
                    "status": transfer_status,
                    "progressPercentage": 100.0 if transfer_status == "Completed" else 0.0,
                },
            ],
        }
        if job.status == "InProgress":
            info["estimatedRemainingDuration"] = iso_duration(max(0.0, total - elapsed))
        if job.status == "Failed" and job.outcome.error is not None:
            info["dynamicErrorMessage"] = job.outcome.error.message
        return info

    # --- recovery points ----------------------------------------------
    def list_recovery_points(self, vault: Vault, container: str, item: str) -> list[dict[str, Any]]:
        with self._lock:
            self._advance()
            found = self.require_item(vault, container, item)
            return [self._rp_body(found, rp, listed=True) for rp in reversed(found.recovery_points)]

    def get_recovery_point(self, vault: Vault, container: str, item: str, rp_name: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            found = self.require_item(vault, container, item)
            for rp in found.recovery_points:
                if rp.name == rp_name:
                    return self._rp_body(found, rp)
            raise ApiError(404, "BMSUserErrorRecoveryPointNotFound", f"Recovery point '{rp_name}' was not found.")

    def _rp_body(self, item: Item, rp: RecoveryPoint, listed: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"{item.id}/recoveryPoints/{rp.name}",
            "name": rp.name,
            "type": RP_TYPE,
            "properties": {
                "objectType": "IaasVMRecoveryPoint",
                "isInstantIlrSessionActive": False,
                "isManagedVirtualMachine": True,
                "isPrivateAccessEnabledOnAnyDisk": False,
                "isSourceVMEncrypted": False,
                "originalStorageAccountOption": False,
                "recoveryPointAdditionalInfo": "",
                "recoveryPointMoveReadinessInfo": {
                    "ArchivedRP": {
                        "isReadyForMove": False,
                        "additionalInfo": "Recovery point is not yet eligible for move to the archive tier.",
                    }
                },
                "recoveryPointTierDetails": [
                    {"type": "InstantRP", "status": "Valid"},
                    {"type": "HardenedRP", "status": "Valid"},
                ],
                "recoveryPointTime": iso(rp.time),
                "recoveryPointType": rp.consistency,
                "sourceVMStorageType": "NormalStorage",
                "virtualMachineSize": "Standard_D2s_v3",
                "zones": ["1"],
            },
        }
        if rp.disk_configuration is not None:
            disks = copy.deepcopy(rp.disk_configuration)
            if listed:
                # docs selective-disk-backup-restore: ``az backup recoverypoint list`` shows the two
                # counts with ``"excludedDiskList": null, "includedDiskList": null``; only
                # ``recoverypoint show`` (the GET) lists the disks.
                disks["excludedDiskList"] = disks["includedDiskList"] = None
            body["properties"]["recoveryPointDiskConfiguration"] = disks
        return body

    # --- views ------------------------------------------------------------
    def job_views(self) -> tuple[JobView, ...]:
        with self._lock:
            self._advance()
            views = []
            for job in sorted(self._jobs.values(), key=lambda j: j.seq):
                vault = self._vaults.get(job.vault_key)
                views.append(
                    JobView(
                        job_id=job.job_id,
                        vault_name=vault.name if vault else job.vault_key[2],
                        item_name=item_name(*job.item_key.split(";")[2:4]),
                        vm_name=job.vm_name,
                        operation=job.operation,
                        status=job.status,
                        start_time=job.start_time,
                        end_time=job.end_time,
                        error_code=job.outcome.error.code if job.status == "Failed" and job.outcome.error else None,
                        user_triggered=job.user_triggered,
                    )
                )
            return tuple(views)

    # --- restores (the restore drill) -----------------------------------------
    def trigger_restore(self, vault: Vault, container: str, item: str, rp_name: str, body: dict[str, Any]) -> Operation:
        """POST .../recoveryPoints/{rp}/restore with an ``IaasVMRestoreRequest`` of recovery type
        ``RestoreDisks`` (the request of TriggerRestore_RestoreDisks_IaasVMRestoreRequest.json).

        Rules enforced, each from the request model's documentation (SDK 11.x ``IaasVMRestoreRequest``)
        or the example: objectType and recoveryType are enum values; recoveryPointId (when sent) and
        sourceResourceId name the path's recovery point and the item's VM; storageAccountId is a
        storage account id (the staging location of a disk restore); targetResourceGroupId is where
        managed disks are created. Only RestoreDisks is emulated (no VM is ever created here); other
        recovery types are refused with a message saying so (an emulator limit, not an Azure rule).
        Not checked for want of a source: that ``region`` equals the vault's region."""
        props = body.get("properties")
        if not isinstance(props, dict) or props.get("objectType") not in RESTORE_REQUEST_TYPES:
            raise invalid_input(
                f"The restore request must have properties.objectType one of {', '.join(RESTORE_REQUEST_TYPES)}."
            )
        recovery_type = props.get("recoveryType")
        if recovery_type not in RECOVERY_TYPES:
            raise invalid_input(f"recoveryType '{recovery_type}' is not valid; allowed: {', '.join(RECOVERY_TYPES)}.")
        if recovery_type != "RestoreDisks":
            raise invalid_input(
                f"The emulator only restores disks (recoveryType 'RestoreDisks'), not '{recovery_type}'."
            )
        sent_rp = props.get("recoveryPointId")
        if sent_rp is not None and str(sent_rp) != rp_name:
            raise invalid_input(
                f"recoveryPointId '{sent_rp}' does not match the recovery point '{rp_name}' of the URL."
            )
        source = props.get("sourceResourceId")
        if not isinstance(source, str):
            raise invalid_input("properties.sourceResourceId is required.")
        source_ref = parse_vm_id(source)
        storage = _arm_parts(props.get("storageAccountId"), "Microsoft.Storage/storageAccounts")
        if storage is None:
            raise invalid_input(
                "properties.storageAccountId must be a storage account id "
                "(/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>)."
            )
        target = _arm_parts(props.get("targetResourceGroupId"), None)
        if target is None:
            raise invalid_input(
                "properties.targetResourceGroupId must be a resource group id "
                "(/subscriptions/<id>/resourceGroups/<rg>) to restore managed disks."
            )
        region = props.get("region")
        if not isinstance(region, str) or not region:
            raise invalid_input("properties.region is required.")
        with self._lock:
            self._advance()
            found = self.require_item(vault, container, item)
            if source_ref.key != found.vm.key:
                raise invalid_input(f"sourceResourceId '{source}' does not match protected item '{item}'.")
            point = next((rp for rp in found.recovery_points if rp.name == rp_name), None)
            if point is None:
                raise ApiError(404, "BMSUserErrorRecoveryPointNotFound", f"Recovery point '{rp_name}' was not found.")
            op = self._new_operation(_vault_key(vault), item.lower(), "restore")
            outcome = self.faults.take_restore_outcome(found.vm.name)
            job = self._new_job(vault, found, "Restore", outcome, user_triggered=True)
            op.job_id = job.job_id
            restore = Restore(
                job.job_id,
                found.vm.id,
                found.vm.name,
                point.time,
                storage[2],
                target[0],
                target[1],
                region.replace(" ", "").lower(),
                _included_disks(point.disk_configuration),
            )
            self._restores[job.job_id] = restore
            if job.status != "InProgress":  # a zero-length job ended inside _new_job, before the record existed
                self._apply_restore_result(job)
            return op

    def _apply_restore_result(self, job: Job) -> None:
        restore = self._restores.get(job.job_id)
        if restore is None or restore.applied or job.end_time is None:
            return
        restore.applied = True
        if job.status not in ("Completed", "CompletedWithWarnings"):
            return
        suffix = job.job_id.replace("-", "")[:8]
        if restore.included is not None:
            # A point of a selective disk backup restores the disks backed up in it, no others (docs
            # selective-disk-backup-restore: "restore selective disks from all the disks backed up in a
            # recovery point"; excluded disks have no data in the point). OS disk: LUN -1 there.
            sources = [(name, lun == OS_DISK_LUN) for lun, name in restore.included]
        else:
            layout = self.compute.layout(restore.vm_id, restore.vm_name)
            sources = [(name, index == 0) for index, name in enumerate([layout.os_disk, *layout.data_disks])]
        for source_disk, is_os in sources:
            disk: Disk = self.compute.create_disk(
                restore.target_subscription,
                restore.target_resource_group,
                f"{source_disk}-{suffix}",
                restore.region,
                job.end_time,
                "Linux" if is_os else None,
            )
            restore.disks.append(disk.name)

    def _restore_extended_info(self, job: Job, elapsed: float) -> dict[str, Any]:
        """``propertyBag`` keys of a "Recover disks" job as ``az backup job show`` prints them
        (MicrosoftDocs azure-docs, articles/backup/tutorial-restore-disk.md; the trailing space in
        "Recovery point time " is Azure's). The blob names follow that example's pattern. No source
        shows a restore job's ``tasksList``, so none is emitted."""
        restore = self._restores.get(job.job_id)
        total = self._job_duration(job)
        info: dict[str, Any] = {
            "progressPercentage": 100.0
            if job.status != "InProgress"
            else (99.0 if total <= 0 else min(99.0, round(100.0 * elapsed / total, 1))),
        }
        if restore is not None:
            bag = {
                "Job Type": "Recover disks",
                "Recovery point time ": restore.recovery_point_time.astimezone(dt.UTC).strftime("%m/%d/%Y %I:%M:%S %p"),
                "Target Storage Account Name": restore.storage_account,
                "Target resource group": restore.target_resource_group,
            }
            if job.status in ("Completed", "CompletedWithWarnings"):
                container = f"{restore.vm_name}-{job.activity_id.replace('-', '')}"
                blob = f"https://{restore.storage_account}.blob.core.windows.net/{container}"
                bag.update(
                    {
                        "Config Blob Container Name": container,
                        "Config Blob Name": f"config-{restore.vm_name}-{job.job_id}.json",
                        "Config Blob Uri": f"{blob}/config-{restore.vm_name}-{job.job_id}.json",
                        "Template Blob Uri": f"{blob}/azuredeploy{job.job_id}.json",
                    }
                )
            info["propertyBag"] = bag
        if job.status == "InProgress":
            info["estimatedRemainingDuration"] = iso_duration(max(0.0, total - elapsed))
        if job.status == "Failed" and job.outcome.error is not None:
            info["dynamicErrorMessage"] = job.outcome.error.message
        return info

    def settle(self) -> None:
        """Finish what is due before a Microsoft.Compute read (restored disks appear when the job ends)."""
        with self._lock:
            self._advance()

    def restored_disks(self, job_id: str) -> list[str]:
        """Names of the disks a Restore job created (tests and the rehearsal, not an API)."""
        with self._lock:
            self._advance()
            restore = self._restores.get(job_id)
            return list(restore.disks) if restore else []

    def vm_body(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        """GET Microsoft.Compute/virtualMachines/{name}: only VMs added with ``add_vm`` exist."""
        with self._lock:
            vm = self._vms.get(VmRef(sub, rg, name).key)
            if vm is None:
                raise resource_not_found("Microsoft.Compute/virtualMachines", name, rg)
            layout = self._layout(vm)
        # The day-two pre-flight reads the region, the restore drill the disk layout: one VM GET.
        return self.compute.vm_body(layout)

    def _layout(self, vm: VmRef) -> VmLayout:
        """The VM's disk layout, created in its region on first use (a backup may read it first)."""
        return self.compute.layout(vm.id, vm.name, self._vm_locations.get(vm.key, "westeurope"))


def _task_statuses(status: str, elapsed: float, half: float, has_error: bool) -> tuple[str, str]:
    if status in ("Completed", "CompletedWithWarnings"):
        return "Completed", "Completed"
    if status == "Failed":
        return ("Failed", "NotStarted") if has_error else ("Completed", "Failed")
    if status == "Cancelled":
        return ("Cancelled", "NotStarted") if elapsed < half else ("Completed", "Cancelled")
    return ("InProgress", "NotStarted") if elapsed < half else ("Completed", "InProgress")


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _security(props: dict[str, Any] | None) -> tuple[str | None, str | None]:
    security = (props or {}).get("securitySettings") or {}
    immutability = (security.get("immutabilitySettings") or {}).get("state")
    soft_delete = (security.get("softDeleteSettings") or {}).get("softDeleteState")
    return immutability, soft_delete


def _check_irreversible(old: dict[str, Any] | None, new: dict[str, Any]) -> None:
    """Azure's one-way vault settings. azurerm ``recovery_services_vault_resource.go``: "The API
    doesn't allow to set the immutability to 'Locked' on creation ... Locked <- Unlocked <->
    Disabled", and soft delete AlwaysON cannot be changed (``BMSUserErrorSoftDeleteStateAlwaysOn``
    in the same file). The immutability error code is not documented; ours is a stand-in."""
    new_imm, new_soft = _security(new)
    if old is None:
        if new_imm == "Locked":
            raise ApiError(
                400,
                "UserErrorImmutabilityStateTransitionNotAllowed",
                "Immutability cannot be Locked when the vault is created: create it Unlocked, then lock it.",
            )
        return
    old_imm, old_soft = _security(old)
    if old_imm == "Locked" and new_imm is not None and new_imm != "Locked":
        raise ApiError(
            400,
            "UserErrorImmutabilityStateTransitionNotAllowed",
            f"Immutability is Locked and cannot be changed to {new_imm}.",
        )
    if old_imm == "Disabled" and new_imm == "Locked":
        raise ApiError(
            400,
            "UserErrorImmutabilityStateTransitionNotAllowed",
            "Immutability can be Locked only from Unlocked.",
        )
    if old_soft == "AlwaysON" and new_soft is not None and new_soft != "AlwaysON":
        raise ApiError(
            400,
            "BMSUserErrorSoftDeleteStateAlwaysOn",
            f"Soft delete is AlwaysON and cannot be changed to {new_soft}.",
        )


def _keep_irreversible(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A PUT that omits a Locked immutability or AlwaysON soft delete does not undo them (they
    cannot be undone at all); the vault keeps its old settings for the omitted parts."""
    old_security = old.get("securitySettings") or {}
    new = copy.deepcopy(new)
    security = new.setdefault("securitySettings", {})
    for key in ("immutabilitySettings", "softDeleteSettings"):
        if key not in security and key in old_security:
            security[key] = copy.deepcopy(old_security[key])
    if not security:
        del new["securitySettings"]
    return new


def _vault_key(vault: Vault) -> VaultKey:
    return (vault.subscription.lower(), vault.resource_group.lower(), vault.name.lower())


def _normalise_sku(sku: Any) -> dict[str, Any]:
    """The service reports the Standard SKU as RS0/Standard whatever alias was sent."""
    if not isinstance(sku, dict):
        raise invalid_input("sku must be an object.")
    out = copy.deepcopy(sku)
    if str(out.get("name", "")).lower() in ("standard", "rs0"):
        out["name"] = "RS0"
        out["tier"] = "Standard"
    return out


def _parse_iso(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _arm_parts(value: Any, provider_type: str | None) -> tuple[str, str, str] | None:
    """(subscription, resource group, name) of ``/subscriptions/s/resourceGroups/rg[/providers/<type>/name]``;
    ``provider_type`` None means a resource group id (name is then the group)."""
    if not isinstance(value, str):
        return None
    parts = [p for p in value.strip().split("/") if p]
    if len(parts) < 4 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        return None
    if provider_type is None:
        return (parts[1], parts[3], parts[3]) if len(parts) == 4 else None
    namespace, _, kind = provider_type.partition("/")
    if len(parts) != 8 or parts[4].lower() != "providers" or parts[5].lower() != namespace.lower():
        return None
    if parts[6].lower() != kind.lower():
        return None
    return parts[1], parts[3], parts[7]


#: The OS disk's LUN in ``recoveryPointDiskConfiguration`` disk lists (docs selective-disk-backup-restore).
OS_DISK_LUN = -1


def _disk_configuration(layout: VmLayout, exclusion: dict[str, Any]) -> dict[str, Any]:
    """``recoveryPointDiskConfiguration`` of a point of a selective disk backup, in the shape docs
    selective-disk-backup-restore show for ``az backup recoverypoint show``: ``excludedDiskList`` and
    ``includedDiskList`` of ``{"lun", "name"}`` (OS disk ``"lun": -1``, always included), then
    ``numberOfDisksAttachedToVm`` and ``numberOfDisksIncludedInBackup`` (bms.json
    RecoveryPointDiskConfiguration / DiskInformation; the official RecoveryPoints_Get/List examples
    show no selective point, so no field of theirs changes). ``isInclusionList: true`` backs up the OS
    disk plus the listed LUNs, ``false`` every disk but the listed LUNs (README "disks"); a listed LUN
    the VM does not have selects nothing (no source says Azure refuses it). Data disk LUNs are their
    positions in the layout, as emulator/compute.py ``vm_body`` numbers them."""
    luns = set(exclusion["diskLunList"])
    inclusion = bool(exclusion["isInclusionList"])
    included: list[dict[str, Any]] = [{"lun": OS_DISK_LUN, "name": layout.os_disk}]
    excluded: list[dict[str, Any]] = []  # [] when nothing is excluded: no source shows that case
    for lun, name in enumerate(layout.data_disks):
        (included if (lun in luns) == inclusion else excluded).append({"lun": lun, "name": name})
    return {
        "excludedDiskList": excluded,
        "includedDiskList": included,
        "numberOfDisksAttachedToVm": layout.disk_count,
        "numberOfDisksIncludedInBackup": len(included),
    }


def _included_disks(configuration: dict[str, Any] | None) -> list[tuple[int, str]] | None:
    if configuration is None:
        return None
    return [(int(disk["lun"]), str(disk["name"])) for disk in configuration["includedDiskList"]]


def _disk_exclusion(props: dict[str, Any]) -> dict[str, Any] | None:
    """``extendedProperties.diskExclusionProperties`` of an item PUT: ``diskLunList`` (LUNs) and
    ``isInclusionList`` (docs: selective-disk-backup-restore shows the item carrying
    ``{"diskLunList": [0, 1], "isInclusionList": true}``; azurerm ``expandDiskExclusion`` sends the
    same, LUNs validated ``IntAtLeast(0)``). Azure's error code for a malformed list is not
    documented; the generic invalid-input error stands in for it."""
    extended = props.get("extendedProperties")
    if extended is None:
        return None
    exclusion = extended.get("diskExclusionProperties") if isinstance(extended, dict) else None
    if exclusion is None:
        return None
    luns = exclusion.get("diskLunList") if isinstance(exclusion, dict) else None
    inclusion = exclusion.get("isInclusionList") if isinstance(exclusion, dict) else None
    if (
        not isinstance(luns, list)
        or not all(isinstance(lun, int) and not isinstance(lun, bool) and lun >= 0 for lun in luns)
        or not isinstance(inclusion, bool)
    ):
        raise invalid_input(
            "extendedProperties.diskExclusionProperties must have diskLunList (LUNs >= 0) and isInclusionList (bool)."
        )
    return {"diskLunList": list(luns), "isInclusionList": inclusion}
