"""Constants and small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator import Emulator
    from protectedvm.ids import VaultRef

#: The subscription of the tests' made-up ARM ids. Tests that need ids in another subscription (the
#: fleet, re-add and import, throttling, the module's consumer program) keep their own.
SUB = "11111111-2222-3333-4444-555555555555"


def create_secure_vault(
    emu: Emulator, vault: VaultRef, immutability: str = "Unlocked", retention_days: int = 30
) -> None:
    """A vault as the stack creates one (soft delete AlwaysON), in the emulator, with the given
    immutability state."""
    emu.create_vault(
        vault.subscription_id,
        vault.resource_group,
        vault.name,
        location="westeurope",
        securitySettings={
            "immutabilitySettings": {"state": immutability},
            "softDeleteSettings": {"softDeleteState": "AlwaysON", "softDeleteRetentionPeriodInDays": retention_days},
        },
    )
