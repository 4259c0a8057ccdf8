"""ARM resource ids of vaults and VMs, and the backup names Azure derives from a VM.

The verifier only receives ids (stack inputs/outputs), so everything it calls is derived here:
the subscription of each client, the vault's resource group and name, and the container and
protected item names of a VM (``iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}`` /
``vm;iaasvmcontainerv2;{rg};{vm}``). Azure compares all of these case-insensitively, so every
lookup key is lower-cased while the original casing is kept for display and API calls.
"""

from __future__ import annotations

from dataclasses import dataclass

FABRIC_NAME = "Azure"


def _segments(resource_id: object, provider: str, resource_type: str, what: str) -> tuple[str, str, str]:
    """Exactly ``/subscriptions/<id>/resourceGroups/<rg>/providers/<provider>/<type>/<name>``: no
    surrounding whitespace, no empty segment. The stack config rejects a VM id with a trailing
    newline (``components.validation``); accepting it here, stripped, would let the same id mean two
    things on the two sides of the stack outputs."""
    text = resource_id if isinstance(resource_id, str) else ""
    parts = text.split("/")[1:] if text.startswith("/") else []
    if any(not p or p != p.strip() for p in parts):
        parts = []
    lowered = [p.lower() for p in parts]
    expected = [
        "subscriptions",
        None,
        "resourcegroups",
        None,
        "providers",
        provider.lower(),
        resource_type.lower(),
        None,
    ]
    if len(parts) != len(expected) or any(e is not None and e != got for e, got in zip(expected, lowered, strict=True)):
        raise ValueError(
            f"{resource_id!r} is not a {what} id: expected "
            f"/subscriptions/<id>/resourceGroups/<rg>/providers/{provider}/{resource_type}/<name>"
        )
    return parts[1], parts[3], parts[7]


@dataclass(frozen=True)
class VaultRef:
    """A Recovery Services vault, addressed the way the backup SDK wants it."""

    subscription_id: str
    resource_group: str
    name: str

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{self.name}"
        )

    @staticmethod
    def from_id(vault_id: object) -> VaultRef:
        sub, rg, name = _segments(vault_id, "Microsoft.RecoveryServices", "vaults", "Recovery Services vault")
        return VaultRef(sub, rg, name)


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
        return f"iaasvmcontainer;iaasvmcontainerv2;{self.resource_group};{self.name}"

    @property
    def protected_item_name(self) -> str:
        return f"vm;iaasvmcontainerv2;{self.resource_group};{self.name}"

    def owns_container(self, container_name: str | None) -> bool:
        """Jobs name their container either in full or without the ``iaasvmcontainer;`` prefix."""
        if not container_name:
            return False
        return container_name.lower().endswith(f"iaasvmcontainerv2;{self.resource_group};{self.name}".lower())

    @staticmethod
    def from_id(vm_id: object) -> VmRef:
        sub, rg, name = _segments(vm_id, "Microsoft.Compute", "virtualMachines", "virtual machine")
        return VmRef(str(vm_id), sub, rg, name)
