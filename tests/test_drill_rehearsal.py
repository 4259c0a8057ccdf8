"""The rehearsal's restore drill step: `make rehearse` drills every VM of the stack against the
emulator, a failed restore is reported with its Azure code, and nothing the drill created survives."""

from __future__ import annotations

import io
import re

from rehearsal.__main__ import options_from_args
from rehearsal.run import JobFault, RehearsalOptions, RehearsalReport, rehearse

PROD_VMS = ["vm-web-prod-01", "vm-web-prod-02", "vm-api-prod-01"]
FAST = 120.0


def run(options: RehearsalOptions) -> tuple[RehearsalReport, str]:
    out = io.StringIO()
    return rehearse(options, out), out.getvalue()


def drill_rows(out: str) -> dict[str, str]:
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("VM ") and "RESTORE JOB" in line)
    rows = {}
    for line in lines[header + 1 :]:
        if not line.startswith("vm-"):
            break
        rows[line.split()[0]] = line
    return rows


def test_prod_rehearsal_drills_every_vm_and_leaves_no_disk() -> None:
    report, out = run(RehearsalOptions(stack="prod", speed=FAST))

    assert report.exit_code == 0, out
    command = "`python -m protectedvm drill --stack-outputs - --staging-resource-group rg-pvm-drill-prod"
    assert f"restore drill: {command}" in out
    rows = drill_rows(out)
    assert sorted(rows) == sorted(PROD_VMS)
    for line in rows.values():
        assert re.search(r"  2/2 +2 +OK$", line), line
    assert re.search(r"drill \S+: 3 of 3 VM\(s\) restored and cleaned up\n", out)
    assert "disks left in rg-pvm-drill-prod after the drill: 0\n" in out
    assert out.rstrip().endswith("result: OK: 3 VM(s) with a verified recovery point, 3 backup(s) triggered in all")


def test_a_failed_restore_fails_the_rehearsal_with_its_azure_code_and_cleans_up() -> None:
    fault = JobFault("vm-web-prod-02", "UserErrorInstantRpNotFound")
    report, out = run(RehearsalOptions(stack="prod", speed=FAST, drill_faults=(fault,)))

    assert report.exit_code == 1 and report.error == "the restore drill failed"
    assert "fault injected: next restore job of vm-web-prod-02 -> UserErrorInstantRpNotFound" in out
    rows = drill_rows(out)
    assert "FAIL: restore job Failed: UserErrorInstantRpNotFound" in rows["vm-web-prod-02"]
    assert rows["vm-web-prod-01"].endswith("OK") and rows["vm-api-prod-01"].endswith("OK")
    assert "disks left in rg-pvm-drill-prod after the drill: 0\n" in out
    assert out.rstrip().endswith("result: FAILED (the scheduled restore drill would exit 1)")


def test_the_drill_step_can_be_skipped_and_faulted_from_the_command_line() -> None:
    options = options_from_args(["--no-drill", "--drill-fault", "vm-a=UserErrorX"])
    assert options.drill is False and options.drill_faults == (JobFault("vm-a", "UserErrorX"),)
    report, out = run(RehearsalOptions(stack="dev", speed=FAST, drill=False))
    assert report.exit_code == 0 and "restore drill" not in out
