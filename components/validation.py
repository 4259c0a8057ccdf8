"""Pure validation rules shared by the components (preview-time checks) and the policy pack.

Every rule takes plain values and returns a list of human-readable problems (empty when fine),
so that the same bound is enforced once at ``pulumi preview`` on our config and again by
CrossGuard on whatever props reach the engine. Messages always name the setting, the value
and the allowed range: a pipeline log must be enough to fix the stack file without reading code.

The limits are Azure Backup's own (a violation would otherwise surface as a late HTTP 400
during ``pulumi up``, after other resources were already created). Azure publishes no list of its
policy checks; each limit below names its record, mostly azurerm's (hashicorp/terraform-provider-azurerm):
``website/docs/r/backup_policy_vm.html.markdown`` (commit 0a830d40, "azurerm docs" below) and
``internal/services/recoveryservices/backup_policy_vm_resource.go`` (commit 0177a6ca, "azurerm
resource"). The emulator enforces the same rules on policy bodies (``emulator/policy_rules.py``).
Per-tier and per-frequency facts (retention limits, units, required tiers, hourly only in V2,
weekly V1 instant restore) are entries of the registry in :mod:`components.tiers`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Final

from components.tiers import FREQUENCIES, POLICY_TYPES, RETENTION_TIERS, schedule_frequency
from components.tiers import MONTHS as MONTHS
from components.tiers import WEEKDAYS as WEEKDAYS
from components.tiers import WEEKS_OF_MONTH as WEEKS_OF_MONTH
from components.tiers import Frequency as Frequency
from components.tiers import PolicyType as PolicyType
from components.tiers import Tier as Tier
from protectedvm import ids

#: Azure's retention counts per tier and policy type, and each tier's unit: from the registry.
RETENTION_LIMITS: Final[dict[tuple[PolicyType, Tier], tuple[int, int]]] = {
    (policy_type, tier.key): tier.limits[policy_type] for tier in RETENTION_TIERS for policy_type in POLICY_TYPES
}
TIER_UNITS: Final[dict[Tier, str]] = {tier.key: tier.unit for tier in RETENTION_TIERS}
FREQUENCY_NAMES: Final[tuple[str, ...]] = tuple(f.key for f in FREQUENCIES)
#: Instant-restore snapshot retention (days) per policy type. azurerm docs: "between 1 and 5 when
#: policy_type is V1, and 1 to 30 when policy_type is V2".
INSTANT_RESTORE_LIMITS: Final[dict[PolicyType, tuple[int, int]]] = {"V1": (1, 5), "V2": (1, 30)}
#: azurerm docs: hour_interval "Possible values are 4, 6, 8 and 12"; hour_duration "between 4 and 24",
#: and "hour_duration must be multiplier of hour_interval" (also enforced in azurerm resource's
#: expandBackupProtectionPolicyVMSchedule: "`hour_duration` must be multiplier of `hour_interval`").
HOURLY_INTERVALS: Final[tuple[int, ...]] = (4, 6, 8, 12)
HOURLY_WINDOW_LIMITS: Final[tuple[int, int]] = (4, 24)
SOFT_DELETE_RETENTION_LIMITS: Final[tuple[int, int]] = (14, 180)
STORAGE_REDUNDANCIES: Final[tuple[str, ...]] = ("LocallyRedundant", "ZoneRedundant", "GeoRedundant")
SOFT_DELETE_STATES: Final[tuple[str, ...]] = ("AlwaysON", "Enabled", "Disabled")
IMMUTABILITY_STATES: Final[tuple[str, ...]] = ("Disabled", "Unlocked", "Locked")
PUBLIC_NETWORK_ACCESS: Final[tuple[str, ...]] = ("Enabled", "Disabled")
VERIFY_MODES: Final[tuple[str, ...]] = ("none", "started", "completed")
#: How long an on-demand recovery point may be kept (Azure's "Retain backup till" allows 99 years).
INITIAL_BACKUP_RETAIN_DAYS_LIMITS: Final[tuple[int, int]] = (1, 36135)
INITIAL_BACKUP_TIMEOUT_MINUTES_LIMITS: Final[tuple[int, int]] = (1, 1440)
INITIAL_BACKUP_POLL_SECONDS_LIMITS: Final[tuple[int, int]] = (5, 600)

_HHMM = re.compile(r"^(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d)\Z")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(\.0+)?Z?\Z")


class ValidationError(ValueError):
    """Raised with every problem found at once, so one preview shows the whole list."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid protected-vm configuration:\n  - " + "\n  - ".join(problems))


#: The parts of an ARM id that naming and credentials need (one parser: :mod:`protectedvm.ids`).
AzureId = ids.ArmId


def parse_vm_id(vm_id: object, setting: str = "vms") -> AzureId:
    """Split a VM resource id, or raise naming the setting and the expected shape."""
    parts = ids.match_id(vm_id, ids.VM_ID)
    if parts is None:
        raise ValidationError(check_vm_id(vm_id, setting))
    return parts


