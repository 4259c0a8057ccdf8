"""Per-environment requirements: the typed form of each policy's config in ``config.<env>.json``.

Environments differ by config, never by code, so every bound a policy enforces lives here with
its default and its JSON schema. The CLI fills schema defaults before the pack sees the config,
but tests and the offline runner pass config directly, so parsing applies the same defaults
(one source: the ``default`` in each schema below).

The CLI only checks config against the schema's types; it accepts unknown keys. A misspelt
``minimun`` would silently disable a bound, so parsing here rejects unknown keys and wrong types
and the policies report that as a violation instead of passing quietly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from components import validation as v
from components.tiers import RETENTION_TIERS
from components.validation import Tier
from protectedvm.ids import VM_TYPE as VM_TYPE  # the policies' config names VMs of this type

TIERS: Final[tuple[Tier, ...]] = tuple(tier.key for tier in RETENTION_TIERS)


class PolicyConfigError(ValueError):
    """Raised with every problem in one policy's config, so one run shows the whole list."""

    def __init__(self, policy: str, problems: list[str]) -> None:
        self.policy = policy
        self.problems = list(problems)
        super().__init__(f"policy config for {policy!r} is invalid: " + "; ".join(problems))


def _tier_counts_schema(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": {tier: {"type": "integer", "minimum": 1} for tier in TIERS},
        "additionalProperties": False,
        "default": {},
    }


def _names_schema(allowed: Sequence[str], default: Sequence[str], description: str) -> dict[str, Any]:
    return {
        "type": "array",
        "description": description,
        "items": {"type": "string", "enum": list(allowed)},
        "uniqueItems": True,
        "default": list(default),
    }


RETENTION_SCHEMA: Final[dict[str, dict[str, Any]]] = {
    "minimum": _tier_counts_schema(
        f"Shortest retention per tier ({', '.join(f'{tier.key}: {tier.unit}' for tier in RETENTION_TIERS)})."
    ),
    "maximum": _tier_counts_schema("Longest retention per tier (caps storage cost where it matters)."),
    "requiredTiers": _names_schema(TIERS, ("daily",), "Retention tiers every backup policy must have."),
}

SCHEDULE_SCHEMA: Final[dict[str, dict[str, Any]]] = {
    "minInstantRestoreDays": {
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "description": "Fewest days instant-restore snapshots are kept (fast restores without the vault).",
    },
    "maxRpoHours": {
        "type": ["integer", "null"],
        "minimum": 1,
        "default": None,
        "description": "Longest allowed gap between backups in hours (24 = daily; below 24 needs hourly, V2).",
    },
}

VAULT_SCHEMA: Final[dict[str, dict[str, Any]]] = {
    "allowedSoftDeleteStates": _names_schema(
        v.SOFT_DELETE_STATES, ("AlwaysON",), "Soft delete states allowed (AlwaysON cannot be switched off)."
    ),
    "minSoftDeleteRetentionDays": {
        "type": "integer",
        "minimum": v.SOFT_DELETE_RETENTION_LIMITS[0],
        "default": v.SOFT_DELETE_RETENTION_LIMITS[0],
        "description": "Fewest days deleted backup data stays recoverable.",
    },
    "allowedImmutabilityStates": _names_schema(
        v.IMMUTABILITY_STATES, ("Unlocked", "Locked"), "Vault immutability states allowed (Locked is irreversible)."
    ),
    "allowPublicNetworkAccess": {
        "type": "boolean",
        "default": False,
        "description": "Whether the vault may be reachable from public networks.",
    },
    "allowedStorageRedundancies": _names_schema(
        v.STORAGE_REDUNDANCIES, v.STORAGE_REDUNDANCIES, "Storage redundancy the vault may use."
    ),
    "requireCrossRegionRestore": {
        "type": "boolean",
        "default": False,
        "description": "Whether restores must be possible in the paired region (needs GeoRedundant).",
    },
    "requireJobFailureAlerts": {
        "type": "boolean",
        "default": True,
        "description": "Whether monitoringSettings.azureMonitorAlertSettings.alertsForAllJobFailures must be Enabled.",
    },
    "allowClassicAlerts": {
        "type": "boolean",
        "default": False,
        "description": "Whether classic alerts (classicAlertSettings.alertsForCriticalOperations) may stay Enabled.",
    },
    "requireCustomerManagedKey": {
        "type": "boolean",
        "default": False,
        "description": "Whether backup data must be encrypted with a customer-managed key (properties.encryption).",
    },
}

