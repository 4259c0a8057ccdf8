"""The pack's pure rules and per-environment requirements, on camelCase props as the engine sends
them (numbers as floats), with the exact messages a pipeline log would show."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policies.props import plain, plain_props
from policies.rules import (
    ITEM_TYPE,
    POLICY_TYPE,
    UNKNOWN,
    StackProblem,
    StackResource,
    check_retention_bounds,
    coverage_problems,
    initial_backup_problems,
    retention_problems,
    schedule_problems,
    vault_problems,
)
from policies.thresholds import (
    VM_TYPE,
    CoverageRequirements,
    InitialBackupRequirements,
    PolicyConfigError,
    RetentionRequirements,
    ScheduleRequirements,
    VaultRequirements,
)
from tests.helpers import SUB

VM_ID = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-web-01"
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv-prod"
POLICY_ID = f"{VAULT_ID}/backupPolicies/pol-prod"

PROD_RETENTION = RetentionRequirements(
    minimum={"daily": 30, "weekly": 12, "monthly": 12, "yearly": 7},
    required_tiers=("daily", "weekly", "monthly", "yearly"),
)
PROD_SCHEDULE = ScheduleRequirements(min_instant_restore_days=7, max_rpo_hours=4)
PROD_VAULT = VaultRequirements(
    allowed_soft_delete_states=("AlwaysON",),
    min_soft_delete_retention_days=30,
    allowed_immutability_states=("Locked",),
    allowed_storage_redundancies=("GeoRedundant",),
    require_cross_region_restore=True,
)
DEV_VAULT = VaultRequirements(allowed_soft_delete_states=("AlwaysON", "Enabled"))

TIME = "2024-01-01T00:00:00Z"


def duration(count: float, unit: str) -> dict[str, Any]:
    return {"retentionDuration": {"count": count, "durationType": unit}, "retentionTimes": [TIME]}


HOURLY_V2: dict[str, Any] = {
    "policyName": "pol-prod",
    "vaultName": "rsv-prod",
    "resourceGroupName": "rg-backup",
    "properties": {
        "backupManagementType": "AzureIaasVM",
        "policyType": "V2",
        "instantRpRetentionRangeInDays": 7.0,
        "schedulePolicy": {
            "schedulePolicyType": "SimpleSchedulePolicyV2",
            "scheduleRunFrequency": "Hourly",
            "hourlySchedule": {"interval": 4.0, "scheduleWindowStartTime": TIME, "scheduleWindowDuration": 24.0},
        },
        "retentionPolicy": {
            "retentionPolicyType": "LongTermRetentionPolicy",
            "dailySchedule": duration(30.0, "Days"),
            "weeklySchedule": {**duration(12.0, "Weeks"), "daysOfTheWeek": ["Sunday"]},
            "monthlySchedule": duration(12.0, "Months"),
            "yearlySchedule": duration(7.0, "Years"),
        },
    },
}
DAILY_V1: dict[str, Any] = {
    "policyName": "pol-dev",
    "properties": {
        "backupManagementType": "AzureIaasVM",
        "policyType": "V1",
        "instantRpRetentionRangeInDays": 2.0,
        "schedulePolicy": {
            "schedulePolicyType": "SimpleSchedulePolicy",
            "scheduleRunFrequency": "Daily",
            "scheduleRunTimes": ["2024-01-01T22:00:00Z"],
        },
        "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy", "dailySchedule": duration(7.0, "Days")},
    },
}
SECURE_VAULT: dict[str, Any] = {
    "vaultName": "rsv-prod",
    "properties": {
        "publicNetworkAccess": "Disabled",
        "securitySettings": {
            "immutabilitySettings": {"state": "Locked"},
            "softDeleteSettings": {"softDeleteState": "AlwaysON", "softDeleteRetentionPeriodInDays": 30.0},
        },
        "redundancySettings": {"standardTierStorageRedundancy": "GeoRedundant", "crossRegionRestore": "Enabled"},
        "monitoringSettings": {
            "azureMonitorAlertSettings": {"alertsForAllJobFailures": "Enabled"},
            "classicAlertSettings": {"alertsForCriticalOperations": "Disabled"},
        },
    },
}
INITIAL_BACKUP: dict[str, Any] = {
    "__provider": "gASV...pickled-provider",
    "vaultId": VAULT_ID,
    "vmIds": [VM_ID],
    "settings": {"verify": "completed", "retainDays": 30.0, "timeoutMinutes": 240.0, "pollSeconds": 60.0},
}


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with the dotted ``path`` set (or removed when value is ...)."""
    props = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = props
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return props


