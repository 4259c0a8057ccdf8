"""The verifier's state machine, path by path, against the in-memory fake of Azure Backup
(``testing/fake_backup_api.py``): no sockets and a clock that only the verifier's sleeps move, so each
path is exact (states, messages, request counts) and fast. ``tests/test_verifier.py`` runs the same
verifier over HTTPS through the real SDK against the emulator.

Timeline of a plain run here: the pre-trigger look (2 job lists), the triggers, a poll at once (0 s),
then every 30 s; jobs take 120 s, so the poll at 120 s sees them Completed."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

import pytest

from components.config import InitialBackupSettings
from emulator.seeding import vm_ids
from emulator.throttle import BucketLimit, Throttle
from protectedvm.azure_client import JobInfo
from protectedvm.ids import VaultRef, VmRef
from protectedvm.verifier import InitialBackupError, InitialBackupVerifier, VmResult, iso, trigger_pool
from testing.fake_backup_api import FakeBackupApi
from tests.helpers import SUB

VAULT = VaultRef(SUB, "rg-backup", "rsv-fake")
POLL = 30
JOB_SECONDS = 120.0
#: Requests per poll and before the triggers: one job list per poll, two to look before triggering.
PRE_TRIGGER_LISTS = 2
LOGGER = "protectedvm.verifier"


def settings(verify: str = "completed", timeout_minutes: int = 30, poll_seconds: int = POLL) -> InitialBackupSettings:
    return InitialBackupSettings(
        verify=verify,  # type: ignore[arg-type]
        retain_days=30,
        timeout_minutes=timeout_minutes,
        poll_seconds=poll_seconds,
    )


def fake(count: int = 1, **options: float) -> tuple[FakeBackupApi, list[VmRef]]:
    api = FakeBackupApi(VAULT, job_seconds=JOB_SECONDS, **options)  # type: ignore[arg-type]
    return api, api.protect(vm_ids(SUB, "rg-app", count))


def run(
    api: FakeBackupApi,
    vms: list[VmRef],
    config: InitialBackupSettings | None = None,
    previous: dict[str, VmResult] | None = None,
) -> dict[str, VmResult]:
    verifier = InitialBackupVerifier(
        api, config or settings(), vault_name=VAULT.name, clock=api.now, sleep=api.sleep
    )
    return verifier.run(vms, previous)


def run_failing(
    api: FakeBackupApi, vms: list[VmRef], config: InitialBackupSettings | None = None
) -> InitialBackupError:
    with pytest.raises(InitialBackupError) as caught:
        run(api, vms, config)
    return caught.value


def at(api: FakeBackupApi, seconds: float) -> str | None:
    return iso(api.start + dt.timedelta(seconds=seconds))


def point_id(vm: VmRef, name: str) -> str:
    return (
        f"{VAULT.id}/backupFabrics/Azure/protectionContainers/{vm.container_name}/protectedItems/"
        f"{vm.protected_item_name}/recoveryPoints/{name}"
    )


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


# --- the happy path ---------------------------------------------------------------------------------


def test_jobs_found_in_the_polls_list_cost_one_trigger_and_one_recovery_point_list_per_vm() -> None:
    api, vms = fake(3)

    results = run(api, vms)

    assert sorted(results) == [vm.key for vm in vms]
    for vm in vms:
        [job] = api.jobs_of(vm)
        result = results[vm.key]
        assert result.recovery_point_id is not None
        name = result.recovery_point_id.rsplit("/", 1)[-1]
        assert result == VmResult(
            vm_id=vm.vm_id,
            vm_name=vm.name,
            job_id=job.job_id,
            status="Completed",
            recovery_point_id=point_id(vm, name),
            recovery_point_time=at(api, 0),  # the point is the backup's snapshot, at the job's start
            duration_seconds=JOB_SECONDS,
            triggered_at=at(api, 0),
            adopted=False,
        )
        assert len(name) == 14 and name.isdigit()
    # Polls at 0, 30, 60, 90 and 120 s: one job list each; no operation status, no job GET.
    assert api.sleeps == [30.0] * 4
    assert dict(api.counts) == {
        "jobs.list": PRE_TRIGGER_LISTS + 5,
        "backup.trigger": 3,
        "recoveryPoints.list": 3,
    }


def test_verify_started_returns_at_the_first_poll_that_sees_the_job_in_progress() -> None:
    api, [vm] = fake(1)

    results = run(api, [vm], settings(verify="started"))

    [job] = api.jobs_of(vm)
    assert (results[vm.key].status, results[vm.key].job_id, results[vm.key].recovery_point_id) == (
        "InProgress",
        job.job_id,
        None,
    )
    assert api.sleeps == []
    assert dict(api.counts) == {"jobs.list": PRE_TRIGGER_LISTS + 1, "backup.trigger": 1}


def test_verify_none_takes_the_job_id_from_the_trigger_operation_and_lists_nothing_after_it() -> None:
    api, [vm] = fake(1)

    results = run(api, [vm], settings(verify="none"))

    [job] = api.jobs_of(vm)
    assert (results[vm.key].status, results[vm.key].job_id) == ("Triggered", job.job_id)
    assert dict(api.counts) == {"jobs.list": PRE_TRIGGER_LISTS, "backup.trigger": 1, "backupOperations.get": 1}


# --- finding the job ------------------------------------------------------------------------------


def test_a_job_listed_late_is_looked_for_through_its_operation_until_the_list_shows_it() -> None:
    # Azure creates the job asynchronously: for 45 s it is not listed and the operation says InProgress.
    api, [vm] = fake(1, job_appearance_delay=45.0)

    results = run(api, [vm])

    [job] = api.jobs_of(vm)
    assert (results[vm.key].status, results[vm.key].job_id, results[vm.key].adopted) == ("Completed", job.job_id, False)
    # The polls at 0 and 30 s did not list the job: its operation was checked (InProgress) each time;
    # from the poll at 60 s the list shows the job and the operation is not asked again.
    assert api.counts["backupOperations.get"] == 2
    assert api.counts["backup.trigger"] == 1 and api.counts["job.get"] == 0


def test_a_backup_already_running_is_adopted_without_a_trigger() -> None:
    api, [vm] = fake(1)
    running = api.start_job(vm, ago=60.0)  # someone pressed "Backup now" in the portal a minute ago

    results = run(api, [vm])

    assert (results[vm.key].job_id, results[vm.key].adopted, results[vm.key].status) == (running, True, "Completed")
    assert results[vm.key].triggered_at == at(api, -60)
    assert api.trigger_count(vm) == 0 and api.counts["backup.trigger"] == 0
    # Adopted at the look before triggering; it ends at 60 s, seen by the poll at 60 s (polls at 0, 30, 60).
    assert api.counts["jobs.list"] == PRE_TRIGGER_LISTS + 3


def test_a_trigger_whose_response_was_lost_adopts_the_job_it_started(caplog: pytest.LogCaptureFixture) -> None:
    api, [vm] = fake(1)
    api.lose_trigger_responses(vm)  # Azure started the job; the 202 never arrived
    caplog.set_level(logging.INFO, logger=LOGGER)

    results = run(api, [vm])

    [job] = api.jobs_of(vm)
    assert (results[vm.key].status, results[vm.key].job_id, results[vm.key].adopted) == ("Completed", job.job_id, True)
    assert api.trigger_count(vm) == 1 and api.counts["backup.trigger"] == 1
    assert api.counts["backupOperations.get"] == 0  # no operation id to ask about
    lines = messages(caplog)
    assert (
        "vm001: the trigger's response was lost (Backups_Trigger: no response from the Azure endpoint (connection "
        "dropped after the request was sent): Remote end closed connection without response); looking for its job"
    ) in lines
    assert f"vm001: found job {job.job_id} (InProgress); adopting it" in lines


def test_a_trigger_lost_before_azure_saw_it_fails_after_two_job_lists_without_its_job() -> None:
    api, [vm] = fake(1)
    api.faults.drop("backup.trigger")  # the connection dropped before Azure processed the POST

    error = run_failing(api, [vm])

    assert str(error) == (
        "initial backup of 1 of 1 VM(s) in vault rsv-fake did not succeed (0 succeeded):\n  failed (1):\n"
        "    - vm001 (no job): ServiceResponseError: Backups_Trigger: no response from the Azure endpoint (connection "
        "dropped after the request was sent): Remote end closed connection without response; and no backup job of "
        "the VM appeared in the 2 job lists after it, so the trigger did not start one"
    )
    assert api.trigger_count(vm) == 0 and api.jobs_of(vm) == []
    assert api.counts["jobs.list"] == PRE_TRIGGER_LISTS + 2


def test_a_trigger_failing_asynchronously_is_reported_with_azures_code_and_the_others_complete() -> None:
    api, vms = fake(3)
    api.fail_trigger_operations(vms[1], "UserErrorVmNotInDesirableState")

    error = run_failing(api, vms)

    [failure] = error.failures
    assert (failure.vm_name, failure.job_id, failure.code, failure.message, failure.recommendations) == (
        "vm002",
        None,
        "UserErrorVmNotInDesirableState",
        "VM is not in a state that allows backups.",
        (),
    )
    assert error.timeouts == []
    assert sorted(error.results) == [vms[0].key, vms[2].key]
    assert {r.status for r in error.results.values()} == {"Completed"}
    # Only the VM whose job was not in the first poll's list had its operation checked, once.
    assert api.counts["backupOperations.get"] == 1


def test_a_trigger_refused_because_a_backup_runs_adopts_that_backup() -> None:
    api, [vm] = fake(1)
    # A portal backup started 10 s ago that Azure lists only from 20 s on: the look before triggering
    # misses it, so the verifier triggers, and Azure refuses that trigger asynchronously.
    running = api.start_job(vm, ago=10.0, listed_after=20.0)

    results = run(api, [vm])

    assert (results[vm.key].job_id, results[vm.key].adopted, results[vm.key].status) == (running, True, "Completed")
    assert api.trigger_count(vm) == 1 and len(api.jobs_of(vm)) == 1
    # Poll at 0 s: not listed, the operation says UserErrorBackupOperationInProgress (adopt); at 30 s the
    # running job is listed and taken (that poll also lists the running jobs of the last 29 days: the
    # backup that made the trigger fail may be old); it ends at 110 s, seen at 120 s.
    assert api.counts["backupOperations.get"] == 1
    assert api.counts["jobs.list"] == PRE_TRIGGER_LISTS + 5 + 1


# --- how jobs end ---------------------------------------------------------------------------------


def test_a_failed_job_fails_its_vm_with_azures_code_message_and_recommendations() -> None:
    api, vms = fake(2)
    api.faults.fail_next_job("vm002", "UserErrorGuestAgentStatusUnavailable")

    error = run_failing(api, vms)

    [job] = api.jobs_of(vms[1])
    assert str(error) == (
        "initial backup of 1 of 2 VM(s) in vault rsv-fake did not succeed (1 succeeded):\n  failed (1):\n"
        f"    - vm002 (job {job.job_id}): UserErrorGuestAgentStatusUnavailable: VM Agent unable to communicate with "
        "Azure Backup\n      recommendations: Ensure that the VM agent is installed, running and up to date on the "
        "virtual machine. | Ensure that the VM has outbound network connectivity to Azure Storage and Azure Backup "
        "endpoints. | Please refer to https://aka.ms/guestagent-status-unavailable for more information."
    )
    assert error.failures[0].job_id == job.job_id
    assert list(error.results) == [vms[0].key]
    assert api.counts["job.get"] == 0  # the list carried the error details
    assert api.counts["recoveryPoints.list"] == 1  # only for the VM that completed


def test_a_cancelled_job_fails_its_vm_after_one_job_get_for_details_the_list_lacks() -> None:
    api, [vm] = fake(1)
    api.faults.cancel_next_job("vm001")

    error = run_failing(api, [vm])

    [job] = api.jobs_of(vm)
    [failure] = error.failures
    assert (failure.job_id, failure.code, failure.message) == (job.job_id, "JobCancelled", "the backup job Cancelled")
    assert job.status == "Cancelled"
    assert api.counts["job.get"] == 1 and api.counts["recoveryPoints.list"] == 0


def test_completed_with_warnings_counts_as_completed_once_its_recovery_point_is_listed() -> None:
    api, [vm] = fake(1)
    api.faults.warn_next_job("vm001")

    results = run(api, [vm])

    assert results[vm.key].status == "CompletedWithWarnings"
    assert results[vm.key].recovery_point_id is not None
    assert results[vm.key].recovery_point_time == at(api, 0)


def test_a_recovery_point_listed_after_its_job_completed_is_waited_for_then_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, [vm] = fake(1)
    api.delay_recovery_points(vm, 20.0)  # listed 20 s after the job ends (120 s): at 140 s
    caplog.set_level(logging.INFO, logger=LOGGER)

    results = run(api, [vm])

    [job] = api.jobs_of(vm)
    assert results[vm.key].status == "Completed" and results[vm.key].recovery_point_time == at(api, 0)
    # The poll at 120 s found no point; the one at 150 s did.
    assert api.counts["recoveryPoints.list"] == 2
    assert sum(api.sleeps) == 150.0
    assert f"vm001: job {job.job_id} Completed but no recovery point yet; waiting" in messages(caplog)


def test_a_hung_job_times_out_naming_the_vm_and_its_job_and_a_rerun_resumes_it_without_triggering() -> None:
    api, vms = fake(2)
    api.faults.hang_next_job("vm002")

    error = run_failing(api, vms, settings(timeout_minutes=5))

    [job] = api.jobs_of(vms[1])
    assert str(error) == (
        "initial backup of 1 of 2 VM(s) in vault rsv-fake did not succeed (1 succeeded):\n"
        "  still running after timeoutMinutes=5 (1); the next `pulumi up` resumes waiting on the same job(s) without "
        f"triggering again:\n    - vm002 (job {job.job_id}, last status InProgress)"
    )
    assert sum(api.sleeps) == 300.0

    previous = dict(error.results)
    previous[vms[1].key] = VmResult(vms[1].vm_id, "vm002", job.job_id, "InProgress", triggered_at=at(api, 0))
    job.outcome = type(job.outcome)("Completed")  # the stuck agent recovers
    job.duration = 400.0
    api.counts.clear()

    results = run(api, vms, previous=previous)

    assert results[vms[1].key].job_id == job.job_id and results[vms[1].key].status == "Completed"
    assert api.trigger_count(vms[1]) == 1 and api.counts["backup.trigger"] == 0


# --- throttling -----------------------------------------------------------------------------------


def test_a_trigger_throttled_with_a_retry_after_that_fits_the_timeout_is_sent_again_then() -> None:
    api, [vm] = fake(1)
    api.faults.http("backup.trigger", 429, retry_after=300)

    results = run(api, [vm])

    [job] = api.jobs_of(vm)
    assert (results[vm.key].status, results[vm.key].job_id) == ("Completed", job.job_id)
    assert results[vm.key].triggered_at == at(api, 300)
    assert api.counts["backup.trigger"] == 2 and api.trigger_count(vm) == 1


def test_a_trigger_throttled_beyond_timeout_minutes_fails_at_once_saying_so() -> None:
    api, [vm] = fake(1)
    api.faults.http("backup.trigger", 429, retry_after=3600)

    error = run_failing(api, [vm], settings(timeout_minutes=10))

    assert str(error) == (
        "initial backup of 1 of 1 VM(s) in vault rsv-fake did not succeed (0 succeeded):\n  failed (1):\n"
        "    - vm001 (no job): TooManyRequests: Backups_Trigger failed: HTTP 429 TooManyRequests: The request is being "
        "throttled as the limit has been reached for operation type. (Azure asked to retry after 3600 s, more than "
        "the 600 s left of timeoutMinutes=10)"
    )
    assert api.sleeps == [] and api.counts["backup.trigger"] == 1 and api.trigger_count(vm) == 0


def test_a_trigger_throttled_again_and_again_is_retried_until_the_timeout_leaves_no_room() -> None:
    api, [vm] = fake(1)
    api.faults.http("backup.trigger", 429, times=10_000, retry_after=300)

    error = run_failing(api, [vm], settings(timeout_minutes=10))

    [failure] = error.failures
    assert failure.message.endswith("(Azure asked to retry after 300 s, more than the 300 s left of timeoutMinutes=10)")
    assert api.counts["backup.trigger"] == 2  # at 0 s and at 300 s
    assert sum(api.sleeps) == 300.0


def test_under_arms_write_bucket_every_vm_is_triggered_once_and_none_fails() -> None:
    api, vms = fake(6)
    # A writes bucket of 2 refilled 0.1/s (ARM's 200 and 10/s, scaled down): 4 triggers get 429 with
    # Retry-After, each is sent again when ARM said, and the ones refused again wait again.
    limits = {"reads": BucketLimit(1000, 100.0), "writes": BucketLimit(2, 0.1), "deletes": BucketLimit(2, 0.1)}
    api.throttle = Throttle(api.clock, enforce=True, limits=limits)

    results = run(api, vms)

    assert {r.status for r in results.values()} == {"Completed"} and len(results) == 6
    assert all(api.trigger_count(vm) == 1 for vm in vms)
    assert api.throttle.refused["writes"] == api.counts["backup.trigger"] - 6 > 0
    triggered = sorted(r.triggered_at or "" for r in results.values())
    # Two at once, then one per 10 s as the bucket refills.
    assert triggered == [at(api, 0), at(api, 0), at(api, 10), at(api, 20), at(api, 30), at(api, 40)]


# --- re-runs ----------------------------------------------------------------------------------------


def test_a_rerun_after_a_failure_triggers_only_the_failed_vm_and_keeps_the_others_results() -> None:
    api, vms = fake(3)
    api.faults.fail_next_job("vm002", "UserErrorGuestAgentStatusUnavailable")
    first = run_failing(api, vms)
    api.counts.clear()

    results = run(api, vms, previous=first.results)

    assert {key: r for key, r in results.items() if key != vms[1].key} == first.results
    [failed_job, retried_job] = sorted(api.jobs_of(vms[1]), key=lambda j: j.start_time)
    assert (results[vms[1].key].job_id, results[vms[1].key].status) == (retried_job.job_id, "Completed")
    assert failed_job.status == "Failed"
    assert [api.trigger_count(vm) for vm in vms] == [1, 2, 1]
    assert api.counts["backup.trigger"] == 1 and api.counts["recoveryPoints.list"] == 1


def test_a_rerun_with_every_vm_verified_makes_no_request() -> None:
    api, vms = fake(2)
    first = run(api, vms)
    api.counts.clear()

    assert run(api, vms, previous=first) == first
    assert dict(api.counts) == {}


def test_a_vm_that_is_not_protected_fails_with_azures_not_found_code() -> None:
    api, [vm] = fake(1)
    [stranger] = [VmRef.from_id(vm_id) for vm_id in vm_ids(SUB, "rg-other", 1)]

    error = run_failing(api, [vm, stranger])

    [failure] = error.failures
    assert (failure.vm_name, failure.code) == ("vm001", "BMSUserErrorItemNotFound")
    assert failure.message == (
        "Backups_Trigger failed: HTTP 404 BMSUserErrorItemNotFound: Protected item "
        "'vm;iaasvmcontainerv2;rg-other;vm001' was not found in container "
        "'iaasvmcontainer;iaasvmcontainerv2;rg-other;vm001' of vault 'rsv-fake'."
    )
    assert list(error.results) == [vm.key]


# --- the trigger phase: one shared pool, polls spaced while triggers are sent -----------------------


class SteppedTriggers(FakeBackupApi):
    """Triggers sent one at a time over clock time, as ARM's write pacing spreads a fleet's triggers:
    each moves the clock by ``step`` seconds before its POST, once the verifier's loop has looked at the
    clock since the previous one (so the loop sees every moment of the trigger phase; a timeout only
    keeps a broken verifier from hanging the test). ``release_last_during_poll_at``: the last trigger
    instead waits for the job list of the poll at that time and is sent while that list runs."""

    def __init__(self, step: float, release_last_during_poll_at: float | None = None, **options: float) -> None:
        super().__init__(VAULT, job_seconds=20.0, **options)  # type: ignore[arg-type]
        self.step = step
        self.release_at = release_last_during_poll_at
        self.loop_thread: threading.Thread | None = None
        self.list_times: list[float] = []
        self.trigger_threads: list[threading.Thread] = []
        self.expected_triggers = 0
        self._seen = threading.Condition()
        self._loop_reads = 0
        self._release = threading.Event()
        self._last_sent = threading.Event()

    def now(self) -> dt.datetime:
        if threading.current_thread() is self.loop_thread:
            with self._seen:
                self._loop_reads += 1
                self._seen.notify_all()
        return super().now()

    def trigger_backup(self, vm: VmRef, expiry: dt.datetime) -> str:
        self.trigger_threads.append(threading.current_thread())
        with self._seen:
            self._seen.wait_for(lambda: self._loop_reads >= 3, timeout=5)
            self.clock.advance(self.step)
            self._loop_reads = 0
        if len(self.trigger_threads) < self.expected_triggers or self.release_at is None:
            return super().trigger_backup(vm, expiry)
        self._release.wait(timeout=5)  # the poll's job list has started
        self.clock.advance(self.step / 2)
        try:
            return super().trigger_backup(vm, expiry)
        finally:
            self._last_sent.set()

    def list_backup_jobs(
        self, start: dt.datetime, end: dt.datetime, status: str | None = None, on_page: object = None
    ) -> list[JobInfo]:
        now = self.clock.now()
        if len(self.trigger_threads) > 0 and status is None:
            self.list_times.append(now)
        if self.release_at is not None and now >= self.release_at and not self._release.is_set():
            self._release.set()
            self._last_sent.wait(timeout=5)  # the last trigger is sent while this list runs
        return super().list_backup_jobs(start, end, status, on_page)

    def run(self, vms: list[VmRef], poll_seconds: int) -> dict[str, VmResult]:
        self.expected_triggers = len(vms)
        self.loop_thread = threading.current_thread()
        verifier = InitialBackupVerifier(
            self, settings(poll_seconds=poll_seconds), vault_name=VAULT.name, clock=self.now, sleep=self.sleep,
            trigger_workers=1,
        )
        return verifier.run(vms)


def test_while_triggers_are_sent_polls_are_four_intervals_apart_and_one_runs_as_the_last_is_sent() -> None:
    api = SteppedTriggers(step=10.0)
    vms = api.protect(vm_ids(SUB, "rg-app", 5))  # triggered at 10, 20, 30, 40 and 50 s; jobs take 20 s

    results = api.run(vms, poll_seconds=10)

    assert {r.status for r in results.values()} == {"Completed"} and len(results) == 5
    # During the triggers one poll (at 40 s, four intervals from the start; not at 10, 20, 30), then one
    # as the last trigger is sent (50 s) and every interval after it until its job ends (70 s).
    assert api.list_times == [40.0, 50.0, 60.0, 70.0]
    # vm001's and vm002's jobs had already ended at the first poll that listed them: taken as theirs by
    # their start after the POST, without asking the trigger operations.
    assert api.counts["backupOperations.get"] == 0
    # (Recorded as the verifier hands each VM to the API, before ARM's pacing lets its POST go.)
    assert [r.triggered_at for r in results.values()] == [at(api, 10 * k) for k in range(5)]


def test_a_last_trigger_sent_during_a_spaced_poll_is_followed_by_a_poll_at_once() -> None:
    api = SteppedTriggers(step=10.0, release_last_during_poll_at=40.0)
    vms = api.protect(vm_ids(SUB, "rg-app", 4))  # at 10, 20, 30 s, then at 45 s during the poll at 40 s

    results = api.run(vms, poll_seconds=10)

    assert {r.status for r in results.values()} == {"Completed"} and len(results) == 4
    assert [job.start_time for job in api.jobs_of(vms[3])] == [api.start + dt.timedelta(seconds=45)]
    # Not the spaced poll at 80 s: a poll at once (45 s), then every interval until vm004's job ends (65 s).
    assert api.list_times == [40.0, 45.0, 55.0, 65.0]


def test_vaults_verified_in_one_process_share_one_pool_of_trigger_threads() -> None:
    threads: list[threading.Thread] = []
    for name in ("rsv-a", "rsv-b"):
        api = FakeBackupApi(VaultRef(SUB, "rg-backup", name), job_seconds=JOB_SECONDS)
        vms = api.protect(vm_ids(SUB, f"rg-{name}", 6))
        sent: list[threading.Thread] = []
        trigger = api.trigger_backup

        def recording(
            vm: VmRef,
            expiry: dt.datetime,
            sent: list[threading.Thread] = sent,
            trigger: Callable[[VmRef, dt.datetime], str] = trigger,
        ) -> str:
            sent.append(threading.current_thread())
            return trigger(vm, expiry)

        api.trigger_backup = recording  # type: ignore[method-assign]
        InitialBackupVerifier(
            api, settings(), vault_name=name, clock=api.now, sleep=api.sleep, trigger_workers=2
        ).run(vms)
        assert len(sent) == 6
        threads += sent

    # Twelve triggers of two vaults, sent by the same two threads (a pool per vault: four threads).
    assert len(set(threads)) <= 2
    assert trigger_pool(2) is trigger_pool(2)
    assert all(t.name.startswith("initial-backup") for t in threads)
