"""Pure policy rules: plain props (camelCase, as the engine sends them) in, problems out.

Azure's own limits come from :mod:`components.validation`, so a bound is written once and
enforced both at preview on our config and here on whatever props reach the engine (including
stacks that were not built by our components). The environment's bounds come from the typed
requirements in :mod:`policies.thresholds`.

Props here are plain dicts and lists. During preview some values are not known yet (an id that
Azure assigns); those arrive as :data:`UNKNOWN`, and every rule skips what it cannot know rather
than reporting a false violation: the same rules run again on ``pulumi up`` with real values.
Every message names the setting, the value and the bound; the policy adds the resource name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, cast

from components import validation as v
from components.tiers import FREQUENCIES, RETENTION_TIERS, schedule_frequency
from components.validation import Frequency, PolicyType, Tier
from components.vault_operations import BACKUP_GROUP_ID, BACKUP_REPORT_CATEGORIES, DEDICATED, LOCK_LEVEL
from policies.thresholds import (
    ANY_TIER,
    TIERS,
    CoverageRequirements,
    InitialBackupRequirements,
    OperationsRequirements,
    RetentionRequirements,
    ScheduleRequirements,
    TierRequirements,
    TierRules,
    VaultRequirements,
)
from protectedvm import ids
from protectedvm.ids import (
    ALERT_RULE_TYPE,
    DIAGNOSTIC_TYPE,
    GUARD_PROXY_TYPE,
    ITEM_TYPE,
    LOCK_PENDING_TAG,
    LOCK_TYPE,
    POLICY_TYPE,
    PRIVATE_ENDPOINT_TYPE,
    RESOURCE_GUARD_TYPE,
    TIER_TAG,
    VAULT_TYPE,
    VM_TYPE,
)

#: Dynamic resources all share a token; ``InitialBackup`` is recognised by its props.
from protectedvm.ids import DYNAMIC_TYPE as DYNAMIC_TYPE
from protectedvm.ids import is_dynamic_type as is_dynamic_type

RETENTION_PATH: Final = "properties.retentionPolicy"
SCHEDULE_PATH: Final = "properties.schedulePolicy"
TIER_SCHEDULE_KEYS: Final[dict[Tier, str]] = {tier.key: tier.schedule_key for tier in RETENTION_TIERS}
#: The gap between recovery points a schedule frequency implies, when it is not hourly.
FREQUENCY_RPO_HOURS: Final[dict[str, int]] = {f.key: f.rpo_hours for f in FREQUENCIES if f.rpo_hours is not None}
#: What Azure assumes when a prop is absent; a missing prop must be judged by what Azure will do.
AZURE_DEFAULT_INSTANT_RESTORE_DAYS: Final = 2
AZURE_DEFAULT_SOFT_DELETE_STATE: Final = "Enabled"
AZURE_DEFAULT_IMMUTABILITY_STATE: Final = "Disabled"
AZURE_DEFAULT_PUBLIC_NETWORK_ACCESS: Final = "Enabled"
AZURE_DEFAULT_STORAGE_REDUNDANCY: Final = "GeoRedundant"


class Unknown:
    """A value the engine cannot know during preview (computed by Azure on create)."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown until deployment>"


UNKNOWN: Final = Unknown()


def get_path(props: Mapping[str, object], path: str) -> object:
    """Read a dotted path; None when any part is missing, UNKNOWN when any part is unknown."""
    current: object = props
    for key in path.split("."):
        if current is UNKNOWN:
            return UNKNOWN
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def check_retention_bounds(
    count: object, tier: Tier, setting: str, minimum: int | None, maximum: int | None
) -> list[str]:
    """The environment's bounds, on top of Azure's: a count Azure accepts can still be too short to
    meet an audit requirement (prod) or too long to pay for (dev). Share with the component if the
    stack config should ever fail at preview on environment bounds too."""
    if isinstance(count, bool) or not isinstance(count, int):
        return []
    unit = v.TIER_UNITS[tier]
    if minimum is not None and count < minimum:
        return [f"{setting} = {count} {unit} is below this environment's minimum of {minimum} {unit}"]
    if maximum is not None and count > maximum:
        return [f"{setting} = {count} {unit} is above this environment's maximum of {maximum} {unit}"]
    return []


def check_required_tiers(present: Iterable[Tier], required: Sequence[Tier], setting: str) -> list[str]:
    """A tier that is missing is a whole class of restore points that never exists."""
    have = set(present)
    return [
        f"{setting}.{TIER_SCHEDULE_KEYS[tier]} is missing: this environment requires {', '.join(required)} retention"
        for tier in required
        if tier not in have
    ]