# --- retention ------------------------------------------------------------------------------


def test_prod_shaped_hourly_policy_with_full_ladder_passes_prod_retention_and_schedule() -> None:
    assert retention_problems(HOURLY_V2, PROD_RETENTION) == []
    assert schedule_problems(HOURLY_V2, PROD_SCHEDULE) == []


def test_seven_day_daily_retention_is_below_prods_thirty_day_minimum() -> None:
    props = changed(HOURLY_V2, "properties.retentionPolicy.dailySchedule.retentionDuration.count", 7.0)
    assert retention_problems(props, PROD_RETENTION) == [
        "properties.retentionPolicy.dailySchedule.retentionDuration.count = 7 days "
        "is below this environment's minimum of 30 days"
    ]


def test_retention_above_the_environment_maximum_is_reported_with_the_cap() -> None:
    dev = RetentionRequirements(maximum={"daily": 35})
    props = changed(DAILY_V1, "properties.retentionPolicy.dailySchedule.retentionDuration.count", 90.0)
    assert retention_problems(props, dev) == [
        "properties.retentionPolicy.dailySchedule.retentionDuration.count = 90 days "
        "is above this environment's maximum of 35 days"
    ]


def test_azure_minimum_of_seven_daily_points_applies_to_standard_policies_whatever_the_environment() -> None:
    props = changed(DAILY_V1, "properties.retentionPolicy.dailySchedule.retentionDuration.count", 3.0)
    assert retention_problems(props, RetentionRequirements()) == [
        "properties.retentionPolicy.dailySchedule.retentionDuration.count = 3 is out of range: "
        "allowed 7-9999 days for Standard (V1) policies"
    ]


def test_prod_requires_weekly_monthly_and_yearly_tiers_and_names_each_missing_one() -> None:
    assert retention_problems(DAILY_V1, RetentionRequirements(required_tiers=PROD_RETENTION.required_tiers)) == [
        f"properties.retentionPolicy.{tier}Schedule is missing: this environment requires "
        "daily, weekly, monthly, yearly retention"
        for tier in ("weekly", "monthly", "yearly")
    ]


def test_policy_without_retention_keeps_nothing_and_is_reported() -> None:
    props = changed(DAILY_V1, "properties.retentionPolicy", ...)
    assert retention_problems(props, RetentionRequirements()) == [
        "properties.retentionPolicy is missing: a policy without retention keeps no recovery points"
    ]


def test_environment_bound_check_ignores_values_azure_limits_already_reject() -> None:
    assert check_retention_bounds("7", "daily", "s", 30, None) == []
    assert check_retention_bounds(31, "daily", "s", 30, 31) == []


# --- schedule and instant restore ---------------------------------------------------------------


def test_policy_without_a_schedule_never_backs_up_and_is_reported() -> None:
    props = changed(HOURLY_V2, "properties.schedulePolicy", ...)
    assert schedule_problems(props, PROD_SCHEDULE) == [
        "properties.schedulePolicy is missing: a policy without a schedule never takes a backup"
    ]


