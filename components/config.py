"""Typed stack settings, parsed from the structured config in ``stacks/Pulumi.<env>.yaml``.

Parsing validates everything at once and raises one :class:`ValidationError` listing every
problem, before any resource is registered: a bad stack file fails ``pulumi preview`` with the
setting, the value and the allowed range, and nothing is half-created. Unknown keys are errors
too, because a misspelt ``softDeleteState`` would otherwise silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from components import validation as v
from components.tiers import FREQUENCIES, RETENTION_TIERS, schedule_frequency
from components.validation import AzureId, Frequency, PolicyType, ValidationError
from components.vault_operations import OPERATIONS_KEYS, OperationsSettings, parse_operations
from protectedvm import ids
from protectedvm.ids import VmRef

VerifyMode = Literal["none", "started", "completed"]


@dataclass(frozen=True)
class VaultSettings:
    """A Recovery Services vault, secure by default: nothing here needs to be set to be safe."""

    name: str = ""
    resource_group: str = ""
    location: str | None = None
    existing_id: str | None = None
    storage_redundancy: str = "GeoRedundant"
    cross_region_restore: bool = False
    soft_delete: str = "AlwaysON"
    soft_delete_retention_days: int = 14
    immutability: str = "Unlocked"
    public_network_access: str = "Disabled"
    #: Lock, alerts, reports, multi-user authorization, CMK, private endpoint (vault_operations.py).
    operations: OperationsSettings = field(default_factory=OperationsSettings)

    @property
    def reuses_existing(self) -> bool:
        return self.existing_id is not None


@dataclass(frozen=True)
class ScheduleSettings:
    frequency: Frequency = "Daily"
    time: str = "23:00"
    weekdays: tuple[str, ...] = ()
    hourly_interval: int | None = None
    hourly_window_hours: int | None = None


@dataclass(frozen=True)
class WeeklyRetention:
    count: int
    days: tuple[str, ...] = ("Sunday",)


@dataclass(frozen=True)
class MonthlyRetention:
    count: int
    weeks_of_month: tuple[str, ...] = ("First",)
    days: tuple[str, ...] = ("Sunday",)


@dataclass(frozen=True)
class YearlyRetention:
    count: int
    months: tuple[str, ...] = ("January",)
    weeks_of_month: tuple[str, ...] = ("First",)
    days: tuple[str, ...] = ("Sunday",)


@dataclass(frozen=True)
class RetentionSettings:
    daily: int | None = 30
    weekly: WeeklyRetention | None = None
    monthly: MonthlyRetention | None = None
    yearly: YearlyRetention | None = None


@dataclass(frozen=True)
class PolicySettings:
    name: str = ""
    existing_id: str | None = None
    policy_type: PolicyType = "V2"
    time_zone: str = "UTC"
    instant_restore_days: int = 2
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    @property
    def reuses_existing(self) -> bool:
        return self.existing_id is not None


@dataclass(frozen=True)
class InitialBackupSettings:
    """How the post-deploy hook proves the first recovery point exists."""

    verify: VerifyMode = "completed"
    retain_days: int = 30
    timeout_minutes: int = 120
    poll_seconds: int = 30

    def to_dict(self) -> dict[str, object]:
        return {
            "verify": self.verify,
            "retainDays": self.retain_days,
            "timeoutMinutes": self.timeout_minutes,
            "pollSeconds": self.poll_seconds,
        }

    @staticmethod
    def from_dict(raw: Mapping[str, object]) -> InitialBackupSettings:
        """Read settings back from resource inputs/state. The engine carries numbers as floats
        (``7.0``), so integral floats count as whole numbers here; stack config stays strict."""
        problems: list[str] = []
        engine_values = {key: v.as_count(value) for key, value in raw.items()}
        settings = _parse_initial_backup(engine_values, "initialBackup", problems)
        if problems:
            raise ValidationError(problems)
        return settings


@dataclass(frozen=True)
class VmTarget(VmRef):
    """A VM to protect, with the backup names Azure derives from it (:class:`protectedvm.ids.VmRef`),
    parsed from stack config: a bad id is a :class:`ValidationError` naming the setting."""

    @property
    def subscription(self) -> str:
        return self.subscription_id

    @staticmethod
    def from_id(vm_id: object, setting: str = "vms") -> VmTarget:
        ref: AzureId = v.parse_vm_id(vm_id, setting)
        return VmTarget(str(vm_id), ref.subscription, ref.resource_group, ref.name)


OnRemove = Literal["retainData", "deleteData"]
#: ``retainData`` (the default): stop protection and keep every recovery point; ``deleteData``:
#: Azure's "stop backup and delete backup data", only when a stack says so explicitly.
RETAIN_DATA: OnRemove = "retainData"
DELETE_DATA: OnRemove = "deleteData"
ON_REMOVE_VALUES: tuple[OnRemove, ...] = (RETAIN_DATA, DELETE_DATA)


@dataclass(frozen=True)
class StackSettings:
    vault: VaultSettings
    policy: PolicySettings
    vms: tuple[VmTarget, ...]
    initial_backup: InitialBackupSettings
    #: What removing a VM from the stack (or ``pulumi destroy``) does to its backups.
    on_remove: OnRemove = RETAIN_DATA
    #: Every vault, its policies and each VM's assignment; None for a stack built from
    #: ``vault``/``policy``/``vms`` alone (see :attr:`fleet`).
    topology: Topology | None = None

    @property
    def fleet(self) -> Topology:
        """The stack's vaults and assignments; the single-vault form is the one-vault case."""
        if self.topology is not None:
            return self.topology
        return single_vault_topology(self.vault, self.policy, tuple(VmAssignment(t) for t in self.vms))