OPERATIONS_SCHEMA: Final[dict[str, dict[str, Any]]] = {
    "requireDeleteLock": {
        "type": "boolean",
        "default": True,
        "description": "Every vault in the stack has a CanNotDelete management lock scoped to it.",
    },
    "requireAlertRouting": {
        "type": "boolean",
        "default": False,
        "description": "Every vault's Azure Monitor alerts are routed to an action group by an alert processing rule.",
    },
    "requireBackupReports": {
        "type": "boolean",
        "default": False,
        "description": "Every vault sends the six Backup Reports tables (Dedicated) to a Log Analytics workspace.",
    },
    "requireMultiUserAuthorization": {
        "type": "boolean",
        "default": False,
        "description": "Every vault is associated with a Resource Guard (ResourceGuardProxy).",
    },
    "requireResourceGuardInAnotherSubscription": {
        "type": "boolean",
        "default": False,
        "description": "The Resource Guard must be outside the vault's subscription (not administered by its owners).",
    },
    "requirePrivateEndpoint": {
        "type": "boolean",
        "default": False,
        "description": "Every vault has a private endpoint for its AzureBackup sub-resource.",
    },
}

INITIAL_BACKUP_SCHEMA: Final[dict[str, dict[str, Any]]] = {
    "minRetainDays": {
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "description": "Fewest days the initial on-demand recovery point must be retained.",
    },
    "allowedVerifyModes": _names_schema(
        v.VERIFY_MODES, v.VERIFY_MODES, "How far the deployment must wait for the first backup."
    ),
}

COVERAGE_SCHEMA: Final[dict[str, dict[str, Any]]] = {
    "requiredVmIds": {
        "type": "array",
        "items": {"type": "string"},
        "uniqueItems": True,
        "default": [],
        "description": "VM resource ids that must be protected even though the stack does not create them.",
    },
    "approvedExistingPolicyIds": {
        "type": "array",
        "items": {"type": "string"},
        "uniqueItems": True,
        "default": [],
        "description": "Backup policies outside this stack that were reviewed and may be used.",
    },
    "retention": {
        "type": "object",
        "properties": RETENTION_SCHEMA,
        "additionalProperties": False,
        "default": {},
        "description": "Same shape as the backup-retention policy's config: a VM's policy must pass it.",
    },
    "schedule": {
        "type": "object",
        "properties": SCHEDULE_SCHEMA,
        "additionalProperties": False,
        "default": {},
        "description": "Same shape as the backup-schedule policy's config: a VM's policy must pass it.",
    },
}