def parse_vault_id(vault_id: object, setting: str = "vault.existingId") -> AzureId:
    """Split a Recovery Services vault id (for reuse of an existing vault)."""
    parts = ids.match_id(vault_id, ids.VAULT_ID)
    if parts is None:
        raise ValidationError(
            [f"{setting} = {vault_id!r} is not a Recovery Services vault id: expected {ids.VAULT_ID.expected()}"]
        )
    return parts


def check_vm_id(vm_id: object, setting: str = "vms") -> list[str]:
    if ids.match_id(vm_id, ids.VM_ID) is None:
        return [f"{setting} = {vm_id!r} is not a virtual machine resource id: expected {ids.VM_ID.expected()}"]
    return []


def check_policy_id(policy_id: object, setting: str = "policy.existingId") -> list[str]:
    if ids.match_id(policy_id, ids.POLICY_ID) is None:
        return [f"{setting} = {policy_id!r} is not a backup policy id: expected {ids.POLICY_ID.expected()}"]
    return []


def check_int_range(value: object, setting: str, low: int, high: int, unit: str = "") -> list[str]:
    """The generic bound check; bools are rejected because YAML `yes` is not a count."""
    suffix = f" {unit}" if unit else ""
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{setting} = {value!r} must be a whole number from {low} to {high}{suffix}"]
    if not low <= value <= high:
        return [f"{setting} = {value} is out of range: allowed {low}-{high}{suffix}"]
    return []


def check_choice(value: object, setting: str, allowed: tuple[str, ...]) -> list[str]:
    if value not in allowed:
        return [f"{setting} = {value!r} is not allowed: choose one of {', '.join(allowed)}"]
    return []


