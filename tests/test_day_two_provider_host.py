"""``VmProtectionProvider`` and ``VaultLockProvider`` through the real dynamic provider host over
gRPC (``tests/provider_host.py``), as the engine calls them.

The in-process tests (tests/test_day_two_emulator.py) cover what each call does in Azure; these
prove the wiring: the pickled providers are found by a host started in the project directory, a
new stack's first preview (vault id and location unknown) passes Check, Check failures come back
naming the property, Diff answers through the wire, and Create/Delete reach the emulator with the
endpoint taken from the host's environment (``PROTECTED_VM_ARM_ENDPOINT``/``..._CA_BUNDLE``). Note
that Check makes Azure reads (the pre-flight) for a VM new to the stack, so the emulator must know
the VM.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from components.vault_lock import TYPE_TOKEN as LOCK_TOKEN
from components.vault_lock import VaultLockProvider
from components.vm_protection import TYPE_TOKEN as PROTECTION_TOKEN
from components.vm_protection import VmProtectionProvider
from emulator import Emulator, StaticTokenCredential
from emulator.seeding import protect
from protectedvm.azure_client import CA_BUNDLE_ENV, ENDPOINT_ENV, BackupApi, make_sdk_client
from protectedvm.ids import VaultRef
from tests.helpers import SUB, create_secure_vault
from tests.provider_host import ProviderHost

VAULT = VaultRef(SUB, "rg-backup", "rsv-day2-host")
OTHER = VaultRef(SUB, "rg-backup", "rsv-day2-other")
PROTECTION_URN = (
    f"urn:pulumi:dev::protected-vm::protected-vm:index:ProtectedVM${PROTECTION_TOKEN}::rg-app-vm-protection"
)
LOCK_URN = f"urn:pulumi:dev::protected-vm::protected-vm:index:BackupVault${LOCK_TOKEN}::backup-vault-lock"
DIFF_NONE, DIFF_SOME = provider_pb2.DiffResponse.DIFF_NONE, provider_pb2.DiffResponse.DIFF_SOME


def vm_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}"


def protection(
    vm: str,
    vault_id: Any = VAULT.id,
    location: Any = "westeurope",
    policy_id: Any = f"{VAULT.id}/backupPolicies/DefaultPolicy",
    **extra: Any,
) -> dict[str, Any]:
    """The inputs ``VmProtection.__init__`` registers (a new stack's first preview: the vault's id,
    location and policy id unknown)."""
    return {
        "vaultId": vault_id,
        "vmId": vm,
        "vaultLocation": location,
        "policyId": policy_id,
        "onRemove": "retainData",
        "resumed": None,
        **extra,
    }


def lock(immutability: str, soft_delete: str = "AlwaysON", vault_id: Any = VAULT.id) -> dict[str, Any]:
    return {"vaultId": vault_id, "immutability": immutability, "softDelete": soft_delete}


def secure_vault(emu: Emulator, vault: VaultRef, immutability: str = "Unlocked") -> None:
    create_secure_vault(emu, vault, immutability, retention_days=14)

@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(job_duration=0.0) as emulator:
        secure_vault(emulator, VAULT)
        yield emulator


def _host(emu: Emulator, provider: Any) -> Iterator[ProviderHost]:
    with ProviderHost(provider, env={ENDPOINT_ENV: emu.base_url, CA_BUNDLE_ENV: emu.ca_path}) as running:
        running.configure({})
        yield running


@pytest.fixture(scope="module")
def vm_host(emu: Emulator) -> Iterator[ProviderHost]:
    yield from _host(emu, VmProtectionProvider())


@pytest.fixture(scope="module")
def lock_host(emu: Emulator) -> Iterator[ProviderHost]:
    yield from _host(emu, VaultLockProvider())


def backup_api(emu: Emulator, vault: VaultRef = VAULT) -> BackupApi:
    client = make_sdk_client(SUB, StaticTokenCredential(), base_url=emu.base_url, connection_verify=emu.ca_path)
    return BackupApi(client, vault)


def failures(response: provider_pb2.CheckResponse) -> list[tuple[str, str]]:
    return [(f.property, f.reason) for f in response.failures]


# --- VmProtection: preview --------------------------------------------------------------------------


def test_check_on_a_new_stacks_first_preview_accepts_unknown_vault_id_and_location(
    emu: Emulator, vm_host: ProviderHost
) -> None:
    vm = vm_id("vm-new-stack")
    emu.add_vm(vm, "westeurope")
    news = protection(vm, vault_id=rpc.UNKNOWN, location=rpc.UNKNOWN, policy_id=rpc.UNKNOWN)
    response = vm_host.check(PROTECTION_URN, {}, news)
    assert failures(response) == []
    assert response.inputs.fields["vaultId"].string_value == rpc.UNKNOWN
    assert response.inputs.fields["vaultLocation"].string_value == rpc.UNKNOWN


def test_check_runs_the_pre_flight_for_a_vm_new_to_the_stack_and_names_the_vm(
    emu: Emulator, vm_host: ProviderHost
) -> None:
    missing = vm_id("vm-missing")
    far = vm_id("vm-far")
    emu.add_vm(far, "northeurope")
    assert failures(vm_host.check(PROTECTION_URN, {}, protection(missing, vault_id=rpc.UNKNOWN))) == [
        (
            "vmId",
            f"vm-missing ({missing}) was not found (or the deployment identity cannot read it): fix or remove it "
            "in protected-vm:vms",
        )
    ]
    assert failures(vm_host.check(PROTECTION_URN, {}, protection(far))) == [
        (
            "vmId",
            f"vm-far is in northeurope but vault {VAULT.name} is in westeurope; Azure Backup protects a VM only in a "
            "vault of its own region: protect it from a stack whose vault is in northeurope",
        )
    ]


def test_check_names_an_invalid_on_remove_and_a_resource_that_would_change_vm(vm_host: ProviderHost) -> None:
    vm = vm_id("vm-checked")
    bad = failures(vm_host.check(PROTECTION_URN, {}, protection(vm, onRemove="purge")))
    assert bad == [
        (
            "onRemove",
            "protected-vm:onRemove = 'purge' is not allowed: use retainData (the default: stop protection, keep the "
            "recovery points) or deleteData (stop and delete backup data)",
        )
    ]
    other = vm_id("vm-other")
    moved = failures(vm_host.check(PROTECTION_URN, protection(vm), protection(other)))
    assert moved == [
        (
            "vmId",
            f"this resource protects {vm} and would become {other}: a resource never changes VM; check the names "
            "and aliases of protected-vm:vms entries",
        )
    ]


def test_check_of_a_vm_already_in_state_makes_no_azure_call(emu: Emulator, vm_host: ProviderHost) -> None:
    vm = vm_id("vm-in-state")  # unknown to the emulator: a pre-flight would fail with "not found"
    emu.reset_counts()
    assert failures(vm_host.check(PROTECTION_URN, protection(vm), protection(vm))) == []
    assert sum(emu.counts.values()) == 0


def test_diff_through_the_host(vm_host: ProviderHost) -> None:
    vm = vm_id("vm-diff")
    olds = protection(vm)
    same = vm_host.diff(PROTECTION_URN, "id", olds, protection(vm, vault_id=VAULT.id.upper()))
    policy = vm_host.diff(PROTECTION_URN, "id", olds, {**olds, "policyId": f"{VAULT.id}/backupPolicies/p2"})
    on_remove = vm_host.diff(PROTECTION_URN, "id", olds, {**olds, "onRemove": "deleteData"})
    other_vault = vm_host.diff(PROTECTION_URN, "id", olds, protection(vm, vault_id=OTHER.id))
    assert (same.changes, list(same.replaces)) == (DIFF_NONE, [])
    assert (policy.changes, list(policy.replaces)) == (DIFF_SOME, [])
    assert (on_remove.changes, list(on_remove.replaces)) == (DIFF_SOME, [])
    assert (other_vault.changes, list(other_vault.replaces), other_vault.deleteBeforeReplace) == (
        DIFF_SOME,
        ["vaultId"],
        True,
    )


# --- VmProtection: up (Create, Delete) against the emulator --------------------------------------------


def test_create_then_delete_keeps_the_recovery_points_and_a_re_add_resumes_protection(
    emu: Emulator, vm_host: ProviderHost
) -> None:
    vm = vm_id("vm-lifecycle")
    (ref,) = protect(emu, VAULT, [vm])
    emu.start_job(ref.name, duration=0.0)
    api = backup_api(emu)
    try:
        points = len(api.recovery_points(ref))
        assert points == 1

        resource_id, outs = vm_host.create(PROTECTION_URN, protection(vm))
        assert resource_id == f"{VAULT.id.lower()}/vmProtection/{ref.key}"
        assert outs.get("resumed") is None  # protected already: nothing to resume (None is not sent)

        vm_host.delete(PROTECTION_URN, resource_id, outs)  # the VM leaves the stack
        state = api.item_state(ref)
        assert state is not None
        assert (state.protection_state, state.soft_deleted) == ("ProtectionStopped", False)
        assert len(api.recovery_points(ref)) == points

        _, readded = vm_host.create(PROTECTION_URN, protection(vm))  # and comes back
        assert readded["resumed"] == "stopped"
        state = api.item_state(ref)
        assert state is not None
        assert (state.protection_state, state.policy_id) == ("Protected", f"{VAULT.id}/backupPolicies/DefaultPolicy")
        assert len(api.recovery_points(ref)) == points
    finally:
        api.close()
    assert (
        "vm-lifecycle: protection resumed with its retained recovery points (stopped before); its backup item is "
        "imported into the stack, not created again"
    ) in vm_host.stderr_text


def test_delete_data_removal_soft_deletes_and_a_re_add_undeletes_and_resumes_through_the_host(
    emu: Emulator, vm_host: ProviderHost
) -> None:
    vm = vm_id("vm-soft")
    (ref,) = protect(emu, VAULT, [vm])
    emu.start_job(ref.name, duration=0.0)
    api = backup_api(emu)
    try:
        resource_id, outs = vm_host.create(PROTECTION_URN, protection(vm, onRemove="deleteData"))
        vm_host.delete(PROTECTION_URN, resource_id, outs)
        state = api.item_state(ref)
        assert state is not None and state.soft_deleted
        assert len(api.recovery_points(ref)) == 1  # recoverable for the soft-delete days

        _, readded = vm_host.create(PROTECTION_URN, protection(vm))
        assert readded["resumed"] == "undeleted"
        state = api.item_state(ref)
        assert state is not None
        assert (state.protection_state, state.soft_deleted) == ("Protected", False)
        assert len(api.recovery_points(ref)) == 1
    finally:
        api.close()


def test_create_for_a_vm_another_vault_protects_is_a_grpc_error_naming_the_vm_and_that_vault(
    emu: Emulator, vm_host: ProviderHost
) -> None:
    vm = vm_id("vm-elsewhere")
    protect(emu, OTHER, [vm])
    with pytest.raises(grpc.RpcError) as failed:
        vm_host.create(PROTECTION_URN, protection(vm))
    assert failed.value.code() == grpc.StatusCode.UNKNOWN
    assert (
        f"vm-elsewhere ({vm}) is already protected by vault {OTHER.id}: stop its protection there (and delete its "
        "backup data there, or keep that vault) before this stack can protect it"
    ) in (failed.value.details() or "")


# --- VaultLock ------------------------------------------------------------------------------------------


def test_lock_check_accepts_a_new_stacks_unknown_vault_and_refuses_downgrades_naming_the_setting(
    lock_host: ProviderHost,
) -> None:
    assert failures(lock_host.check(LOCK_URN, {}, lock("Locked", vault_id=rpc.UNKNOWN))) == []
    assert failures(lock_host.check(LOCK_URN, lock("Locked"), lock("Unlocked", soft_delete="On"))) == [
        (
            "immutability",
            "vault.immutability = 'Unlocked' is not allowed: the vault is Locked, which Azure never undoes (nobody "
            "can shorten retention or delete recovery points); keep vault.immutability: Locked",
        ),
        (
            "softDelete",
            "vault.softDelete = 'On' is not allowed: soft delete is AlwaysON, which Azure never undoes; keep "
            "vault.softDelete: AlwaysON",
        ),
    ]
    assert failures(lock_host.check(LOCK_URN, lock("Locked"), lock(rpc.UNKNOWN))) == []


def test_lock_diff_through_the_host(lock_host: ProviderHost) -> None:
    same = lock_host.diff(LOCK_URN, "id", lock("Locked"), lock("Locked", vault_id=VAULT.id.upper()))
    locking = lock_host.diff(LOCK_URN, "id", lock("Unlocked"), lock("Locked"))
    other = lock_host.diff(LOCK_URN, "id", lock("Locked"), lock("Locked", vault_id=OTHER.id))
    assert (same.changes, list(same.replaces)) == (DIFF_NONE, [])
    assert (locking.changes, list(locking.replaces)) == (DIFF_SOME, [])
    assert (other.changes, list(other.replaces), other.deleteBeforeReplace) == (DIFF_SOME, ["vaultId"], False)


def test_lock_create_locks_the_unlocked_vault_and_delete_leaves_it_locked(
    emu: Emulator, lock_host: ProviderHost
) -> None:
    vault = VaultRef(SUB, "rg-backup", "rsv-day2-lock")
    secure_vault(emu, vault, immutability="Unlocked")
    resource_id, outs = lock_host.create(LOCK_URN, lock("Locked", vault_id=vault.id))
    assert resource_id == f"{vault.id.lower()}/lock"
    assert {k: v for k, v in outs.items() if k != "__provider"} == lock("Locked", vault_id=vault.id)
    api = backup_api(emu, vault)
    try:
        assert api.vault_settings().immutability == "Locked"
        lock_host.delete(LOCK_URN, resource_id, outs)
        assert api.vault_settings().immutability == "Locked"
    finally:
        api.close()


def test_lock_create_on_a_locked_vault_asked_to_unlock_is_a_grpc_error_naming_the_setting(
    emu: Emulator, lock_host: ProviderHost
) -> None:
    """The first ``up`` after an upgrade has no previous inputs for Check: Create reads the vault."""
    vault = VaultRef(SUB, "rg-backup", "rsv-day2-locked")
    secure_vault(emu, vault, immutability="Unlocked")
    lock_host.create(LOCK_URN, lock("Locked", vault_id=vault.id))
    with pytest.raises(grpc.RpcError) as failed:
        lock_host.create(LOCK_URN, lock("Unlocked", vault_id=vault.id))
    assert "vault.immutability = 'Unlocked' is not allowed: the vault is Locked" in (failed.value.details() or "")
