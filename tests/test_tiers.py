"""Every entry of the tier and frequency registry (``components.tiers``) reaches every consumer:
config parsing, Azure's limits, the policy body, the policy pack's thresholds and rules, the plan
table, and the emulator, which plays Azure with its own copy of the limits. A tier added to the
registry is tested here without a new test; one that a consumer does not derive fails here."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from pulumi_azure_native import recoveryservices as rs

from components import tiers, validation
from components.backup_vault import policy_properties
from components.config import PolicySettings, RetentionSettings, parse_stack_settings
from components.tiers import FREQUENCIES, RETENTION_TIERS, RetentionTier, ScheduleFrequency
from components.validation import ValidationError
from emulator import policy_rules as emulator_rules
from policies import rules
from policies.thresholds import RETENTION_SCHEMA, TIERS, RetentionRequirements
from rehearsal.plan_table import retention_ladder, schedule_summary
from testing.mock_preview import evaluate
from tests.helpers import SUB

REPO = Path(__file__).resolve().parent.parent
VAULT = {"name": "rsv-app", "resourceGroup": "rg-backup"}
VMS = [f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-web-01"]
TYPE_NAMES = {"V1": "Standard", "V2": "Enhanced"}
CASES = [(tier, ptype) for tier in RETENTION_TIERS for ptype in tiers.POLICY_TYPES]


def _ids(case: tuple[RetentionTier, str]) -> str:
    return f"{case[0].key}-{case[1]}"


def tier_value(tier: RetentionTier, count: object) -> object:
    """The stack config of a tier: a bare count, or the count with each selector's last choice."""
    if not tier.selectors:
        return count
    return {"count": count, **{s.key: [s.allowed[-1]] for s in tier.selectors}}


def policy_with(tier: RetentionTier, ptype: str, count: object) -> dict[str, Any]:
    """A policy whose schedule needs no other tier than ``tier`` (plus the one it requires)."""
    schedule = next(f for f in FREQUENCIES if ptype in f.policy_types and tier.key not in f.forbidden_tiers)
    raw = frequency_policy(schedule, ptype, "21:30")
    raw["retention"][tier.key] = tier_value(tier, count)
    return raw


def frequency_policy(entry: ScheduleFrequency, ptype: str, time: str = "06:00") -> dict[str, Any]:
    """A policy of that frequency with the tier it requires."""
    required = tiers.retention_tier(entry.required_tier)
    extra: dict[str, object] = {"weekdays": ["Friday"]} if entry.run_days else {}
    if entry.hourly:
        extra = {"hourlyInterval": 6, "hourlyWindowHours": 12}
    fixed = entry.v1_instant_restore_days if ptype == "V1" else None
    return {
        "name": "pol",
        "type": TYPE_NAMES[ptype],
        "schedule": {"frequency": entry.key, "time": time, **extra},
        "retention": {required.key: tier_value(required, 12)},
        **({"instantRestoreDays": fixed} if fixed else {}),
    }


def wire_body(raw: dict[str, Any]) -> dict[str, Any]:
    """The policy's ``properties`` as the engine sends them to Azure (camelCase, under mocks)."""

    def program() -> None:
        settings = parse_policy(raw)
        rs.ProtectionPolicy("pol", policy_name="pol", vault_name="v", resource_group_name="rg",
                            properties=policy_properties(settings))

    [policy] = evaluate(program, {}, "dev").resources
    return dict(policy.inputs["properties"])


def parse_policy(raw: dict[str, Any]) -> PolicySettings:
    return parse_stack_settings(VAULT, raw, VMS).policy


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        parse_policy(raw)
    return refused.value.problems


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_config_accepts_each_tier_within_azures_limits_and_names_the_unit_outside(
    case: tuple[RetentionTier, str],
) -> None:
    tier, ptype = case
    low, high = tier.limits[ptype]  # type: ignore[index]
    for count in (low, high):
        value = getattr(parse_policy(policy_with(tier, ptype, count)).retention, tier.key)
        assert (value if not tier.selectors else value.count) == count
    setting = f"policy.retention.{tier.key}" + (".count" if tier.selectors else "")
    described = validation.describe_policy_type(ptype)  # type: ignore[arg-type]
    assert problems_of(policy_with(tier, ptype, high + 1)) == [
        f"{setting} = {high + 1} is out of range: allowed {low}-{high} {tier.unit} for {described} policies"
    ]