def check_choices(values: object, setting: str, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(values, (list, tuple)) or not values:
        return [f"{setting} = {values!r} must be a non-empty list of {', '.join(allowed)}"]
    return [p for i, v in enumerate(values) for p in check_choice(v, f"{setting}[{i}]", allowed)]


def check_retention_count(count: object, tier: Tier, policy_type: PolicyType, setting: str) -> list[str]:
    low, high = RETENTION_LIMITS[(policy_type, tier)]
    problems = check_int_range(count, setting, low, high, TIER_UNITS[tier])
    return [f"{p} for {describe_policy_type(policy_type)} policies" for p in problems]


def check_instant_restore_days(days: object, policy_type: PolicyType, frequency: Frequency, setting: str) -> list[str]:
    low, high = INSTANT_RESTORE_LIMITS[policy_type]
    problems = check_int_range(days, setting, low, high, "days")
    if problems:
        return [f"{p} for {describe_policy_type(policy_type)} policies" for p in problems]
    entry = schedule_frequency(frequency)
    fixed = entry.v1_instant_restore_days if entry is not None else None
    if policy_type == "V1" and fixed is not None and days != fixed:
        return [
            f"{setting} = {days} is not allowed with a {frequency} schedule: Standard (V1) policies "
            f"with {frequency.lower()} backups keep instant-restore snapshots exactly {fixed} days"
        ]
    return []


def check_backup_time(value: object, setting: str) -> list[str]:
    """Azure only schedules backups on the hour or half hour; anything else is a late 400.

    azurerm resource: time must match ``^([01][0-9]|[2][0-3]):([03][0])$`` ("HH is 00-23 and mm is 00 or
    30"). The same time is used for every schedule and retention time (azurerm: "they all must be the
    same"); ``components/backup_vault.py`` derives them all from this one setting, so no separate check."""
    if not isinstance(value, str):
        return [f"{setting} = {value!r} must be a time as HH:MM (on :00 or :30)"]
    match = _HHMM.match(value) or _ISO_TIME.match(value)
    if match is None:
        return [f"{setting} = {value!r} must be a time as HH:MM (on :00 or :30)"]
    if int(match["h"]) > 23 or match["m"] not in ("00", "30") or match.groupdict().get("s") not in (None, "00"):
        return [f"{setting} = {value!r} is not on the hour or half hour: allowed minutes are :00 and :30"]
    return []


def check_hourly_interval(interval: object, setting: str) -> list[str]:
    """Whole hours only: ``4.0 in (4, 6, 8, 12)`` is true in Python, and a float would then have
    been dropped by the parser (a silent default). Engine floats go through :func:`as_count` first."""
    if isinstance(interval, bool) or not isinstance(interval, int) or interval not in HOURLY_INTERVALS:
        allowed = "/".join(str(i) for i in HOURLY_INTERVALS)
        return [f"{setting} = {interval!r} is not allowed: hourly interval must be one of {allowed} hours"]
    return []


def check_hourly_window(hours: object, setting: str) -> list[str]:
    low, high = HOURLY_WINDOW_LIMITS
    return check_int_range(hours, setting, low, high, "hours")


def check_hourly_window_multiple(hours: object, interval: object, setting: str) -> list[str]:
    """The window must hold a whole number of intervals (azurerm docs: "hour_duration must be
    multiplier of hour_interval"); only checked once both are valid on their own."""
    if (
        isinstance(hours, bool)
        or isinstance(interval, bool)
        or not isinstance(hours, int)
        or check_hourly_interval(interval, setting)
        or not HOURLY_WINDOW_LIMITS[0] <= hours <= HOURLY_WINDOW_LIMITS[1]
    ):
        return []
    assert isinstance(interval, int)  # check_hourly_interval accepted it
    if hours % interval:
        low, high = HOURLY_WINDOW_LIMITS
        allowed = ", ".join(str(h) for h in range(low, high + 1) if h % interval == 0)
        return [
            f"{setting} = {hours} is not a multiple of hourlyInterval {interval}: "
            f"allowed {allowed} hours with a {interval}-hour interval"
        ]
    return []


def check_frequency_for_policy_type(frequency: object, policy_type: PolicyType, setting: str) -> list[str]:
    """Hourly RPO exists only in Enhanced (V2) policies (bms.json: SimpleSchedulePolicyV2 is "the V2
    policy schedule for IaaS that supports hourly backups"; azurerm resource builds an hourly schedule
    only for V2)."""
    entry = schedule_frequency(frequency)
    if entry is None:
        return check_choice(frequency, setting, FREQUENCY_NAMES)
    if policy_type not in entry.policy_types:
        return [
            f"{setting} = {entry.key!r} requires an {describe_policy_type(entry.policy_types[0])} policy; "
            f"policy type is {describe_policy_type(policy_type)}"
        ]
    return []


def check_schedule_retention(frequency: Frequency, present: Collection[str], setting: str) -> list[str]:
    """A weekly schedule produces no daily points, and a daily schedule needs daily retention:
    each frequency's required and forbidden tiers (``components.tiers.FREQUENCIES``)."""
    entry = schedule_frequency(frequency)
    if entry is None:
        return []
    forbidden = [tier for tier in entry.forbidden_tiers if tier in present]
    if forbidden:
        return [
            f"{setting}.{forbidden[0]} is set but the schedule is {frequency}: {frequency.lower()} backups cannot "
            f"have {forbidden[0]} retention"
        ]
    if entry.required_tier not in present:
        return [f"{setting}.{entry.required_tier} is required with a {frequency} schedule"]
    return []


def check_cross_region_restore(cross_region_restore: bool, redundancy: object, setting: str) -> list[str]:
    if cross_region_restore and redundancy != "GeoRedundant":
        return [
            f"{setting} = true requires storageRedundancy 'GeoRedundant' (got {redundancy!r}): "
            "cross-region restore reads the paired region's copy"
        ]
    return []


def describe_policy_type(policy_type: PolicyType) -> str:
    return "Standard (V1)" if policy_type == "V1" else "Enhanced (V2)"


def normalize_policy_type(value: object, setting: str = "policy.type") -> tuple[PolicyType | None, list[str]]:
    """Accept the portal's names (Standard/Enhanced) and the API's (V1/V2)."""
    mapping: dict[str, PolicyType] = {"standard": "V1", "v1": "V1", "enhanced": "V2", "v2": "V2"}
    if isinstance(value, str) and value.lower() in mapping:
        return mapping[value.lower()], []
    return None, [f"{setting} = {value!r} is not allowed: choose one of Standard (V1), Enhanced (V2)"]


def as_count(value: object) -> object:
    """The engine sends numbers as floats (``7.0``); rules compare whole counts, so integral
    floats become ints and anything else is passed through for the range check to reject."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# --- fleet topology (issue 16) -------------------------------------------------------------------

#: Azure Backup support matrix (backup-support-matrix, "Machines in a vault"): "Up to 1,000 Azure
#: VMs in a single vault"; the Azure Backup FAQ says the same.
MAX_VMS_PER_VAULT: Final = 1000
#: Azure Backup FAQ ("How many policies can I create per vault?"): "up to 200 policies per vault".
#: No Microsoft page we found states a hard limit of VMs per policy (third-party blogs say 100 as a
#: recommendation), so none is enforced.
MAX_POLICIES_PER_VAULT: Final = 200


def check_vms_per_vault(count: int, setting: str) -> list[str]:
    if count <= MAX_VMS_PER_VAULT:
        return []
    return [
        f"{setting}: {count} VMs are assigned to this vault, which protects at most {MAX_VMS_PER_VAULT} Azure VMs: "
        "assign some to another vault of their region"
    ]


def check_policies_per_vault(count: int, setting: str) -> list[str]:
    if count <= MAX_POLICIES_PER_VAULT:
        return []
    return [f"{setting}: {count} policies, but a vault holds at most {MAX_POLICIES_PER_VAULT} backup policies"]


def check_vm_region(
    vm_location: str | None, vault_location: str | None, setting: str, vm_name: str, vault_key: str, vault_name: str
) -> list[str]:
    """Azure backs a VM up only to a vault of its own region (the support matrix: "back up Azure VMs
    ... in the same region as the vault"; Azure answers a 400 otherwise). Checked when both regions
    are known from config; ``VmProtection`` checks again against Azure before any change."""
    if not vm_location or not vault_location or vm_location.lower() == vault_location.lower():
        return []
    return [
        f"{setting}: {vm_name} is in {vm_location} but vault {vault_key} ({vault_name}) is in {vault_location}: "
        f"Azure Backup protects a VM only in a vault of its own region; assign it to a vault in {vm_location}"
    ]
