"""The pack as CrossGuard runs it: SDK args built directly, the env config files, the offline
runner, and the real program evaluated under mocks for each stack file. ``PolicyPack`` itself is
never constructed here (it starts a gRPC server and blocks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from components.program import deploy
from policies.pack import ENVIRONMENTS, PACK_NAME, build_policies, enforcement_level_for, pack_definition
from policies.resource_policies import RETENTION_POLICY, VAULT_POLICY, retention_policy, vault_policy
from policies.rules import DYNAMIC_TYPE
from policies.runner import (
    Violation,
    exit_code,
    load_env_config,
    reconcile_config,
    run_policies,
    urn_for,
)
from policies.stack_policies import COVERAGE_POLICY, coverage_policy
from policies.thresholds import (
    CoverageRequirements,
    InitialBackupRequirements,
    OperationsRequirements,
    RetentionRequirements,
    ScheduleRequirements,
    TierRequirements,
    VaultRequirements,
)
from testing.mock_preview import PlannedResource, evaluate, evaluate_stack, load_stack_config

REPO = Path(__file__).resolve().parent.parent
PROD_DAILY_MESSAGE = (
    "ProtectionPolicy 'backup-policy' (pol-vm-hourly-prod): "
    "properties.retentionPolicy.dailySchedule.retentionDuration.count = 7 days "
    "is below this environment's minimum of 30 days"
)
PARSERS: dict[str, Any] = {
    "backup-retention": RetentionRequirements.from_config,
    "backup-schedule": ScheduleRequirements.from_config,
    "vault-security": VaultRequirements.from_config,
    "initial-backup-retention": InitialBackupRequirements.from_config,
    "vm-backup-coverage": CoverageRequirements.from_config,
    "vault-operations": OperationsRequirements.from_config,
    "backup-tiers": TierRequirements.from_config,
}


def options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def collect() -> tuple[list[tuple[str, str | None]], Any]:
    reports: list[tuple[str, str | None]] = []

    def report(message: str, urn: str | None = None) -> None:
        reports.append((message, urn))

    return reports, report


def only(resources: list[PlannedResource], type_token: str) -> PlannedResource:
    found = [r for r in resources if r.type == type_token]
    assert len(found) == 1
    return found[0]


def prod_with(**changes: Any) -> list[PlannedResource]:
    """The real program on prod's stack file with some structured settings changed."""
    config = load_stack_config("prod")
    for dotted, value in changes.items():
        section, *path = dotted.split("__")
        key = f"protected-vm:{section}"
        data = json.loads(config[key])
        node = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        config[key] = json.dumps(data)
    return evaluate(deploy, config, "prod").resources


# --- the SDK's own argument objects -------------------------------------------------------------


def test_retention_policy_reports_through_the_sdk_with_the_resource_name_and_bound() -> None:
    policy_props = only(prod_with(policy__retention__daily=7), "azure-native:recoveryservices:ProtectionPolicy")
    args = ResourceValidationArgs(
        policy_props.type,
        unknown_checking_proxy(dict(policy_props.inputs)),
        "urn:pulumi:prod::protected-vm::azure-native:recoveryservices:ProtectionPolicy::backup-policy",
        policy_props.name,
        options(),
        None,
        load_env_config("prod")[RETENTION_POLICY],
    )
    reports, report = collect()
    retention_policy().validate(args, report)
    assert reports == [(PROD_DAILY_MESSAGE, None)]


def test_vault_policy_ignores_other_resource_types() -> None:
    args = ResourceValidationArgs("azure-native:recoveryservices:ProtectedItem", {}, "urn:x", "x", options(), None, {})
    reports, report = collect()
    vault_policy().validate(args, report)
    assert reports == []