def check_minimum(value: object, setting: str, minimum: int, unit: str) -> list[str]:
    """An environment floor on a count Azure already range-checked."""
    if isinstance(value, bool) or not isinstance(value, int) or value >= minimum:
        return []
    return [f"{setting} = {value} {unit} is below this environment's minimum of {minimum} {unit}"]


def check_allowed(value: object, setting: str, allowed: Sequence[str], why: str = "") -> list[str]:
    """An environment allow-list (narrower than Azure's choices)."""
    if value is UNKNOWN or value in allowed:
        return []
    suffix = f": {why}" if why else ""
    return [f"{setting} = {value!r} is not allowed in this environment (allowed: {', '.join(allowed)}){suffix}"]


def check_rpo(frequency: object, interval: object, setting: str, max_rpo_hours: int | None) -> list[str]:
    """The recovery point objective the schedule implies must meet the environment's."""
    if max_rpo_hours is None:
        return []
    entry = schedule_frequency(frequency)
    rpo = interval if entry is not None and entry.hourly else FREQUENCY_RPO_HOURS.get(str(frequency))
    if isinstance(rpo, bool) or not isinstance(rpo, int) or rpo <= max_rpo_hours:
        return []
    hourly = next(f for f in FREQUENCIES if f.hourly)
    offered = v.describe_policy_type(hourly.policy_types[0])
    needs = f" (needs an {hourly.key} schedule, which only {offered} policies offer)" if max_rpo_hours < 24 else ""
    return [
        f"{setting} = {frequency!r} gives a recovery point every {rpo} hours: this environment's maximum RPO "
        f"is {max_rpo_hours} hours{needs}"
    ]


def _policy_type(props: Mapping[str, object]) -> tuple[PolicyType | None, list[str]]:
    raw = get_path(props, "properties.policyType")
    if raw is None:
        return "V1", []  # Azure's default: a policy without a type is Standard
    if raw is UNKNOWN:
        return None, []
    return v.normalize_policy_type(raw, "properties.policyType")


def is_vm_backup_policy(props: Mapping[str, object]) -> bool:
    """ProtectionPolicy also covers SQL, file shares etc.; only AzureIaasVM policies are ours."""
    kind = get_path(props, "properties.backupManagementType")
    return kind in (None, "AzureIaasVM") or kind is UNKNOWN


def retention_problems(props: Mapping[str, object], req: RetentionRequirements) -> list[str]:
    """Azure's per-tier limits, the environment's bounds and the required tiers."""
    ptype, problems = _policy_type(props)
    retention = get_path(props, RETENTION_PATH)
    if retention is UNKNOWN:
        return problems
    if not isinstance(retention, Mapping):
        return [*problems, f"{RETENTION_PATH} is missing: a policy without retention keeps no recovery points"]
    present: list[Tier] = []
    for tier in TIERS:
        schedule = retention.get(TIER_SCHEDULE_KEYS[tier])
        if schedule is None:
            continue
        present.append(tier)
        setting = f"{RETENTION_PATH}.{TIER_SCHEDULE_KEYS[tier]}.retentionDuration.count"
        count = v.as_count(
            get_path(cast(Mapping[str, object], retention), f"{TIER_SCHEDULE_KEYS[tier]}.retentionDuration.count")
        )
        if count is UNKNOWN:
            continue
        if ptype is not None:
            problems.extend(v.check_retention_count(count, tier, ptype, setting))
        problems.extend(check_retention_bounds(count, tier, setting, req.minimum.get(tier), req.maximum.get(tier)))
    problems.extend(check_required_tiers(present, req.required_tiers, RETENTION_PATH))
    return problems


def _schedule_times(schedule: Mapping[str, object], frequency: object) -> tuple[str, object]:
    """Where the run time lives depends on the schedule type (V1 flat, V2 nested per frequency)."""
    entry = schedule_frequency(frequency)
    nested = entry.v2_schedule_key if entry is not None else None
    if entry is not None and entry.hourly:
        return f"{nested}.scheduleWindowStartTime", get_path(schedule, f"{nested}.scheduleWindowStartTime")
    if nested and isinstance(schedule.get(nested), Mapping):
        return f"{nested}.scheduleRunTimes", get_path(schedule, f"{nested}.scheduleRunTimes")
    return "scheduleRunTimes", schedule.get("scheduleRunTimes")


