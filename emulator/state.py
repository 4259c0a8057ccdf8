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

VaultKey = tuple[str, str, str]

TERMINAL_JOB_STATES = ("Completed", "Failed", "Cancelled", "CompletedWithWarnings")

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


@dataclass
class Item:
    vault_id: str
    vm: VmRef
    policy_id: str
    policy_type: str
    data_id: str
    protection_state: str = "IRPending"
    last_backup_status: str = ""
    health_status: str = "Passed"
    protection_status: str = "Healthy"
    last_backup_time: dt.datetime | None = None
    recovery_points: list[RecoveryPoint] = field(default_factory=list)
    #: Set while soft-deleted: when Azure purges the item (the vault's soft-delete retention).
    deferred_delete_at: dt.datetime | None = None

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


class State:
    def __init__(
        self,
        clock: Clock,
        faults: Faults,
        job_duration: float,
        operation_delay: float,
    ) -> None:
        self.clock = clock
        self.faults = faults
        self.job_duration = job_duration
        self.operation_delay = operation_delay
        self._lock = threading.RLock()
        self._clock_origin = clock.now()
        self._wall_origin = dt.datetime.now(dt.UTC)
        self._vms: dict[str, VmRef] = {}
        self._vm_locations: dict[str, str] = {}
        self._vaults: dict[VaultKey, Vault] = {}
        self._jobs: dict[str, Job] = {}
        self._operations: dict[str, Operation] = {}
        self._triggers: Counter[str] = Counter()
        self._seq = 0
        self._rng = random.Random()

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

    def get_vm(self, vm_id: str) -> dict[str, Any]:
        """The few fields of a Compute VM the pre-flight reads (id, name, location)."""
        ref = parse_vm_id(vm_id)
        with self._lock:
            vm = self._vms.get(ref.key)
            if vm is None:
                raise resource_not_found("Microsoft.Compute/virtualMachines", ref.name, ref.resource_group)
            return {
                "id": vm.id,
                "name": vm.name,
                "type": "Microsoft.Compute/virtualMachines",
                "location": self._vm_locations[ref.key],
                "properties": {"provisioningState": "Succeeded"},
            }

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
        if item.last_backup_time is not None:
            props["lastBackupTime"] = iso(item.last_backup_time)
        if item.recovery_points:
            props["lastRecoveryPoint"] = iso(item.recovery_points[-1].time)
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
            job = self._new_job(vault, found, "Backup", outcome, user_triggered=True)
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
        for job in self._jobs.values():
            if (
                job.item_key == item.name.lower()
                and job.operation == "Backup"
                and job.status == "InProgress"
                and job.vault_id.lower() == item.vault_id.lower()
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
            if status != "InProgress":
                body["endTime"] = iso(op.start_time + dt.timedelta(seconds=self.operation_delay))
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

    def _require_operation(self, vault: Vault, op_id: str, item: str | None) -> Operation:
        op = self._operations.get(op_id.lower())
        if op is None or op.vault_key != _vault_key(vault) or (item is not None and op.item_key != item.lower()):
            raise ApiError(404, "BMSUserErrorOperationNotFound", f"Operation '{op_id}' was not found.")
        return op

    def _op_status(self, op: Operation) -> str:
        if self.clock.now() - op.started_at < self.operation_delay:
            return "InProgress"
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
        )
        self._jobs[job.job_id] = job
        self._advance()
        return job

    def _job_duration(self, job: Job) -> float:
        return self.job_duration if job.duration is None else job.duration

    def _advance(self) -> None:
        """Finish every job whose time is up and apply its effects on items and recovery points."""
        now = self.clock.now()
        for job in sorted(self._jobs.values(), key=lambda j: j.seq):
            if job.status != "InProgress" or job.outcome.status == HANG:
                continue
            ends_at = job.started_at + self._job_duration(job)
            if now < ends_at:
                continue
            job.status = job.outcome.status
            job.ended_at = ends_at
            job.end_time = job.start_time + dt.timedelta(seconds=ends_at - job.started_at)
            if job.operation == "Backup":
                self._apply_backup_result(job)

    def _apply_backup_result(self, job: Job) -> None:
        vault = self._vaults.get(job.vault_key)
        item = vault.items.get(job.item_key) if vault else None
        if item is None or job.end_time is None:
            return
        if job.status in ("Completed", "CompletedWithWarnings"):
            consistency = "AppConsistent" if job.status == "Completed" else "CrashConsistent"
            item.recovery_points.append(
                RecoveryPoint(str(self._rng.randrange(10**13, 10**14)), job.start_time, consistency)
            )
            item.protection_state = "Protected"
            item.last_backup_status = "Healthy"
            item.protection_status = "Healthy"
            item.health_status = "Passed"
            item.last_backup_time = job.start_time
        elif job.status == "Failed":
            item.last_backup_status = "Unhealthy"
            item.protection_status = "Unhealthy"
            item.health_status = "ActionRequired"

    def get_job(self, vault: Vault, name: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            job = self._jobs.get(name.lower())
            if job is None or job.vault_key != _vault_key(vault):
                raise ApiError(404, "BMSUserErrorJobNotFound", f"Job '{name}' was not found in vault '{vault.name}'.")
            return self._job_body(job, detailed=True)

    def list_jobs(self, vault: Vault, predicate: Any) -> list[dict[str, Any]]:
        """Newest first, like the portal and the service."""
        with self._lock:
            self._advance()
            jobs = [j for j in self._jobs.values() if j.vault_key == _vault_key(vault) and predicate(j)]
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
        if detailed:
            props["extendedInfo"] = self._extended_info(job, elapsed)
        return {
            "id": f"{job.vault_id}/backupJobs/{job.job_id}",
            "name": job.job_id,
            "type": JOB_TYPE,
            "properties": props,
        }

    def _extended_info(self, job: Job, elapsed: float) -> dict[str, Any]:
        total = self._job_duration(job)
        if job.status == "InProgress":
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
            return [self._rp_body(found, rp) for rp in reversed(found.recovery_points)]

    def get_recovery_point(self, vault: Vault, container: str, item: str, rp_name: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            found = self.require_item(vault, container, item)
            for rp in found.recovery_points:
                if rp.name == rp_name:
                    return self._rp_body(found, rp)
            raise ApiError(404, "BMSUserErrorRecoveryPointNotFound", f"Recovery point '{rp_name}' was not found.")

    def _rp_body(self, item: Item, rp: RecoveryPoint) -> dict[str, Any]:
        return {
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
