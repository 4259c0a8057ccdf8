"""Day two under mocks: adding, removing and reordering VMs never changes an existing resource's
URN, and the stacks deployed before the naming change keep every URN (issue 13, deliverable 1).

Each scenario runs the real program twice (before/after an edit of ``protected-vm:vms``) and
replays the second run against the first run's URNs the way the engine matches aliases
(``components/urn_replay.py``). "Kept" means: every old URN is claimed by exactly one new resource
(its own URN or an alias), so nothing is deleted and nothing existing is created again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.program import deploy
from components.urn_replay import Outcome, Registration, match_against, recording, urns
from components.validation import ValidationError
from policies.runner import load_env_config, run_policies
from testing.mock_preview import RecordingMocks, evaluate, evaluate_stack, load_stack_config
from tests.helpers import SUB

FIXTURES = Path(__file__).parent / "fixtures" / "urns"
ITEM = "azure-native:recoveryservices:ProtectedItem"
VAULT = "azure-native:recoveryservices:Vault"
PROTECTION = "pulumi-python:dynamic/protectedvm:VmProtection"
LOCK = "pulumi-python:dynamic/protectedvm:VaultLock"


#: Issue 17's operations resources, new in each stack (new resources only: no existing URN moves).
OPERATIONS_ADDED = {
    "dev": [],
    "staging": [
        "backup-vault-delete-lock",
        "backup-vault-action-group",
        "backup-vault-alert-routing",
        "backup-vault-workspace",
        "backup-vault-reports",
    ],
    "prod": [
        "backup-vault-delete-lock",
        "backup-vault-action-group",
        "backup-vault-alert-routing",
        "backup-vault-reports",
        "backup-vault-mua",
    ],
}


def vm_id(name: str, rg: str = "rg-a", sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def run(vms: list[str], *, preview: bool = False) -> list[Registration]:
    config = load_stack_config("dev")
    config["protected-vm:vms"] = json.dumps(vms)
    with recording() as regs:
        evaluate(deploy, config, "dev", preview=preview)
    return regs


def replay(before: list[Registration], after: list[Registration]) -> Outcome:
    return match_against(urns(before) | {r.urn for r in before if r.type == "pulumi:pulumi:Stack"}, after)


def _short(urn: str) -> str:
    return urn.rsplit("::", 1)[1]


def item_urn(regs: list[Registration], vm: str) -> str:
    """The URN a VM's ProtectedItem has in this run (found by its sourceResourceId-derived name)."""
    rg, name = vm.split("/")[4], vm.split("/")[-1]
    found = [r.urn for r in regs if r.type == ITEM and r.name == f"{rg}-{name}-item".lower()]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
@pytest.mark.parametrize("preview", [False, True])
def test_todays_stacks_keep_every_urn_and_only_gain_a_vm_protection_per_vm_and_a_vault_lock(
    stack: str, preview: bool
) -> None:
    old = set(json.loads((FIXTURES / f"{stack}.json").read_text()))
    with recording() as regs:
        evaluate_stack(stack, preview=preview)
    outcome = match_against(old, regs)
    assert outcome.errors == []
    assert outcome.deleted == []
    vms = json.loads(load_stack_config(stack)["protected-vm:vms"])
    created = outcome.created()
    assert sorted(urn.rsplit("::", 1)[1] for urn in created) == sorted(
        ["backup-vault-lock"]
        + [f"{vm.split('/')[4]}-{vm.split('/')[-1]}-protection".lower() for vm in vms]
        + OPERATIONS_ADDED[stack]
    )
    assert all(
        f"${PROTECTION}::" in urn or f"${LOCK}::" in urn or urn.rsplit("::", 1)[1] in OPERATIONS_ADDED[stack]
        for urn in created
    )
    # prod's Locked vault in particular keeps its URN, so nothing is replaced
    vault = (
        f"urn:pulumi:{stack}::protected-vm::protected-vm:index:BackupVault"
        "$azure-native:recoveryservices:Vault::backup-vault"
    )
    assert outcome.matched[vault] == vault


