"""``ProtectedVM``: one Azure VM enabled for backup in a (shared or own) Recovery Services vault.

The container and item names are derived from the VM's resource id the way Azure names them
(``iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}`` / ``vm;iaasvmcontainerv2;{rg};{vm}``), so the
ProtectedItem Pulumi creates is the same object the portal shows and a re-run adopts nothing new.
Azure compares these names case-insensitively; we keep the VM id's own casing.
"""

import asyncio
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict, cast

import pulumi
from pulumi.runtime.sync_await import _sync_await
from pulumi_azure_native import recoveryservices as rs

from components.backup_vault import BackupVault, BackupVaultArgs
from components.config import InitialBackupSettings, PolicySettings, VaultSettings, VmTarget
from components.engine_values import is_not_found
from components.initial_backup import InitialBackup
from components.validation import parse_vault_id
from components.vm_protection import RETAIN_DATA, VmProtection
from protectedvm.ids import FABRIC_NAME, PROTECTED_VM_COMPONENT_TYPE
from protectedvm.ids import GET_PROTECTED_ITEM_TOKEN as ITEM_INVOKE
from protectedvm.ids import VM_RESOURCE_TYPE as PROTECTED_ITEM_TYPE

#: An imported item's inputs come from its id (pulumi-azure-native ``Read``: "Extract inputs from
#: resource's ID", ``ParseResourceID`` keeps the id's spelling), and Azure spells the container and
#: item ``IaasVMContainer;...``/``VM;...`` where we send lower case. azure-native diffs URL path
#: parameters case-sensitively and replaces on any change (``diff.go`` ``calculateDetailedDiff``):
#: without this the import would plan a replacement, whose create Azure refuses (the item
#: exists). Set on every item, imported or not, so an imported item's state (Azure's spelling)
#: never meets a run without ``import_`` as a diff. Both names are functions of the VM id, hence
#: of the resource's URN, so ignoring their changes hides nothing: another VM is another
#: resource, and VmProtection refuses the switch.
IMPORTED_NAME_INPUTS = ["containerName", "protectedItemName"]


def kept_item_ids(vault: VaultSettings, targets: Sequence[VmTarget]) -> dict[str, str]:
    """The ids of the backup items Azure already has for these VMs, by lower-cased VM id.

    A VM removed from the stack earlier keeps its item in the vault (protection stopped with its
    data retained, or soft-deleted by ``deleteData``). When it is added again, ``VmProtection``
    undeletes and resumes that item, and azure-native's ``ProtectedItem`` would then refuse to
    create it ("cannot create already existing resource"): such an item is imported instead
    (:class:`ProtectedVM` ``import_id``). An item that is in the stack's state already exists in
    Azure too and gets the same id: for the engine that is "in state with the same ID", i.e. a
    resource like any other (pulumi/pulumi developer-docs/architecture/import.md). The id is the
    one Azure returns, which is also the one azure-native keeps in state on create (provider.go
    ``defaultCreate``: "Read the canonical ID from the response"). It is not rebuilt from our
    inputs: Azure spells it ``.../protectionContainers/IaasVMContainer;iaasvmcontainerv2;...
    /protectedItems/VM;iaasvmcontainerv2;...`` (azure-rest-api-specs
    ``examples/AzureIaasVm/Compute_ProtectedItem_Get.json``) while we send lower-case names, and
    the engine compares ids exactly.

    One ``getProtectedItem`` invoke per VM, all issued before any is awaited, so a stack of many
    VMs waits for about one Azure read per run, not one per VM. A vault that does not exist yet
    (a new stack) answers "not found" for every VM: nothing to import. Any other failure (no
    permission, throttling) stops the program with its reason: guessing "absent" would turn
    into "cannot create already existing resource" at ``pulumi up``."""
    from pulumi_azure_native import _utilities
    from pulumi_azure_native.recoveryservices.get_protected_item import GetProtectedItemResult

    # The generated ``get_protected_item_output`` wraps the invoke in an ``apply`` whose failure
    # (Azure's 404, the answer we expect for most VMs) the SDK re-raises at the end of the
    # program; this is the same invoke, with the same options, awaited here instead.
    opts = pulumi.InvokeOptions.merge(_utilities.get_invoke_opts_defaults(), None)

    async def read(target: VmTarget) -> tuple[str, str | None]:
        key = target.vm_id.lower()
        arguments = {
            "containerName": target.container_name,
            "fabricName": FABRIC_NAME,
            "protectedItemName": target.protected_item_name,
            "resourceGroupName": vault.resource_group,
            "vaultName": vault.name,
        }
        try:
            found = await pulumi.runtime.invoke_async(ITEM_INVOKE, arguments, opts=opts, typ=GetProtectedItemResult)
        except Exception as error:  # the SDK raises the provider's error as a plain Exception
            if is_not_found(error):
                return key, None
            raise pulumi.RunError(
                f"cannot read the backup item of {target.name} in vault {vault.name}: {error}; the program asks "
                "Azure whether a VM's item is kept from an earlier removal (to adopt it): check the deployment "
                "identity's read access to the vault"
            ) from None
        item_id = pulumi.get(found, "id") if found is not None else None
        return key, item_id if isinstance(item_id, str) and item_id else None

    async def read_all() -> list[tuple[str, str | None]]:
        return list(await asyncio.gather(*(read(target) for target in targets)))

    return {key: item_id for key, item_id in _sync_await(read_all()) if item_id}