_VAULT_KEYS = {
    "name",
    "resourceGroup",
    "location",
    "existingId",
    "storageRedundancy",
    "crossRegionRestore",
    "softDelete",
    "softDeleteRetentionDays",
    "immutability",
    "publicNetworkAccess",
    *OPERATIONS_KEYS,
}
_POLICY_KEYS = {"name", "existingId", "type", "timeZone", "instantRestoreDays", "schedule", "retention"}
_SCHEDULE_KEYS = {"frequency", "time", *(key for f in FREQUENCIES for key in f.only_keys)}
_RETENTION_KEYS: set[str] = {tier.key for tier in RETENTION_TIERS}
_INITIAL_BACKUP_KEYS = {"verify", "retainDays", "timeoutMinutes", "pollSeconds"}
#: Every key the program reads under the project's config namespace (``protected-vm:<key>``).
STACK_KEYS = ("vault", "policy", "vaults", "vms", "initialBackup", "onRemove")


def parse_config_values(values: Mapping[str, object], namespace: str) -> StackSettings:
    """Validate everything the engine hands the program under ``<namespace>:`` in one pass.

    ``values`` is the flat ``ns:key -> value`` map of the engine (structured values arrive as JSON
    text, scalars as plain text). Keys of other namespaces (``azure-native:location``) are not ours.
    Reading the raw text instead of ``pulumi.Config.get_object`` matters: ``get_object`` raises
    ``ConfigTypeError`` (a traceback-free but one-problem-only error) on any value that is not JSON,
    e.g. ``vms: /subscriptions/...`` given as a plain string, and a misspelt key is never read at all,
    so it would silently leave its setting at the default."""
    prefix = f"{namespace}:"
    problems: list[str] = []
    decoded: dict[str, object] = {}
    for full_key in sorted(k for k in values if k.startswith(prefix)):
        key = full_key[len(prefix) :]
        if key not in STACK_KEYS:
            known = [f"{prefix}{k}" for k in sorted(STACK_KEYS)]
            problems.append(
                f"{full_key} is not a known setting: known settings are {', '.join(known)}"
                + _did_you_mean(key, STACK_KEYS, prefix)
            )
            continue
        decoded[key] = _decode(values[full_key], key, problems)
    try:
        if "vaults" in decoded:
            settings = parse_fleet_settings(
                decoded,
                default_location=_text_or_none(values.get("azure-native:location")),
            )
        else:
            settings = parse_stack_settings(
                decoded.get("vault"),
                decoded.get("policy"),
                decoded.get("vms"),
                decoded.get("initialBackup"),
                on_remove=decoded.get("onRemove"),
                default_location=_text_or_none(values.get("azure-native:location")),
            )
    except ValidationError as error:
        problems.extend(error.problems)
    if problems:
        raise ValidationError(problems)
    return settings


def _decode(raw: object, setting: str, problems: list[str]) -> object:
    """The engine's text for one setting -> its value: JSON when it parses, else the text itself
    (a plain string such as ``completed`` then fails the setting's own type check, with its name)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except RecursionError:
        problems.append(f"{setting} is nested too deeply to be a setting of this project")
        return _UNREADABLE
    except ValueError:
        return raw


class _Unreadable:
    """A setting whose problem is already reported: its section is skipped, not re-reported as
    missing or mistyped."""

    def __repr__(self) -> str:
        return "<unreadable>"


_UNREADABLE = _Unreadable()


def _did_you_mean(key: str, known: Sequence[str] | set[str], prefix: str = "") -> str:
    """``; did you mean X?`` for the closest known key (case-insensitive), or nothing."""
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {prefix}{lowered[close[0]]}?" if close else ""


def parse_stack_settings(
    vault: object,
    policy: object,
    vms: object,
    initial_backup: object = None,
    *,
    on_remove: object = None,
    default_location: str | None = None,
) -> StackSettings:
    """Parse and validate the whole stack config; raise once with every problem. Each argument
    is whatever the stack file held: a wrong type is a listed problem, never a TypeError."""
    problems: list[str] = []
    # A section of the wrong type is one problem; its settings are not then also reported missing.
    vault_raw = _section(vault, "vault", problems)
    vault_settings = VaultSettings() if vault_raw is None else _parse_vault(vault_raw, "vault", problems)
    policy_raw = _section(policy, "policy", problems)
    policy_settings = PolicySettings() if policy_raw is None else _parse_policy(policy_raw, "policy", problems)
    entries = () if isinstance(vms, _Unreadable) else _parse_vm_entries(vms, "vms", None, problems)
    initial, removal = _parse_common(initial_backup, on_remove, problems)
    topology = single_vault_topology(vault_settings, policy_settings, entries)
    problems.extend(check_topology(topology, default_location, fleet_form=False))
    if problems:
        raise ValidationError(problems)
    return StackSettings(
        vault_settings, policy_settings, tuple(entry.target for entry in entries), initial, removal, topology
    )


def _parse_common(
    initial_backup: object, on_remove: object, problems: list[str]
) -> tuple[InitialBackupSettings, OnRemove]:
    """``initialBackup`` and ``onRemove``: the same in the single-vault and the fleet form."""
    initial_raw = _section(initial_backup, "initialBackup", problems)
    initial = (
        InitialBackupSettings()
        if initial_raw is None
        else _parse_initial_backup(initial_raw, "initialBackup", problems)
    )
    removal = RETAIN_DATA if on_remove is None or isinstance(on_remove, _Unreadable) else on_remove
    if removal not in ON_REMOVE_VALUES:
        problems.append(
            f"onRemove = {on_remove!r} is not allowed: use {RETAIN_DATA} (default: stop protection and keep "
            f"the recovery points) or {DELETE_DATA} (stop protection and delete the backup data)"
        )
        removal = RETAIN_DATA
    return initial, removal


@dataclass(frozen=True)
class SectionSettings:
    """The sections a component's args gave, parsed; each None when the args did not give it."""

    vault: VaultSettings | None = None
    policy: PolicySettings | None = None
    initial_backup: InitialBackupSettings | None = None
    disks: DiskSelection | None = None
    on_remove: OnRemove | None = None