def test_todays_prod_items_are_matched_through_the_inherited_child_alias() -> None:
    old = set(json.loads((FIXTURES / "prod.json").read_text()))
    with recording() as regs:
        evaluate_stack("prod")
    outcome = match_against(old, regs)
    new = "urn:pulumi:prod::protected-vm::protected-vm:index:ProtectedVM$azure-native:recoveryservices:ProtectedItem::"
    assert outcome.matched[new + "rg-app-prod-vm-web-prod-01-item"] == new + "vm-web-prod-01-item"


@pytest.mark.parametrize("preview", [False, True])
def test_adding_a_same_named_vm_in_another_resource_group_keeps_the_existing_vms_urns(preview: bool) -> None:
    web_a, web_b, api = vm_id("web", "rg-a"), vm_id("web", "rg-b"), vm_id("api")
    before = run([web_a, api], preview=preview)
    after = run([web_a, api, web_b], preview=preview)
    outcome = replay(before, after)
    assert outcome.errors == [] and outcome.deleted == []
    assert item_urn(after, web_a) == item_urn(before, web_a)
    assert sorted(u.rsplit("::", 1)[1] for u in outcome.created()) == [
        "rg-b-web",
        "rg-b-web-item",
        "rg-b-web-protection",
    ]


OLD_WAY = {
    "urn:pulumi:dev::protected-vm::protected-vm:index:ProtectedVM::web",
    "urn:pulumi:dev::protected-vm::protected-vm:index:ProtectedVM$azure-native:recoveryservices:ProtectedItem::web-item",
}


def test_a_stack_named_the_old_way_keeps_its_vm_through_the_upgrade_and_then_takes_a_same_named_vm() -> None:
    """Before the naming change the only 'web' was named 'web'. The upgrade continues it as
    'rg-a-web' (component and item, through aliases); the same-named VM added afterwards is new."""
    upgraded = run([vm_id("web", "rg-a")])
    outcome = match_against(OLD_WAY, upgraded)
    assert outcome.errors == [] and outcome.deleted == []
    prefix = "urn:pulumi:dev::protected-vm::protected-vm:index:ProtectedVM"
    assert outcome.matched[f"{prefix}$azure-native:recoveryservices:ProtectedItem::rg-a-web-item"] == (
        f"{prefix}$azure-native:recoveryservices:ProtectedItem::web-item"
    )
    after = replay(upgraded, run([vm_id("web", "rg-b"), vm_id("web", "rg-a")]))
    assert after.errors == [] and after.deleted == []
    assert sorted(_short(u) for u in after.created()) == ["rg-b-web", "rg-b-web-item", "rg-b-web-protection"]


@pytest.mark.parametrize("order", ["existing first", "new first"])
def test_the_upgrade_and_a_same_named_vm_in_one_update_is_refused_whatever_the_order(order: str) -> None:
    """Both VMs claim the old 'web': the engine refuses the ambiguity at preview rather than
    continue the wrong VM's state (which would replace, i.e. delete, the existing item)."""
    vms = [vm_id("web", "rg-a"), vm_id("web", "rg-b")]
    outcome = match_against(OLD_WAY, run(vms if order == "existing first" else vms[::-1]))
    old_web = "urn:pulumi:dev::protected-vm::protected-vm:index:ProtectedVM::web"
    claims = [e for e in outcome.errors if e.endswith(f"both alias {old_web}")]
    assert len(claims) == 1


def test_removing_a_vm_deletes_only_that_vms_resources() -> None:
    web, api, db = vm_id("web"), vm_id("api"), vm_id("db")
    before = run([web, api, db])
    after = run([web, db])
    outcome = replay(before, after)
    assert outcome.errors == [] and outcome.created() == []
    assert sorted(u.rsplit("::", 1)[1] for u in outcome.deleted) == [
        "rg-a-api",
        "rg-a-api-item",
        "rg-a-api-protection",
    ]


def test_reordering_vms_changes_no_urn() -> None:
    vms = [vm_id("web"), vm_id("api", "rg-b"), vm_id("web", "rg-b")]
    before = run(vms)
    after = run(list(reversed(vms)))
    outcome = replay(before, after)
    assert outcome.errors == [] and outcome.deleted == [] and outcome.created() == []
    assert urns(before) == urns(after)