def test_broken_policy_config_is_reported_instead_of_passing_silently() -> None:
    vault = only(evaluate_stack("prod").resources, "azure-native:recoveryservices:Vault")
    args = ResourceValidationArgs(
        vault.type,
        unknown_checking_proxy(dict(vault.inputs)),
        "urn:v",
        vault.name,
        options(),
        None,
        {"requireCrossRegionRestore": True, "allowedStorageRedundancies": ["ZoneRedundant"]},
    )
    reports, report = collect()
    vault_policy().validate(args, report)
    assert reports == [
        (
            "Vault 'backup-vault' (rsv-pvm-prod-weu): not checked: policy config for 'vault-security' is invalid: "
            "requireCrossRegionRestore = true needs 'GeoRedundant' in allowedStorageRedundancies: "
            "cross-region restore reads the paired region's copy",
            None,
        )
    ]


def test_policy_with_an_unknown_vault_name_at_preview_is_still_checked() -> None:
    policy = only(prod_with(policy__retention__daily=7), "azure-native:recoveryservices:ProtectionPolicy")
    props = {**dict(policy.inputs), "vaultName": UNKNOWN_STRING_VALUE}
    args = ResourceValidationArgs(
        policy.type,
        unknown_checking_proxy(props),
        "urn:p",
        policy.name,
        options(),
        None,
        load_env_config("prod")[RETENTION_POLICY],
    )
    reports, report = collect()
    retention_policy().validate(args, report)
    assert reports == [(PROD_DAILY_MESSAGE, None)]


def test_stack_policy_reports_an_unprotected_vm_on_the_vms_urn() -> None:
    vm_id = (
        "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg-app-prod"
        "/providers/Microsoft.Compute/virtualMachines/vm-new"
    )
    vm = PolicyResource(
        "azure-native:compute:VirtualMachine",
        unknown_checking_proxy({"id": vm_id, "vmName": "vm-new", "resourceGroupName": "rg-app-prod"}),
        "urn:pulumi:prod::protected-vm::azure-native:compute:VirtualMachine::vm-new",
        "vm-new",
        options(),
        None,
        None,
        [],
        {},
    )
    reports, report = collect()
    coverage_policy().validate(StackValidationArgs([vm], {}), report)
    assert reports == [
        (
            "VirtualMachine 'vm-new' is not backed up: no azure-native:recoveryservices:ProtectedItem has "
            "properties.sourceResourceId pointing at it",
            "urn:pulumi:prod::protected-vm::azure-native:compute:VirtualMachine::vm-new",
        )
    ]


# --- the pack and its per-environment config files ----------------------------------------------


def test_pack_has_uniquely_named_policies_each_with_a_config_schema() -> None:
    definition = pack_definition("prod")
    names = [p.name for p in definition.policies]
    assert definition.name == PACK_NAME
    assert names == [
        "backup-retention",
        "backup-schedule",
        "vault-security",
        "initial-backup-retention",
        "backup-tiers",
        "vm-backup-coverage",
        "vault-operations",
    ]
    assert all(p.config_schema is not None for p in definition.policies)


def test_default_enforcement_is_advisory_only_in_dev_and_mandatory_for_unknown_stacks() -> None:
    assert enforcement_level_for("dev") == EnforcementLevel.ADVISORY
    assert enforcement_level_for("org/prod") == EnforcementLevel.MANDATORY
    assert enforcement_level_for("staging") == EnforcementLevel.MANDATORY
    assert enforcement_level_for("prdo") == EnforcementLevel.MANDATORY
    assert enforcement_level_for(None) == EnforcementLevel.MANDATORY


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_env_config_names_every_policy_and_parses_strictly(env: str) -> None:
    config = load_env_config(env)
    assert set(config) == {"all", *PARSERS}
    for name, parse in PARSERS.items():
        parse(config[name], name)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_stack_policy_carries_the_same_retention_and_schedule_requirements_as_the_resource_policies(env: str) -> None:
    config = load_env_config(env)
    assert config["vm-backup-coverage"]["retention"] == config["backup-retention"]
    assert config["vm-backup-coverage"]["schedule"] == config["backup-schedule"]


def test_config_files_make_prod_and_staging_mandatory_and_dev_advisory() -> None:
    policies = build_policies()
    for env, level in (("prod", "mandatory"), ("staging", "mandatory"), ("dev", "advisory")):
        runs = reconcile_config(load_env_config(env), policies, EnforcementLevel.MANDATORY)
        assert {run.enforcement_level.value for run in runs.values()} == {level}, env