class ProtectedVMArgs(TypedDict):
    """Inputs of :class:`ProtectedVM`, in one of three shapes: ``backup_vault`` (a shared
    :class:`BackupVault` of this program, the usual shape), ``vault_id`` + ``policy_id`` (a shared
    vault known by its ids: how other languages join one, see :mod:`components.package`), or
    ``vault`` + ``policy`` (its own vault, policy and initial-backup proof)."""

    vm_id: str
    """Resource id of the Azure VM to protect (``/subscriptions/.../virtualMachines/<name>``)."""
    backup_vault: NotRequired[BackupVault]
    """A shared vault and policy. The first backup is then proved per vault: call
    ``backup_vault.verify_initial_backups(name, [protected VMs])`` once after registering them.
    Absent: ``vault_id`` or ``vault`` and ``policy`` say where the item goes."""
    vault_id: NotRequired[pulumi.Input[str]]
    """Resource id of a shared vault (``BackupVault.vault_id``), with ``policy_id``. The vault's name
    and resource group are read from the id, so they are unknown at the preview that creates the
    vault. Absent: ``backup_vault``, or the component's own ``vault``."""
    vault: NotRequired[VaultSettings]
    """Settings of the component's own vault (``<name>-backup``); only without a shared vault."""
    policy: NotRequired[PolicySettings]
    """Settings of the component's own policy; only without a shared vault."""
    location: NotRequired[str]
    """Region of the own vault when ``vault.location`` is empty. Absent: the provider's
    ``azure-native:location``."""
    tags: NotRequired[dict[str, str]]
    """Tags on the own vault and policy. Absent: no tags."""
    on_remove: NotRequired[str]
    """What removing this VM from the program does in Azure: ``retainData`` (default: stop
    protection, keep every recovery point) or ``deleteData``."""
    import_id: NotRequired[str | None]
    """The id of the VM's backup item when Azure has it already (:func:`kept_item_ids`): the
    ProtectedItem is then imported, not created. Absent: a ProtectedVM with its own vault asks
    Azure itself; one sharing a vault creates the item (the stack program asks for all VMs at
    once and passes the answer)."""
    policy_id: NotRequired[pulumi.Input[str]]
    """The VM's policy: required with ``vault_id``; with ``backup_vault``, a policy other than the
    vault's own (a fleet vault has several). Absent with ``backup_vault``: the vault's policy."""
    disk_exclusion: NotRequired[dict[str, object]]
    """Selective disk backup: Azure's ``diskExclusionProperties``
    (``components.config.DiskSelection.to_azure()``). Absent: every disk is backed up."""
    initial_backup: NotRequired[InitialBackupSettings]
    """How the component's own vault proves the first backup (``<name>-initial-backup``, after
    the item). Absent: ``InitialBackupSettings()`` (trigger, wait for the completed job, at most
    120 minutes). Refused with a shared vault: it proves all its VMs at once
    (``verify_initial_backups`` takes the settings)."""