def schedule_problems(props: Mapping[str, object], req: ScheduleRequirements) -> list[str]:
    """Schedule present and valid, Enhanced (V2) for hourly, instant restore inside Azure's limits
    and the environment's floor, and the schedule's RPO inside the environment's maximum."""
    ptype, problems = _policy_type(props)
    schedule = get_path(props, SCHEDULE_PATH)
    if schedule is UNKNOWN:
        return problems
    if not isinstance(schedule, Mapping):
        return [*problems, f"{SCHEDULE_PATH} is missing: a policy without a schedule never takes a backup"]
    frequency = schedule.get("scheduleRunFrequency")
    setting = f"{SCHEDULE_PATH}.scheduleRunFrequency"
    if frequency is UNKNOWN or ptype is None:
        return problems
    found = v.check_frequency_for_policy_type(frequency, ptype, setting)
    problems.extend(found)
    entry = schedule_frequency(frequency)
    if entry is None:
        return problems
    freq: Frequency = entry.key
    if (
        entry.hourly
        and ptype == "V2"
        and schedule.get("schedulePolicyType") not in ("SimpleSchedulePolicyV2", UNKNOWN)
    ):
        problems.append(
            f"{SCHEDULE_PATH}.schedulePolicyType = {schedule.get('schedulePolicyType')!r} cannot run {freq}: "
            "use 'SimpleSchedulePolicyV2'"
        )
    interval: object = None
    if entry.hourly:
        hourly = f"{SCHEDULE_PATH}.{entry.v2_schedule_key}"
        interval = v.as_count(get_path(schedule, f"{entry.v2_schedule_key}.interval"))
        if interval is not UNKNOWN:
            problems.extend(v.check_hourly_interval(interval, f"{hourly}.interval"))
        window = v.as_count(get_path(schedule, f"{entry.v2_schedule_key}.scheduleWindowDuration"))
        if window is not UNKNOWN:
            problems.extend(v.check_hourly_window(window, f"{hourly}.scheduleWindowDuration"))
    time_key, times = _schedule_times(schedule, freq)
    time_setting = f"{SCHEDULE_PATH}.{time_key}"
    if times is None or (isinstance(times, list) and not times):
        problems.append(f"{time_setting} is missing: the schedule has no time to run at")
    else:
        for index, time in enumerate(times if isinstance(times, list) else [times]):
            if time is not UNKNOWN:
                item = f"{time_setting}[{index}]" if isinstance(times, list) else time_setting
                problems.extend(v.check_backup_time(time, item))
    problems.extend(check_rpo(freq, interval, setting, req.max_rpo_hours))
    irp_setting = "properties.instantRpRetentionRangeInDays"
    irp = v.as_count(get_path(props, irp_setting))
    if irp is None:
        irp = AZURE_DEFAULT_INSTANT_RESTORE_DAYS
        irp_setting += " (not set: Azure's default)"
    if irp is not UNKNOWN:
        found = v.check_instant_restore_days(irp, ptype, freq, irp_setting)
        problems.extend(found)
        if not found:
            problems.extend(check_minimum(irp, irp_setting, req.min_instant_restore_days, "days"))
    return problems