def test_reconcile_applies_schema_defaults_then_all_then_the_policys_own_entry() -> None:
    runs = reconcile_config(
        {"all": "advisory", "vault-security": {"enforcementLevel": "mandatory", "requireCrossRegionRestore": True}},
        build_policies(),
        EnforcementLevel.MANDATORY,
    )
    assert runs[VAULT_POLICY].enforcement_level == EnforcementLevel.MANDATORY
    assert runs[VAULT_POLICY].config["requireCrossRegionRestore"] is True
    assert runs[VAULT_POLICY].config["allowedSoftDeleteStates"] == ["AlwaysON"]
    assert runs[RETENTION_POLICY].enforcement_level == EnforcementLevel.ADVISORY
    assert runs[RETENTION_POLICY].config == {"minimum": {}, "maximum": {}, "requiredTiers": ["daily"]}


def test_reconcile_rejects_a_misspelt_policy_name() -> None:
    with pytest.raises(ValueError, match=r"unknown policies \['backup-retnetion'\]"):
        reconcile_config({"backup-retnetion": {}}, build_policies(), EnforcementLevel.MANDATORY)


# --- the real program under mocks, fed to the pack ---------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_stack_file_passes_its_own_environments_policies(env: str) -> None:
    violations = run_policies(evaluate_stack(env).resources, load_env_config(env), stack=env)
    assert violations == []
    assert exit_code(violations) == 0


def test_prod_with_seven_day_daily_retention_is_blocked_on_the_policy_and_every_protected_item() -> None:
    violations = run_policies(prod_with(policy__retention__daily=7), load_env_config("prod"), stack="prod")
    policy_urn = urn_for("azure-native:recoveryservices:ProtectionPolicy", "backup-policy", "prod")
    assert violations[0] == Violation(
        RETENTION_POLICY,
        "mandatory",
        "azure-native:recoveryservices:ProtectionPolicy",
        "backup-policy",
        policy_urn,
        PROD_DAILY_MESSAGE,
    )
    coverage = [v for v in violations if v.policy == COVERAGE_POLICY]
    assert sorted(str(v.resource_name) for v in coverage) == [
        "rg-app-prod-vm-api-prod-01-item",
        "rg-app-prod-vm-web-prod-01-item",
        "rg-app-prod-vm-web-prod-02-item",
    ]
    assert all(v.mandatory for v in violations)
    assert coverage[0].message == (
        "ProtectedItem 'rg-app-prod-vm-web-prod-01-item' protects VM "
        "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg-app-prod/"
        "providers/Microsoft.Compute/virtualMachines/vm-web-prod-01 (requiredVmIds) "
        "with ProtectionPolicy 'backup-policy', which fails: "
        "properties.retentionPolicy.dailySchedule.retentionDuration.count = 7 days "
        "is below this environment's minimum of 30 days"
    )
    assert len(violations) == 4
    assert exit_code(violations) == 1


def test_dev_stack_file_fails_prods_policies_on_every_prod_requirement() -> None:
    violations = run_policies(evaluate_stack("dev").resources, load_env_config("prod"), stack="prod")
    by_policy: dict[str, int] = {}
    for violation in violations:
        by_policy[violation.policy] = by_policy.get(violation.policy, 0) + 1
    # prod's three required VMs are missing; dev's policy lacks three tiers, keeps 7 < 30 dailies,
    # runs daily (RPO 24 > 4) with 2 < 7 instant-restore days; dev's vault fails four vault rules;
    # dev's initial backup keeps its point 7 < 30 days and only checks that the job started;
    # dev's vault has no delete lock, alert routing, backup reports or Resource Guard (issue 17).
    assert by_policy == {
        "backup-retention": 4,
        "backup-schedule": 2,
        "vault-security": 4,
        "initial-backup-retention": 2,
        "vm-backup-coverage": 3,
        "vault-operations": 4,
    }
    initial = [v.message for v in violations if v.policy == "initial-backup-retention"]
    assert initial == [
        "InitialBackup 'initial-backup': settings.retainDays = 7 days is below this environment's minimum of 30 days",
        "InitialBackup 'initial-backup': settings.verify = 'started' is not allowed in this environment "
        "(allowed: completed): the first recovery point must be proven",
    ]
    vault_settings = [v.message.split(": ", 1)[1].split(" = ")[0] for v in violations if v.policy == VAULT_POLICY]
    assert vault_settings == [
        "properties.securitySettings.softDeleteSettings.softDeleteRetentionPeriodInDays",
        "properties.securitySettings.immutabilitySettings.state",
        "properties.redundancySettings.standardTierStorageRedundancy",
        "properties.redundancySettings.crossRegionRestore",
    ]
    assert exit_code(violations) == 1


