"""Trigger and verify the initial ("Backup now") backup of many VMs of one vault, idempotently.

This is the pure-Python core of the ``InitialBackup`` resource: no Pulumi here, only a
:class:`BackupApiLike` (normally :class:`protectedvm.azure_client.BackupApi`), an injectable clock,
sleep and logger, so tests drive it against the emulator directly and fast.

The steps of one run (skip/resume, look before triggering, trigger, verify in one batched loop, settle
then fail once as :class:`InitialBackupError`) and the requests they cost are explained once, in
``docs/verification.md``; this module is their implementation.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal, Protocol

from azure.core.exceptions import AzureError, ResourceNotFoundError, ServiceResponseError

from protectedvm.azure_client import (
    JobError,
    JobInfo,
    OperationInfo,
    RecoveryPointInfo,
    describe_error,
    error_code,
    is_transient,
    retry_after_seconds,
)
from protectedvm.ids import VmRef

LOG = logging.getLogger("protectedvm.verifier")

VerifyMode = Literal["none", "started", "completed"]
COMPLETED = frozenset({"Completed", "CompletedWithWarnings"})
FAILED = frozenset({"Failed", "Cancelled"})
STARTED_OK = frozenset({"InProgress"}) | COMPLETED
#: Recorded for verify=none: the job exists (we hold its id) but nobody looked at it.
TRIGGERED = "Triggered"
IN_PROGRESS_CODE = "UserErrorBackupOperationInProgress"
#: Tolerance between our clock and Azure's when matching job and recovery point times.
CLOCK_SLACK = dt.timedelta(minutes=5)
#: The polls' job-list window starts this long before the oldest trigger not matched to its job yet (a
#: job already seen bounds it by its own start time, Azure's clock). Smaller than
#: CLOCK_SLACK because the window is paged at every poll: with 5 minutes, a fleet run lists every job of
#: the run at every poll. A VM's start bound is Azure's own job startTime once its job was seen, and
#: our clock only until then (the moment before its POST); clocks of NTP-synced hosts agree within far
#: less. A job the window misses anyway is still found: its operation names it, and one GET fetches it.
LIST_SLACK = dt.timedelta(seconds=30)
MAX_JOB_WINDOW = dt.timedelta(days=29)
#: A trigger whose response was lost is looked for in this many job lists before it counts as failed.
LOST_TRIGGER_LISTS = 2
#: The REST operations (azure-rest-api-specs recoveryservicesbackup operationIds), as errors name them.
TRIGGER_CALL = "Backups_Trigger"
OPERATION_CALL = "BackupOperationStatuses_Get"
JOB_LIST_CALL = "BackupJobs_List"
JOB_GET_CALL = "JobDetails_Get"
RECOVERY_POINTS_CALL = "RecoveryPoints_List"
#: While triggers are being sent, the wait loop looks at the clock this often (real seconds) instead
#: of sleeping a whole poll interval: a sleep that advances a test's manual clock must not run while
#: triggers are in flight, and the first poll after the last trigger should not wait.
TRIGGER_WAIT_SLICE = 0.05
#: While a vault's first triggers are still being sent, its polls are this many poll intervals apart.
#: A fleet's triggers take minutes under ARM's write limit (~10/s), and a job started by one of them
#: cannot end before the job's duration: polling every interval then only costs job lists (ten vaults
#: of 200 VMs: 400 lists over 200 s). The cadence returns to one interval, and a poll runs at once,
#: when the last trigger has been sent, so the wait after it is unchanged. Not more than this: the
#: jobs that completed since the previous poll each need a recovery point list at the next one, and
#: four intervals of ARM's trigger rate fit the read bucket.
TRIGGERING_POLL_INTERVALS = 4
#: Trigger threads per process, shared by every verifier in it (see :func:`trigger_pool`).
TRIGGER_WORKERS = 32


_TRIGGER_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_TRIGGER_POOLS_LOCK = threading.Lock()


def trigger_pool(workers: int) -> ThreadPoolExecutor:
    """The process's one pool of ``workers`` trigger threads, shared by every vault verified in it (a
    provider host's concurrent ``create()`` calls, one ``verify`` command, the benchmark's vaults),
    like the ARM pacer (:func:`protectedvm.pacing.pacer_for`). A pool per vault multiplied the threads
    by the vaults (ten vaults: 160 threads on a 2-core client) while ARM's write budget, which is per
    subscription, is the same. First come, first served: a vault's triggers are sent before the next
    vault's, so under ARM's limits the first vaults finish early instead of every vault finishing last;
    the last trigger is sent no later either way."""
    key = (os.getpid(), max(1, workers))  # a forked child gets its own (its parent's threads are not there)
    with _TRIGGER_POOLS_LOCK:
        pool = _TRIGGER_POOLS.get(key)
        if pool is None:
            pool = _TRIGGER_POOLS[key] = ThreadPoolExecutor(max_workers=key[1], thread_name_prefix="initial-backup")
        return pool


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def parse_iso(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class BackupSettings(Protocol):
    """What the core needs of ``components.config.InitialBackupSettings`` (matched structurally,
    so the Azure side does not import the Pulumi program)."""

    @property
    def verify(self) -> VerifyMode: ...
    @property
    def retain_days(self) -> int: ...
    @property
    def timeout_minutes(self) -> float: ...
    @property
    def poll_seconds(self) -> float: ...


class BackupApiLike(Protocol):
    """The calls the verifier makes; :class:`protectedvm.azure_client.BackupApi` implements them."""

    def trigger_backup(self, vm: VmRef, expiry: dt.datetime) -> str: ...
    def operation_status(self, operation_id: str) -> OperationInfo: ...
    def list_backup_jobs(self, start: dt.datetime, end: dt.datetime, status: str | None = None) -> list[JobInfo]: ...
    def get_job(self, job_id: str) -> JobInfo: ...
    def recovery_points(self, vm: VmRef) -> list[RecoveryPointInfo]: ...


@dataclass(frozen=True)
class VmResult:
    """One VM's outcome; becomes ``results[<lower-cased vm id>]`` in the stack outputs."""

    vm_id: str
    vm_name: str
    job_id: str | None
    status: str
    recovery_point_id: str | None = None
    recovery_point_time: str | None = None
    duration_seconds: float | None = None
    triggered_at: str | None = None
    adopted: bool = False

    def satisfies(self, mode: VerifyMode) -> bool:
        """Whether a previous run already proved what ``mode`` asks, so this run does nothing."""
        if mode == "none":
            return self.job_id is not None and self.status not in FAILED
        if mode == "started":
            return self.status in STARTED_OK
        return self.status in COMPLETED and bool(self.recovery_point_id)

    def to_output(self) -> dict[str, object]:
        return {
            "vmName": self.vm_name,
            "jobId": self.job_id,
            "status": self.status,
            "recoveryPointId": self.recovery_point_id,
            "recoveryPointTime": self.recovery_point_time,
            "durationSeconds": self.duration_seconds,
            "triggeredAt": self.triggered_at,
            "adopted": self.adopted,
        }

    @staticmethod
    def from_output(vm_id: str, raw: Mapping[str, object]) -> VmResult:
        duration = raw.get("durationSeconds")
        return VmResult(
            vm_id=vm_id,
            vm_name=str(raw.get("vmName") or vm_id.rsplit("/", 1)[-1]),
            job_id=str(raw["jobId"]) if raw.get("jobId") else None,
            status=str(raw.get("status") or ""),
            recovery_point_id=str(raw["recoveryPointId"]) if raw.get("recoveryPointId") else None,
            recovery_point_time=str(raw["recoveryPointTime"]) if raw.get("recoveryPointTime") else None,
            duration_seconds=float(duration) if isinstance(duration, (int, float)) else None,
            triggered_at=str(raw["triggeredAt"]) if raw.get("triggeredAt") else None,
            adopted=bool(raw.get("adopted", False)),
        )


