"""The resource plan of a stack, read from what the real program registered under mocks.

Only settings a reviewer signs off on are shown (retention ladder, vault security, derived
names), summarised from the camelCase inputs the engine would send to Azure — so the table shows
what will be deployed, not what the stack file intended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.tiers import FREQUENCIES, RETENTION_TIERS, schedule_frequency
from protectedvm import ids
from protectedvm.ids import (
    INITIAL_BACKUP_TYPE,
    ITEM_TYPE,
    POLICY_TYPE,
    TIER_TAG,
    VAULT_LOCK_TYPE,
    VAULT_TYPE,
    VM_PROTECTION_TYPE,
)
from rehearsal.table import render_table
from testing.mock_preview import Plan, PlannedResource

_SHORT_TYPES = {
    ids.BACKUP_VAULT_COMPONENT_TYPE: "BackupVault (component)",
    ids.PROTECTED_VM_COMPONENT_TYPE: "ProtectedVM (component)",
    VAULT_TYPE: "recoveryservices:Vault",
    POLICY_TYPE: "recoveryservices:ProtectionPolicy",
    VAULT_LOCK_TYPE: "VaultLock (after the vault)",
    ids.LOCK_TYPE: "authorization:ManagementLock",
    ids.ACTION_GROUP_TYPE: "monitor:ActionGroup",
    ids.ALERT_RULE_TYPE: "alertsmanagement:AlertProcessingRule",
    ids.WORKSPACE_TYPE: "operationalinsights:Workspace",
    ids.DIAGNOSTIC_TYPE: "monitor:DiagnosticSetting",
    ids.RESOURCE_GUARD_TYPE: "dataprotection:ResourceGuard",
    ids.GUARD_PROXY_TYPE: "recoveryservices:ResourceGuardProxy",
    ids.PRIVATE_ENDPOINT_TYPE: "network:PrivateEndpoint",
    ids.PRIVATE_DNS_ZONE_GROUP_TYPE: "network:PrivateDnsZoneGroup",
    VM_PROTECTION_TYPE: "VmProtection (pre-flight)",
    ITEM_TYPE: "recoveryservices:ProtectedItem",
    INITIAL_BACKUP_TYPE: "InitialBackup (post-deploy)",
}
_UNITS = {tier.duration_type: tier.short_unit for tier in RETENTION_TIERS}


def _n(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _hhmm(iso: Any) -> str:
    text = str(iso)
    return text[11:16] if "T" in text else text


def retention_ladder(properties: Mapping[str, Any]) -> str:
    """``30d / 12w / 12m / 7y``: the ladder an auditor asks about first."""
    ladder = properties.get("retentionPolicy") or {}
    parts = []
    for tier in RETENTION_TIERS:
        duration = (ladder.get(tier.schedule_key) or {}).get("retentionDuration")
        if duration:
            parts.append(f"{_n(duration.get('count'))}{_UNITS.get(duration.get('durationType'), '?')}")
    return " / ".join(parts) or "none"


def schedule_summary(properties: Mapping[str, Any]) -> str:
    schedule = properties.get("schedulePolicy") or {}
    frequency = schedule.get("scheduleRunFrequency")
    entry = schedule_frequency(frequency)
    if entry is not None and entry.hourly:
        hourly = schedule.get(entry.v2_schedule_key) or {}
        return (
            f"every {_n(hourly.get('interval'))}h from {_hhmm(hourly.get('scheduleWindowStartTime'))} "
            f"for {_n(hourly.get('scheduleWindowDuration'))}h"
        )
    times = _first(schedule, "scheduleRunTimes")
    days = _first(schedule, "scheduleRunDays")
    when = ",".join(_hhmm(t) for t in times)
    return f"{frequency} at {when}" + (f" on {','.join(days)}" if days else "")


def _first(schedule: Mapping[str, Any], key: str) -> list[Any]:
    """A V1 schedule's flat ``key``, else the first V2 nested schedule's (``dailySchedule``...)."""
    nested = [schedule.get(f.v2_schedule_key) or {} for f in FREQUENCIES if not f.hourly]
    return list(schedule.get(key) or next((n[key] for n in nested if n.get(key)), []))


def disk_summary(properties: Mapping[str, Any]) -> str:
    """Selective disk backup as a reviewer reads it, from ``extendedProperties.diskExclusionProperties``."""
    exclusion = (properties.get("extendedProperties") or {}).get("diskExclusionProperties")
    if not isinstance(exclusion, Mapping):
        return ""
    luns = ",".join(_n(lun) for lun in exclusion.get("diskLunList") or [])
    if exclusion.get("isInclusionList"):
        return f"OS + LUN {luns}" if luns else "OS disk only"
    return f"all but LUN {luns}"


def describe(resource: PlannedResource) -> str:
    inputs = resource.inputs
    props: Mapping[str, Any] = inputs.get("properties") or {}
    if resource.type == VAULT_TYPE:
        redundancy = props.get("redundancySettings") or {}
        security = props.get("securitySettings") or {}
        soft = security.get("softDeleteSettings") or {}
        return (
            f"{inputs.get('vaultName')} in {inputs.get('location')}: "
            f"{redundancy.get('standardTierStorageRedundancy')}, CRR {redundancy.get('crossRegionRestore')}, "
            f"soft delete {soft.get('softDeleteState')} ({_n(soft.get('softDeleteRetentionPeriodInDays'))}d), "
            f"immutability {(security.get('immutabilitySettings') or {}).get('state')}, "
            f"public access {props.get('publicNetworkAccess')}" + _vault_operations(props)
        )
    described = _describe_operations(resource.type, inputs, props)
    if described is not None:
        return described
    if resource.type == POLICY_TYPE:
        kind = "Enhanced (V2)" if props.get("policyType") == "V2" else "Standard (V1)"
        return (
            f"{inputs.get('policyName')}: {kind}, {schedule_summary(props)} {props.get('timeZone')}, "
            f"instant restore {_n(props.get('instantRpRetentionRangeInDays'))}d, retention {retention_ladder(props)}"
        )
    if resource.type == ITEM_TYPE:
        vm_id = str(props.get("sourceResourceId", ""))
        ref = ids.match_id(vm_id, ids.VM_ID)
        where = f"{ref.name} (rg {ref.resource_group})" if ref is not None else vm_id
        disks = disk_summary(props)
        return f"{where} -> item {inputs.get('protectedItemName')}" + (f", disks: {disks}" if disks else "")
    if resource.type == VAULT_LOCK_TYPE:
        return f"immutability {inputs.get('immutability')}, soft delete {inputs.get('softDelete')} (never downgraded)"
    if resource.type == VM_PROTECTION_TYPE:
        return f"{str(inputs.get('vmId', '')).split('/')[-1]}: on removal {inputs.get('onRemove')}"
    settings = inputs.get("settings")
    if isinstance(settings, Mapping):
        vms = inputs.get("vmIds") or inputs.get("vm_ids") or []
        return (
            f"{len(vms)} VM(s): verify {settings.get('verify')}, retain {_n(settings.get('retainDays'))}d, "
            f"timeout {_n(settings.get('timeoutMinutes'))}min, poll {_n(settings.get('pollSeconds'))}s"
        )
    return ""


def _vault_operations(props: Mapping[str, Any]) -> str:
    """The vault's alert switches and encryption (issue 17), appended to its row."""
    monitoring = props.get("monitoringSettings") or {}
    job = (monitoring.get("azureMonitorAlertSettings") or {}).get("alertsForAllJobFailures")
    classic = (monitoring.get("classicAlertSettings") or {}).get("alertsForCriticalOperations")
    text = f", job failure alerts {job}, classic alerts {classic}" if monitoring else ""
    encryption = props.get("encryption") or {}
    if encryption:
        key = str((encryption.get("keyVaultProperties") or {}).get("keyUri", ""))
        infra = encryption.get("infrastructureEncryption")
        text += f", CMK {key.split('/keys/')[-1]} (infrastructure encryption {infra})"
    return text


