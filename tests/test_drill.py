"""The restore drill against the HTTPS emulator, through the real SDK, on a ManualClock.

The drill's "sleep" advances the emulator's clock, so 10-minute restore jobs and 30-second polls
cost no wall time while every request (restore POST, job lists, disk list/tag/delete) goes over HTTPS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator, ManualClock
from emulator.compute import Disk
from emulator.seeding import emulator_clock, manual_sleep, protect, vm_ids, with_recovery_points
from protectedvm.azure_client import BackupApi, ComputeApi, make_sdk_client
from protectedvm.cli import build_parser
from protectedvm.drill import (
    DRILL_TAG,
    DrillInputError,
    DrillReport,
    RestoreDrill,
    Staging,
    render_table,
    select_vms,
)
from protectedvm.health import ProtectedVmEntry
from protectedvm.ids import VaultRef, VmRef
from tests.helpers import SUB

VAULT = VaultRef(SUB, "rg-backup", "rsv-test")
STAGING_RG = "rg-drill"
STORAGE = f"/subscriptions/{SUB}/resourceGroups/{STAGING_RG}/providers/Microsoft.Storage/storageAccounts/stdrill"
JOB_SECONDS = 600.0
POLL = 30.0


@dataclass
class Drilled:
    emu: Emulator
    vms: list[VmRef]
    entries: list[ProtectedVmEntry]
    client: object

    def drill(self, sleep: Callable[[float], None] | None = None, **options: float) -> RestoreDrill:
        return RestoreDrill(
            lambda vault: BackupApi(self.client, vault),  # type: ignore[arg-type]
            ComputeApi(self.client),  # type: ignore[arg-type]
            Staging.parse(STAGING_RG, STORAGE),
            poll_seconds=POLL,
            clock=emulator_clock(self.emu),
            sleep=sleep or manual_sleep(self.emu),
            **options,  # type: ignore[arg-type]
        )

    def staging_disks(self) -> list[str]:
        self.emu.state.settle()
        return [disk.name for disk in self.emu.state.compute.disks(SUB, STAGING_RG)]

    def restore_jobs(self) -> list[str]:
        return [job.job_id for job in self.emu.jobs if job.operation == "Restore"]


@pytest.fixture
def env() -> Iterator[Drilled]:
    with Emulator(job_duration=JOB_SECONDS, clock=ManualClock(), page_size=20) as emu:
        vms = protect(emu, VAULT, vm_ids(SUB, "rg-app", 3))
        with_recovery_points(emu, vms)
        client = make_sdk_client(SUB, emu.credential(), base_url=emu.base_url, connection_verify=emu.ca_path)
        try:
            yield Drilled(emu, vms, [ProtectedVmEntry(vm, VAULT) for vm in vms], client)
        finally:
            client.close()


def latest_point(env: Drilled, vm: VmRef) -> str:
    return BackupApi(env.client, VAULT).recovery_points(vm)[0].name  # type: ignore[arg-type]


def test_every_vm_is_restored_verified_and_only_its_restored_disks_are_deleted(env: Drilled) -> None:
    env.emu.state.compute.create_disk(SUB, STAGING_RG, "someone-elses-disk", "westeurope", env.emu.state.now(), None)
    env.emu.reset_counts()

    report = env.drill().run(env.entries)
    counts = env.emu.counts

    assert report.ok and not report.interrupted and report.not_cleaned == []
    assert [row.vm_name for row in report.rows] == ["vm001", "vm002", "vm003"]
    jobs = env.restore_jobs()
    for row, vm in zip(report.rows, env.vms, strict=True):
        assert row.ok and row.status == "Completed" and row.problems == []
        assert row.recovery_point == latest_point(env, vm)
        assert row.restore_job_id in jobs
        assert row.job_seconds == JOB_SECONDS
        # First poll after the 600 s job ends: 20 polls of 30 s.
        assert row.rto_seconds == JOB_SECONDS
        assert row.disks_expected == 2 and len(row.disks_restored) == 2
        # A full-disk backup's point carries no disk configuration: the source VM's count is expected.
        assert (row.disks_expected_from, row.disks_attached) == ("source VM", None)
        assert all(name.startswith(f"{vm.name}_") for name in row.disks_restored)
        assert sorted(row.disks_deleted) == sorted(row.disks_restored)
    # Only the drill's disks went; the unrelated disk in the staging group is untouched.
    assert env.staging_disks() == ["someone-elses-disk"]
    restored = sorted(name for row in report.rows for name in row.disks_restored)
    assert sorted(d.rsplit("/", 1)[-1] for d in env.emu.state.compute.deleted) == restored
    assert counts["restore.trigger"] == 3 and counts["backupOperations.get"] == 3
    assert counts["recoveryPoints.list"] == 3 and counts["compute.vm.get"] == 3
    # One Restore job list per poll for the vault, never a GET per job.
    assert counts["jobs.list"] == 20 and counts["job.get"] == 0
    # Disk lists: leftovers, the pre-restore look, once when the jobs completed, the last look at cleanup.
    assert counts["compute.disks.list"] == 4
    assert counts["compute.disk.patch"] == 6 and counts["compute.disk.delete"] == 6


def test_the_restore_request_is_azures_restore_disks_request(env: Drilled) -> None:
    env.drill().run(env.entries[:1])

    job_id = env.restore_jobs()[0]
    bag = BackupApi(env.client, VAULT).job_property_bag(job_id)  # type: ignore[arg-type]
    assert bag["Job Type"] == "Recover disks"
    assert bag["Target resource group"] == STAGING_RG
    assert bag["Target Storage Account Name"] == "stdrill"
    restore = env.emu.state._restores[job_id]
    target = (restore.target_subscription, restore.target_resource_group, restore.region)
    assert target == (SUB, STAGING_RG, "westeurope")


def test_a_failed_restore_is_reported_with_its_azure_code_and_the_others_still_pass(env: Drilled) -> None:
    env.emu.faults.fail_next_restore("vm002", "UserErrorInstantRpNotFound")

    report = env.drill().run(env.entries)

    assert not report.ok
    failed = report.rows[1]
    assert failed.status == "Failed" and failed.error_code == "UserErrorInstantRpNotFound"
    assert failed.problems == [
        "restore job Failed: UserErrorInstantRpNotFound: Restore failed because the snapshot of the VM was not "
        "found. The snapshot could have been deleted, please check. Recommendations: Try to restore the VM from "
        "a different restore point."
    ]
    assert failed.disks_restored == [] and failed.rto_seconds is None
    assert [row.ok for row in report.rows] == [True, False, True]
    assert env.staging_disks() == []
    table = render_table(report)
    assert "FAIL: restore job Failed: UserErrorInstantRpNotFound" in table
    assert table.splitlines()[-1] == f"drill {report.run_id}: 2 of 3 VM(s) restored and cleaned up, 1 failed"


def test_thresholds_turn_a_slow_restore_and_a_stale_recovery_point_into_failures(env: Drilled) -> None:
    env.emu.clock.advance(30 * 3600)  # type: ignore[attr-defined]

    report = env.drill(max_rto_minutes=5, max_rp_age_hours=24).run(env.entries[:1])

    row = report.rows[0]
    assert not row.ok and row.status == "Completed"
    assert row.problems == [
        "recovery point is 30.0 h old, over --max-rp-age-hours 24",
        "restore took 10.0 min, over --max-rto-minutes 5",
    ]
    assert row.disks_deleted and env.staging_disks() == []


def test_an_interrupted_drill_deletes_the_disks_it_restored(env: Drilled) -> None:
    clock = env.emu.clock

    def sleep_then_interrupt(seconds: float) -> None:
        clock.advance(seconds)  # type: ignore[attr-defined]
        if clock.now() >= JOB_SECONDS:  # the jobs ended; the drill has not looked yet
            raise KeyboardInterrupt

    report = env.drill(sleep=sleep_then_interrupt).run(env.entries[:2])

    assert report.interrupted and not report.ok
    assert all(len(row.disks_deleted) == 2 for row in report.rows)
    assert env.staging_disks() == []
    assert render_table(report).endswith("; interrupted")


def test_a_second_run_removes_leftovers_by_tag_and_refuses_to_restore_over_untagged_disks(env: Drilled) -> None:
    compute, now = env.emu.state.compute, env.emu.state.now()
    leftover = compute.create_disk(SUB, STAGING_RG, "vm001_OsDisk_1_old-1234abcd", "westeurope", now, "Linux")
    leftover.tags = {DRILL_TAG: "20261101T000000Z-deadbeef"}
    compute.create_disk(SUB, STAGING_RG, "vm002_disk2_manual", "westeurope", now, None)

    report = env.drill().run(env.entries)

    assert report.leftovers_deleted == ["vm001_OsDisk_1_old-1234abcd"]
    refused = report.rows[1]
    assert refused.error_code == "StagingNotEmpty" and refused.restore_job_id is None
    assert refused.problems == [
        f"refused: the staging resource group {STAGING_RG} already holds vm002_disk2_manual "
        f"(not tagged {DRILL_TAG}); delete it or use another staging group"
    ]
    assert [row.ok for row in report.rows] == [True, False, True]
    assert env.staging_disks() == ["vm002_disk2_manual"]
    assert len(env.restore_jobs()) == 2


def test_a_disk_whose_tag_changed_is_not_deleted(env: Drilled) -> None:
    """The tag is checked on a fresh read right before each DELETE."""
    drill = env.drill()
    compute = env.emu.state.compute
    original = compute.patch_disk

    def retag(subscription: str, resource_group: str, name: str, body: dict[str, Any]) -> Disk:
        disk = original(subscription, resource_group, name, body)
        if name.startswith("vm001_OsDisk"):
            disk.tags = {**disk.tags, DRILL_TAG: "someone-else"}
        return disk

    compute.patch_disk = retag  # type: ignore[method-assign]
    report = drill.run(env.entries[:1])

    assert [name.split("_")[1] for name in report.not_cleaned] == ["OsDisk"]
    assert report.rows[0].problems == ["not every restored disk was deleted"]
    assert len(env.staging_disks()) == 1


def test_staging_next_to_production_is_refused_before_anything_is_restored(env: Drilled) -> None:
    drill = RestoreDrill(
        lambda vault: BackupApi(env.client, vault),  # type: ignore[arg-type]
        ComputeApi(env.client),  # type: ignore[arg-type]
        Staging.parse("rg-app", STORAGE),
    )
    with pytest.raises(DrillInputError) as error:
        drill.run(env.entries)

    assert str(error.value) == (
        f"--staging-resource-group 'rg-app' holds the stack's VM {env.vms[0].vm_id}: "
        "use a resource group dedicated to restore drills"
    )
    assert env.restore_jobs() == []


# --- sampling ------------------------------------------------------------------------------------


def entries_of(count: int) -> list[ProtectedVmEntry]:
    return [ProtectedVmEntry(VmRef.from_id(vm_id), VAULT) for vm_id in vm_ids(SUB, "rg-app", count)]


def test_the_rotating_sample_drills_every_vm_within_ceil_n_over_sample_weeks() -> None:
    entries = entries_of(7)
    monday = dt.date(2026, 11, 30)
    seen: set[str] = set()
    for week in range(4):  # ceil(7 / 2)
        picked = select_vms(entries, sample=2, today=monday + dt.timedelta(weeks=week))
        assert len(picked) == 2
        seen |= {e.vm.name for e in picked}
    assert seen == {e.vm.name for e in entries}
    # Stable within a week, whatever the input order.
    assert select_vms(entries[::-1], sample=2, today=monday) == select_vms(
        entries, sample=2, today=monday + dt.timedelta(days=6)
    )
    assert len(select_vms(entries, today=monday)) == 1
    # Across a year end (2025 has 52 ISO weeks) the window still moves by one sample per week.
    year_end = [select_vms(entries, today=dt.date(2025, 12, 15) + dt.timedelta(weeks=w))[0] for w in range(7)]
    assert sorted(e.vm.name for e in year_end) == sorted(e.vm.name for e in entries)
    assert select_vms(entries, sample=50, today=monday) == entries


def test_vm_names_pick_vms_and_an_unknown_name_is_an_input_error() -> None:
    entries = entries_of(3)
    assert [e.vm.name for e in select_vms(entries, names=["VM003", entries[0].vm.vm_id])] == ["vm003", "vm001"]
    with pytest.raises(DrillInputError) as error:
        select_vms(entries, names=["vm-nope"])
    assert str(error.value) == "--vm 'vm-nope' is not a VM of the stack outputs; the stack has: vm001, vm002, vm003"


# --- the command line ----------------------------------------------------------------------------


def stack_outputs(tmp_path: Path, env: Drilled) -> str:
    path = tmp_path / "outputs.json"
    path.write_text(
        json.dumps({"protectedVms": [{"vmId": e.vm.vm_id, "vaultId": e.vault.id} for e in env.entries]}),
        encoding="utf-8",
    )
    return str(path)


def run_cli(env: Drilled, *argv: str) -> tuple[int, str, str]:
    args: argparse.Namespace = build_parser().parse_args(["drill", *argv])
    out, err = io.StringIO(), io.StringIO()
    args.stdin, args.stdout, args.stderr = io.StringIO(), out, err
    args.api_factory = lambda vault: BackupApi(env.client, vault)  # type: ignore[arg-type]
    args.disk_api = ComputeApi(env.client)  # type: ignore[arg-type]
    args.clock, args.sleep = emulator_clock(env.emu), manual_sleep(env.emu)
    code = args.handler(args)
    return code, out.getvalue(), err.getvalue()


def test_cli_exit_codes_and_json_report(env: Drilled, tmp_path: Path) -> None:
    outputs = stack_outputs(tmp_path, env)
    base = ["--stack-outputs", outputs, "--staging-resource-group", STAGING_RG, "--staging-storage-account", STORAGE]

    code, out, _ = run_cli(env, *base, "--vm", "vm001", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["ok"] is True and [vm["vm_name"] for vm in document["vms"]] == ["vm001"]
    assert document["vms"][0]["disks_expected"] == 2 and len(document["vms"][0]["disks_deleted"]) == 2

    env.emu.faults.fail_next_restore("vm002", "UserErrorRestoreFailed")
    code, out, _ = run_cli(env, *base, "--vm", "vm002")
    assert code == 1
    assert "FAIL: restore job Failed: UserErrorRestoreFailed" in out

    code, out, err = run_cli(env, *base[:-1], "not-an-id")
    assert (code, out) == (2, "")
    assert err == (
        "error: --staging-storage-account 'not-an-id' is not a storage account id: expected "
        "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>\n"
    )

    code, out, err = run_cli(env, *base, "--vm", "vm404")
    assert (code, out) == (2, "")
    assert err == "error: --vm 'vm404' is not a VM of the stack outputs; the stack has: vm001, vm002, vm003\n"
    assert env.staging_disks() == []


def test_cli_refuses_a_staging_group_holding_the_stack(env: Drilled, tmp_path: Path) -> None:
    code, out, err = run_cli(
        env,
        "--stack-outputs",
        stack_outputs(tmp_path, env),
        "--staging-resource-group",
        f"/subscriptions/{SUB}/resourceGroups/rg-backup",
        "--staging-storage-account",
        STORAGE,
    )
    assert (code, out) == (2, "")
    assert err == (
        f"error: --staging-resource-group 'rg-backup' holds the stack's vault {VAULT.id}: "
        "use a resource group dedicated to restore drills\n"
    )


def test_report_is_not_ok_without_rows() -> None:
    assert not DrillReport("run", []).ok


def test_disks_of_a_restore_still_running_at_interruption_are_named_and_refused_never_deleted(env: Drilled) -> None:
    """The known limit: disks that did not exist when the run was interrupted carry no tag, so the
    next run does not delete them (they might be someone's real restore); it names them instead."""
    clock = env.emu.clock

    def interrupt_early(seconds: float) -> None:
        clock.advance(seconds)  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    first = env.drill(sleep=interrupt_early).run(env.entries[:1])
    assert first.interrupted and first.rows[0].problems == ["interrupted before the restore finished"]
    assert env.staging_disks() == []
    clock.advance(JOB_SECONDS)  # type: ignore[attr-defined]
    stranded = env.staging_disks()
    assert len(stranded) == 2

    second = env.drill().run(env.entries[:1])

    assert second.leftovers_deleted == [] and second.rows[0].error_code == "StagingNotEmpty"
    assert second.rows[0].problems[0].startswith(
        f"refused: the staging resource group {STAGING_RG} already holds {', '.join(sorted(stranded))} "
    )
    assert env.staging_disks() == stranded


def test_disks_a_failed_delete_left_behind_are_removed_by_the_next_run(env: Drilled) -> None:
    env.emu.faults.http("compute.disk.delete", 403, times=2, code="AuthorizationFailed", message="no delete")

    first = env.drill().run(env.entries[:1])

    assert not first.ok and len(first.not_cleaned) == 2
    assert first.rows[0].problems == ["not every restored disk was deleted"]
    assert sorted(env.staging_disks()) == sorted(first.not_cleaned)
    assert render_table(first).splitlines()[-1].endswith(
        f"; NOT deleted (tagged {DRILL_TAG}={first.run_id}): {', '.join(first.not_cleaned)}"
    )

    second = env.drill().run(env.entries[1:2])

    assert second.ok and sorted(second.leftovers_deleted) == sorted(first.not_cleaned)
    assert env.staging_disks() == []


def test_an_azure_error_on_the_staging_group_stops_the_drill_with_its_code_not_a_traceback(
    env: Drilled, tmp_path: Path
) -> None:
    env.emu.faults.http("compute.disks.list", 403, code="AuthorizationFailed", message="The client has no access.")

    code, out, _ = run_cli(
        env,
        "--stack-outputs",
        stack_outputs(tmp_path, env),
        "--staging-resource-group",
        STAGING_RG,
        "--staging-storage-account",
        STORAGE,
    )

    assert code == 1
    assert out.splitlines()[-1].endswith(
        "; drill stopped by an Azure error: AuthorizationFailed: (AuthorizationFailed) The client has no access."
    )
    assert env.restore_jobs() == []


def test_sigterm_during_the_drill_is_an_interrupt_so_cleanup_runs() -> None:
    import os
    import signal

    from protectedvm.drill_cli import _sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), _sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # the handler runs at the next bytecode boundary
            pass
        pytest.fail("SIGTERM did not interrupt the drill")
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_vm_whose_name_prefixes_another_gets_only_its_own_disks() -> None:
    with Emulator(job_duration=JOB_SECONDS, clock=ManualClock(), page_size=20) as emu:
        ids = [
            f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}"
            for name in ("vm-web", "vm-web-2")
        ]
        vms = protect(emu, VAULT, ids)
        with_recovery_points(emu, vms)
        client = make_sdk_client(SUB, emu.credential(), base_url=emu.base_url, connection_verify=emu.ca_path)
        try:
            env = Drilled(emu, vms, [ProtectedVmEntry(vm, VAULT) for vm in vms], client)
            report = env.drill().run(env.entries)
        finally:
            client.close()

    assert report.ok
    for row in report.rows:
        assert len(row.disks_restored) == 2
        assert all(name.startswith(f"{row.vm_name}_") for name in row.disks_restored), row.disks_restored


