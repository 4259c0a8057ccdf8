"""``VaultLock``: the second step of a Locked vault, and the preview-time guard of the vault's
one-way settings.

Azure refuses ``immutability: Locked`` when a vault is created (azurerm
``recovery_services_vault_resource.go``: "The API doesn't allow to set the immutability to
'Locked' on creation ... Locked <- Unlocked <-> Disabled"), so a new vault is created Unlocked by
:class:`~components.backup_vault.BackupVault` and this resource, registered after it, locks it.
Once the vault exists the Vault resource sends the configured value again, which then equals
Azure's: it never fights the lock, and prod's existing state (``Locked`` in its inputs) shows no
diff.

Locked immutability and AlwaysON soft delete are irreversible. :meth:`VaultLockProvider.check`
receives the previous inputs from state and refuses a downgrade at **preview**, naming the
setting; the program itself cannot read previous state. On the first ``up`` after this resource
is added there are no previous inputs: :meth:`create` then reads the vault and refuses the same
downgrades before changing anything (Azure would refuse them too).

``delete`` does nothing: a lock cannot be undone and the record holds nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from components.dynamic_pickling import pickler_restored
from components.engine_values import is_unknown
from protectedvm.ids import VAULT_LOCK_TYPE

VAULT_ID = "vaultId"
IMMUTABILITY = "immutability"
SOFT_DELETE = "softDelete"
TYPE_TOKEN = VAULT_LOCK_TYPE


def downgrade_problems(
    old_immutability: object, new_immutability: object, old_soft: object, new_soft: object
) -> list[tuple[str, str]]:
    """(property, message) for each irreversible setting the new inputs would undo."""
    problems = []
    if old_immutability == "Locked" and not is_unknown(new_immutability) and new_immutability != "Locked":
        problems.append(
            (
                IMMUTABILITY,
                f"vault.immutability = {new_immutability!r} is not allowed: the vault is Locked, which Azure never "
                "undoes (nobody can shorten retention or delete recovery points); keep vault.immutability: Locked",
            )
        )
    if old_soft == "AlwaysON" and not is_unknown(new_soft) and new_soft != "AlwaysON":
        problems.append(
            (
                SOFT_DELETE,
                f"vault.softDelete = {new_soft!r} is not allowed: soft delete is AlwaysON, which Azure never "
                "undoes; keep vault.softDelete: AlwaysON",
            )
        )
    return problems


class VaultLockProvider(dyn.ResourceProvider):
    """``api_factory`` (a VaultRef -> BackupApi-like object) is for tests and the rehearsal."""

    serialize_as_secret_always = False

    def __init__(self, api_factory: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.api_factory = api_factory

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        failures = [
            dyn.CheckFailure(prop, message)
            for prop, message in downgrade_problems(
                olds.get(IMMUTABILITY), news.get(IMMUTABILITY), olds.get(SOFT_DELETE), news.get(SOFT_DELETE)
            )
        ]
        return dyn.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        new_vault = news.get(VAULT_ID)
        moved = is_unknown(new_vault) or str(olds.get(VAULT_ID)).lower() != str(new_vault).lower()
        replaces = [VAULT_ID] if moved else []
        changes = bool(replaces) or any(
            is_unknown(news.get(key)) or olds.get(key) != news.get(key) for key in (IMMUTABILITY, SOFT_DELETE)
        )
        return dyn.DiffResult(changes=changes, replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        from protectedvm.ids import VaultRef

        vault = VaultRef.from_id(str(props[VAULT_ID]))
        self._apply(vault, props)
        return dyn.CreateResult(f"{vault.id.lower()}/lock", dict(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        from protectedvm.ids import VaultRef

        self._apply(VaultRef.from_id(str(news[VAULT_ID])), news)
        return dyn.UpdateResult(dict(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None

    def _apply(self, vault: Any, props: dict[str, Any]) -> None:
        from protectedvm.azure_client import BackupApi

        api = self.api_factory(vault) if self.api_factory else BackupApi.for_vault(vault)
        try:
            self.apply(api, str(props.get(IMMUTABILITY) or ""), str(props.get(SOFT_DELETE) or ""))
        finally:
            if self.api_factory is None:
                api.close()

    @staticmethod
    def apply(api: Any, immutability: str, soft_delete: str) -> str:
        """Bring the vault's immutability to the configured state; returns what was done."""
        current = api.vault_settings()
        problems = downgrade_problems(current.immutability, immutability, current.soft_delete, soft_delete)
        if problems:
            raise ValueError("; ".join(message for _, message in problems))
        if not immutability or current.immutability == immutability:
            return "unchanged"
        if immutability == "Locked" and current.immutability in (None, "Disabled"):
            api.set_immutability("Unlocked")  # Locked only from Unlocked (azurerm, see module docs)
        api.set_immutability(immutability)
        return f"{current.immutability or 'Disabled'} -> {immutability}"


class VaultLock(dyn.Resource, module="protectedvm", name="VaultLock"):
    """Register after the vault (``depends_on``)."""

    vaultId: pulumi.Output[str]
    immutability: pulumi.Output[str]
    softDelete: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        vault_id: pulumi.Input[str],
        immutability: str,
        soft_delete: str,
        opts: pulumi.ResourceOptions | None = None,
        provider: VaultLockProvider | None = None,
    ) -> None:
        props = {VAULT_ID: vault_id, IMMUTABILITY: immutability, SOFT_DELETE: soft_delete}
        with pickler_restored():
            super().__init__(provider or VaultLockProvider(), resource_name, props, opts)
