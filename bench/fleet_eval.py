"""A fleet at scale: N VMs over V vaults (one per region, three policy tiers each).

Run: ``venv/bin/python -m bench.fleet_eval`` (``--smoke`` for CI: small N, seconds).

1. **Program evaluation**: the real program under mocks for a fleet of N VMs over V vaults, each size
   in a fresh interpreter: wall time, resources registered and peak RSS; next to the same N VMs in
   one vault (today's single-vault form), so the ratio is what the fleet topology itself costs.
   Then against the raw resources of the same fleet (vaults, policies and items declared directly,
   :func:`raw_fleet_program`): issue 15's target is <= 1.1x in time and peak memory.
2. **Verification**: every vault's real ``InitialBackupProvider.create`` at once (4 at a time, as
   the dynamic provider host runs them) against the embedded emulator with scaled time: wall time
   over one job duration plus one poll (D+P), and ARM requests per VM from the emulator's counters
   (trigger, operation status, recovery-point list; plus the job-list pages per vault and poll).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from components.validation import MAX_VMS_PER_VAULT

ROOT = Path(__file__).resolve().parent.parent

SUB = "00000000-0000-0000-0000-0000000000b1"
REGIONS = (
    "westeurope",
    "northeurope",
    "eastus",
    "eastus2",
    "westus2",
    "centralus",
    "uksouth",
    "francecentral",
    "swedencentral",
    "southeastasia",
)
TIERS: dict[str, dict[str, Any]] = {
    "gold": {
        "type": "Enhanced",
        "instantRestoreDays": 7,
        "schedule": {"frequency": "Hourly", "time": "00:00", "hourlyInterval": 4, "hourlyWindowHours": 24},
        "retention": {"daily": 30, "weekly": {"count": 12}, "monthly": {"count": 12}, "yearly": {"count": 7}},
    },
    "silver": {"type": "Enhanced", "schedule": {"frequency": "Daily", "time": "22:00"}, "retention": {"daily": 30}},
    "bronze": {"type": "Standard", "schedule": {"frequency": "Daily", "time": "23:30"}, "retention": {"daily": 7}},
}
INITIAL_BACKUP = {"verify": "completed", "retainDays": 30, "timeoutMinutes": 240, "pollSeconds": 60}


def fleet_config(n: int, vaults: int) -> dict[str, str]:
    """N VMs round-robin over ``vaults`` vaults, their tiers cycling gold/silver/bronze."""
    keys = [f"r{i:02}" for i in range(vaults)]
    declared = {
        key: {
            "name": f"rsv-bench-{key}",
            "resourceGroup": f"rg-backup-{key}",
            "location": REGIONS[i % len(REGIONS)],
            "policies": {tier: {"name": f"pol-{tier}-{key}", **body} for tier, body in TIERS.items()},
            "defaultPolicy": "silver",
        }
        for i, key in enumerate(keys)
    }
    tiers = list(TIERS)
    vms = []
    for i in range(n):
        key = keys[i % vaults]
        vms.append(
            {
                "id": f"/subscriptions/{SUB}/resourceGroups/rg-app-{key}/providers/Microsoft.Compute/"
                f"virtualMachines/vm-{i:05}",
                "vault": key,
                "policy": tiers[(i // vaults) % len(tiers)],
                "location": REGIONS[keys.index(key) % len(REGIONS)],
            }
        )
    return {
        "azure-native:location": "westeurope",
        "protected-vm:vaults": json.dumps(declared),
        "protected-vm:vms": json.dumps(vms),
        "protected-vm:initialBackup": json.dumps(INITIAL_BACKUP),
    }


def single_vault_config(n: int) -> dict[str, str]:
    from testing.mock_preview import load_stack_config

    config = load_stack_config("prod")
    config["protected-vm:vms"] = json.dumps(
        [
            f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-{i:05}"
            for i in range(n)
        ]
    )
    return config


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raw_fleet_program(config: dict[str, str]) -> Callable[[], None]:
    """The fleet's resources declared directly, as ``bench/program_eval.py``'s raw program does for
    one vault: per vault the Vault and its policies, per VM its ProtectedItem on its policy. No
    component, no VmProtection, no InitialBackup, no lookups, no outputs: the floor."""
    import pulumi_azure_native.recoveryservices as rs

    from components.backup_vault import policy_properties, vault_properties
    from components.program import load_settings

    fleet = load_settings(config).fleet

    def program() -> None:
        for vault in fleet.vaults:
            created = rs.Vault(
                f"{vault.key}-vault",
                vault_name=vault.settings.name,
                resource_group_name=vault.settings.resource_group,
                location=vault.settings.location or "westeurope",
                sku=rs.SkuArgs(name="RS0", tier="Standard"),
                properties=vault_properties(vault.settings),
            )
            policy_ids = {
                policy.key: rs.ProtectionPolicy(
                    f"{vault.key}-policy-{policy.key}",
                    policy_name=policy.settings.name,
                    vault_name=created.name,
                    resource_group_name=vault.settings.resource_group,
                    properties=policy_properties(policy.settings),
                ).id
                for policy in vault.policies
            }
            for vm in fleet.vms_of(vault.key):
                target = vm.target
                rs.ProtectedItem(
                    f"{target.resource_group}-{target.name}-item".lower(),
                    vault_name=created.name,
                    resource_group_name=vault.settings.resource_group,
                    fabric_name="Azure",
                    container_name=target.container_name,
                    protected_item_name=target.protected_item_name,
                    properties=rs.AzureIaaSComputeVMProtectedItemArgs(
                        protected_item_type="Microsoft.Compute/virtualMachines",
                        policy_id=policy_ids[vm.policy],
                        source_resource_id=target.vm_id,
                    ),
                )

    return program


def child(kind: str, n: int, vaults: int) -> dict[str, Any]:
    """One evaluation in this (fresh) interpreter, after a warm-up of the same form (one VM, or one
    VM per vault). ``kind``: ``fleet`` (the program), ``raw`` (:func:`raw_fleet_program` of the same
    fleet) or ``single`` (the program, one vault)."""
    from components.program import deploy
    from testing.mock_preview import evaluate

    if kind == "single":
        evaluate(deploy, single_vault_config(1), "bench")
        config = single_vault_config(n)
        program: Callable[[], object] = deploy
    else:
        warm = fleet_config(vaults, vaults)
        evaluate(deploy if kind == "fleet" else raw_fleet_program(warm), warm, "bench")
        config = fleet_config(n, vaults)
        program = deploy if kind == "fleet" else raw_fleet_program(config)
    before = _rss_mb()
    start = time.perf_counter()
    plan = evaluate(program, config, "bench")
    return {
        "seconds": time.perf_counter() - start,
        "resources": len(plan.resources),
        "peak_rss_mb": _rss_mb(),
        "growth_mb": _rss_mb() - before,
    }


def evaluate_in_child(kind: str, n: int, vaults: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.fleet_eval", "--child", kind, str(n), str(vaults)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def verify(n: int, vaults: int, job_seconds: float, speed: float) -> dict[str, Any]:
    """Every vault's InitialBackupProvider.create() at once against one emulator."""
    from components.initial_backup import InitialBackupProvider
    from emulator import Emulator
    from emulator.seeding import emulator_clock, protect
    from protectedvm.azure_client import BackupApi, make_sdk_client
    from protectedvm.ids import VaultRef, VmRef

    config = fleet_config(n, vaults)
    declared = json.loads(config["protected-vm:vaults"])
    entries = json.loads(config["protected-vm:vms"])
    poll = 30
    with Emulator(job_duration=job_seconds, time_scale=speed, page_size=50) as emu:
        # An ARM without limits, as verify_scale's `none` rows: the emulator does not enforce its buckets
        # here, and the client's pacer mirrors ARM's per-second refill on the real clock, which on this
        # x30 clock would hold 2,000 triggers for 30 x (N - 200) / 10 emulated seconds. ARM's limits are
        # measured by verify_scale's throttled rows (2,000 VMs in ten vaults, paced, on the real clock).
        client = make_sdk_client(
            SUB, emu.credential(), base_url=emu.base_url, connection_verify=emu.ca_path, pacing=False
        )
        runs = []
        for key, vault in declared.items():
            emu.create_vault(SUB, vault["resourceGroup"], vault["name"], location=vault["location"])
            ref = VaultRef(SUB, vault["resourceGroup"], vault["name"])
            runs.append((ref, protect(emu, ref, [e["id"] for e in entries if e["vault"] == key])))
        emu.reset_counts()

        def sleep(seconds: float) -> None:
            time.sleep(max(0.0, seconds) / speed)

        provider = InitialBackupProvider(
            lambda vault: BackupApi(client, vault, sleep=sleep),
            clock=emulator_clock(emu),
            sleep=sleep,
            log_sink=lambda _level, _message: None,
        )
        settings = {**INITIAL_BACKUP, "pollSeconds": poll}

        def create(run: tuple[VaultRef, list[VmRef]]) -> int:
            ref, vms = run
            outs = provider.create({"vaultId": ref.id, "vmIds": [vm.vm_id for vm in vms], "settings": settings}).outs
            return len((outs or {})["results"])

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            verified = sum(pool.map(create, runs))
        wall = (time.perf_counter() - start) * speed
        counts = emu.counts
        client.close()
    per_vm = {route: counts[route] / n for route in ("backup.trigger", "backupOperations.get", "recoveryPoints.list")}
    return {
        "verified": verified,
        "wall_emulated_s": wall,
        "ratio": wall / (job_seconds + poll),
        "per_vm": per_vm,
        "jobs_list": counts["jobs.list"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small N (CI)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "N", "VAULTS"), help=argparse.SUPPRESS)
    parser.add_argument("--no-verify", action="store_true", help="program evaluation only")
    args = parser.parse_args()
    if args.child:
        kind, n, vaults = args.child
        print(json.dumps(child(kind, int(n), int(vaults))))
        return
    sizes = [(20, 2)] if args.smoke else [(200, 10), (2000, 10)]
    print(
        "program evaluation under mocks (fresh interpreter per row); single = today's form, one vault, at most "
        f"{MAX_VMS_PER_VAULT} VMs (Azure's limit), compared per VM"
    )
    print(
        f"{'N':>5}  {'vaults':>6}  {'fleet s':>8}  {'ms/VM':>6}  {'single N':>8}  {'single s':>8}  {'ms/VM':>6}  "
        f"{'ratio':>6}  {'resources':>9}  {'peak RSS MB':>11}  {'growth MB':>9}"
    )
    raws = []
    for n, vaults in sizes:
        ours = evaluate_in_child("fleet", n, vaults)
        m = min(n, MAX_VMS_PER_VAULT)
        single = evaluate_in_child("single", m, 1)
        raws.append((n, vaults, ours, evaluate_in_child("raw", n, vaults)))
        ours_ms, single_ms = 1000 * ours["seconds"] / n, 1000 * single["seconds"] / m
        print(
            f"{n:>5}  {vaults:>6}  {ours['seconds']:>8.2f}  {ours_ms:>6.1f}  {m:>8}  {single['seconds']:>8.2f}  "
            f"{single_ms:>6.1f}  {ours_ms / single_ms:>5.2f}x  {ours['resources']:>9}  {ours['peak_rss_mb']:>11.0f}  "
            f"{ours['growth_mb']:>+9.1f}"
        )
    print()
    print("against the raw resources of the same fleet (vaults, policies, items; fresh interpreter each)")
    print(
        f"{'N':>5}  {'vaults':>6}  {'fleet s':>8}  {'raw s':>7}  {'ratio':>6}  {'peak RSS MB':>11}  {'raw MB':>7}  "
        f"{'ratio':>6}  {'raw resources':>13}"
    )
    for n, vaults, ours, raw in raws:
        print(
            f"{n:>5}  {vaults:>6}  {ours['seconds']:>8.2f}  {raw['seconds']:>7.2f}  "
            f"{ours['seconds'] / raw['seconds']:>5.2f}x  {ours['peak_rss_mb']:>11.0f}  {raw['peak_rss_mb']:>7.0f}  "
            f"{ours['peak_rss_mb'] / raw['peak_rss_mb']:>5.2f}x  {raw['resources']:>13}"
        )
    if args.no_verify:
        return
    print()
    job_seconds, speed = 90.0, 30.0
    print(
        f"verification: every vault's InitialBackup create() at once (4 at a time), D={job_seconds:g} s jobs, "
        f"P=30 s polls, clock x{speed:g}; ARM requests per VM by route"
    )
    print(
        f"{'N':>5}  {'vaults':>6}  {'verified':>8}  {'wall s':>7}  {'wall/(D+P)':>10}  {'trigger':>7}  "
        f"{'op status':>9}  {'RP list':>7}  {'jobs.list':>9}"
    )
    for n, vaults in [(20, 2)] if args.smoke else [(200, 10), (2000, 10)]:
        result = verify(n, vaults, job_seconds, speed)
        per_vm = result["per_vm"]
        print(
            f"{n:>5}  {vaults:>6}  {result['verified']:>8}  {result['wall_emulated_s']:>7.0f}  "
            f"{result['ratio']:>10.2f}  "
            f"{per_vm['backup.trigger']:>7.2f}  {per_vm['backupOperations.get']:>9.2f}  "
            f"{per_vm['recoveryPoints.list']:>7.2f}  {result['jobs_list']:>9}"
        )


if __name__ == "__main__":
    main()