def test_hourly_schedule_on_a_standard_policy_requires_enhanced() -> None:
    props = changed(HOURLY_V2, "properties.policyType", "V1")
    props = changed(props, "properties.instantRpRetentionRangeInDays", 5.0)
    assert schedule_problems(props, ScheduleRequirements()) == [
        "properties.schedulePolicy.scheduleRunFrequency = 'Hourly' requires an Enhanced (V2) policy; "
        "policy type is Standard (V1)"
    ]


def test_daily_schedule_misses_prods_four_hour_rpo_and_says_hourly_needs_enhanced() -> None:
    assert schedule_problems(DAILY_V1, ScheduleRequirements(max_rpo_hours=4)) == [
        "properties.schedulePolicy.scheduleRunFrequency = 'Daily' gives a recovery point every 24 hours: "
        "this environment's maximum RPO is 4 hours (needs an Hourly schedule, which only Enhanced (V2) policies offer)"
    ]


def test_hourly_interval_and_window_outside_azure_choices_are_reported() -> None:
    props = changed(HOURLY_V2, "properties.schedulePolicy.hourlySchedule.interval", 5.0)
    props = changed(props, "properties.schedulePolicy.hourlySchedule.scheduleWindowDuration", 2.0)
    assert schedule_problems(props, ScheduleRequirements()) == [
        "properties.schedulePolicy.hourlySchedule.interval = 5 is not allowed: hourly interval must be one of "
        "4/6/8/12 hours",
        "properties.schedulePolicy.hourlySchedule.scheduleWindowDuration = 2 is out of range: allowed 4-24 hours",
    ]


def test_run_time_off_the_half_hour_is_reported() -> None:
    props = changed(DAILY_V1, "properties.schedulePolicy.scheduleRunTimes", ["2024-01-01T22:15:00Z"])
    assert schedule_problems(props, ScheduleRequirements()) == [
        "properties.schedulePolicy.scheduleRunTimes[0] = '2024-01-01T22:15:00Z' is not on the hour or half hour: "
        "allowed minutes are :00 and :30"
    ]


def test_instant_restore_beyond_five_days_is_outside_standard_policy_limits() -> None:
    props = changed(DAILY_V1, "properties.instantRpRetentionRangeInDays", 6.0)
    assert schedule_problems(props, ScheduleRequirements()) == [
        "properties.instantRpRetentionRangeInDays = 6 is out of range: allowed 1-5 days for Standard (V1) policies"
    ]


def test_instant_restore_below_the_environment_minimum_names_both_values() -> None:
    props = changed(HOURLY_V2, "properties.instantRpRetentionRangeInDays", 3.0)
    assert schedule_problems(props, PROD_SCHEDULE) == [
        "properties.instantRpRetentionRangeInDays = 3 days is below this environment's minimum of 7 days"
    ]


def test_missing_instant_restore_is_judged_as_azures_two_day_default() -> None:
    props = changed(HOURLY_V2, "properties.instantRpRetentionRangeInDays", ...)
    assert schedule_problems(props, PROD_SCHEDULE) == [
        "properties.instantRpRetentionRangeInDays (not set: Azure's default) = 2 days "
        "is below this environment's minimum of 7 days"
    ]


# --- vault security ---------------------------------------------------------------------------


def test_locked_geo_redundant_private_vault_passes_prod() -> None:
    assert vault_problems(SECURE_VAULT, PROD_VAULT) == []


def test_soft_delete_enabled_is_allowed_in_dev_but_not_in_prod() -> None:
    props = changed(SECURE_VAULT, "properties.securitySettings.softDeleteSettings.softDeleteState", "Enabled")
    assert vault_problems(props, DEV_VAULT) == []
    assert vault_problems(props, PROD_VAULT) == [
        "properties.securitySettings.softDeleteSettings.softDeleteState = 'Enabled' is not allowed in this "
        "environment (allowed: AlwaysON): deleted backups must stay recoverable"
    ]


def test_prod_requires_locked_immutability() -> None:
    props = changed(SECURE_VAULT, "properties.securitySettings.immutabilitySettings.state", "Unlocked")
    assert vault_problems(props, PROD_VAULT) == [
        "properties.securitySettings.immutabilitySettings.state = 'Unlocked' is not allowed in this environment "
        "(allowed: Locked): nobody may shorten retention or delete points"
    ]