def vault_problems(props: Mapping[str, object], req: VaultRequirements) -> list[str]:
    """Soft delete, immutability, network exposure and redundancy: what keeps backups alive when
    someone (or something) with vault rights tries to delete them, or a region goes down."""
    problems: list[str] = []
    security = "properties.securitySettings"
    soft_delete = get_path(props, f"{security}.softDeleteSettings.softDeleteState")
    sd_setting = f"{security}.softDeleteSettings.softDeleteState"
    if soft_delete is None:
        soft_delete, sd_setting = AZURE_DEFAULT_SOFT_DELETE_STATE, f"{sd_setting} (not set: Azure's default)"
    problems.extend(
        check_allowed(soft_delete, sd_setting, req.allowed_soft_delete_states, "deleted backups must stay recoverable")
    )
    sd_days_setting = f"{security}.softDeleteSettings.softDeleteRetentionPeriodInDays"
    sd_days = v.as_count(get_path(props, sd_days_setting))
    if sd_days is not None and sd_days is not UNKNOWN:
        low, high = v.SOFT_DELETE_RETENTION_LIMITS
        found = v.check_int_range(sd_days, sd_days_setting, low, high, "days")
        problems.extend(found or check_minimum(sd_days, sd_days_setting, req.min_soft_delete_retention_days, "days"))
    immutability = get_path(props, f"{security}.immutabilitySettings.state")
    imm_setting = f"{security}.immutabilitySettings.state"
    if immutability is None:
        immutability, imm_setting = AZURE_DEFAULT_IMMUTABILITY_STATE, f"{imm_setting} (not set: Azure's default)"
    elif immutability == "Unlocked" and get_path(props, f"tags.{LOCK_PENDING_TAG}") == "Locked":
        # A new vault is created Unlocked (Azure refuses Locked at creation) and locked by the
        # program's VaultLock step right after; the tag says so (components/backup_vault.py).
        immutability = "Locked"
    problems.extend(
        check_allowed(
            immutability, imm_setting, req.allowed_immutability_states, "nobody may shorten retention or delete points"
        )
    )
    pna = get_path(props, "properties.publicNetworkAccess")
    pna_setting = "properties.publicNetworkAccess"
    if pna is None:
        pna, pna_setting = AZURE_DEFAULT_PUBLIC_NETWORK_ACCESS, f"{pna_setting} (not set: Azure's default)"
    if not req.allow_public_network_access:
        problems.extend(check_allowed(pna, pna_setting, ("Disabled",), "the vault must not be reachable publicly"))
    redundancy_path = "properties.redundancySettings.standardTierStorageRedundancy"
    redundancy = get_path(props, redundancy_path)
    red_setting = redundancy_path
    if redundancy is None:
        redundancy, red_setting = AZURE_DEFAULT_STORAGE_REDUNDANCY, f"{red_setting} (not set: Azure's default)"
    problems.extend(check_allowed(redundancy, red_setting, req.allowed_storage_redundancies))
    crr = get_path(props, "properties.redundancySettings.crossRegionRestore")
    crr_setting = "properties.redundancySettings.crossRegionRestore"
    if crr is not UNKNOWN and redundancy is not UNKNOWN:
        problems.extend(v.check_cross_region_restore(crr == "Enabled", redundancy, crr_setting))
    if req.require_cross_region_restore and crr is not UNKNOWN and crr != "Enabled":
        problems.append(
            f"{crr_setting} = {crr!r} is not allowed in this environment: 'Enabled' is required "
            "so a regional outage does not stop restores"
        )
    problems.extend(vault_monitoring_problems(props, req))
    return problems


JOB_FAILURE_ALERTS_PATH: Final = "properties.monitoringSettings.azureMonitorAlertSettings.alertsForAllJobFailures"
CLASSIC_ALERTS_PATH: Final = "properties.monitoringSettings.classicAlertSettings.alertsForCriticalOperations"
KEY_URI_PATH: Final = "properties.encryption.keyVaultProperties.keyUri"


def vault_monitoring_problems(props: Mapping[str, object], req: VaultRequirements) -> list[str]:
    """The vault's own alert switches and encryption: a failed backup nobody hears about is the
    silent failure this project exists to prevent. An unset switch is reported, not assumed:
    no source documents Azure's default for either one, and it has changed over time."""
    problems: list[str] = []
    job = get_path(props, JOB_FAILURE_ALERTS_PATH)
    if req.require_job_failure_alerts and job is not UNKNOWN and job != "Enabled":
        problems.append(
            f"{JOB_FAILURE_ALERTS_PATH} = {job!r} is not allowed in this environment: 'Enabled' is required "
            "so a failed backup job raises an Azure Monitor alert"
        )
    classic = get_path(props, CLASSIC_ALERTS_PATH)
    if not req.allow_classic_alerts and classic is not UNKNOWN and classic != "Disabled":
        problems.append(
            f"{CLASSIC_ALERTS_PATH} = {classic!r} is not allowed in this environment: 'Disabled' is required "
            "(classic alerts cannot be routed to an action group; Azure Monitor alerts replace them)"
        )
    key_uri = get_path(props, KEY_URI_PATH)
    if req.require_customer_managed_key and key_uri is not UNKNOWN and not key_uri:
        problems.append(
            f"{KEY_URI_PATH} is missing: this environment requires backup data encrypted with a customer-managed key"
        )
    return problems


def initial_backup_settings(props: Mapping[str, object]) -> Mapping[str, object] | None:
    """The InitialBackup's settings, or None when these props belong to another dynamic resource.

    Settings are read from ``settings`` (InitialBackupSettings.to_dict()) or, tolerantly, from the
    top level; the dynamic provider's own ``__provider`` prop is ignored."""
    settings = props.get("settings")
    if isinstance(settings, Mapping) and "retainDays" in settings:
        return cast(Mapping[str, object], settings)
    if "retainDays" in props and ("vmIds" in props or "vaultId" in props):
        return props
    return None