def _describe_operations(kind: str, inputs: Mapping[str, Any], props: Mapping[str, Any]) -> str | None:
    """Rows of the vault's operations resources: shown in the plan and checked by the policy pack;
    the emulator serves none of their APIs, so the rehearsal does not deploy them."""
    last = lambda value: str(value).rsplit("/", 1)[-1]  # noqa: E731
    if kind == ids.LOCK_TYPE:
        return f"{inputs.get('lockName')}: {inputs.get('level')} on the vault"
    if kind == ids.ACTION_GROUP_TYPE:
        hooks = inputs.get("webhookReceivers") or []
        if isinstance(hooks, Mapping):  # a secret (webhook URLs carry tokens): count, never show
            hooks = hooks.get("value") or []
        emails = ", ".join(r.get("emailAddress", "") for r in inputs.get("emailReceivers") or [])
        name = f"{inputs.get('actionGroupName')} ({inputs.get('groupShortName')})"
        return f"{name}: e-mail {emails or 'none'}, {len(hooks)} webhook(s) (secret)"
    if kind == ids.ALERT_RULE_TYPE:
        groups = [g for a in props.get("actions") or [] for g in a.get("actionGroupIds") or []]
        return f"{inputs.get('alertProcessingRuleName')}: vault alerts -> {', '.join(last(g) for g in groups) or '?'}"
    if kind == ids.WORKSPACE_TYPE:
        return f"{inputs.get('workspaceName')}: retention {_n(inputs.get('retentionInDays'))}d"
    if kind == ids.DIAGNOSTIC_TYPE:
        logs = [entry.get("category") for entry in inputs.get("logs") or [] if entry.get("enabled")]
        return (
            f"{len(logs)} backup log tables ({inputs.get('logAnalyticsDestinationType')}) -> "
            f"workspace {last(inputs.get('workspaceId') or 'created here')}"
        )
    if kind == ids.RESOURCE_GUARD_TYPE:
        return f"{inputs.get('resourceGuardsName')} (created next to the vault)"
    if kind == ids.GUARD_PROXY_TYPE:
        guard = str(props.get("resourceGuardResourceId") or "created here")
        sub = guard.split("/")[2] if guard.startswith("/subscriptions/") else "this stack"
        return f"{inputs.get('resourceGuardProxyName')}: guard {last(guard)} (subscription {sub})"
    if kind == ids.PRIVATE_ENDPOINT_TYPE:
        subnet = str((inputs.get("subnet") or {}).get("id", ""))
        groups = [g for c in inputs.get("privateLinkServiceConnections") or [] for g in c.get("groupIds") or []]
        return f"{inputs.get('privateEndpointName')}: {', '.join(groups)} in subnet {last(subnet)}"
    if kind == ids.PRIVATE_DNS_ZONE_GROUP_TYPE:
        zones = [last(z.get("privateDnsZoneId")) for z in inputs.get("privateDnsZoneConfigs") or []]
        return f"zones {', '.join(zones)}"
    return None


