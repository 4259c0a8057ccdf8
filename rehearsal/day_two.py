"""``python -m rehearsal.day_two --stack prod``: the day-two scenarios of a stack, offline.

Each scenario edits the stack (add a same-named VM, remove a VM, re-add it, downgrade the lock,
add a VM another vault protects) and shows what ``pulumi up`` does: the URNs the engine would keep,
create and delete (the real program under mocks, replayed with the engine's alias rules), then
the real ``VmProtection``/``VaultLock`` provider code against the embedded emulator, with every
VM's recovery points counted before and after. Exit 0 when no scenario lost a recovery point or
a URN and every refusal happened where it should; 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from components.program import deploy
from components.vault_lock import VaultLockProvider
from components.vm_protection import PreflightError, VmProtectionProvider
from rehearsal.table import render_table
from testing.mock_preview import evaluate, load_stack_config


@dataclass
class Scenario:
    name: str
    up: str
    points: str
    ok: bool


def _urn_replay(config: dict[str, str], stack: str, before_vms: list[str], after_vms: list[str]) -> Any:
    from components.urn_replay import match_against, recording, urns

    def run(vms: list[str]) -> Any:
        edited = dict(config)
        edited["protected-vm:vms"] = json.dumps(vms)
        with recording() as regs:
            evaluate(deploy, edited, stack)
        return regs

    before, after = run(before_vms), run(after_vms)
    return match_against(urns(before), [r for r in after if r.type != "pulumi:pulumi:Stack"])


def _short(urn: str) -> str:
    return urn.rsplit("::", 1)[1]


def run_day_two(stack: str, out: Callable[[str], None] = print) -> int:
    from emulator import Emulator, ManualClock
    from emulator.seeding import item_path
    from protectedvm.azure_client import BackupApi
    from protectedvm.ids import VM_RESOURCE_TYPE, VaultRef, VmRef

    config = load_stack_config(stack)
    vms: list[str] = json.loads(config["protected-vm:vms"])
    vault_cfg = json.loads(config["protected-vm:vault"])
    subscription = vms[0].split("/")[2]
    location = config.get("azure-native:location", "westeurope")
    vault = VaultRef(subscription, vault_cfg["resourceGroup"], vault_cfg["name"])
    other = VaultRef(subscription, vault_cfg["resourceGroup"], f"{vault_cfg['name']}-other")
    # The emulated vault's DefaultPolicy stands in for the stack's policy: these scenarios are
    # about items and recovery points, the policy body is the normal rehearsal's business.
    policy_id = f"{vault.id}/backupPolicies/DefaultPolicy"
    scenarios: list[Scenario] = []

    clock = ManualClock()
    with Emulator(clock=clock, job_duration=60.0) as emu:
        client = emu.client(subscription)

        def api(v: VaultRef = vault) -> BackupApi:
            return BackupApi(client, v, sleep=lambda seconds: clock.advance(seconds))

        def create_vault(v: VaultRef) -> None:
            emu.create_vault(
                v.subscription_id,
                v.resource_group,
                v.name,
                location=location,
                securitySettings={
                    "immutabilitySettings": {"state": "Unlocked"},
                    "softDeleteSettings": {
                        "softDeleteState": vault_cfg.get("softDelete", "AlwaysON"),
                        "softDeleteRetentionPeriodInDays": vault_cfg.get("softDeleteRetentionDays", 14),
                    },
                },
            )

        def protect(v: VaultRef, vm_id: str) -> None:
            vm = VmRef.from_id(vm_id)
            VmProtectionProvider.prepare(api(v), v, vm, location, f"{v.id}/backupPolicies/DefaultPolicy")
            status, body = emu.raw_request(
                "PUT",
                f"{item_path(v, vm.container_name, vm.protected_item_name)}?api-version=2025-02-01",
                {
                    "properties": {
                        "protectedItemType": VM_RESOURCE_TYPE,
                        "sourceResourceId": vm_id,
                        "policyId": f"{v.id}/backupPolicies/DefaultPolicy",
                    }
                },
            )
            if status not in (200, 202):
                raise RuntimeError(f"protecting {vm.name} failed: {status} {body}")

        def backup(vm_id: str) -> None:
            api().trigger_backup(VmRef.from_id(vm_id), emu.state.now() + dt.timedelta(days=30))
            clock.advance(120)

        def points(vm_id: str) -> int:
            return len(api().recovery_points(VmRef.from_id(vm_id)))

        # Day one: the stack deployed, every VM with its first recovery point.
        create_vault(vault)
        if vault_cfg.get("immutability") == "Locked":
            VaultLockProvider.apply(api(), "Locked", str(vault_cfg.get("softDelete", "AlwaysON")))
        for vm_id in vms:
            emu.add_vm(vm_id, location)
            protect(vault, vm_id)
            backup(vm_id)
        out(f"day one: {len(vms)} VM(s) protected in {vault.name}, one recovery point each")

        # 1. a VM with the name of an existing one, in another resource group
        first = VmRef.from_id(vms[0])
        twin = vms[0].replace(f"/resourceGroups/{first.resource_group}/", "/resourceGroups/rg-day-two/")
        replay = _urn_replay(config, stack, vms, [*vms, twin])
        before = points(vms[0])
        emu.add_vm(twin, location)
        protect(vault, twin)
        backup(twin)
        created = sorted(_short(u) for u in replay.created())
        scenarios.append(
            Scenario(
                f"add {first.name} of rg-day-two",
                f"creates {', '.join(created)}; deletes {len(replay.deleted)}; existing URNs kept",
                f"{first.name}: {before} -> {points(vms[0])}",
                not replay.deleted and not replay.errors and points(vms[0]) == before,
            )
        )

        # 2. remove the last VM of the stack
        gone = vms[-1]
        gone_ref = VmRef.from_id(gone)
        replay = _urn_replay(config, stack, vms, vms[:-1])
        before = points(gone)
        done = VmProtectionProvider.release(api(), gone_ref, "retainData")
        state = api().item_state(gone_ref)
        scenarios.append(
            Scenario(
                f"remove {gone_ref.name}",
                f"deletes {', '.join(sorted(_short(u) for u in replay.deleted))} (item retained in Azure); "
                f"VmProtection: {done}; item {state.protection_state if state else 'gone'}",
                f"{gone_ref.name}: {before} -> {points(gone)}",
                state is not None and state.protection_state == "ProtectionStopped" and points(gone) == before,
            )
        )

        # 3. re-add it
        resumed = VmProtectionProvider.prepare(api(), vault, gone_ref, location, policy_id)
        backup(gone)
        state = api().item_state(gone_ref)
        scenarios.append(
            Scenario(
                f"re-add {gone_ref.name}",
                f"VmProtection: {resumed} -> protection resumed; item {state.protection_state if state else '?'}; "
                "then the item is imported (the program found it in Azure); InitialBackup proves a new point",
                f"{gone_ref.name}: {before} -> {points(gone)}",
                resumed == "stopped" and state is not None and points(gone) == before + 1,
            )
        )

        # 4. a config that asks to unlock a Locked vault
        if vault_cfg.get("immutability") == "Locked":
            olds = {"vaultId": vault.id, "immutability": "Locked", "softDelete": vault_cfg.get("softDelete")}
            failures = VaultLockProvider().check(olds, {**olds, "immutability": "Unlocked"}).failures
            scenarios.append(
                Scenario(
                    "unlock the Locked vault",
                    f"preview fails: {failures[0].reason}" if failures else "preview passes (wrong)",
                    "all: unchanged",
                    bool(failures) and api().vault_settings().immutability == "Locked",
                )
            )
        else:
            done = VaultLockProvider.apply(api(), "Locked", str(vault_cfg.get("softDelete", "AlwaysON")))
            scenarios.append(
                Scenario(
                    "lock the vault",
                    f"VaultLock: {done}; the Vault resource asks for Locked too: no fight",
                    "all: unchanged",
                    api().vault_settings().immutability == "Locked",
                )
            )

        # 5. a VM another vault protects
        create_vault(other)
        stranger = vms[0].replace(first.name, f"{first.name}-elsewhere")
        emu.add_vm(stranger, location)
        protect(other, stranger)
        try:
            VmProtectionProvider.prepare(api(), vault, VmRef.from_id(stranger), location, policy_id)
            scenarios.append(Scenario("add a VM protected elsewhere", "pre-flight passes (wrong)", "-", False))
        except PreflightError as error:
            scenarios.append(Scenario("add a VM protected elsewhere", f"pre-flight fails: {error}", "-", True))

    for number, scenario in enumerate(scenarios, 1):
        out(f"{number}. {scenario.name}: {scenario.up}")
    out(
        render_table(
            ("SCENARIO", "RECOVERY POINTS", "OK"),
            [(s.name, s.points, "ok" if s.ok else "FAILED") for s in scenarios],
        )
    )
    failed = [s.name for s in scenarios if not s.ok]
    out("result: OK: no recovery point or URN lost" if not failed else f"result: FAILED: {', '.join(failed)}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rehearsal.day_two", description=__doc__)
    parser.add_argument("--stack", default="dev", help="stack name: stacks/Pulumi.<stack>.yaml (default dev)")
    args = parser.parse_args(argv)
    return run_day_two(args.stack)


if __name__ == "__main__":
    sys.exit(main())
