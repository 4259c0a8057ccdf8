"""``BackupVault``: one Recovery Services vault and one IaaS VM backup policy, created or reused.

Many VMs share one vault and one policy in production, so the vault and policy live in their own
component and every :class:`~components.protected_vm.ProtectedVM` points at it. Either half can
be reused instead of created (``existingId`` in config), e.g. when a central team owns the vault.

The arg builders are pure functions so the offline rehearsal can print the exact settings and
the tests can assert on them without the engine.
"""

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import pulumi
from pulumi_azure_native import recoveryservices as rs

from components.config import InitialBackupSettings, PolicySettings, ScheduleSettings, VaultSettings
from components.engine_values import is_not_found
from components.initial_backup import InitialBackup, InitialBackupArgs
from components.tiers import DAYS, RETENTION_TIERS, WEEKS, RetentionTier, schedule_frequency
from components.validation import check_frequency_for_policy_type
from components.vault_lock import VaultLock
from components.vault_operations import (
    OperationsResources,
    add_operations,
    encryption_args,
    monitoring_settings,
    vault_identity,
)
from protectedvm.ids import BACKUP_VAULT_COMPONENT_TYPE, LOCK_PENDING_TAG

if TYPE_CHECKING:
    from components.protected_vm import ProtectedVM

#: Azure ignores the date part of schedule and retention times; a fixed date keeps diffs stable.
_TIME_ANCHOR_DATE = "2024-01-01"


def vault_exists(resource_group: str, name: str) -> bool:
    """Whether the vault exists already (an invoke, so it also answers at preview). Only a new
    vault is created Unlocked first; an existing one keeps receiving the configured value, so a
    Locked vault's inputs never change. Under mocks the invoke answers, i.e. "exists"."""
    try:
        rs.get_vault(resource_group_name=resource_group, vault_name=name)
    except Exception as error:  # the engine raises a plain Exception carrying Azure's error
        if is_not_found(error):
            return False
        raise
    return True


def azure_time(hhmm: str) -> str:
    """Turn ``23:00`` into the ISO timestamp the backup API expects for schedule times."""
    if "T" in hhmm:
        return hhmm
    return f"{_TIME_ANCHOR_DATE}T{hhmm}:00Z"


def vault_properties(settings: VaultSettings, *, creating: bool = False) -> rs.VaultPropertiesArgs:
    """Secure by default: soft delete, immutability and no public endpoint come from settings
    whose defaults are the safe values; enhanced security follows soft delete.

    ``creating``: Azure refuses Locked on creation, so a new vault is created Unlocked and
    :class:`~components.vault_lock.VaultLock` locks it right after."""
    immutability = "Unlocked" if creating and settings.immutability == "Locked" else settings.immutability
    operations = settings.operations
    return rs.VaultPropertiesArgs(
        public_network_access=settings.public_network_access,
        monitoring_settings=monitoring_settings(operations.alerts),
        encryption=encryption_args(operations.encryption) if operations.encryption else None,
        redundancy_settings=rs.VaultPropertiesRedundancySettingsArgs(
            standard_tier_storage_redundancy=settings.storage_redundancy,
            cross_region_restore="Enabled" if settings.cross_region_restore else "Disabled",
        ),
        security_settings=rs.SecuritySettingsArgs(
            immutability_settings=rs.ImmutabilitySettingsArgs(state=immutability),
            soft_delete_settings=rs.SoftDeleteSettingsArgs(
                soft_delete_state=settings.soft_delete,
                soft_delete_retention_period_in_days=settings.soft_delete_retention_days,
                enhanced_security_state="AlwaysON" if settings.soft_delete == "AlwaysON" else "Enabled",
            ),
        ),
    )


def _schedule_policy(
    schedule: ScheduleSettings, policy_type: str
) -> rs.SimpleSchedulePolicyArgs | rs.SimpleSchedulePolicyV2Args:
    """The schedule of the frequency's registry entry (``components.tiers.FREQUENCIES``): V1 flat,
    V2 with the frequency's nested schedule (``hourlySchedule``/``dailySchedule``/``weeklySchedule``)."""
    time = azure_time(schedule.time)
    entry = schedule_frequency(schedule.frequency)
    if entry is None:  # settings built in code rather than parsed: say so before Azure does
        raise ValueError(check_frequency_for_policy_type(schedule.frequency, "V2", "schedule.frequency")[0])
    run_days = _days(schedule.weekdays) if entry.run_days else None
    if policy_type == "V1":
        return rs.SimpleSchedulePolicyArgs(
            schedule_policy_type="SimpleSchedulePolicy",
            schedule_run_frequency=entry.key,
            schedule_run_times=[time],
            schedule_run_days=run_days,
        )
    nested: Any
    if entry.hourly:
        nested = rs.HourlyScheduleArgs(
            interval=schedule.hourly_interval,
            schedule_window_start_time=time,
            schedule_window_duration=schedule.hourly_window_hours,
        )
    else:
        days: dict[str, Any] = {"schedule_run_days": run_days} if run_days is not None else {}
        nested = getattr(rs, f"{entry.key}ScheduleArgs")(**days, schedule_run_times=[time])
    return rs.SimpleSchedulePolicyV2Args(
        schedule_policy_type="SimpleSchedulePolicyV2",
        schedule_run_frequency=entry.key,
        **{_snake(entry.v2_schedule_key): nested},
    )


