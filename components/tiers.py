"""The registry of retention tiers and schedule frequencies of an IaaS VM backup policy.

Config parsing (:mod:`components.config`), Azure's limits (:mod:`components.validation`), the
policy body (:func:`components.backup_vault.policy_properties`), the policy pack's thresholds and
rules (:mod:`policies.thresholds`, :mod:`policies.rules`) and the rehearsal's plan table all read
these entries instead of naming ``daily``/``weekly``/... themselves, so a tier or frequency is
described once: its config key, where it lives in Azure's body, Azure's enum spellings, its unit
and Azure's limits per policy type. ``tests/test_tiers.py`` walks every entry through every
consumer. Adding a tier: one :data:`RETENTION_TIERS` entry, its ``Tier`` literal, its field of
``components.config.RetentionSettings`` (a settings class taking ``(count, *selectors)`` in the
entry's selector order), and its tests.

Standard library only: the policy pack imports it in its own virtualenv.

Records (Azure publishes no list of its policy checks): azure-rest-api-specs ``bms.json``
(recoveryservicesbackup stable 2024-10-01: ``LongTermRetentionPolicy`` with ``dailySchedule``,
``weeklySchedule``, ``monthlySchedule``, ``yearlySchedule``; ``RetentionDurationType`` Days, Weeks,
Months, Years; ``ScheduleRunType`` Daily, Weekly, Hourly; ``SimpleSchedulePolicyV2`` with
``hourlySchedule``/``dailySchedule``/``weeklySchedule``; ``DayOfWeek``, ``WeekOfMonth``,
``MonthOfYear``), and azurerm (hashicorp/terraform-provider-azurerm)
``website/docs/r/backup_policy_vm.html.markdown`` (commit 0a830d40, "azurerm docs") and
``internal/services/recoveryservices/backup_policy_vm_resource.go`` (commit 0177a6ca, "azurerm
resource") as the record of what the service refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

PolicyType = Literal["V1", "V2"]
Tier = Literal["daily", "weekly", "monthly", "yearly"]
Frequency = Literal["Daily", "Weekly", "Hourly"]
POLICY_TYPES: Final[tuple[PolicyType, ...]] = ("V1", "V2")

# Azure's enum values (bms.json ``DayOfWeek``, ``WeekOfMonth``, ``MonthOfYear``).
WEEKDAYS: Final[tuple[str, ...]] = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
WEEKS_OF_MONTH: Final[tuple[str, ...]] = ("First", "Second", "Third", "Fourth", "Last")
MONTHS: Final[tuple[str, ...]] = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class Selector:
    """Which days of a tier keep their recovery point (``weekly.days``, ``yearly.months``...)."""

    #: The key in the stack config's tier object.
    key: str
    #: The attribute of the tier's settings class (``components.config``).
    attribute: str
    #: The field of Azure's retention schedule (``daysOfTheWeek``), and its enum type in bms.json.
    azure_field: str
    azure_enum: str
    allowed: tuple[str, ...]
    default: tuple[str, ...]


DAYS: Final = Selector("days", "days", "daysOfTheWeek", "DayOfWeek", WEEKDAYS, ("Sunday",))
WEEKS: Final = Selector("weeksOfMonth", "weeks_of_month", "weeksOfTheMonth", "WeekOfMonth", WEEKS_OF_MONTH, ("First",))
MONTHS_OF_YEAR: Final = Selector("months", "months", "monthsOfYear", "MonthOfYear", MONTHS, ("January",))


@dataclass(frozen=True)
class RetentionTier:
    """One rung of the retention ladder."""

    #: The key in ``retention`` of the stack config and in the policy pack's config.
    key: Tier
    #: The key of this tier's schedule in Azure's ``retentionPolicy`` (``LongTermRetentionPolicy``).
    schedule_key: str
    #: Azure's ``RetentionDurationType`` of the count.
    duration_type: str
    #: The count's unit in messages.
    unit: str
    #: The counts Azure accepts, per policy type.
    limits: dict[PolicyType, tuple[int, int]]
    #: Which points the tier keeps, in config order; none for a tier given as a bare count (daily).
    selectors: tuple[Selector, ...] = ()

    @property
    def short_unit(self) -> str:
        """``d``/``w``/``m``/``y``: the plan table's ladder (``30d / 12w``)."""
        return self.duration_type[0].lower()

    @property
    def weekly_format(self) -> bool:
        """Monthly and yearly points are picked by week of the month and weekday: Azure's
        ``retentionScheduleFormatType: Weekly`` with ``retentionScheduleWeekly``."""
        return WEEKS in self.selectors


