"""Azure Backup naming rules for IaaS VMs; callers get these strings wrong easily, so they are enforced."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .errors import invalid_input

PROVIDER = "Microsoft.RecoveryServices"
VAULT_TYPE = f"{PROVIDER}/vaults"
ITEM_TYPE = f"{VAULT_TYPE}/backupFabrics/protectionContainers/protectedItems"
RP_TYPE = f"{ITEM_TYPE}/recoveryPoints"
JOB_TYPE = f"{VAULT_TYPE}/backupJobs"
POLICY_TYPE = f"{VAULT_TYPE}/backupPolicies"


@dataclass(frozen=True)
class VmRef:
    subscription: str
    resource_group: str
    name: str

    @property
    def key(self) -> str:
        return self.id.lower()

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )


def parse_vm_id(vm_id: str) -> VmRef:
    parts = [p for p in vm_id.strip().split("/") if p]
    if (
        len(parts) != 8
        or parts[0].lower() != "subscriptions"
        or parts[2].lower() != "resourcegroups"
        or parts[4].lower() != "providers"
        or parts[5].lower() != "microsoft.compute"
        or parts[6].lower() != "virtualmachines"
    ):
        raise invalid_input(f"'{vm_id}' is not a valid Azure virtual machine resource id.")
    return VmRef(parts[1], parts[3], parts[7])


def parse_container(name: str) -> tuple[str, str]:
    """``iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}`` -> (rg, vm), lower-cased."""
    parts = name.split(";")
    if len(parts) != 4 or parts[0].lower() != "iaasvmcontainer" or parts[1].lower() != "iaasvmcontainerv2":
        raise invalid_input(
            f"Container name '{name}' is not valid for an Azure VM; expected 'iaasvmcontainer;iaasvmcontainerv2;"
            "<resource group>;<vm name>'."
        )
    return parts[2].lower(), parts[3].lower()


def parse_item(name: str) -> tuple[str, str]:
    """``vm;iaasvmcontainerv2;{rg};{vm}`` -> (rg, vm), lower-cased."""
    parts = name.split(";")
    if len(parts) != 4 or parts[0].lower() != "vm" or parts[1].lower() != "iaasvmcontainerv2":
        raise invalid_input(
            f"Protected item name '{name}' is not valid for an Azure VM; expected 'vm;iaasvmcontainerv2;"
            "<resource group>;<vm name>'."
        )
    return parts[2].lower(), parts[3].lower()


def container_name(rg: str, vm: str) -> str:
    return f"IaasVMContainer;iaasvmcontainerv2;{rg.lower()};{vm.lower()}"


def item_name(rg: str, vm: str) -> str:
    return f"VM;iaasvmcontainerv2;{rg.lower()};{vm.lower()}"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_duration(seconds: float) -> str:
    """ISO-8601 duration in the style the service uses, e.g. ``PT2M30.5S``."""
    seconds = max(0.0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = "PT"
    if hours:
        out += f"{int(hours)}H"
    if minutes:
        out += f"{int(minutes)}M"
    sec_text = f"{secs:.7f}".rstrip("0").rstrip(".")
    if sec_text != "0" or out == "PT":
        out += f"{sec_text}S"
    return out
