"""Job lifecycle, listing, paging and job-level faults as the SDK sees them."""

from __future__ import annotations

import datetime as dt

import pytest

from emulator import KNOWN_JOB_ERRORS

from .conftest import JOB_SECONDS, VAULT, VAULT_RG, Env, container_for, item_for, op_id_from


def _list(env: Env, filter: str | None = None) -> list:
    return list(env.client.backup_jobs.list(VAULT, VAULT_RG, filter=filter))


def test_jobs_list_follows_next_link_across_pages_newest_first(env: Env) -> None:
    env.protect("web01")
    started = []
    for _ in range(12):
        started.append(env.backup_job_id("web01"))
        env.clock.advance(JOB_SECONDS + 1)
    env.emu.reset_counts()
    listed = _list(env, "operation eq 'Backup'")
    assert [j.name for j in listed] == list(reversed(started))
    assert env.emu.counts["jobs.list"] == 3  # page size 5 -> 5 + 5 + 2
    assert all(j.properties.status == "Completed" for j in listed)


def test_jobs_list_filters_by_status_operation_and_management_type(env: Env) -> None:
    env.protect("web01")
    done = env.backup_job_id("web01")
    env.clock.advance(JOB_SECONDS + 1)
    running = env.backup_job_id("web01")
    in_progress = _list(
        env, "backupManagementType eq 'AzureIaasVM' and operation eq 'Backup' and status eq 'InProgress'"
    )
    assert [j.name for j in in_progress] == [running]
    completed_backups = _list(env, "operation eq 'Backup' and status eq 'Completed'")
    assert [j.name for j in completed_backups] == [done]
    configure = _list(env, "operation eq 'ConfigureBackup'")
    assert len(configure) == 1 and configure[0].properties.status == "Completed"


def test_jobs_list_time_window_uses_the_documented_am_pm_format(env: Env) -> None:
    env.protect("web01")
    job_id = env.backup_job_id("web01")
    start = env.job(job_id).properties.start_time
    fmt = "%Y-%m-%d %I:%M:%S %p"
    before, after = start - dt.timedelta(hours=1), start + dt.timedelta(hours=1)
    window = f"startTime eq '{before.strftime(fmt)}' and endTime eq '{after.strftime(fmt)}' and operation eq 'Backup'"
    assert [j.name for j in _list(env, window)] == [job_id]
    later = f"startTime eq '{after.strftime(fmt)}' and endTime eq '{(after + dt.timedelta(hours=1)).strftime(fmt)}'"
    assert _list(env, later) == []
    # Azure's own example writes midnight as "00:00:00 AM"; accept it too.
    assert len(_list(env, "startTime eq '2016-01-01 00:00:00 AM' and operation eq 'Backup'")) == 1


def test_jobs_list_rejects_an_unknown_filter_field(env: Env) -> None:
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as err:
        _list(env, "colour eq 'blue'")
    assert err.value.status_code == 400