def initial_backup_problems(props: Mapping[str, object], req: InitialBackupRequirements) -> list[str]:
    """The first recovery point is the only one until the schedule runs: it must be kept at least
    as long as the environment's minimum, within Azure's 'retain till' limit."""
    settings = initial_backup_settings(props)
    if settings is None:
        return []
    prefix = "settings." if settings is not props else ""
    problems: list[str] = []
    retain = v.as_count(settings.get("retainDays"))
    setting = f"{prefix}retainDays"
    if retain is not UNKNOWN:
        low, high = v.INITIAL_BACKUP_RETAIN_DAYS_LIMITS
        found = v.check_int_range(retain, setting, low, high, "days")
        problems.extend(found or check_minimum(retain, setting, req.min_retain_days, "days"))
    verify = settings.get("verify")
    if verify is not None and verify is not UNKNOWN:
        problems.extend(
            check_allowed(
                verify, f"{prefix}verify", req.allowed_verify_modes, "the first recovery point must be proven"
            )
        )
    return problems


# --- stack rule -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackResource:
    """One resource of the stack as the stack rule needs it: plain props (outputs at ``up``,
    inputs with unknowns at preview) and, per prop, the URNs it was computed from."""

    type: str
    name: str
    urn: str
    props: Mapping[str, object]
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class StackProblem:
    """A stack violation, attached to the resource to fix (None: the stack as a whole)."""

    urn: str | None
    message: str


def label(resource_type: str, name: str) -> str:
    """``ProtectionPolicy 'backup-policy'``: the short type and logical name, as a plan shows them."""
    return f"{resource_type.rsplit(':', 1)[-1]} {name!r}"


def _lower(value: object) -> str | None:
    return value.lower().rstrip("/") if isinstance(value, str) else None


def _arm_keys(resource: StackResource) -> set[str]:
    """Ways an ARM id elsewhere in the stack may name this resource: its ``id`` output, or (at
    preview, before Azure assigns ids) the subscription-less path built from its inputs."""
    keys: set[str] = set()
    own = _lower(resource.props.get("id"))
    if own:
        keys.add(own)
    rg = resource.props.get("resourceGroupName")
    if resource.type == POLICY_TYPE:
        vault, name = resource.props.get("vaultName"), resource.props.get("policyName")
        if isinstance(rg, str) and isinstance(vault, str) and isinstance(name, str):
            keys.add(ids.policy_path(rg, vault, name).lower())
    elif resource.type == VM_TYPE:
        name = resource.props.get("vmName")
        if isinstance(rg, str) and isinstance(name, str):
            keys.add(ids.vm_path(rg, name).lower())
    return keys


def _refers_to(arm_id: object, keys: set[str]) -> bool:
    ref = _lower(arm_id)
    return ref is not None and any(
        ref == key or (key.startswith("/resourcegroups/") and ref.endswith(key)) for key in keys
    )


def _depends_on(item: StackResource, urn: str) -> bool:
    return any(urn in urns for urns in item.property_dependencies.values())


def coverage_problems(resources: Sequence[StackResource], req: CoverageRequirements) -> list[StackProblem]:
    """Every VM (in the stack, or required by config) has a ProtectedItem whose policy passes the
    environment's retention and schedule rules. Links are matched case-insensitively on ARM ids
    (Azure's own casing varies), or through property dependencies while ids are still unknown."""
    vms = [r for r in resources if r.type == VM_TYPE]
    items = [r for r in resources if r.type == ITEM_TYPE]
    policies = [r for r in resources if r.type == POLICY_TYPE]
    problems: list[StackProblem] = []

    targets: list[tuple[str, str | None, set[str]]] = []  # (description, urn, keys)
    for vm in vms:
        keys = _arm_keys(vm)
        targets.append((f"{label(vm.type, vm.name)}", vm.urn, keys))
    for vm_id in req.required_vm_ids:
        key = _lower(vm_id) or ""
        if not any(_refers_to(vm_id, keys) for _, _, keys in targets):
            targets.append((f"VM {vm_id} (requiredVmIds)", None, {key}))

    for description, urn, keys in targets:
        protecting = [
            item
            for item in items
            if _refers_to(get_path(item.props, "properties.sourceResourceId"), keys)
            or (
                urn is not None
                and get_path(item.props, "properties.sourceResourceId") is UNKNOWN
                and _depends_on(item, urn)
            )
        ]
        if not protecting:
            problems.append(
                StackProblem(
                    urn,
                    f"{description} is not backed up: no {ITEM_TYPE} has properties.sourceResourceId pointing at it",
                )
            )
            continue
        for item in protecting:
            problems.extend(_item_policy_problems(item, description, policies, req))
    return problems