#: azurerm docs: daily "Must be between 7 and 9999 ... Azure previously allows this field to be set to a
#: minimum of 1 (day) - but for new resources/to update this value on existing Backup Policies - this value
#: must now be at least 7 (days)", with no exception for Enhanced (V2) policies; weekly, monthly and
#: yearly "Must be between 1 and 9999".
RETENTION_TIERS: tuple[RetentionTier, ...] = (
    RetentionTier("daily", "dailySchedule", "Days", "days", {"V1": (7, 9999), "V2": (7, 9999)}),
    RetentionTier("weekly", "weeklySchedule", "Weeks", "weeks", {"V1": (1, 9999), "V2": (1, 9999)}, (DAYS,)),
    RetentionTier(
        "monthly", "monthlySchedule", "Months", "months", {"V1": (1, 9999), "V2": (1, 9999)}, (WEEKS, DAYS)
    ),
    RetentionTier(
        "yearly",
        "yearlySchedule",
        "Years",
        "years",
        {"V1": (1, 9999), "V2": (1, 9999)},
        (MONTHS_OF_YEAR, WEEKS, DAYS),
    ),
)


def retention_tier(key: str) -> RetentionTier:
    return next(tier for tier in RETENTION_TIERS if tier.key == key)


@dataclass(frozen=True)
class ScheduleFrequency:
    """How often a policy takes a backup."""

    #: The stack config's ``schedule.frequency`` and Azure's ``scheduleRunFrequency`` (``ScheduleRunType``).
    key: Frequency
    #: The nested schedule of a ``SimpleSchedulePolicyV2`` (bms.json).
    v2_schedule_key: str
    #: Policy types that offer it: hourly RPO exists only in Enhanced (V2) policies (bms.json:
    #: SimpleSchedulePolicyV2 is "the V2 policy schedule for IaaS that supports hourly backups";
    #: azurerm resource builds an hourly schedule only for V2).
    policy_types: tuple[PolicyType, ...]
    #: The gap between recovery points, in hours; None when the schedule sets it (hourly interval).
    rpo_hours: int | None
    #: The retention tier its points need, and tiers it cannot have (azurerm resource CustomizeDiff:
    #: "`retention_daily` must be set when backup.0.frequency is daily/hourly", "must be not set when
    #: backup.0.frequency is weekly", "`retention_weekly` must be set when backup.0.frequency is weekly").
    required_tier: Tier
    forbidden_tiers: tuple[Tier, ...] = ()
    #: Standard (V1) policies of this frequency keep instant-restore snapshots exactly this many days
    #: (azurerm docs: "instant_restore_retention_days must be set to 5 if the backup frequency is set
    #: to Weekly"); None: any count within the policy type's limits.
    v1_instant_restore_days: int | None = None
    #: Whether the schedule names its weekdays (``weekdays`` in config, ``scheduleRunDays`` in Azure).
    run_days: bool = False
    #: Whether the schedule is an hourly window (``hourlyInterval``/``hourlyWindowHours``).
    hourly: bool = False
    #: Config keys only this frequency takes (the others refuse them).
    only_keys: tuple[str, ...] = field(default=())


FREQUENCIES: tuple[ScheduleFrequency, ...] = (
    ScheduleFrequency("Daily", "dailySchedule", ("V1", "V2"), 24, "daily"),
    ScheduleFrequency(
        "Weekly", "weeklySchedule", ("V1", "V2"), 168, "weekly", ("daily",), 5, run_days=True, only_keys=("weekdays",)
    ),
    ScheduleFrequency(
        "Hourly",
        "hourlySchedule",
        ("V2",),
        None,
        "daily",
        hourly=True,
        only_keys=("hourlyInterval", "hourlyWindowHours"),
    ),
)


def schedule_frequency(key: object) -> ScheduleFrequency | None:
    return next((f for f in FREQUENCIES if f.key == key), None)
