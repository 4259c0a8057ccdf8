"""``protectedvm.ids`` is the one home of ARM ids, Azure's derived names and this project's
identifiers: one id rule for the stack config, the dynamic providers and the verify CLI; importable
by the policy pack without the Azure SDKs; and the emulator, which plays Azure with its own
spelling, agrees with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from components import validation as v
from components.config import VmTarget
from emulator import compute as emulator_compute
from emulator import names as emulator_names
from protectedvm import ids
from protectedvm.ids import VaultRef, VmRef
from tests.helpers import SUB

REPO = Path(__file__).resolve().parent.parent
VM = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-web-01"
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv-app"

ACCEPTED_VM_IDS = [
    VM,
    VM.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"),
    f"/subscriptions/{SUB}/resourcegroups/rg.app_(1)/providers/microsoft.compute/virtualmachines/vm_01.a",
]
#: The last four were accepted by the old verifier-side parser and refused by the stack config.
REFUSED_VM_IDS = [
    VM + "\n",
    " " + VM,
    VM + "/",
    f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/disks/d1",
    "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
    f"/subscriptions/{SUB}/resourceGroups/rg app/providers/Microsoft.Compute/virtualMachines/vm",
    f"/subscriptions/{SUB}/resourceGroups/{'r' * 91}/providers/Microsoft.Compute/virtualMachines/vm",
]


@pytest.mark.parametrize("vm_id", ACCEPTED_VM_IDS)
def test_the_stack_config_the_providers_and_the_cli_accept_the_same_vm_ids(vm_id: str) -> None:
    target = VmTarget.from_id(vm_id)
    ref = VmRef.from_id(vm_id)
    assert v.check_vm_id(vm_id) == []
    assert (target.subscription, target.resource_group, target.name) == (
        ref.subscription_id,
        ref.resource_group,
        ref.name,
    )
    assert target.container_name == ref.container_name
    assert target.protected_item_name == ref.protected_item_name


@pytest.mark.parametrize("vm_id", REFUSED_VM_IDS)
def test_the_stack_config_the_providers_and_the_cli_refuse_the_same_vm_ids(vm_id: str) -> None:
    assert v.check_vm_id(vm_id) == [
        f"vms = {vm_id!r} is not a virtual machine resource id: expected "
        "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>"
    ]
    with pytest.raises(ValueError) as refused:
        VmRef.from_id(vm_id)
    assert str(refused.value) == (
        f"{vm_id!r} is not a virtual machine id: expected "
        "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>"
    )


def test_a_vault_id_is_parsed_once_for_config_and_providers() -> None:
    assert v.parse_vault_id(VAULT) == ids.ArmId(SUB, "rg-backup", "rsv-app")
    assert VaultRef.from_id(VAULT) == VaultRef(SUB, "rg-backup", "rsv-app")
    assert VaultRef.from_id(VAULT).id == VAULT
    short = VAULT.replace("rsv-app", "r")  # vault names are 2-50 characters
    with pytest.raises(v.ValidationError):
        v.parse_vault_id(short)
    with pytest.raises(ValueError, match="is not a Recovery Services vault id"):
        VaultRef.from_id(short)


def test_a_policy_id_names_its_vault() -> None:
    policy = f"{VAULT}/backupPolicies/pol-daily.30"
    assert ids.match_id(policy, ids.POLICY_ID) == ids.ArmId(SUB, "rg-backup", "pol-daily.30", ("rsv-app",))
    assert v.check_policy_id(policy) == []
    assert ids.match_id(f"{VAULT}/backupPolicies/", ids.POLICY_ID) is None


def test_the_derived_names_are_azures() -> None:
    """azure-rest-api-specs ``Compute_ProtectedItem_Get.json``: container
    ``IaasVMContainer;iaasvmcontainerv2;<rg>;<vm>``, item ``VM;iaasvmcontainerv2;<rg>;<vm>``, fabric ``Azure``."""
    ref = VmRef.from_id(VM)
    assert ref.container_name == "iaasvmcontainer;iaasvmcontainerv2;rg-app;vm-web-01"
    assert ref.protected_item_name == "vm;iaasvmcontainerv2;rg-app;vm-web-01"
    assert ids.FABRIC_NAME == "Azure"
    assert ref.owns_container("IaasVMContainer;iaasvmcontainerv2;RG-APP;vm-web-01")
    assert ref.owns_container("iaasvmcontainerv2;rg-app;vm-web-01")
    assert not ref.owns_container("iaasvmcontainerv2;rg-app;vm-web-011")


def test_the_emulator_plays_azure_with_the_same_names() -> None:
    ref = VmRef.from_id(VM)
    assert emulator_names.parse_container(ref.container_name) == ("rg-app", "vm-web-01")
    assert emulator_names.parse_item(ref.protected_item_name) == ("rg-app", "vm-web-01")
    assert emulator_names.container_name("rg-app", "vm-web-01").lower() == ref.container_name
    assert emulator_names.item_name("rg-app", "vm-web-01").lower() == ref.protected_item_name
    assert emulator_names.PROVIDER == ids.RECOVERY_SERVICES_PROVIDER
    assert emulator_compute.VM_TYPE == ids.VM_RESOURCE_TYPE
    assert emulator_names.parse_vm_id(VM).id == VM


def test_the_policy_packs_arm_paths_are_the_ids_without_a_subscription() -> None:
    assert f"/subscriptions/{SUB}{ids.vault_path('rg-backup', 'rsv-app')}" == VAULT
    assert f"/subscriptions/{SUB}{ids.vm_path('rg-app', 'vm-web-01')}" == VM
    assert ids.subscription_of(VAULT.upper()) == SUB.lower()
    assert ids.subscription_of("rsv-app") is None


def _imported_after(code: str) -> list[str]:
    """Top-level modules a fresh interpreter has loaded after ``code`` (outside the stdlib)."""
    probe = (
        "import sys\nbefore = set(sys.modules)\n"
        f"{code}\n"
        "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.split()


@pytest.mark.slow
def test_the_ids_module_needs_only_the_standard_library() -> None:
    assert _imported_after("import protectedvm.ids") == ["protectedvm"]


@pytest.mark.slow
def test_the_policy_pack_imports_without_the_azure_sdks() -> None:
    """The pack's own virtualenv has pulumi and pulumi-policy only (policies/requirements.txt)."""
    loaded = _imported_after("import policies.pack, policies.runner")
    assert not [m for m in loaded if m == "azure" or m.startswith("pulumi_azure")]
    assert {"components", "policies", "protectedvm", "pulumi_policy"} <= set(loaded)