def test_a_hung_restore_times_out_naming_its_job_and_the_others_are_still_cleaned_up(env: Drilled) -> None:
    env.emu.faults.hang_next_restore("vm001")

    report = env.drill(timeout_minutes=15).run(env.entries[:2])

    hung, done = report.rows
    assert hung.status == "InProgress" and hung.restore_job_id in env.restore_jobs()
    assert hung.problems == [f"restore job {hung.restore_job_id} still InProgress after 15 min"]
    assert done.ok and len(done.disks_deleted) == 2
    assert env.staging_disks() == []


def test_cli_unusable_stack_outputs_and_options_are_one_error_line(env: Drilled, tmp_path: Path) -> None:
    bad = tmp_path / "outputs.json"
    bad.write_text("{not json", encoding="utf-8")
    staging = ["--staging-resource-group", STAGING_RG, "--staging-storage-account", STORAGE]

    code, out, err = run_cli(env, "--stack-outputs", str(bad), *staging)

    assert (code, out) == (2, "")
    assert err == f"error: {bad} is not JSON: Expecting property name enclosed in double quotes at line 1 column 2\n"
    with pytest.raises(SystemExit) as usage:
        build_parser().parse_args(["drill", "--stack-outputs", "-", *staging, "--sample", "0"])
    assert usage.value.code == 2
    assert env.restore_jobs() == []


