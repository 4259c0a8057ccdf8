"""Operating a vault: delete lock, failure alerts, backup reports, multi-user authorization,
customer-managed keys and a private endpoint (issue 17).

Proving the first backup says nothing about the second: these settings are what tells a person
that a later job failed (alerts), what Backup Reports read (diagnostic settings), and what stops
one compromised identity from deleting the vault or weakening its protection (lock, Resource
Guard). Settings live under ``protected-vm:vault`` (one vault, one set of operations), are parsed
here rather than in :mod:`components.config` so config keeps one small hunk for them, and every
problem is reported at preview with the setting, the value and what is allowed.

Every resource type outside ``recoveryservices`` is imported only when a stack uses it:
``pulumi_azure_native`` executes a submodule on first import, and ``network`` alone is large
(bench/program_eval.py reports which submodules a stack executes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

if TYPE_CHECKING:  # the policy pack imports this module's constants without the Pulumi program
    import pulumi

#: The six resource-specific tables Backup Reports read (Azure docs "Configure Azure Backup
#: reports", backup-azure-configure-reports: "send data to the resource-specific tables";
#: the same six categories are the diagnostic categories of Microsoft.RecoveryServices/vaults
#: for Azure Backup in "Supported categories for Azure Monitor resource logs").
BACKUP_REPORT_CATEGORIES: Final[tuple[str, ...]] = (
    "CoreAzureBackup",
    "AddonAzureBackupJobs",
    "AddonAzureBackupAlerts",
    "AddonAzureBackupPolicy",
    "AddonAzureBackupStorage",
    "AddonAzureBackupProtectedInstance",
)
#: Resource-specific (not AzureDiagnostics) tables: azure-native monitor.DiagnosticSetting
#: ``logAnalyticsDestinationType``; "Dedicated" is the value the reports doc requires.
DEDICATED: Final = "Dedicated"
#: azure-native recoveryservices.AlertsState / InfrastructureEncryptionState (both Enabled/Disabled),
#: as in specification/recoveryservices/.../stable/2024-10-01/examples/GETVault.json and PUTVault_WithCMK.json.
ALERT_STATES: Final[tuple[str, ...]] = ("Enabled", "Disabled")
LOCK_LEVEL: Final = "CanNotDelete"
#: The proxy's name: azurerm's recovery_services_vault_resource_guard_association acceptance test
#: (TestAccSiteRecoveryVaultResourceGuardAssociation_basic) and the portal use "VaultProxy"; the REST
#: example (recoveryservicesbackup stable/2024-10-01 ResourceGuardProxyCRUD/PutResourceGuardProxy.json)
#: names it "swaggerExample", so no source says other names are refused: one per vault, named as azurerm does.
RESOURCE_GUARD_PROXY_NAME: Final = "VaultProxy"
#: The private endpoint sub-resource of a vault for Azure Backup (Azure docs "Create and use
#: private endpoints for Azure Backup": target sub-resource "AzureBackup").
BACKUP_GROUP_ID: Final = "AzureBackup"
#: azurerm monitor_action_group: short_name validation.StringLenBetween(1, 12).
ACTION_GROUP_SHORT_NAME_MAX: Final = 12
#: azurerm log_analytics_workspace: retention_in_days "7 (Free Tier only) or range between 30 and 730".
WORKSPACE_RETENTION_LIMITS: Final[tuple[int, int]] = (30, 730)

_GUID = r"[0-9a-fA-F-]{36}"
_RG = r"[-\w._()]{1,90}"
_NAME = r"[-\w.]{1,260}"


def _arm_pattern(provider: str) -> re.Pattern[str]:
    return re.compile(rf"^/subscriptions/{_GUID}/resourceGroups/{_RG}/providers/{provider}\Z", re.IGNORECASE)


_ACTION_GROUP_ID = _arm_pattern(rf"microsoft\.insights/actionGroups/{_NAME}")
_WORKSPACE_ID = _arm_pattern(rf"Microsoft\.OperationalInsights/workspaces/{_NAME}")
_RESOURCE_GUARD_ID = _arm_pattern(rf"Microsoft\.DataProtection/resourceGuards/{_NAME}")
_IDENTITY_ID = _arm_pattern(rf"Microsoft\.ManagedIdentity/userAssignedIdentities/{_NAME}")
_SUBNET_ID = _arm_pattern(rf"Microsoft\.Network/virtualNetworks/{_NAME}/subnets/{_NAME}")
_DNS_ZONE_ID = _arm_pattern(rf"Microsoft\.Network/privateDnsZones/{_NAME}")
#: A Key Vault (or managed HSM) key, with or without a version (PUTVault_WithCMK.json has one).
_KEY_URI = re.compile(
    r"^https://[a-z0-9-]{3,24}\.(vault\.azure\.net|managedhsm\.azure\.net)/keys/[a-zA-Z0-9-]{1,127}(/[0-9a-fA-F]{32})?/?\Z"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9][-\w.]{0,62}\Z")

OPERATIONS_KEYS: Final[frozenset[str]] = frozenset(
    {"lock", "alerts", "reports", "multiUserAuthorization", "encryption", "privateEndpoint"}
)
_ALERT_KEYS = {"jobFailureAlerts", "classicAlerts", "actionGroup"}
_ACTION_GROUP_KEYS = {"existingId", "name", "shortName", "emails", "webhooks"}
_REPORT_KEYS = {"workspaceId", "workspaceName", "retentionDays"}
_MUA_KEYS = {"resourceGuardId", "resourceGuardName"}
_ENCRYPTION_KEYS = {"keyUri", "identityId", "infrastructureEncryption"}
_PRIVATE_ENDPOINT_KEYS = {"subnetId", "privateDnsZoneIds"}


@dataclass(frozen=True)
class ActionGroupSettings:
    """Where alerts go: an existing action group, or one this stack creates with receivers."""

    existing_id: str | None = None
    name: str = ""
    short_name: str = ""
    emails: tuple[str, ...] = ()
    #: Webhook URLs often carry a token: they are passed to Azure as secrets, never shown.
    webhooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertSettings:
    """Azure Monitor alerts for job failures on and classic alerts off by default: classic
    alerts are being retired and only Azure Monitor alerts can be routed by an action group."""

    job_failure_alerts: bool = True
    classic_alerts: bool = False
    action_group: ActionGroupSettings | None = None


@dataclass(frozen=True)
class ReportSettings:
    workspace_id: str | None = None
    workspace_name: str | None = None
    retention_days: int = 30


@dataclass(frozen=True)
class MultiUserAuthorizationSettings:
    """A Resource Guard referenced by id (ideally in a subscription the vault's owners cannot
    administer) or, weaker, created next to the vault."""

    resource_guard_id: str | None = None
    resource_guard_name: str | None = None


@dataclass(frozen=True)
class EncryptionSettings:
    key_uri: str
    identity_id: str
    infrastructure_encryption: bool = True


@dataclass(frozen=True)
class PrivateEndpointSettings:
    subnet_id: str
    private_dns_zone_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class OperationsSettings:
    """Secure by default where nothing else is needed (the lock, the vault's own alert settings);
    the rest needs a destination (a workspace, a guard, a key) and is required per environment by
    the policy pack rather than invented here."""

    lock: bool = True
    alerts: AlertSettings = field(default_factory=AlertSettings)
    reports: ReportSettings | None = None
    multi_user_authorization: MultiUserAuthorizationSettings | None = None
    encryption: EncryptionSettings | None = None
    private_endpoint: PrivateEndpointSettings | None = None


# --- parsing ------------------------------------------------------------------------------


def _unknown(raw: Mapping[str, object], known: set[str], setting: str) -> list[str]:
    return [
        f"{setting}.{key} is not a known setting: known settings are {', '.join(sorted(known))}"
        for key in raw
        if key not in known
    ]


def _section(raw: object, setting: str, problems: list[str]) -> Mapping[str, object] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        problems.append(f"{setting} = {raw!r} must be an object")
        return None
    return cast(Mapping[str, object], raw)


def _bool(raw: Mapping[str, object], key: str, setting: str, default: bool, problems: list[str]) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"{setting}.{key} = {value!r} must be true or false")
        return default
    return value


def _id(value: object, setting: str, pattern: re.Pattern[str], example: str, problems: list[str]) -> str | None:
    if not isinstance(value, str) or not pattern.match(value):
        problems.append(f"{setting} = {value!r} is not a valid id: expected {example}")
        return None
    return value


def _name(value: object, setting: str, problems: list[str]) -> str | None:
    if not isinstance(value, str) or not _RESOURCE_NAME.match(value):
        problems.append(f"{setting} = {value!r} is not a valid name: 1-63 letters, digits, '-', '_' or '.'")
        return None
    return value


def _one_of(raw: Mapping[str, object], keys: tuple[str, str], setting: str, problems: list[str]) -> str | None:
    """Reference or create: exactly one of the two keys."""
    present = [k for k in keys if raw.get(k) is not None]
    if len(present) != 1:
        problems.append(
            f"{setting} needs exactly one of {keys[0]} (reference an existing one) or {keys[1]} (create one)"
            + ("; both are set" if len(present) == 2 else "")
        )
        return None
    return present[0]


def _strings(raw: object, setting: str, problems: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)) or not all(isinstance(x, str) for x in raw):
        problems.append(f"{setting} = {raw!r} must be a list of strings")
        return ()
    return tuple(raw)


def parse_operations(
    raw: Mapping[str, object], setting: str, public_network_access: object, problems: list[str]
) -> OperationsSettings:
    """The operations keys of one vault section (``protected-vm:vault``); other keys are the
    caller's. ``public_network_access`` is the vault's, for the private endpoint's cross-check."""
    lock = _bool(raw, "lock", setting, True, problems)
    alerts = _parse_alerts(_section(raw.get("alerts"), f"{setting}.alerts", problems), f"{setting}.alerts", problems)
    reports_raw = _section(raw.get("reports"), f"{setting}.reports", problems)
    reports = None if reports_raw is None else _parse_reports(reports_raw, f"{setting}.reports", problems)
    mua_raw = _section(raw.get("multiUserAuthorization"), f"{setting}.multiUserAuthorization", problems)
    mua = None if mua_raw is None else _parse_mua(mua_raw, f"{setting}.multiUserAuthorization", problems)
    enc_raw = _section(raw.get("encryption"), f"{setting}.encryption", problems)
    encryption = None if enc_raw is None else _parse_encryption(enc_raw, f"{setting}.encryption", problems)
    pe_raw = _section(raw.get("privateEndpoint"), f"{setting}.privateEndpoint", problems)
    endpoint = None if pe_raw is None else _parse_private_endpoint(pe_raw, f"{setting}.privateEndpoint", problems)
    if pe_raw is not None and public_network_access != "Disabled":
        problems.append(
            f"{setting}.privateEndpoint needs {setting}.publicNetworkAccess = 'Disabled' "
            f"(it is {public_network_access!r}): a private endpoint next to a public one protects nothing"
        )
    if pe_raw is not None and enc_raw is not None:
        # Azure docs "Encryption of backup data using customer-managed keys": vaults using a
        # user-assigned identity for CMK do not support private endpoints for Azure Backup
        # (also stated by Azure/terraform-azurerm-avm-res-recoveryservices-vault's README).
        problems.append(
            f"{setting}.privateEndpoint cannot be combined with {setting}.encryption: Azure Backup does not "
            "support private endpoints on a vault that uses a user-assigned identity for customer-managed keys"
        )
    return OperationsSettings(lock, alerts, reports, mua, encryption, endpoint)


def _parse_alerts(raw: Mapping[str, object] | None, setting: str, problems: list[str]) -> AlertSettings:
    if raw is None:
        return AlertSettings()
    problems.extend(_unknown(raw, _ALERT_KEYS, setting))
    job = _bool(raw, "jobFailureAlerts", setting, True, problems)
    classic = _bool(raw, "classicAlerts", setting, False, problems)
    group_raw = _section(raw.get("actionGroup"), f"{setting}.actionGroup", problems)
    group = None if group_raw is None else _parse_action_group(group_raw, f"{setting}.actionGroup", problems)
    if group_raw is not None and not job:
        problems.append(
            f"{setting}.actionGroup routes the vault's Azure Monitor alerts, but {setting}.jobFailureAlerts is "
            "false: no job failure alert would reach it"
        )
    return AlertSettings(job, classic, group)


def _parse_action_group(raw: Mapping[str, object], setting: str, problems: list[str]) -> ActionGroupSettings:
    problems.extend(_unknown(raw, _ACTION_GROUP_KEYS, setting))
    which = _one_of(raw, ("existingId", "name"), setting, problems)
    if which == "existingId":
        for key in ("shortName", "emails", "webhooks"):
            if key in raw:
                problems.append(f"{setting}.{key} is only allowed when the stack creates the action group (name)")
        found = _id(
            raw["existingId"],
            f"{setting}.existingId",
            _ACTION_GROUP_ID,
            "/subscriptions/<guid>/resourceGroups/<rg>/providers/microsoft.insights/actionGroups/<name>",
            problems,
        )
        return ActionGroupSettings(existing_id=found)
    if which is None:
        return ActionGroupSettings()
    name = _name(raw["name"], f"{setting}.name", problems) or ""
    short = raw.get("shortName", name[:ACTION_GROUP_SHORT_NAME_MAX])
    if not isinstance(short, str) or not 1 <= len(short) <= ACTION_GROUP_SHORT_NAME_MAX:
        problems.append(
            f"{setting}.shortName = {short!r} must be 1-{ACTION_GROUP_SHORT_NAME_MAX} characters "
            "(Azure shows it in SMS and e-mail)"
        )
        short = ""
    emails = _strings(raw.get("emails"), f"{setting}.emails", problems)
    for index, email in enumerate(emails):
        if not _EMAIL.match(email):
            problems.append(f"{setting}.emails[{index}] = {email!r} is not an e-mail address")
    webhooks = _strings(raw.get("webhooks"), f"{setting}.webhooks", problems)
    for index, hook in enumerate(webhooks):
        if not hook.startswith("https://") or len(hook) <= len("https://"):
            # The URL itself is never echoed: it may carry a token.
            problems.append(f"{setting}.webhooks[{index}] must be an https:// URL")
    if not emails and not webhooks and "emails" not in raw and "webhooks" not in raw:
        problems.append(f"{setting} needs at least one receiver: emails or webhooks")
    return ActionGroupSettings(None, name, str(short), emails, webhooks)


def _parse_reports(raw: Mapping[str, object], setting: str, problems: list[str]) -> ReportSettings:
    problems.extend(_unknown(raw, _REPORT_KEYS, setting))
    which = _one_of(raw, ("workspaceId", "workspaceName"), setting, problems)
    low, high = WORKSPACE_RETENTION_LIMITS
    retention = raw.get("retentionDays", low)
    if which == "workspaceId" and "retentionDays" in raw:
        problems.append(f"{setting}.retentionDays is only allowed when the stack creates the workspace (workspaceName)")
    elif isinstance(retention, bool) or not isinstance(retention, int):
        problems.append(f"{setting}.retentionDays = {retention!r} must be a whole number from {low} to {high} days")
        retention = low
    elif not low <= retention <= high:
        problems.append(f"{setting}.retentionDays = {retention} is out of range: allowed {low}-{high} days")
        retention = low
    if which == "workspaceId":
        found = _id(
            raw["workspaceId"],
            f"{setting}.workspaceId",
            _WORKSPACE_ID,
            "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>",
            problems,
        )
        return ReportSettings(workspace_id=found)
    if which == "workspaceName":
        return ReportSettings(
            workspace_name=_name(raw["workspaceName"], f"{setting}.workspaceName", problems),
            retention_days=cast(int, retention),
        )
    return ReportSettings()


def _parse_mua(raw: Mapping[str, object], setting: str, problems: list[str]) -> MultiUserAuthorizationSettings:
    problems.extend(_unknown(raw, _MUA_KEYS, setting))
    which = _one_of(raw, ("resourceGuardId", "resourceGuardName"), setting, problems)
    if which == "resourceGuardId":
        found = _id(
            raw["resourceGuardId"],
            f"{setting}.resourceGuardId",
            _RESOURCE_GUARD_ID,
            "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.DataProtection/resourceGuards/<name>",
            problems,
        )
        return MultiUserAuthorizationSettings(resource_guard_id=found)
    if which == "resourceGuardName":
        return MultiUserAuthorizationSettings(
            resource_guard_name=_name(raw["resourceGuardName"], f"{setting}.resourceGuardName", problems)
        )
    return MultiUserAuthorizationSettings()


def _parse_encryption(raw: Mapping[str, object], setting: str, problems: list[str]) -> EncryptionSettings:
    problems.extend(_unknown(raw, _ENCRYPTION_KEYS, setting))
    key_uri = raw.get("keyUri")
    if not isinstance(key_uri, str) or not _KEY_URI.match(key_uri):
        problems.append(
            f"{setting}.keyUri = {key_uri!r} is not a Key Vault key URI: expected "
            "https://<key-vault>.vault.azure.net/keys/<key>[/<version>]"
        )
    identity = _id(
        raw.get("identityId"),
        f"{setting}.identityId",
        _IDENTITY_ID,
        "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>",
        problems,
    )
    infra = _bool(raw, "infrastructureEncryption", setting, True, problems)
    return EncryptionSettings(str(key_uri or ""), identity or "", infra)


def _parse_private_endpoint(raw: Mapping[str, object], setting: str, problems: list[str]) -> PrivateEndpointSettings:
    problems.extend(_unknown(raw, _PRIVATE_ENDPOINT_KEYS, setting))
    subnet = _id(
        raw.get("subnetId"),
        f"{setting}.subnetId",
        _SUBNET_ID,
        "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>",
        problems,
    )
    zones = _strings(raw.get("privateDnsZoneIds"), f"{setting}.privateDnsZoneIds", problems)
    for index, zone in enumerate(zones):
        _id(
            zone,
            f"{setting}.privateDnsZoneIds[{index}]",
            _DNS_ZONE_ID,
            "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Network/privateDnsZones/<zone>",
            problems,
        )
    return PrivateEndpointSettings(subnet or "", zones)


# --- resources ------------------------------------------------------------------------------


def monitoring_settings(alerts: AlertSettings) -> Any:
    """The vault's ``properties.monitoringSettings``."""
    from pulumi_azure_native import recoveryservices as rs

    return rs.MonitoringSettingsArgs(
        azure_monitor_alert_settings=rs.AzureMonitorAlertSettingsArgs(
            alerts_for_all_job_failures="Enabled" if alerts.job_failure_alerts else "Disabled"
        ),
        classic_alert_settings=rs.ClassicAlertSettingsArgs(
            alerts_for_critical_operations="Enabled" if alerts.classic_alerts else "Disabled"
        ),
    )


def encryption_args(encryption: EncryptionSettings) -> Any:
    """The vault's ``properties.encryption`` (PUTVault_WithCMK.json's shape)."""
    from pulumi_azure_native import recoveryservices as rs

    return rs.VaultPropertiesEncryptionArgs(
        key_vault_properties=rs.CmkKeyVaultPropertiesArgs(key_uri=encryption.key_uri),
        kek_identity=rs.CmkKekIdentityArgs(
            user_assigned_identity=encryption.identity_id, use_system_assigned_identity=False
        ),
        infrastructure_encryption="Enabled" if encryption.infrastructure_encryption else "Disabled",
    )


def vault_identity(encryption: EncryptionSettings | None) -> Any:
    """The user-assigned identity the key is read with; no identity block without CMK, so existing
    vaults' inputs do not change."""
    if encryption is None:
        return None
    from pulumi_azure_native import recoveryservices as rs

    return rs.IdentityDataArgs(type="UserAssigned", user_assigned_identities=[encryption.identity_id])


@dataclass
class OperationsResources:
    """What :func:`add_operations` registered (None where the stack does not use it)."""

    lock: pulumi.CustomResource | None = None
    action_group: pulumi.CustomResource | None = None
    alert_rule: pulumi.CustomResource | None = None
    workspace: pulumi.CustomResource | None = None
    diagnostics: pulumi.CustomResource | None = None
    resource_guard: pulumi.CustomResource | None = None
    guard_proxy: pulumi.CustomResource | None = None
    private_endpoint: pulumi.CustomResource | None = None
    dns_zone_group: pulumi.CustomResource | None = None
    all: list[pulumi.CustomResource] = field(default_factory=list)


def add_operations(
    name: str,
    *,
    settings: OperationsSettings,
    vault: pulumi.CustomResource,
    vault_id: pulumi.Input[str],
    vault_name: str,
    resource_group: str,
    location: str | None,
    tags: Mapping[str, str] | None,
    parent: pulumi.Resource,
) -> OperationsResources:
    """Register the vault's operations resources as children of the vault component. All of them
    depend on the vault; none of them is a parent of anything existing, so no URN moves."""
    import pulumi

    made = OperationsResources()
    after = pulumi.ResourceOptions(parent=parent, depends_on=[vault])
    tag_map = dict(tags) if tags else None

    if settings.lock:
        from pulumi_azure_native import authorization

        # ManagementLockByScope takes the vault's ARM id as its scope (Microsoft.Authorization/locks
        # as an extension resource, as the AVM vault module deploys it); AtResourceLevel would need
        # the id split into provider, type and parent path again.
        made.lock = authorization.ManagementLockByScope(
            f"{name}-delete-lock",
            scope=vault_id,
            lock_name=f"{vault_name}-cannot-delete",
            level=LOCK_LEVEL,
            notes="protected-vm: the vault holds every recovery point of the stack's VMs",
            opts=after,
        )

    group = settings.alerts.action_group
    if group is not None:
        from pulumi_azure_native import alertsmanagement, monitor

        group_id: pulumi.Input[str]
        if group.existing_id:
            group_id = group.existing_id
        else:
            made.action_group = monitor.ActionGroup(
                f"{name}-action-group",
                action_group_name=group.name,
                resource_group_name=resource_group,
                group_short_name=group.short_name,
                enabled=True,
                location="Global",
                email_receivers=[
                    monitor.MicrosoftCommonEmailReceiverArgs(
                        name=f"email-{i + 1}", email_address=email, use_common_alert_schema=True
                    )
                    for i, email in enumerate(group.emails)
                ]
                or None,
                webhook_receivers=[
                    monitor.WebhookReceiverArgs(
                        name=f"webhook-{i + 1}", service_uri=pulumi.Output.secret(hook), use_common_alert_schema=True
                    )
                    for i, hook in enumerate(group.webhooks)
                ]
                or None,
                tags=tag_map,
                opts=pulumi.ResourceOptions(parent=parent),
            )
            group_id = made.action_group.id
        # Built-in Azure Monitor alerts of a vault are not sent anywhere by themselves: an alert
        # processing rule scoped to the vault adds the action group (Azure docs "Monitoring and
        # reporting solutions for Azure Backup" / "Configure notifications for alerts").
        made.alert_rule = alertsmanagement.AlertProcessingRuleByName(
            f"{name}-alert-routing",
            alert_processing_rule_name=f"apr-{vault_name}",
            resource_group_name=resource_group,
            location="Global",
            properties=alertsmanagement.AlertProcessingRulePropertiesArgs(
                scopes=[vault_id],
                actions=[
                    alertsmanagement.AddActionGroupsArgs(action_type="AddActionGroups", action_group_ids=[group_id])
                ],
                enabled=True,
                description="protected-vm: route the vault's backup alerts to the action group",
            ),
            tags=tag_map,
            opts=after,
        )

    reports = settings.reports
    if reports is not None:
        from pulumi_azure_native import monitor

        workspace_id: pulumi.Input[str]
        if reports.workspace_id:
            workspace_id = reports.workspace_id
        else:
            from pulumi_azure_native import operationalinsights

            made.workspace = operationalinsights.Workspace(
                f"{name}-workspace",
                workspace_name=str(reports.workspace_name),
                resource_group_name=resource_group,
                location=location,
                sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
                retention_in_days=reports.retention_days,
                tags=tag_map,
                opts=pulumi.ResourceOptions(parent=parent),
            )
            workspace_id = made.workspace.id
        made.diagnostics = monitor.DiagnosticSetting(
            f"{name}-reports",
            name="backup-reports",
            resource_uri=vault_id,
            workspace_id=workspace_id,
            log_analytics_destination_type=DEDICATED,
            logs=[monitor.DiagnosticsLogSettingsArgs(category=c, enabled=True) for c in BACKUP_REPORT_CATEGORIES],
            opts=after,
        )

    mua = settings.multi_user_authorization
    if mua is not None:
        from pulumi_azure_native import recoveryservices as rs

        guard_id: pulumi.Input[str]
        if mua.resource_guard_id:
            guard_id = mua.resource_guard_id
        else:
            from pulumi_azure_native import dataprotection

            made.resource_guard = dataprotection.ResourceGuard(
                f"{name}-resource-guard",
                resource_guards_name=str(mua.resource_guard_name),
                resource_group_name=resource_group,
                location=location,
                properties=dataprotection.ResourceGuardArgs(),
                tags=tag_map,
                opts=pulumi.ResourceOptions(parent=parent),
            )
            guard_id = made.resource_guard.id
        made.guard_proxy = rs.ResourceGuardProxy(
            f"{name}-mua",
            resource_guard_proxy_name=RESOURCE_GUARD_PROXY_NAME,
            vault_name=vault_name,
            resource_group_name=resource_group,
            properties=rs.ResourceGuardProxyBaseArgs(resource_guard_resource_id=guard_id),
            opts=after,
        )

    endpoint = settings.private_endpoint
    if endpoint is not None:
        from pulumi_azure_native import network

        pe_name = f"pe-{vault_name}-backup"
        made.private_endpoint = network.PrivateEndpoint(
            f"{name}-private-endpoint",
            private_endpoint_name=pe_name,
            resource_group_name=resource_group,
            location=location,
            subnet=network.SubnetArgs(id=endpoint.subnet_id),
            private_link_service_connections=[
                network.PrivateLinkServiceConnectionArgs(
                    name=pe_name, private_link_service_id=vault_id, group_ids=[BACKUP_GROUP_ID]
                )
            ],
            tags=tag_map,
            opts=after,
        )
        if endpoint.private_dns_zone_ids:
            made.dns_zone_group = network.PrivateDnsZoneGroup(
                f"{name}-private-dns",
                private_dns_zone_group_name="default",
                private_endpoint_name=pe_name,
                resource_group_name=resource_group,
                private_dns_zone_configs=[
                    network.PrivateDnsZoneConfigArgs(
                        name=zone.rsplit("/", 1)[-1].replace(".", "-"), private_dns_zone_id=zone
                    )
                    for zone in endpoint.private_dns_zone_ids
                ],
                opts=pulumi.ResourceOptions(parent=parent, depends_on=[made.private_endpoint]),
            )
    made.all = [
        r
        for r in (
            made.lock,
            made.action_group,
            made.alert_rule,
            made.workspace,
            made.diagnostics,
            made.resource_guard,
            made.guard_proxy,
            made.private_endpoint,
            made.dns_zone_group,
        )
        if r is not None
    ]
    return made