def parse_sections(
    *,
    vault: object = None,
    policy: object = None,
    initial_backup: object = None,
    disks: object = None,
    on_remove: object = None,
) -> SectionSettings:
    """Sections of the stack file given one by one, as the multi-language components take them
    (``components.package``): the same parsers, rules and messages as :func:`parse_stack_settings`,
    with settings named as the component's inputs (``vault.softDeleteRetentionDays``), every problem
    at once in one :class:`ValidationError`."""
    problems: list[str] = []
    vault_raw = _section(vault, "vault", problems) if vault is not None else None
    policy_raw = _section(policy, "policy", problems) if policy is not None else None
    parsed_vault = _parse_vault(vault_raw, "vault", problems) if vault_raw is not None else None
    parsed_policy = _parse_policy(policy_raw, "policy", problems) if policy_raw is not None else None
    initial, removal = _parse_common(initial_backup, on_remove, problems)
    selection = _parse_disks(disks, "disks", problems) if disks is not None else None
    if problems:
        raise ValidationError(problems)
    return SectionSettings(
        parsed_vault,
        parsed_policy,
        initial if initial_backup is not None else None,
        selection,
        removal if on_remove is not None else None,
    )


def _unknown_keys(raw: Mapping[str, object], known: set[str], setting: str) -> list[str]:
    return [
        f"{setting}.{key} is not a known setting: known settings are {', '.join(sorted(known))}"
        + _did_you_mean(str(key), known)
        for key in raw
        if key not in known
    ]


def _section(raw: object, setting: str, problems: list[str]) -> Mapping[str, object] | None:
    """A top-level section as a mapping, or None when it is unusable (the problem is recorded)."""
    if isinstance(raw, _Unreadable):
        return None
    found: list[str] = []
    section = _mapping(raw, setting, found)
    problems.extend(found)
    return None if found else section


def _mapping(raw: object, setting: str, problems: list[str]) -> Mapping[str, object]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"{setting} = {raw!r} must be an object")
        return {}
    if not all(isinstance(key, str) for key in raw):
        problems.append(f"{setting} = {raw!r} must be an object whose keys are setting names")
        return {}
    return cast(Mapping[str, object], raw)


def _str(raw: Mapping[str, object], key: str, setting: str, default: str, problems: list[str]) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        problems.append(f"{setting}.{key} = {value!r} must be a string")
        return default
    return value


def _unset_or_text(raw: Mapping[str, object], key: str) -> bool:
    """A required text setting of the wrong type is reported once (by :func:`_str`), not also as missing."""
    return isinstance(raw.get(key, ""), str) or raw.get(key) is None


def _names(
    raw: object, setting: str, allowed: tuple[str, ...], default: tuple[str, ...], problems: list[str]
) -> tuple[str, ...]:
    if raw is None:
        return default
    found = v.check_choices(raw, setting, allowed)
    problems.extend(found)
    return tuple(cast(Sequence[str], raw)) if not found else default


def _parse_vault(raw: Mapping[str, object], setting: str, problems: list[str]) -> VaultSettings:
    problems.extend(_unknown_keys(raw, _VAULT_KEYS, setting))
    existing = raw.get("existingId")
    if existing is not None:
        try:
            ref = v.parse_vault_id(existing, f"{setting}.existingId")
        except ValidationError as err:
            problems.extend(err.problems)
            return VaultSettings()
        return VaultSettings(name=ref.name, resource_group=ref.resource_group, existing_id=str(existing))
    defaults = VaultSettings()
    name = _str(raw, "name", setting, "", problems)
    if not name:
        if _unset_or_text(raw, "name"):
            problems.append(
                f"{setting}.name is required (2-50 letters, digits and hyphens) unless {setting}.existingId is set"
            )
    elif not (2 <= len(name) <= 50 and name[0].isalpha() and all(c.isalnum() or c == "-" for c in name)):
        problems.append(
            f"{setting}.name = {name!r} is not a valid vault name: "
            "2-50 letters, digits and hyphens, starting with a letter"
        )
    resource_group = _str(raw, "resourceGroup", setting, "", problems)
    if not resource_group and _unset_or_text(raw, "resourceGroup"):
        problems.append(f"{setting}.resourceGroup is required unless {setting}.existingId is set")
    redundancy = raw.get("storageRedundancy", defaults.storage_redundancy)
    problems.extend(v.check_choice(redundancy, f"{setting}.storageRedundancy", v.STORAGE_REDUNDANCIES))
    crr = raw.get("crossRegionRestore", defaults.cross_region_restore)
    if not isinstance(crr, bool):
        problems.append(f"{setting}.crossRegionRestore = {crr!r} must be true or false")
        crr = False
    problems.extend(v.check_cross_region_restore(crr, redundancy, f"{setting}.crossRegionRestore"))
    soft_delete = raw.get("softDelete", defaults.soft_delete)
    problems.extend(v.check_choice(soft_delete, f"{setting}.softDelete", v.SOFT_DELETE_STATES))
    sd_days = raw.get("softDeleteRetentionDays", defaults.soft_delete_retention_days)
    low, high = v.SOFT_DELETE_RETENTION_LIMITS
    problems.extend(v.check_int_range(sd_days, f"{setting}.softDeleteRetentionDays", low, high, "days"))
    immutability = raw.get("immutability", defaults.immutability)
    problems.extend(v.check_choice(immutability, f"{setting}.immutability", v.IMMUTABILITY_STATES))
    pna = raw.get("publicNetworkAccess", defaults.public_network_access)
    problems.extend(v.check_choice(pna, f"{setting}.publicNetworkAccess", v.PUBLIC_NETWORK_ACCESS))
    location = raw.get("location")
    if location is not None and not isinstance(location, str):
        problems.append(f"{setting}.location = {location!r} must be a string (an Azure region such as westeurope)")
        location = None
    operations = parse_operations(raw, setting, pna, problems)
    return VaultSettings(
        name=name,
        resource_group=resource_group,
        location=str(location) if location else None,
        storage_redundancy=str(redundancy),
        cross_region_restore=crr,
        soft_delete=str(soft_delete),
        soft_delete_retention_days=sd_days if isinstance(sd_days, int) else defaults.soft_delete_retention_days,
        immutability=str(immutability),
        public_network_access=str(pna),
        operations=operations,
    )


