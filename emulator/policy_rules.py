"""What Azure Backup refuses in an IaaS VM protection policy body, so the emulator refuses it too.

Every rule names its record. Azure publishes no list of these checks; the records are:

* bms.json (azure-rest-api-specs, recoveryservicesbackup stable 2024-10-01 and 2026-10-01): the
  schema (SimpleSchedulePolicy for V1, SimpleSchedulePolicyV2 with hourly/daily/weeklySchedule for
  V2; HourlySchedule.interval, scheduleWindowStartTime, scheduleWindowDuration);
* azurerm, ``internal/services/recoveryservices/backup_policy_vm_resource.go`` (commit 0177a6ca) and its
  documentation ``website/docs/r/backup_policy_vm.html.markdown`` (commit 0a830d40), the provider's
  record of what the service rejects: time "HH:mm where HH is 00-23 and mm is 00 or 30"; the time
  "applies to all backup schedules & retention times (they all must be the same)"; hour_interval
  4/6/8/12; hour_duration 4-24 and "a multiplier of hour_interval"; instant restore 1-5 (V1) / 1-30
  (V2), exactly 5 with a Weekly schedule; daily retention 7-9999 ("Azure previously allows ... a
  minimum of 1 ... this value must now be at least 7"); weekly/monthly/yearly 1-9999; Daily and
  Hourly need daily retention, Weekly forbids it and needs weekly retention.

Deliberate consequence: two official examples are refused (ProtectionPolicies_CreateOrUpdate_Simple
keeps daily points 1 day; IaaS_v2_daily's retention times differ from its schedule time); the
conformance suite lists both with this reason.

The error code ``BMSUserErrorInvalidPolicyInput`` is the service's code as seen in real answers; no
stored source carries it, so it is a belief. Messages name the field, the value and what is allowed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .errors import ApiError

POLICY_ERROR = "BMSUserErrorInvalidPolicyInput"
SCHEDULE_TYPES = {"V1": "SimpleSchedulePolicy", "V2": "SimpleSchedulePolicyV2"}
HOURLY_INTERVALS = (4, 6, 8, 12)
HOURLY_WINDOW = (4, 24)
INSTANT_RESTORE = {"V1": (1, 5), "V2": (1, 30)}
WEEKLY_V1_INSTANT_RESTORE = 5
RETENTION = {
    "dailySchedule": (7, 9999),
    "weeklySchedule": (1, 9999),
    "monthlySchedule": (1, 9999),
    "yearlySchedule": (1, 9999),
}
UNITS = {"dailySchedule": "days", "weeklySchedule": "weeks", "monthlySchedule": "months", "yearlySchedule": "years"}


def policy_error(message: str) -> ApiError:
    return ApiError(400, POLICY_ERROR, message)


def check_iaas_vm_policy(props: dict[str, Any]) -> None:
    """Raise the first problem as Azure's 400; bodies of other workloads are not checked."""
    if str(props.get("backupManagementType", "")).lower() != "azureiaasvm":
        return
    problems = iaas_vm_policy_problems(props)
    if problems:
        raise policy_error(problems[0])