def _item_policy_problems(
    item: StackResource, vm: str, policies: Sequence[StackResource], req: CoverageRequirements
) -> list[StackProblem]:
    item_label = label(item.type, item.name)
    policy_id = get_path(item.props, "properties.policyId")
    if policy_id is None or policy_id == "":
        return [
            StackProblem(item.urn, f"{item_label} protects {vm} with no properties.policyId: no backups are scheduled")
        ]
    if policy_id is UNKNOWN:
        linked = [p for p in policies if _depends_on(item, p.urn)]
    else:
        linked = [p for p in policies if _refers_to(policy_id, _arm_keys(p))]
    if not linked:
        if policy_id is UNKNOWN:
            return []  # computed from something outside the stack; known and checked at `up`
        if any(_lower(policy_id) == _lower(approved) for approved in req.approved_existing_policy_ids):
            return []
        shape = v.check_policy_id(policy_id, f"{item_label} properties.policyId")
        if shape:
            return [StackProblem(item.urn, shape[0])]
        return [
            StackProblem(
                item.urn,
                f"{item_label} protects {vm} with properties.policyId = {policy_id!r}, which is neither a "
                "ProtectionPolicy in this stack nor listed in approvedExistingPolicyIds: "
                "its retention cannot be verified",
            )
        ]
    problems: list[StackProblem] = []
    for policy in linked:
        if not is_vm_backup_policy(policy.props):
            problems.append(
                StackProblem(
                    item.urn,
                    f"{item_label} protects {vm} with {label(policy.type, policy.name)}, "
                    "which is not an AzureIaasVM policy",
                )
            )
            continue
        found = retention_problems(policy.props, req.retention) + schedule_problems(policy.props, req.schedule)
        problems.extend(
            StackProblem(
                item.urn, f"{item_label} protects {vm} with {label(policy.type, policy.name)}, which fails: {p}"
            )
            for p in found
        )
    return problems


# --- vault operations (stack rule) ---------------------------------------------------------

def _vault_keys(vault: StackResource) -> set[str]:
    keys = _arm_keys(vault)
    rg, name = vault.props.get("resourceGroupName"), vault.props.get("vaultName")
    if isinstance(rg, str) and isinstance(name, str):
        keys.add(ids.vault_path(rg, name).lower())
    return keys


def _targets_vault(ref: object, vault: StackResource, resource: StackResource) -> bool:
    """Whether an ARM-id prop of ``resource`` names the vault. While the id is unknown (a new
    vault at preview) the property dependency decides; without dependency information (the
    offline runner) the link is assumed, and the same rule runs on real ids at ``pulumi up``."""
    if ref is UNKNOWN:
        return _depends_on(resource, vault.urn) if resource.property_dependencies else True
    return _refers_to(ref, _vault_keys(vault))


def _in_scope(scope: object, vault: StackResource, rule: StackResource) -> bool:
    """An alert processing rule scoped to the vault, or to its resource group or subscription."""
    if scope is UNKNOWN or _targets_vault(scope, vault, rule):
        return True
    prefix = _lower(scope)
    return prefix is not None and any(key.startswith(prefix + "/") for key in _vault_keys(vault))


def _rule_covers(rule: StackResource, vault: StackResource) -> bool:
    scopes = get_path(rule.props, "properties.scopes")
    if scopes is UNKNOWN:
        return True
    return isinstance(scopes, list) and any(_in_scope(scope, vault, rule) for scope in scopes)


def _routes_to_action_group(rule: StackResource) -> bool:
    actions = get_path(rule.props, "properties.actions")
    if actions is UNKNOWN:
        return True
    if get_path(rule.props, "properties.enabled") is False or not isinstance(actions, list):
        return False
    return any(
        isinstance(a, Mapping)
        and a.get("actionType") == "AddActionGroups"
        and (a.get("actionGroupIds") is UNKNOWN or bool(a.get("actionGroupIds")))
        for a in actions
    )


