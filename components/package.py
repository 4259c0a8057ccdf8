"""The multi-language package: ``BackupVault`` and ``ProtectedVM`` for every Pulumi language.

Pulumi hosts Python components for TypeScript, YAML, Go, C# and Java programs (a source-based
package: ``provider/PulumiPlugin.yaml``, whose ``__main__.py`` calls :func:`main`, consumed with
``pulumi package add``). The package schema is inferred from the annotations of the classes
below by ``pulumi.provider.experimental``'s analyzer, which accepts only schema-shaped types:
TypedDicts of plain values, ``pulumi.Input``/``pulumi.Output`` of those, lists and string-keyed
dicts; no unions, dataclasses or Python objects. So the settings here are the stack file's own
mappings (``protected-vm:vault``, ``protected-vm:policy``, ``protected-vm:initialBackup``, a
``vms`` entry's ``disks``), with the same keys, parsed and validated by ``components.config``'s
parser (one clear error listing every problem, before anything is registered); and a
ProtectedVM joins a shared vault by its ids (``vaultId`` + ``policyId``, the outputs of a
``BackupVault``), not by a Python object.

The two classes are the Python components themselves (subclasses that only turn the mappings
into settings): same resource types, same children, same URNs. Python programs may use either
face: :mod:`components.backup_vault` and :mod:`components.protected_vm` take parsed settings.

No ``from __future__ import annotations`` here: the analyzer reads annotations at runtime and
cannot resolve strings.
"""

import importlib.metadata
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

import pulumi

from components import backup_vault, protected_vm
from components.config import SectionSettings, VaultSettings, parse_sections
from components.initial_backup import InitialBackup, InitialBackupArgs
from components.program import StackConfigError
from components.validation import ValidationError, as_count, check_vm_id
from protectedvm.ids import CONFIG_NAMESPACE, VAULT_INITIAL_BACKUP_COMPONENT_TYPE

#: The package name: the first part of every type token (``protected-vm:index:ProtectedVM``),
#: which existing stacks' URNs already carry; the project's namespace.
PACKAGE_NAME = CONFIG_NAMESPACE


# --- settings: the keys of the stack file's mappings (camelCase, as there) -------------------------


class ActionGroupConfig(TypedDict):
    """Where the vault's alerts go: an existing action group (``existingId``) or one created with
    e-mail receivers. Webhook receivers are left out of the package: a URL with a token would sit
    in the component's inputs in plain text; create that group yourself and pass its id."""

    existingId: NotRequired[str]
    """Resource id of an existing action group. Absent: one is created from ``name``."""
    name: NotRequired[str]
    """Name of the action group to create (required without ``existingId``)."""
    shortName: NotRequired[str]
    """Short name, 1-12 characters. Absent: the first 12 characters of ``name``."""
    emails: NotRequired[list[str]]
    """E-mail addresses that receive the alerts. Absent: none."""


class AlertsConfig(TypedDict):
    """Azure Monitor alerts of the vault."""

    jobFailureAlerts: NotRequired[bool]
    """Alerts for every failed backup job. Absent: on."""
    classicAlerts: NotRequired[bool]
    """Classic alerts for critical operations (being retired by Azure). Absent: off."""
    actionGroup: NotRequired[ActionGroupConfig]
    """Where the alerts go. Absent: nowhere but the portal's alert list."""


class ReportsConfig(TypedDict):
    """Backup Reports: the vault's diagnostic logs sent to a Log Analytics workspace."""

    workspaceId: NotRequired[str]
    """Resource id of an existing workspace."""
    workspaceName: NotRequired[str]
    """Name of a workspace created next to the vault (instead of ``workspaceId``)."""
    retentionDays: NotRequired[int]
    """Retention of a created workspace, 30-730 days. Absent: 30."""


class MultiUserAuthorizationConfig(TypedDict):
    """Multi-user authorization: a Resource Guard protecting the vault's critical operations."""

    resourceGuardId: NotRequired[str]
    """Resource id of an existing Resource Guard, ideally in a subscription the vault's owners
    cannot administer."""
    resourceGuardName: NotRequired[str]
    """Name of a Resource Guard created next to the vault (weaker than ``resourceGuardId``)."""


class EncryptionConfig(TypedDict):
    """Customer-managed key encryption of the vault (set it on a new vault)."""

    keyUri: str
    """Key Vault key URI (``https://<kv>.vault.azure.net/keys/<key>[/<version>]``)."""
    identityId: str
    """Resource id of the user-assigned identity that reads the key."""
    infrastructureEncryption: NotRequired[bool]
    """Double encryption at the infrastructure layer (only at creation). Absent: on."""