def results_to_output(results: Mapping[str, VmResult]) -> dict[str, dict[str, object]]:
    return {key: result.to_output() for key, result in results.items()}


def results_from_output(raw: object) -> dict[str, VmResult]:
    """Previous ``results`` from state; anything unreadable is ignored (the VM is simply redone)."""
    if not isinstance(raw, Mapping):
        return {}
    found: dict[str, VmResult] = {}
    for key, value in raw.items():
        if isinstance(key, str) and isinstance(value, Mapping):
            found[key.lower()] = VmResult.from_output(key, value)
    return found


@dataclass(frozen=True)
class VmFailure:
    vm_name: str
    vm_id: str
    job_id: str | None
    code: str
    message: str
    recommendations: tuple[str, ...] = ()

    def describe(self) -> str:
        job = f"job {self.job_id}" if self.job_id else "no job"
        text = f"{self.vm_name} ({job}): {self.code}: {self.message}".rstrip(": ")
        if self.recommendations:
            text += "\n      recommendations: " + " | ".join(self.recommendations)
        return text


@dataclass(frozen=True)
class VmTimeout:
    vm_name: str
    vm_id: str
    job_id: str | None
    status: str
    #: The Azure call that failed last for this VM, when failing calls are why it is not verified.
    last_error: str | None = None

    def describe(self) -> str:
        job = f"job {self.job_id}" if self.job_id else "job not yet known"
        text = f"{self.vm_name} ({job}, last status {self.status or 'unknown'})"
        return f"{text}: {self.last_error}" if self.last_error else text