class _Reader:
    """Reads one config object against its schema, collecting every problem."""

    def __init__(self, policy: str, raw: Mapping[str, Any] | None, schema: Mapping[str, Mapping[str, Any]]):
        self.policy = policy
        self.raw: Mapping[str, Any] = raw or {}
        self.schema = schema
        self.problems: list[str] = [
            f"{key} is not a known setting: known settings are {', '.join(sorted(schema))}"
            for key in self.raw
            if key not in schema and key != "enforcementLevel"
        ]

    def value(self, key: str) -> Any:
        return self.raw[key] if key in self.raw else self.schema[key].get("default")

    def integer(self, key: str, *, nullable: bool = False) -> int | None:
        value = v.as_count(self.value(key))
        if value is None and nullable:
            return None
        low = int(self.schema[key].get("minimum", 0))
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.problems.append(f"{key} = {value!r} must be a whole number >= {low}")
            return None
        return value

    def boolean(self, key: str) -> bool:
        value = self.value(key)
        if not isinstance(value, bool):
            self.problems.append(f"{key} = {value!r} must be true or false")
            return bool(self.schema[key].get("default"))
        return value

    def names(self, key: str) -> tuple[str, ...]:
        value = self.value(key)
        allowed = self.schema[key]["items"].get("enum")
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            self.problems.append(f"{key} = {value!r} must be a list of strings")
            return tuple(self.schema[key].get("default", ()))
        if allowed is not None:
            bad = [item for item in value if item not in allowed]
            if bad:
                self.problems.append(f"{key} = {list(value)!r} has {bad!r}: choose from {', '.join(allowed)}")
        return tuple(value)

    def tier_counts(self, key: str) -> dict[Tier, int]:
        value = self.value(key)
        if not isinstance(value, Mapping):
            self.problems.append(f"{key} = {value!r} must be an object of tier -> count")
            return {}
        counts: dict[Tier, int] = {}
        for tier, count in value.items():
            number = v.as_count(count)
            if tier not in TIERS:
                self.problems.append(f"{key}.{tier} is not a retention tier: choose from {', '.join(TIERS)}")
            elif isinstance(number, bool) or not isinstance(number, int) or number < 1:
                self.problems.append(f"{key}.{tier} = {count!r} must be a whole number >= 1")
            else:
                counts[cast(Tier, tier)] = number
        return counts

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.value(key)
        if not isinstance(value, Mapping):
            self.problems.append(f"{key} = {value!r} must be an object")
            return {}
        return value

    def done(self) -> None:
        if self.problems:
            raise PolicyConfigError(self.policy, self.problems)


@dataclass(frozen=True)
class RetentionRequirements:
    """The environment's retention ladder: bounds per tier and which tiers must exist."""

    minimum: Mapping[Tier, int] = field(default_factory=dict)
    maximum: Mapping[Tier, int] = field(default_factory=dict)
    required_tiers: tuple[Tier, ...] = ("daily",)

    @staticmethod
    def from_config(raw: Mapping[str, Any] | None, policy: str = "backup-retention") -> RetentionRequirements:
        reader = _Reader(policy, raw, RETENTION_SCHEMA)
        minimum = reader.tier_counts("minimum")
        maximum = reader.tier_counts("maximum")
        tiers = reader.names("requiredTiers")
        for tier in TIERS:
            if tier in minimum and tier in maximum and minimum[tier] > maximum[tier]:
                reader.problems.append(
                    f"minimum.{tier} = {minimum[tier]} is above maximum.{tier} = {maximum[tier]}: no policy can pass"
                )
        reader.done()
        return RetentionRequirements(minimum, maximum, cast(tuple[Tier, ...], tiers))


@dataclass(frozen=True)
class ScheduleRequirements:
    """How often backups run and how long instant-restore snapshots stay."""

    min_instant_restore_days: int = 1
    max_rpo_hours: int | None = None

    @staticmethod
    def from_config(raw: Mapping[str, Any] | None, policy: str = "backup-schedule") -> ScheduleRequirements:
        reader = _Reader(policy, raw, SCHEDULE_SCHEMA)
        irp = reader.integer("minInstantRestoreDays")
        rpo = reader.integer("maxRpoHours", nullable=True)
        reader.done()
        return ScheduleRequirements(irp or 1, rpo)


