"""Preview validation and the emulator's Azure rules agree: a policy that passes ``pulumi preview``
produces a body the emulator (i.e. Azure's recorded rules) accepts, and a policy those rules refuse
is already refused at preview, naming the setting. No late 400 in ``pulumi up``."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components.program import deploy
from components.validation import ValidationError
from emulator.policy_rules import iaas_vm_policy_problems
from testing.mock_preview import evaluate, load_stack_config

POLICY = "azure-native:recoveryservices:ProtectionPolicy"
HOURLY: dict[str, Any] = {
    "name": "pol-h",
    "type": "Enhanced",
    "instantRestoreDays": 7,
    "schedule": {"frequency": "Hourly", "time": "08:00", "hourlyInterval": 4, "hourlyWindowHours": 12},
    "retention": {"daily": 30, "weekly": {"count": 12, "days": ["Sunday"]}},
}
DAILY_V1: dict[str, Any] = {
    "name": "pol-d",
    "type": "Standard",
    "instantRestoreDays": 5,
    "schedule": {"frequency": "Daily", "time": "22:30"},
    "retention": {"daily": 7, "monthly": {"count": 12, "weeksOfMonth": ["Last"], "days": ["Friday"]}},
}
WEEKLY_V1: dict[str, Any] = {
    "name": "pol-w",
    "type": "Standard",
    "schedule": {"frequency": "Weekly", "time": "01:00", "weekdays": ["Saturday", "Sunday"]},
    "retention": {"weekly": {"count": 4, "days": ["Sunday"]}, "yearly": {"count": 7, "months": ["January"]}},
}
DAILY_V2: dict[str, Any] = {
    "name": "pol-d2",
    "type": "Enhanced",
    "instantRestoreDays": 30,
    "schedule": {"frequency": "Daily", "time": "00:00"},
    "retention": {"daily": 9999},
}


def policy_body(policy: dict[str, Any]) -> dict[str, Any]:
    config = load_stack_config("dev")
    config["protected-vm:policy"] = json.dumps(policy)
    plan = evaluate(deploy, config, "dev")
    [resource] = plan.of_type(POLICY)
    body: dict[str, Any] = resource.inputs["properties"]
    return body


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    policy = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = policy
        *path, last = dotted.split("__")
        for key in path:
            node = node[key]
        node[last] = value
    return policy


@pytest.mark.parametrize(
    "policy",
    [
        HOURLY,
        with_changes(HOURLY, schedule__hourlyInterval=6, schedule__hourlyWindowHours=24),
        with_changes(HOURLY, schedule__hourlyInterval=8, schedule__hourlyWindowHours=16),
        with_changes(HOURLY, schedule__hourlyInterval=12, schedule__hourlyWindowHours=12),
        DAILY_V1,
        WEEKLY_V1,
        DAILY_V2,
    ],
    ids=["hourly-4x12", "hourly-6x24", "hourly-8x16", "hourly-12x12", "daily-v1", "weekly-v1", "daily-v2"],
)
def test_every_policy_preview_accepts_is_a_body_azures_rules_accept(policy: dict[str, Any]) -> None:
    body = policy_body(policy)
    assert body["schedulePolicy"]["scheduleRunFrequency"] == policy["schedule"]["frequency"]
    assert iaas_vm_policy_problems(body) == []
    broken = copy.deepcopy(body)
    broken["retentionPolicy"]["retentionPolicyType"] = "SimpleRetentionPolicy"
    assert iaas_vm_policy_problems(broken) != []  # the rules do look at this body


@pytest.mark.parametrize(
    ("policy", "setting"),
    [
        (with_changes(HOURLY, schedule__hourlyWindowHours=10), "policy.schedule.hourlyWindowHours = 10"),
        (with_changes(DAILY_V2, retention__daily=3), "policy.retention.daily = 3"),
        (with_changes(DAILY_V1, schedule__time="22:15"), "policy.schedule.time = '22:15'"),
        (with_changes(DAILY_V1, instantRestoreDays=6), "policy.instantRestoreDays = 6"),
        (with_changes(WEEKLY_V1, instantRestoreDays=2), "policy.instantRestoreDays = 2"),
        (with_changes(HOURLY, type="Standard", instantRestoreDays=5), "policy.schedule.frequency = 'Hourly'"),
    ],
    ids=["window-not-multiple", "v2-daily-3", "time-22-15", "v1-ir-6", "weekly-v1-ir-2", "hourly-v1"],
)
def test_what_azures_rules_refuse_is_refused_at_preview(policy: dict[str, Any], setting: str) -> None:
    with pytest.raises(ValidationError) as refused:
        policy_body(policy)
    assert any(problem.startswith(setting) for problem in refused.value.problems), refused.value.problems
