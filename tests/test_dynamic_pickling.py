"""Many dynamic resources of ours in one program run: pulumi's ``serialize_provider`` nests one
pickler wrapper per dynamic resource and never removes it, so about 980 in one process overflow the
stack (RecursionError). Every dynamic resource of this program registers under
``components.dynamic_pickling.pickler_restored``; here 1200 of them (100 ``VmProtection``, 100
``VaultLock`` and 1000 ``InitialBackup``, enough to overflow on their own) register in one mock
program run and leave the pickler as it was."""

from __future__ import annotations

import pickle
from typing import Any

from components.config import InitialBackupSettings
from components.initial_backup import InitialBackup
from components.vault_lock import VaultLock
from components.vm_protection import VmProtection
from testing.mock_preview import evaluate

VAULT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"


def vm_id(i: int) -> str:
    return f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{i:04}"


def test_more_than_1000_of_our_dynamic_resources_register_in_one_run_and_leave_the_pickler_as_it_was() -> None:
    pickler: Any = pickle._Pickler
    before = (pickler._batch_setitems, pickler.save_dict)

    def program() -> None:
        for i in range(100):
            VmProtection(f"p{i}", vault_id=VAULT, vm_id=vm_id(i), vault_location="westeurope")
            VaultLock(f"l{i}", vault_id=VAULT, immutability="Locked", soft_delete="AlwaysON")
        for i in range(1000):
            InitialBackup(f"ib{i}", {"vault_id": VAULT, "vm_ids": [vm_id(i)], "settings": InitialBackupSettings()})

    plan = evaluate(program, {}, "dev")
    assert len(plan.resources) == 1200
    assert all(r.inputs.get("__provider") for r in plan.resources)
    assert (pickler._batch_setitems, pickler.save_dict) == before