def _parse_policy(raw: Mapping[str, object], setting: str, problems: list[str]) -> PolicySettings:
    problems.extend(_unknown_keys(raw, _POLICY_KEYS, setting))
    existing = raw.get("existingId")
    if existing is not None:
        found = v.check_policy_id(existing, f"{setting}.existingId")
        problems.extend(found)
        parts = ids.match_id(existing, ids.POLICY_ID)
        name = parts.name if parts is not None else ""
        return PolicySettings(name=name, existing_id=str(existing))
    defaults = PolicySettings()
    name = _str(raw, "name", setting, "", problems)
    if not name and _unset_or_text(raw, "name"):
        problems.append(f"{setting}.name is required unless {setting}.existingId is set")
    policy_type, found = v.normalize_policy_type(raw.get("type", "Enhanced"), f"{setting}.type")
    problems.extend(found)
    ptype: PolicyType = policy_type or defaults.policy_type
    time_zone = _str(raw, "timeZone", setting, defaults.time_zone, problems)
    schedule = _parse_schedule(
        _mapping(raw.get("schedule"), f"{setting}.schedule", problems), ptype, f"{setting}.schedule", problems
    )
    retention = _parse_retention(
        _mapping(raw.get("retention"), f"{setting}.retention", problems), ptype, f"{setting}.retention", problems
    )
    problems.extend(
        v.check_schedule_retention(
            schedule.frequency,
            [t.key for t in RETENTION_TIERS if getattr(retention, t.key) is not None],
            f"{setting}.retention",
        )
    )
    entry = schedule_frequency(schedule.frequency)
    fixed_irp = entry.v1_instant_restore_days if entry is not None and ptype == "V1" else None
    irp_default = fixed_irp if fixed_irp is not None else defaults.instant_restore_days
    irp = raw.get("instantRestoreDays", irp_default)
    problems.extend(v.check_instant_restore_days(irp, ptype, schedule.frequency, f"{setting}.instantRestoreDays"))
    return PolicySettings(
        name=name,
        policy_type=ptype,
        time_zone=time_zone,
        instant_restore_days=irp if isinstance(irp, int) else irp_default,
        schedule=schedule,
        retention=retention,
    )


def _parse_schedule(
    raw: Mapping[str, object], ptype: PolicyType, setting: str, problems: list[str]
) -> ScheduleSettings:
    problems.extend(_unknown_keys(raw, _SCHEDULE_KEYS, setting))
    frequency = raw.get("frequency", "Daily")
    found = v.check_frequency_for_policy_type(frequency, ptype, f"{setting}.frequency")
    problems.extend(found)
    entry = schedule_frequency(frequency) or FREQUENCIES[0]
    freq: Frequency = entry.key
    time = raw.get("time", "23:00")
    problems.extend(v.check_backup_time(time, f"{setting}.time"))
    weekdays: tuple[str, ...] = ()
    interval: int | None = None
    window: int | None = None
    # Each frequency's own keys (components.tiers), in registry order; another frequency's are refused.
    for other in FREQUENCIES:
        if other is not entry:
            problems.extend(
                f"{setting}.{key} is only allowed with frequency {other.key} (frequency is {freq})"
                for key in other.only_keys
                if key in raw
            )
        elif entry.run_days:
            weekdays = _names(raw.get("weekdays"), f"{setting}.weekdays", v.WEEKDAYS, ("Sunday",), problems)
        elif entry.hourly:
            raw_interval = raw.get("hourlyInterval", 4)
            problems.extend(v.check_hourly_interval(raw_interval, f"{setting}.hourlyInterval"))
            raw_window = raw.get("hourlyWindowHours", 24)
            problems.extend(v.check_hourly_window(raw_window, f"{setting}.hourlyWindowHours"))
            problems.extend(v.check_hourly_window_multiple(raw_window, raw_interval, f"{setting}.hourlyWindowHours"))
            interval = raw_interval if isinstance(raw_interval, int) else None
            window = raw_window if isinstance(raw_window, int) else None
    return ScheduleSettings(freq, str(time), weekdays, interval, window)


def _count(raw: object, tier: v.Tier, ptype: PolicyType, setting: str, problems: list[str]) -> int:
    """Returns 0 for an invalid count: the tier stays "present" for the cross-checks while the
    recorded problem guarantees the placeholder is never deployed."""
    found = v.check_retention_count(raw, tier, ptype, setting)
    problems.extend(found)
    return cast(int, raw) if not found else 0


def _tier_settings_classes() -> dict[str, type]:
    """The settings class of each tier, from :class:`RetentionSettings`' own annotations
    (``weekly: WeeklyRetention | None``): a tier given as a bare count (daily) maps to ``int``."""
    hints = typing.get_type_hints(RetentionSettings)
    return {key: next(a for a in typing.get_args(hint) if a is not type(None)) for key, hint in hints.items()}