class PrivateEndpointConfig(TypedDict):
    """A private endpoint for the vault (needs ``publicNetworkAccess: Disabled``)."""

    subnetId: str
    """Resource id of the subnet of the endpoint."""
    privateDnsZoneIds: NotRequired[list[str]]
    """Private DNS zones the endpoint registers in. Absent: none."""


class VaultConfig(TypedDict):
    """A Recovery Services vault: the keys of ``protected-vm:vault``, secure by default."""

    name: NotRequired[str]
    """Vault name, 2-50 letters, digits and hyphens (required unless ``existingId``)."""
    resourceGroup: NotRequired[str]
    """Existing resource group of the vault (required unless ``existingId``)."""
    location: NotRequired[str]
    """Azure region. Absent: the component's ``location``, else ``azure-native:location``."""
    existingId: NotRequired[str]
    """Resource id of an existing vault to reuse; the other keys are then ignored and nothing is
    created. Absent: the vault is created (or adopted, when it exists) with these settings."""
    storageRedundancy: NotRequired[str]
    """``LocallyRedundant``, ``ZoneRedundant`` or ``GeoRedundant``. Absent: ``GeoRedundant``."""
    crossRegionRestore: NotRequired[bool]
    """Restores in the paired region (needs ``GeoRedundant``). Absent: off."""
    softDelete: NotRequired[str]
    """``AlwaysON`` (irreversible), ``Enabled`` or ``Disabled``. Absent: ``AlwaysON``."""
    softDeleteRetentionDays: NotRequired[int]
    """Days deleted backup data is kept, 14-180. Absent: 14."""
    immutability: NotRequired[str]
    """``Disabled``, ``Unlocked`` or ``Locked`` (irreversible). Absent: ``Unlocked``."""
    publicNetworkAccess: NotRequired[str]
    """``Enabled`` or ``Disabled``. Absent: ``Disabled``."""
    lock: NotRequired[bool]
    """A ``CanNotDelete`` management lock on the vault. Absent: on."""
    alerts: NotRequired[AlertsConfig]
    """Alert settings. Absent: job failure alerts on, classic alerts off, no action group."""
    reports: NotRequired[ReportsConfig]
    """Backup Reports. Absent: no diagnostic setting."""
    multiUserAuthorization: NotRequired[MultiUserAuthorizationConfig]
    """Multi-user authorization. Absent: none."""
    encryption: NotRequired[EncryptionConfig]
    """Customer-managed key. Absent: Microsoft-managed keys."""
    privateEndpoint: NotRequired[PrivateEndpointConfig]
    """Private endpoint. Absent: none."""


class ScheduleConfig(TypedDict):
    """When backups run."""

    frequency: NotRequired[str]
    """``Daily``, ``Weekly`` or ``Hourly`` (Enhanced policies only). Absent: ``Daily``."""
    time: NotRequired[str]
    """``HH:MM`` on the hour or half hour (hourly: the window's start). Absent: ``23:00``."""
    weekdays: NotRequired[list[str]]
    """Weekday names, Weekly only. Absent: ``[Sunday]``."""
    hourlyInterval: NotRequired[int]
    """Hours between backups, 4, 6, 8 or 12 (Hourly only). Absent: 4."""
    hourlyWindowHours: NotRequired[int]
    """Length of the hourly window, 4-24 and a multiple of the interval (Hourly only). Absent: 24."""


class WeeklyRetentionConfig(TypedDict):
    """Weekly recovery points kept."""

    count: int
    """Weeks kept, 1-9999 (Azure's range for the policy type)."""
    days: NotRequired[list[str]]
    """Weekdays whose backup is kept. Absent: ``[Sunday]``."""


class MonthlyRetentionConfig(TypedDict):
    """Monthly recovery points kept."""

    count: int
    """Months kept."""
    weeksOfMonth: NotRequired[list[str]]
    """``First``, ``Second``, ``Third``, ``Fourth`` or ``Last``. Absent: ``[First]``."""
    days: NotRequired[list[str]]
    """Weekdays. Absent: ``[Sunday]``."""


class YearlyRetentionConfig(TypedDict):
    """Yearly recovery points kept."""

    count: int
    """Years kept."""
    months: NotRequired[list[str]]
    """Month names. Absent: ``[January]``."""
    weeksOfMonth: NotRequired[list[str]]
    """Weeks of the month. Absent: ``[First]``."""
    days: NotRequired[list[str]]
    """Weekdays. Absent: ``[Sunday]``."""


