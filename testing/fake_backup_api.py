"""An in-memory stand-in for Azure Backup as the verifier sees it (``protectedvm.verifier.BackupApiLike``).

``tests/test_verifier.py`` drives the verifier over HTTPS through the real SDK against the emulator;
this fake drives the same state machine without sockets, threads racing a clock, or seconds of setup,
so each path of it (job found in the list, job appearing late, trigger response lost then adopted,
asynchronous trigger failure, Failed/Cancelled/CompletedWithWarnings jobs, recovery point late,
throttling within and beyond ``timeoutMinutes``, retry of failed VMs) is one fast, exact test
(``tests/test_verifier_states.py``).

It stands for :class:`protectedvm.azure_client.BackupApi` as a whole, SDK and retry layer included: an
error raised here is what reaches the verifier after ``BackupApi``'s own retries gave up. Nothing here
is invented; every value is the emulator's, which is checked against Azure's published examples
(``tests/emulator/test_conformance.py``):

* the job failure codes, messages and recommendations, and the scripting of a VM's next job (fail,
  hang, cancel, warn) and of request faults (``http``/``drop`` per route, with ``Retry-After``) are the
  emulator's own :class:`emulator.faults.Faults` and :mod:`emulator.catalog`;
* ARM's 429 under its token buckets is the emulator's :class:`emulator.throttle.Throttle` (optional);
* error bodies are :func:`emulator.errors.arm_error_body`, turned into the exception types the SDK
  raises for them (``HttpResponseError``, ``ResourceNotFoundError`` for a 404, ``ServiceResponseError``
  for a connection dropped after the request was sent, with requests' own wording);
* job list filtering is the emulator's OData parser (:func:`emulator.routes.parse_job_filter`) over the
  product's filter (:func:`protectedvm.azure_client.job_filter`), newest first, as the emulator lists;
* job fields (operation ``Backup``, ``containerName`` without its ``IaasVMContainer;`` prefix, friendly
  name, start and end times, duration), the operation statuses (InProgress until the job is listed,
  then Succeeded naming the job, or Failed with ``UserErrorBackupOperationInProgress`` while another
  backup runs), ``Cancelling`` for the emulator's ``cancel_duration`` before ``Cancelled``, and the
  recovery point a Completed/CompletedWithWarnings job leaves (a 14-digit name, the job's start time)
  follow ``emulator/state.py``.

Time is a :class:`emulator.ManualClock` that only :meth:`FakeBackupApi.sleep` moves, so the
verifier's polls, ``Retry-After`` waits and ``timeoutMinutes`` cost no wall time.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceResponseError

from emulator.catalog import IN_PROGRESS_ERROR, job_error
from emulator.catalog import JobError as EmulatorJobError
from emulator.clock import ManualClock
from emulator.errors import ApiError, invalid_input
from emulator.faults import HANG, DropFault, Faults, JobOutcome, fault_error
from emulator.names import container_name
from emulator.routes import parse_job_filter
from emulator.throttle import Throttle
from protectedvm.azure_client import JobError, JobInfo, OperationInfo, RecoveryPointInfo, job_filter
from protectedvm.ids import FABRIC_NAME, VaultRef, VmRef

#: The emulator's defaults (``emulator.Emulator``): seconds a cancelled job shows ``Cancelling``.
CANCEL_DURATION = 10.0
#: What requests/urllib3 raise when the connection drops after the request was sent (the emulator's
#: ``faults.drop`` over HTTPS gives this text, see tests/test_bad_input.py).
DROPPED = "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))"
#: The emulator's routes (``emulator.faults.ROUTES``) of the calls the verifier makes.
TRIGGER, OPERATION, JOBS_LIST, JOB_GET, RECOVERY_POINTS = (
    "backup.trigger",
    "backupOperations.get",
    "jobs.list",
    "job.get",
    "recoveryPoints.list",
)


@dataclass
class FakeJob:
    """A backup job; ``operation``, ``status``, ``job_id`` and ``start_time`` are the attributes the
    emulator's job filter reads."""

    job_id: str
    vm: VmRef
    started_at: float
    start_time: dt.datetime
    outcome: JobOutcome
    duration: float
    visible_at: float
    operation: str = "Backup"
    status: str = "InProgress"
    end_time: dt.datetime | None = None


