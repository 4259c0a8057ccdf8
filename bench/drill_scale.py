"""Wall time and ARM requests of the restore drill at 1 and 50 VMs, against one restore's duration.

Run: ``venv/bin/python -m bench.drill_scale`` (about 1 minute; ``--smoke`` for CI: N=1 and 5, 2 s
restores, 1 s polls, a few seconds). Options: ``--sizes 1,50``, ``--job-seconds 20``,
``--poll-seconds 5``, ``--latency-ms 50``, ``--json PATH``.

Each size gets a fresh local HTTPS emulator on its real-time clock (a "20 s" Restore job takes 20 s),
a vault with N protected VMs that each have a recovery point and two disks (OS + one data disk), and
``--latency-ms`` of server-side delay on every request (bench/verify_scale.py's ``add_latency``: a
modest ARM round trip, which concurrent requests overlap). Then the real
``protectedvm.drill.RestoreDrill`` drills every VM over the real SDK: per VM a recovery point list, a
VM GET (its disk count), the restore POST and one operation status; per poll ONE ``backupJobs`` list
(operation Restore) for the vault; when jobs complete, ONE disk list of the staging group; per
restored disk a tag PATCH, then at cleanup a GET (tag check) and a DELETE.

Reported per N:

* wall time, wall / D (D = one restore's duration: the floor, since all restores run at once) and
  wall / (D + P) (one poll of detection delay allowed). Target: <= 1.10 x (D + P) at every N: a drill of
  50 VMs costs about one restore, not 50;
* ARM requests per VM by route, and the vault-wide lists (job list calls, disk lists, polls).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.verify_scale import add_latency, parse_sizes
from emulator import Emulator
from emulator.seeding import emulator_clock, protect, vm_ids, with_recovery_points
from protectedvm.azure_client import BackupApi, ComputeApi, make_sdk_client
from protectedvm.drill import RestoreDrill, Staging
from protectedvm.health import ProtectedVmEntry
from protectedvm.ids import VaultRef
from rehearsal.table import render_table

SUB = "00000000-0000-0000-0000-0000000000b8"
VAULT = VaultRef(SUB, "rg-backup", "rsv-bench")
STAGING = Staging.parse(
    "rg-drill", f"/subscriptions/{SUB}/resourceGroups/rg-drill/providers/Microsoft.Storage/storageAccounts/stbench"
)
#: Requests made for one VM (or one of its disks); everything else is a vault-wide or group-wide list.
PER_VM_ROUTES = {
    "recoveryPoints.list": "RP list",
    "compute.vm.get": "VM GET",
    "restore.trigger": "restore POST",
    "backupOperations.get": "op status",
    "job.get": "job GET",
    "compute.disk.patch": "disk tag",
    "compute.disk.get": "disk GET",
    "compute.disk.delete": "disk DELETE",
}
LIST_ROUTES = ("jobs.list", "compute.disks.list")
TARGET_RATIO = 1.10


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...]
    job_seconds: float
    poll_seconds: float
    latency_ms: float


@dataclass
class RunReport:
    n: int
    wall_seconds: float
    restored: int
    deleted: int
    ok: int
    per_vm: dict[str, float]
    per_vm_total: float
    lists: dict[str, int]
    polls: int
    left_in_staging: int


def measure(n: int, options: Options) -> RunReport:
    with Emulator(job_duration=options.job_seconds, page_size=50) as emu:
        vms = protect(emu, VAULT, vm_ids(SUB, "rg-app", n))
        with_recovery_points(emu, vms)
        add_latency(emu, options.latency_ms / 1000)
        client = make_sdk_client(SUB, emu.credential(), base_url=emu.base_url, connection_verify=emu.ca_path)
        polls = 0

        def sleep(seconds: float) -> None:
            nonlocal polls
            polls += 1
            time.sleep(seconds)

        drill = RestoreDrill(
            lambda vault: BackupApi(client, vault),
            ComputeApi(client),
            STAGING,
            poll_seconds=options.poll_seconds,
            timeout_minutes=max(5.0, 10 * options.job_seconds / 60),
            clock=emulator_clock(emu),
            sleep=sleep,
            log=lambda _message: None,
        )
        entries = [ProtectedVmEntry(vm, VAULT) for vm in vms]
        emu.reset_counts()
        started = time.monotonic()
        try:
            report = drill.run(entries)
        finally:
            client.close()
        wall = time.monotonic() - started
        counts = emu.counts
        emu.state.settle()
        left = len(emu.state.compute.disks(SUB, STAGING.resource_group))
    per_vm = {route: counts[route] / n for route in PER_VM_ROUTES}
    return RunReport(
        n=n,
        wall_seconds=round(wall, 2),
        restored=sum(len(row.disks_restored) for row in report.rows),
        deleted=sum(len(row.disks_deleted) for row in report.rows),
        ok=sum(row.ok for row in report.rows),
        per_vm=per_vm,
        per_vm_total=round(sum(per_vm.values()), 2),
        lists={route: counts[route] for route in LIST_ROUTES},
        polls=polls,
        left_in_staging=left,
    )


def render(reports: Sequence[RunReport], options: Options) -> str:
    d, p = options.job_seconds, options.poll_seconds
    lines = [
        f"D={d:g} s restore jobs, P={p:g} s polls (D+P={d + p:g} s), 2 disks per VM, "
        f"{options.latency_ms:g} ms added per request",
        render_table(
            (
                *("N", "wall s", "wall/D", "wall/(D+P)", f"<= {TARGET_RATIO:g}"),
                *("VMs ok", "disks restored", "deleted", "left"),
            ),
            [
                (
                    r.n,
                    f"{r.wall_seconds:.1f}",
                    f"{r.wall_seconds / d:.3f}",
                    f"{r.wall_seconds / (d + p):.3f}",
                    "ok" if r.wall_seconds / (d + p) <= TARGET_RATIO else "MISSED",
                    f"{r.ok}/{r.n}",
                    r.restored,
                    r.deleted,
                    r.left_in_staging,
                )
                for r in reports
            ],
        ),
        "",
        "ARM requests per VM by route (emulator counters), and the vault/group-wide lists",
        render_table(
            ("N", *PER_VM_ROUTES.values(), "per-VM total", *LIST_ROUTES, "polls"),
            [
                (
                    r.n,
                    *(f"{r.per_vm[route]:.2f}" for route in PER_VM_ROUTES),
                    f"{r.per_vm_total:.2f}",
                    *(r.lists[route] for route in LIST_ROUTES),
                    r.polls,
                )
                for r in reports
            ],
        ),
        "",
    ]
    missed = [r.n for r in reports if r.wall_seconds / (d + p) > TARGET_RATIO]
    batched = all(r.lists["jobs.list"] <= r.polls + 1 for r in reports)
    lines.append(
        ("targets met: " if not missed and batched else "targets MISSED: ")
        + f"wall/(D+P) <= {TARGET_RATIO:g} at every N"
        + (f" (missed at N={missed})" if missed else "")
        + ", one Restore job list per poll"
        + ("" if batched else " (MISSED)")
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=(1, 50), help="VM counts (default 1,50)")
    parser.add_argument("--job-seconds", type=float, default=20.0, help="restore job duration D (default 20)")
    parser.add_argument("--poll-seconds", type=float, default=5.0, help="poll interval P (default 5)")
    parser.add_argument(
        "--latency-ms", type=float, default=50.0, help="server-side delay added to every request (default 50)"
    )
    parser.add_argument("--smoke", action="store_true", help="CI: N=1 and 5, 2 s restores, 1 s polls")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements to this file")
    args = parser.parse_args(argv)
    if args.smoke:
        options = Options((1, 5), 2.0, 1.0, 10.0)
    else:
        options = Options(tuple(args.sizes), args.job_seconds, args.poll_seconds, args.latency_ms)
    reports = [measure(n, options) for n in options.sizes]
    out(render(reports, options))
    if args.json is not None:
        args.json.write_text(
            json.dumps({"options": asdict(options), "runs": [asdict(r) for r in reports]}, indent=2), encoding="utf-8"
        )
    return 0 if all(r.ok == r.n and r.left_in_staging == 0 for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