class ProtectedVM(pulumi.ComponentResource):
    """One Azure VM enabled for backup; with its own vault it also proves its first backup."""

    # Outputs: documented here, where the multi-language schema (components/package.py) reads them.
    vm_id: pulumi.Output[str]
    """Resource id of the protected VM."""
    vm_name: pulumi.Output[str]
    """Name of the VM."""
    container_name: pulumi.Output[str]
    """Backup container name Azure derives from the VM (``iaasvmcontainer;iaasvmcontainerv2;<rg>;<vm>``)."""
    protected_item_name: pulumi.Output[str]
    """Backup item name Azure derives from the VM (``vm;iaasvmcontainerv2;<rg>;<vm>``)."""
    protected_item_id: pulumi.Output[str]
    """Resource id of the backup item."""
    vault_id: pulumi.Output[str]
    """Resource id of the vault holding the item."""
    vault_name: pulumi.Output[str]
    """Name of the vault holding the item."""
    policy_id: pulumi.Output[str]
    """Resource id of the policy the item is backed up with."""
    policy_name: pulumi.Output[str]
    """Name of that policy (the last segment of ``policy_id``)."""
    initial_backups: pulumi.Output[dict[str, Any]] | None
    """The proof of the first backup, by lower-cased VM id: ``{vmName, jobId, status,
    recoveryPointId, recoveryPointTime, durationSeconds, triggeredAt, adopted}`` (unknown at
    preview). Only with the component's own vault; absent with a shared one, whose proof is the
    vault's (``BackupVault.verify_initial_backups``, or a ``VaultInitialBackup`` of the package)."""

    def __init__(self, name: str, args: ProtectedVMArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Validate before registering anything, so bad input leaves nothing half-created.
        target = VmTarget.from_id(args["vm_id"], "vm_id")
        backup_vault = args.get("backup_vault")
        shared_id = args.get("vault_id")
        own = "vault" in args or "policy" in args
        given = {"backup_vault": backup_vault is not None, "vault_id": shared_id is not None, "vault and policy": own}
        shapes = [shape for shape, present in given.items() if present]
        if len(shapes) != 1 or (own and ("vault" not in args or "policy" not in args)):
            raise ValueError(
                f"ProtectedVM {name!r}: pass backup_vault (a shared BackupVault), vault_id with policy_id (a shared "
                "vault by id) or both vault and policy settings (its own vault)"
                + (f"; got {' and '.join(shapes)}" if len(shapes) > 1 else "")
            )
        if shared_id is not None and args.get("policy_id") is None:
            raise ValueError(f"ProtectedVM {name!r}: vault_id needs policy_id (the policy of that vault to use)")
        if isinstance(shared_id, str):
            parse_vault_id(shared_id, "vault_id")  # a known id is checked now, not when the item is registered
        if not own and "initial_backup" in args:
            raise ValueError(
                f"ProtectedVM {name!r}: initial_backup is for a ProtectedVM with its own vault; with a shared vault, "
                "pass the settings to backup_vault.verify_initial_backups (one proof per shared vault)"
            )
        super().__init__(PROTECTED_VM_COMPONENT_TYPE, name, None, opts)
        if own:
            vault_args: BackupVaultArgs = {"vault": args["vault"], "policy": args["policy"]}
            if args.get("location") is not None:
                vault_args["location"] = args["location"]
            if args.get("tags") is not None:
                vault_args["tags"] = args["tags"]
            backup_vault = BackupVault(f"{name}-backup", vault_args, opts=pulumi.ResourceOptions(parent=self))
        if "import_id" in args:
            import_id = args["import_id"]
        elif own:
            import_id = kept_item_ids(args["vault"], [target]).get(target.vm_id.lower())
        else:
            import_id = None
        self.target = target
        #: The vault component this VM's item is in; None when the vault was given by id.
        self.backup_vault: BackupVault | None = backup_vault
        if backup_vault is not None:
            vault_id: pulumi.Output[str] = backup_vault.vault_id
            vault_name, resource_group = backup_vault.vault_name, backup_vault.resource_group_name
            vault_location = backup_vault.location
            policy_id = args.get("policy_id") or backup_vault.policy_id
        else:
            # The very Output when one is given: BackupVault.verify_initial_backups recognises its own.
            given_id = cast(pulumi.Input[str], shared_id)
            vault_id = given_id if isinstance(given_id, pulumi.Output) else pulumi.Output.from_input(given_id)
            vault_ref = vault_id.apply(lambda vid: parse_vault_id(vid, "vault_id"))
            vault_name = vault_ref.apply(lambda ref: ref.name)
            resource_group = vault_ref.apply(lambda ref: ref.resource_group)
            # Not known from an id; the provider's pre-flight then skips the region check.
            vault_location = None
            policy_id = cast(pulumi.Input[str], args.get("policy_id"))
        disks = args.get("disk_exclusion")
        # Registered before the item, which depends on it: Pulumi deletes dependents first, so on
        # removal the item leaves the state (retain_on_delete) and then protection is stopped
        # with the data retained. The name starts with the component's so aliases are inherited.
        self.protection = VmProtection(
            f"{name}-protection",
            vault_id=vault_id,
            vm_id=target.vm_id,
            vault_location=vault_location,
            policy_id=policy_id,
            on_remove=args.get("on_remove", RETAIN_DATA),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.protected_item = rs.ProtectedItem(
            f"{name}-item",
            vault_name=vault_name,
            resource_group_name=resource_group,
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
            # removal is VmProtection's job (retain data unless onRemove says otherwise). An item
            # Azure kept from an earlier removal is imported; VmProtection (a dependency) has
            # resumed it with the stack's policy by then, so the import finds that policy.
            opts=pulumi.ResourceOptions(
                parent=self,
                retain_on_delete=True,
                depends_on=[self.protection],
                import_=import_id,
                ignore_changes=IMPORTED_NAME_INPUTS,
            ),
        )
        self.vm_id = pulumi.Output.from_input(target.vm_id)
        self.vm_name = pulumi.Output.from_input(target.name)
        self.container_name = pulumi.Output.from_input(target.container_name)
        self.protected_item_name = pulumi.Output.from_input(target.protected_item_name)
        self.protected_item_id = self.protected_item.id
        self.vault_id = vault_id
        self.vault_name = vault_name
        self.policy_id = pulumi.Output.from_input(policy_id)
        self.policy_name = self.policy_id.apply(lambda policy: policy.rsplit("/", 1)[-1])
        # Standalone, the component does the whole job: its vault proves its one VM's first
        # backup. A shared vault proves all its VMs in one resource (verify_initial_backups).
        #: The own vault's proof (its ``results`` are :attr:`initial_backups`); None with a shared vault.
        self.initial_backup: InitialBackup | None = (
            backup_vault.verify_initial_backups(
                f"{name}-initial-backup",
                [self],
                args.get("initial_backup"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            if own and backup_vault is not None
            else None
        )
        self.initial_backups = self.initial_backup.results if self.initial_backup else None
        self.register_outputs(
            {
                "vmId": self.vm_id,
                "vmName": self.vm_name,
                "containerName": self.container_name,
                "protectedItemName": self.protected_item_name,
                "protectedItemId": self.protected_item_id,
                "vaultId": self.vault_id,
                "vaultName": self.vault_name,
                "policyId": self.policy_id,
                "policyName": self.policy_name,
                **({"initialBackups": self.initial_backups} if self.initial_backups is not None else {}),
            }
        )