@dataclass(frozen=True)
class VaultRequirements:
    """What a Recovery Services vault must look like to keep backups safe from deletion and outages."""

    allowed_soft_delete_states: tuple[str, ...] = ("AlwaysON",)
    min_soft_delete_retention_days: int = v.SOFT_DELETE_RETENTION_LIMITS[0]
    allowed_immutability_states: tuple[str, ...] = ("Unlocked", "Locked")
    allow_public_network_access: bool = False
    allowed_storage_redundancies: tuple[str, ...] = v.STORAGE_REDUNDANCIES
    require_cross_region_restore: bool = False
    require_job_failure_alerts: bool = True
    allow_classic_alerts: bool = False
    require_customer_managed_key: bool = False

    @staticmethod
    def from_config(raw: Mapping[str, Any] | None, policy: str = "vault-security") -> VaultRequirements:
        reader = _Reader(policy, raw, VAULT_SCHEMA)
        result = VaultRequirements(
            allowed_soft_delete_states=reader.names("allowedSoftDeleteStates"),
            min_soft_delete_retention_days=reader.integer("minSoftDeleteRetentionDays")
            or v.SOFT_DELETE_RETENTION_LIMITS[0],
            allowed_immutability_states=reader.names("allowedImmutabilityStates"),
            allow_public_network_access=reader.boolean("allowPublicNetworkAccess"),
            allowed_storage_redundancies=reader.names("allowedStorageRedundancies"),
            require_cross_region_restore=reader.boolean("requireCrossRegionRestore"),
            require_job_failure_alerts=reader.boolean("requireJobFailureAlerts"),
            allow_classic_alerts=reader.boolean("allowClassicAlerts"),
            require_customer_managed_key=reader.boolean("requireCustomerManagedKey"),
        )
        if result.require_cross_region_restore and "GeoRedundant" not in result.allowed_storage_redundancies:
            reader.problems.append(
                "requireCrossRegionRestore = true needs 'GeoRedundant' in allowedStorageRedundancies: "
                "cross-region restore reads the paired region's copy"
            )
        reader.done()
        return result


@dataclass(frozen=True)
class InitialBackupRequirements:
    """The first on-demand recovery point: how long it is kept and how far the deploy waits for it."""

    min_retain_days: int = 1
    allowed_verify_modes: tuple[str, ...] = v.VERIFY_MODES

    @staticmethod
    def from_config(
        raw: Mapping[str, Any] | None, policy: str = "initial-backup-retention"
    ) -> InitialBackupRequirements:
        reader = _Reader(policy, raw, INITIAL_BACKUP_SCHEMA)
        result = InitialBackupRequirements(
            min_retain_days=reader.integer("minRetainDays") or 1,
            allowed_verify_modes=reader.names("allowedVerifyModes"),
        )
        reader.done()
        return result


@dataclass(frozen=True)
class CoverageRequirements:
    """Which VMs must be protected, and what their backup policy must satisfy.

    Pulumi gives each policy only its own config, so the stack policy carries its own copy of the
    retention and schedule requirements (the tests keep the copies equal in every env file)."""

    required_vm_ids: tuple[str, ...] = ()
    approved_existing_policy_ids: tuple[str, ...] = ()
    retention: RetentionRequirements = field(default_factory=RetentionRequirements)
    schedule: ScheduleRequirements = field(default_factory=ScheduleRequirements)

    @staticmethod
    def from_config(raw: Mapping[str, Any] | None, policy: str = "vm-backup-coverage") -> CoverageRequirements:
        reader = _Reader(policy, raw, COVERAGE_SCHEMA)
        vm_ids = reader.names("requiredVmIds")
        for index, vm_id in enumerate(vm_ids):
            reader.problems.extend(v.check_vm_id(vm_id, f"requiredVmIds[{index}]"))
        policy_ids = reader.names("approvedExistingPolicyIds")
        for index, policy_id in enumerate(policy_ids):
            reader.problems.extend(v.check_policy_id(policy_id, f"approvedExistingPolicyIds[{index}]"))
        retention = RetentionRequirements()
        schedule = ScheduleRequirements()
        try:
            retention = RetentionRequirements.from_config(reader.mapping("retention"), policy)
        except PolicyConfigError as err:
            reader.problems.extend(f"retention.{p}" for p in err.problems)
        try:
            schedule = ScheduleRequirements.from_config(reader.mapping("schedule"), policy)
        except PolicyConfigError as err:
            reader.problems.extend(f"schedule.{p}" for p in err.problems)
        reader.done()
        return CoverageRequirements(vm_ids, policy_ids, retention, schedule)


