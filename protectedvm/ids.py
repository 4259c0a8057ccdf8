"""One home for Azure's ids and names and this project's identifiers (standard library only).

The verifier only receives ids (stack inputs/outputs), so everything it calls is derived here:
the subscription of each client, the vault's resource group and name, and the container and
protected item names of a VM (``iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}`` /
``vm;iaasvmcontainerv2;{rg};{vm}``). Azure compares all of these case-insensitively, so every
lookup key is lower-cased while the original casing is kept for display and API calls.

The same facts are needed by the Pulumi components, the policy pack (which runs in its own
virtualenv with only ``pulumi`` and ``pulumi-policy``: this module must never import anything
else, and ``protectedvm/__init__.py`` imports nothing eagerly), the rehearsal and the benchmarks:
they all import them from here. The emulator plays Azure and keeps its own spelling of Azure's
side (``emulator/names.py``); ``tests/test_ids.py`` checks the two agree.

ARM ids follow one rule, the one the README documents for ``protected-vm:vms``
(``/subscriptions/<guid>/resourceGroups/<rg>/providers/...``): a GUID-shaped subscription (36
hex digits and hyphens), a resource group of 1-90 letters, digits, ``-_.()``, a name of the
type's characters, and nothing around it (no whitespace, no trailing newline, no empty
segment). Provider and type segments match case-insensitively, as ARM does. The stack config,
the dynamic providers and ``python -m protectedvm verify`` all parse with :func:`match_id`, so
the same id cannot mean two things on the two sides of the stack outputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# --- this project's identifiers -----------------------------------------------------------------

#: The Pulumi project, and so the namespace of every stack setting (``protected-vm:vms``).
CONFIG_NAMESPACE: Final = "protected-vm"
#: Tag on a vault created Unlocked whose configured immutability is Locked (the lock step follows);
#: the policy pack accepts Unlocked with it.
LOCK_PENDING_TAG: Final = "protected-vm-immutability"
#: Tag on each policy of a ``protected-vm:vaults`` stack: the policy pack's per-tier rules read it.
TIER_TAG: Final = "protected-vm-tier"

#: Pulumi type tokens of the components.
BACKUP_VAULT_COMPONENT_TYPE: Final = f"{CONFIG_NAMESPACE}:index:BackupVault"
PROTECTED_VM_COMPONENT_TYPE: Final = f"{CONFIG_NAMESPACE}:index:ProtectedVM"
VAULT_INITIAL_BACKUP_COMPONENT_TYPE: Final = f"{CONFIG_NAMESPACE}:index:VaultInitialBackup"
#: Dynamic resources: ``pulumi-python:dynamic:Resource`` by default, ``pulumi-python:dynamic/<module>:<Name>``
#: when the resource class declares ``module``/``name`` (ours declare ``module="protectedvm"``).
DYNAMIC_TYPE: Final = "pulumi-python:dynamic:Resource"
DYNAMIC_MODULE: Final = "protectedvm"


def dynamic_type(name: str, module: str = DYNAMIC_MODULE) -> str:
    return f"pulumi-python:dynamic/{module}:{name}"


def is_dynamic_type(resource_type: str) -> bool:
    """Any dynamic resource, with or without a declared module/name."""
    return resource_type.startswith(("pulumi-python:dynamic:", "pulumi-python:dynamic/"))


INITIAL_BACKUP_TYPE: Final = dynamic_type("InitialBackup")
VAULT_LOCK_TYPE: Final = dynamic_type("VaultLock")
VM_PROTECTION_TYPE: Final = dynamic_type("VmProtection")

#: azure-native type tokens of the resources the program registers and the policy pack checks.
VAULT_TYPE: Final = "azure-native:recoveryservices:Vault"
POLICY_TYPE: Final = "azure-native:recoveryservices:ProtectionPolicy"
ITEM_TYPE: Final = "azure-native:recoveryservices:ProtectedItem"
GUARD_PROXY_TYPE: Final = "azure-native:recoveryservices:ResourceGuardProxy"
VM_TYPE: Final = "azure-native:compute:VirtualMachine"
LOCK_TYPE: Final = "azure-native:authorization:ManagementLockByScope"
ACTION_GROUP_TYPE: Final = "azure-native:monitor:ActionGroup"
ALERT_RULE_TYPE: Final = "azure-native:alertsmanagement:AlertProcessingRuleByName"
WORKSPACE_TYPE: Final = "azure-native:operationalinsights:Workspace"
DIAGNOSTIC_TYPE: Final = "azure-native:monitor:DiagnosticSetting"
RESOURCE_GUARD_TYPE: Final = "azure-native:dataprotection:ResourceGuard"
PRIVATE_ENDPOINT_TYPE: Final = "azure-native:network:PrivateEndpoint"
PRIVATE_DNS_ZONE_GROUP_TYPE: Final = "azure-native:network:PrivateDnsZoneGroup"
#: azure-native invokes the program calls.
GET_PROTECTED_ITEM_TOKEN: Final = "azure-native:recoveryservices:getProtectedItem"
GET_VAULT_TOKEN: Final = "azure-native:recoveryservices:getVault"

# --- Azure's names ---------------------------------------------------------------------------------

RECOVERY_SERVICES_PROVIDER: Final = "Microsoft.RecoveryServices"
COMPUTE_PROVIDER: Final = "Microsoft.Compute"
#: The ARM type of a VM, also the ``protectedItemType`` of its backup item
#: (azure-rest-api-specs ``Compute_ProtectedItem_Get.json``).
VM_RESOURCE_TYPE: Final = f"{COMPUTE_PROVIDER}/virtualMachines"
#: The backup fabric of every Azure VM item (``backupFabrics/Azure`` in the spec's item paths).
FABRIC_NAME: Final = "Azure"


def container_name(resource_group: str, vm_name: str) -> str:
    """The backup container Azure derives from a VM (``iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}``)."""
    return f"iaasvmcontainer;{_container_suffix(resource_group, vm_name)}"


def protected_item_name(resource_group: str, vm_name: str) -> str:
    """The backup item Azure derives from a VM (``vm;iaasvmcontainerv2;{rg};{vm}``)."""
    return f"vm;{_container_suffix(resource_group, vm_name)}"


def _container_suffix(resource_group: str, vm_name: str) -> str:
    return f"iaasvmcontainerv2;{resource_group};{vm_name}"


# --- ARM ids: one rule ----------------------------------------------------------------------------

_SUBSCRIPTION = r"[0-9a-fA-F-]{36}"
_RESOURCE_GROUP = r"[-\w._()]{1,90}"


@dataclass(frozen=True)
class IdShape:
    """A kind of ARM id: its provider, its type segments and the name each one takes."""

    provider: str
    #: ``(type, placeholder, name pattern)`` per level, e.g. ``("vaults", "vault", r"[-\w]{2,50}")``.
    levels: tuple[tuple[str, str, str], ...]

    @property
    def pattern(self) -> re.Pattern[str]:
        path = "".join(f"/{re.escape(kind)}/({name})" for kind, _, name in self.levels)
        return re.compile(
            rf"^/subscriptions/({_SUBSCRIPTION})/resourceGroups/({_RESOURCE_GROUP})"
            rf"/providers/{re.escape(self.provider)}{path}\Z",
            re.IGNORECASE,
        )

    def expected(self, subscription: str = "<guid>") -> str:
        """The shape messages show: ``/subscriptions/<guid>/resourceGroups/<rg>/providers/...``."""
        path = "".join(f"/{kind}/<{placeholder}>" for kind, placeholder, _ in self.levels)
        return f"/subscriptions/{subscription}/resourceGroups/<rg>/providers/{self.provider}{path}"


#: Name rules: a VM 1-64 letters, digits, ``-_.``; a vault 2-50 letters, digits, ``-_``;
#: a backup policy 1-150 letters, digits, ``-_.``.
VM_ID: Final = IdShape(COMPUTE_PROVIDER, (("virtualMachines", "name", r"[-\w.]{1,64}"),))
VAULT_ID: Final = IdShape(RECOVERY_SERVICES_PROVIDER, (("vaults", "name", r"[-\w]{2,50}"),))
POLICY_ID: Final = IdShape(
    RECOVERY_SERVICES_PROVIDER, (("vaults", "vault", r"[-\w]{2,50}"), ("backupPolicies", "name", r"[-\w.]{1,150}"))
)
_PATTERNS: dict[IdShape, re.Pattern[str]] = {shape: shape.pattern for shape in (VM_ID, VAULT_ID, POLICY_ID)}


@dataclass(frozen=True)
class ArmId:
    """The parts of an ARM id, in the id's own casing. ``parents`` are the names of the levels
    above the last (a policy's vault)."""

    subscription: str
    resource_group: str
    name: str
    parents: tuple[str, ...] = ()


def match_id(resource_id: object, shape: IdShape) -> ArmId | None:
    """The parts of ``resource_id`` when it is an id of that shape, else None (callers word the
    error for their setting)."""
    if not isinstance(resource_id, str):
        return None
    match = _PATTERNS.get(shape, shape.pattern).match(resource_id)
    if match is None:
        return None
    groups = match.groups()
    return ArmId(groups[0], groups[1], groups[-1], tuple(groups[2:-1]))


def subscription_of(resource_id: object) -> str | None:
    """The lower-cased subscription of an ARM id of any type (``/subscriptions/<s>/...``), or None."""
    parts = resource_id.split("/") if isinstance(resource_id, str) else []
    return parts[2].lower() if len(parts) > 2 and parts[1].lower() == "subscriptions" else None


def vault_path(resource_group: str, vault_name: str) -> str:
    """A vault's id without its subscription (what the policy pack matches before ids exist)."""
    return f"/resourceGroups/{resource_group}/providers/{RECOVERY_SERVICES_PROVIDER}/vaults/{vault_name}"


def policy_path(resource_group: str, vault_name: str, policy_name: str) -> str:
    return f"{vault_path(resource_group, vault_name)}/backupPolicies/{policy_name}"


def vm_path(resource_group: str, vm_name: str) -> str:
    return f"/resourceGroups/{resource_group}/providers/{VM_RESOURCE_TYPE}/{vm_name}"


def _parse(resource_id: object, shape: IdShape, what: str) -> ArmId:
    parts = match_id(resource_id, shape)
    if parts is None:
        raise ValueError(f"{resource_id!r} is not a {what} id: expected {shape.expected('<id>')}")
    return parts


@dataclass(frozen=True)
class VaultRef:
    """A Recovery Services vault, addressed the way the backup SDK wants it."""

    subscription_id: str
    resource_group: str
    name: str

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription_id}{vault_path(self.resource_group, self.name)}"

    @staticmethod
    def from_id(vault_id: object) -> VaultRef:
        parts = _parse(vault_id, VAULT_ID, "Recovery Services vault")
        return VaultRef(parts.subscription, parts.resource_group, parts.name)


@dataclass(frozen=True)
class VmRef:
    """A protected VM: its id and the container/item names its backups live under."""

    vm_id: str
    subscription_id: str
    resource_group: str
    name: str

    @property
    def key(self) -> str:
        """Stable, case-insensitive identity: the key of the ``results`` output."""
        return self.vm_id.lower()

    @property
    def container_name(self) -> str:
        return container_name(self.resource_group, self.name)

    @property
    def protected_item_name(self) -> str:
        return protected_item_name(self.resource_group, self.name)

    def owns_container(self, container_name: str | None) -> bool:
        """Jobs name their container either in full or without the ``iaasvmcontainer;`` prefix."""
        if not container_name:
            return False
        return container_name.lower().endswith(_container_suffix(self.resource_group, self.name).lower())

    @staticmethod
    def from_id(vm_id: object) -> VmRef:
        parts = _parse(vm_id, VM_ID, "virtual machine")
        return VmRef(str(vm_id), parts.subscription, parts.resource_group, parts.name)
