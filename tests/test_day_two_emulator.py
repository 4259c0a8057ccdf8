"""Day two against the HTTPS emulator through the real SDK: what removing, re-adding and locking
do in Azure, driven by the real VmProtection/VaultLock provider code (issue 13)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from pulumi.output import Unknown
from pulumi.runtime import rpc

from components.vault_lock import VaultLockProvider
from components.vm_protection import PreflightError, VmProtectionProvider
from emulator import Emulator
from emulator.seeding import manual_sleep, protect
from protectedvm.azure_client import BackupApi
from protectedvm.ids import VaultRef, VmRef
from tests.helpers import SUB, create_secure_vault

VAULT = VaultRef(SUB, "rg-backup", "rsv-prod")
OTHER = VaultRef(SUB, "rg-backup", "rsv-other")


def vm_id(name: str, rg: str = "rg-app") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def secure_vault(emu: Emulator, vault: VaultRef = VAULT, immutability: str = "Unlocked") -> None:
    create_secure_vault(emu, vault, immutability, retention_days=30)

def api(emu: Emulator, vault: VaultRef = VAULT) -> BackupApi:
    return BackupApi(emu.client(SUB), vault, sleep=manual_sleep(emu))


def protected_with_a_point(emu: Emulator, name: str = "web01") -> VmRef:
    secure_vault(emu)
    (vm,) = protect(emu, VAULT, [vm_id(name)])
    emu.state.start_job(name)
    manual_sleep(emu)(120)
    return vm


def item(emu: Emulator, vm: VmRef) -> dict[str, Any]:
    body = emu.client(SUB).protected_items.get(VAULT.name, VAULT.resource_group, "Azure", vm.container_name,
                                               vm.protected_item_name)
    return dict(body.as_dict()["properties"]) if hasattr(body, "as_dict") else dict(body["properties"])


def points(emu: Emulator, vm: VmRef) -> int:
    return len(api(emu).recovery_points(vm))


def resume(emu: Emulator, vm: VmRef, policy: str = "DefaultPolicy") -> None:
    """The ProtectedItem PUT with a policy: it protects, resumes, or moves the item to ``policy``."""
    emu.client(SUB).protected_items.begin_create_or_update(
        VAULT.name,
        VAULT.resource_group,
        "Azure",
        vm.container_name,
        vm.protected_item_name,
        {
            "properties": {
                "protectedItemType": "Microsoft.Compute/virtualMachines",
                "sourceResourceId": vm.vm_id,
                "policyId": f"{VAULT.id}/backupPolicies/{policy}",
            }
        },
    ).result()


# --- removal ---------------------------------------------------------------------------------------


def test_removing_a_vm_stops_protection_and_keeps_its_recovery_points(emu: Emulator) -> None:
    vm = protected_with_a_point(emu)
    assert VmProtectionProvider.release(api(emu), vm, "retainData") == "stopped protection, data retained"
    props = item(emu, vm)
    assert props["protectionState"] == "ProtectionStopped"
    assert "isScheduledForDeferredDelete" not in props
    assert props["policyId"].endswith("/backupPolicies/DefaultPolicy")  # StopProtection.json keeps it
    assert points(emu, vm) == 1
    # a second removal (e.g. a retried destroy) changes nothing
    assert VmProtectionProvider.release(api(emu), vm, "retainData") == "already stopped"


def test_destroy_through_the_provider_retains_data_by_default(emu: Emulator) -> None:
    vm = protected_with_a_point(emu)
    provider = VmProtectionProvider(api_factory=lambda vault: api(emu, vault))
    provider.delete("id", {"vaultId": VAULT.id, "vmId": vm.vm_id, "onRemove": "retainData"})
    assert item(emu, vm)["protectionState"] == "ProtectionStopped"
    assert points(emu, vm) == 1


def test_on_remove_delete_data_soft_deletes_for_the_vaults_soft_delete_retention(emu: Emulator) -> None:
    vm = protected_with_a_point(emu)
    before = emu.state.now()
    assert VmProtectionProvider.release(api(emu), vm, "deleteData") == "deleted backup data"
    props = item(emu, vm)
    assert props["isScheduledForDeferredDelete"] is True
    purge = dt.datetime.fromisoformat(str(props["deferredDeleteTimeInUTC"]).replace("Z", "+00:00"))
    assert dt.timedelta(days=30) - dt.timedelta(seconds=5) <= purge - before <= dt.timedelta(days=30, seconds=5)
    assert points(emu, vm) == 1  # recoverable until then
    assert VmProtectionProvider.release(api(emu), vm, "deleteData") == "nothing to do"


# --- re-adding -------------------------------------------------------------------------------------


def test_protecting_a_soft_deleted_item_is_refused_until_it_is_undeleted(emu: Emulator) -> None:
    vm = protected_with_a_point(emu)
    VmProtectionProvider.release(api(emu), vm, "deleteData")
    with pytest.raises(HttpResponseError) as refused:
        resume(emu, vm)
    assert refused.value.error is not None and refused.value.error.code == "UserErrorBackupItemSoftDeleted"


POLICY = f"{VAULT.id}/backupPolicies/DefaultPolicy"


def test_re_adding_a_soft_deleted_vm_undeletes_it_and_resumes_protection_with_its_points(emu: Emulator) -> None:
    vm = protected_with_a_point(emu)
    VmProtectionProvider.release(api(emu), vm, "deleteData")
    assert VmProtectionProvider.prepare(api(emu), VAULT, vm, "westeurope", POLICY) == "undeleted"
    props = item(emu, vm)
    assert props["protectionState"] == "Protected" and "isScheduledForDeferredDelete" not in props
    assert points(emu, vm) == 1
    emu.state.start_job("web01")  # and backups run again
    manual_sleep(emu)(120)
    assert points(emu, vm) == 2


def test_undelete_alone_leaves_the_item_stopped_with_its_points(emu: Emulator) -> None:
    vm = protected_with_a_point(emu)
    VmProtectionProvider.release(api(emu), vm, "deleteData")
    assert VmProtectionProvider.prepare(api(emu), VAULT, vm, "westeurope", Unknown()) == "undeleted"
    props = item(emu, vm)
    assert props["protectionState"] == "ProtectionStopped" and "isScheduledForDeferredDelete" not in props
    resume(emu, vm)  # the ProtectedItem's own PUT with the policy resumes it just as well
    assert item(emu, vm)["protectionState"] == "Protected" and points(emu, vm) == 1


def test_re_adding_a_stopped_vm_resumes_protection_without_an_undelete(emu: Emulator) -> None:
    vm = protected_with_a_point(emu)
    VmProtectionProvider.release(api(emu), vm, "retainData")
    assert VmProtectionProvider.prepare(api(emu), VAULT, vm, "westeurope", POLICY) == "stopped"
    assert item(emu, vm)["protectionState"] == "Protected"
    assert emu.counts.get("item.put", 0) == 3  # protect, stop, resume: no undelete


def test_a_vm_new_to_the_vault_passes_the_pre_flight(emu: Emulator) -> None:
    secure_vault(emu)
    emu.add_vm(vm_id("web02"))
    assert VmProtectionProvider.prepare(api(emu), VAULT, VmRef.from_id(vm_id("web02")), None) is None


# --- pre-flight --------------------------------------------------------------------------------------


def test_a_vm_protected_by_another_vault_is_refused_naming_that_vault(emu: Emulator) -> None:
    secure_vault(emu)
    secure_vault(emu, OTHER)
    (vm,) = protect(emu, OTHER, [vm_id("web01")])
    with pytest.raises(PreflightError) as refused:
        VmProtectionProvider.prepare(api(emu), VAULT, vm, "westeurope")
    assert str(refused.value) == (
        f"web01 ({vm.vm_id}) is already protected by vault {OTHER.id}: stop its protection there "
        "(and delete its backup data there, or keep that vault) before this stack can protect it"
    )


def test_a_vm_in_another_region_is_refused_before_any_change(emu: Emulator) -> None:
    secure_vault(emu)
    emu.add_vm(vm_id("web09"), location="northeurope")
    with pytest.raises(PreflightError, match=r"^web09 is in northeurope but vault rsv-prod is in westeurope"):
        VmProtectionProvider.prepare(api(emu), VAULT, VmRef.from_id(vm_id("web09")), "West Europe")


def test_a_missing_vm_is_refused_with_what_to_do(emu: Emulator) -> None:
    secure_vault(emu)
    vm = VmRef.from_id(vm_id("ghost"))
    with pytest.raises(PreflightError) as refused:
        VmProtectionProvider.prepare(api(emu), VAULT, vm, "westeurope")
    assert str(refused.value) == (
        f"ghost ({vm.vm_id}) was not found (or the deployment identity cannot read it): "
        "fix or remove it in protected-vm:vms"
    )


def test_backup_status_names_the_protecting_vault(emu: Emulator) -> None:
    secure_vault(emu)
    emu.add_vm(vm_id("free"))
    (vm,) = protect(emu, VAULT, [vm_id("web01")])
    status = api(emu).backup_status(vm, "westeurope")
    assert (status.protection_status, status.vault_id) == ("Protected", VAULT.id)
    free = api(emu).backup_status(VmRef.from_id(vm_id("free")), "westeurope")
    assert (free.protection_status, free.vault_id) == ("NotProtected", None)


def test_provider_create_runs_the_pre_flight_in_process(emu: Emulator) -> None:
    secure_vault(emu)
    secure_vault(emu, OTHER)
    protect(emu, OTHER, [vm_id("web01")])
    provider = VmProtectionProvider(api_factory=lambda vault: api(emu, vault))
    with pytest.raises(PreflightError, match="already protected by vault"):
        provider.create({"vaultId": VAULT.id, "vmId": vm_id("web01"), "vaultLocation": "westeurope"})


# --- the provider's check under a real engine's unknowns ------------------------------------------------


@pytest.mark.parametrize("unknown", [Unknown(), rpc.UNKNOWN])
def test_check_accepts_unknown_inputs_at_preview(emu: Emulator, unknown: object) -> None:
    """A new stack's preview: the vault is unknown; the new VM's pre-flight still runs."""
    emu.add_vm(vm_id("web01"))
    provider = VmProtectionProvider(api_factory=lambda vault: api(emu, vault))
    news = {"vaultId": unknown, "vmId": vm_id("web01"), "vaultLocation": unknown, "onRemove": "retainData"}
    assert provider.check({}, news).failures == []
    assert emu.counts["compute.vm.get"] == 1 and emu.counts["backupStatus.get"] == 1
    assert provider.diff("id", {"vaultId": VAULT.id, "vmId": vm_id("web01")}, news).replaces == ["vaultId"]


def test_a_new_vm_protected_elsewhere_fails_at_preview(emu: Emulator) -> None:
    secure_vault(emu, OTHER)
    protect(emu, OTHER, [vm_id("web01")])
    provider = VmProtectionProvider(api_factory=lambda vault: api(emu, vault))
    news = {"vaultId": Unknown(), "vmId": vm_id("web01"), "vaultLocation": "westeurope", "onRemove": "retainData"}
    failures = provider.check({}, news).failures
    assert [f.property for f in failures] == ["vmId"]
    assert failures[0].reason.startswith(f"web01 ({vm_id('web01')}) is already protected by vault {OTHER.id}")


def test_a_vm_already_in_state_is_not_checked_again_at_preview(emu: Emulator) -> None:
    provider = VmProtectionProvider(api_factory=lambda vault: api(emu, vault))
    props = {"vaultId": VAULT.id, "vmId": vm_id("web01"), "vaultLocation": "westeurope", "onRemove": "retainData"}
    assert provider.check(dict(props), dict(props)).failures == []
    assert emu.counts.get("vm.get", 0) == 0 and emu.counts.get("backupStatus.get", 0) == 0


def test_preview_pre_flight_without_azure_leaves_the_check_to_create() -> None:
    def unreachable(_vault: object) -> BackupApi:
        raise RuntimeError("no credentials")

    news = {"vaultId": VAULT.id, "vmId": vm_id("web01"), "vaultLocation": "westeurope", "onRemove": "retainData"}
    assert VmProtectionProvider(api_factory=unreachable).check({}, news).failures == []


def test_check_refuses_a_resource_becoming_another_vm() -> None:
    failures = VmProtectionProvider().check(
        {"vmId": vm_id("web", "rg-a"), "vaultId": VAULT.id},
        {"vmId": vm_id("web", "rg-b"), "vaultId": VAULT.id, "onRemove": "retainData"},
    ).failures
    assert [(f.property, f.reason) for f in failures] == [
        (
            "vmId",
            f"this resource protects {vm_id('web', 'rg-a')} and would become {vm_id('web', 'rg-b')}: a resource "
            "never changes VM; check the names and aliases of protected-vm:vms entries",
        )
    ]


def test_changing_on_remove_is_an_update_not_a_replacement() -> None:
    olds = {"vaultId": VAULT.id, "vmId": vm_id("web01"), "vaultLocation": "westeurope", "onRemove": "retainData"}
    result = VmProtectionProvider().diff("id", olds, {**olds, "onRemove": "deleteData"})
    assert (result.changes, result.replaces) == (True, [])


# --- immutability and soft delete ---------------------------------------------------------------------


def test_azure_refuses_a_vault_created_locked(emu: Emulator) -> None:
    with pytest.raises(RuntimeError, match="UserErrorImmutabilityStateTransitionNotAllowed"):
        secure_vault(emu, immutability="Locked")


def test_vault_lock_locks_a_new_vault_created_unlocked_and_then_changes_nothing(emu: Emulator) -> None:
    secure_vault(emu)
    assert VaultLockProvider.apply(api(emu), "Locked", "AlwaysON") == "Unlocked -> Locked"
    assert api(emu).vault_settings().immutability == "Locked"
    assert VaultLockProvider.apply(api(emu), "Locked", "AlwaysON") == "unchanged"


def test_vault_lock_goes_through_unlocked_from_disabled(emu: Emulator) -> None:
    secure_vault(emu, immutability="Disabled")
    assert VaultLockProvider.apply(api(emu), "Locked", "AlwaysON") == "Disabled -> Locked"
    assert api(emu).vault_settings().immutability == "Locked"


def test_a_locked_vault_is_never_unlocked(emu: Emulator) -> None:
    secure_vault(emu)
    VaultLockProvider.apply(api(emu), "Locked", "AlwaysON")
    with pytest.raises(ValueError, match=r"^vault.immutability = 'Unlocked' is not allowed: the vault is Locked"):
        VaultLockProvider.apply(api(emu), "Unlocked", "AlwaysON")
    assert api(emu).vault_settings().immutability == "Locked"
    # and Azure itself refuses it (the emulator's rule)
    status, body = emu.raw_request(
        "PATCH",
        f"{VAULT.id}?api-version=2025-02-01",
        {"properties": {"securitySettings": {"immutabilitySettings": {"state": "Disabled"}}}},
    )
    assert (status, body["error"]["code"]) == (400, "UserErrorImmutabilityStateTransitionNotAllowed")


def test_always_on_soft_delete_is_never_downgraded(emu: Emulator) -> None:
    secure_vault(emu)
    status, body = emu.raw_request(
        "PATCH",
        f"{VAULT.id}?api-version=2025-02-01",
        {"properties": {"securitySettings": {"softDeleteSettings": {"softDeleteState": "Enabled"}}}},
    )
    assert (status, body["error"]["code"]) == (400, "BMSUserErrorSoftDeleteStateAlwaysOn")
    with pytest.raises(ValueError, match=r"^vault.softDelete = 'Enabled' is not allowed: soft delete is AlwaysON"):
        VaultLockProvider.apply(api(emu), "Unlocked", "Enabled")


def test_vault_lock_check_fails_a_downgrade_at_preview_naming_the_setting() -> None:
    olds = {"vaultId": VAULT.id, "immutability": "Locked", "softDelete": "AlwaysON"}
    failures = VaultLockProvider().check(olds, {**olds, "immutability": "Unlocked", "softDelete": "Enabled"}).failures
    assert [(f.property, f.reason) for f in failures] == [
        (
            "immutability",
            "vault.immutability = 'Unlocked' is not allowed: the vault is Locked, which Azure never undoes "
            "(nobody can shorten retention or delete recovery points); keep vault.immutability: Locked",
        ),
        (
            "softDelete",
            "vault.softDelete = 'Enabled' is not allowed: soft delete is AlwaysON, which Azure never undoes; "
            "keep vault.softDelete: AlwaysON",
        ),
    ]
    assert VaultLockProvider().check(olds, {**olds, "immutability": Unknown()}).failures == []


def test_vault_lock_provider_create_and_update_in_process(emu: Emulator) -> None:
    secure_vault(emu)
    provider = VaultLockProvider(api_factory=lambda vault: api(emu, vault))
    props = {"vaultId": VAULT.id, "immutability": "Unlocked", "softDelete": "AlwaysON"}
    created = provider.create(props)
    assert created.id == f"{VAULT.id.lower()}/lock"
    provider.update(created.id, props, {**props, "immutability": "Locked"})
    assert api(emu).vault_settings().immutability == "Locked"


# --- moving VMs between policies -------------------------------------------------------------------------


def test_changing_an_items_policy_is_an_in_place_put(emu: Emulator) -> None:
    vm = protected_with_a_point(emu)
    emu.raw_request(
        "PUT",
        f"{VAULT.id}/backupPolicies/gold?api-version=2025-02-01",
        {"properties": emu.state.get_policy(emu.state.require_vault(SUB, "rg-backup", "rsv-prod"), "DefaultPolicy")[
            "properties"
        ]},
    )
    resume(emu, vm, policy="gold")
    props = item(emu, vm)
    assert props["policyId"].endswith("/backupPolicies/gold")
    assert props["protectionState"] == "Protected" and points(emu, vm) == 1
