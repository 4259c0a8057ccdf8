"""The offline rehearsal end to end: real program under mocks, real policy pack, real
InitialBackup provider against the embedded HTTPS emulator through the real SDK."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rehearsal.__main__ import REALISTIC_JOB_SECONDS, options_from_args
from rehearsal.run import HttpFault, JobFault, RehearsalOptions, RehearsalReport, rehearse
from testing.mock_preview import STACKS_DIR

ROOT = Path(__file__).resolve().parent.parent
PROD_VMS = ["vm-web-prod-01", "vm-web-prod-02", "vm-api-prod-01"]
#: Emulated seconds per wall second in these tests: prod's 60 s poll is half a wall second.
FAST = 120.0


def run(options: RehearsalOptions) -> tuple[RehearsalReport, str]:
    out = io.StringIO()
    report = rehearse(options, out)
    return report, out.getvalue()


def stack_dir_with(tmp_path: Path, stack: str, edit: dict[str, object]) -> Path:
    """A copy of a real stack file with some config keys replaced (policy checks use the real
    ``policies/config.<stack>.json``)."""
    document = yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text())
    for dotted, value in edit.items():
        node = document["config"]
        *path, last = dotted.split(".")
        for key in path:
            node = node[key]
        node[last] = value
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


def test_make_rehearse_for_dev_prints_plan_policy_result_and_verified_recovery_points() -> None:
    """The README's first command, as CI runs it: a subprocess through ``python -m rehearsal``."""
    completed = subprocess.run(
        [sys.executable, "-m", "rehearsal", "--stack", "dev", "--speed", "90"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = completed.stdout
    assert completed.returncode == 0, out + completed.stderr
    assert "== 1/3 plan: stack dev" in out
    assert "pol-vm-daily-dev: Standard (V1), Daily at 22:00 UTC, instant restore 2d, retention 7d" in out
    assert "== 2/3 policy pack with policies/config.dev.json ==\nno violations" in out
    assert "protection of vm-web-dev-01: IRPending (Azure shows 'Warning (initial backup pending)')" in out
    assert "verified (started): job" in out
    assert "new backup triggers on re-run: 0" in out
    assert out.count("Protected/Completed") == 2
    assert "2 of 2 VM(s) healthy" in out
    assert out.rstrip().endswith("result: OK: 2 VM(s) with a verified recovery point, 2 backup(s) triggered in all")


def test_prod_rehearsal_completes_every_vm_with_a_recovery_point_and_triggers_each_once() -> None:
    report, out = run(RehearsalOptions(stack="prod", speed=FAST))

    assert report.exit_code == 0, out
    assert report.violations == []
    results = list(report.results.values())
    assert [r["vmName"] for r in results] == PROD_VMS
    assert {r["status"] for r in results} == {"Completed"}
    assert all(r["recoveryPointId"] and r["recoveryPointTime"] for r in results)
    assert [r["durationSeconds"] for r in results] == [90.0, 90.0, 90.0]
    assert (report.triggers, report.rerun_triggers) == (3, 0)
    assert "verify=completed" in out and "3 of 3 completed, 0 failed, 0 in progress" in out
    assert re.search(r"InitialBackup \(post-deploy\) +initial-backup +3 VM\(s\): verify completed, retain 30d", out)


def test_failed_and_hung_backups_fail_the_rehearsal_naming_vm_job_and_azure_code() -> None:
    options = RehearsalOptions(
        stack="prod",
        speed=FAST,
        timeout_minutes=5,
        job_faults=(
            JobFault("vm-web-prod-02", "UserErrorGuestAgentStatusUnavailable"),
            JobFault("vm-api-prod-01", "hang"),
        ),
    )
    report, out = run(options)

    assert report.exit_code == 1
    assert report.error is not None
    assert "initial backup of 2 of 3 VM(s) in vault rsv-pvm-prod-weu did not succeed (1 succeeded)" in report.error
    assert "vm-web-prod-02 (job " in report.error
    assert "UserErrorGuestAgentStatusUnavailable: VM Agent unable to communicate with Azure Backup" in report.error
    assert "still running after timeoutMinutes=5 (1)" in report.error
    assert list(report.results) == [
        "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourcegroups/rg-app-prod/providers/"
        "microsoft.compute/virtualmachines/vm-web-prod-01"
    ]
    row = next(line for line in out.splitlines() if line.startswith("vm-web-prod-02 "))
    assert "Failed: UserErrorGuestAgentStatusUnavailable" in row and "IRPending/Failed" in row
    row = next(line for line in out.splitlines() if line.startswith("vm-api-prod-01 "))
    assert "timed out (InProgress)" in row
    assert out.rstrip().endswith(
        "result: FAILED (`pulumi up` would fail the InitialBackup resource with the message above)"
    )
    assert report.triggers == 3


def test_throttled_and_dropped_requests_are_retried_without_a_second_trigger() -> None:
    options = RehearsalOptions(
        stack="dev",
        speed=FAST,
        http_faults=(HttpFault("backup.trigger", 503), HttpFault("jobs.list", 0, times=2)),
    )
    report, out = run(options)

    assert report.exit_code == 0, out
    assert report.triggers == 2
    assert "fault injected: next 1 backup.trigger request(s) -> 503" in out
    assert "fault injected: next 2 jobs.list request(s) -> dropped" in out
    assert {r["status"] for r in report.results.values()} == {"Completed"}


def test_mandatory_policy_violation_stops_the_rehearsal_before_anything_is_deployed(tmp_path: Path) -> None:
    stacks = stack_dir_with(tmp_path, "prod", {"protected-vm:policy.retention.daily": 7})
    report, out = run(RehearsalOptions(stack="prod", stacks_dir=stacks, speed=FAST))

    assert report.exit_code == 1
    # the policy's 7 dailies, then each VM, whose only policy now fails
    assert [v.policy for v in report.violations if v.mandatory] == ["backup-retention"] + ["vm-backup-coverage"] * 3
    assert (
        "properties.retentionPolicy.dailySchedule.retentionDuration.count = 7 days is below this environment's "
        "minimum of 30 days" in out
    )
    assert "mandatory violation(s): `pulumi up` would stop here, before any change." in out
    assert "== 3/3" not in out and report.results == {}


def test_invalid_stack_config_exits_2_listing_each_problem_before_planning(tmp_path: Path) -> None:
    stacks = stack_dir_with(
        tmp_path, "dev", {"protected-vm:policy.retention.daily": 0, "protected-vm:initialBackup.verify": "maybe"}
    )
    report, out = run(RehearsalOptions(stack="dev", stacks_dir=stacks))

    assert report.exit_code == 2
    assert "stack dev has invalid configuration (2 problem(s)):" in out
    assert "  - policy.retention.daily = 0 is out of range: allowed 7-9999 days" in out
    assert "  - initialBackup.verify = 'maybe' is not allowed: choose one of none, started, completed" in out
    assert "== 2/3" not in out


def test_unknown_stack_exits_2_naming_the_known_stacks() -> None:
    report, out = run(RehearsalOptions(stack="qa"))
    assert report.exit_code == 2
    assert "known stacks are dev, fleet, prod, staging" in out


def test_realistic_flag_runs_in_real_time_with_ten_minute_jobs() -> None:
    options = options_from_args(["--stack", "prod", "--realistic"])
    assert (options.stack, options.speed, options.job_seconds) == ("prod", 1.0, REALISTIC_JOB_SECONDS)
    assert options_from_args([]) == RehearsalOptions()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fault", "vm-web-dev-01"], "--fault 'vm-web-dev-01' must be VM=OUTCOME"),
        (["--http-fault", "jobs.lst=429"], "--http-fault 'jobs.lst=429' must be ROUTE=STATUS[xTIMES]"),
        (["--http-fault", "jobs.list=418"], "--http-fault 'jobs.list=418' must be ROUTE=STATUS[xTIMES]"),
        (["--speed", "-1"], "--speed (-1) must be positive"),
    ],
)
def test_bad_rehearsal_arguments_exit_2_with_the_expected_form(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        options_from_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_stack_reusing_an_existing_vault_and_policy_is_rehearsed_against_emulated_existing_ones(
    tmp_path: Path,
) -> None:
    vault_id = (
        "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg-shared"
        "/providers/Microsoft.RecoveryServices/vaults/rsv-shared"
    )
    stacks = stack_dir_with(
        tmp_path,
        "dev",
        {
            "protected-vm:vault": {"existingId": vault_id},
            "protected-vm:policy": {"existingId": f"{vault_id}/backupPolicies/pol-shared"},
        },
    )

    report, out = run(RehearsalOptions(stack="dev", stacks_dir=stacks, speed=FAST))

    assert report.exit_code == 0, out
    assert "vault rsv-shared: existing (reused by the stack), emulated with defaults" in out
    assert "policy pol-shared: existing (reused by the stack), emulated as a copy of DefaultPolicy" in out
    assert "recoveryservices:Vault" not in out
    assert {r["status"] for r in report.results.values()} == {"Completed"}
    assert report.triggers == 2
