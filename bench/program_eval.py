"""Cost of evaluating the program under mocks vs. declaring the raw azure-native resources directly.

Run: ``venv/bin/python -m bench.program_eval`` (``--smoke`` for CI: small N, one repeat;
``--memory-sizes 1000`` adds the table below, about 2 minutes per size; one vault takes at most
1,000 VMs).
Prints, for N VMs sharing one vault, the best-of-R wall time of our program (config parsing,
validation, components) and of a hand-written program registering the same Vault + Policy + N
ProtectedItems, and their ratio (target <= 1.2x). Our program also registers the post-deploy
``InitialBackup`` resource, which a raw program of only those resources does not have; a second
ratio compares against the raw resources plus that same InitialBackup declared directly, i.e. the
cost of our components alone. Then the program's import cost in a fresh interpreter, and how many
``pulumi_azure_native`` modules it loads (target: only recoveryservices).

With ``--memory-sizes``: for each N, our program and the raw resources are each evaluated once in a
fresh interpreter (so each peak is its own): wall time of the evaluation and the process's peak RSS
(``ru_maxrss``), less the RSS after imports and a one-VM warm-up, per VM. Target <= 1.1x raw in both.
Also the seconds each spent in the garbage collector, and both evaluated again with the whole
evaluation under the program's collection setting (``components.program.fewer_collections``): the
program paces its registrations and collects less often while it registers, the raw program does
neither, so the "same GC" ratio separates what the setting buys from the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pulumi
from pulumi_azure_native import recoveryservices as rs

from components.backup_vault import policy_properties, vault_properties
from components.config import parse_stack_settings
from components.initial_backup import InitialBackup
from components.program import deploy, fewer_collections
from testing.mock_preview import evaluate, load_stack_config

ROOT = Path(__file__).resolve().parent.parent

SUB = "00000000-0000-0000-0000-0000000000a1"


def vm_ids(n: int) -> list[str]:
    return [
        f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-{i:04}"
        for i in range(n)
    ]


def config_for(n: int) -> dict[str, str]:
    config = load_stack_config("prod")
    config["protected-vm:vms"] = json.dumps(vm_ids(n))
    return config


def raw_program(config: dict[str, str], with_initial_backup: bool = False) -> Callable[[], None]:
    """The same resources, declared directly: the floor our abstractions are measured against."""
    settings = parse_stack_settings(
        json.loads(config["protected-vm:vault"]),
        json.loads(config["protected-vm:policy"]),
        vm_ids(1),
        json.loads(config["protected-vm:initialBackup"]),
    )
    ids = json.loads(config["protected-vm:vms"])

    def program() -> None:
        vault = rs.Vault(
            "vault",
            vault_name=settings.vault.name,
            resource_group_name=settings.vault.resource_group,
            location="westeurope",
            sku=rs.SkuArgs(name="RS0", tier="Standard"),
            properties=vault_properties(settings.vault),
        )
        policy = rs.ProtectionPolicy(
            "policy",
            policy_name=settings.policy.name,
            vault_name=vault.name,
            resource_group_name=settings.vault.resource_group,
            properties=policy_properties(settings.policy),
        )
        items = []
        for vm_id in ids:
            rg, name = vm_id.split("/")[4], vm_id.split("/")[-1]
            item = rs.ProtectedItem(
                f"{name}-item",
                vault_name=vault.name,
                resource_group_name=settings.vault.resource_group,
                fabric_name="Azure",
                container_name=f"iaasvmcontainer;iaasvmcontainerv2;{rg};{name}",
                protected_item_name=f"vm;iaasvmcontainerv2;{rg};{name}",
                properties=rs.AzureIaaSComputeVMProtectedItemArgs(
                    protected_item_type="Microsoft.Compute/virtualMachines",
                    policy_id=policy.id,
                    source_resource_id=vm_id,
                ),
            )
            items.append(item)
        if with_initial_backup:
            InitialBackup(
                "initial-backup",
                {"vault_id": vault.id, "vm_ids": ids, "settings": settings.initial_backup},
                opts=pulumi.ResourceOptions(depends_on=items),
            )

    return program


def best_of(repeats: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best wall time of each run, the runs interleaved round by round and garbage collected first,
    so drift on a shared machine (other load, heap growth) hits every side alike."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            gc.collect()
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def import_cost() -> tuple[float, list[str], list[str]]:
    """In a fresh interpreter: import time, and which azure-native submodules actually executed
    after the import and after evaluating the dev stack (the rest stay lazy placeholders)."""
    code = (
        "import sys,time\n"
        "def loaded():\n"
        "    import pulumi._utils as u\n"
        "    return ','.join(sorted(k for k,v in list(sys.modules.items()) if k.startswith('pulumi_azure_native.')"
        " and k.count('.')==1 and type(v) is not u._LazyModule))\n"
        "t=time.perf_counter(); import components.program; print(time.perf_counter()-t); print(loaded())\n"
        "from testing.mock_preview import evaluate_stack; evaluate_stack('dev'); print(loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    seconds, at_import, after_eval = out.stdout.strip().splitlines()
    return float(seconds), at_import.split(","), after_eval.split(",")


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            import os

            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class GcClock:
    """Seconds spent in the garbage collector (``gc.callbacks``), by generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