def test_unset_public_network_access_is_azures_enabled_default_and_is_reported() -> None:
    props = changed(SECURE_VAULT, "properties.publicNetworkAccess", ...)
    assert vault_problems(props, DEV_VAULT) == [
        "properties.publicNetworkAccess (not set: Azure's default) = 'Enabled' is not allowed in this environment "
        "(allowed: Disabled): the vault must not be reachable publicly"
    ]


def test_soft_delete_retention_below_prods_thirty_days_is_reported() -> None:
    props = changed(
        SECURE_VAULT, "properties.securitySettings.softDeleteSettings.softDeleteRetentionPeriodInDays", 14.0
    )
    assert vault_problems(props, PROD_VAULT) == [
        "properties.securitySettings.softDeleteSettings.softDeleteRetentionPeriodInDays = 14 days "
        "is below this environment's minimum of 30 days"
    ]


def test_prod_requires_geo_redundancy_with_cross_region_restore() -> None:
    props = changed(SECURE_VAULT, "properties.redundancySettings.standardTierStorageRedundancy", "LocallyRedundant")
    props = changed(props, "properties.redundancySettings.crossRegionRestore", "Disabled")
    assert vault_problems(props, PROD_VAULT) == [
        "properties.redundancySettings.standardTierStorageRedundancy = 'LocallyRedundant' is not allowed in this "
        "environment (allowed: GeoRedundant)",
        "properties.redundancySettings.crossRegionRestore = 'Disabled' is not allowed in this environment: "
        "'Enabled' is required so a regional outage does not stop restores",
    ]


def test_cross_region_restore_without_geo_redundancy_is_rejected_in_every_environment() -> None:
    props = changed(SECURE_VAULT, "properties.redundancySettings.standardTierStorageRedundancy", "ZoneRedundant")
    assert vault_problems(props, DEV_VAULT) == [
        "properties.redundancySettings.crossRegionRestore = true requires storageRedundancy 'GeoRedundant' "
        "(got 'ZoneRedundant'): cross-region restore reads the paired region's copy"
    ]


# --- initial backup ---------------------------------------------------------------------------


PROD_INITIAL = InitialBackupRequirements(min_retain_days=30, allowed_verify_modes=("completed",))


def test_initial_backup_kept_thirty_days_and_verified_passes_prod_despite_the_provider_prop() -> None:
    assert initial_backup_problems(INITIAL_BACKUP, PROD_INITIAL) == []


def test_initial_backup_retained_seven_days_is_below_prods_minimum() -> None:
    props = changed(INITIAL_BACKUP, "settings.retainDays", 7.0)
    assert initial_backup_problems(props, PROD_INITIAL) == [
        "settings.retainDays = 7 days is below this environment's minimum of 30 days"
    ]


def test_initial_backup_beyond_azures_99_year_limit_and_unverified_are_both_reported() -> None:
    props = changed(INITIAL_BACKUP, "settings.retainDays", 40000.0)
    props = changed(props, "settings.verify", "started")
    assert initial_backup_problems(props, PROD_INITIAL) == [
        "settings.retainDays = 40000 is out of range: allowed 1-36135 days",
        "settings.verify = 'started' is not allowed in this environment (allowed: completed): "
        "the first recovery point must be proven",
    ]


def test_other_dynamic_resources_are_not_mistaken_for_the_initial_backup() -> None:
    assert initial_backup_problems({"__provider": "x", "foo": 1}, PROD_INITIAL) == []


# --- preview unknowns -------------------------------------------------------------------------


