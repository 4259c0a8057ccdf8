"""``VmProtection``: one small dynamic resource per VM that owns what azure-native's
``ProtectedItem`` cannot do safely on day two.

* **Removal keeps the backups.** Deleting an azure-native ``ProtectedItem`` is Azure's "stop backup
  and delete backup data" (a DELETE on the item). The item is therefore ``retain_on_delete`` and
  depends on this resource; Pulumi deletes dependents first, so when a VM leaves the stack (or on
  ``pulumi destroy``) the item only leaves the state, and then :meth:`VmProtectionProvider.delete`
  stops protection and **retains** the data (``protectionState: ProtectionStopped``). Only
  ``protected-vm:onRemove: deleteData`` (explicit, never the default) deletes backup data instead.
* **Pre-flight before any change** (:meth:`create`, which runs before the item's PUT): a VM
  protected by another vault is refused with the vault's id and what to do, instead of Azure's
  late 400.
* **Re-adding a VM** whose item is soft-deleted undeletes it first (Azure refuses to protect a
  soft-deleted item) and resumes protection of a stopped or undeleted item with the stack's
  policy, keeping its recovery points; the VM's ``ProtectedItem`` then imports the item (see
  :meth:`VmProtectionProvider.prepare`).
* **A resource never becomes another VM** (:meth:`check`): should an alias or a rename ever match
  this resource's state to a different VM, preview fails instead of the old VM's protection being
  stopped.

The provider is a thin wrapper over :class:`protectedvm.azure_client.BackupApi` (no Pulumi there),
builds its client per call and holds nothing secret, like ``InitialBackupProvider``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from components.config import DELETE_DATA, ON_REMOVE_VALUES, RETAIN_DATA
from components.dynamic_pickling import pickler_restored
from components.engine_values import id_failures, is_unknown
from protectedvm.ids import VM_PROTECTION_TYPE

VAULT_ID = "vaultId"
VM_ID = "vmId"
VAULT_LOCATION = "vaultLocation"
POLICY_ID = "policyId"
ON_REMOVE = "onRemove"
TYPE_TOKEN = VM_PROTECTION_TYPE


class PreflightError(Exception):
    """A VM that cannot be protected by this stack's vault, with what to do about it."""


