"""The trigger-and-verify core against the HTTPS emulator, through the real SDK.

Most tests run the emulator on a ManualClock and let the verifier's "sleep" advance it, so a
"2 minute" backup job and a "30 second" poll cost no wall time while every request still goes over
HTTPS through the SDK's pipeline (retries, paging, headers).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import pytest
from azure.core.pipeline.transport import RequestsTransport

from components.config import InitialBackupSettings
from emulator import Emulator, ManualClock
from emulator.seeding import emulator_clock, manual_sleep, protect, vm_ids
from protectedvm.azure_client import (
    CA_BUNDLE_ENV,
    ENDPOINT_ENV,
    BackupApi,
    JobInfo,
    OperationInfo,
    RetrySettings,
    make_sdk_client,
)
from protectedvm.ids import VaultRef, VmRef
from protectedvm.verifier import InitialBackupError, InitialBackupVerifier, VmResult
from tests.helpers import SUB

VAULT = VaultRef(SUB, "rg-backup", "rsv-test")
JOB_SECONDS = 120.0
POLL = 30
#: How long trigger operations stay InProgress in the ``slow_ops_emu`` tests (less than one poll).
OPERATION_DELAY = 3.0
#: Exact delays (no jitter) so tests can assert what was slept.
FAST = RetrySettings(
    sdk_total=5, backoff_factor=0.01, backoff_max=0.05, max_retry_after=5.0, trigger_attempts=4, jitter=0.0
)


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(job_duration=JOB_SECONDS, clock=ManualClock(), page_size=20) as emulator:
        monkeypatch.setenv(ENDPOINT_ENV, emulator.base_url)
        monkeypatch.setenv(CA_BUNDLE_ENV, emulator.ca_path)
        yield emulator


@pytest.fixture
def slow_ops_emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """Trigger operations stay InProgress for OPERATION_DELAY seconds (their job exists at once)."""
    with Emulator(
        job_duration=JOB_SECONDS, clock=ManualClock(), page_size=20, operation_delay=OPERATION_DELAY
    ) as emulator:
        monkeypatch.setenv(ENDPOINT_ENV, emulator.base_url)
        monkeypatch.setenv(CA_BUNDLE_ENV, emulator.ca_path)
        yield emulator


@pytest.fixture
def transport_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """What the SDK's retry policy slept (Retry-After or backoff), recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(RequestsTransport, "sleep", lambda self, seconds: slept.append(float(seconds)))
    return slept


def settings(verify: str = "completed", timeout_minutes: int = 30, poll_seconds: int = POLL) -> InitialBackupSettings:
    return InitialBackupSettings(
        verify=verify,  # type: ignore[arg-type]
        retain_days=30,
        timeout_minutes=timeout_minutes,
        poll_seconds=poll_seconds,
    )


def verifier(
    emu: Emulator,
    config: InitialBackupSettings,
    app_sleeps: list[float] | None = None,
    *,
    api: BackupApi | None = None,
    verifier_sleeps: list[float] | None = None,
) -> InitialBackupVerifier:
    """``app_sleeps``: what BackupApi's own retries slept; ``verifier_sleeps``: what the verifier slept."""
    advance = manual_sleep(emu)

    def sleep(seconds: float) -> None:
        if app_sleeps is not None:
            app_sleeps.append(seconds)
        advance(seconds)

    def verifier_sleep(seconds: float) -> None:
        if verifier_sleeps is not None:
            verifier_sleeps.append(seconds)
        advance(seconds)

    api = api or BackupApi(make_sdk_client(SUB, retry=FAST), VAULT, retry=FAST, sleep=sleep)
    return InitialBackupVerifier(
        api,
        config,
        vault_name=VAULT.name,
        clock=emulator_clock(emu),
        sleep=verifier_sleep,
    )