def test_unknown_values_become_unknown_instead_of_aborting_the_whole_policy() -> None:
    props = changed(HOURLY_V2, "properties.retentionPolicy.dailySchedule.retentionDuration.count", UNKNOWN_NUMBER_VALUE)
    props = changed(props, "vaultName", UNKNOWN_STRING_VALUE)
    converted = plain_props(unknown_checking_proxy(props))
    assert converted["vaultName"] is UNKNOWN
    assert converted["properties"]["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"] is UNKNOWN
    weekly_short = changed(converted, "properties.retentionPolicy.weeklySchedule.retentionDuration.count", 4.0)
    assert retention_problems(weekly_short, PROD_RETENTION) == [
        "properties.retentionPolicy.weeklySchedule.retentionDuration.count = 4 weeks "
        "is below this environment's minimum of 12 weeks"
    ]
    assert plain([UNKNOWN_STRING_VALUE, "x"]) == [UNKNOWN, "x"]


# --- requirements (config) ----------------------------------------------------------------------


def test_misspelt_config_key_is_an_error_not_a_silently_disabled_bound() -> None:
    with pytest.raises(PolicyConfigError) as err:
        RetentionRequirements.from_config({"minimun": {"daily": 30}})
    assert err.value.problems == ["minimun is not a known setting: known settings are maximum, minimum, requiredTiers"]


def test_contradictory_bounds_and_bad_types_are_all_reported_at_once() -> None:
    with pytest.raises(PolicyConfigError) as err:
        RetentionRequirements.from_config({"minimum": {"daily": 30}, "maximum": {"daily": 7, "hourly": 1}})
    assert err.value.problems == [
        "maximum.hourly is not a retention tier: choose from daily, weekly, monthly, yearly",
        "minimum.daily = 30 is above maximum.daily = 7: no policy can pass",
    ]
    with pytest.raises(PolicyConfigError) as err:
        VaultRequirements.from_config({"allowPublicNetworkAccess": "no", "allowedSoftDeleteStates": ["Off"]})
    assert err.value.problems == [
        "allowedSoftDeleteStates = ['Off'] has ['Off']: choose from AlwaysON, Enabled, Disabled",
        "allowPublicNetworkAccess = 'no' must be true or false",
    ]


def test_empty_config_means_the_schema_defaults() -> None:
    assert RetentionRequirements.from_config({}) == RetentionRequirements({}, {}, ("daily",))
    assert ScheduleRequirements.from_config(None) == ScheduleRequirements(1, None)
    assert VaultRequirements.from_config({}) == VaultRequirements()
    assert InitialBackupRequirements.from_config({}) == InitialBackupRequirements()
    assert CoverageRequirements.from_config({}) == CoverageRequirements()


def test_required_vm_ids_must_be_vm_resource_ids() -> None:
    with pytest.raises(PolicyConfigError) as err:
        CoverageRequirements.from_config({"requiredVmIds": ["vm-web-01"], "retention": {"minimum": {"daily": 0}}})
    assert err.value.problems == [
        "requiredVmIds[0] = 'vm-web-01' is not a virtual machine resource id: expected "
        "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>",
        "retention.minimum.daily = 0 must be a whole number >= 1",
    ]


# --- stack coverage -----------------------------------------------------------------------------


def policy_resource(props: dict[str, Any] = HOURLY_V2, resource_id: object = POLICY_ID) -> StackResource:
    return StackResource(POLICY_TYPE, "backup-policy", "urn:policy", {**props, "id": resource_id})


def item_resource(
    source: object = VM_ID, policy_id: object = POLICY_ID, deps: dict[str, list[str]] | None = None
) -> StackResource:
    props = {"properties": {"sourceResourceId": source, "policyId": policy_id}}
    return StackResource(ITEM_TYPE, "vm-web-01-item", "urn:item", props, deps or {})


def vm_resource(resource_id: object = VM_ID) -> StackResource:
    props = {"resourceGroupName": "rg-app", "vmName": "vm-web-01", "id": resource_id}
    return StackResource(VM_TYPE, "vm-web-01", "urn:vm", props)