def test_an_accepted_restore_whose_operation_status_failed_once_is_still_followed_to_its_disks(env: Drilled) -> None:
    env.emu.faults.http("backupOperations.get", 403, code="AuthorizationFailed", message="not now")

    report = env.drill().run(env.entries[:1])

    row = report.rows[0]
    assert row.ok and row.restore_job_id in env.restore_jobs()
    assert len(row.disks_deleted) == 2 and env.staging_disks() == []
    assert env.emu.counts["backupOperations.get"] == 2


def test_the_restore_job_filter_is_the_backup_filter_with_operation_restore() -> None:
    from protectedvm.azure_client import job_filter

    start, end = dt.datetime(2026, 11, 29, 13, 5, tzinfo=dt.UTC), dt.datetime(2026, 11, 29, 15, 0, tzinfo=dt.UTC)
    assert job_filter(start, end, operation="Restore") == (
        "operation eq 'Restore' and backupManagementType eq 'AzureIaasVM'"
        " and startTime eq '2026-11-29 01:05:00 PM' and endTime eq '2026-11-29 03:00:00 PM'"
    )
    assert job_filter(start, end, "InProgress") == job_filter(start, end, "InProgress", "Backup")


# --- selective disk backup -------------------------------------------------------------------

#: Data disk LUN 2 of 3 is excluded: the docs' selective-disk-backup-restore example (4 attached, 3 included).
EXCLUDE_LUN_2 = {"diskLunList": [2], "isInclusionList": False}