_TIER_SETTINGS = _tier_settings_classes()


def _parse_retention(
    raw: Mapping[str, object], ptype: PolicyType, setting: str, problems: list[str]
) -> RetentionSettings:
    """Every tier of the registry (``components.tiers``): a bare count, or ``{count, <selectors>}``
    whose settings class takes ``(count, *selectors)`` in the registry's selector order."""
    problems.extend(_unknown_keys(raw, _RETENTION_KEYS, setting))
    values: dict[str, object] = {f.name: None for f in dataclasses.fields(RetentionSettings)}
    for tier in RETENTION_TIERS:
        if raw.get(tier.key) is None:
            continue
        tier_setting = f"{setting}.{tier.key}"
        if not tier.selectors:
            values[tier.key] = _count(raw[tier.key], tier.key, ptype, tier_setting, problems)
            continue
        section = _mapping(raw[tier.key], tier_setting, problems)
        known = {"count", *(selector.key for selector in tier.selectors)}
        problems.extend(_unknown_keys(section, known, tier_setting))
        count = _count(section.get("count"), tier.key, ptype, f"{tier_setting}.count", problems)
        chosen = [
            _names(section.get(sel.key), f"{tier_setting}.{sel.key}", sel.allowed, sel.default, problems)
            for sel in tier.selectors
        ]
        values[tier.key] = _TIER_SETTINGS[tier.key](count, *chosen)
    return RetentionSettings(**values)  # type: ignore[arg-type]


def _parse_initial_backup(raw: Mapping[str, object], setting: str, problems: list[str]) -> InitialBackupSettings:
    problems.extend(_unknown_keys(raw, _INITIAL_BACKUP_KEYS, setting))
    defaults = InitialBackupSettings()
    verify = raw.get("verify", defaults.verify)
    problems.extend(v.check_choice(verify, f"{setting}.verify", v.VERIFY_MODES))
    limits = {
        "retainDays": (v.INITIAL_BACKUP_RETAIN_DAYS_LIMITS, "days", defaults.retain_days),
        "timeoutMinutes": (v.INITIAL_BACKUP_TIMEOUT_MINUTES_LIMITS, "minutes", defaults.timeout_minutes),
        "pollSeconds": (v.INITIAL_BACKUP_POLL_SECONDS_LIMITS, "seconds", defaults.poll_seconds),
    }
    values: dict[str, int] = {}
    for key, ((low, high), unit, default) in limits.items():
        value = raw.get(key, default)
        found = v.check_int_range(value, f"{setting}.{key}", low, high, unit)
        problems.extend(found)
        values[key] = cast(int, value) if not found else default
    return InitialBackupSettings(
        verify=cast(VerifyMode, verify) if verify in v.VERIFY_MODES else defaults.verify,
        retain_days=values["retainDays"],
        timeout_minutes=values["timeoutMinutes"],
        poll_seconds=values["pollSeconds"],
    )


# --- fleet topology (issue 16): several vaults, several policies per vault, per-VM options ------

#: The vault and policy key of the single-vault form (``protected-vm:vault`` + ``protected-vm:policy``).
#: Resources of this key keep the names they had before fleets (``components.program``), so a
#: ``protected-vm:vaults`` entry keyed ``default`` with a policy keyed ``default`` is today's stack.
DEFAULT_KEY = "default"
#: Keys become parts of Pulumi resource names (``backup-<vault>-policy-<policy>``): short and plain.
_KEY = re.compile(r"^[a-z][a-z0-9-]{0,23}\Z")
_KEY_RULE = "1-24 lower-case letters, digits and hyphens, starting with a letter"
#: Azure region names as ARM spells them (``westeurope``, ``eastus2``); display names are not accepted.
_REGION = re.compile(r"^[a-z][a-z0-9]{2,30}\Z")
_FLEET_VAULT_KEYS = {"policies", "defaultPolicy"}
_FLEET_POLICY_KEYS = {"tier"}
_VM_ENTRY_KEYS = {"id", "vault", "policy", "disks", "location"}
_DISK_KEYS = ("include", "exclude", "osDiskOnly")
#: Data disk LUNs: azurerm ``azurerm_backup_protected_vm`` validates ``include_disk_luns`` /
#: ``exclude_disk_luns`` items with ``IntAtLeast(0)``. The upper bound is ours: the largest Azure VM
#: sizes take 64 data disks (docs "Sizes for virtual machines"), so LUNs 0-63; no source states
#: the backup service's own bound.
DATA_DISK_LUN_LIMITS = (0, 63)


@dataclass(frozen=True)
class DiskSelection:
    """Selective disk backup, as Azure's ``extendedProperties.diskExclusionProperties`` on the
    protected item (``AzureIaaSComputeVMProtectedItem``; azure-native ``DiskExclusionPropertiesArgs``):
    ``diskLunList`` with ``isInclusionList`` true backs up the OS disk and those data disks only,
    false backs up every disk but those. azurerm sends exactly this (``expandDiskExclusion``:
    ``include_disk_luns`` -> true, ``exclude_disk_luns`` -> false, the two conflict). OS disk only
    is an inclusion list with no LUN (Azure CLI ``--exclude-all-data-disks``; that this is its body
    is our reading of the docs' "Selective disk backup" page, not a published example)."""

    luns: tuple[int, ...]
    is_inclusion_list: bool

    def to_azure(self) -> dict[str, object]:
        return {"diskLunList": list(self.luns), "isInclusionList": self.is_inclusion_list}

    def describe(self) -> str:
        if self.is_inclusion_list:
            return "OS disk only" if not self.luns else "OS + LUN " + ",".join(map(str, self.luns))
        return "all but LUN " + ",".join(map(str, self.luns))


