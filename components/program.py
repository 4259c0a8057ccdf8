"""The stack program as a function, so tests, the rehearsal and the benchmarks run exactly
what ``pulumi up`` runs (``__main__.py`` only calls :func:`deploy`)."""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import config as pulumi_config
from pulumi_azure_native import recoveryservices as rs

from components.backup_vault import BackupVault, policy_properties
from components.config import (
    DEFAULT_KEY,
    FleetPolicy,
    FleetVault,
    StackSettings,
    VmAssignment,
    VmTarget,
    parse_config_values,
)
from components.initial_backup import InitialBackup
from components.protected_vm import ProtectedVM, ProtectedVMArgs, kept_item_ids
from components.validation import MAX_VMS_PER_VAULT, ValidationError
from protectedvm.ids import CONFIG_NAMESPACE, TIER_TAG

__all__ = ["MAX_VMS_PER_VAULT", "check_vm_list", "deploy", "load_settings", "resource_name"]


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


#: VMs registered between two turns of the event loop (:func:`run_ready_registrations`).
REGISTRATION_BATCH = 25


def run_ready_registrations(max_rounds: int = 1000) -> int:
    """Let the event loop run the registration work that is ready now; returns the loop turns taken.

    The program is synchronous: without this, every VM's registration (the SDK's Outputs, one
    asyncio task each, about 390 per VM; most are the ``ProtectedItem``'s 47 API-version aliases,
    which wait for the ``ProtectedVM``'s URN) is queued until the program returns, and
    the SDK then expands all of them at once: the evaluation's peak memory (about 0.95 MB per VM
    at 400 VMs under mocks; ``bench/program_eval.py``). Turning the loop every
    :data:`REGISTRATION_BATCH` VMs lets the registrations whose inputs are known proceed and
    finish, so what is alive at once is a few batches, not the whole stack.

    It waits for nothing: it only runs callbacks that are ready (including RPC answers that have
    already arrived) and stops when none is left, so no resource waits for another's engine
    round trip and the program registers exactly what it registered before, with the same
    inputs and dependencies. Every synchronous invoke (``get_vault``) already turns the loop the
    same way (``pulumi.runtime.sync_await._sync_await``); this is that kernel, without the future
    to wait for. Like it, it relies on asyncio's pure-Python event loop (``_run_once``,
    ``_ready``, ``asyncio.tasks._enter_task``/``_leave_task``); with any other loop or an asyncio
    without those internals, or outside a running one, it does nothing."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return 0
    ready = getattr(loop, "_ready", None)
    run_once = getattr(loop, "_run_once", None)
    leave, enter = getattr(asyncio.tasks, "_leave_task", None), getattr(asyncio.tasks, "_enter_task", None)
    if not isinstance(ready, deque) or run_once is None or leave is None or enter is None:
        return 0
    # The callback running this program belongs to an outer ``_run_once`` that will pop as many
    # handles as were ready when it began: leave at least that many (cancelled ones are skipped),
    # as ``_sync_await`` does. That count cannot grow while the program runs, so once our stand-ins
    # are on the list they are what is owed; counting everything ready again at each batch (as
    # ``_sync_await`` would) makes the list grow with every batch, quadratic over a stack.
    task = asyncio.current_task(loop)
    owed = sum(1 for handle in ready if isinstance(handle, _Owed) and task is not None and handle.owner is task)
    expected = owed or len(ready)
    if task is not None:
        leave(loop, task)
    turns = 0
    try:
        while ready and turns < max_rounds:
            run_once()
            turns += 1
    finally:
        if len(ready) < expected:
            stand_in = _Owed(_nothing, (), loop)
            stand_in.owner = task
            stand_in.cancel()
            ready.extend([stand_in] * (expected - len(ready)))
        if task is not None:
            enter(loop, task)
    return turns


class _Owed(asyncio.Handle):
    """A cancelled handle standing in for one an outer turn of the event loop will pop; ``owner``
    is the task whose step ran the program (what is owed is only known within that step)."""

    owner: asyncio.Task[Any] | None = None


def _nothing() -> None:
    return None


def check_vm_list(targets: tuple[VmTarget, ...], *, one_vault: bool = True) -> None:
    """Stack-wide rules on the VM list, before anything is registered: at most one VM per
    resource name (two VMs with the same resource group and name can only differ by
    subscription; say so before Pulumi reports a duplicate URN) and, for a stack of one vault,
    the vault's VM limit (a fleet's per-vault limit is checked with its topology, at parse time)."""
    seen: dict[str, VmTarget] = {}
    problems = []
    if one_vault and len(targets) > MAX_VMS_PER_VAULT:
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


def vault_resource_name(key: str) -> str:
    """``backup`` for the vault keyed ``default`` (the single-vault form's, so today's stacks keep
    every URN), else ``backup-<key>``: a function of the key alone, so adding, removing or
    reordering vaults never renames one."""
    return "backup" if key == DEFAULT_KEY else f"backup-{key}"


def policy_resource_name(vault_name: str, key: str) -> str:
    """``<vault>-policy`` for the policy keyed ``default`` (today's name), else ``<vault>-policy-<key>``."""
    return f"{vault_name}-policy" if key == DEFAULT_KEY else f"{vault_name}-policy-{key}"


def initial_backup_name(key: str) -> str:
    """``initial-backup`` for the vault keyed ``default`` (today's name), else ``initial-backup-<key>``."""
    return "initial-backup" if key == DEFAULT_KEY else f"initial-backup-{key}"


@dataclass
class FleetMember:
    """One vault of the stack as registered: the component, its policies' ids, its VMs."""

    key: str
    backup_vault: BackupVault
    policy_ids: dict[str, pulumi.Output[str]]
    protected_vms: list[ProtectedVM]
    initial_backup: InitialBackup | None


@dataclass
class Deployment:
    backup_vault: BackupVault
    protected_vms: list[ProtectedVM]
    #: The first vault's (None when a fleet's first vault has no VM yet).
    initial_backup: InitialBackup | None
    #: Every vault (the first is ``backup_vault``); one entry for a single-vault stack.
    vaults: list[FleetMember]


def _policy(
    backup_vault: BackupVault, vault_name: str, policy: FleetPolicy, tags: dict[str, str]
) -> pulumi.Output[str]:
    """One policy of a vault, as ``BackupVault`` registered it before fleets (same name, parent,
    inputs): a child of the vault's component. A reused policy (``existingId``) registers nothing."""
    if policy.settings.reuses_existing:
        return pulumi.Output.from_input(str(policy.settings.existing_id))
    policy_tags = tags if policy.tier is None else {**tags, TIER_TAG: policy.tier}
    created = rs.ProtectionPolicy(
        policy_resource_name(vault_name, policy.key),
        policy_name=policy.settings.name,
        vault_name=backup_vault.vault_name,
        resource_group_name=backup_vault.resource_group_name,
        properties=policy_properties(policy.settings),
        tags=policy_tags,
        opts=pulumi.ResourceOptions(parent=backup_vault),
    )
    return created.id


def _deploy_vault(
    vault: FleetVault,
    backup_vault: BackupVault,
    vms: tuple[VmAssignment, ...],
    settings: StackSettings,
    tags: dict[str, str],
    kept: dict[str, str],
    registered: Iterator[int],
) -> FleetMember:
    name = vault_resource_name(vault.key)
    policy_ids = {policy.key: _policy(backup_vault, name, policy, tags) for policy in vault.policies}
    protected = []
    for vm in vms:
        (aliases,) = legacy_aliases((vm.target,))
        args: ProtectedVMArgs = {
            "vm_id": vm.target.vm_id,
            "backup_vault": backup_vault,
            "on_remove": settings.on_remove,
            "policy_id": policy_ids[vm.policy],
            "import_id": kept.get(vm.target.vm_id.lower()),
        }
        if vm.disks is not None:
            args["disk_exclusion"] = vm.disks.to_azure()
        opts = pulumi.ResourceOptions(aliases=aliases) if aliases else None
        protected.append(ProtectedVM(resource_name(vm.target), args, opts=opts))
        # Counted over the whole stack, so a fleet of small vaults is paced like one large vault.
        if next(registered) % REGISTRATION_BATCH == 0:
            run_ready_registrations()
    # One trigger-and-verify resource per vault, after every item of the vault is protected
    # (BackupVault.verify_initial_backups says why one per vault).
    initial = backup_vault.verify_initial_backups(initial_backup_name(vault.key), protected, settings.initial_backup)
    return FleetMember(vault.key, backup_vault, policy_ids, protected, initial)


def deploy(settings: StackSettings | None = None) -> Deployment:
    """Build every vault with its policies, one ProtectedVM per VM, one InitialBackup per vault,
    and export honest outputs. A single-vault stack is the one-vault case, under today's names."""
    with fewer_collections():
        return _deploy(settings)


#: Allocations between two young-generation collections while the program registers (CPython's
#: default is 700).
YOUNG_COLLECTION_THRESHOLD = 10_000


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect the young generation every :data:`YOUNG_COLLECTION_THRESHOLD` allocations instead of
    CPython's 700 while the program registers, and put the setting back afterwards.

    Pulumi's SDK makes every Output an asyncio task tied in reference cycles, hundreds per VM,
    which live for milliseconds. With 700, most of them survive a young collection or two and are
    freed only by full collections, whose cost is the whole heap: under mocks those took about
    two thirds of a stack's evaluation time (15 full collections, 6.7 s of 10.6 s for the raw
    resources at 300 VMs). With more room, they die young. It changes when garbage is found, not
    what is alive (a few MB more at most: 10,000 young objects); with automatic collection
    disabled (threshold 0) it leaves things alone."""
    old = gc.get_threshold()
    if old[0] == 0 or old[0] >= YOUNG_COLLECTION_THRESHOLD:
        yield
        return
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _deploy(settings: StackSettings | None) -> Deployment:
    settings = settings or load_settings()
    fleet = settings.fleet
    check_vm_list(settings.vms, one_vault=len(fleet.vaults) == 1)
    location = pulumi.Config("azure-native").get("location")
    tags = {"managed-by": CONFIG_NAMESPACE, "stack": pulumi.get_stack()}
    # Every vault first: BackupVault asks Azure whether its vault exists (a synchronous invoke,
    # which also runs every registration still pending), so asking before the first VM is
    # registered keeps a fleet's evaluation as cheap per VM as one vault's.
    vaults = [
        BackupVault(vault_resource_name(v.key), {"vault": v.settings, "location": location, "tags": tags})
        for v in fleet.vaults
    ]
    # Items Azure kept from an earlier removal are adopted (imported), not created again. Asked for
    # every vault before any VM is registered, for the same reason as the vaults' invokes above.
    kept = {v.key: kept_item_ids(v.settings, [vm.target for vm in fleet.vms_of(v.key)]) for v in fleet.vaults}
    registered = itertools.count(1)  # VMs registered so far, over every vault
    members = [
        _deploy_vault(vault, backup_vault, fleet.vms_of(vault.key), settings, tags, kept[vault.key], registered)
        for vault, backup_vault in zip(fleet.vaults, vaults, strict=True)
    ]
    first = members[0]
    pulumi.export("vaultId", first.backup_vault.vault_id)
    pulumi.export("vaultName", first.backup_vault.vault_name)
    first_policy = fleet.vaults[0].default_policy or fleet.vaults[0].policies[0].key
    pulumi.export("policyId", first.policy_ids[first_policy])
    records = [
        _vm_output(pvm, member, vm)
        for member in members
        for pvm, vm in zip(member.protected_vms, fleet.vms_of(member.key), strict=True)
    ]
    pulumi.export("protectedVms", records)
    initials = [m.initial_backup for m in members if m.initial_backup is not None]
    pulumi.export(
        "initialBackups",
        initials[0].results
        if len(initials) == 1
        else pulumi.Output.all(*[ib.results for ib in initials]).apply(_merged),
    )
    if len(members) > 1:
        pulumi.export("vaults", [_vault_output(member, fleet.vault(member.key)) for member in members])
    protected = [pvm for member in members for pvm in member.protected_vms]
    return Deployment(first.backup_vault, protected, first.initial_backup, members)


def _merged(results: list[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in results:
        merged.update(part or {})
    return merged


def _vault_output(member: FleetMember, vault: FleetVault) -> dict[str, Any]:
    return {
        "key": member.key,
        "vaultId": member.backup_vault.vault_id,
        "vaultName": member.backup_vault.vault_name,
        "location": member.backup_vault.location,
        "policies": {
            policy.key: {"policyId": member.policy_ids[policy.key], "tier": policy.tier} for policy in vault.policies
        },
        "vmCount": len(member.protected_vms),
    }


def _vm_output(vm: ProtectedVM, member: FleetMember, assignment: VmAssignment) -> dict[str, Any]:
    target = vm.target
    backup_vault = member.backup_vault
    record = {
        "vmId": target.vm_id,
        "vmName": target.name,
        "subscriptionId": target.subscription,
        "containerName": target.container_name,
        "protectedItemName": target.protected_item_name,
        "protectedItemId": vm.protected_item_id,
        "vaultId": backup_vault.vault_id,
        "vaultName": backup_vault.vault_name,
        "vaultResourceGroup": backup_vault.resource_group_name,
        "policyId": member.policy_ids[assignment.policy],
    }
    if member.key != DEFAULT_KEY or assignment.policy != DEFAULT_KEY:
        record["vaultKey"], record["policyKey"] = member.key, assignment.policy
    if assignment.disks is not None:
        record["disks"] = assignment.disks.describe()
    return record