def test_vms_differing_only_by_subscription_are_refused_before_anything_is_registered() -> None:
    a, b = vm_id("web", sub=SUB), vm_id("web", sub="99999999-2222-3333-4444-555555555555")
    config = load_stack_config("dev")
    config["protected-vm:vms"] = json.dumps([a, b])
    with recording() as regs, pytest.raises(ValidationError, match="are in different subscriptions"):
        evaluate(deploy, config, "dev")
    assert [r.type for r in regs if r.type != "pulumi:pulumi:Stack"] == []


def test_on_remove_accepts_only_retain_or_delete_data() -> None:
    config = load_stack_config("dev")
    config["protected-vm:onRemove"] = "purge"
    with pytest.raises(ValidationError) as raised:
        evaluate(deploy, config, "dev")
    assert raised.value.problems == [
        "onRemove = 'purge' is not allowed: use retainData (default: stop protection and keep the recovery "
        "points) or deleteData (stop protection and delete the backup data)"
    ]


def test_each_item_is_retained_on_delete_and_depends_on_its_vm_protection() -> None:
    plan = evaluate_stack("prod")
    protections = plan.of_type(PROTECTION)
    assert sorted(p.inputs["vmId"].split("/")[-1] for p in protections) == [
        "vm-api-prod-01",
        "vm-web-prod-01",
        "vm-web-prod-02",
    ]
    assert {p.inputs["onRemove"] for p in protections} == {"retainData"}
    assert {p.inputs["vaultLocation"] for p in protections} == {"westeurope"}
    with recording() as regs:
        evaluate_stack("prod")
    by_urn = {r.urn: r for r in regs}
    items = [r for r in regs if r.type == ITEM]
    assert len(items) == 3
    for item in items:
        assert item.retain_on_delete is True
        protection = item.urn.replace(f"${ITEM}::", f"${PROTECTION}::").removesuffix("-item") + "-protection"
        assert protection in by_urn
        assert by_urn[protection].name in {d.rsplit("::", 1)[1] for d in item.dependencies}


def test_more_vms_than_a_vault_protects_are_refused_at_preview() -> None:
    from components.config import VmTarget
    from components.program import check_vm_list

    targets = tuple(VmTarget.from_id(vm_id(f"vm{i:04}")) for i in range(1001))
    with pytest.raises(ValidationError) as raised:
        check_vm_list(targets)
    assert raised.value.problems == [
        "vms: 1001 VMs share one vault, which protects at most 1000 Azure VMs: split them across stacks "
        "(one vault each)"
    ]
    check_vm_list(targets[:1000])


class FreshStackMocks(RecordingMocks):
    """The vault does not exist yet: the program's get_vault invoke fails with Azure's 404 (the
    SDK turns an engine's invoke error, like these failures, into an Exception it raises)."""

    def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "azure-native:recoveryservices:getVault":
            return {}, [("", "ResourceNotFound: The Resource 'Microsoft.RecoveryServices/vaults/x' was not found")]
        return super().call(args)


def test_a_new_locked_vault_is_created_unlocked_then_locked_and_passes_prods_policies() -> None:
    config = load_stack_config("prod")
    mocks = FreshStackMocks("00000000-0000-0000-0000-0000000000a1")
    plan = evaluate(deploy, config, "prod", mocks=mocks)
    (vault,) = plan.of_type(VAULT)
    assert vault.inputs["properties"]["securitySettings"]["immutabilitySettings"] == {"state": "Unlocked"}
    assert vault.inputs["tags"] == {
        "managed-by": "protected-vm",
        "stack": "prod",
        "protected-vm-immutability": "Locked",
    }
    (lock,) = plan.of_type(LOCK)
    assert (lock.inputs["immutability"], lock.inputs["softDelete"]) == ("Locked", "AlwaysON")
    violations = run_policies(plan.resources, load_env_config("prod"), stack="prod")
    assert [v for v in violations if "immutab" in v.message] == []


def test_an_existing_locked_vault_keeps_sending_locked_so_prod_shows_no_diff() -> None:
    (vault,) = evaluate_stack("prod").of_type(VAULT)
    assert vault.inputs["properties"]["securitySettings"]["immutabilitySettings"] == {"state": "Locked"}
    assert vault.inputs["tags"] == {"managed-by": "protected-vm", "stack": "prod"}