@dataclass(frozen=True)
class OperationsRequirements:
    """What every vault of the stack must have around it: resources of their own (a lock, an
    alert processing rule, a diagnostic setting, a Resource Guard proxy) that only a stack policy
    can find missing."""

    require_delete_lock: bool = True
    require_alert_routing: bool = False
    require_backup_reports: bool = False
    require_multi_user_authorization: bool = False
    require_resource_guard_in_another_subscription: bool = False
    require_private_endpoint: bool = False

    @staticmethod
    def from_config(raw: Mapping[str, Any] | None, policy: str = "vault-operations") -> OperationsRequirements:
        reader = _Reader(policy, raw, OPERATIONS_SCHEMA)
        result = OperationsRequirements(
            require_delete_lock=reader.boolean("requireDeleteLock"),
            require_alert_routing=reader.boolean("requireAlertRouting"),
            require_backup_reports=reader.boolean("requireBackupReports"),
            require_multi_user_authorization=reader.boolean("requireMultiUserAuthorization"),
            require_resource_guard_in_another_subscription=reader.boolean("requireResourceGuardInAnotherSubscription"),
            require_private_endpoint=reader.boolean("requirePrivateEndpoint"),
        )
        reader.done()
        return result


# --- per-tier rules (issue 16): a fleet's policies carry a tier label ---------------------------

#: The tier key whose rules apply to every policy, tagged or not (e.g. "at least 7 dailies").
ANY_TIER: Final = "*"

TIER_RULES_SCHEMA: Final[dict[str, dict[str, Any]]] = {
    "retention": {
        "type": "object",
        "properties": RETENTION_SCHEMA,
        "additionalProperties": False,
        "default": {},
        "description": "Same shape as the backup-retention policy's config.",
    },
    "schedule": {
        "type": "object",
        "properties": SCHEDULE_SCHEMA,
        "additionalProperties": False,
        "default": {},
        "description": "Same shape as the backup-schedule policy's config.",
    },
}

TIERS_SCHEMA: Final[dict[str, dict[str, Any]]] = {
    "tiers": {
        "type": "object",
        "additionalProperties": {"type": "object", "properties": TIER_RULES_SCHEMA, "additionalProperties": False},
        "default": {},
        "description": (
            "Rules per tier label (the protected-vm-tier tag of a policy, from the stack's "
            "vaults.<key>.policies.<name>.tier); '*' applies to every policy."
        ),
    },
    "requireTier": {
        "type": "boolean",
        "default": False,
        "description": "Whether every VM backup policy must carry a tier this config defines.",
    },
}


@dataclass(frozen=True)
class TierRules:
    retention: RetentionRequirements = field(default_factory=lambda: RetentionRequirements(required_tiers=()))
    schedule: ScheduleRequirements = field(default_factory=ScheduleRequirements)


@dataclass(frozen=True)
class TierRequirements:
    """What each tier of a fleet's policies must satisfy, on top of the environment-wide rules."""

    tiers: Mapping[str, TierRules] = field(default_factory=dict)
    require_tier: bool = False

    @staticmethod
    def from_config(raw: Mapping[str, Any] | None, policy: str = "backup-tiers") -> TierRequirements:
        reader = _Reader(policy, raw, TIERS_SCHEMA)
        tiers: dict[str, TierRules] = {}
        for name, rules in reader.mapping("tiers").items():
            if not isinstance(rules, Mapping):
                reader.problems.append(f"tiers.{name} = {rules!r} must be an object with retention and/or schedule")
                continue
            unknown = sorted(set(rules) - set(TIER_RULES_SCHEMA))
            if unknown:
                reader.problems.append(f"tiers.{name} has unknown settings {unknown}: known are retention, schedule")
                continue
            try:
                retention = RetentionRequirements.from_config(
                    {"requiredTiers": [], **(rules.get("retention") or {})}, policy
                )
            except PolicyConfigError as err:
                reader.problems.extend(f"tiers.{name}.retention.{p}" for p in err.problems)
                continue
            try:
                schedule = ScheduleRequirements.from_config(rules.get("schedule") or {}, policy)
            except PolicyConfigError as err:
                reader.problems.extend(f"tiers.{name}.schedule.{p}" for p in err.problems)
                continue
            tiers[str(name)] = TierRules(retention, schedule)
        require = reader.boolean("requireTier")
        reader.done()
        return TierRequirements(tiers, require)