class InitialBackupError(Exception):
    """Every VM that failed or timed out, in one message; ``results`` holds those that succeeded."""

    def __init__(
        self,
        vault_name: str,
        failures: Sequence[VmFailure],
        timeouts: Sequence[VmTimeout],
        results: Mapping[str, VmResult],
        timeout_minutes: float,
        total: int,
    ) -> None:
        self.failures = list(failures)
        self.timeouts = list(timeouts)
        self.results = dict(results)
        lines = [
            f"initial backup of {len(self.failures) + len(self.timeouts)} of {total} VM(s) in vault "
            f"{vault_name} did not succeed ({len(self.results)} succeeded):"
        ]
        if self.failures:
            lines.append(f"  failed ({len(self.failures)}):")
            lines += [f"    - {f.describe()}" for f in self.failures]
        failing = [t for t in self.timeouts if t.last_error]
        running = [t for t in self.timeouts if not t.last_error]
        if failing:
            lines.append(
                f"  not verified within timeoutMinutes={timeout_minutes:g} because an Azure call kept failing "
                f"({len(failing)}); the next `pulumi up` resumes without triggering again where a job exists:"
            )
            lines += [f"    - {t.describe()}" for t in failing]
        if running:
            lines.append(
                f"  still running after timeoutMinutes={timeout_minutes:g} ({len(running)}); the next "
                "`pulumi up` resumes waiting on the same job(s) without triggering again:"
            )
            lines += [f"    - {t.describe()}" for t in running]
        super().__init__("\n".join(lines))


#: ``triggering``: owned by a trigger thread (the polls leave it alone until it is ``waiting``).
Phase = Literal["queued", "triggering", "waiting", "done", "failed"]


@dataclass
class _Tracked:
    """Mutable per-VM progress of one run."""

    vm: VmRef
    phase: Phase = "queued"
    job_id: str | None = None
    status: str = ""
    adopted: bool = False
    triggered_at: dt.datetime | None = None
    #: Lower bound for this VM's job start: keeps the batched list window tight.
    since: dt.datetime | None = None
    #: The job id is unknown (adopting someone else's running backup): find it in the list.
    lookup: bool = False
    #: Our trigger's operation was still InProgress when last checked (and ``lookup`` is set): its
    #: status is checked once per poll until the operation resolves or the job shows up in the list.
    operation_id: str | None = None
    job: JobInfo | None = None
    result: VmResult | None = None
    failure: VmFailure | None = None
    notes: list[str] = field(default_factory=list)
    #: ``<operationId>: <status and code>`` of the last Azure call about this VM that failed; cleared
    #: when the next job list succeeds. Named in the timeout error: it is why the VM is not verified.
    last_error: str | None = None
    #: Azure throttled the trigger with a ``Retry-After`` that fits the time budget: trigger again then.
    retry_at: dt.datetime | None = None
    #: The trigger POST was sent but its response was lost: the job it started is looked for.
    lost_trigger: AzureError | None = None
    lost_lists: int = 0


