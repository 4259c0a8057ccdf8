"""The stack program as a function, so tests, the rehearsal and the benchmarks run exactly
what ``pulumi up`` runs (``__main__.py`` only calls :func:`deploy`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import config as pulumi_config

from components.backup_vault import BackupVault
from components.config import StackSettings, VmTarget, parse_config_values
from components.initial_backup import InitialBackup
from components.protected_vm import ProtectedVM, kept_item_ids
from components.validation import ValidationError

CONFIG_NAMESPACE = "protected-vm"


class StackConfigError(ValidationError, pulumi.RunError):
    """A :class:`ValidationError` the Python language host prints as its message alone: it logs
    ``str(e)`` for a ``pulumi.RunError`` but a full traceback for any other exception
    (pulumi/pulumi ``sdk/python/cmd/pulumi-language-python-exec``: ``except pulumi.RunError as e:
    pulumi.log.error(str(e))`` / ``except Exception: pulumi.log.error(traceback.format_exc())``)."""


def load_settings(values: Mapping[str, object] | None = None) -> StackSettings:
    """Validate every ``protected-vm:*`` key of the stack config; every problem is reported at once
    at preview time. ``values`` defaults to the engine's raw config: the flat ``ns:key -> text``
    map, read whole so that unknown (misspelt) keys are found too."""
    if values is None:
        values = {**pulumi_config.get_config_env(), **pulumi_config.CONFIG.get()}
    try:
        return parse_config_values(values, CONFIG_NAMESPACE)
    except ValidationError as error:
        raise StackConfigError(error.problems) from None


def resource_name(target: VmTarget) -> str:
    """``{resource group}-{vm}``, lower-cased: a function of the VM alone, so adding, removing or
    reordering other VMs never renames it (a rename would create the item again under a new URN
    and delete the old one, which is the same Azure object: the VM would end up unprotected).
    Unique within a stack because a vault protects VMs of its own subscription only (checked by
    :func:`check_vm_list` all the same)."""
    return f"{target.resource_group}-{target.name}".lower()


def legacy_aliases(targets: tuple[VmTarget, ...]) -> list[list[pulumi.Alias]]:
    """Aliases that keep the URNs of stacks deployed before :func:`resource_name`.

    Those named a VM by its name alone when no other VM of the stack shared it, else exactly as
    :func:`resource_name` does. So every VM may once have been ``{vm}`` and claims that old name.
    An alias only matters when the state holds that URN; should two VMs of one name claim a
    state's ``{vm}`` (the upgrade and a same-named VM in one update), the engine refuses the
    ambiguity at preview ("duplicate resource alias") instead of guessing which VM it was: deploy
    the upgrade first, then add the VM. Children follow their parent's alias because their names
    start with the parent's name (``{name}-item``: Pulumi's inherited child aliases)."""
    return [[pulumi.Alias(name=target.name.lower())] for target in targets]


#: Azure Backup support matrix (backup-support-matrix, "Machines in a vault"): "Up to 1,000 Azure
#: VMs in a single vault"; the Azure Backup FAQ says the same.
MAX_VMS_PER_VAULT = 1000


def check_vm_list(targets: tuple[VmTarget, ...]) -> None:
    """Stack-wide rules on the VM list, before anything is registered: at most one VM per
    resource name (two VMs with the same resource group and name can only differ by
    subscription; say so before Pulumi reports a duplicate URN) and the vault's VM limit."""
    seen: dict[str, VmTarget] = {}
    problems = []
    if len(targets) > MAX_VMS_PER_VAULT:
        problems.append(
            f"vms: {len(targets)} VMs share one vault, which protects at most {MAX_VMS_PER_VAULT} Azure VMs: "
            "split them across stacks (one vault each)"
        )
    for target in targets:
        name = resource_name(target)
        if name in seen:
            problems.append(
                f"vms: {seen[name].vm_id} and {target.vm_id} are in different subscriptions; a vault protects "
                "VMs of its own subscription only: use one stack (and vault) per subscription"
            )
        seen.setdefault(name, target)
    if problems:
        raise ValidationError(problems)


@dataclass
class Deployment:
    backup_vault: BackupVault
    protected_vms: list[ProtectedVM]
    initial_backup: InitialBackup


def deploy(settings: StackSettings | None = None) -> Deployment:
    """Build the shared vault + policy, one ProtectedVM per VM, and export honest outputs."""
    settings = settings or load_settings()
    check_vm_list(settings.vms)
    location = settings.vault.location or pulumi.Config("azure-native").get("location")
    backup_vault = BackupVault(
        "backup",
        vault=settings.vault,
        policy=settings.policy,
        location=location,
        tags={"managed-by": "protected-vm", "stack": pulumi.get_stack()},
    )
    # Items Azure kept from an earlier removal are adopted (imported), not created again.
    kept = kept_item_ids(settings.vault, settings.vms)
    protected = [
        ProtectedVM(
            resource_name(target),
            {"vm_id": target.vm_id, "backup_vault": backup_vault, "on_remove": settings.on_remove,
             "import_id": kept.get(target.vm_id.lower())},
            opts=pulumi.ResourceOptions(aliases=aliases) if aliases else None,
        )
        for target, aliases in zip(settings.vms, legacy_aliases(settings.vms), strict=True)
    ]
    # One trigger-and-verify resource for the whole vault, after every item is protected: the
    # dynamic provider runs at most 4 create() calls at once, so per-VM resources would serialise.
    initial = InitialBackup(
        "initial-backup",
        vault_id=backup_vault.vault_id,
        vm_ids=[vm.target.vm_id for vm in protected],
        settings=settings.initial_backup,
        opts=pulumi.ResourceOptions(depends_on=[vm.protected_item for vm in protected]),
    )
    pulumi.export("vaultId", backup_vault.vault_id)
    pulumi.export("vaultName", backup_vault.vault_name)
    pulumi.export("policyId", backup_vault.policy_id)
    pulumi.export("protectedVms", [_vm_output(vm, backup_vault) for vm in protected])
    pulumi.export("initialBackups", initial.results)
    return Deployment(backup_vault, protected, initial)


def _vm_output(vm: ProtectedVM, backup_vault: BackupVault) -> dict[str, Any]:
    target = vm.target
    return {
        "vmId": target.vm_id,
        "vmName": target.name,
        "subscriptionId": target.subscription,
        "containerName": target.container_name,
        "protectedItemName": target.protected_item_name,
        "protectedItemId": vm.protected_item_id,
        "vaultId": backup_vault.vault_id,
        "vaultName": backup_vault.vault_name,
        "vaultResourceGroup": backup_vault.resource_group_name,
        "policyId": backup_vault.policy_id,
    }