@pytest.mark.parametrize("tier", [t for t in RETENTION_TIERS if t.selectors], ids=lambda t: t.key)
def test_config_reads_each_selector_and_refuses_a_value_azure_does_not_have(tier: RetentionTier) -> None:
    value = getattr(parse_policy(policy_with(tier, "V2", 3)).retention, tier.key)
    assert [getattr(value, s.attribute) for s in tier.selectors] == [(s.allowed[-1],) for s in tier.selectors]
    bad = policy_with(tier, "V2", 3)
    selector = tier.selectors[0]
    bad["retention"][tier.key][selector.key] = ["Someday"]
    assert problems_of(bad) == [
        f"policy.retention.{tier.key}.{selector.key}[0] = 'Someday' is not allowed: choose one of "
        + ", ".join(selector.allowed)
    ]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_the_policy_body_carries_each_tier_in_azures_spelling(case: tuple[RetentionTier, str]) -> None:
    tier, ptype = case
    count = tier.limits[ptype][0] + 1  # type: ignore[index]
    schedule = wire_body(policy_with(tier, ptype, count))["retentionPolicy"][tier.schedule_key]
    assert schedule["retentionDuration"] == {"count": count, "durationType": tier.duration_type}
    assert schedule["retentionTimes"] == ["2024-01-01T21:30:00Z"]
    chosen = {s.azure_field: [s.allowed[-1]] for s in tier.selectors}
    if tier.weekly_format:
        weekly = {s.azure_field for s in (tiers.DAYS, tiers.WEEKS)}
        assert schedule.pop("retentionScheduleFormatType") == "Weekly"
        assert schedule.pop("retentionScheduleWeekly") == {k: v for k, v in chosen.items() if k in weekly}
        chosen = {k: v for k, v in chosen.items() if k not in weekly}
    assert {k: v for k, v in schedule.items() if k not in ("retentionDuration", "retentionTimes")} == chosen


@pytest.mark.parametrize("tier", RETENTION_TIERS, ids=lambda t: t.key)
def test_the_policy_pack_and_the_plan_table_read_each_tier_from_its_schedule_key(tier: RetentionTier) -> None:
    assert tier.key in TIERS
    assert tier.key in RETENTION_SCHEMA["minimum"]["properties"]
    assert tier.key in RETENTION_SCHEMA["requiredTiers"]["items"]["enum"]
    assert f"{tier.key}: {tier.unit}" in RETENTION_SCHEMA["minimum"]["description"]
    count = tier.limits["V2"][0]
    duration = {"count": count, "durationType": tier.duration_type}
    ladder = {tier.schedule_key: {"retentionDuration": duration}}
    props = {"properties": {"policyType": "V2", "retentionPolicy": ladder}}
    required = RetentionRequirements.from_config({"minimum": {tier.key: count + 1}, "requiredTiers": [tier.key]})
    assert rules.retention_problems(props, required) == [
        f"properties.retentionPolicy.{tier.schedule_key}.retentionDuration.count = {count} {tier.unit} is below this "
        f"environment's minimum of {count + 1} {tier.unit}"
    ]
    missing = rules.retention_problems({"properties": {"retentionPolicy": {}}}, required)
    assert f"properties.retentionPolicy.{tier.schedule_key} is missing" in missing[0]
    assert retention_ladder(props["properties"]) == f"{count}{tier.short_unit}"


@pytest.mark.parametrize("tier", RETENTION_TIERS, ids=lambda t: t.key)
def test_the_emulator_refuses_the_same_counts(tier: RetentionTier) -> None:
    assert {tier.limits["V1"], tier.limits["V2"]} == {emulator_rules.RETENTION[tier.schedule_key]}
    assert emulator_rules.UNITS[tier.schedule_key] == tier.unit


def test_the_typed_settings_have_one_field_per_tier() -> None:
    """The one place a new tier also needs code: its Tier literal and its RetentionSettings field."""
    assert typing.get_args(tiers.Tier) == tuple(t.key for t in RETENTION_TIERS)
    assert [f.name for f in dataclasses.fields(RetentionSettings)] == [t.key for t in RETENTION_TIERS]
    assert typing.get_args(tiers.Frequency) == tuple(f.key for f in FREQUENCIES)


