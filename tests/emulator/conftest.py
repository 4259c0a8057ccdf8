"""Shared setup: one emulator per test on a ManualClock, with a vault and a registered VM."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from emulator import Emulator, ManualClock
from tests.helpers import SUB

VAULT_RG = "rg-backup"
VAULT = "rsv-prod"
VM_RG = "rg-app"
JOB_SECONDS = 600.0


def vm_id(name: str, rg: str = VM_RG) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def container_for(vm: str, rg: str = VM_RG) -> str:
    return f"iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}"


def item_for(vm: str, rg: str = VM_RG) -> str:
    return f"vm;iaasvmcontainerv2;{rg};{vm}"


def policy_id(name: str = "DefaultPolicy") -> str:
    vault = f"/subscriptions/{SUB}/resourceGroups/{VAULT_RG}/providers/Microsoft.RecoveryServices/vaults/{VAULT}"
    return f"{vault}/backupPolicies/{name}"


def expiry(days: int = 30) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def op_id_from(url: str) -> str:
    return url.split("?", 1)[0].rsplit("/", 1)[-1]


@dataclass
class Env:
    emu: Emulator
    clock: ManualClock
    client: Any

    def add_vm(self, name: str) -> str:
        self.emu.add_vm(vm_id(name))
        return name

    def protect(self, vm: str) -> Any:
        poller = self.client.protected_items.begin_create_or_update(
            VAULT,
            VAULT_RG,
            "Azure",
            container_for(vm),
            item_for(vm),
            {
                "properties": {
                    "protectedItemType": "Microsoft.Compute/virtualMachines",
                    "sourceResourceId": vm_id(vm),
                    "policyId": policy_id(),
                }
            },
        )
        return poller.result()

    def trigger(self, vm: str, container: str | None = None, item: str | None = None) -> dict[str, str]:
        """Trigger a backup and return the 202 headers (the SDK method itself returns None)."""
        headers = self.client.backups.trigger(
            VAULT,
            VAULT_RG,
            "Azure",
            container or container_for(vm),
            item or item_for(vm),
            {"properties": {"objectType": "IaasVMBackupRequest", "recoveryPointExpiryTimeInUTC": expiry()}},
            cls=lambda response, _body, _headers: dict(response.http_response.headers),
        )
        return dict(headers)

    def backup_job_id(self, vm: str) -> str:
        status = self.client.backup_operation_statuses.get(
            VAULT, VAULT_RG, op_id_from(self.trigger(vm)["Azure-AsyncOperation"])
        )
        assert status.status == "Succeeded"
        return str(status.properties.job_id)

    def job(self, job_id: str) -> Any:
        return self.client.job_details.get(VAULT, VAULT_RG, job_id)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> Iterator[Emulator]:
    with Emulator(clock=clock, job_duration=JOB_SECONDS, page_size=5, lro_retry_after=0) as running:
        yield running


@pytest.fixture
def env(emu: Emulator, clock: ManualClock) -> Env:
    emu.create_vault(SUB, VAULT_RG, VAULT, location="westeurope")
    e = Env(emu, clock, emu.client(SUB))
    e.add_vm("web01")
    return e