@dataclass(frozen=True)
class FleetPolicy:
    key: str
    settings: PolicySettings
    #: The policy pack's tier label (``tier``, default the key); None in the single-vault form,
    #: whose policy carries no tier tag (its inputs stay exactly as before fleets).
    tier: str | None = None


@dataclass(frozen=True)
class FleetVault:
    key: str
    settings: VaultSettings
    policies: tuple[FleetPolicy, ...]
    default_policy: str | None = None

    def policy(self, key: str) -> FleetPolicy | None:
        return next((p for p in self.policies if p.key == key), None)


@dataclass(frozen=True)
class VmAssignment:
    """One VM, the vault and policy (keys) protecting it, and its per-VM options."""

    target: VmTarget
    vault: str = DEFAULT_KEY
    policy: str = DEFAULT_KEY
    disks: DiskSelection | None = None
    #: The VM's region when the stack file says it (then checked against the vault's at preview).
    location: str | None = None
    #: Where the entry is in the stack file (``vms[3]``), for messages.
    setting: str = field(default="vms", compare=False)


@dataclass(frozen=True)
class Topology:
    vaults: tuple[FleetVault, ...]
    vms: tuple[VmAssignment, ...]

    def vault(self, key: str) -> FleetVault:
        return next(v for v in self.vaults if v.key == key)

    def vms_of(self, vault_key: str) -> tuple[VmAssignment, ...]:
        return tuple(vm for vm in self.vms if vm.vault == vault_key)


def single_vault_topology(
    vault: VaultSettings, policy: PolicySettings, vms: tuple[VmAssignment, ...]
) -> Topology:
    """The single-vault form as a fleet of one: vault and policy keyed :data:`DEFAULT_KEY`."""
    fleet_vault = FleetVault(DEFAULT_KEY, vault, (FleetPolicy(DEFAULT_KEY, policy),), DEFAULT_KEY)
    return Topology(
        (fleet_vault,), tuple(dataclasses.replace(vm, vault=DEFAULT_KEY, policy=DEFAULT_KEY) for vm in vms)
    )


def _text_or_none(raw: object) -> str | None:
    return raw if isinstance(raw, str) and raw else None


def parse_fleet_settings(decoded: Mapping[str, object], *, default_location: str | None = None) -> StackSettings:
    """The fleet form: ``protected-vm:vaults`` declares every vault with its policies, and
    ``protected-vm:vms`` entries name their vault and policy (or take the vault's default)."""
    problems: list[str] = []
    for legacy in ("vault", "policy"):
        if legacy in decoded:
            problems.append(
                f"{legacy} and vaults cannot both be set: vaults declares every vault and its policies "
                f"(vaults.<key>.policies); move protected-vm:{legacy} into it"
            )
    vaults = _parse_fleet_vaults(decoded.get("vaults"), "vaults", problems)
    vms = decoded.get("vms")
    entries = () if isinstance(vms, _Unreadable) else _parse_vm_entries(vms, "vms", vaults, problems)
    initial, removal = _parse_common(decoded.get("initialBackup"), decoded.get("onRemove"), problems)
    topology = Topology(vaults, entries)
    problems.extend(check_topology(topology, default_location, fleet_form=True))
    if problems:
        raise ValidationError(problems)
    first = vaults[0]
    first_policy = first.policy(first.default_policy or "") or first.policies[0]
    return StackSettings(
        first.settings,
        first_policy.settings,
        tuple(entry.target for entry in entries),
        initial,
        removal,
        topology,
    )


def _bad_key(key: str) -> bool:
    return not _KEY.match(key)


def _parse_fleet_vaults(raw: object, setting: str, problems: list[str]) -> tuple[FleetVault, ...]:
    if isinstance(raw, _Unreadable):
        return ()
    if not isinstance(raw, Mapping) or not raw or not all(isinstance(k, str) for k in raw):
        problems.append(
            f"{setting} = {raw!r} must be a non-empty object of vaults by key, e.g. "
            "{weu: {name: rsv-weu, resourceGroup: rg-backup, location: westeurope, policies: {gold: {...}}}}"
        )
        return ()
    vaults: list[FleetVault] = []
    for key, value in cast(Mapping[str, object], raw).items():
        vault_setting = f"{setting}.{key}"
        if _bad_key(key):
            problems.append(f"{vault_setting} is not a valid vault key: {_KEY_RULE}")
            continue
        before = len(problems)
        section = _mapping(value, vault_setting, problems)
        if len(problems) > before:  # not an object: its settings are not then also reported missing
            continue
        known = _VAULT_KEYS | _FLEET_VAULT_KEYS
        problems.extend(_unknown_keys({k: v for k, v in section.items() if k not in known}, known, vault_setting))
        settings = _parse_vault({k: v for k, v in section.items() if k in _VAULT_KEYS}, vault_setting, problems)
        policies = _parse_fleet_policies(section.get("policies"), f"{vault_setting}.policies", problems)
        default = section.get("defaultPolicy")
        keys = [p.key for p in policies]
        if default is not None and policies and (not isinstance(default, str) or default not in keys):
            problems.append(
                f"{vault_setting}.defaultPolicy = {default!r} is not a policy of vault {key}: its policies are "
                f"{', '.join(sorted(keys)) or '(none)'}"
                + (_did_you_mean(default, keys) if isinstance(default, str) else "")
            )
            default = None
        if default is None and len(policies) == 1:
            default = policies[0].key
        vaults.append(FleetVault(key, settings, policies, default if default in keys else None))
    return tuple(vaults)