def _connects_backup(endpoint: StackResource, vault: StackResource) -> bool:
    connections = endpoint.props.get("privateLinkServiceConnections")
    if connections is UNKNOWN:
        return True
    return any(
        isinstance(c, Mapping)
        and _targets_vault(c.get("privateLinkServiceId"), vault, endpoint)
        and (c.get("groupIds") is UNKNOWN or BACKUP_GROUP_ID in (c.get("groupIds") or []))
        for c in (connections if isinstance(connections, list) else [])
    )


def _guard_subscription_problems(
    vault: StackResource, proxies: Sequence[StackResource], created: Sequence[StackResource]
) -> list[StackProblem]:
    """A guard its vault's owners can administer guards nothing (Azure docs: the Backup admin must
    not hold Contributor on the guard; put it in another subscription or tenant). A guard this
    stack creates is deployed by the vault's own pipeline, so it fails at preview already."""
    vault_sub = ids.subscription_of(vault.props.get("id"))
    problems: list[StackProblem] = []
    for proxy in proxies:
        guard = get_path(proxy.props, "properties.resourceGuardResourceId")
        own = [g for g in created if _lower(g.props.get("id")) == _lower(guard) or _depends_on(proxy, g.urn)]
        if own or (guard is UNKNOWN and created and not proxy.property_dependencies):
            problems.append(
                StackProblem(
                    proxy.urn,
                    f"{label(proxy.type, proxy.name)} of {label(vault.type, vault.name)} uses a Resource Guard this "
                    "stack creates: this environment requires the Resource Guard in a subscription the vault's "
                    "owners do not administer (set multiUserAuthorization.resourceGuardId)",
                )
            )
        elif vault_sub is not None and ids.subscription_of(guard) == vault_sub:
            problems.append(
                StackProblem(
                    proxy.urn,
                    f"{label(proxy.type, proxy.name)} of {label(vault.type, vault.name)}: properties."
                    f"resourceGuardResourceId = {guard!r} is in the vault's own subscription: this environment "
                    "requires the Resource Guard in a subscription the vault's owners do not administer",
                )
            )
    return problems


def _report_gaps(setting: StackResource) -> list[str]:
    """What keeps a diagnostic setting from feeding Backup Reports (empty: it does)."""
    gaps: list[str] = []
    workspace = setting.props.get("workspaceId")
    if workspace is None or workspace == "":
        gaps.append("workspaceId is missing (Backup Reports read a Log Analytics workspace)")
    destination = setting.props.get("logAnalyticsDestinationType")
    if destination is not UNKNOWN and destination != DEDICATED:
        gaps.append(
            f"logAnalyticsDestinationType = {destination!r}: {DEDICATED!r} is required (resource-specific tables)"
        )
    logs = setting.props.get("logs")
    if logs is UNKNOWN:
        return gaps
    enabled = {
        entry.get("category") if entry.get("category") else entry.get("categoryGroup")
        for entry in (logs if isinstance(logs, list) else [])
        if isinstance(entry, Mapping) and entry.get("enabled") is True
    }
    if "allLogs" not in enabled:
        missing = [c for c in BACKUP_REPORT_CATEGORIES if c not in enabled]
        if missing:
            gaps.append(f"logs do not enable {', '.join(missing)}")
    return gaps