PROD_COVERAGE = CoverageRequirements(retention=PROD_RETENTION, schedule=PROD_SCHEDULE)


def test_vm_with_a_protected_item_on_a_passing_policy_is_covered_case_insensitively() -> None:
    item = item_resource(source=VM_ID.lower(), policy_id=POLICY_ID.upper())
    assert coverage_problems([vm_resource(), item, policy_resource()], PROD_COVERAGE) == []


def test_vm_in_the_stack_without_a_protected_item_is_reported_on_the_vm() -> None:
    assert coverage_problems([vm_resource(), policy_resource()], PROD_COVERAGE) == [
        StackProblem(
            "urn:vm",
            "VirtualMachine 'vm-web-01' is not backed up: no azure-native:recoveryservices:ProtectedItem has "
            "properties.sourceResourceId pointing at it",
        )
    ]


def test_required_vm_id_from_config_without_a_protected_item_is_reported_on_the_stack() -> None:
    other = VM_ID.replace("vm-web-01", "vm-db-01")
    req = CoverageRequirements(required_vm_ids=(VM_ID, other), retention=PROD_RETENTION, schedule=PROD_SCHEDULE)
    assert coverage_problems([item_resource(), policy_resource()], req) == [
        StackProblem(
            None,
            f"VM {other} (requiredVmIds) is not backed up: no azure-native:recoveryservices:ProtectedItem has "
            "properties.sourceResourceId pointing at it",
        )
    ]


def test_protected_item_on_a_policy_that_fails_retention_is_reported_on_the_item() -> None:
    short = changed(HOURLY_V2, "properties.retentionPolicy.dailySchedule.retentionDuration.count", 7.0)
    problems = coverage_problems([vm_resource(), item_resource(), policy_resource(short)], PROD_COVERAGE)
    assert problems == [
        StackProblem(
            "urn:item",
            "ProtectedItem 'vm-web-01-item' protects VirtualMachine 'vm-web-01' with ProtectionPolicy 'backup-policy', "
            "which fails: properties.retentionPolicy.dailySchedule.retentionDuration.count = 7 days "
            "is below this environment's minimum of 30 days",
        )
    ]


def test_at_preview_unknown_ids_are_linked_through_property_dependencies() -> None:
    short = changed(HOURLY_V2, "properties.retentionPolicy.dailySchedule.retentionDuration.count", 7.0)
    item = item_resource(source=UNKNOWN, policy_id=UNKNOWN, deps={"properties": ["urn:vm", "urn:policy"]})
    problems = coverage_problems([vm_resource(UNKNOWN), item, policy_resource(short, UNKNOWN)], PROD_COVERAGE)
    assert [p.urn for p in problems] == ["urn:item"]
    assert problems[0].message.endswith("= 7 days is below this environment's minimum of 30 days")


def test_policy_outside_the_stack_must_be_approved_before_it_counts() -> None:
    existing = POLICY_ID.replace("pol-prod", "pol-central")
    resources = [vm_resource(), item_resource(policy_id=existing)]
    assert coverage_problems(resources, PROD_COVERAGE) == [
        StackProblem(
            "urn:item",
            f"ProtectedItem 'vm-web-01-item' protects VirtualMachine 'vm-web-01' with properties.policyId = "
            f"{existing!r}, which is neither a ProtectionPolicy in this stack nor listed in "
            "approvedExistingPolicyIds: its retention cannot be verified",
        )
    ]
    approved = CoverageRequirements(approved_existing_policy_ids=(existing.upper(),))
    assert coverage_problems(resources, approved) == []


def test_protected_item_without_a_policy_id_is_reported() -> None:
    problems = coverage_problems([vm_resource(), item_resource(policy_id=None)], PROD_COVERAGE)
    assert problems == [
        StackProblem(
            "urn:item",
            "ProtectedItem 'vm-web-01-item' protects VirtualMachine 'vm-web-01' with no properties.policyId: "
            "no backups are scheduled",
        )
    ]
