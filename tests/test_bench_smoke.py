"""The benchmarks still run: each ``--smoke`` mode in a subprocess, exactly as ``make bench`` runs it.

Only deterministic things are asserted (exit status, table layout, request counts); the timings
and ratios they print are for people, never for asserts.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_verify_scale_smoke_prints_both_tables_and_the_verifier_stays_at_two_requests_per_vm_throttled_or_not(
    tmp_path: Path,
) -> None:
    report = tmp_path / "verify_scale.json"
    done = run_bench("-m", "bench.verify_scale", "--smoke", "--json", str(report))

    assert done.returncode == 0, done.stderr
    out = done.stdout
    for header in ("wall/floor", "429s", "failed", "peak RSS MB", "trigger", "op status", "RP list", "all per VM"):
        assert header in out
    assert "jobs.list" in out and "list pages/poll" in out
    rows = [line.split()[:3] for line in out.splitlines() if line.split()[:1] in (["verifier"], ["baseline"])]
    expected = [["verifier", "1", "none"], ["baseline", "1", "none"], ["verifier", "10", "none"]]
    expected += [["baseline", "10", "none"], ["verifier", "10x2", "throttled"]]
    assert rows == expected * 2  # the time table, then the request table
    assert out.strip().splitlines()[-1].startswith("targets ")

    document = json.loads(report.read_text())
    page_size = document["options"]["page_size"]
    runs = {(r["path"], r["n"], r["throttled"]): r for r in document["runs"]}
    assert set(runs) == {
        ("verifier", 1, False), ("verifier", 10, False), ("baseline", 1, False), ("baseline", 10, False),
        ("verifier", 10, True),
    }
    for n in (1, 10):
        verifier, baseline = runs["verifier", n, False], runs["baseline", n, False]
        assert verifier["statuses"] == {"Completed": n} and baseline["statuses"] == {"Completed": n}
        # The verifier: one trigger and one recovery point list per VM; its jobs are found in the batched
        # job list, so no operation status and no job GET.
        assert verifier["per_vm"] == {
            "backup.trigger": 1.0,
            "backupOperations.get": 0.0,
            "job.get": 0.0,
            "recoveryPoints.list": 1.0,
        }
        assert verifier["other_requests"] == {}
        assert verifier["polls"] >= 1
        assert verifier["list_pages_per_poll"] <= math.ceil(n / page_size)
        assert verifier["failed_vms"] == 0 and verifier["throttled_429s"] == 0
        # The CLI loop: the same trigger, but job GETs instead of the batched list (and no recovery point).
        assert baseline["per_vm"]["backup.trigger"] == 1.0
        assert baseline["per_vm"]["job.get"] >= 2.0
        assert baseline["jobs_list_requests"] == 0 and baseline["polls"] is None
    # Ten VMs in two vaults under ARM's buckets shrunk to writes 4 +5/s: every VM verified, none failed.
    throttled = runs["verifier", 10, True]
    assert (throttled["vaults"], throttled["statuses"], throttled["failed_vms"]) == (2, {"Completed": 10}, 0)
    assert throttled["per_vm"]["recoveryPoints.list"] == 1.0


def test_program_eval_smoke_prints_the_ratio_table_and_the_lazy_import_lines() -> None:
    done = run_bench("-m", "bench.program_eval", "--smoke")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["N", "program", "s", "raw", "s", "ratio", "raw+IB", "s", "ratio", "resources"]
    assert [line.split()[0] for line in lines[1:3]] == ["1", "20"]
    assert lines[3].startswith("import components.program: ")
    assert lines[4].startswith("pulumi_azure_native submodules executed after import: ")
    assert lines[5].startswith("... after evaluating the dev stack: ")


def test_drill_scale_smoke_drills_every_vm_with_one_job_list_per_poll_and_leaves_nothing(tmp_path: Path) -> None:
    report = tmp_path / "drill_scale.json"
    done = run_bench("-m", "bench.drill_scale", "--smoke", "--json", str(report))

    assert done.returncode == 0, done.stderr
    out = done.stdout
    for header in ("wall/(D+P)", "VMs ok", "disks restored", "restore POST", "disk DELETE", "per-VM total", "polls"):
        assert header in out
    assert out.strip().splitlines()[-1].startswith("targets ")
    document = json.loads(report.read_text())
    runs = {r["n"]: r for r in document["runs"]}
    assert sorted(runs) == [1, 5]
    for n, run in runs.items():
        assert (run["ok"], run["restored"], run["deleted"], run["left_in_staging"]) == (n, 2 * n, 2 * n, 0)
        # Per VM: RP list, VM GET, restore POST, op status; per disk: tag, GET (tag check), DELETE.
        assert run["per_vm"] == {
            "recoveryPoints.list": 1.0,
            "compute.vm.get": 1.0,
            "restore.trigger": 1.0,
            "backupOperations.get": 1.0,
            "job.get": 0.0,
            "compute.disk.patch": 2.0,
            "compute.disk.get": 2.0,
            "compute.disk.delete": 2.0,
        }
        # One Restore job list per poll for the vault, whatever N; disk lists: leftovers, before,
        # after the jobs completed, last look at cleanup.
        assert run["lists"]["jobs.list"] == run["polls"]
        assert run["lists"]["compute.disks.list"] == 4