class VmProtectionProvider(dyn.ResourceProvider):
    """``api_factory`` (a VaultRef -> BackupApi-like object) is for tests and the rehearsal."""

    serialize_as_secret_always = False

    def __init__(self, api_factory: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.api_factory = api_factory

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        from protectedvm.ids import VaultRef, VmRef

        vm_id, vault_id = news.get(VM_ID), news.get(VAULT_ID)
        failures = id_failures(VM_ID, vm_id, VmRef.from_id) + id_failures(VAULT_ID, vault_id, VaultRef.from_id)
        on_remove = news.get(ON_REMOVE, RETAIN_DATA)
        if not is_unknown(on_remove) and on_remove not in ON_REMOVE_VALUES:
            failures.append(
                dyn.CheckFailure(
                    ON_REMOVE,
                    f"protected-vm:onRemove = {on_remove!r} is not allowed: use {RETAIN_DATA} (the default: "
                    f"stop protection, keep the recovery points) or {DELETE_DATA} (stop and delete backup data)",
                )
            )
        old_vm = olds.get(VM_ID)
        if old_vm and not is_unknown(old_vm) and not is_unknown(vm_id) and str(old_vm).lower() != str(vm_id).lower():
            failures.append(
                dyn.CheckFailure(
                    VM_ID,
                    f"this resource protects {old_vm} and would become {vm_id}: a resource never changes VM; "
                    "check the names and aliases of protected-vm:vms entries",
                )
            )
        if not olds and not failures and not is_unknown(vm_id):
            failures += self._preview_preflight(news)
        return dyn.CheckResult(news, failures)

    def _preview_preflight(self, news: dict[str, Any]) -> list[dyn.CheckFailure]:
        """A VM new to the stack is checked at preview already (no call for VMs already in
        state). Azure being unreachable here is not a failure: ``create`` checks again."""
        from protectedvm.ids import VaultRef, VmRef

        vm = VmRef.from_id(str(news[VM_ID]))
        raw_vault = news.get(VAULT_ID)
        vault = None if is_unknown(raw_vault) or not raw_vault else VaultRef.from_id(str(raw_vault))
        try:
            api = self._api(vault or VaultRef(vm.subscription_id, "", ""))
        except Exception:  # no credentials at preview: create() checks again
            return []
        try:
            vault_id, vault_name = (vault.id, vault.name) if vault else (None, None)
            self.preflight(api, vault_id, vault_name, vm, news.get(VAULT_LOCATION))
        except PreflightError as error:
            return [dyn.CheckFailure(VM_ID, str(error))]
        except Exception as error:  # Azure unreachable or refusing a read: create() checks again
            _warn(f"{vm.name}: pre-flight skipped at preview ({type(error).__name__}); pulumi up checks again")
        finally:
            self._close(api)
        return []

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        """Another vault is another item: replace (the old one stops with its data retained first).
        ``onRemove``, the location and the policy only change what later calls do: an update."""
        replaces = []
        old_vault, new_vault = olds.get(VAULT_ID), news.get(VAULT_ID)
        if is_unknown(new_vault) or str(old_vault).lower() != str(new_vault).lower():
            replaces.append(VAULT_ID)
        changes = bool(replaces) or any(
            is_unknown(news.get(key)) or olds.get(key) != news.get(key)
            for key in (ON_REMOVE, VAULT_LOCATION, POLICY_ID)
        )
        return dyn.DiffResult(changes=changes, replaces=replaces, delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        vault, vm = _refs(props)
        api = self._api(vault)
        try:
            outs = dict(props)
            outs["resumed"] = self.prepare(api, vault, vm, props.get(VAULT_LOCATION), props.get(POLICY_ID))
        finally:
            self._close(api)
        return dyn.CreateResult(f"{vault.id.lower()}/vmProtection/{vm.key}", outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        return dyn.UpdateResult(dict(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        vault, vm = _refs(props)
        api = self._api(vault)
        try:
            self.release(api, vm, str(props.get(ON_REMOVE) or RETAIN_DATA))
        finally:
            self._close(api)

    # --- the work, callable without the engine ------------------------------------------------------

    @staticmethod
    def preflight(api: Any, vault_id: str | None, vault_name: str | None, vm: Any, vault_location: object) -> None:
        """Checks, each failing with the VM's name and what to do: the VM exists; it is in the
        vault's region (Azure Backup support matrix: "You need a vault in every Azure region that
        contains VMs you want to back up. You can't back up to a different region."); no other
        vault protects it (``backupStatus``). ``vault_id`` None: the vault is still to be created
        (preview of a new stack), so any vault protecting the VM is another one."""
        location = api.vm_location(vm)
        if location is None:
            raise PreflightError(
                f"{vm.name} ({vm.vm_id}) was not found (or the deployment identity cannot read it): "
                "fix or remove it in protected-vm:vms"
            )
        region = vault_location if isinstance(vault_location, str) and vault_location else None
        if (region is None or is_unknown(region)) and vault_id is not None:
            region = api.vault_settings().location
        if region is not None and not is_unknown(region):
            region = str(region).replace(" ", "").lower()
            if location != region:
                raise PreflightError(
                    f"{vm.name} is in {location} but vault {vault_name or '(new)'} is in {region}; Azure Backup "
                    f"protects a VM only in a vault of its own region: protect it from a stack whose vault is in "
                    f"{location}"
                )
        status = api.backup_status(vm, location)
        other = status.vault_id
        ours = vault_id.lower() if vault_id else None
        if status.protection_status in ("Protected", "Protecting") and other and other.lower() != ours:
            raise PreflightError(
                f"{vm.name} ({vm.vm_id}) is already protected by vault {other}: stop its protection there "
                "(and delete its backup data there, or keep that vault) before this stack can protect it"
            )

    @staticmethod
    def prepare(
        api: Any, vault: Any, vm: Any, vault_location: object, policy_id: object = None
    ) -> str | None:
        """Pre-flight, then make the item protectable. Returns what was resumed (``undeleted``,
        ``stopped``) or None for a VM new to the vault.

        A VM removed earlier (its data retained, or soft-deleted by ``deleteData``) comes back:
        a soft-deleted item is undeleted first (Azure refuses to protect it otherwise), then
        protection is resumed with ``policy_id``. The program found that item before (it asks
        Azure for every VM's item: ``components.protected_vm.kept_item_ids``), so azure-native's
        ``ProtectedItem``, which depends on this resource, imports it instead of refusing to
        create an existing resource, and finds it already on the stack's policy.

        Runs :meth:`preflight` first (again: ``check`` ran it at preview for a new VM)."""
        VmProtectionProvider.preflight(api, vault.id, vault.name, vm, vault_location)
        state = api.item_state(vm)
        if state is None:
            return None
        resumed = None
        if state.soft_deleted:
            api.undelete_item(vm)
            resumed = "undeleted"
        elif state.protection_state == "ProtectionStopped":
            resumed = "stopped"
        if resumed and isinstance(policy_id, str) and policy_id and not is_unknown(policy_id):
            api.resume_protection(vm, policy_id)
            _warn(
                f"{vm.name}: protection resumed with its retained recovery points ({resumed} before); "
                "its backup item is imported into the stack, not created again"
            )
        return resumed

    @staticmethod
    def release(api: Any, vm: Any, on_remove: str) -> str:
        """What removal does in Azure; returns what it did (for logs and tests)."""
        state = api.item_state(vm)
        if state is None or state.soft_deleted:
            return "nothing to do"
        if on_remove == DELETE_DATA:
            api.delete_item_data(vm)
            return "deleted backup data"
        if state.protection_state == "ProtectionStopped":
            return "already stopped"
        api.stop_protection_retain_data(vm)
        return "stopped protection, data retained"

    def _api(self, vault: Any) -> Any:
        from protectedvm.azure_client import BackupApi

        return self.api_factory(vault) if self.api_factory else BackupApi.for_vault(vault)

    def _close(self, api: Any) -> None:
        if self.api_factory is None:
            api.close()


def _warn(message: str) -> None:
    try:
        pulumi.log.warn(message)
    except Exception:  # outside an engine (tests, rehearsal) logging must not fail the call
        import logging

        logging.getLogger(__name__).warning(message)


def _refs(props: Mapping[str, Any]) -> tuple[Any, Any]:
    from protectedvm.ids import VaultRef, VmRef

    return VaultRef.from_id(str(props[VAULT_ID])), VmRef.from_id(str(props[VM_ID]))


class VmProtection(dyn.Resource, module="protectedvm", name="VmProtection"):
    """Register it before the VM's ``ProtectedItem`` and make the item depend on it."""

    vaultId: pulumi.Output[str]
    vmId: pulumi.Output[str]
    onRemove: pulumi.Output[str]
    resumed: pulumi.Output[str | None]

    def __init__(
        self,
        resource_name: str,
        *,
        vault_id: pulumi.Input[str],
        vm_id: str,
        vault_location: pulumi.Input[str] | None,
        policy_id: pulumi.Input[str] | None = None,
        on_remove: str = RETAIN_DATA,
        opts: pulumi.ResourceOptions | None = None,
        provider: VmProtectionProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            VAULT_ID: vault_id,
            VM_ID: vm_id,
            VAULT_LOCATION: vault_location,
            POLICY_ID: policy_id,
            ON_REMOVE: on_remove,
            "resumed": None,
        }
        with pickler_restored():
            super().__init__(provider or VmProtectionProvider(), resource_name, props, opts)