def vault_operations_problems(
    resources: Sequence[StackResource], req: OperationsRequirements
) -> list[StackProblem]:
    """Every vault the stack creates has the lock, alert routing, reports and Resource Guard the
    environment requires. A missing resource is never sent to a resource policy, so only a stack
    policy can see it. Vaults reused by id are owned (and checked) by the stack that creates them."""
    vaults = [r for r in resources if r.type == VAULT_TYPE]
    by_type: dict[str, list[StackResource]] = {}
    for resource in resources:
        by_type.setdefault(resource.type, []).append(resource)
    problems: list[StackProblem] = []
    for vault in vaults:
        subject = label(vault.type, vault.name)
        if req.require_delete_lock:
            locks = [
                lock
                for lock in by_type.get(LOCK_TYPE, [])
                if _targets_vault(lock.props.get("scope"), vault, lock)
            ]
            if not any(lock.props.get("level") in (LOCK_LEVEL, UNKNOWN) for lock in locks):
                problems.append(
                    StackProblem(
                        vault.urn,
                        f"{subject} has no delete lock: no {LOCK_TYPE} with level {LOCK_LEVEL!r} has the vault as "
                        "its scope (this environment requires one; set protected-vm:vault.lock: true)",
                    )
                )
        if req.require_alert_routing:
            rules_for_vault = [rule for rule in by_type.get(ALERT_RULE_TYPE, []) if _rule_covers(rule, vault)]
            if not any(_routes_to_action_group(rule) for rule in rules_for_vault):
                problems.append(
                    StackProblem(
                        vault.urn,
                        f"{subject} has no alert routing: no enabled {ALERT_RULE_TYPE} with an AddActionGroups action "
                        "has the vault in properties.scopes, so failed-job alerts reach nobody (this environment "
                        "requires it; set protected-vm:vault.alerts.actionGroup)",
                    )
                )
        if req.require_backup_reports:
            settings = [
                d
                for d in by_type.get(DIAGNOSTIC_TYPE, [])
                if _targets_vault(d.props.get("resourceUri"), vault, d)
            ]
            if not settings:
                problems.append(
                    StackProblem(
                        vault.urn,
                        f"{subject} has no backup reports: no {DIAGNOSTIC_TYPE} has the vault as resourceUri (this "
                        f"environment requires {', '.join(BACKUP_REPORT_CATEGORIES)} sent to a Log Analytics "
                        f"workspace with logAnalyticsDestinationType {DEDICATED!r}; set protected-vm:vault.reports)",
                    )
                )
            elif all(_report_gaps(d) for d in settings):
                problems.extend(
                    StackProblem(
                        d.urn,
                        f"{label(d.type, d.name)} of {subject} does not feed Backup Reports: "
                        + "; ".join(_report_gaps(d)),
                    )
                    for d in settings
                )
        if req.require_multi_user_authorization:
            rg, name = _lower(vault.props.get("resourceGroupName")), _lower(vault.props.get("vaultName"))
            proxies = [
                p
                for p in by_type.get(GUARD_PROXY_TYPE, [])
                if _lower(p.props.get("resourceGroupName")) == rg
                and (p.props.get("vaultName") is UNKNOWN or _lower(p.props.get("vaultName")) == name)
                and get_path(p.props, "properties.resourceGuardResourceId") not in (None, "")
            ]
            if not proxies:
                problems.append(
                    StackProblem(
                        vault.urn,
                        f"{subject} has no multi-user authorization: no {GUARD_PROXY_TYPE} associates a Resource Guard "
                        "(properties.resourceGuardResourceId) with the vault (this environment requires one; set "
                        "protected-vm:vault.multiUserAuthorization)",
                    )
                )
            elif req.require_resource_guard_in_another_subscription:
                problems.extend(_guard_subscription_problems(vault, proxies, by_type.get(RESOURCE_GUARD_TYPE, [])))
        if req.require_private_endpoint and not any(
            _connects_backup(endpoint, vault) for endpoint in by_type.get(PRIVATE_ENDPOINT_TYPE, [])
        ):
            problems.append(
                StackProblem(
                    vault.urn,
                    f"{subject} has no private endpoint: no {PRIVATE_ENDPOINT_TYPE} connects to the vault with "
                    f"groupIds [{BACKUP_GROUP_ID!r}] (this environment requires one; "
                    "set protected-vm:vault.privateEndpoint)",
                )
            )
    return problems


# --- per-tier rules (issue 16) --------------------------------------------------------------------

def policy_tier(props: Mapping[str, object]) -> str | None:
    tags = props.get("tags")
    tier = tags.get(TIER_TAG) if isinstance(tags, Mapping) else None
    return tier if isinstance(tier, str) else None


def tier_problems(props: Mapping[str, object], req: TierRequirements) -> list[str]:
    """A policy's tier rules (its ``protected-vm-tier`` tag) plus the rules for every tier (``*``);
    an untagged policy (a single-vault stack's) meets the ``*`` rules only, unless ``requireTier``."""
    tier = policy_tier(props)
    problems: list[str] = []
    applying: list[tuple[str, TierRules]] = []
    if tier is not None and tier in req.tiers:
        applying.append((f"tier {tier}", req.tiers[tier]))
    elif req.require_tier:
        defined = ", ".join(sorted(t for t in req.tiers if t != ANY_TIER)) or "(none)"
        shown = f"tier {tier!r}" if tier is not None else f"no tier (tag {TIER_TAG})"
        problems.append(f"has {shown}, which this environment does not define: defined tiers are {defined}")
    if ANY_TIER in req.tiers:
        applying.append(("every tier", req.tiers[ANY_TIER]))
    for label_, rules in applying:
        found = retention_problems(props, rules.retention) + schedule_problems(props, rules.schedule)
        problems.extend(f"{label_}: {problem}" for problem in found)
    return problems
