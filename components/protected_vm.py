"""``ProtectedVM``: one Azure VM enabled for backup in a (shared or own) Recovery Services vault.

The container and item names are derived from the VM's resource id the way Azure names them
(``iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}`` / ``vm;iaasvmcontainerv2;{rg};{vm}``), so the
ProtectedItem Pulumi creates is the same object the portal shows and a re-run adopts nothing new.
Azure compares these names case-insensitively; we keep the VM id's own casing.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict, cast

import pulumi
from pulumi_azure_native import recoveryservices as rs

from components.backup_vault import BackupVault
from components.config import PolicySettings, VaultSettings, VmTarget
from components.vm_protection import RETAIN_DATA, VmProtection

FABRIC_NAME = "Azure"
PROTECTED_ITEM_TYPE = "Microsoft.Compute/virtualMachines"


class ProtectedVMArgs(TypedDict):
    """Either ``backup_vault`` (shared, the usual shape) or ``vault`` + ``policy`` (own vault)."""

    vm_id: str
    backup_vault: NotRequired[BackupVault]
    vault: NotRequired[VaultSettings]
    policy: NotRequired[PolicySettings]
    location: NotRequired[str]
    tags: NotRequired[dict[str, str]]
    #: ``retainData`` (default: stop protection, keep recovery points) or ``deleteData``.
    on_remove: NotRequired[str]
    #: The VM's policy when not ``backup_vault``'s own (a fleet vault has several policies).
    policy_id: NotRequired[pulumi.Input[str]]
    #: Selective disk backup: Azure's ``diskExclusionProperties`` (``components.config.DiskSelection``).
    disk_exclusion: NotRequired[dict[str, object]]


class ProtectedVM(pulumi.ComponentResource):
    """Outputs: ``vm_id``, ``vm_name``, ``container_name``, ``protected_item_name``,
    ``protected_item_id``, ``vault_id``, ``vault_name``, ``policy_id``."""

    vm_id: pulumi.Output[str]
    vm_name: pulumi.Output[str]
    container_name: pulumi.Output[str]
    protected_item_name: pulumi.Output[str]
    protected_item_id: pulumi.Output[str]
    vault_id: pulumi.Output[str]
    vault_name: pulumi.Output[str]
    policy_id: pulumi.Output[str]

    def __init__(self, name: str, args: ProtectedVMArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Validate before registering anything, so bad input leaves nothing half-created.
        target = VmTarget.from_id(args["vm_id"], "vm_id")
        backup_vault = args.get("backup_vault")
        if backup_vault is None and ("vault" not in args or "policy" not in args):
            raise ValueError(
                f"ProtectedVM {name!r}: pass backup_vault (a shared BackupVault) or both vault and policy settings"
            )
        super().__init__("protected-vm:index:ProtectedVM", name, None, opts)
        if backup_vault is None:
            backup_vault = BackupVault(
                f"{name}-backup",
                vault=args["vault"],
                policy=args["policy"],
                location=args.get("location"),
                tags=args.get("tags"),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.target = target
        self.backup_vault = backup_vault
        policy_id = args.get("policy_id") or backup_vault.policy_id
        disks = args.get("disk_exclusion")
        # Registered before the item, which depends on it: Pulumi deletes dependents first, so on
        # removal the item leaves the state (retain_on_delete) and then protection is stopped
        # with the data retained. The name starts with the component's so aliases are inherited.
        self.protection = VmProtection(
            f"{name}-protection",
            vault_id=backup_vault.vault_id,
            vm_id=target.vm_id,
            vault_location=backup_vault.location,
            policy_id=policy_id,
            on_remove=args.get("on_remove", RETAIN_DATA),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.protected_item = rs.ProtectedItem(
            f"{name}-item",
            vault_name=backup_vault.vault_name,
            resource_group_name=backup_vault.resource_group_name,
            fabric_name=FABRIC_NAME,
            container_name=target.container_name,
            protected_item_name=target.protected_item_name,
            properties=rs.AzureIaaSComputeVMProtectedItemArgs(
                protected_item_type=PROTECTED_ITEM_TYPE,
                # A body property: a new policy is an in-place update (azure-native diff.go
                # replaces only for URL path parameters and forceNew properties).
                policy_id=policy_id,
                source_resource_id=target.vm_id,
                extended_properties=rs.ExtendedPropertiesArgs(
                    disk_exclusion_properties=rs.DiskExclusionPropertiesArgs(
                        disk_lun_list=cast(list[int], disks["diskLunList"]),
                        is_inclusion_list=bool(disks["isInclusionList"]),
                    )
                )
                if disks
                else None,
            ),
            # Deleting an azure-native ProtectedItem is "stop backup and delete backup data";
            # removal is VmProtection's job (retain data unless onRemove says otherwise).
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, depends_on=[self.protection]),
        )
        self.vm_id = pulumi.Output.from_input(target.vm_id)
        self.vm_name = pulumi.Output.from_input(target.name)
        self.container_name = pulumi.Output.from_input(target.container_name)
        self.protected_item_name = pulumi.Output.from_input(target.protected_item_name)
        self.protected_item_id = self.protected_item.id
        self.vault_id = backup_vault.vault_id
        self.vault_name = backup_vault.vault_name
        self.policy_id = pulumi.Output.from_input(policy_id)
        self.register_outputs(
            {
                "vmId": self.vm_id,
                "vmName": self.vm_name,
                "containerName": self.container_name,
                "protectedItemName": self.protected_item_name,
                "protectedItemId": self.protected_item_id,
                "vaultId": self.vault_id,
                "policyId": self.policy_id,
            }
        )