@pytest.fixture
def selective() -> Iterator[Drilled]:
    """One VM with an OS disk and 3 data disks, data disk LUN 2 excluded from its backup."""
    with Emulator(job_duration=JOB_SECONDS, clock=ManualClock(), page_size=20) as emu:
        [vm] = protect(emu, VAULT, vm_ids(SUB, "rg-sql", 1, prefix="vm-sql"), disk_exclusion=EXCLUDE_LUN_2)
        emu.state.compute.set_data_disks(vm.vm_id, vm.name, 3)
        with_recovery_points(emu, [vm])
        client = make_sdk_client(SUB, emu.credential(), base_url=emu.base_url, connection_verify=emu.ca_path)
        try:
            yield Drilled(emu, [vm], [ProtectedVmEntry(vm, VAULT)], client)
        finally:
            client.close()


def logged_drill(env: Drilled, lines: list[str]) -> RestoreDrill:
    return RestoreDrill(
        lambda vault: BackupApi(env.client, vault),  # type: ignore[arg-type]
        ComputeApi(env.client),  # type: ignore[arg-type]
        Staging.parse(STAGING_RG, STORAGE),
        poll_seconds=POLL,
        clock=emulator_clock(env.emu),
        sleep=manual_sleep(env.emu),
        log=lines.append,
    )


