"""Every preview-time validation rule, with a failing input and the exact message it produces."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.config import InitialBackupSettings, VmTarget, parse_stack_settings
from components.validation import (
    ValidationError,
    as_count,
    check_backup_time,
    check_hourly_interval,
    check_instant_restore_days,
    check_retention_count,
    parse_vault_id,
    parse_vm_id,
)
from tests.helpers import SUB

VM = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-web-01"
VAULT: dict[str, Any] = {"name": "rsv-test", "resourceGroup": "rg-backup"}
POLICY_V1: dict[str, Any] = {
    "name": "pol-test",
    "type": "Standard",
    "schedule": {"frequency": "Daily", "time": "23:00"},
    "retention": {"daily": 7},
}
POLICY_V2: dict[str, Any] = {
    "name": "pol-test",
    "type": "Enhanced",
    "instantRestoreDays": 7,
    "schedule": {"frequency": "Hourly", "time": "08:00", "hourlyInterval": 4, "hourlyWindowHours": 12},
    "retention": {"daily": 7},
}


def problems_for(
    vault: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    vms: object = None,
    initial: dict[str, Any] | None = None,
) -> list[str]:
    with pytest.raises(ValidationError) as err:
        parse_stack_settings(
            vault if vault is not None else VAULT,
            policy if policy is not None else POLICY_V1,
            vms if vms is not None else [VM],
            initial,
        )
    return err.value.problems


def with_policy(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    policy = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = policy
        *path, last = dotted.split("__")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return policy


def test_valid_standard_and_enhanced_settings_parse_with_secure_vault_defaults() -> None:
    settings = parse_stack_settings(VAULT, POLICY_V1, [VM])
    assert settings.policy.policy_type == "V1"
    assert settings.vault.soft_delete == "AlwaysON"
    assert settings.vault.public_network_access == "Disabled"
    assert settings.vault.immutability == "Unlocked"
    assert settings.vault.storage_redundancy == "GeoRedundant"
    assert settings.initial_backup == InitialBackupSettings("completed", 30, 120, 30)
    enhanced = parse_stack_settings(VAULT, POLICY_V2, [VM])
    assert enhanced.policy.policy_type == "V2"
    assert enhanced.policy.schedule.hourly_interval == 4
    assert enhanced.policy.schedule.hourly_window_hours == 12


def test_vm_id_derives_container_and_item_names() -> None:
    target = VmTarget.from_id(VM)
    assert (target.subscription, target.resource_group, target.name) == (SUB, "rg-app", "vm-web-01")
    assert target.container_name == "iaasvmcontainer;iaasvmcontainerv2;rg-app;vm-web-01"
    assert target.protected_item_name == "vm;iaasvmcontainerv2;rg-app;vm-web-01"


def test_vm_id_is_matched_case_insensitively_and_keeps_its_casing() -> None:
    upper = VM.replace("/providers/Microsoft.Compute/virtualMachines/", "/providers/MICROSOFT.COMPUTE/VirtualMachines/")
    ref = parse_vm_id(upper.replace("vm-web-01", "VM-Web-01"))
    assert ref.name == "VM-Web-01"


@pytest.mark.parametrize(
    "bad_id",
    [
        "vm-web-01",
        f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/disks/d1",
        "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
        f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/",
    ],
)
def test_malformed_vm_id_is_rejected_naming_setting_and_expected_shape(bad_id: str) -> None:
    problems = problems_for(vms=[VM, bad_id])
    assert problems == [
        f"vms[1] = {bad_id!r} is not a virtual machine resource id: expected "
        "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>"
    ]


def test_same_vm_listed_twice_in_other_casing_is_rejected() -> None:
    problems = problems_for(vms=[VM, VM.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")])
    assert len(problems) == 1 and "repeats vms[0]" in problems[0]


def test_empty_vm_list_is_rejected() -> None:
    assert problems_for(vms=[]) == ["vms = [] must be a non-empty list of virtual machine resource ids"]


def test_standard_policy_rejects_daily_retention_below_7_days() -> None:
    assert problems_for(policy=with_policy(POLICY_V1, retention__daily=3)) == [
        "policy.retention.daily = 3 is out of range: allowed 7-9999 days for Standard (V1) policies"
    ]


def test_enhanced_policy_needs_7_daily_days_like_standard() -> None:
    """azurerm's record of Azure's rule: daily retention 7-9999 whatever the policy type."""
    parse_stack_settings(VAULT, with_policy(POLICY_V2, retention__daily=7), [VM])
    assert problems_for(policy=with_policy(POLICY_V2, retention__daily=6)) == [
        "policy.retention.daily = 6 is out of range: allowed 7-9999 days for Enhanced (V2) policies"
    ]
    assert problems_for(policy=with_policy(POLICY_V2, retention__daily=10000)) == [
        "policy.retention.daily = 10000 is out of range: allowed 7-9999 days for Enhanced (V2) policies"
    ]


@pytest.mark.parametrize(
    ("tier", "value", "unit"),
    [("weekly", 0, "weeks"), ("monthly", 10000, "months"), ("yearly", 0, "years")],
)
def test_weekly_monthly_yearly_counts_outside_1_to_9999_are_rejected(tier: str, value: int, unit: str) -> None:
    policy = with_policy(POLICY_V1, **{f"retention__{tier}": {"count": value}})
    assert problems_for(policy=policy) == [
        f"policy.retention.{tier}.count = {value} is out of range: allowed 1-9999 {unit} for Standard (V1) policies"
    ]


def test_retention_count_must_be_a_whole_number_not_text_or_bool() -> None:
    assert check_retention_count("30", "daily", "V2", "x") == [
        "x = '30' must be a whole number from 7 to 9999 days for Enhanced (V2) policies"
    ]
    assert check_retention_count(True, "daily", "V2", "x") != []


def test_standard_policy_rejects_instant_restore_days_above_5() -> None:
    assert problems_for(policy=with_policy(POLICY_V1, instantRestoreDays=6)) == [
        "policy.instantRestoreDays = 6 is out of range: allowed 1-5 days for Standard (V1) policies"
    ]


def test_enhanced_policy_allows_30_instant_restore_days_but_not_31() -> None:
    parse_stack_settings(VAULT, with_policy(POLICY_V2, instantRestoreDays=30), [VM])
    assert problems_for(policy=with_policy(POLICY_V2, instantRestoreDays=31)) == [
        "policy.instantRestoreDays = 31 is out of range: allowed 1-30 days for Enhanced (V2) policies"
    ]


def test_weekly_standard_schedule_requires_exactly_5_instant_restore_days() -> None:
    weekly = with_policy(
        POLICY_V1,
        schedule={"frequency": "Weekly", "time": "23:00", "weekdays": ["Sunday"]},
        retention={"weekly": {"count": 12, "days": ["Sunday"]}},
    )
    assert parse_stack_settings(VAULT, weekly, [VM]).policy.instant_restore_days == 5
    assert check_instant_restore_days(2, "V1", "Weekly", "policy.instantRestoreDays") == [
        "policy.instantRestoreDays = 2 is not allowed with a Weekly schedule: Standard (V1) policies with "
        "weekly backups keep instant-restore snapshots exactly 5 days"
    ]


@pytest.mark.parametrize("time", ["23:15", "7:00", "24:00", "noon"])
def test_backup_time_not_on_the_hour_or_half_hour_is_rejected(time: str) -> None:
    problems = problems_for(policy=with_policy(POLICY_V1, schedule__time=time))
    assert len(problems) == 1
    assert problems[0].startswith(f"policy.schedule.time = {time!r}")
    assert ":00" in problems[0] and ":30" in problems[0]


def test_backup_time_accepts_half_hours_and_iso_timestamps() -> None:
    assert check_backup_time("23:30", "t") == []
    assert check_backup_time("2024-01-01T02:00:00Z", "t") == []
    assert check_backup_time("2024-01-01T02:10:00Z", "t") != []


@pytest.mark.parametrize("interval", [1, 2, 3, 5, 24])
def test_hourly_interval_outside_4_6_8_12_is_rejected(interval: int) -> None:
    assert problems_for(policy=with_policy(POLICY_V2, schedule__hourlyInterval=interval)) == [
        f"policy.schedule.hourlyInterval = {interval} is not allowed: hourly interval must be one of 4/6/8/12 hours"
    ]
    assert check_hourly_interval(8, "x") == []


def test_hourly_interval_as_a_float_is_rejected_not_silently_dropped() -> None:
    assert problems_for(policy=with_policy(POLICY_V2, schedule__hourlyInterval=4.0)) == [
        "policy.schedule.hourlyInterval = 4.0 is not allowed: hourly interval must be one of 4/6/8/12 hours"
    ]


def test_hourly_schedule_on_a_standard_policy_is_rejected() -> None:
    policy = with_policy(POLICY_V2, type="Standard", instantRestoreDays=2, retention__daily=7)
    assert problems_for(policy=policy) == [
        "policy.schedule.frequency = 'Hourly' requires an Enhanced (V2) policy; policy type is Standard (V1)"
    ]


def test_weekly_schedule_with_daily_retention_is_rejected() -> None:
    policy = with_policy(
        POLICY_V1,
        schedule={"frequency": "Weekly", "time": "23:00", "weekdays": ["Saturday"]},
        retention={"daily": 7, "weekly": {"count": 4}},
    )
    assert problems_for(policy=policy) == [
        "policy.retention.daily is set but the schedule is Weekly: weekly backups cannot have daily retention"
    ]


def test_daily_schedule_without_daily_retention_is_rejected() -> None:
    assert problems_for(policy=with_policy(POLICY_V1, retention={"weekly": {"count": 4}})) == [
        "policy.retention.daily is required with a Daily schedule"
    ]


def test_cross_region_restore_without_geo_redundancy_is_rejected() -> None:
    vault = {**VAULT, "storageRedundancy": "LocallyRedundant", "crossRegionRestore": True}
    assert problems_for(vault=vault) == [
        "vault.crossRegionRestore = true requires storageRedundancy 'GeoRedundant' (got 'LocallyRedundant'): "
        "cross-region restore reads the paired region's copy"
    ]


def test_vault_enumerations_and_soft_delete_retention_are_checked() -> None:
    vault = {
        **VAULT,
        "softDelete": "Off",
        "immutability": "Frozen",
        "publicNetworkAccess": "Open",
        "softDeleteRetentionDays": 7,
        "storageRedundancy": "Tape",
    }
    assert problems_for(vault=vault) == [
        "vault.storageRedundancy = 'Tape' is not allowed: choose one of LocallyRedundant, ZoneRedundant, GeoRedundant",
        "vault.softDelete = 'Off' is not allowed: choose one of AlwaysON, Enabled, Disabled",
        "vault.softDeleteRetentionDays = 7 is out of range: allowed 14-180 days",
        "vault.immutability = 'Frozen' is not allowed: choose one of Disabled, Unlocked, Locked",
        "vault.publicNetworkAccess = 'Open' is not allowed: choose one of Enabled, Disabled",
    ]


def test_misspelt_setting_is_an_error_not_a_silent_default() -> None:
    problems = problems_for(vault={**VAULT, "softDeleteState": "Disabled"})
    assert len(problems) == 1
    assert problems[0].startswith("vault.softDeleteState is not a known setting: known settings are")


def test_all_problems_are_reported_at_once() -> None:
    problems = problems_for(
        vault={"name": "x", "resourceGroup": ""},
        policy=with_policy(POLICY_V1, retention__daily=1, instantRestoreDays=9),
        vms=["nope"],
        initial={"verify": "eventually", "retainDays": 0},
    )
    assert len(problems) == 7
    joined = "\n".join(problems)
    for fragment in (
        "vault.name = 'x'",
        "vault.resourceGroup is required",
        "policy.retention.daily = 1",
        "policy.instantRestoreDays = 9",
        "vms[0] = 'nope'",
        "initialBackup.verify = 'eventually' is not allowed: choose one of none, started, completed",
        "initialBackup.retainDays = 0 is out of range: allowed 1-36135 days",
    ):
        assert fragment in joined


def test_initial_backup_settings_round_trip_through_camel_case_dict() -> None:
    settings = InitialBackupSettings(verify="started", retain_days=14, timeout_minutes=60, poll_seconds=10)
    assert settings.to_dict() == {"verify": "started", "retainDays": 14, "timeoutMinutes": 60, "pollSeconds": 10}
    assert InitialBackupSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(ValidationError, match=r"initialBackup.pollSeconds = 1 is out of range: allowed 5-600 seconds"):
        InitialBackupSettings.from_dict({"pollSeconds": 1})


def test_existing_vault_and_policy_ids_are_reused_without_other_settings() -> None:
    vault_id = f"/subscriptions/{SUB}/resourceGroups/rg-central/providers/Microsoft.RecoveryServices/vaults/rsv-central"
    settings = parse_stack_settings({"existingId": vault_id}, {"existingId": f"{vault_id}/backupPolicies/gold"}, [VM])
    assert settings.vault.reuses_existing and settings.vault.name == "rsv-central"
    assert settings.vault.resource_group == "rg-central"
    assert settings.policy.reuses_existing and settings.policy.name == "gold"
    with pytest.raises(ValidationError, match=r"vault\.existingId = 'rsv-central' is not a Recovery Services vault id"):
        parse_vault_id("rsv-central")
    assert problems_for(policy={"existingId": "gold"})[0].startswith(
        "policy.existingId = 'gold' is not a backup policy id"
    )


def test_engine_floats_are_treated_as_whole_counts() -> None:
    assert as_count(7.0) == 7 and isinstance(as_count(7.0), int)
    assert as_count(7.5) == 7.5
    assert check_retention_count(as_count(30.0), "daily", "V1", "d") == []


def test_hourly_window_must_hold_a_whole_number_of_intervals() -> None:
    """azurerm docs: "hour_duration must be multiplier of hour_interval"."""
    assert problems_for(policy=with_policy(POLICY_V2, schedule__hourlyInterval=8, schedule__hourlyWindowHours=12)) == [
        "policy.schedule.hourlyWindowHours = 12 is not a multiple of hourlyInterval 8: "
        "allowed 8, 16, 24 hours with a 8-hour interval"
    ]
    six_hourly = with_policy(POLICY_V2, schedule__hourlyInterval=6, schedule__hourlyWindowHours=18)
    assert parse_stack_settings(VAULT, six_hourly, [VM]).policy.schedule.hourly_window_hours == 18


def test_window_multiple_is_not_reported_on_top_of_an_invalid_interval_or_window() -> None:
    assert problems_for(policy=with_policy(POLICY_V2, schedule__hourlyInterval=5, schedule__hourlyWindowHours=12)) == [
        "policy.schedule.hourlyInterval = 5 is not allowed: hourly interval must be one of 4/6/8/12 hours"
    ]
    assert problems_for(policy=with_policy(POLICY_V2, schedule__hourlyWindowHours=30)) == [
        "policy.schedule.hourlyWindowHours = 30 is out of range: allowed 4-24 hours"
    ]
