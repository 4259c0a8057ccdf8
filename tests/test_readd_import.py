"""Re-adding a VM whose backup item Azure kept (removed earlier: protection stopped with its data
retained, or soft-deleted) no longer fails ``pulumi up`` with azure-native's "cannot create already
existing resource": the program asks Azure for each VM's item (one ``getProtectedItem`` invoke per
VM, all in flight at once) and sets the item's ``import_`` option to the id Azure returns.

Under Pulumi's mocks (no CLI, no Azure): the mocks answer ``getVault``/``getProtectedItem`` per
token (testing/mock_preview.py ``RecordingMocks``), and the recorded ``import_id`` is what the
engine would receive as ``importId``. What the engine then does with it (import, or "in state with
the same ID: like any other resource") is the engine's documented behaviour
(pulumi/pulumi developer-docs/architecture/import.md), not exercised here.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from components.program import deploy
from components.urn_replay import match_against, recording
from testing.mock_preview import RecordingMocks, evaluate, load_stack_config

SUB = "00000000-0000-0000-0000-0000000000d1"
ITEM = "azure-native:recoveryservices:ProtectedItem"
VAULT_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg-backup-dev"
    "/providers/Microsoft.RecoveryServices/vaults/rsv-pvm-dev-weu"
)
WEB = f"/subscriptions/{SUB}/resourceGroups/rg-app-dev/providers/Microsoft.Compute/virtualMachines/vm-web-dev-01"
API = f"/subscriptions/{SUB}/resourceGroups/rg-app-dev/providers/Microsoft.Compute/virtualMachines/vm-api-dev-01"
WEB_ITEM, API_ITEM = "rg-app-dev-vm-web-dev-01-item", "rg-app-dev-vm-api-dev-01-item"


def item_id(vm: str, *, azure_casing: bool = False) -> str:
    """The item's ARM id; ``azure_casing``: the container/item prefixes as Azure's responses spell
    them (ClassicCompute/ProtectedItems examples in azure-rest-api-specs: ``IaasVMContainer;...``,
    ``VM;...``), to prove the program passes on Azure's id rather than rebuilding it."""
    rg, name = vm.split("/")[4], vm.split("/")[-1]
    container, item = f"iaasvmcontainer;iaasvmcontainerv2;{rg};{name}", f"vm;iaasvmcontainerv2;{rg};{name}"
    if azure_casing:
        container, item = f"IaasVMContainer;iaasvmcontainerv2;{rg};{name}", f"VM;iaasvmcontainerv2;{rg};{name}"
    return f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/{container}/protectedItems/{item}"


def imports(mocks: RecordingMocks, *, preview: bool = False, vms: list[str] | None = None) -> dict[str, str | None]:
    """Per item resource name, the import id the program registered it with."""
    config = load_stack_config("dev")
    if vms is not None:
        config["protected-vm:vms"] = json.dumps(vms)
    plan = evaluate(deploy, config, "dev", preview=preview, mocks=mocks)
    return {item.name: item.import_id for item in plan.of_type(ITEM)}


@pytest.mark.parametrize("preview", [False, True])
def test_a_re_added_vm_whose_item_azure_kept_is_imported_with_azures_id(preview: bool) -> None:
    kept = item_id(WEB, azure_casing=True)
    mocks = RecordingMocks(SUB, preview=preview, existing_items=[kept])
    assert imports(mocks, preview=preview) == {WEB_ITEM: kept, API_ITEM: None}


@pytest.mark.parametrize("preview", [False, True])
def test_a_vm_never_protected_gets_no_import_and_each_vm_costs_one_invoke(preview: bool) -> None:
    mocks = RecordingMocks(SUB, preview=preview)
    assert imports(mocks, preview=preview) == {WEB_ITEM: None, API_ITEM: None}
    item_calls = [args for token, args in mocks.calls if token == "azure-native:recoveryservices:getProtectedItem"]
    assert sorted(args["protectedItemName"] for args in item_calls) == [
        "vm;iaasvmcontainerv2;rg-app-dev;vm-api-dev-01",
        "vm;iaasvmcontainerv2;rg-app-dev;vm-web-dev-01",
    ]
    assert {(a["vaultName"], a["resourceGroupName"], a["fabricName"]) for a in item_calls} == {
        ("rsv-pvm-dev-weu", "rg-backup-dev", "Azure")
    }


def test_a_brand_new_stacks_preview_imports_nothing_because_its_vault_does_not_exist_yet() -> None:
    mocks = RecordingMocks(SUB, preview=True, existing_vaults=(), existing_items=[item_id(WEB)])
    assert imports(mocks, preview=True) == {WEB_ITEM: None, API_ITEM: None}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_items_already_in_state_get_the_id_they_were_created_with_and_keep_every_urn(stack: str) -> None:
    """An existing stack: every item exists in Azure. Each gets ``import_`` = the id its create
    recorded (azure-native keeps Azure's id on create), which the engine treats as "in state with
    the same ID": a resource like any other. URNs and inputs are exactly those of a run without
    the lookup, so the plan does not change."""
    config = load_stack_config(stack)
    subscription = json.loads(config["protected-vm:vms"])[0].split("/")[2]
    with recording() as before_regs:
        before = evaluate(deploy, config, stack, mocks=RecordingMocks(subscription))
    created = {item.name: item.id for item in before.of_type(ITEM)}
    assert created and [i.import_id for i in before.of_type(ITEM)] == [None] * len(created)
    mocks = RecordingMocks(subscription, existing_items=list(created.values()))
    with recording() as after_regs:
        after = evaluate(deploy, config, stack, mocks=mocks)
    assert {item.name: item.import_id for item in after.of_type(ITEM)} == created
    outcome = match_against({r.urn for r in before_regs}, after_regs)
    assert (outcome.errors, outcome.deleted, outcome.created()) == ([], [], [])

    def inputs(plan: Any) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r.type, r.name): dict(r.inputs) for r in plan.resources}

    assert inputs(after) == inputs(before)