@pytest.mark.parametrize("entry", FREQUENCIES, ids=lambda f: f.key)
def test_each_frequency_is_parsed_sent_checked_and_shown_from_its_entry(entry: ScheduleFrequency) -> None:
    for ptype in tiers.POLICY_TYPES:
        raw = frequency_policy(entry, ptype)
        if ptype not in entry.policy_types:
            assert problems_of(raw)[0] == (
                f"policy.schedule.frequency = {entry.key!r} requires an Enhanced (V2) policy; "
                "policy type is Standard (V1)"
            )
            continue
        schedule = wire_body(raw)["schedulePolicy"]
        assert schedule["scheduleRunFrequency"] == entry.key
        if ptype == "V2":
            assert entry.v2_schedule_key in schedule
        shown = schedule_summary({"schedulePolicy": schedule})
        assert shown.startswith("every 6h from 06:00 for 12h" if entry.hourly else f"{entry.key} at 06:00")
        assert shown.endswith(" on Friday") == entry.run_days
        without = {**raw, "retention": {}}
        required = f"policy.retention.{entry.required_tier} is required with a {entry.key} schedule"
        assert problems_of(without) == [required]
        for tier in entry.forbidden_tiers:
            raw["retention"][tier] = tier_value(tiers.retention_tier(tier), 12)
            assert problems_of(raw) == [
                f"policy.retention.{tier} is set but the schedule is {entry.key}: "
                f"{entry.key.lower()} backups cannot have {tier} retention"
            ]
    assert rules.FREQUENCY_RPO_HOURS.get(entry.key) == entry.rpo_hours
    interval = 6 if entry.hourly else None
    rpo = entry.rpo_hours or 6
    assert rules.check_rpo(entry.key, interval, "s", rpo) == []
    assert rules.check_rpo(entry.key, interval, "s", rpo - 1)[0].startswith(
        f"s = {entry.key!r} gives a recovery point every {rpo} hours: this environment's maximum RPO is {rpo - 1} hours"
    )
    assert entry.key in emulator_rules.iaas_vm_policy_problems(
        {"schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Monthly"},
         "policyType": "V2"}
    )[0]


@pytest.mark.slow
def test_a_tier_added_to_the_registry_reaches_every_consumer() -> None:
    """A hypothetical ``fortnightly`` entry, registered before anything imports the registry,
    becomes a known retention key of the stack config with its own limits and unit, a tier of the
    policy pack's config, a schedule the pack's rules read, and a rung of the plan table."""
    probe = """
import dataclasses, json
from components import tiers
tiers.RETENTION_TIERS = (*tiers.RETENTION_TIERS, tiers.RetentionTier(
    "fortnightly", "fortnightlySchedule", "Fortnights", "fortnights", {"V1": (2, 26), "V2": (2, 26)}))
from components import config, validation
from policies import rules, thresholds
from rehearsal.plan_table import retention_ladder
props = {"policyType": "V2", "retentionPolicy": {"fortnightlySchedule": {"retentionDuration": {"count": 1}}}}
print(json.dumps({
    "known": sorted(config._RETENTION_KEYS),
    "count": validation.check_retention_count(1, "fortnightly", "V2", "retention.fortnightly"),
    "pack": list(thresholds.TIERS),
    "schema": thresholds.RETENTION_SCHEMA["minimum"]["description"],
    "rules": rules.retention_problems({"properties": props}, thresholds.RetentionRequirements()),
    "ladder": retention_ladder({"retentionPolicy": {"fortnightlySchedule": {
        "retentionDuration": {"count": 6, "durationType": "Fortnights"}}}}),
}))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(done.stdout)
    assert seen["known"] == ["daily", "fortnightly", "monthly", "weekly", "yearly"]
    assert seen["count"] == [
        "retention.fortnightly = 1 is out of range: allowed 2-26 fortnights for Enhanced (V2) policies"
    ]
    assert seen["pack"] == ["daily", "weekly", "monthly", "yearly", "fortnightly"]
    assert seen["schema"].endswith("yearly: years, fortnightly: fortnights).")
    assert seen["rules"] == [
        "properties.retentionPolicy.fortnightlySchedule.retentionDuration.count = 1 is out of range: allowed 2-26 "
        "fortnights for Enhanced (V2) policies",
        "properties.retentionPolicy.dailySchedule is missing: this environment requires daily retention",
    ]
    assert seen["ladder"] == "6f"


def test_a_frequency_outside_the_registry_is_refused_by_name_in_code_built_settings() -> None:
    """Settings built in code skip the parser; the body builder names the bad value instead of
    sending it (V1) or silently sending a daily schedule (V2, as it did before the registry)."""
    from components.config import ScheduleSettings

    bad = PolicySettings(name="pol", schedule=ScheduleSettings(frequency="Monthly"))  # type: ignore[arg-type]
    with pytest.raises(ValueError) as refused:
        policy_properties(bad)
    assert str(refused.value) == "schedule.frequency = 'Monthly' is not allowed: choose one of Daily, Weekly, Hourly"