@dataclass
class FakeOperation:
    vm: VmRef
    job_id: str | None
    error: EmulatorJobError | None = None


@dataclass
class FakeItem:
    vm: VmRef
    points: list[tuple[str, dt.datetime, float]] = field(default_factory=list)  # name, time, listed from


def arm_error(error: ApiError) -> HttpResponseError:
    """The exception the SDK raises for the emulator's ARM error answer."""
    response = _Response(error.status, error.headers, json.dumps(error.body()))
    if error.status == 404:
        return ResourceNotFoundError(response=response)  # the SDK's error map for 404
    return HttpResponseError(response=response)


class _Response:
    """The parts of an azure-core HTTP response that ``HttpResponseError`` and the verifier read."""

    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        self.status_code = status
        self.reason = HTTPStatus(status).phrase
        self.headers = dict(headers)
        self.content_type = "application/json"
        self.request = None
        self._body = body

    def text(self, encoding: str | None = None) -> str:
        return self._body

    def body(self) -> bytes:
        return self._body.encode()


class FakeBackupApi:
    """One vault's backups in memory. Script it through :attr:`faults` (the emulator's), the
    ``job_appearance_delay`` and ``operation_delay`` switches (as on ``Emulator``), and the helpers
    below; read :attr:`counts` (requests per emulator route), :attr:`sleeps` and :meth:`trigger_count`."""

    def __init__(
        self,
        vault: VaultRef,
        *,
        job_seconds: float = 120.0,
        job_appearance_delay: float = 0.0,
        operation_delay: float = 0.0,
        page_size: int = 50,
        throttle: Throttle | None = None,
        start: dt.datetime = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC),
    ) -> None:
        self.vault = vault
        self.job_seconds = job_seconds
        self.job_appearance_delay = job_appearance_delay
        self.operation_delay = operation_delay
        self.page_size = page_size
        self.throttle = throttle
        self.clock = ManualClock()
        self.start = start
        self.faults = Faults()
        self.counts: Counter[str] = Counter()
        self.sleeps: list[float] = []
        self._lock = threading.RLock()
        self._rng = random.Random(7)
        self._items: dict[str, FakeItem] = {}
        self._jobs: dict[str, FakeJob] = {}
        self._operations: dict[str, tuple[float, FakeOperation]] = {}
        self._triggers: Counter[str] = Counter()
        self._lost_responses: Counter[str] = Counter()
        self._point_delay: dict[str, float] = {}
        self._operation_failures: dict[str, str] = {}

    # --- the verifier's clock ------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.clock.now())

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(max(0.0, seconds))

    # --- set-up and scripting ------------------------------------------------------------------

    def protect(self, vm_ids: Iterable[str]) -> list[VmRef]:
        vms = [VmRef.from_id(vm_id) for vm_id in vm_ids]
        with self._lock:
            for vm in vms:
                self._items[vm.key] = FakeItem(vm)
        return vms

    def start_job(self, vm: VmRef, *, ago: float = 0.0, listed_after: float = 0.0) -> str:
        """A backup started outside the verifier (portal "Backup now") ``ago`` seconds before now and
        listed from ``listed_after`` seconds after now (Azure lists a new job asynchronously)."""
        with self._lock:
            job = self._new_job(vm, self.faults.take_job_outcome(vm.name), self.clock.now() - ago, False)
            job.visible_at = self.clock.now() + listed_after
            return job.job_id

    def lose_trigger_responses(self, vm: VmRef, times: int = 1) -> None:
        """The VM's next ``times`` triggers reach Azure (a job starts) but their answer is lost."""
        self._lost_responses[vm.key] += times

    def fail_trigger_operations(self, vm: VmRef, code: str) -> None:
        """The VM's triggers are accepted (202) and their operation then ends Failed with ``code``
        (Azure's wording from the emulator's catalog); no job starts."""
        self._operation_failures[vm.key] = code

    def delay_recovery_points(self, vm: VmRef, seconds: float) -> None:
        """The recovery point of the VM's completed jobs is listed only ``seconds`` after the job ended."""
        self._point_delay[vm.key] = seconds

    def trigger_count(self, vm: VmRef) -> int:
        """Backup POSTs Azure processed for the VM (answered or not; refused ones not counted)."""
        return self._triggers[vm.key]

    def jobs_of(self, vm: VmRef) -> list[FakeJob]:
        with self._lock:
            return [job for job in self._jobs.values() if job.vm.key == vm.key]

    # --- BackupApiLike ---------------------------------------------------------------------------

    def trigger_backup(self, vm: VmRef, expiry: dt.datetime) -> str:
        with self._lock:
            self._request(TRIGGER, "POST")
            item = self._items.get(vm.key)
            if item is None:
                raise arm_error(self._item_not_found(vm))
            if expiry <= self.now():
                raise arm_error(invalid_input("recoveryPointExpiryTimeInUTC must be in the future."))  # as the emulator
            self._advance()
            self._triggers[vm.key] += 1
            op_id = str(uuid.uuid4())
            code = self._operation_failures.get(vm.key)
            if code is not None:
                operation = FakeOperation(vm, None, job_error(code))
            elif any(j.status in ("InProgress", "Cancelling") for j in self.jobs_of(vm)):
                operation = FakeOperation(vm, None, IN_PROGRESS_ERROR)
            else:
                job = self._new_job(vm, self.faults.take_job_outcome(vm.name), self.clock.now(), appears_later=True)
                operation = FakeOperation(vm, job.job_id)
            self._operations[op_id] = (self.clock.now(), operation)
            if self._lost_responses[vm.key] > 0:
                self._lost_responses[vm.key] -= 1
                raise ServiceResponseError(DROPPED)
            return op_id

    def operation_status(self, operation_id: str) -> OperationInfo:
        with self._lock:
            self._request(OPERATION, "GET")
            self._advance()
            found = self._operations.get(operation_id)
            if found is None:
                raise arm_error(
                    ApiError(404, "BMSUserErrorOperationNotFound", f"Operation '{operation_id}' was not found.")
                )
            started_at, op = found
            job = self._jobs.get(op.job_id) if op.job_id else None
            now = self.clock.now()
            if now - started_at < self.operation_delay or (job is not None and now < job.visible_at):
                return OperationInfo("InProgress")
            if op.error is not None:
                return OperationInfo("Failed", error_code=op.error.code, error_message=op.error.message)
            return OperationInfo("Succeeded", job_id=op.job_id)

    #: Like ``BackupApi``: ``on_page`` sees each page of the job list as it arrives.
    streams_job_pages = True

    def list_backup_jobs(
        self,
        start: dt.datetime,
        end: dt.datetime,
        status: str | None = None,
        on_page: object = None,
    ) -> list[JobInfo]:
        with self._lock:
            self._request(JOBS_LIST, "GET")
            self._advance()
            # The emulator's filter reads only operation, status, job_id and start_time, which FakeJob has.
            predicate: Callable[[Any], bool] = parse_job_filter(job_filter(start, end, status))
            now = self.clock.now()
            jobs = [j for j in self._jobs.values() if now >= j.visible_at and predicate(j)]
            jobs.sort(key=lambda j: j.start_time, reverse=True)  # newest first, as the emulator lists
            found = [self._job_info(j) for j in jobs]
            pages = [found[i : i + self.page_size] for i in range(0, len(found), self.page_size)] or [[]]
            self.counts[JOBS_LIST] += len(pages) - 1  # every next page is one more request
        if callable(on_page):
            for page in pages:
                on_page(page)
        return found

    def get_job(self, job_id: str) -> JobInfo:
        with self._lock:
            self._request(JOB_GET, "GET")
            self._advance()
            job = self._jobs.get(job_id)
            if job is None or self.clock.now() < job.visible_at:
                missing = f"Job '{job_id}' was not found in vault '{self.vault.name}'."  # as the emulator says
                raise arm_error(ApiError(404, "BMSUserErrorJobNotFound", missing))
            return self._job_info(job)

    def recovery_points(self, vm: VmRef) -> list[RecoveryPointInfo]:
        with self._lock:
            self._request(RECOVERY_POINTS, "GET")
            self._advance()
            item = self._items.get(vm.key)
            if item is None:
                raise arm_error(self._item_not_found(vm))
            now = self.clock.now()
            item_id = (
                f"{self.vault.id}/backupFabrics/{FABRIC_NAME}/protectionContainers/{vm.container_name}"
                f"/protectedItems/{vm.protected_item_name}"
            )
            return [
                RecoveryPointInfo(id=f"{item_id}/recoveryPoints/{name}", name=name, time=moment)
                for name, moment, listed_from in reversed(item.points)
                if now >= listed_from
            ]

    # --- the emulator's job state machine, in memory ----------------------------------------------

    def _request(self, route: str, method: str) -> None:
        """Count the request, then answer a scripted fault or ARM's throttling, as the emulator does."""
        self.counts[route] += 1
        fault = self.faults.take_request_fault(route)
        if isinstance(fault, DropFault):
            raise ServiceResponseError(DROPPED)
        if fault is not None:
            raise arm_error(fault_error(fault))
        if self.throttle is not None:
            try:
                self.throttle.take(self.vault.subscription_id, method)
            except ApiError as refused:
                raise arm_error(refused) from None

    def _new_job(self, vm: VmRef, outcome: JobOutcome, started_at: float, appears_later: bool) -> FakeJob:
        job = FakeJob(
            job_id=str(uuid.uuid4()),
            vm=vm,
            started_at=started_at,
            start_time=self.start + dt.timedelta(seconds=started_at),
            outcome=outcome,
            duration=self.job_seconds,
            visible_at=self.clock.now() + (self.job_appearance_delay if appears_later else 0.0),
        )
        self._jobs[job.job_id] = job
        self._advance()
        return job

    def _advance(self) -> None:
        now = self.clock.now()
        for job in self._jobs.values():
            if job.status not in ("InProgress", "Cancelling") or job.outcome.status == HANG:
                continue
            ends_at = job.started_at + job.duration
            if now < ends_at:
                if job.outcome.status == "Cancelled" and now >= ends_at - CANCEL_DURATION:
                    job.status = "Cancelling"
                continue
            job.status = job.outcome.status
            job.end_time = self.start + dt.timedelta(seconds=ends_at)
            if job.status in ("Completed", "CompletedWithWarnings"):
                name = str(self._rng.randrange(10**13, 10**14))
                listed_from = ends_at + self._point_delay.get(job.vm.key, 0.0)
                self._items[job.vm.key].points.append((name, job.start_time, listed_from))

    def _job_info(self, job: FakeJob) -> JobInfo:
        error = job.outcome.error if job.status == "Failed" else None
        end = job.end_time
        elapsed = ((end or self.now()) - job.start_time).total_seconds()
        return JobInfo(
            job_id=job.job_id,
            operation=job.operation,
            status=job.status,
            entity_friendly_name=job.vm.name,
            # The emulator's (and Azure's) job containerName drops the "IaasVMContainer;" prefix.
            container_name=container_name(job.vm.resource_group, job.vm.name).split(";", 1)[1],
            start_time=job.start_time,
            end_time=end,
            duration_seconds=elapsed,
            errors=(JobError(error.code, error.message, tuple(error.recommendations)),) if error else (),
        )

    def _item_not_found(self, vm: VmRef) -> ApiError:
        # emulator/state.py require_item: the item is not in the vault (protection never enabled).
        return ApiError(
            404,
            "BMSUserErrorItemNotFound",
            f"Protected item '{vm.protected_item_name}' was not found in container '{vm.container_name}' of vault "
            f"'{self.vault.name}'.",
        )