def test_a_protected_vm_with_its_own_vault_looks_its_item_up_itself() -> None:
    from components.config import PolicySettings, VaultSettings
    from components.protected_vm import ProtectedVM

    vm = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/solo-vm"
    kept = (
        f"/subscriptions/{SUB}/resourceGroups/rg-solo/providers/Microsoft.RecoveryServices/vaults/rsv-solo"
        "/backupFabrics/Azure/protectionContainers/IaasVMContainer;iaasvmcontainerv2;rg-app;solo-vm"
        "/protectedItems/VM;iaasvmcontainerv2;rg-app;solo-vm"
    )

    def program() -> None:
        ProtectedVM(
            "solo",
            {
                "vm_id": vm,
                "vault": VaultSettings(name="rsv-solo", resource_group="rg-solo"),
                "policy": PolicySettings(name="pol-solo"),
                "location": "westeurope",
            },
        )

    plan = evaluate(program, {}, "dev", mocks=RecordingMocks(SUB, existing_items=[kept]))
    assert [item.import_id for item in plan.of_type(ITEM)] == [kept]


def test_the_engine_receives_the_import_id_and_ignores_the_names_azure_spells_differently() -> None:
    """What RegisterResource carries to the engine. An imported item's inputs are read back from
    Azure's id (``IaasVMContainer;...``, ``VM;...``) while the program sends lower case; azure-native
    would diff those URL names as a replacement, so every item ignores changes to them."""
    from pulumi.runtime import mocks as pulumi_mocks

    kept = item_id(WEB, azure_casing=True)
    seen: dict[str, tuple[str, list[str]]] = {}
    original = pulumi_mocks.MockMonitor.RegisterResource

    def register(self: Any, request: Any) -> Any:
        if request.type == ITEM:
            seen[request.name] = (request.importId, list(request.ignoreChanges))
        return original(self, request)

    pulumi_mocks.MockMonitor.RegisterResource = register  # type: ignore[method-assign]
    try:
        imports(RecordingMocks(SUB, existing_items=[kept]))
    finally:
        pulumi_mocks.MockMonitor.RegisterResource = original  # type: ignore[method-assign]
    assert seen == {
        WEB_ITEM: (kept, ["containerName", "protectedItemName"]),
        API_ITEM: ("", ["containerName", "protectedItemName"]),
    }


def test_the_item_is_imported_after_its_vm_protection_resumed_it() -> None:
    """VmProtection undeletes/resumes the kept item with the stack's policy; the imported item
    depends on it, so the engine imports only after that, and finds the policy the program sets."""
    with recording() as regs:
        imports(RecordingMocks(SUB, existing_items=[item_id(WEB)]))
    (item,) = [r for r in regs if r.type == ITEM and r.name == "rg-app-dev-vm-web-dev-01-item"]
    assert any(dep.endswith("::rg-app-dev-vm-web-dev-01-protection") for dep in item.dependencies)
    assert item.retain_on_delete


def test_the_lookups_are_in_flight_together_not_one_after_another() -> None:
    """Three VMs: each mock answer waits until all three invokes have arrived. Invoked one after
    another, the first would wait alone and the barrier would break (its timeout only stops a
    hang; no time is measured)."""
    vms = [WEB, API, WEB.replace("vm-web-dev-01", "vm-db-dev-01")]
    barrier = threading.Barrier(len(vms), timeout=20)

    class GatedMocks(RecordingMocks):
        def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            if args.token == "azure-native:recoveryservices:getProtectedItem":
                barrier.wait()
            return super().call(args)

    assert imports(GatedMocks(SUB, existing_items=[item_id(API)]), vms=vms) == {
        WEB_ITEM: None,
        API_ITEM: item_id(API),
        "rg-app-dev-vm-db-dev-01-item": None,
    }


def test_a_read_that_fails_for_another_reason_stops_the_program_naming_vm_and_vault() -> None:
    class DeniedMocks(RecordingMocks):
        def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            if args.token == "azure-native:recoveryservices:getProtectedItem":
                return {}, [("", "AuthorizationFailed: the client does not have authorization (403)")]
            return super().call(args)

    with pytest.raises(Exception) as raised:
        imports(DeniedMocks(SUB), vms=[WEB])
    message = str(raised.value)
    assert message.startswith("cannot read the backup item of vm-web-dev-01 in vault rsv-pvm-dev-weu: ")
    assert "AuthorizationFailed: the client does not have authorization (403)" in message
    assert message.endswith(
        "the program asks Azure whether a VM's item is kept from an earlier removal (to adopt it): check the "
        "deployment identity's read access to the vault"
    )
