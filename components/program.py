"""The stack program as a function, so tests, the rehearsal and the benchmarks run exactly
what ``pulumi up`` runs (``__main__.py`` only calls :func:`deploy`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import config as pulumi_config

from components.backup_vault import BackupVault
from components.config import StackSettings, VmTarget, parse_config_values
from components.initial_backup import InitialBackup
from components.protected_vm import ProtectedVM
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


def resource_names(targets: tuple[VmTarget, ...]) -> list[str]:
    """Logical names stay the VM name (readable in the plan) unless two VMs share it across
    resource groups; then the resource group disambiguates. URNs must never collide."""
    counts = Counter(t.name.lower() for t in targets)
    return [(t.name if counts[t.name.lower()] == 1 else f"{t.resource_group}-{t.name}").lower() for t in targets]


@dataclass
class Deployment:
    backup_vault: BackupVault
    protected_vms: list[ProtectedVM]
    initial_backup: InitialBackup


def deploy(settings: StackSettings | None = None) -> Deployment:
    """Build the shared vault + policy, one ProtectedVM per VM, and export honest outputs."""
    settings = settings or load_settings()
    location = settings.vault.location or pulumi.Config("azure-native").get("location")
    backup_vault = BackupVault(
        "backup",
        vault=settings.vault,
        policy=settings.policy,
        location=location,
        tags={"managed-by": "protected-vm", "stack": pulumi.get_stack()},
    )
    protected = [
        ProtectedVM(name, {"vm_id": target.vm_id, "backup_vault": backup_vault})
        for name, target in zip(resource_names(settings.vms), settings.vms, strict=True)
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