def test_failed_job_shows_error_code_and_recommendations_in_job_details(env: Env) -> None:
    env.protect("web01")
    env.emu.faults.fail_next_job("web01", "UserErrorGuestAgentStatusUnavailable")
    job_id = env.backup_job_id("web01")
    assert env.job(job_id).properties.status == "InProgress"
    env.clock.advance(JOB_SECONDS)
    job = env.job(job_id)
    assert job.properties.status == "Failed"
    [error] = job.properties.error_details
    assert error.error_title == "UserErrorGuestAgentStatusUnavailable"
    assert error.error_string == KNOWN_JOB_ERRORS["UserErrorGuestAgentStatusUnavailable"].message
    assert isinstance(error.error_code, int)
    assert any("VM agent" in r for r in error.recommendations)
    assert [t.status for t in job.properties.extended_info.tasks_list] == ["Failed", "NotStarted"]
    item = env.client.protected_items.get(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"))
    assert item.properties["lastBackupStatus"] == "Failed"
    assert item.properties["protectionState"] == "IRPending"
    assert (
        list(env.client.recovery_points.list(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"))) == []
    )
    assert env.emu.jobs[-1].error_code == "UserErrorGuestAgentStatusUnavailable"


def test_fail_next_job_accepts_item_names_and_custom_text(env: Env) -> None:
    env.protect("web01")
    env.emu.faults.fail_next_job(item_for("web01"), "UserErrorVmNotInDesirableState", message="VM is in Failed state")
    job_id = env.backup_job_id("web01")
    env.clock.advance(JOB_SECONDS)
    [error] = env.job(job_id).properties.error_details
    assert error.error_title == "UserErrorVmNotInDesirableState"
    assert error.error_string == "VM is in Failed state"
    assert error.recommendations == KNOWN_JOB_ERRORS["UserErrorVmNotInDesirableState"].recommendations
    second = env.backup_job_id("web01")
    env.clock.advance(JOB_SECONDS)
    assert env.job(second).properties.status == "Completed"


def test_trigger_while_a_backup_runs_fails_the_operation_and_starts_no_job(env: Env) -> None:
    env.protect("web01")
    first = env.backup_job_id("web01")
    headers = env.trigger("web01")
    status = env.client.backup_operation_statuses.get(VAULT, VAULT_RG, op_id_from(headers["Azure-AsyncOperation"]))
    assert status.status == "Failed"
    assert status.error.code == "UserErrorBackupOperationInProgress"
    assert "in progress" in status.error.message
    assert status.properties is None
    item_status = env.client.protected_item_operation_statuses.get(
        VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"), op_id_from(headers["Azure-AsyncOperation"])
    )
    assert item_status.status == "Failed"
    assert [j.job_id for j in env.emu.jobs if j.operation == "Backup"] == [first]
    assert env.emu.trigger_count("web01") == 2


def test_hung_job_stays_in_progress_and_blocks_new_backups(env: Env) -> None:
    env.protect("web01")
    env.emu.faults.hang_next_job("web01")
    job_id = env.backup_job_id("web01")
    env.clock.advance(JOB_SECONDS * 100)
    job = env.job(job_id)
    assert job.properties.status == "InProgress"
    assert job.properties.end_time is None
    assert job.properties.extended_info.progress_percentage == 99.0
    status = env.client.backup_operation_statuses.get(
        VAULT, VAULT_RG, op_id_from(env.trigger("web01")["Azure-AsyncOperation"])
    )
    assert status.error.code == "UserErrorBackupOperationInProgress"


def test_cancelled_and_warning_jobs_end_in_their_states(env: Env) -> None:
    env.protect("web01")
    env.emu.faults.cancel_next_job("web01")
    env.emu.faults.warn_next_job("web01")
    cancelled = env.backup_job_id("web01")
    env.clock.advance(JOB_SECONDS)
    warned = env.backup_job_id("web01")
    env.clock.advance(JOB_SECONDS)
    assert env.job(cancelled).properties.status == "Cancelled"
    assert env.job(warned).properties.status == "CompletedWithWarnings"
    [point] = env.client.recovery_points.list(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"))
    assert point.properties["recoveryPointType"] == "CrashConsistent"


def test_portal_started_job_is_visible_in_progress_and_not_counted_as_a_trigger(env: Env) -> None:
    env.protect("web01")
    job_id = env.emu.start_job("web01")
    [listed] = _list(env, "operation eq 'Backup' and status eq 'InProgress'")
    assert listed.name == job_id
    assert listed.properties.entity_friendly_name == "web01"
    assert env.emu.trigger_count("web01") == 0
    env.clock.advance(JOB_SECONDS)
    assert env.job(job_id).properties.status == "Completed"


def test_job_duration_is_iso8601_and_grows_with_the_clock(env: Env) -> None:
    env.protect("web01")
    job_id = env.backup_job_id("web01")
    env.clock.advance(150.5)
    job = env.job(job_id)
    assert job.properties.duration == dt.timedelta(minutes=2, seconds=30.5)
    status, raw = env.emu.raw_request(
        "GET",
        f"/subscriptions/{env.client._config.subscription_id}/resourceGroups/{VAULT_RG}"
        f"/providers/Microsoft.RecoveryServices/vaults/{VAULT}/backupJobs/{job_id}?api-version=2026-10-01",
    )
    assert status == 200 and raw["properties"]["duration"] == "PT2M30.5S"


def test_operation_stays_in_progress_for_operation_delay_then_reports_the_job() -> None:
    from emulator import Emulator, ManualClock

    from .conftest import SUB, policy_id, vm_id

    clock = ManualClock()
    with Emulator(clock=clock, operation_delay=30, job_duration=60, lro_retry_after=0) as emu:
        emu.create_vault(SUB, VAULT_RG, VAULT)
        emu.add_vm(vm_id("web01"))
        env = Env(emu, clock, emu.client(SUB))
        # The protect LRO would wait for the operation delay too; no polling, the item exists at once.
        env.client.protected_items.begin_create_or_update(
            VAULT,
            VAULT_RG,
            "Azure",
            container_for("web01"),
            item_for("web01"),
            {
                "properties": {
                    "protectedItemType": "Microsoft.Compute/virtualMachines",
                    "sourceResourceId": vm_id("web01"),
                    "policyId": policy_id(),
                }
            },
            polling=False,
        )
        op = op_id_from(env.trigger("web01")["Azure-AsyncOperation"])
        pending = env.client.backup_operation_statuses.get(VAULT, VAULT_RG, op)
        assert pending.status == "InProgress"
        assert pending.properties is None
        clock.advance(30)
        done = env.client.backup_operation_statuses.get(VAULT, VAULT_RG, op)
        assert done.status == "Succeeded"
        assert done.properties.job_id == emu.jobs[-1].job_id


def test_real_time_clock_with_zero_duration_completes_jobs_immediately() -> None:
    from emulator import Emulator

    from .conftest import SUB, vm_id

    with Emulator(job_duration=0.0, lro_retry_after=0) as emu:
        emu.create_vault(SUB, VAULT_RG, VAULT)
        emu.add_vm(vm_id("web01"))
        env = Env(emu, None, emu.client(SUB))  # type: ignore[arg-type]
        env.protect("web01")
        job_id = env.backup_job_id("web01")
        assert env.job(job_id).properties.status == "Completed"
        assert [j.status for j in emu.jobs] == ["Completed", "Completed"]
        assert [j.operation for j in emu.jobs] == ["ConfigureBackup", "Backup"]
