"""The real program under Pulumi mocks, fed the real stack files: what each environment deploys."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components.backup_vault import BackupVault
from components.config import PolicySettings, VaultSettings, parse_stack_settings
from components.program import deploy, resource_name
from components.protected_vm import ProtectedVM
from components.validation import ValidationError
from testing.mock_preview import Plan, RecordingMocks, evaluate, evaluate_stack, load_stack_config
from tests.helpers import SUB

VAULT = "azure-native:recoveryservices:Vault"
POLICY = "azure-native:recoveryservices:ProtectionPolicy"
ITEM = "azure-native:recoveryservices:ProtectedItem"


def vm_id(name: str, rg: str = "rg-app") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def only(plan: Plan, type_token: str) -> dict[str, Any]:
    found = plan.of_type(type_token)
    assert len(found) == 1, [r.name for r in found]
    return dict(found[0].inputs)


def retention(policy_inputs: dict[str, Any]) -> dict[str, float]:
    ladder = policy_inputs["properties"]["retentionPolicy"]
    return {
        tier.removesuffix("Schedule"): ladder[tier]["retentionDuration"]["count"]
        for tier in ("dailySchedule", "weeklySchedule", "monthlySchedule", "yearlySchedule")
        if tier in ladder
    }


def test_dev_stack_deploys_lrs_vault_standard_policy_with_7_daily_points() -> None:
    plan = evaluate_stack("dev")
    vault = only(plan, VAULT)
    assert vault["vaultName"] == "rsv-pvm-dev-weu"
    assert vault["location"] == "westeurope"
    assert vault["sku"] == {"name": "RS0", "tier": "Standard"}
    assert vault["properties"]["redundancySettings"] == {
        "standardTierStorageRedundancy": "LocallyRedundant",
        "crossRegionRestore": "Disabled",
    }
    assert vault["properties"]["publicNetworkAccess"] == "Disabled"
    assert vault["properties"]["securitySettings"]["softDeleteSettings"]["softDeleteState"] == "AlwaysON"
    policy = only(plan, POLICY)
    assert policy["properties"]["policyType"] == "V1"
    assert policy["properties"]["schedulePolicy"] == {
        "schedulePolicyType": "SimpleSchedulePolicy",
        "scheduleRunFrequency": "Daily",
        "scheduleRunTimes": ["2024-01-01T22:00:00Z"],
    }
    assert retention(policy) == {"daily": 7}
    assert len(plan.of_type(ITEM)) == 2


def test_prod_stack_deploys_locked_geo_vault_with_crr_and_full_retention_ladder() -> None:
    plan = evaluate_stack("prod")
    props = only(plan, VAULT)["properties"]
    assert props["redundancySettings"] == {
        "standardTierStorageRedundancy": "GeoRedundant",
        "crossRegionRestore": "Enabled",
    }
    assert props["securitySettings"] == {
        "immutabilitySettings": {"state": "Locked"},
        "softDeleteSettings": {
            "softDeleteState": "AlwaysON",
            "softDeleteRetentionPeriodInDays": 30,
            "enhancedSecurityState": "AlwaysON",
        },
    }
    policy = only(plan, POLICY)
    assert policy["properties"]["policyType"] == "V2"
    assert policy["properties"]["instantRpRetentionRangeInDays"] == 7
    assert policy["properties"]["schedulePolicy"]["hourlySchedule"] == {
        "interval": 4,
        "scheduleWindowStartTime": "2024-01-01T00:00:00Z",
        "scheduleWindowDuration": 24,
    }
    assert retention(policy) == {"daily": 30, "weekly": 12, "monthly": 12, "yearly": 7}
    yearly = policy["properties"]["retentionPolicy"]["yearlySchedule"]
    assert yearly["monthsOfYear"] == ["January"]
    assert yearly["retentionScheduleWeekly"] == {"daysOfTheWeek": ["Sunday"], "weeksOfTheMonth": ["First"]}
    assert len(plan.of_type(ITEM)) == 3


def test_staging_stack_deploys_zone_redundant_vault_and_4_hourly_enhanced_policy() -> None:
    plan = evaluate_stack("staging")
    assert only(plan, VAULT)["properties"]["redundancySettings"]["standardTierStorageRedundancy"] == "ZoneRedundant"
    policy = only(plan, POLICY)
    assert policy["properties"]["schedulePolicy"]["scheduleRunFrequency"] == "Hourly"
    assert retention(policy) == {"daily": 30, "weekly": 12}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_vm_gets_a_protected_item_with_azure_derived_names(stack: str) -> None:
    plan = evaluate_stack(stack)
    vms = json.loads(load_stack_config(stack)["protected-vm:vms"])
    items = plan.of_type(ITEM)
    policy_id = plan.outputs["policyId"]
    assert sorted(str(i.inputs["properties"]["sourceResourceId"]) for i in items) == sorted(vms)
    for item in items:
        inputs = item.inputs
        rg, name = (
            inputs["properties"]["sourceResourceId"].split("/")[4],
            inputs["properties"]["sourceResourceId"].split("/")[-1],
        )
        assert inputs["containerName"] == f"iaasvmcontainer;iaasvmcontainerv2;{rg};{name}"
        assert inputs["protectedItemName"] == f"vm;iaasvmcontainerv2;{rg};{name}"
        assert inputs["fabricName"] == "Azure"
        assert inputs["properties"]["protectedItemType"] == "Microsoft.Compute/virtualMachines"
        assert inputs["properties"]["policyId"] == policy_id
        assert inputs["vaultName"] == only(plan, VAULT)["vaultName"]


def test_prod_exports_one_honest_record_per_vm() -> None:
    plan = evaluate_stack("prod")
    records = plan.outputs["protectedVms"]
    assert [r["vmName"] for r in records] == ["vm-web-prod-01", "vm-web-prod-02", "vm-api-prod-01"]
    first = records[0]
    vault_id = (
        "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg-backup-prod"
        "/providers/Microsoft.RecoveryServices/vaults/rsv-pvm-prod-weu"
    )
    assert first["vaultId"] == vault_id == plan.outputs["vaultId"]
    assert first["protectedItemId"] == (
        f"{vault_id}/backupFabrics/Azure/protectionContainers/iaasvmcontainer;iaasvmcontainerv2;rg-app-prod;"
        "vm-web-prod-01/protectedItems/vm;iaasvmcontainerv2;rg-app-prod;vm-web-prod-01"
    )
    assert first["vaultResourceGroup"] == "rg-backup-prod"
    assert first["subscriptionId"] == "00000000-0000-0000-0000-0000000000a1"


def test_many_vms_share_one_vault_and_one_policy() -> None:
    config = load_stack_config("dev")
    config["protected-vm:vms"] = json.dumps([vm_id(f"vm-{i:03}") for i in range(25)])
    plan = evaluate(deploy, config, "dev")
    assert len(plan.of_type(VAULT)) == 1
    assert len(plan.of_type(POLICY)) == 1
    assert len(plan.of_type(ITEM)) == 25
    assert len({i.inputs["properties"]["policyId"] for i in plan.of_type(ITEM)}) == 1


def test_existing_vault_and_policy_are_reused_not_created() -> None:
    vault_id = f"/subscriptions/{SUB}/resourceGroups/rg-central/providers/Microsoft.RecoveryServices/vaults/rsv-central"
    config = load_stack_config("dev")
    config["protected-vm:vault"] = json.dumps({"existingId": vault_id})
    config["protected-vm:policy"] = json.dumps({"existingId": f"{vault_id}/backupPolicies/gold"})
    plan = evaluate(deploy, config, "dev")
    assert plan.of_type(VAULT) == [] and plan.of_type(POLICY) == []
    items = plan.of_type(ITEM)
    assert {i.inputs["vaultName"] for i in items} == {"rsv-central"}
    assert {i.inputs["resourceGroupName"] for i in items} == {"rg-central"}
    assert {i.inputs["properties"]["policyId"] for i in items} == {f"{vault_id}/backupPolicies/gold"}
    assert plan.outputs["vaultId"] == vault_id


def test_bad_stack_config_fails_before_any_resource_is_registered() -> None:
    config = load_stack_config("prod")
    policy = json.loads(config["protected-vm:policy"])
    policy["retention"]["daily"] = 0
    config["protected-vm:policy"] = json.dumps(policy)
    mocks = RecordingMocks()
    with pytest.raises(ValidationError, match=r"policy.retention.daily = 0 is out of range: allowed 7-9999 days"):
        evaluate(deploy, config, "prod", mocks=mocks)
    assert mocks.resources == []


def test_vms_with_the_same_name_in_two_resource_groups_get_distinct_resource_names() -> None:
    settings = parse_stack_settings(
        {"name": "rsv-a", "resourceGroup": "rg"},
        {"name": "p", "retention": {"daily": 7}},
        [vm_id("web", "rg-a"), vm_id("Web", "rg-B"), vm_id("api", "rg-a")],
    )
    assert [resource_name(t) for t in settings.vms] == ["rg-a-web", "rg-b-web", "rg-a-api"]


def test_protected_vm_with_its_own_vault_creates_vault_and_policy_as_children() -> None:
    def program() -> None:
        vm = ProtectedVM(
            "solo",
            {
                "vm_id": vm_id("solo-vm"),
                "vault": VaultSettings(name="rsv-solo", resource_group="rg-solo"),
                "policy": PolicySettings(name="pol-solo"),
                "location": "northeurope",
            },
        )
        pulumi.export("item", vm.protected_item_id)

    plan = evaluate(program, {}, "dev")
    assert only(plan, VAULT)["location"] == "northeurope"
    assert only(plan, POLICY)["policyName"] == "pol-solo"
    assert only(plan, ITEM)["vaultName"] == "rsv-solo"
    assert plan.outputs["item"].endswith("/protectedItems/vm;iaasvmcontainerv2;rg-app;solo-vm")


def test_protected_vm_without_a_vault_is_rejected_before_registration() -> None:
    def program() -> None:
        ProtectedVM("orphan", {"vm_id": vm_id("orphan")})

    with pytest.raises(ValueError, match="pass backup_vault"):
        evaluate(program, {}, "dev")


def test_protected_vm_rejects_a_malformed_vm_id() -> None:
    def program() -> None:
        backup = BackupVault(
            "b", {"vault": VaultSettings(name="rsv-b", resource_group="rg"), "policy": PolicySettings(name="p")}
        )
        ProtectedVM("bad", {"vm_id": "vm-without-id", "backup_vault": backup})

    with pytest.raises(ValidationError, match=r"vm_id = 'vm-without-id' is not a virtual machine resource id"):
        evaluate(program, {}, "dev")


INITIAL = "pulumi-python:dynamic/protectedvm:InitialBackup"


@pytest.mark.parametrize(
    ("stack", "verify", "retain_days", "timeout_minutes"),
    [("dev", "started", 7, 30), ("staging", "completed", 30, 120), ("prod", "completed", 30, 240)],
)
def test_each_stack_registers_one_initial_backup_for_all_its_vms_in_the_shared_vault(
    stack: str, verify: str, retain_days: int, timeout_minutes: int
) -> None:
    plan = evaluate_stack(stack)
    inputs = only(plan, INITIAL)
    items = plan.of_type(ITEM)
    # Registration order under mocks follows dependency resolution, not the VM list: compare sets.
    assert sorted(vm.lower() for vm in inputs["vmIds"]) == sorted(
        i.inputs["properties"]["sourceResourceId"].lower() for i in items
    )
    assert inputs["vaultId"] == plan.outputs["vaultId"]
    assert inputs["settings"]["verify"] == verify
    assert inputs["settings"]["retainDays"] == retain_days
    assert inputs["settings"]["timeoutMinutes"] == timeout_minutes
    assert "initialBackups" in plan.outputs