def measure_once(variant: str, n: int) -> None:
    """In a fresh interpreter (``--measure``): one evaluation, printed as JSON (seconds, peak MB,
    seconds in the garbage collector). ``ours`` and ``raw`` as they are; ``ours-gc`` and
    ``raw-gc`` with the whole evaluation under the program's collection setting
    (``components.program.fewer_collections``), so that the two differ by their work only."""
    evaluate(deploy, config_for(1), "prod")  # imports and first-run costs, as in the timing table
    raw_program(config_for(1))
    gc.collect()
    base = _rss_mb()
    config = config_for(n)
    program = deploy if variant.startswith("ours") else raw_program(config)
    clock = GcClock()
    gc.callbacks.append(clock)
    start = time.perf_counter()
    with fewer_collections() if variant.endswith("-gc") else contextlib.nullcontext():
        resources = len(evaluate(program, config, "prod").resources)
    seconds = time.perf_counter() - start
    gc.callbacks.remove(clock)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak,
                "base_mb": base,
                "resources": resources,
                "gc_seconds": sum(clock.seconds),
                "full_collections": clock.collections[2],
            }
        )
    )


def memory_table(sizes: list[int]) -> None:
    print(
        f"{'N':>5}  {'program s':>10}  {'raw s':>8}  {'ratio':>6}  {'program MB':>10}  {'raw MB':>8}  {'ratio':>6}"
        f"  {'MB/VM':>6}  {'raw MB/VM':>9}  {'GC s':>10}  {'same GC: program s':>18}  {'raw s':>6}  {'ratio':>6}"
    )
    for n in sizes:
        found = {}
        for variant in ("ours", "raw", "ours-gc", "raw-gc"):
            out = subprocess.run(
                [sys.executable, "-m", "bench.program_eval", "--measure", f"{variant}:{n}"],
                cwd=ROOT, capture_output=True, text=True, check=True,
            )
            found[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        ours, raw, ours_gc, raw_gc = found["ours"], found["raw"], found["ours-gc"], found["raw-gc"]
        ours_mb, raw_mb = ours["peak_mb"] - ours["base_mb"], raw["peak_mb"] - raw["base_mb"]
        gc_share = f"{ours['gc_seconds']:.1f}/{raw['gc_seconds']:.1f}"
        print(
            f"{n:>5}  {ours['seconds']:>10.2f}  {raw['seconds']:>8.2f}  {ours['seconds'] / raw['seconds']:>5.2f}x"
            f"  {ours['peak_mb']:>10.0f}  {raw['peak_mb']:>8.0f}  {ours['peak_mb'] / raw['peak_mb']:>5.2f}x"
            f"  {ours_mb / n:>6.3f}  {raw_mb / n:>9.3f}  {gc_share:>10}"
            f"  {ours_gc['seconds']:>18.2f}  {raw_gc['seconds']:>6.2f}  {ours_gc['seconds'] / raw_gc['seconds']:>5.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small N, one repeat (CI)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sizes", help="comma-separated N of the timing table (default 1,100,500)")
    parser.add_argument("--memory-sizes", default="", help="comma-separated N of the fresh-process table")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        variant, n = args.measure.split(":")
        measure_once(variant, int(n))
        return
    sizes = [1, 20] if args.smoke else [int(n) for n in (args.sizes or "1,100,500").split(",")]
    repeats = 1 if args.smoke else args.repeats
    evaluate(deploy, config_for(1), "prod")  # warm-up: first-run import and runtime costs are not per-VM
    print(f"{'N':>5}  {'program s':>10}  {'raw s':>8}  {'ratio':>6}  {'raw+IB s':>9}  {'ratio':>6}  resources")
    for n in sizes:
        config = config_for(n)
        counted: list[int] = []

        def ours(config: dict[str, str] = config, counted: list[int] = counted) -> None:
            counted.append(len(evaluate(deploy, config, "prod").resources))

        # Small N runs in milliseconds, where scheduler noise dominates a best of 2: take more.
        tries = repeats if n >= 100 else max(repeats, 10)
        best = best_of(
            tries,
            {
                "ours": ours,
                "raw": functools.partial(evaluate, raw_program(config), config, "prod"),
                "raw+ib": functools.partial(evaluate, raw_program(config, True), config, "prod"),
            },
        )
        ours_s, raw_s, raw_ib_s = best["ours"], best["raw"], best["raw+ib"]
        print(
            f"{n:>5}  {ours_s:>10.3f}  {raw_s:>8.3f}  {ours_s / raw_s:>5.2f}x  {raw_ib_s:>9.3f}  "
            f"{ours_s / raw_ib_s:>5.2f}x  {counted[-1]}"
        )
    seconds, at_import, after_eval = import_cost()
    print(f"import components.program: {seconds:.2f}s")
    print(f"pulumi_azure_native submodules executed after import: {len(at_import)} ({', '.join(at_import)})")
    print(f"... after evaluating the dev stack: {len(after_eval)} ({', '.join(after_eval)}); the other ~250 stay lazy")
    if args.memory_sizes and not args.smoke:
        print()
        print("each evaluated once in a fresh interpreter: peak RSS (ru_maxrss) and MB per VM above the warm start")
        memory_table([int(n) for n in args.memory_sizes.split(",")])


if __name__ == "__main__":
    main()