class RetentionConfig(TypedDict):
    """How long recovery points are kept."""

    daily: NotRequired[int]
    """Days daily points are kept, 7-9999: required with a Daily or Hourly schedule, refused with
    a Weekly one."""
    weekly: NotRequired[WeeklyRetentionConfig]
    """Weekly points (required for Weekly schedules). Absent: none."""
    monthly: NotRequired[MonthlyRetentionConfig]
    """Monthly points. Absent: none."""
    yearly: NotRequired[YearlyRetentionConfig]
    """Yearly points. Absent: none."""


class PolicyConfig(TypedDict):
    """An IaaS VM backup policy: the keys of ``protected-vm:policy``."""

    name: NotRequired[str]
    """Policy name (required unless ``existingId``)."""
    existingId: NotRequired[str]
    """Resource id of an existing policy to reuse; the other keys are then ignored. Absent: the
    policy is created with these settings."""
    type: NotRequired[str]
    """``Standard`` (V1) or ``Enhanced`` (V2; needed for hourly schedules). Absent: ``Enhanced``."""
    timeZone: NotRequired[str]
    """Windows time zone name of the schedule. Absent: ``UTC``."""
    instantRestoreDays: NotRequired[int]
    """Days snapshots are kept for instant restore (Standard 1-5, exactly 5 when weekly;
    Enhanced 1-30). Absent: 2 (5 for a weekly Standard policy)."""
    schedule: NotRequired[ScheduleConfig]
    """When backups run. Absent: daily at 23:00."""
    retention: NotRequired[RetentionConfig]
    """What is kept; a created policy needs at least ``daily`` (or ``weekly`` with a Weekly
    schedule): nothing is assumed."""


class InitialBackupConfig(TypedDict):
    """How the first backup is proved: the keys of ``protected-vm:initialBackup``."""

    verify: NotRequired[str]
    """``completed`` (wait for the job and a recovery point), ``started`` (the job exists) or
    ``none`` (trigger only). Absent: ``completed``."""
    retainDays: NotRequired[int]
    """Days the triggered backup is kept. Absent: 30."""
    timeoutMinutes: NotRequired[int]
    """How long the proof waits before failing, naming the VM. Absent: 120."""
    pollSeconds: NotRequired[int]
    """Seconds between looks at the vault's jobs. Absent: 30."""


class DisksConfig(TypedDict):
    """Selective disk backup, one of the three keys (a ``vms`` entry's ``disks``)."""

    include: NotRequired[list[int]]
    """Data disk LUNs backed up with the OS disk; no other disk is."""
    exclude: NotRequired[list[int]]
    """Data disk LUNs not backed up; every other disk is."""
    osDiskOnly: NotRequired[bool]
    """``true``: the OS disk alone."""


def parse_args(**sections: object) -> SectionSettings:
    """The settings of a component's args (``vault``, ``policy``, ``initial_backup``, ``disks``,
    ``on_remove``), parsed by the stack config's own section parsers
    (:func:`components.config.parse_sections`: the same rules, the same messages, e.g.
    ``vault.softDeleteRetentionDays = 500 is out of range...``), every problem at once in one
    ``StackConfigError``: a ``ValidationError`` that is also a ``pulumi.RunError``, so a Python
    program's preview prints the list without a traceback (a Construct call reports it as the
    component's error). Numbers first become ints where whole (:func:`_engine_numbers`)."""
    try:
        return parse_sections(**{key: _engine_numbers(raw) for key, raw in sections.items()})
    except ValidationError as error:
        raise StackConfigError(error.problems) from None


def _engine_numbers(value: object) -> object:
    """Whole numbers as ints, however deep: the engine sends every number as a float (``30.0``),
    and the provider's own conversion of integer properties does not reach the component
    (pulumi 3.272 ``ComponentProvider.map_input_properties`` assigns the raw value after converting
    it). A fraction stays a float, for the parser to refuse with the setting's name."""
    if isinstance(value, Mapping):
        return {key: _engine_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_engine_numbers(item) for item in value]
    return as_count(value)


# --- the components -----------------------------------------------------------------------------