def _snake(azure_name: str) -> str:
    """``daysOfTheWeek`` -> ``days_of_the_week``: the azure-native argument of an Azure field."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", azure_name).lower()


def _days(names: tuple[str, ...]) -> list[rs.DayOfWeek]:
    return [rs.DayOfWeek(n) for n in names]


def _duration(count: int, unit: str) -> rs.RetentionDurationArgs:
    return rs.RetentionDurationArgs(count=count, duration_type=unit)


def _retention_schedule(tier: RetentionTier, value: Any, time: str) -> Any:
    """One rung of Azure's ``retentionPolicy`` from its registry entry: the count in the tier's
    duration type, its selectors as Azure's enums; monthly and yearly points are picked by week
    of the month (``retentionScheduleFormatType: Weekly`` with ``retentionScheduleWeekly``)."""
    count = value.count if tier.selectors else value
    top: dict[str, Any] = {}
    weekly: dict[str, Any] = {}
    for selector in tier.selectors:
        enum = getattr(rs, selector.azure_enum)
        chosen = [enum(name) for name in getattr(value, selector.attribute)]
        nested = tier.weekly_format and selector in (DAYS, WEEKS)
        (weekly if nested else top)[_snake(selector.azure_field)] = chosen
    if tier.weekly_format:
        top["retention_schedule_format_type"] = "Weekly"
        top["retention_schedule_weekly"] = rs.WeeklyRetentionFormatArgs(**weekly)
    args = getattr(rs, f"{tier.key.capitalize()}RetentionScheduleArgs")
    return args(**top, retention_times=[time], retention_duration=_duration(count, tier.duration_type))


def policy_properties(settings: PolicySettings) -> rs.AzureIaaSVMProtectionPolicyArgs:
    """The AzureIaasVM policy body: schedule, the retention ladder (every tier of the registry the
    settings give), instant restore and time zone."""
    time = azure_time(settings.schedule.time)
    ladder = {
        _snake(tier.schedule_key): _retention_schedule(tier, getattr(settings.retention, tier.key), time)
        for tier in RETENTION_TIERS
        if getattr(settings.retention, tier.key) is not None
    }
    return rs.AzureIaaSVMProtectionPolicyArgs(
        backup_management_type="AzureIaasVM",
        policy_type=settings.policy_type,
        time_zone=settings.time_zone,
        instant_rp_retention_range_in_days=settings.instant_restore_days,
        schedule_policy=_schedule_policy(settings.schedule, settings.policy_type),
        retention_policy=rs.LongTermRetentionPolicyArgs(retention_policy_type="LongTermRetentionPolicy", **ladder),
    )


class BackupVaultArgs(TypedDict):
    """Inputs of :class:`BackupVault`."""

    vault: VaultSettings
    """The vault: created with these settings (secure defaults: soft delete on, immutability,
    no public network access), or reused when ``existing_id`` is set (then nothing is created)."""
    policy: NotRequired[PolicySettings | None]
    """The VM backup policy: created (``<name>-policy``), or reused when ``existing_id`` is set.
    Absent or None: no policy is registered here and ``policy_id``/``policy_name`` do not exist
    (the stack program registers a fleet vault's several policies itself)."""
    location: NotRequired[str | None]
    """Region of a created vault when ``vault.location`` is empty. Absent: the ``azure-native:location``
    of the provider."""
    tags: NotRequired[dict[str, str] | None]
    """Tags on the vault, the policy and the vault's operational resources. Absent: no tags."""


class BackupVault(pulumi.ComponentResource):
    """A vault and a VM backup policy that many :class:`ProtectedVM` share.

    ``vault`` and ``policy`` are the created resources, or ``None`` when reused.
    """

    vault_id: pulumi.Output[str]
    """Resource id of the vault (created or reused)."""
    vault_name: pulumi.Output[str]
    """Name of the vault."""
    resource_group_name: pulumi.Output[str]
    """Resource group of the vault."""
    policy_id: pulumi.Output[str]
    """Resource id of the policy (created or reused); absent when no ``policy`` was given."""
    policy_name: pulumi.Output[str]
    """Name of the policy; absent when no ``policy`` was given."""
    location: str | None
    """The vault's region when this stack creates it; None for a reused vault (not in config)."""

    def __init__(self, name: str, args: BackupVaultArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        vault = args["vault"]
        policy = args.get("policy")
        location = args.get("location")
        tags = args.get("tags")
        super().__init__(BACKUP_VAULT_COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vault: rs.Vault | None = None
        self.policy: rs.ProtectionPolicy | None = None
        self.lock: VaultLock | None = None
        #: Lock, alerts, reports, MUA, private endpoint; empty for a reused vault (owned elsewhere).
        self.operations = OperationsResources()

        self.location = None if vault.reuses_existing else (vault.location or location)
        if vault.reuses_existing:
            self.vault_id = pulumi.Output.from_input(str(vault.existing_id))
            self.vault_name = pulumi.Output.from_input(vault.name)
            self.resource_group_name = pulumi.Output.from_input(vault.resource_group)
        else:
            creating = not vault_exists(vault.resource_group, vault.name)
            vault_tags = dict(tags or {})
            if creating and vault.immutability == "Locked":
                # Says, on the vault and to the policy pack, that the lock step follows.
                vault_tags[LOCK_PENDING_TAG] = "Locked"
            self.vault = rs.Vault(
                f"{name}-vault",
                vault_name=vault.name,
                resource_group_name=vault.resource_group,
                location=vault.location or location,
                sku=rs.SkuArgs(name="RS0", tier="Standard"),
                identity=vault_identity(vault.operations.encryption),
                properties=vault_properties(vault, creating=creating),
                tags=vault_tags or None,
                # Deleting a vault with soft-deleted items fails in Azure and loses nothing
                # useful to retry; make removal an explicit decision.
                opts=pulumi.ResourceOptions(parent=self, protect=vault.immutability == "Locked"),
            )
            self.vault_id = self.vault.id
            self.vault_name = self.vault.name
            self.resource_group_name = pulumi.Output.from_input(vault.resource_group)
            self.lock = VaultLock(
                f"{name}-vault-lock",
                vault_id=self.vault.id,
                immutability=vault.immutability,
                soft_delete=vault.soft_delete,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.vault]),
            )
            self.operations = add_operations(
                f"{name}-vault",
                settings=vault.operations,
                vault=self.vault,
                vault_id=self.vault.id,
                vault_name=vault.name,
                resource_group=vault.resource_group,
                location=self.location,
                tags=tags,
                parent=self,
            )

        if policy is None:
            # The stack program registers the vault's policies (a fleet vault has several), as
            # children of this component under the names this block gives one.
            pass
        elif policy.reuses_existing:
            self.policy_id = pulumi.Output.from_input(str(policy.existing_id))
            self.policy_name = pulumi.Output.from_input(policy.name)
        else:
            self.policy = rs.ProtectionPolicy(
                f"{name}-policy",
                policy_name=policy.name,
                vault_name=self.vault_name,
                resource_group_name=self.resource_group_name,
                properties=policy_properties(policy),
                tags=tags,
                opts=child,
            )
            self.policy_id = self.policy.id
            self.policy_name = self.policy.name

        self.register_outputs(
            {
                "vaultId": self.vault_id,
                "vaultName": self.vault_name,
                "resourceGroupName": self.resource_group_name,
                **({"policyId": self.policy_id, "policyName": self.policy_name} if policy is not None else {}),
            }
        )

    def verify_initial_backups(
        self,
        name: str,
        protected_vms: Sequence["ProtectedVM"],
        settings: InitialBackupSettings | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> InitialBackup | None:
        """The one :class:`InitialBackup` that proves the first backup of every VM of this vault.

        Call it once, after registering the ProtectedVMs that share this vault: one resource per
        vault verifies all of them in one batched loop after their items exist, where one per VM
        would queue behind the dynamic provider's 4 concurrent ``create()`` calls. ``name`` is
        the resource's own (it is not parented here, so a stack's URN stays what ``name`` says);
        ``opts`` are merged with the dependency on every item. None when there is no VM."""
        if not protected_vms:
            return None
        # Joined by this object, or by this vault's own vault_id output (a ProtectedVM given vault_id).
        foreign = [vm for vm in protected_vms if vm.backup_vault is not self and vm.vault_id is not self.vault_id]
        if foreign:
            names = ", ".join(vm.target.name for vm in foreign)
            raise ValueError(
                f"BackupVault {self._name!r}: verify_initial_backups got VMs protected in another vault ({names}); "
                "call it on each vault with its own ProtectedVMs"
            )
        args: InitialBackupArgs = {"vault_id": self.vault_id, "vm_ids": [vm.target.vm_id for vm in protected_vms]}
        if settings is not None:
            args["settings"] = settings
        depends = pulumi.ResourceOptions(depends_on=[vm.protected_item for vm in protected_vms])
        return InitialBackup(name, args, opts=pulumi.ResourceOptions.merge(opts, depends))