def iaas_vm_policy_problems(props: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    policy_type = str(props.get("policyType") or "V1")
    if policy_type not in SCHEDULE_TYPES:
        return [f"policyType '{policy_type}' is not valid; allowed values are V1, V2."]
    schedule = props.get("schedulePolicy")
    if not isinstance(schedule, dict):
        return ["schedulePolicy is required."]
    schedule_type = schedule.get("schedulePolicyType")
    if schedule_type != SCHEDULE_TYPES[policy_type]:
        return [
            f"schedulePolicyType '{schedule_type}' is not valid for policyType {policy_type}; "
            f"use '{SCHEDULE_TYPES[policy_type]}'."
        ]
    frequency = schedule.get("scheduleRunFrequency")
    if frequency not in ("Daily", "Weekly", "Hourly"):
        return [f"scheduleRunFrequency '{frequency}' is not valid; allowed values are Daily, Weekly, Hourly."]
    if frequency == "Hourly" and policy_type != "V2":
        return ["Hourly backups need an Enhanced (V2) policy."]
    times, time_problems = _schedule_times(schedule, policy_type, frequency)
    problems += time_problems
    problems += _instant_restore(props.get("instantRpRetentionRangeInDays"), policy_type, frequency)
    problems += _retention(props.get("retentionPolicy"), frequency, times)
    return problems


def _schedule_times(schedule: dict[str, Any], policy_type: str, frequency: str) -> tuple[set[str], list[str]]:
    """The schedule's times of day (HH:MM), with problems for any off the hour or half hour."""
    problems: list[str] = []
    if policy_type == "V1":
        raw = schedule.get("scheduleRunTimes")
    elif frequency == "Hourly":
        hourly = schedule.get("hourlySchedule") or {}
        raw = [hourly.get("scheduleWindowStartTime")]
        problems += _hourly(hourly)
    else:
        sub = schedule.get("dailySchedule" if frequency == "Daily" else "weeklySchedule") or {}
        raw = sub.get("scheduleRunTimes")
    if not isinstance(raw, list) or not raw or any(t is None for t in raw):
        return set(), [*problems, f"The {frequency} schedule needs a run time."]
    times: set[str] = set()
    for value in raw:
        moment = _time_of_day(value)
        if moment is None:
            problems.append(f"Schedule time '{value}' is not a valid ISO-8601 time.")
        elif moment.minute not in (0, 30) or moment.second or moment.microsecond:
            problems.append(
                f"Schedule time '{value}' is not valid; backups can be scheduled only on the hour or half hour."
            )
        else:
            times.add(moment.strftime("%H:%M"))
    return times, problems


def _hourly(hourly: dict[str, Any]) -> list[str]:
    interval, window = _whole(hourly.get("interval")), _whole(hourly.get("scheduleWindowDuration"))
    if interval not in HOURLY_INTERVALS:
        return [f"Hourly interval {hourly.get('interval')!r} is not valid; allowed values are 4, 6, 8, 12 hours."]
    low, high = HOURLY_WINDOW
    if window is None or not low <= window <= high:
        shown = hourly.get("scheduleWindowDuration")
        return [f"Schedule window duration {shown!r} is not valid; allowed values are {low}-{high} hours."]
    if window % interval:
        return [f"Schedule window duration {window} hours must be a multiple of the hourly interval {interval}."]
    return []


def _instant_restore(raw: Any, policy_type: str, frequency: str) -> list[str]:
    if raw is None:
        return []
    low, high = INSTANT_RESTORE[policy_type]
    days = _whole(raw)
    if days is None or not low <= days <= high:
        return [
            f"instantRpRetentionRangeInDays {raw!r} is not valid for policyType {policy_type}; allowed {low}-{high}."
        ]
    if policy_type == "V1" and frequency == "Weekly" and days != WEEKLY_V1_INSTANT_RESTORE:
        return [f"instantRpRetentionRangeInDays must be {WEEKLY_V1_INSTANT_RESTORE} for a weekly V1 policy, not {days}"]
    return []


def _retention(retention: Any, frequency: str, times: set[str]) -> list[str]:
    if not isinstance(retention, dict) or retention.get("retentionPolicyType") != "LongTermRetentionPolicy":
        return ["retentionPolicy must be a LongTermRetentionPolicy for Azure VM backups."]
    problems: list[str] = []
    has_daily, has_weekly = bool(retention.get("dailySchedule")), bool(retention.get("weeklySchedule"))
    if frequency in ("Daily", "Hourly") and not has_daily:
        problems.append(f"A {frequency} schedule needs daily retention (dailySchedule).")
    if frequency == "Weekly" and has_daily:
        problems.append("A Weekly schedule cannot have daily retention (dailySchedule).")
    if frequency == "Weekly" and not has_weekly:
        problems.append("A Weekly schedule needs weekly retention (weeklySchedule).")
    for key, (low, high) in RETENTION.items():
        tier = retention.get(key)
        if not tier:
            continue
        duration = tier.get("retentionDuration") or {}
        count = _whole(duration.get("count"))
        if count is None or not low <= count <= high:
            shown = duration.get("count")
            problems.append(f"{key} retention count {shown!r} is not valid; allowed {low}-{high} {UNITS[key]}.")
        for value in tier.get("retentionTimes") or []:
            moment = _time_of_day(value)
            if times and moment is not None and moment.strftime("%H:%M") not in times:
                problems.append(
                    f"{key} retention time '{value}' differs from the schedule time "
                    f"{', '.join(sorted(times))}; retention times must match the schedule."
                )
    return problems


def _whole(value: Any) -> int | None:
    """JSON numbers as the service's int32 fields take them: 7 and 7.0 alike (the Pulumi engine
    sends floats), never a bool or a fraction."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _time_of_day(value: Any) -> dt.time | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC).time() if parsed.tzinfo else parsed.time()