def test_the_recovery_point_list_gives_the_drill_the_included_disk_count(selective: Drilled, env: Drilled) -> None:
    [point] = BackupApi(selective.client, VAULT).recovery_points(selective.vms[0])  # type: ignore[arg-type]
    assert (point.disks_included, point.disks_attached) == (3, 4)
    full = BackupApi(env.client, VAULT).recovery_points(env.vms[0])  # type: ignore[arg-type]
    assert [(p.disks_included, p.disks_attached) for p in full] == [(None, None)]


def test_a_selective_disk_vm_passes_with_the_disks_its_recovery_point_includes(selective: Drilled) -> None:
    lines: list[str] = []
    report = logged_drill(selective, lines).run(selective.entries)

    [row] = report.rows
    assert report.ok and row.ok and row.problems == []
    assert (row.disks_expected, row.disks_expected_from, row.disks_attached) == (3, "recovery point", 4)
    layout = selective.emu.state.compute.layout(selective.vms[0].vm_id, selective.vms[0].name)
    # The OS disk and data disks LUN 0 and 1 came back; the excluded LUN 2 did not.
    assert sorted(name.rsplit("-", 1)[0] for name in row.disks_restored) == sorted(
        [layout.os_disk, layout.data_disks[0], layout.data_disks[1]]
    )
    assert sorted(row.disks_deleted) == sorted(row.disks_restored) and selective.staging_disks() == []
    assert f"vm-sql001: restore job {row.restore_job_id} Completed, 3 of 3 disk(s) restored " \
        "(selective backup: 3 of 4 attached)" in lines
    assert " 3/3 (4 attached) " in render_table(report)


def test_a_selective_disk_vm_fails_when_fewer_than_its_included_disks_come_back(
    selective: Drilled, monkeypatch: pytest.MonkeyPatch
) -> None:
    compute = selective.emu.state.compute
    layout = compute.layout(selective.vms[0].vm_id, selective.vms[0].name)
    create = compute.create_disk

    def lose_data_disk_1(subscription: str, group: str, name: str, *rest: Any) -> Disk:
        if name.startswith(layout.data_disks[1]):  # Azure "restored" it, but it never shows up
            return Disk(subscription, group, name, "westeurope", 32, None, selective.emu.state.now())
        return create(subscription, group, name, *rest)

    monkeypatch.setattr(compute, "create_disk", lose_data_disk_1)
    report = selective.drill().run(selective.entries)

    [row] = report.rows
    assert not report.ok and row.status == "Completed" and len(row.disks_restored) == 2
    assert row.problems == [
        "restored 2 disk(s) in rg-drill, the recovery point includes 3 (selective backup: 3 of 4 attached)"
    ]
    assert len(row.disks_deleted) == 2 and selective.staging_disks() == []