def _parse_fleet_policies(raw: object, setting: str, problems: list[str]) -> tuple[FleetPolicy, ...]:
    if not isinstance(raw, Mapping) or not raw or not all(isinstance(k, str) for k in raw):
        problems.append(
            f"{setting} = {raw!r} must be a non-empty object of backup policies by key, e.g. "
            "{gold: {type: Enhanced, schedule: {...}, retention: {...}}}"
            if raw is not None
            else f"{setting} is required: an object of backup policies by key, e.g. "
            "{silver: {retention: {daily: 30}}}"
        )
        return ()
    policies: list[FleetPolicy] = []
    for key, value in cast(Mapping[str, object], raw).items():
        policy_setting = f"{setting}.{key}"
        if _bad_key(key):
            problems.append(f"{policy_setting} is not a valid policy key: {_KEY_RULE}")
            continue
        before = len(problems)
        section = _mapping(value, policy_setting, problems)
        if len(problems) > before:
            continue
        tier = section.get("tier", key)
        if not isinstance(tier, str) or _bad_key(tier):
            problems.append(f"{policy_setting}.tier = {tier!r} is not a valid tier label: {_KEY_RULE}")
            tier = key
        body = {"name": key, **{k: v for k, v in section.items() if k not in _FLEET_POLICY_KEYS}}
        if "existingId" in section:
            body.pop("name")
        known = _POLICY_KEYS | _FLEET_POLICY_KEYS
        problems.extend(_unknown_keys({k: v for k, v in body.items() if k not in known}, known, policy_setting))
        settings = _parse_policy({k: v for k, v in body.items() if k in _POLICY_KEYS}, policy_setting, problems)
        policies.append(FleetPolicy(key, settings, str(tier)))
    return tuple(policies)


def _parse_vm_entries(
    raw: object, setting: str, vaults: tuple[FleetVault, ...] | None, problems: list[str]
) -> tuple[VmAssignment, ...]:
    """``vms``: ids, or ``{id, vault, policy, disks, location}`` objects. ``vaults`` is None in the
    single-vault form, where an entry cannot name a vault or policy."""
    if raw is None:
        problems.append(f"{setting} is required: a non-empty list of virtual machine resource ids")
        return ()
    if not isinstance(raw, (list, tuple)) or not raw:
        problems.append(f"{setting} = {raw!r} must be a non-empty list of virtual machine resource ids")
        return ()
    entries: list[VmAssignment] = []
    seen: dict[str, tuple[int, str]] = {}
    for index, entry in enumerate(raw):
        item_setting = f"{setting}[{index}]"
        assignment = _parse_vm_entry(entry, item_setting, vaults, problems)
        if assignment is None:
            continue
        vm_id = assignment.target.vm_id
        key = vm_id.lower()
        if key in seen:
            first, first_vault = seen[key]
            where = (
                f" (by one vault: {setting}[{first}] assigns it to vault {first_vault}, this entry to vault "
                f"{assignment.vault})"
                if first_vault != assignment.vault
                else ""
            )
            problems.append(f"{item_setting} = {vm_id!r} repeats {setting}[{first}]: each VM is protected once{where}")
            continue
        seen[key] = (index, assignment.vault)
        entries.append(assignment)
    return tuple(entries)


def _parse_vm_entry(
    entry: object, setting: str, vaults: tuple[FleetVault, ...] | None, problems: list[str]
) -> VmAssignment | None:
    if isinstance(entry, Mapping):
        if not all(isinstance(k, str) for k in entry):
            problems.append(f"{setting} = {entry!r} must be an object whose keys are setting names")
            return None
        section = cast(Mapping[str, object], entry)
        before = len(problems)
        problems.extend(_unknown_keys(section, _VM_ENTRY_KEYS, setting))
        vm_id = section.get("id")
        if vm_id is None:
            problems.append(f"{setting}.id is required: the virtual machine resource id")
        else:
            problems.extend(v.check_vm_id(vm_id, f"{setting}.id"))
        vault_key, policy_key = _assign(section, setting, vaults, problems)
        disks = _parse_disks(section["disks"], f"{setting}.disks", problems) if "disks" in section else None
        location = section.get("location")
        if location is not None and (not isinstance(location, str) or not _REGION.match(location)):
            problems.append(
                f"{setting}.location = {location!r} is not an Azure region name: lower-case letters and digits "
                "as ARM spells it, e.g. westeurope"
            )
            location = None
        if len(problems) > before:
            return None
        return VmAssignment(
            VmTarget.from_id(str(vm_id), f"{setting}.id"),
            vault_key,
            policy_key,
            disks,
            location,
            setting,
        )
    found = v.check_vm_id(entry, setting)
    if found:
        problems.extend(found)
        return None
    if vaults is None:
        return VmAssignment(VmTarget.from_id(str(entry), setting), setting=setting)
    if len(vaults) != 1:
        if vaults:
            problems.append(
                f"{setting} = {entry!r} must name its vault: this stack has {len(vaults)} vaults "
                f"({', '.join(vt.key for vt in vaults)}); write {{id: <vm id>, vault: <key>}}"
            )
        return None
    only = vaults[0]
    if only.default_policy is None:
        if only.policies:  # else reported once, at the vault
            problems.append(_no_default_policy(setting, only))
        return None
    return VmAssignment(VmTarget.from_id(str(entry), setting), only.key, only.default_policy, setting=setting)


def _no_default_policy(setting: str, vault: FleetVault) -> str:
    return (
        f"{setting} names no policy and vault {vault.key} has no defaultPolicy: set {setting}.policy or "
        f"vaults.{vault.key}.defaultPolicy to one of {', '.join(sorted(p.key for p in vault.policies))}"
    )