_ORDER = list(_SHORT_TYPES)


def render_plan(plan: Plan) -> str:
    """Cloud resources only, in dependency order (components are grouping, not deployments); a
    stack of several vaults is grouped by vault and policy, after a summary of the fleet."""
    custom = [r for r in plan.resources if r.custom]
    custom.sort(key=lambda r: _ORDER.index(r.type) if r.type in _ORDER else len(_ORDER))
    if len(plan.of_type(INITIAL_BACKUP_TYPE)) > 1:
        return render_fleet_plan(custom)
    rows = [(_SHORT_TYPES.get(r.type, r.type), r.name, describe(r)) for r in custom]
    return render_table(("TYPE", "NAME", "KEY SETTINGS"), rows)


def _last(arm_id: Any) -> str:
    return str(arm_id or "").rstrip("/").rsplit("/", 1)[-1]


def _group(resource: PlannedResource) -> tuple[str, str]:
    """(vault name, policy name) a resource belongs to; "" = the vault itself, "~" = after its policies."""
    inputs = resource.inputs
    props: Mapping[str, Any] = inputs.get("properties") or {}
    if resource.type == VAULT_TYPE:
        return str(inputs.get("vaultName")), ""
    if resource.type == POLICY_TYPE:
        return str(inputs.get("vaultName")), str(inputs.get("policyName"))
    if resource.type == ITEM_TYPE:
        return str(inputs.get("vaultName")), _last(props.get("policyId"))
    if resource.type == VM_PROTECTION_TYPE:
        return _last(inputs.get("vaultId")), _last(inputs.get("policyId"))
    if resource.type == VAULT_LOCK_TYPE:
        return _last(inputs.get("vaultId")), ""
    return _last(inputs.get("vaultId")), "~"


def render_fleet_plan(custom: list[PlannedResource]) -> str:
    """A summary row per vault and policy (tier, VM count, disk selections), then every resource
    grouped by vault and policy, in dependency order within each group."""
    vaults = {
        str(r.inputs.get("vaultName")): str(r.inputs.get("location"))
        for r in custom
        if r.type == VAULT_TYPE
    }
    tiers = {
        (str(r.inputs.get("vaultName")), str(r.inputs.get("policyName"))): str(
            (r.inputs.get("tags") or {}).get(TIER_TAG) or "-"
        )
        for r in custom
        if r.type == POLICY_TYPE
    }
    counts: dict[tuple[str, str], list[int]] = {}
    for r in custom:
        if r.type == ITEM_TYPE:
            tally = counts.setdefault(_group(r), [0, 0])
            tally[0] += 1
            tally[1] += 1 if disk_summary(r.inputs.get("properties") or {}) else 0
    summary = [
        (vault, vaults.get(vault, "(existing)"), policy, tiers.get((vault, policy), "-"), str(n), str(selective))
        for (vault, policy), (n, selective) in sorted(counts.items())
    ]
    order = {t: i for i, t in enumerate(_ORDER)}
    custom = sorted(custom, key=lambda r: (*_group(r), order.get(r.type, len(order))))
    rows = []
    for r in custom:
        vault, policy = _group(r)
        shown = "" if policy in ("", "~") else policy
        rows.append((vault, shown, _SHORT_TYPES.get(r.type, r.type), r.name, describe(r)))
    return "\n\n".join(
        [
            render_table(("VAULT", "REGION", "POLICY", "TIER", "VMS", "SELECTIVE DISKS"), summary),
            render_table(("VAULT", "POLICY", "TYPE", "NAME", "KEY SETTINGS"), rows),
        ]
    )