class BackupVaultArgs(TypedDict):
    """Inputs of :class:`BackupVault`."""

    vault: VaultConfig
    """The vault: created with these settings, or reused when ``existingId`` is set."""
    policy: PolicyConfig
    """The VM backup policy (``<name>-policy``): created, or reused when ``existingId`` is set."""
    location: NotRequired[str]
    """Region of a created vault when ``vault.location`` is empty. Absent: the provider's
    ``azure-native:location``."""
    tags: NotRequired[dict[str, str]]
    """Tags on the vault, the policy and the vault's operational resources. Absent: no tags."""


class BackupVault(backup_vault.BackupVault):
    """A Recovery Services vault and an IaaS VM backup policy that many ProtectedVMs share
    (pass its ``vaultId`` and ``policyId`` to each)."""

    # The outputs again, with the same types and words as the Python class's: the analyzer
    # reads descriptions from this class's own source only (tests/test_package_schema.py keeps
    # the two the same).
    vault_id: pulumi.Output[str]
    """Resource id of the vault (created or reused)."""
    vault_name: pulumi.Output[str]
    """Name of the vault."""
    resource_group_name: pulumi.Output[str]
    """Resource group of the vault."""
    policy_id: pulumi.Output[str]
    """Resource id of the policy (created or reused)."""
    policy_name: pulumi.Output[str]
    """Name of the policy."""
    location: str | None
    """The vault's region when this stack creates it; None for a reused vault (not in config)."""

    def __init__(self, name: str, args: BackupVaultArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        parsed = parse_args(vault=args.get("vault", {}), policy=args.get("policy", {}))
        python_args: backup_vault.BackupVaultArgs = {
            "vault": cast(VaultSettings, parsed.vault),
            "policy": parsed.policy,
        }
        if "location" in args:
            python_args["location"] = args["location"]
        if "tags" in args:
            python_args["tags"] = args["tags"]
        super().__init__(name, python_args, opts)


class ProtectedVMArgs(TypedDict):
    """Inputs of :class:`ProtectedVM`: ``vaultId`` + ``policyId`` (a shared vault) or ``vault`` +
    ``policy`` (its own vault, policy and proof of the first backup)."""

    vm_id: str
    """Resource id of the Azure VM to protect (``/subscriptions/.../virtualMachines/<name>``)."""
    vault_id: NotRequired[pulumi.Input[str]]
    """Resource id of a shared vault (a BackupVault's ``vaultId``); needs ``policyId``. Absent: the
    component creates its own vault from ``vault``."""
    policy_id: NotRequired[pulumi.Input[str]]
    """Resource id of the policy the VM is backed up with (a BackupVault's ``policyId``): required
    with ``vaultId``. Absent with ``vault``: the component's own policy."""
    vault: NotRequired[VaultConfig]
    """Settings of the component's own vault (``<name>-backup``), with ``policy``; not with ``vaultId``."""
    policy: NotRequired[PolicyConfig]
    """Settings of the component's own policy; with ``vault``."""
    initial_backup: NotRequired[InitialBackupConfig]
    """How the own vault proves the first backup (after the item). Absent: trigger it and wait for
    the completed job and its recovery point, at most 120 minutes. Refused with ``vaultId``: a
    shared vault proves its VMs together (``VaultInitialBackup``)."""
    location: NotRequired[str]
    """Region of the own vault when ``vault.location`` is empty. Absent: ``azure-native:location``."""
    tags: NotRequired[dict[str, str]]
    """Tags on the own vault and policy. Absent: no tags."""
    on_remove: NotRequired[str]
    """What removing the VM from the program does: ``retainData`` (stop protection, keep every
    recovery point) or ``deleteData``. Absent: ``retainData``."""
    disks: NotRequired[DisksConfig]
    """Selective disk backup. Absent: every disk is backed up."""


class ProtectedVM(protected_vm.ProtectedVM):
    """One Azure VM enabled for backup; with its own vault it also proves its first backup
    (``initialBackups``)."""

    # The outputs again, as for BackupVault above.
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
        parsed = parse_args(
            vault=args.get("vault"),
            policy=args.get("policy"),
            initial_backup=args.get("initial_backup"),
            disks=args.get("disks"),
            on_remove=args.get("on_remove"),
        )
        python_args: protected_vm.ProtectedVMArgs = {"vm_id": args["vm_id"]}
        if parsed.vault is not None:
            python_args["vault"] = parsed.vault
        if parsed.policy is not None:
            python_args["policy"] = parsed.policy
        if parsed.initial_backup is not None:
            python_args["initial_backup"] = parsed.initial_backup
        if parsed.on_remove is not None:
            python_args["on_remove"] = parsed.on_remove
        if parsed.disks is not None:
            python_args["disk_exclusion"] = parsed.disks.to_azure()
        if "vault_id" in args:
            python_args["vault_id"] = args["vault_id"]
        if "policy_id" in args:
            python_args["policy_id"] = args["policy_id"]
        if "location" in args:
            python_args["location"] = args["location"]
        if "tags" in args:
            python_args["tags"] = args["tags"]
        super().__init__(name, python_args, opts)


class VaultInitialBackupArgs(TypedDict):
    """Inputs of :class:`VaultInitialBackup`."""

    vault_id: pulumi.Input[str]
    """Resource id of the shared vault (a BackupVault's ``vaultId``)."""
    vm_ids: list[str]
    """Resource ids of the VMs whose first backup is triggered and proved, each protected in that
    vault by a ProtectedVM."""
    protected_item_ids: list[pulumi.Input[str]]
    """Those ProtectedVMs' ``protectedItemId`` outputs: the proof waits for these backup items (an
    output carries the resource that makes it, so the engine registers the proof after them)."""
    initial_backup: NotRequired[InitialBackupConfig]
    """How the first backups are proved. Absent: trigger them and wait for every completed job
    and its recovery point, at most 120 minutes."""


class VaultInitialBackup(pulumi.ComponentResource):
    """The proof of the first backup of every VM a shared vault protects, in one batched loop (one
    job list per poll for the vault): what ``BackupVault.verify_initial_backups`` registers for a
    Python program, for programs that join the vault by its ids. One per vault: the provider runs
    at most 4 proofs at once, so one per VM would queue."""

    vault_id: pulumi.Output[str]
    """Resource id of the vault."""
    vm_ids: pulumi.Output[list[str]]
    """Resource ids of the VMs proved."""
    initial_backups: pulumi.Output[dict[str, Any]]
    """The proof, by lower-cased VM id: ``{vmName, jobId, status, recoveryPointId,
    recoveryPointTime, durationSeconds, triggeredAt, adopted}`` (unknown at preview)."""

    def __init__(self, name: str, args: VaultInitialBackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        parsed = parse_args(initial_backup=args.get("initial_backup"))
        problems = [
            problem
            for index, vm in enumerate(args["vm_ids"])
            for problem in check_vm_id(vm, f"vmIds[{index}]")
        ]
        if not args["vm_ids"]:
            problems.append("vmIds is empty: name the VMs whose first backup the vault proves")
        if problems:
            raise StackConfigError(problems)
        super().__init__(VAULT_INITIAL_BACKUP_COMPONENT_TYPE, name, None, opts)
        # The vault id, resolved only once every item exists: the proof's dependency on the items.
        after_items = pulumi.Output.all(args["vault_id"], *args["protected_item_ids"])
        proof_args: InitialBackupArgs = {
            "vault_id": after_items.apply(lambda ids: str(ids[0])),
            "vm_ids": list(args["vm_ids"]),
        }
        if parsed.initial_backup is not None:
            proof_args["settings"] = parsed.initial_backup
        self.proof = InitialBackup(name, proof_args, opts=pulumi.ResourceOptions(parent=self))
        self.vault_id = pulumi.Output.from_input(args["vault_id"])
        self.vm_ids = pulumi.Output.from_input(list(args["vm_ids"]))
        self.initial_backups = self.proof.results
        self.register_outputs({"vaultId": self.vault_id, "vmIds": self.vm_ids, "initialBackups": self.initial_backups})


#: What the package hosts, in schema order.
COMPONENTS: list[type[pulumi.ComponentResource]] = [BackupVault, ProtectedVM, VaultInitialBackup]


def package_version() -> str:
    """The installed distribution's version, else (running from a checkout) pyproject's: one
    home for the number."""
    try:
        return importlib.metadata.version(PACKAGE_NAME)
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])


def schema() -> dict[str, Any]:
    """The package schema exactly as the provider serves it (``GetSchema``), without the CLI."""
    import json

    from pulumi.provider.experimental.component import ComponentProvider

    provider = ComponentProvider(COMPONENTS, PACKAGE_NAME, version=package_version())
    loaded: dict[str, Any] = json.loads(provider.schema or "{}")
    return loaded


def main() -> None:
    """Serve the components to the Pulumi engine (the plugin's entry point)."""
    from pulumi.provider.experimental import component_provider_host

    component_provider_host(COMPONENTS, PACKAGE_NAME, version=package_version())


if __name__ == "__main__":
    # `python -m components.package`: the schema the provider serves, for people and SDK tooling.
    import json

    print(json.dumps(schema(), indent=2))