def _assign(
    section: Mapping[str, object], setting: str, vaults: tuple[FleetVault, ...] | None, problems: list[str]
) -> tuple[str, str]:
    """The (vault, policy) keys an entry names, resolved against the declared vaults."""
    if vaults is None:
        for key in ("vault", "policy"):
            if key in section:
                problems.append(
                    f"{setting}.{key} needs protected-vm:vaults: this stack declares its one vault and policy in "
                    "protected-vm:vault and protected-vm:policy"
                )
        return DEFAULT_KEY, DEFAULT_KEY
    keys = [vt.key for vt in vaults]
    raw_vault = section.get("vault")
    if raw_vault is None:
        if len(vaults) != 1:
            if vaults:
                problems.append(
                    f"{setting}.vault is required: this stack has {len(vaults)} vaults ({', '.join(keys)})"
                )
            return "", ""
        vault = vaults[0]
    else:
        match = next((vt for vt in vaults if vt.key == raw_vault), None)
        if match is None:
            if vaults:
                problems.append(
                    f"{setting}.vault = {raw_vault!r} is not a vault of this stack: its vaults are "
                    f"{', '.join(sorted(keys))}"
                    + (_did_you_mean(raw_vault, keys) if isinstance(raw_vault, str) else "")
                )
            return "", ""
        vault = match
    raw_policy = section.get("policy")
    if not vault.policies:  # reported once, at the vault
        return vault.key, ""
    if raw_policy is None:
        if vault.default_policy is None:
            problems.append(_no_default_policy(setting, vault))
            return vault.key, ""
        return vault.key, vault.default_policy
    policy_keys = [p.key for p in vault.policies]
    if not isinstance(raw_policy, str) or raw_policy not in policy_keys:
        problems.append(
            f"{setting}.policy = {raw_policy!r} is not a policy of vault {vault.key}: its policies are "
            f"{', '.join(sorted(policy_keys))}"
            + (_did_you_mean(raw_policy, policy_keys) if isinstance(raw_policy, str) else "")
        )
        return vault.key, ""
    return vault.key, raw_policy


def _parse_disks(raw: object, setting: str, problems: list[str]) -> DiskSelection | None:
    """``{include: [LUN...]}``, ``{exclude: [LUN...]}`` or ``{osDiskOnly: true}``; see :class:`DiskSelection`."""
    shape = (
        f"{setting} = {raw!r} must be an object with one of include (data disk LUNs to back up with the OS disk), "
        "exclude (data disk LUNs to skip) or osDiskOnly: true"
    )
    if not isinstance(raw, Mapping) or not raw or not all(isinstance(k, str) for k in raw):
        problems.append(shape)
        return None
    section = cast(Mapping[str, object], raw)
    unknown = _unknown_keys(section, set(_DISK_KEYS), setting)
    if unknown:
        problems.extend(unknown)
        return None
    chosen = [key for key in _DISK_KEYS if key in section]
    if len(chosen) > 1:
        problems.append(
            f"{setting} sets {' and '.join(chosen)}: choose one of include, exclude, osDiskOnly (Azure's "
            "diskExclusionProperties is one LUN list, either included or excluded)"
        )
        return None
    key = chosen[0]
    if key == "osDiskOnly":
        value = section[key]
        if value is not True:
            problems.append(
                f"{setting}.osDiskOnly = {value!r} must be true (leave disks out to back up every disk)"
            )
            return None
        return DiskSelection((), True)
    luns = section[key]
    if not isinstance(luns, list) or not luns:
        problems.append(
            f"{setting}.{key} = {luns!r} must be a non-empty list of data disk LUNs"
            + (" (use osDiskOnly: true to back up the OS disk alone)" if key == "include" else "")
        )
        return None
    low, high = DATA_DISK_LUN_LIMITS
    found: list[int] = []
    before = len(problems)
    for index, lun in enumerate(luns):
        if isinstance(lun, bool) or not isinstance(lun, int) or not low <= lun <= high:
            problems.append(f"{setting}.{key}[{index}] = {lun!r} is not a data disk LUN: a whole number {low}-{high}")
        elif lun in found:
            problems.append(f"{setting}.{key}[{index}] = {lun} repeats LUN {lun}")
        else:
            found.append(lun)
    if len(problems) > before:
        return None
    return DiskSelection(tuple(sorted(found)), key == "include")


def check_topology(topology: Topology, default_location: str | None, *, fleet_form: bool) -> list[str]:
    """Rules over the whole fleet, each problem listed: a VM in another region than its vault
    (when the entry says its ``location``), Azure's per-vault limits, one Azure vault declared twice.
    The single-vault form's VM limit stays with ``components.program.check_vm_list``."""
    problems: list[str] = []
    seen_vaults: dict[tuple[str, str], str] = {}
    for vault in topology.vaults:
        settings = vault.settings
        where = (settings.resource_group.lower(), settings.name.lower())
        if settings.name and where in seen_vaults:
            problems.append(
                f"vaults.{vault.key} and vaults.{seen_vaults[where]} are both vault {settings.resource_group}/"
                f"{settings.name}: declare each vault once and give it several policies"
            )
        seen_vaults.setdefault(where, vault.key)
        problems.extend(v.check_policies_per_vault(len(vault.policies), f"vaults.{vault.key}.policies"))
        names: dict[str, str] = {}
        for policy in vault.policies:
            name = policy.settings.name.lower()
            if name and name in names and not policy.settings.reuses_existing:
                problems.append(
                    f"vaults.{vault.key}.policies.{policy.key} and vaults.{vault.key}.policies.{names[name]} are "
                    f"both policy {policy.settings.name!r} in vault {vault.key}: give each its own name"
                )
            names.setdefault(name, policy.key)
        members = topology.vms_of(vault.key)
        if fleet_form:
            problems.extend(v.check_vms_per_vault(len(members), f"vaults.{vault.key}"))
        region = None if settings.reuses_existing else (settings.location or default_location)
        for vm in members:
            problems.extend(
                v.check_vm_region(vm.location, region, vm.setting, vm.target.name, vault.key, settings.name)
            )
    return problems
