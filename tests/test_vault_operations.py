"""Issue 17: the vault's lock, alerts, reports, multi-user authorization, CMK and private endpoint.

Each test names the Azure property it proves: config is validated at preview with exact
messages, the program sends the property Azure reads, and the policy pack fails a stack whose
environment requires it and does not have it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.config import VaultSettings, parse_config_values
from components.program import deploy
from components.validation import ValidationError
from components.vault_operations import BACKUP_REPORT_CATEGORIES
from policies import rules
from policies.rules import StackResource, vault_operations_problems
from policies.runner import load_env_config, run_policies
from policies.thresholds import OperationsRequirements, VaultRequirements
from testing.mock_preview import Plan, PlannedResource, evaluate, load_stack_config

NS = "protected-vm"
ROOT = Path(__file__).resolve().parent.parent
PROD_SUB = "00000000-0000-0000-0000-0000000000a1"
PROD_VAULT_ID = (
    f"/subscriptions/{PROD_SUB}/resourceGroups/rg-backup-prod/providers/Microsoft.RecoveryServices/vaults/rsv-pvm-prod-weu"
)
GUARD_ID = (
    "/subscriptions/00000000-0000-0000-0000-0000000000e1/resourceGroups/rg-security-guards/providers/"
    "Microsoft.DataProtection/resourceGuards/rg-guard-backup-prod"
)
WORKSPACE_ID = (
    "/subscriptions/00000000-0000-0000-0000-0000000000c1/resourceGroups/rg-monitoring-prod/providers/"
    "Microsoft.OperationalInsights/workspaces/log-central-prod"
)
IDENTITY_ID = (
    "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg-backup-prod/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/id-rsv-cmk"
)
KEY_URI = "https://kv-pvm-prod.vault.azure.net/keys/rsv-cmk"
SUBNET_ID = (
    "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg-net-prod/providers/"
    "Microsoft.Network/virtualNetworks/vnet-prod/subnets/snet-pe"
)
ZONE_ID = (
    "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg-net-prod/providers/"
    "Microsoft.Network/privateDnsZones/privatelink.we.backup.windowsazure.com"
)


def stack_config(stack: str, **vault_changes: Any) -> dict[str, str]:
    """The real stack file with keys of ``protected-vm:vault`` replaced (None removes one)."""
    config = load_stack_config(stack)
    vault = json.loads(config[f"{NS}:vault"])
    for key, value in vault_changes.items():
        if value is None:
            vault.pop(key, None)
        else:
            vault[key] = value
    config[f"{NS}:vault"] = json.dumps(vault)
    return config


def problems_of(stack: str, **vault_changes: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_config_values(stack_config(stack, **vault_changes), NS)
    return caught.value.problems


def plan_of(stack: str, **vault_changes: Any) -> Plan:
    return evaluate(deploy, stack_config(stack, **vault_changes), stack)


def one(plan: Plan, type_token: str) -> PlannedResource:
    found = plan.of_type(type_token)
    assert len(found) == 1, [r.name for r in plan.resources]
    return found[0]


# --- defaults and stack files --------------------------------------------------------------------


def test_defaults_are_the_secure_ones_lock_on_job_failure_alerts_on_classic_alerts_off() -> None:
    operations = VaultSettings().operations
    assert operations.lock is True
    assert (operations.alerts.job_failure_alerts, operations.alerts.classic_alerts) == (True, False)
    assert (operations.reports, operations.multi_user_authorization, operations.encryption) == (None, None, None)


def test_the_prod_stack_file_has_lock_alert_routing_reports_and_multi_user_authorization() -> None:
    operations = parse_config_values(load_stack_config("prod"), NS).vault.operations
    assert operations.lock is True
    assert operations.alerts.action_group is not None and operations.alerts.action_group.emails
    assert operations.reports is not None and operations.reports.workspace_id == WORKSPACE_ID
    assert operations.multi_user_authorization is not None
    assert operations.multi_user_authorization.resource_guard_id == GUARD_ID


# --- validation at preview: exact messages -------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"lock": "yes"}, ["vault.lock = 'yes' must be true or false"]),
        ({"alerts": {"jobFailureAlerts": "on"}}, ["vault.alerts.jobFailureAlerts = 'on' must be true or false"]),
        (
            {"alerts": {"classicAlert": False}},
            [
                "vault.alerts.classicAlert is not a known setting: known settings are actionGroup, classicAlerts, "
                "jobFailureAlerts"
            ],
        ),
        (
            {"alerts": {"jobFailureAlerts": False, "actionGroup": {"name": "ag-x", "emails": ["a@example.com"]}}},
            [
                "vault.alerts.actionGroup routes the vault's Azure Monitor alerts, but vault.alerts.jobFailureAlerts "
                "is false: no job failure alert would reach it"
            ],
        ),
        (
            {"alerts": {"actionGroup": {"name": "ag-x"}}},
            ["vault.alerts.actionGroup needs at least one receiver: emails or webhooks"],
        ),
        (
            {"alerts": {"actionGroup": {"name": "ag-x", "emails": ["oncall"], "webhooks": ["http://h.example/t0k3n"]}}},
            [
                "vault.alerts.actionGroup.emails[0] = 'oncall' is not an e-mail address",
                "vault.alerts.actionGroup.webhooks[0] must be an https:// URL",
            ],
        ),
        (
            {"alerts": {"actionGroup": {"name": "ag-x", "shortName": "much-too-long", "emails": ["a@example.com"]}}},
            [
                "vault.alerts.actionGroup.shortName = 'much-too-long' must be 1-12 characters "
                "(Azure shows it in SMS and e-mail)"
            ],
        ),
        (
            {"alerts": {"actionGroup": {"existingId": "ag-x", "name": "ag-x"}}},
            [
                "vault.alerts.actionGroup needs exactly one of existingId (reference an existing one) or name "
                "(create one); both are set"
            ],
        ),
        (
            {"reports": {"workspaceName": "log-x", "retentionDays": 10}},
            ["vault.reports.retentionDays = 10 is out of range: allowed 30-730 days"],
        ),
        (
            {"reports": {"workspaceId": "log-central-prod"}},
            [
                "vault.reports.workspaceId = 'log-central-prod' is not a valid id: expected /subscriptions/<guid>/"
                "resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>"
            ],
        ),
        (
            {"reports": {}},
            [
                "vault.reports needs exactly one of workspaceId (reference an existing one) or workspaceName "
                "(create one)"
            ],
        ),
        (
            {"multiUserAuthorization": {"resourceGuardId": WORKSPACE_ID}},
            [
                f"vault.multiUserAuthorization.resourceGuardId = {WORKSPACE_ID!r} is not a valid id: expected "
                "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.DataProtection/resourceGuards/<name>"
            ],
        ),
        (
            {"encryption": {"keyUri": "http://kv.example/keys/k", "identityId": IDENTITY_ID}},
            [
                "vault.encryption.keyUri = 'http://kv.example/keys/k' is not a Key Vault key URI: expected "
                "https://<key-vault>.vault.azure.net/keys/<key>[/<version>]"
            ],
        ),
        (
            {"publicNetworkAccess": "Enabled", "privateEndpoint": {"subnetId": SUBNET_ID}},
            [
                "vault.privateEndpoint needs vault.publicNetworkAccess = 'Disabled' (it is 'Enabled'): a private "
                "endpoint next to a public one protects nothing"
            ],
        ),
        (
            {
                "privateEndpoint": {"subnetId": SUBNET_ID},
                "encryption": {"keyUri": KEY_URI, "identityId": IDENTITY_ID},
            },
            [
                "vault.privateEndpoint cannot be combined with vault.encryption: Azure Backup does not support "
                "private endpoints on a vault that uses a user-assigned identity for customer-managed keys"
            ],
        ),
    ],
    ids=[
        "lock-not-bool",
        "job-alerts-not-bool",
        "alerts-typo",
        "routing-without-alerts",
        "no-receivers",
        "bad-receivers-url-not-echoed",
        "short-name-too-long",
        "reference-and-create",
        "workspace-retention",
        "workspace-id-shape",
        "reports-empty",
        "guard-id-of-another-type",
        "key-uri-not-https",
        "private-endpoint-with-public-access",
        "private-endpoint-with-cmk",
    ],
)
def test_bad_operations_settings_fail_preview_naming_the_setting(changes: dict[str, Any], expected: list[str]) -> None:
    assert problems_of("prod", **changes) == expected


# --- what the program sends to Azure -------------------------------------------------------------


def test_vault_properties_monitoringSettings_turn_job_failure_alerts_on_and_classic_alerts_off() -> None:
    vault = one(plan_of("prod"), rules.VAULT_TYPE)
    monitoring = vault.inputs["properties"]["monitoringSettings"]
    assert monitoring == {
        "azureMonitorAlertSettings": {"alertsForAllJobFailures": "Enabled"},
        "classicAlertSettings": {"alertsForCriticalOperations": "Disabled"},
    }


def test_vault_lock_is_a_ManagementLockByScope_CanNotDelete_whose_scope_is_the_vault_id() -> None:
    lock = one(plan_of("prod"), rules.LOCK_TYPE)
    assert (lock.inputs["scope"], lock.inputs["level"]) == (PROD_VAULT_ID, "CanNotDelete")
    assert plan_of("dev").of_type(rules.LOCK_TYPE) == []  # dev sets lock: false


def test_alert_processing_rule_scopes_the_vault_and_AddActionGroups_the_created_action_group() -> None:
    plan = plan_of("prod")
    group = one(plan, "azure-native:monitor:ActionGroup")
    assert group.inputs["emailReceivers"] == [
        {"name": "email-1", "emailAddress": "backup-oncall@example.com", "useCommonAlertSchema": True}
    ]
    rule = one(plan, rules.ALERT_RULE_TYPE)
    assert rule.inputs["properties"]["scopes"] == [PROD_VAULT_ID]
    assert rule.inputs["properties"]["actions"] == [{"actionType": "AddActionGroups", "actionGroupIds": [group.id]}]


def test_webhook_receivers_serviceUri_is_sent_as_a_secret() -> None:
    group = one(plan_of("prod"), "azure-native:monitor:ActionGroup")
    hooks = group.inputs["webhookReceivers"]
    assert isinstance(hooks, dict) and "4dabf18193072939515e22adb298388d" in hooks  # Pulumi's secret signature
    assert hooks["value"][0]["serviceUri"] == "https://oncall.example.com/hooks/azure-backup"


def test_an_existing_action_group_id_is_routed_without_creating_one() -> None:
    existing = (
        f"/subscriptions/{PROD_SUB}/resourceGroups/rg-monitoring-prod/providers/microsoft.insights/actionGroups/ag-central"
    )
    plan = plan_of("prod", alerts={"actionGroup": {"existingId": existing}})
    assert plan.of_type("azure-native:monitor:ActionGroup") == []
    rule = one(plan, rules.ALERT_RULE_TYPE)
    assert rule.inputs["properties"]["actions"][0]["actionGroupIds"] == [existing]


def test_diagnostic_setting_sends_the_six_backup_report_tables_Dedicated_to_the_workspace() -> None:
    setting = one(plan_of("prod"), rules.DIAGNOSTIC_TYPE)
    assert setting.inputs["resourceUri"] == PROD_VAULT_ID
    assert setting.inputs["workspaceId"] == WORKSPACE_ID
    assert setting.inputs["logAnalyticsDestinationType"] == "Dedicated"
    assert [(log["category"], log["enabled"]) for log in setting.inputs["logs"]] == [
        ("CoreAzureBackup", True),
        ("AddonAzureBackupJobs", True),
        ("AddonAzureBackupAlerts", True),
        ("AddonAzureBackupPolicy", True),
        ("AddonAzureBackupStorage", True),
        ("AddonAzureBackupProtectedInstance", True),
    ]


def test_a_created_workspace_has_retentionInDays_and_feeds_the_diagnostic_setting() -> None:
    plan = plan_of("staging")
    workspace = one(plan, "azure-native:operationalinsights:Workspace")
    assert (workspace.inputs["workspaceName"], workspace.inputs["retentionInDays"]) == ("log-pvm-backup-stg", 30)
    assert workspace.inputs["sku"] == {"name": "PerGB2018"}
    assert one(plan, rules.DIAGNOSTIC_TYPE).inputs["workspaceId"] == workspace.id


def test_resource_guard_proxy_VaultProxy_carries_resourceGuardResourceId_of_another_subscription() -> None:
    proxy = one(plan_of("prod"), rules.GUARD_PROXY_TYPE)
    assert proxy.inputs["resourceGuardProxyName"] == "VaultProxy"
    assert (proxy.inputs["vaultName"], proxy.inputs["resourceGroupName"]) == ("rsv-pvm-prod-weu", "rg-backup-prod")
    assert proxy.inputs["properties"] == {"resourceGuardResourceId": GUARD_ID}


def test_a_created_resource_guard_is_the_one_the_proxy_names() -> None:
    plan = plan_of("staging", multiUserAuthorization={"resourceGuardName": "guard-stg"})
    guard = one(plan, "azure-native:dataprotection:ResourceGuard")
    assert guard.inputs["resourceGuardsName"] == "guard-stg"
    assert one(plan, rules.GUARD_PROXY_TYPE).inputs["properties"]["resourceGuardResourceId"] == guard.id


def test_vault_properties_encryption_uses_keyUri_the_user_assigned_kekIdentity_and_infrastructureEncryption() -> None:
    vault = one(plan_of("prod", encryption={"keyUri": KEY_URI, "identityId": IDENTITY_ID}), rules.VAULT_TYPE)
    assert vault.inputs["properties"]["encryption"] == {
        "keyVaultProperties": {"keyUri": KEY_URI},
        "kekIdentity": {"userAssignedIdentity": IDENTITY_ID, "useSystemAssignedIdentity": False},
        "infrastructureEncryption": "Enabled",
    }
    assert vault.inputs["identity"]["type"] == "UserAssigned"
    assert IDENTITY_ID in json.dumps(vault.inputs["identity"]["userAssignedIdentities"])


def test_without_encryption_the_vault_sends_no_identity_and_no_encryption() -> None:
    vault = one(plan_of("prod"), rules.VAULT_TYPE)
    assert "identity" not in vault.inputs
    assert "encryption" not in vault.inputs["properties"]


def test_private_endpoint_groupIds_AzureBackup_on_the_vault_with_a_private_dns_zone_group() -> None:
    plan = plan_of("prod", privateEndpoint={"subnetId": SUBNET_ID, "privateDnsZoneIds": [ZONE_ID]})
    endpoint = one(plan, "azure-native:network:PrivateEndpoint")
    assert endpoint.inputs["subnet"]["id"] == SUBNET_ID
    assert endpoint.inputs["privateLinkServiceConnections"] == [
        {"name": "pe-rsv-pvm-prod-weu-backup", "privateLinkServiceId": PROD_VAULT_ID, "groupIds": ["AzureBackup"]}
    ]
    zones = one(plan, "azure-native:network:PrivateDnsZoneGroup")
    assert zones.inputs["privateEndpointName"] == "pe-rsv-pvm-prod-weu-backup"
    assert zones.inputs["privateDnsZoneConfigs"] == [
        {"name": "privatelink-we-backup-windowsazure-com", "privateDnsZoneId": ZONE_ID}
    ]


def test_only_the_azure_native_submodules_a_stack_uses_are_executed() -> None:
    """pulumi_azure_native stays lazy: prod executes the modules of its lock, alerts, reports and
    proxy, never network or dataprotection (which it does not use)."""
    code = (
        "import sys, pulumi._utils as u\n"
        "from testing.mock_preview import evaluate_stack\n"
        "evaluate_stack(sys.argv[1])\n"
        "print(','.join(sorted(k for k, v in list(sys.modules.items()) if k.startswith('pulumi_azure_native.')"
        " and k.count('.') == 1 and type(v) is not u._LazyModule)))\n"
    )
    loaded = {}
    for stack in ("dev", "prod"):
        out = subprocess.run([sys.executable, "-c", code, stack], cwd=ROOT, capture_output=True, text=True, check=True)
        loaded[stack] = out.stdout.strip().split(",")
    assert loaded["dev"] == ["pulumi_azure_native._utilities", "pulumi_azure_native.provider",
                             "pulumi_azure_native.recoveryservices"]
    assert loaded["prod"] == [
        "pulumi_azure_native._utilities",
        "pulumi_azure_native.alertsmanagement",
        "pulumi_azure_native.authorization",
        "pulumi_azure_native.monitor",
        "pulumi_azure_native.provider",
        "pulumi_azure_native.recoveryservices",
    ]


# --- the policy pack -----------------------------------------------------------------------------


def test_the_prod_stack_passes_prods_policies() -> None:
    assert run_policies(plan_of("prod").resources, load_env_config("prod"), stack="prod") == []


def test_a_prod_stack_without_lock_alerts_reports_and_mua_fails_prod_mandatorily() -> None:
    plan = plan_of("prod", lock=False, alerts={}, reports=None, multiUserAuthorization=None)
    violations = [v for v in run_policies(plan.resources, load_env_config("prod"), stack="prod")]
    assert [(v.policy, v.enforcement_level, v.resource_name) for v in violations] == [
        ("vault-operations", "mandatory", "backup-vault")
    ] * 4
    subject = "Vault 'backup-vault'"
    assert [v.message for v in violations] == [
        f"{subject} has no delete lock: no azure-native:authorization:ManagementLockByScope with level "
        "'CanNotDelete' has the vault as its scope (this environment requires one; set protected-vm:vault.lock: true)",
        f"{subject} has no alert routing: no enabled azure-native:alertsmanagement:AlertProcessingRuleByName with an "
        "AddActionGroups action has the vault in properties.scopes, so failed-job alerts reach nobody (this "
        "environment requires it; set protected-vm:vault.alerts.actionGroup)",
        f"{subject} has no backup reports: no azure-native:monitor:DiagnosticSetting has the vault as resourceUri "
        f"(this environment requires {', '.join(BACKUP_REPORT_CATEGORIES)} sent to a Log Analytics workspace with "
        "logAnalyticsDestinationType 'Dedicated'; set protected-vm:vault.reports)",
        f"{subject} has no multi-user authorization: no azure-native:recoveryservices:ResourceGuardProxy associates "
        "a Resource Guard (properties.resourceGuardResourceId) with the vault (this environment requires one; set "
        "protected-vm:vault.multiUserAuthorization)",
    ]
    # the same stack is fine where dev's rules apply
    dev = run_policies(plan.resources, load_env_config("dev"), stack="dev")
    assert [v for v in dev if v.policy in ("vault-operations", "vault-security")] == []


def test_the_same_checks_hold_at_preview_when_the_vault_id_is_unknown() -> None:
    config = stack_config("prod")
    plan = evaluate(deploy, config, "prod", preview=True)
    assert run_policies(plan.resources, load_env_config("prod"), stack="prod") == []
    bare = evaluate(deploy, stack_config("prod", lock=False), "prod", preview=True)
    found = run_policies(bare.resources, load_env_config("prod"), stack="prod")
    assert [v.message.split(":", 1)[0] for v in found] == ["Vault 'backup-vault' has no delete lock"]


def test_vault_security_reports_alertsForAllJobFailures_disabled_and_classic_alerts_enabled() -> None:
    plan = plan_of("prod", alerts={"jobFailureAlerts": False, "classicAlerts": True})
    messages = [v.message for v in run_policies(plan.resources, load_env_config("prod"), stack="prod")]
    assert (
        "Vault 'backup-vault' (rsv-pvm-prod-weu): properties.monitoringSettings.azureMonitorAlertSettings."
        "alertsForAllJobFailures = 'Disabled' is not allowed in this environment: 'Enabled' is required so a failed "
        "backup job raises an Azure Monitor alert"
    ) in messages
    assert (
        "Vault 'backup-vault' (rsv-pvm-prod-weu): properties.monitoringSettings.classicAlertSettings."
        "alertsForCriticalOperations = 'Enabled' is not allowed in this environment: 'Disabled' is required "
        "(classic alerts cannot be routed to an action group; Azure Monitor alerts replace them)"
    ) in messages


def test_a_vault_without_monitoringSettings_is_reported_as_not_set() -> None:
    props: dict[str, Any] = {"vaultName": "rsv", "properties": {}}
    assert rules.vault_monitoring_problems(props, VaultRequirements()) == [
        "properties.monitoringSettings.azureMonitorAlertSettings.alertsForAllJobFailures = None is not allowed in "
        "this environment: 'Enabled' is required so a failed backup job raises an Azure Monitor alert",
        "properties.monitoringSettings.classicAlertSettings.alertsForCriticalOperations = None is not allowed in "
        "this environment: 'Disabled' is required (classic alerts cannot be routed to an action group; Azure "
        "Monitor alerts replace them)",
    ]


def test_requireCustomerManagedKey_reports_a_vault_without_encryption_keyUri() -> None:
    props: dict[str, Any] = {"properties": {}}
    req = VaultRequirements(
        require_job_failure_alerts=False, allow_classic_alerts=True, require_customer_managed_key=True
    )
    assert rules.vault_monitoring_problems(props, req) == [
        "properties.encryption.keyVaultProperties.keyUri is missing: this environment requires backup data "
        "encrypted with a customer-managed key"
    ]


VAULT = StackResource(
    rules.VAULT_TYPE,
    "vault",
    "urn:vault",
    {"id": PROD_VAULT_ID, "vaultName": "rsv-pvm-prod-weu", "resourceGroupName": "rg-backup-prod"},
)


def test_a_diagnostic_setting_into_AzureDiagnostics_or_missing_tables_is_reported_on_the_setting() -> None:
    setting = StackResource(
        rules.DIAGNOSTIC_TYPE,
        "diag",
        "urn:diag",
        {
            "resourceUri": PROD_VAULT_ID,
            "workspaceId": WORKSPACE_ID,
            "logAnalyticsDestinationType": "AzureDiagnostics",
            "logs": [
                {"category": "CoreAzureBackup", "enabled": True},
                {"category": "AddonAzureBackupJobs", "enabled": False},
            ],
        },
    )
    req = OperationsRequirements(require_delete_lock=False, require_backup_reports=True)
    assert vault_operations_problems([VAULT, setting], req) == [
        rules.StackProblem(
            "urn:diag",
            "DiagnosticSetting 'diag' of Vault 'vault' does not feed Backup Reports: logAnalyticsDestinationType = "
            "'AzureDiagnostics': 'Dedicated' is required (resource-specific tables); logs do not enable "
            "AddonAzureBackupJobs, AddonAzureBackupAlerts, AddonAzureBackupPolicy, AddonAzureBackupStorage, "
            "AddonAzureBackupProtectedInstance",
        )
    ]


def test_a_ReadOnly_lock_or_a_lock_on_another_vault_does_not_count() -> None:
    other = PROD_VAULT_ID.replace("rsv-pvm-prod-weu", "rsv-other")
    locks = [
        StackResource(rules.LOCK_TYPE, "ro", "urn:ro", {"scope": PROD_VAULT_ID, "level": "ReadOnly"}),
        StackResource(rules.LOCK_TYPE, "other", "urn:other", {"scope": other, "level": "CanNotDelete"}),
    ]
    found = vault_operations_problems([VAULT, *locks], OperationsRequirements())
    assert [p.message.split(":", 1)[0] for p in found] == ["Vault 'vault' has no delete lock"]
    good = StackResource(rules.LOCK_TYPE, "ok", "urn:ok", {"scope": PROD_VAULT_ID.upper(), "level": "CanNotDelete"})
    assert vault_operations_problems([VAULT, good], OperationsRequirements()) == []


def test_an_alert_processing_rule_on_the_vaults_resource_group_routes_its_alerts() -> None:
    rule = StackResource(
        rules.ALERT_RULE_TYPE,
        "apr",
        "urn:apr",
        {
            "properties": {
                "scopes": [f"/subscriptions/{PROD_SUB}/resourceGroups/rg-backup-prod"],
                "actions": [{"actionType": "AddActionGroups", "actionGroupIds": ["/x/actionGroups/ag"]}],
            }
        },
    )
    req = OperationsRequirements(require_delete_lock=False, require_alert_routing=True)
    assert vault_operations_problems([VAULT, rule], req) == []
    properties = rule.props["properties"]
    assert isinstance(properties, dict)
    off = {"properties": {**properties, "enabled": False}}
    disabled = StackResource(rule.type, rule.name, rule.urn, off)
    assert len(vault_operations_problems([VAULT, disabled], req)) == 1


def test_the_operations_policy_config_rejects_unknown_keys() -> None:
    with pytest.raises(Exception) as caught:
        OperationsRequirements.from_config({"requireLock": True})
    assert "requireLock is not a known setting: known settings are requireAlertRouting, requireBackupReports, " \
        "requireDeleteLock, requireMultiUserAuthorization" in str(caught.value)


# --- the rehearsal: the emulator accepts what the rehearsal deploys --------------------------------


def test_the_rehearsal_puts_monitoringSettings_and_encryption_with_its_identity_into_the_emulator(
    tmp_path: Path,
) -> None:
    import io

    import yaml

    from rehearsal.run import RehearsalOptions, rehearse
    from testing.mock_preview import STACKS_DIR

    document = yaml.safe_load((STACKS_DIR / "Pulumi.dev.yaml").read_text())
    document["config"]["protected-vm:vault"]["encryption"] = {"keyUri": KEY_URI, "identityId": IDENTITY_ID}
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    out = io.StringIO()
    report = rehearse(RehearsalOptions(stack="dev", stacks_dir=tmp_path, speed=120.0, drill=False), out)
    text = out.getvalue()
    assert report.exit_code == 0, text
    assert (
        "vault rsv-pvm-dev-weu: monitoringSettings accepted: job failure alerts Enabled, classic alerts Disabled"
    ) in text
    assert f"vault rsv-pvm-dev-weu: encryption accepted: key {KEY_URI}, infrastructure encryption Enabled" in text


def test_requirePrivateEndpoint_wants_a_PrivateEndpoint_with_groupIds_AzureBackup_on_the_vault() -> None:
    req = OperationsRequirements(require_delete_lock=False, require_private_endpoint=True)
    site_recovery = StackResource(
        rules.PRIVATE_ENDPOINT_TYPE,
        "pe",
        "urn:pe",
        {"privateLinkServiceConnections": [{"privateLinkServiceId": PROD_VAULT_ID, "groupIds": ["AzureSiteRecovery"]}]},
    )
    assert [p.message for p in vault_operations_problems([VAULT, site_recovery], req)] == [
        "Vault 'vault' has no private endpoint: no azure-native:network:PrivateEndpoint connects to the vault with "
        "groupIds ['AzureBackup'] (this environment requires one; set protected-vm:vault.privateEndpoint)"
    ]
    plan = plan_of("prod", privateEndpoint={"subnetId": SUBNET_ID})
    config = load_env_config("prod")
    config["vault-operations"] = {**config["vault-operations"], "requirePrivateEndpoint": True}
    assert run_policies(plan.resources, config, stack="prod") == []


def test_prod_refuses_a_resource_guard_in_the_vaults_own_subscription() -> None:
    same = GUARD_ID.replace("00000000-0000-0000-0000-0000000000e1", PROD_SUB)
    plan = plan_of("prod", multiUserAuthorization={"resourceGuardId": same})
    violations = run_policies(plan.resources, load_env_config("prod"), stack="prod")
    assert [(v.policy, v.resource_name, v.message) for v in violations] == [
        (
            "vault-operations",
            "backup-vault-mua",
            f"ResourceGuardProxy 'backup-vault-mua' of Vault 'backup-vault': properties.resourceGuardResourceId = "
            f"{same!r} is in the vault's own subscription: this environment requires the Resource Guard in a "
            "subscription the vault's owners do not administer",
        )
    ]
    # a guard the stack creates is deployed by the vault's own pipeline: refused at preview already
    for preview in (False, True):
        config = stack_config("prod", multiUserAuthorization={"resourceGuardName": "guard-prod"})
        created = evaluate(deploy, config, "prod", preview=preview)
        found = run_policies(created.resources, load_env_config("prod"), stack="prod")
        assert [v.message for v in found] == [
            "ResourceGuardProxy 'backup-vault-mua' of Vault 'backup-vault' uses a Resource Guard this stack creates: "
            "this environment requires the Resource Guard in a subscription the vault's owners do not administer "
            "(set multiUserAuthorization.resourceGuardId)"
        ]