class InitialBackupVerifier:
    """Runs steps 1-5 of the module docstring for one vault. Create one per run."""

    def __init__(
        self,
        api: BackupApiLike,
        settings: BackupSettings,
        *,
        vault_name: str = "vault",
        clock: Callable[[], dt.datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = LOG,
        trigger_workers: int = TRIGGER_WORKERS,
        read_workers: int = 32,
        adopt_lookback: dt.timedelta = dt.timedelta(hours=24),
        summary_every_seconds: float = 60.0,
    ) -> None:
        self.api = api
        self.settings = settings
        self.mode: VerifyMode = settings.verify
        self.vault_name = vault_name
        self.clock = clock
        self.sleep = sleep
        self.log = logger
        self.trigger_workers = max(1, trigger_workers)
        #: Recovery point lists and operation checks of one poll run on this many threads: at the
        #: poll that sees a fleet's jobs complete, they are the run's tail.
        self.read_workers = max(1, read_workers)
        self.adopt_lookback = adopt_lookback
        self.summary_every_seconds = summary_every_seconds
        self._lock = threading.Lock()
        self._last_summary: tuple[int, int, int] | None = None
        self._last_summary_at: dt.datetime | None = None

    # --- entry point ------------------------------------------------------------------------

    def run(self, vms: Sequence[VmRef], previous: Mapping[str, VmResult] | None = None) -> dict[str, VmResult]:
        """Return ``{vm key: VmResult}`` for every VM, or raise :class:`InitialBackupError`."""
        previous = previous or {}
        start = self.clock()
        deadline = start + dt.timedelta(minutes=float(self.settings.timeout_minutes))
        self._deadline = deadline
        self._poll_not_before = start
        set_budget = getattr(self.api, "set_time_budget", None)
        if callable(set_budget):  # the API's own retries then never sleep past the deadline either
            set_budget(lambda: (deadline - self.clock()).total_seconds())
        tracked = [self._from_previous(vm, previous.get(vm.key)) for vm in _unique(vms)]
        queued = [t for t in tracked if t.phase == "queued"]
        self._in_flight = 0
        self._idle = threading.Event()
        self._idle.set()
        self._first_batch = False
        self._triggers = trigger_pool(self.trigger_workers)
        self._futures: list[Future[None]] = []
        try:
            if queued:
                self._adopt_existing_jobs(queued, start)
                to_trigger = [t for t in queued if t.phase == "queued"]
                if to_trigger:
                    self._first_batch = True
                    self._trigger_all(to_trigger)  # sent by the trigger threads while _wait polls
            self._wait(tracked, deadline)
        finally:
            # The pool is shared: cancel this run's triggers that never started (past the deadline)
            # and wait for those being sent, so no trigger thread touches this run after it returns.
            with self._lock:
                futures = list(self._futures)
            for future in futures:
                future.cancel()
            wait_futures(futures)
        for t in tracked:
            if t.phase == "triggering":  # its turn never came before the deadline
                t.phase = "queued"
                t.last_error = t.last_error or "not triggered before timeoutMinutes ran out"
        self._summary(tracked)
        return self._finish(tracked)

    # --- step 1: previous results ----------------------------------------------------------

    def _from_previous(self, vm: VmRef, prev: VmResult | None) -> _Tracked:
        t = _Tracked(vm)
        if prev is None:
            self.log.info("%s: queued", vm.name)
            return t
        if prev.satisfies(self.mode):
            t.phase, t.result = "done", replace(prev, vm_id=vm.vm_id)
            t.job_id, t.status = prev.job_id, prev.status
            self.log.info("%s: already verified (job %s, %s); not triggering again", vm.name, prev.job_id, prev.status)
            return t
        if prev.job_id and prev.status not in FAILED:
            t.phase, t.job_id, t.status, t.adopted = "waiting", prev.job_id, prev.status, prev.adopted
            t.triggered_at = parse_iso(prev.triggered_at)
            t.since = t.triggered_at
            self.log.info("%s: resuming job %s (last seen %s); not triggering again", vm.name, prev.job_id, prev.status)
            return t
        self.log.info("%s: queued (previous result %s is not usable)", vm.name, prev.status or "empty")
        return t

    # --- step 2: adopt running or just-completed jobs --------------------------------------

    def _adopt_existing_jobs(self, queued: list[_Tracked], now: dt.datetime) -> None:
        try:
            # Running backups may have started long ago (a first backup of a large VM can take
            # days): look a month back, but only at InProgress jobs. Terminal jobs: the last day.
            jobs = self._running_jobs(now) + self.api.list_backup_jobs(now - self.adopt_lookback, now + CLOCK_SLACK)
        except AzureError as error:
            # Not fatal: a trigger while a backup runs fails with UserErrorBackupOperationInProgress
            # and is adopted then; we only lose the "completed recently" shortcut.
            self.log.warning("could not list recent backup jobs (%s); triggering without that check", error_code(error))
            return
        for t in queued:
            newest = _newest([j for j in jobs if j.operation.lower() == "backup" and j.belongs_to(t.vm)])
            if newest is None or newest.status not in STARTED_OK:
                continue
            t.phase, t.job_id, t.adopted = "waiting", newest.job_id, True
            t.triggered_at = t.since = newest.start_time
            self.log.info(
                "%s: adopting existing backup job %s (%s, started %s); not triggering",
                t.vm.name,
                newest.job_id,
                newest.status,
                iso(newest.start_time),
            )
            self._apply_job(t, newest)

    # --- step 3: trigger --------------------------------------------------------------------

    def _trigger_all(self, to_trigger: list[_Tracked]) -> None:
        """Hand the VMs to the trigger threads and return at once: the wait loop polls meanwhile."""
        expiry = self.clock() + dt.timedelta(days=self.settings.retain_days)
        with self._lock:
            for t in to_trigger:
                t.phase = "triggering"
            self._in_flight += len(to_trigger)
            self._idle.clear()
        for t in to_trigger:
            future: Future[None] = self._triggers.submit(self._run_trigger, t, expiry)
            with self._lock:
                self._futures.append(future)
            future.add_done_callback(self._trigger_finished)

    def _trigger_finished(self, _future: Future[None]) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight <= 0:
                self._idle.set()

    def _run_trigger(self, t: _Tracked, expiry: dt.datetime) -> None:
        """One VM's trigger on a trigger thread; ``waiting`` is its last write, so a poll never sees
        it half-done."""
        if self.clock() >= self._deadline:
            return  # stays "triggering": reported as not triggered in time
        try:
            self._trigger_one(t, expiry)
        except Exception as error:  # never lose a VM to an unexpected error on a worker thread
            self._fail(t, None, type(error).__name__, f"{TRIGGER_CALL} failed: {describe_error(error)}")
        finally:
            if t.phase == "triggering":
                t.phase = "waiting"

    def _trigger_one(self, t: _Tracked, expiry: dt.datetime) -> None:
        t.triggered_at = self.clock()
        t.since = t.triggered_at
        t.retry_at = None
        try:
            operation_id = self.api.trigger_backup(t.vm, expiry)
        except ServiceResponseError as error:
            # The POST went out and only its answer was lost: Azure may well have started the job.
            # Look for it in the batched job list (adopting it) rather than failing a VM that backs up.
            t.lookup, t.adopted, t.lost_trigger = True, True, error
            t.last_error = f"{TRIGGER_CALL}: {describe_error(error)}"
            self.log.warning("%s: the trigger's response was lost (%s); looking for its job", t.vm.name, t.last_error)
            return
        except AzureError as error:
            if not self._throttled(t, error):
                self._fail(t, None, error_code(error), f"{TRIGGER_CALL} failed: {describe_error(error)}")
            return
        self.log.info("%s: triggered (operation %s)", t.vm.name, operation_id)
        t.operation_id, t.lookup = operation_id, True
        if self.mode == "none":
            # Nothing is polled in this mode: the operation names the job now (or at the next poll).
            self._check_operation(t)
        # Otherwise no operation status GET: the VM's running job is matched in the next batched job
        # list; only a VM whose job is not listed by then has its operation checked (which reports
        # a trigger that failed asynchronously with its code).

    def _throttled(self, t: _Tracked, error: AzureError) -> bool:
        """A transient trigger error with a ``Retry-After`` longer than the API layer sleeps on: wait
        that long when it fits the remaining ``timeoutMinutes`` (the VM is retried then, other VMs are
        polled meanwhile), never past the deadline. Returns False when the VM must fail now."""
        delay = retry_after_seconds(error)
        if delay is None or not is_transient(error):
            return False
        now = self.clock()
        left = (self._deadline - now).total_seconds()
        if delay >= left:
            code = error_code(error)
            self._fail(
                t,
                None,
                code,
                f"{TRIGGER_CALL} failed: {describe_error(error)} (Azure asked to retry after {delay:g} s, more than "
                f"the {max(0.0, left):.0f} s left of timeoutMinutes={float(self.settings.timeout_minutes):g})",
            )
            return True
        t.retry_at = now + dt.timedelta(seconds=delay)  # published as waiting by _run_trigger
        t.last_error = f"{TRIGGER_CALL}: {describe_error(error)} (Retry-After {delay:g} s)"
        self.log.warning("%s: throttled; triggering again in %g s as Azure asked", t.vm.name, delay)
        return True

    def _check_operation(self, t: _Tracked) -> None:
        """One ``backup_operation_statuses.get`` of the VM's pending trigger operation, applied."""
        assert t.operation_id is not None
        try:
            op = self.api.operation_status(t.operation_id)
        except AzureError as error:
            # The POST was accepted, so a job exists: find it in the batched job list.
            self.log.warning("%s: operation status unavailable (%s); looking for the job", t.vm.name, error_code(error))
            t.operation_id, t.lookup = None, True
            t.last_error = f"{OPERATION_CALL}: {describe_error(error)}"
            return
        self._apply_operation(t, op)

    def _apply_operation(self, t: _Tracked, op: OperationInfo) -> None:
        """What a trigger operation's status means for the VM (after the POST, or at a poll)."""
        if op.status == "InProgress":
            t.lookup = True  # keeps t.operation_id: matched in the job list, or re-checked next poll
            return
        t.operation_id = None
        if op.status == "Succeeded" and op.job_id:
            t.job_id, t.lookup = op.job_id, False
            if self.mode == "none":
                self._done(t, status=TRIGGERED)
            else:
                self.log.info("%s: job %s accepted", t.vm.name, op.job_id)
            return
        if op.error_code == IN_PROGRESS_CODE:
            t.adopted, t.lookup = True, True
            t.since = None  # the running job started before our trigger
            self.log.info("%s: a backup is already in progress; adopting it instead of failing", t.vm.name)
            return
        if op.status == "Succeeded":
            t.lookup = True
            return
        t.lookup = False
        self._fail(t, None, op.error_code or f"Operation{op.status}", op.error_message or "the trigger failed")

    # --- step 4: the batched wait -----------------------------------------------------------

    def _wait(self, tracked: list[_Tracked], deadline: dt.datetime) -> None:
        interval = dt.timedelta(seconds=float(self.settings.poll_seconds))
        # While the first triggers are still being sent (ARM paces a fleet's writes to ~10/s), the
        # VMs already triggered are polled every TRIGGERING_POLL_INTERVALS intervals, from the start.
        spaced = interval * TRIGGERING_POLL_INTERVALS
        next_poll = self.clock() + (spaced if self._first_batch else dt.timedelta(0))
        while True:
            triggering = not self._idle.is_set()
            if not triggering and self._first_batch:
                # Every first trigger has been sent: poll now, and count the cadence from here (every
                # job started by now, so the last job's end is as close to a poll as it is to a trigger).
                self._first_batch = False
                next_poll = self.clock()
            if not triggering and not any(t.phase in ("waiting", "triggering") for t in tracked):
                return
            now = self.clock()
            due = [t for t in tracked if t.phase == "waiting" and t.retry_at is not None and t.retry_at <= now]
            if due:
                self._trigger_all(due)  # throttled triggers whose Retry-After has passed
            if now >= next_poll:
                self._poll([t for t in tracked if t.phase == "waiting" and t.retry_at is None])
                self._summary(tracked)
                # A throttled job list's Retry-After (longer than the SDK sleeps on) moves the next poll.
                next_poll = max(next_poll + (spaced if self._first_batch else interval), self._poll_not_before)
            triggering = not self._idle.is_set()
            if not triggering and self._first_batch:
                continue  # the last first trigger was sent during this poll: back to the top, which polls now
            if not triggering and not any(t.phase in ("waiting", "triggering") for t in tracked):
                return
            now = self.clock()
            remaining = (deadline - now).total_seconds()
            if remaining <= 0:
                return
            if next_poll <= now:
                # This poll took a whole interval or more: poll again at once, and count the next
                # interval from now rather than firing the missed polls back to back.
                next_poll = now
                continue
            if triggering:
                # Triggers in flight: look again shortly (or as soon as the last one is sent).
                self._idle.wait(TRIGGER_WAIT_SLICE)
                continue
            # Fixed cadence: the next poll is due one interval after this one started, not after
            # its work (paged list, recovery points) ended, so the work's time does not add up.
            # A throttled trigger may be due before that.
            wake = min([next_poll] + [t.retry_at for t in tracked if t.phase == "waiting" and t.retry_at])
            self.sleep(min(max(0.0, (wake - now).total_seconds()), remaining))

    def _poll(self, waiting: list[_Tracked]) -> None:
        """One poll: the vault's job list, each VM's job applied, pending operations re-checked, and
        a recovery point list for each VM whose job completed."""
        if not waiting:
            return
        early: dict[int, _Tracked] = {}
        pools: list[ThreadPoolExecutor] = []
        on_page: Callable[[list[JobInfo]], None] | None = None
        if self.mode == "completed" and getattr(self.api, "streams_job_pages", False):
            known = {t.job_id.lower(): t for t in waiting if t.job_id and not t.lookup}

            def on_page(batch: list[JobInfo]) -> None:
                # A known job seen Completed on this page: its recovery point list starts now, while
                # the later pages of a fleet's job list still load (the poll's tail at fleet size).
                for job in batch:
                    t = known.pop(job.job_id.lower(), None)
                    if t is None or job.status not in COMPLETED or t.phase != "waiting":
                        continue
                    self._apply_job(t, job)
                    early[id(t)] = t
                    if not pools:
                        pools.append(ThreadPoolExecutor(self.read_workers, thread_name_prefix="recovery-points"))
                    pools[0].submit(self._check_recovery_point, t)

        try:
            jobs = self._list_jobs(waiting, self.clock(), on_page)
            rest = [t for t in waiting if id(t) not in early]
            by_id = {j.job_id.lower(): j for j in jobs or ()}
            if jobs is not None:
                for t in rest:
                    self._observe(t, jobs, by_id)
            # Triggers whose operation was InProgress and whose job is not in this poll's list yet.
            pending = [t for t in rest if t.phase == "waiting" and t.operation_id is not None]
            self._each(pending, partial(self._recheck_operation, by_id=by_id), "trigger-operations")
            if jobs is not None:
                self._check_recovery_points([t for t in rest if self._needs_recovery_point(t)])
        finally:
            for pool in pools:
                pool.shutdown(wait=True)

    def _recheck_operation(self, t: _Tracked, by_id: Mapping[str, JobInfo]) -> None:
        self._check_operation(t)
        if t.phase == "waiting" and t.job_id and not t.lookup:
            job = by_id.get(t.job_id.lower())
            if job is not None:  # in this poll's list (not taken for ours while the operation ran)
                self._apply_job(t, job)

    def _running_jobs(self, now: dt.datetime) -> list[JobInfo]:
        return self.api.list_backup_jobs(now - MAX_JOB_WINDOW, now + CLOCK_SLACK, status="InProgress")

    def _list_jobs(
        self, waiting: list[_Tracked], now: dt.datetime, on_page: Callable[[list[JobInfo]], None] | None = None
    ) -> list[JobInfo] | None:
        # A VM whose job completed (and only waits for its recovery point) needs no list; a job seen
        # before bounds the window by its own (Azure's) start time, a VM not matched yet by our clock.
        starts = [
            t.job.start_time if t.job and t.job.start_time else t.since - LIST_SLACK
            for t in waiting
            if t.since is not None and not (t.job and t.job.status in COMPLETED)
        ]
        # Azure rejects job queries spanning more than ~30 days; older jobs are fetched by id instead.
        start = max(min(starts, default=now - LIST_SLACK) - dt.timedelta(seconds=1), now - MAX_JOB_WINDOW)
        try:
            if on_page is not None:
                lister: Callable[..., list[JobInfo]] = self.api.list_backup_jobs
                jobs = lister(start, now + CLOCK_SLACK, on_page=on_page)
            else:
                jobs = self.api.list_backup_jobs(start, now + CLOCK_SLACK)
            if any(t.since is None for t in waiting):
                # Adopting a backup that was already running when we triggered: it may be old.
                jobs += self._running_jobs(now)
        except AzureError as error:
            delay = retry_after_seconds(error) if is_transient(error) else None
            if delay is not None:
                self._poll_not_before = max(self._poll_not_before, now + dt.timedelta(seconds=delay))
            self.log.warning("job list failed (%s); retrying at the next poll", error_code(error))
            for t in waiting:
                t.last_error = f"{JOB_LIST_CALL}: {describe_error(error)}"
            return None
        for t in waiting:
            if t.lost_trigger is None:
                t.last_error = None
        return jobs

    def _observe(self, t: _Tracked, jobs: list[JobInfo], by_id: Mapping[str, JobInfo]) -> None:
        job: JobInfo | None = None
        if t.job_id:
            job = by_id.get(t.job_id.lower())
            if job is None:
                job = self._get_job(t)
        else:
            mine = [j for j in jobs if j.operation.lower() == "backup" and j.belongs_to(t.vm)]
            running = [j for j in mine if j.status == "InProgress"]
            if t.operation_id is not None:
                # Our trigger's operation has not named its job (we did not ask): only a backup started
                # since our POST can be it, running or (a job shorter than the polls' spacing while
                # triggers are sent) already finished. A job started before it may be an older one (a
                # retry after a quick failure), or someone else's running backup that made our trigger
                # fail (then it is adopted): the operation's status decides those.
                started = t.triggered_at
                since_post = [j for j in mine if started and j.start_time and j.start_time >= started]
                job = _newest([j for j in since_post if j.status == "InProgress"]) or _newest(since_post)
            else:
                since = t.since - CLOCK_SLACK if t.since else None
                recent = [j for j in mine if since is None or (j.start_time is not None and j.start_time >= since)]
                job = _newest(running) or _newest(recent)
            if job is not None:
                t.job_id, t.lookup, t.operation_id = job.job_id, False, None
                t.since = job.start_time or t.since
                if t.lost_trigger is not None:
                    t.lost_trigger, t.last_error = None, None
                    self.log.info("%s: found job %s (%s); adopting it", t.vm.name, job.job_id, job.status)
                else:
                    self.log.info("%s: found job %s (%s)", t.vm.name, job.job_id, job.status)
            elif t.lost_trigger is not None:
                t.lost_lists += 1
                if t.lost_lists >= LOST_TRIGGER_LISTS:
                    self._fail(
                        t,
                        None,
                        error_code(t.lost_trigger),
                        f"{TRIGGER_CALL}: {describe_error(t.lost_trigger)}; and no backup job of the VM appeared "
                        f"in the {t.lost_lists} job lists after it, so the trigger did not start one",
                    )
        if job is not None:
            self._apply_job(t, job)

    def _get_job(self, t: _Tracked) -> JobInfo | None:
        """A known job missing from the window (e.g. resumed from an old run): one GET."""
        assert t.job_id is not None
        try:
            job = self.api.get_job(t.job_id)
            t.since = job.start_time or t.since  # Azure's clock: the next windows include it
            return job
        except ResourceNotFoundError:
            self.log.warning("%s: job %s no longer exists; looking for its backup job again", t.vm.name, t.job_id)
            t.job_id, t.lookup, t.since = None, True, None
        except AzureError as error:
            self.log.warning(
                "%s: job %s unavailable (%s); retrying at the next poll", t.vm.name, t.job_id, error_code(error)
            )
            t.last_error = f"{JOB_GET_CALL}: {describe_error(error)}"
        return None

    def _apply_job(self, t: _Tracked, job: JobInfo) -> None:
        t.job = job
        if job.status != t.status:
            self.log.info("%s: job %s %s", t.vm.name, job.job_id, job.status)
            t.status = job.status
        if job.status in FAILED:
            detailed = job
            if not job.errors:
                try:
                    detailed = self.api.get_job(job.job_id)
                except AzureError:
                    detailed = job
            error = (
                detailed.errors[0] if detailed.errors else JobError(f"Job{job.status}", f"the backup job {job.status}")
            )
            self._fail(t, job.job_id, error.code, error.message, error.recommendations, status=job.status)
        elif self.mode == "none" or (self.mode == "started" and job.status in STARTED_OK):
            self._done(t, status=job.status)

    def _needs_recovery_point(self, t: _Tracked) -> bool:
        return t.phase == "waiting" and self.mode == "completed" and t.job is not None and t.job.status in COMPLETED

    def _check_recovery_points(self, completed: list[_Tracked]) -> None:
        self._each(completed, self._check_recovery_point, "recovery-points")

    def _each(self, tracked: list[_Tracked], work: Callable[[_Tracked], None], name: str) -> None:
        """``work`` for every VM on a bounded pool; each call touches only its own ``_Tracked``."""
        if not tracked:
            return
        workers = min(self.read_workers, len(tracked))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
            list(pool.map(work, tracked))

    def _check_recovery_point(self, t: _Tracked) -> None:
        job = t.job
        assert job is not None
        try:
            points = self.api.recovery_points(t.vm)
        except AzureError as error:
            self.log.warning(
                "%s: recovery points unavailable (%s); retrying at the next poll", t.vm.name, error_code(error)
            )
            t.last_error = f"{RECOVERY_POINTS_CALL}: {describe_error(error)}"
            return
        since = (job.start_time - CLOCK_SLACK) if job.start_time else None
        fresh = [p for p in points if p.time is not None and (since is None or p.time >= since)]
        if not fresh:
            self.log.info("%s: job %s %s but no recovery point yet; waiting", t.vm.name, job.job_id, job.status)
            return
        newest = max(fresh, key=lambda p: p.time or dt.datetime.min.replace(tzinfo=dt.UTC))
        self._done(t, status=job.status, point=newest)

    # --- outcomes ---------------------------------------------------------------------------

    def _done(self, t: _Tracked, status: str, point: RecoveryPointInfo | None = None) -> None:
        job = t.job
        duration = job.duration_seconds if job else None
        if job and duration is None and job.start_time and job.end_time:
            duration = (job.end_time - job.start_time).total_seconds()
        t.phase, t.status = "done", status
        t.result = VmResult(
            vm_id=t.vm.vm_id,
            vm_name=t.vm.name,
            job_id=t.job_id,
            status=status,
            recovery_point_id=point.id if point else None,
            recovery_point_time=iso(point.time) if point else None,
            duration_seconds=round(duration, 3) if duration is not None else None,
            triggered_at=iso(t.triggered_at),
            adopted=t.adopted,
        )
        if point:
            self.log.info(
                "%s: verified: job %s %s, recovery point %s at %s",
                t.vm.name,
                t.job_id,
                status,
                point.name,
                iso(point.time),
            )
        else:
            self.log.info("%s: verified (%s): job %s %s", t.vm.name, self.mode, t.job_id, status)

    def _fail(
        self,
        t: _Tracked,
        job_id: str | None,
        code: str,
        message: str,
        recommendations: Iterable[str] = (),
        status: str = "Failed",
    ) -> None:
        t.phase, t.status = "failed", status
        t.failure = VmFailure(t.vm.name, t.vm.vm_id, job_id, code, message, tuple(recommendations))
        self.log.error("%s", t.failure.describe())

    def _summary(self, tracked: list[_Tracked], force: bool = False) -> None:
        done = sum(t.phase == "done" for t in tracked)
        failed = sum(t.phase == "failed" for t in tracked)
        running = len(tracked) - done - failed
        now = self.clock()
        counts = (done, failed, running)
        stale = (
            self._last_summary_at is None or (now - self._last_summary_at).total_seconds() >= self.summary_every_seconds
        )
        if force or counts != self._last_summary or stale:
            self.log.info(
                "%s: %d of %d %s, %d failed, %d in progress",
                self.vault_name,
                done,
                len(tracked),
                "completed" if self.mode == "completed" else "verified",
                failed,
                running,
            )
            self._last_summary, self._last_summary_at = counts, now

    def _finish(self, tracked: list[_Tracked]) -> dict[str, VmResult]:
        results = {t.vm.key: t.result for t in tracked if t.phase == "done" and t.result is not None}
        failures = [t.failure for t in tracked if t.failure is not None]
        timeouts = [
            VmTimeout(t.vm.name, t.vm.vm_id, t.job_id, t.status, t.last_error)
            for t in tracked
            if t.phase in ("waiting", "queued")
        ]
        if failures or timeouts:
            raise InitialBackupError(
                self.vault_name, failures, timeouts, results, float(self.settings.timeout_minutes), len(tracked)
            )
        return results


def _unique(vms: Sequence[VmRef]) -> list[VmRef]:
    seen: dict[str, VmRef] = {}
    for vm in vms:
        seen.setdefault(vm.key, vm)
    return list(seen.values())


def _newest(jobs: Sequence[JobInfo]) -> JobInfo | None:
    dated = [j for j in jobs if j.start_time is not None]
    if not dated:
        return jobs[0] if jobs else None
    return max(dated, key=lambda j: j.start_time or dt.datetime.min.replace(tzinfo=dt.UTC))


def verify_initial_backups(
    api: BackupApiLike,
    vms: Sequence[VmRef],
    settings: BackupSettings,
    previous: Mapping[str, VmResult] | None = None,
    **options: object,
) -> dict[str, VmResult]:
    """Convenience wrapper: ``InitialBackupVerifier(api, settings, **options).run(vms, previous)``."""
    verifier = InitialBackupVerifier(api, settings, **options)  # type: ignore[arg-type]
    return verifier.run(vms, previous)