def test_dev_violations_are_advisory_and_do_not_fail_the_run() -> None:
    resources = evaluate_stack("dev").resources
    config = load_env_config("dev")
    config["backup-retention"] = {**config["backup-retention"], "minimum": {"daily": 14}}
    violations = run_policies(resources, config, stack="dev")
    assert [(v.policy, v.enforcement_level) for v in violations] == [("backup-retention", "advisory")]
    assert violations[0].message == (
        "ProtectionPolicy 'backup-policy' (pol-vm-daily-dev): "
        "properties.retentionPolicy.dailySchedule.retentionDuration.count = 7 days "
        "is below this environment's minimum of 14 days"
    )
    assert exit_code(violations) == 0


@pytest.mark.parametrize("type_token", [DYNAMIC_TYPE, "pulumi-python:dynamic/protectedvm:InitialBackup"])
def test_initial_backup_dynamic_resource_is_checked_against_the_environment_minimum(type_token: str) -> None:
    initial = PlannedResource(
        type_token,
        "initial-backup",
        {
            "__provider": "serialized-provider",
            "vaultId": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v",
            "vmIds": [],
            "settings": {"verify": "completed", "retainDays": 7.0, "timeoutMinutes": 240.0, "pollSeconds": 60.0},
        },
        "initial-backup_id",
        True,
    )
    violations = run_policies([*evaluate_stack("prod").resources, initial], load_env_config("prod"), stack="prod")
    assert [str(v) for v in violations] == [
        f"[mandatory] initial-backup-retention: {type_token.rsplit(':', 1)[-1]} 'initial-backup': "
        "settings.retainDays = 7 days is below this environment's minimum of 30 days"
    ]


# --- the entry point the CLI runs ---------------------------------------------------------------


def test_main_imports_from_the_pack_directory_and_builds_the_pack_with_the_stacks_level(tmp_path: Path) -> None:
    """Runs ``__main__.py`` as ``python .`` would from policies/ (repo root not on sys.path),
    with PolicyPack replaced by a recorder so no server starts."""
    script = tmp_path / "run_main.py"
    script.write_text(
        "import json, runpy, sys\n"
        "import pulumi_policy\n"
        "seen = {}\n"
        "class Recorder:\n"
        "    def __init__(self, **kwargs):\n"
        "        seen.update(kwargs)\n"
        "pulumi_policy.PolicyPack = Recorder\n"
        f"sys.path = [{str(REPO / 'policies')!r}] + [p for p in sys.path if p not in ('', {str(REPO)!r})]\n"
        "runpy.run_path('__main__.py', run_name='__main__')\n"
        "print(json.dumps({'name': seen['name'], 'level': seen['enforcement_level'].value,\n"
        "                  'policies': [p.name for p in seen['policies']]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PULUMI_STACK"] = "dev"
    result = subprocess.run(
        [sys.executable, str(script)], cwd=REPO / "policies", env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "name": "protected-vm-backup",
        "level": "advisory",
        "policies": [
            "backup-retention",
            "backup-schedule",
            "vault-security",
            "initial-backup-retention",
            "backup-tiers",
            "vm-backup-coverage",
            "vault-operations",
        ],
    }