def test_day_two_providers_are_serialized_by_reference_and_hold_nothing() -> None:
    import base64

    import dill

    from components.vault_lock import VaultLockProvider
    from components.vm_protection import VmProtectionProvider

    plan = evaluate_stack("prod")
    for type_token, provider_class in ((PROTECTION, VmProtectionProvider), (LOCK, VaultLockProvider)):
        resource = plan.of_type(type_token)[0]
        provider = dill.loads(base64.b64decode(resource.inputs["__provider"]))
        assert type(provider) is provider_class
        assert provider.api_factory is None


def test_the_sdk_derives_the_same_child_alias_when_it_computes_aliases_itself() -> None:
    """Engines without alias specs get full alias URNs from the SDK
    (``pulumi.runtime.resource.inherited_child_alias``): the child name's parent prefix is
    swapped for the parent's old name, exactly as the engine's ``inheritedChildAlias`` does
    (modelled in ``components/urn_replay.py``)."""
    from pulumi.runtime.resource import inherited_child_alias
    from pulumi.runtime.sync_await import _sync_await

    old_parent = "urn:pulumi:prod::protected-vm::protected-vm:index:ProtectedVM::vm-web-prod-01"
    alias = inherited_child_alias("rg-app-prod-vm-web-prod-01-item", "rg-app-prod-vm-web-prod-01", old_parent, ITEM)
    assert _sync_await(alias.future()) == (
        "urn:pulumi:prod::protected-vm::protected-vm:index:ProtectedVM$azure-native:recoveryservices:ProtectedItem"
        "::vm-web-prod-01-item"
    )


def test_moving_the_stack_to_another_policy_changes_only_each_items_policy_id() -> None:
    """Same URNs, same URL names (vault, container, item): for azure-native only a body property
    changes, which is an in-place update (pulumi-azure-native provider/pkg/provider/diff.go)."""
    config = load_stack_config("dev")
    with recording() as before_regs:
        before = evaluate(deploy, config, "dev")
    policy = json.loads(config["protected-vm:policy"])
    policy["name"] = "pol-vm-daily-dev-v2"
    config["protected-vm:policy"] = json.dumps(policy)
    with recording() as after_regs:
        after = evaluate(deploy, config, "dev")
    assert urns(before_regs) == urns(after_regs)
    old_items = {i.name: dict(i.inputs) for i in before.of_type(ITEM)}
    new_items = {i.name: dict(i.inputs) for i in after.of_type(ITEM)}
    assert old_items.keys() == new_items.keys()
    for name, old in old_items.items():
        new = new_items[name]
        for key in ("vaultName", "resourceGroupName", "fabricName", "containerName", "protectedItemName"):
            assert new[key] == old[key]
        assert old["properties"]["policyId"].endswith("/backupPolicies/pol-vm-daily-dev")
        assert new["properties"]["policyId"].endswith("/backupPolicies/pol-vm-daily-dev-v2")
        assert {k: v for k, v in new["properties"].items() if k != "policyId"} == {
            k: v for k, v in old["properties"].items() if k != "policyId"
        }


def test_registering_day_two_resources_leaves_the_pickler_as_it_was() -> None:
    """pulumi's serialize_provider nests a wrapper around pickle._Pickler._batch_setitems per
    dynamic resource and never removes it; ~980 of them in one run overflow the stack
    (RecursionError). Ours register without leaving one behind, so a 1000-VM stack serializes
    like a 1-VM one."""
    import pickle

    from pulumi.dynamic.dynamic import serialize_provider

    from components.dynamic_pickling import pickler_restored
    from components.vault_lock import VaultLock
    from components.vm_protection import VmProtection, VmProtectionProvider

    pickler: Any = pickle._Pickler
    before = pickler._batch_setitems

    def program() -> None:
        vault = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"
        for i in range(3):
            VmProtection(f"p{i}", vault_id=vault, vm_id=vm_id(f"vm{i}"), vault_location="westeurope")
        VaultLock("lock", vault_id=vault, immutability="Locked", soft_delete="AlwaysON")

    plan = evaluate(program, {}, "dev")
    assert len(plan.resources) == 4
    assert pickler._batch_setitems is before
    for _ in range(1200):  # past the ~980 that overflow without the restore
        with pickler_restored():
            serialize_provider(VmProtectionProvider())
    assert pickler._batch_setitems is before