class ScriptedApi(BackupApi):
    """The real client (SDK, HTTPS, emulator) with test hooks: job lists that take emulated time, as
    a big paged list does (``list_seconds``, per call in order), with the emulator time of every
    list call recorded; jobs a list does not show (yet); and trigger operations of some VMs that end
    Failed with an error code instead of naming a job."""

    def __init__(
        self,
        emu: Emulator,
        *,
        list_seconds: Sequence[float] = (),
        hide: Callable[[JobInfo], bool] = lambda job: False,
        fail_operations_of: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(make_sdk_client(SUB, retry=FAST), VAULT, retry=FAST, sleep=manual_sleep(emu))
        self.emu = emu
        self.list_seconds = list(list_seconds)
        self.list_times: list[dt.datetime] = []
        self.hide = hide
        self.fail_operations_of = dict(fail_operations_of or {})
        self.operation_vm: dict[str, str] = {}

    def trigger_backup(self, vm: VmRef, expiry: dt.datetime) -> str:
        operation_id = super().trigger_backup(vm, expiry)
        self.operation_vm[operation_id] = vm.name
        return operation_id

    def operation_status(self, operation_id: str) -> OperationInfo:
        op = super().operation_status(operation_id)
        code = self.fail_operations_of.get(self.operation_vm.get(operation_id, ""))
        if code and op.status != "InProgress":
            return OperationInfo("Failed", error_code=code, error_message="VM is not in a state that allows backups.")
        return op

    def list_backup_jobs(
        self,
        start: dt.datetime,
        end: dt.datetime,
        status: str | None = None,
        on_page: Callable[[list[JobInfo]], None] | None = None,
    ) -> list[JobInfo]:
        self.list_times.append(self.emu.state.now())
        jobs = super().list_backup_jobs(start, end, status)
        self.emu.clock.advance(self.list_seconds.pop(0) if self.list_seconds else 0.0)  # type: ignore[attr-defined]
        shown = [job for job in jobs if not self.hide(job)]
        if on_page is not None:
            on_page(shown)  # the whole list as one page, after its emulated time
        return shown

    def poll_offsets(self, pre_trigger_lists: int = 2) -> list[float]:
        """Seconds from the first poll's job list to each poll's (after the pre-trigger look)."""
        polls = self.list_times[pre_trigger_lists:]
        return [(t - polls[0]).total_seconds() for t in polls]


def backup_jobs(emu: Emulator) -> dict[str, str]:
    return {j.vm_name: j.job_id for j in emu.jobs if j.operation == "Backup"}


def setup_vms(emu: Emulator, count: int, rg: str = "rg-app") -> list[VmRef]:
    vms = protect(emu, VAULT, vm_ids(SUB, rg, count))
    emu.reset_counts()
    return vms


def test_one_vm_completed_mode_records_job_recovery_point_time_and_duration(emu: Emulator) -> None:
    [vm] = setup_vms(emu, 1)
    results = verifier(emu, settings()).run([vm])

    result = results[vm.vm_id.lower()]
    [job] = [j for j in emu.jobs if j.operation == "Backup"]
    assert result.job_id == job.job_id
    assert result.status == "Completed"
    assert result.recovery_point_id is not None
    assert result.recovery_point_id.lower().startswith(
        f"{VAULT.id}/backupFabrics/Azure/protectionContainers/{vm.container_name}/protectedItems/"
        f"{vm.protected_item_name}/recoveryPoints/".lower()
    )
    assert result.recovery_point_time == job.start_time.isoformat().replace("+00:00", "Z")
    assert result.duration_seconds == JOB_SECONDS
    assert result.triggered_at == job.start_time.isoformat().replace("+00:00", "Z")
    assert result.adopted is False
    assert emu.trigger_count("vm001") == 1


def test_fifty_vms_cost_one_trigger_and_one_recovery_point_list_each_and_no_operation_status_or_job_gets(
    emu: Emulator,
) -> None:
    vms = setup_vms(emu, 50)
    results = verifier(emu, settings()).run(vms)

    assert sorted(results) == sorted(vm.vm_id.lower() for vm in vms)
    assert {r.status for r in results.values()} == {"Completed"}
    assert all(r.recovery_point_id for r in results.values())
    counts = emu.counts
    assert counts["backup.trigger"] == 50
    # Each VM's job is in the first poll's list, running since its POST: no operation status needed.
    assert counts["backupOperations.get"] == 0
    assert counts["recoveryPoints.list"] == 50
    assert counts["job.get"] == 0
    # One paged list per poll (50 jobs / 20 per page = 3 pages), plus two empty pages for the pre-trigger look.
    polls = math.ceil(JOB_SECONDS / POLL) + 1
    assert counts["jobs.list"] <= 2 + polls * 3
    assert set(counts) <= {"backup.trigger", "recoveryPoints.list", "jobs.list"}
    assert all(emu.trigger_count(vm.name) == 1 for vm in vms)


def test_verify_none_triggers_and_records_job_ids_without_polling_jobs_or_recovery_points(emu: Emulator) -> None:
    vms = setup_vms(emu, 3)
    results = verifier(emu, settings("none")).run(vms)

    assert {r.status for r in results.values()} == {"Triggered"}
    assert {r.job_id for r in results.values()} == {j.job_id for j in emu.jobs if j.operation == "Backup"}
    assert all(r.recovery_point_id is None for r in results.values())
    assert emu.counts["recoveryPoints.list"] == 0
    assert emu.counts["jobs.list"] == 2  # the pre-trigger look only: running jobs, and the last day's jobs
    assert {j.status for j in emu.jobs if j.operation == "Backup"} == {"InProgress"}


def test_verify_started_returns_while_the_jobs_are_still_in_progress(emu: Emulator) -> None:
    vms = setup_vms(emu, 3)
    results = verifier(emu, settings("started")).run(vms)

    assert {r.status for r in results.values()} == {"InProgress"}
    assert all(r.job_id for r in results.values())
    assert {j.status for j in emu.jobs if j.operation == "Backup"} == {"InProgress"}
    assert emu.counts["recoveryPoints.list"] == 0


def test_completed_with_warnings_counts_as_completed_when_its_recovery_point_exists(emu: Emulator) -> None:
    vms = setup_vms(emu, 2)
    emu.faults.warn_next_job("vm002")
    results = verifier(emu, settings()).run(vms)

    assert results[vms[1].key].status == "CompletedWithWarnings"
    assert results[vms[1].key].recovery_point_id
    assert results[vms[0].key].status == "Completed"


def test_failed_jobs_are_collected_into_one_error_with_vm_job_code_message_and_recommendations(emu: Emulator) -> None:
    vms = setup_vms(emu, 4)
    emu.faults.fail_next_job("vm002", "UserErrorGuestAgentStatusUnavailable")
    emu.faults.fail_next_job("vm004", "UserErrorVmNotInDesirableState")

    with pytest.raises(InitialBackupError) as caught:
        verifier(emu, settings()).run(vms)

    error = caught.value
    jobs = {j.vm_name: j.job_id for j in emu.jobs if j.operation == "Backup"}
    assert [(f.vm_name, f.job_id, f.code) for f in error.failures] == [
        ("vm002", jobs["vm002"], "UserErrorGuestAgentStatusUnavailable"),
        ("vm004", jobs["vm004"], "UserErrorVmNotInDesirableState"),
    ]
    assert error.failures[0].message == "VM Agent unable to communicate with Azure Backup"
    assert error.failures[0].recommendations[0] == (
        "Ensure that the VM agent is installed, running and up to date on the virtual machine."
    )
    text = str(error)
    assert "2 of 4 VM(s) in vault rsv-test did not succeed (2 succeeded)" in text
    assert f"vm002 (job {jobs['vm002']}): UserErrorGuestAgentStatusUnavailable: VM Agent unable" in text
    assert "VM is not in a state that allows backups." in text
    assert "wait for the state to change and then trigger the backup job" in text
    # The others settled and were verified before the error was raised.
    assert sorted(error.results) == [vms[0].key, vms[2].key]
    assert {r.status for r in error.results.values()} == {"Completed"}


def test_cancelled_job_fails_the_vm(emu: Emulator) -> None:
    [vm] = setup_vms(emu, 1)
    emu.faults.cancel_next_job("vm001")
    with pytest.raises(InitialBackupError) as caught:
        verifier(emu, settings()).run([vm])
    [failure] = caught.value.failures
    assert (failure.vm_name, failure.code) == ("vm001", "JobCancelled")


def test_backup_already_running_from_the_portal_is_adopted_without_triggering(emu: Emulator) -> None:
    vms = setup_vms(emu, 2)
    portal_job = emu.start_job("vm001")

    results = verifier(emu, settings()).run(vms)

    assert results[vms[0].key].job_id == portal_job
    assert results[vms[0].key].adopted is True
    assert results[vms[0].key].status == "Completed"
    assert emu.trigger_count("vm001") == 0
    assert emu.trigger_count("vm002") == 1
    assert results[vms[1].key].adopted is False


def test_backup_running_for_days_is_adopted_and_waited_for(emu: Emulator) -> None:
    [vm] = setup_vms(emu, 1)
    long_job = emu.start_job("vm001", duration=4 * 86400.0)
    emu.clock.advance(3 * 86400.0)  # type: ignore[attr-defined]

    results = verifier(emu, settings(timeout_minutes=2 * 1440, poll_seconds=3600)).run([vm])

    assert (results[vm.key].job_id, results[vm.key].status, results[vm.key].adopted) == (long_job, "Completed", True)
    assert results[vm.key].duration_seconds == 4 * 86400.0
    assert emu.trigger_count("vm001") == 0


def test_trigger_failing_with_backup_operation_in_progress_adopts_the_running_job(emu: Emulator) -> None:
    vms = setup_vms(emu, 1)
    portal_job = emu.start_job("vm001")
    emu.clock.advance(60)  # type: ignore[attr-defined]  # started a minute before our trigger
    # The pre-trigger look fails (non-retryable), so only the trigger's own answer reveals the running job.
    emu.faults.http("jobs.list", 400, code="BadRequest")

    results = verifier(emu, settings()).run(vms)

    assert emu.trigger_count("vm001") == 1  # the POST went out and Azure refused to start a second job
    assert len([j for j in emu.jobs if j.operation == "Backup"]) == 1
    assert results[vms[0].key].job_id == portal_job
    assert results[vms[0].key].adopted is True
    assert results[vms[0].key].status == "Completed"


def test_trigger_racing_a_days_old_running_backup_still_finds_and_adopts_it(emu: Emulator) -> None:
    [vm] = setup_vms(emu, 1)
    long_job = emu.start_job("vm001", duration=4 * 86400.0)
    emu.clock.advance(3 * 86400.0)  # type: ignore[attr-defined]
    emu.faults.http("jobs.list", 400, code="BadRequest")  # no pre-trigger look

    results = verifier(emu, settings(timeout_minutes=2 * 1440, poll_seconds=3600)).run([vm])

    assert (results[vm.key].job_id, results[vm.key].adopted) == (long_job, True)
    assert emu.trigger_count("vm001") == 1
    assert len([j for j in emu.jobs if j.operation == "Backup"]) == 1


def test_429_with_retry_after_on_trigger_is_retried_after_the_advertised_delay(
    emu: Emulator, transport_sleeps: list[float]
) -> None:
    [vm] = setup_vms(emu, 1)
    emu.faults.http("backup.trigger", 429, retry_after=3)

    results = verifier(emu, settings()).run([vm])

    assert transport_sleeps == [3.0]
    assert emu.counts["backup.trigger"] == 2
    assert emu.trigger_count("vm001") == 1
    assert results[vm.key].status == "Completed"


def test_429_without_retry_after_on_trigger_is_retried_by_us_with_backoff(
    emu: Emulator, transport_sleeps: list[float]
) -> None:
    [vm] = setup_vms(emu, 1)
    emu.faults.http("backup.trigger", 429, times=2)
    app_sleeps: list[float] = []

    results = verifier(emu, settings(), app_sleeps).run([vm])

    # The SDK never retries a POST on 429 without Retry-After; our bounded backoff does.
    assert transport_sleeps == []
    assert app_sleeps[:2] == [FAST.backoff_factor, FAST.backoff_factor * 2]
    assert emu.counts["backup.trigger"] == 3
    assert emu.trigger_count("vm001") == 1
    assert results[vm.key].status == "Completed"


def test_throttling_longer_than_a_count_of_attempts_is_ridden_out_while_time_remains(emu: Emulator) -> None:
    [vm] = setup_vms(emu, 1)
    throttled = 3 * FAST.trigger_attempts  # the old count of attempts would have failed the VM
    emu.faults.http("backup.trigger", 429, times=throttled)  # no Retry-After: our jittered backoff retries
    app_sleeps: list[float] = []

    results = verifier(emu, settings(), app_sleeps).run([vm])

    assert results[vm.key].status == "Completed"
    assert emu.counts["backup.trigger"] == throttled + 1
    assert emu.trigger_count("vm001") == 1
    assert len(app_sleeps) == throttled


def test_throttling_that_never_ends_fails_the_vm_when_timeout_minutes_runs_out(emu: Emulator) -> None:
    [vm] = setup_vms(emu, 1)
    emu.faults.http("backup.trigger", 429, times=10**6)
    slow = RetrySettings(sdk_total=0, backoff_factor=4.0, backoff_max=16.0, jitter=0.0)
    app_sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        app_sleeps.append(seconds)
        manual_sleep(emu)(seconds)

    api = BackupApi(make_sdk_client(SUB, retry=slow), VAULT, retry=slow, sleep=sleep)
    with pytest.raises(InitialBackupError) as caught:
        verifier(emu, settings(timeout_minutes=1), api=api).run([vm])

    # Backoff 4, 8, 16, 16 s (44 s); the next 16 s would end past the minute: the VM fails then, not before.
    assert app_sleeps == [4.0, 8.0, 16.0, 16.0]
    assert emu.counts["backup.trigger"] == 5
    [failure] = caught.value.failures
    assert (failure.vm_name, failure.job_id, failure.code) == ("vm001", None, "TooManyRequests")


def test_retry_after_beyond_the_bound_is_not_slept_on(emu: Emulator, transport_sleeps: list[float]) -> None:
    [vm] = setup_vms(emu, 1)
    emu.faults.http("backup.trigger", 429, retry_after=3600)

    with pytest.raises(InitialBackupError) as caught:
        verifier(emu, settings()).run([vm])

    assert transport_sleeps == []
    assert emu.counts["backup.trigger"] == 1
    assert caught.value.failures[0].code == "TooManyRequests"


def test_500_and_503_on_every_call_are_retried_by_the_sdk(emu: Emulator, transport_sleeps: list[float]) -> None:
    [vm] = setup_vms(emu, 1)
    emu.faults.http("backup.trigger", 500)
    emu.faults.http("jobs.list", 503, retry_after=1)
    emu.faults.http("jobs.list", 503, times=2)
    emu.faults.http("recoveryPoints.list", 500)

    results = verifier(emu, settings()).run([vm])

    assert results[vm.key].status == "Completed"
    assert emu.trigger_count("vm001") == 1
    assert 1.0 in transport_sleeps  # the 503's Retry-After
    assert emu.counts["backup.trigger"] == 2
    assert emu.counts["recoveryPoints.list"] == 2


def test_dropped_connection_on_trigger_is_retried_once_and_starts_one_job(emu: Emulator) -> None:
    [vm] = setup_vms(emu, 1)
    emu.faults.drop("backup.trigger")

    results = verifier(emu, settings()).run([vm])

    assert emu.counts["backup.trigger"] == 2
    assert emu.trigger_count("vm001") == 1
    assert len([j for j in emu.jobs if j.operation == "Backup"]) == 1
    assert results[vm.key].status == "Completed"


def test_dropped_connections_on_status_list_and_recovery_point_calls_are_survived(emu: Emulator) -> None:
    [vm] = setup_vms(emu, 1)
    emu.faults.drop("backupOperations.get", times=5)  # beyond the SDK's read retries: job found via the list
    emu.faults.drop("jobs.list", times=2)
    emu.faults.drop("recoveryPoints.list")

    results = verifier(emu, settings()).run([vm])

    [job] = [j for j in emu.jobs if j.operation == "Backup"]
    assert results[vm.key].job_id == job.job_id
    assert results[vm.key].status == "Completed"
    assert results[vm.key].recovery_point_id
    assert emu.trigger_count("vm001") == 1


def test_hung_job_times_out_naming_the_vm_and_job_then_the_next_run_waits_on_it_without_triggering(
    emu: Emulator,
) -> None:
    vms = setup_vms(emu, 3)
    emu.faults.hang_next_job("vm002")

    with pytest.raises(InitialBackupError) as caught:
        verifier(emu, settings(timeout_minutes=10)).run(vms)

    hung = next(j.job_id for j in emu.jobs if j.vm_name == "vm002" and j.operation == "Backup")
    [timeout] = caught.value.timeouts
    assert (timeout.vm_name, timeout.job_id, timeout.status) == ("vm002", hung, "InProgress")
    assert caught.value.failures == []
    assert sorted(caught.value.results) == [vms[0].key, vms[2].key]
    assert "still running after timeoutMinutes=10 (1)" in str(caught.value)
    assert f"vm002 (job {hung}, last status InProgress)" in str(caught.value)

    # Next `pulumi up` (create failed, so no state): adopt the running job and the completed ones.
    with pytest.raises(InitialBackupError) as again:
        verifier(emu, settings(timeout_minutes=5)).run(vms)
    assert [t.job_id for t in again.value.timeouts] == [hung]
    assert [emu.trigger_count(vm.name) for vm in vms] == [1, 1, 1]
    assert {r.adopted for r in again.value.results.values()} == {True}


def test_slow_job_that_timed_out_completes_on_the_next_run_without_a_second_trigger(emu: Emulator) -> None:
    vms = setup_vms(emu, 2)
    emu.state.job_duration = 3600.0  # an hour-long first backup against a 10 minute timeout

    with pytest.raises(InitialBackupError) as caught:
        verifier(emu, settings(timeout_minutes=10)).run(vms)
    assert sorted(t.vm_name for t in caught.value.timeouts) == ["vm001", "vm002"]
    first_jobs = {t.vm_name: t.job_id for t in caught.value.timeouts}

    results = verifier(emu, settings(timeout_minutes=120, poll_seconds=300)).run(vms)

    assert {results[vm.key].job_id for vm in vms} == set(first_jobs.values())
    assert {r.status for r in results.values()} == {"Completed"}
    assert {r.adopted for r in results.values()} == {True}
    assert [emu.trigger_count(vm.name) for vm in vms] == [1, 1]


def test_rerun_with_previous_results_in_state_makes_no_azure_calls(emu: Emulator) -> None:
    vms = setup_vms(emu, 5)
    first = verifier(emu, settings()).run(vms)
    emu.reset_counts()

    second = verifier(emu, settings()).run(vms, previous=first)

    assert second == first
    assert sum(emu.counts.values()) == 0
    assert all(emu.trigger_count(vm.name) == 1 for vm in vms)


def test_rerun_after_a_failed_run_triggers_only_the_vm_whose_newest_backup_failed(emu: Emulator) -> None:
    vms = setup_vms(emu, 3)
    emu.faults.fail_next_job("vm003", "UserErrorVmNotInDesirableState")
    with pytest.raises(InitialBackupError):
        verifier(emu, settings()).run(vms)

    results = verifier(emu, settings()).run(vms)

    assert [emu.trigger_count(vm.name) for vm in vms] == [1, 1, 2]
    assert [results[vm.key].adopted for vm in vms] == [True, True, False]
    assert {r.status for r in results.values()} == {"Completed"}


def test_started_result_in_state_is_resumed_to_completed_on_the_same_job_when_verify_tightens(emu: Emulator) -> None:
    vms = setup_vms(emu, 2)
    started = verifier(emu, settings("started")).run(vms)
    emu.reset_counts()

    completed = verifier(emu, settings("completed")).run(vms, previous=started)

    assert [completed[vm.key].job_id for vm in vms] == [started[vm.key].job_id for vm in vms]
    assert {r.status for r in completed.values()} == {"Completed"}
    assert emu.counts["backup.trigger"] == 0
    assert emu.counts["job.get"] == 0


def test_previous_result_with_a_failed_job_is_triggered_again(emu: Emulator) -> None:
    [vm] = setup_vms(emu, 1)
    previous = {vm.key: VmResult(vm.vm_id, vm.name, "0000-old-job", "Failed")}

    results = verifier(emu, settings()).run([vm], previous=previous)

    assert emu.trigger_count("vm001") == 1
    assert results[vm.key].job_id != "0000-old-job"
    assert results[vm.key].status == "Completed"


def test_vms_sharing_a_name_in_different_resource_groups_get_their_own_jobs(emu: Emulator) -> None:
    first = protect(emu, VAULT, vm_ids(SUB, "rg-web", 1))
    second = protect(emu, VAULT, vm_ids(SUB, "rg-db", 1))
    emu.reset_counts()

    results = verifier(emu, settings()).run(first + second)

    assert len(results) == 2
    ids = {results[vm.key].job_id for vm in first + second}
    assert len(ids) == 2
    for vm in first + second:
        assert f";{vm.resource_group};vm001/recoveryPoints/".lower() in str(results[vm.key].recovery_point_id).lower()


def test_slow_trigger_operations_do_not_hold_trigger_threads_and_cost_no_extra_requests_once_the_job_is_listed(
    slow_ops_emu: Emulator,
) -> None:
    emu = slow_ops_emu
    vms = setup_vms(emu, 40)  # more VMs than trigger threads (16)
    start = emu.state.now()
    verifier_sleeps: list[float] = []

    results = verifier(emu, settings(), verifier_sleeps=verifier_sleeps).run(vms)

    assert {r.status for r in results.values()} == {"Completed"}
    assert all(r.recovery_point_id for r in results.values())
    jobs = [j for j in emu.jobs if j.operation == "Backup"]
    assert {results[vm.key].job_id for vm in vms} == {j.job_id for j in jobs}
    assert len(jobs) == 40
    # Every POST went out before the verifier slept at all: no trigger thread waited on its operation.
    assert {j.start_time for j in jobs} == {start}
    assert verifier_sleeps == [POLL] * 4  # polls at 0, 30, 60, 90 and 120 s, when the jobs completed
    assert emu.state.now() - start == dt.timedelta(seconds=JOB_SECONDS)
    counts = emu.counts
    assert counts["backup.trigger"] == 40
    assert counts["backupOperations.get"] == 0  # each job was in the first poll's list, running since its POST
    assert counts["recoveryPoints.list"] == 40
    assert counts["job.get"] == 0


def test_polls_keep_a_fixed_cadence_when_a_poll_takes_time(emu: Emulator) -> None:
    vms = setup_vms(emu, 3)
    api = ScriptedApi(emu, list_seconds=[7.0] * 20)  # every job list takes 7 s
    verifier_sleeps: list[float] = []

    results = verifier(emu, settings(), api=api, verifier_sleeps=verifier_sleeps).run(vms)

    assert {r.status for r in results.values()} == {"Completed"}
    # Polls start every POLL seconds, not POLL seconds after the previous poll's 7 s of work (which
    # would put them at 0, 37, 74, 111 and 148 s, and see the jobs complete 28 s late).
    assert api.poll_offsets() == [0.0, 30.0, 60.0, 90.0, 120.0]
    assert verifier_sleeps == [POLL - 7.0] * 4


def test_a_poll_that_overruns_whole_intervals_is_followed_at_once_and_the_cadence_restarts_from_there(
    emu: Emulator,
) -> None:
    vms = setup_vms(emu, 2)
    api = ScriptedApi(emu, list_seconds=[0.0, 0.0, 100.0])  # the first poll's list takes 100 s (3+ intervals)
    verifier_sleeps: list[float] = []

    results = verifier(emu, settings(), api=api, verifier_sleeps=verifier_sleeps).run(vms)

    assert {r.status for r in results.values()} == {"Completed"}
    # One immediate poll at 100 s, then the next interval from there: no burst of missed polls.
    assert api.poll_offsets() == [0.0, 100.0, 130.0]
    assert verifier_sleeps == [float(POLL)]


def test_trigger_failing_asynchronously_is_reported_with_its_code_at_the_next_poll(
    slow_ops_emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = slow_ops_emu
    vms = setup_vms(emu, 3)
    # vm002's trigger operation ends Failed (so no job of it is ever listed).
    api = ScriptedApi(
        emu,
        hide=lambda job: job.entity_friendly_name == "vm002",
        fail_operations_of={"vm002": "UserErrorVmNotInDesirableState"},
    )
    caplog.set_level(logging.INFO, logger="protectedvm.verifier")

    with pytest.raises(InitialBackupError) as caught:
        verifier(emu, settings(), api=api).run(vms)

    [failure] = caught.value.failures
    assert (failure.vm_name, failure.job_id, failure.code, failure.message) == (
        "vm002",
        None,
        "UserErrorVmNotInDesirableState",
        "VM is not in a state that allows backups.",
    )
    assert caught.value.timeouts == []
    assert sorted(caught.value.results) == sorted([vms[0].key, vms[2].key])
    assert {r.status for r in caught.value.results.values()} == {"Completed"}
    # No status after the POSTs: vm001's and vm003's jobs were listed, vm002's (never listed) operation
    # was checked at the first poll (0 s: InProgress) and the second (30 s: Failed), and no more.
    assert emu.counts["backupOperations.get"] == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "protectedvm.verifier"]
    reported = lines.index("vm002 (no job): UserErrorVmNotInDesirableState: VM is not in a state that allows backups.")
    assert reported < min(i for i, line in enumerate(lines) if line.endswith(" Completed"))


def test_in_progress_operation_in_verify_none_still_records_the_job_id(slow_ops_emu: Emulator) -> None:
    emu = slow_ops_emu
    vms = setup_vms(emu, 2)
    start = emu.state.now()
    # vm002's job is not in the job list yet: its operation has to name it.
    api = ScriptedApi(emu, hide=lambda job: job.entity_friendly_name == "vm002")

    results = verifier(emu, settings("none"), api=api).run(vms)

    jobs = backup_jobs(emu)
    assert {vm.name: results[vm.key].job_id for vm in vms} == {"vm001": jobs["vm001"], "vm002": jobs["vm002"]}
    assert results[vms[0].key].status == "InProgress"  # found running in the first poll's job list
    assert results[vms[1].key].status == "Triggered"  # named by its operation at the second poll
    assert emu.counts["backupOperations.get"] == 2 + 2  # one per POST, then vm002's at 0 s and 30 s
    assert emu.counts["recoveryPoints.list"] == 0
    assert emu.state.now() - start == dt.timedelta(seconds=POLL)


def test_slow_trigger_operation_failing_because_a_days_old_backup_runs_adopts_that_backup_at_the_next_poll(
    slow_ops_emu: Emulator,
) -> None:
    emu = slow_ops_emu
    [vm] = setup_vms(emu, 1)
    long_job = emu.start_job("vm001", duration=4 * 86400.0)
    emu.clock.advance(3 * 86400.0)  # type: ignore[attr-defined]
    emu.faults.http("jobs.list", 400, code="BadRequest")  # no pre-trigger look

    results = verifier(emu, settings(timeout_minutes=2 * 1440, poll_seconds=3600)).run([vm])

    assert (results[vm.key].job_id, results[vm.key].status, results[vm.key].adopted) == (long_job, "Completed", True)
    assert emu.trigger_count("vm001") == 1
    assert len([j for j in emu.jobs if j.operation == "Backup"]) == 1
    # The listed job ran from before the POST, so it is not taken for ours: the operation decides, at
    # the first poll InProgress, at the second UserErrorBackupOperationInProgress (then it is adopted).
    assert emu.counts["backupOperations.get"] == 2


def test_retry_with_a_slow_operation_is_not_mistaken_for_the_vms_earlier_failed_job(slow_ops_emu: Emulator) -> None:
    emu = slow_ops_emu
    [vm] = setup_vms(emu, 1)
    emu.faults.fail_next_job("vm001", "UserErrorGuestAgentStatusUnavailable")
    failed_job = emu.start_job("vm001", duration=10.0)  # a backup that failed fast, 20 s ago
    emu.clock.advance(20.0)  # type: ignore[attr-defined]
    # The retry's job is not listed yet; the earlier, Failed job of the VM is (it started minutes ago).
    api = ScriptedApi(emu, hide=lambda job: job.job_id != failed_job)

    results = verifier(emu, settings(), api=api).run([vm])

    new_job = next(j.job_id for j in emu.jobs if j.operation == "Backup" and j.job_id != failed_job)
    assert (results[vm.key].job_id, results[vm.key].status, results[vm.key].adopted) == (new_job, "Completed", False)
    assert emu.trigger_count("vm001") == 1
    # At the first poll (InProgress) and at the second (Succeeded: names the job); none after the POST.
    assert emu.counts["backupOperations.get"] == 2


def test_progress_is_logged_per_vm_state_change_with_summaries(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    vms = setup_vms(emu, 2)
    emu.faults.fail_next_job("vm002", "UserErrorGuestAgentStatusUnavailable")
    caplog.set_level(logging.INFO, logger="protectedvm.verifier")

    with pytest.raises(InitialBackupError):
        verifier(emu, settings()).run(vms)

    lines = [r.getMessage() for r in caplog.records if r.name == "protectedvm.verifier"]
    vm1 = [line for line in lines if line.startswith("vm001:")]
    assert vm1[0] == "vm001: queued"
    assert vm1[1].startswith("vm001: triggered (operation ")
    assert any(line.endswith(" InProgress") for line in vm1)
    assert any(line.endswith(" Completed") for line in vm1)
    assert vm1[-1].startswith("vm001: verified: job ")
    assert "rsv-test: 0 of 2 completed, 0 failed, 2 in progress" in lines
    assert lines[-1] == "rsv-test: 1 of 2 completed, 1 failed, 0 in progress"
    assert any(
        r.levelno == logging.ERROR and "UserErrorGuestAgentStatusUnavailable" in r.getMessage() for r in caplog.records
    )


@dataclass(frozen=True)
class RealTimeSettings:
    verify: str = "completed"
    retain_days: int = 7
    timeout_minutes: float = 1.0
    poll_seconds: float = 0.05


def test_real_time_run_with_sub_second_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    with Emulator(job_duration=0.3) as emu:
        monkeypatch.setenv(ENDPOINT_ENV, emu.base_url)
        monkeypatch.setenv(CA_BUNDLE_ENV, emu.ca_path)
        vms = setup_vms(emu, 5)
        api = BackupApi(make_sdk_client(SUB, retry=FAST), VAULT, retry=FAST)
        results = InitialBackupVerifier(api, RealTimeSettings()).run(vms)  # type: ignore[arg-type]
        assert {r.status for r in results.values()} == {"Completed"}
        assert all(r.recovery_point_id for r in results.values())


def test_trigger_asks_azure_to_keep_the_recovery_point_for_retain_days(emu: Emulator) -> None:
    [vm] = setup_vms(emu, 1)
    bodies: list[bytes] = []

    def capture(request: object) -> None:
        http = request.http_request  # type: ignore[attr-defined]
        if http.method == "POST":
            bodies.append(http.body)

    api = BackupApi(emu.client(SUB, raw_request_hook=capture), VAULT)
    now = emu.state.now()
    InitialBackupVerifier(api, settings("none"), clock=emulator_clock(emu), sleep=manual_sleep(emu)).run([vm])

    [body] = bodies
    sent = json.loads(body)["properties"]
    assert sent["objectType"] == "IaasVMBackupRequest"
    expiry = dt.datetime.fromisoformat(sent["recoveryPointExpiryTimeInUTC"].replace("Z", "+00:00"))
    assert expiry - now == dt.timedelta(days=30)


def test_vm_that_is_not_protected_fails_with_azures_not_found_code_and_others_still_complete(emu: Emulator) -> None:
    vms = setup_vms(emu, 1)
    stranger = VmRef.from_id(vm_ids(SUB, "rg-other", 1, prefix="db")[0])

    with pytest.raises(InitialBackupError) as caught:
        verifier(emu, settings()).run([*vms, stranger])

    [failure] = caught.value.failures
    assert (failure.vm_name, failure.job_id) == ("db001", None)
    assert failure.code.startswith("BMSUserError")
    assert list(caught.value.results) == [vms[0].key]
    assert emu.counts["backup.trigger"] == 2  # a 404 is not retried
