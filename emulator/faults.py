"""Scriptable failures, so callers' retry and error paths run against real HTTP behaviour."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from .catalog import KNOWN_RESTORE_ERRORS, JobError, job_error
from .errors import ApiError

ROUTES = (
    "vault.put",
    "vault.get",
    "policy.put",
    "policy.get",
    "item.put",
    "item.get",
    "item.delete",
    "backup.trigger",
    "backupOperations.get",
    "item.operationsStatus.get",
    "item.operationResults.get",
    "jobs.list",
    "job.get",
    "job.cancel",
    "job.operationResults.get",
    "items.list",
    "recoveryPoints.list",
    "recoveryPoint.get",
    # The restore drill's routes (restore and the managed-disk slice of Microsoft.Compute).
    "restore.trigger",
    "compute.vm.get",
    "compute.disks.list",
    "compute.disk.get",
    "compute.disk.patch",
    "compute.disk.delete",
)

_DEFAULT_CODES = {
    429: ("TooManyRequests", "The request is being throttled as the limit has been reached for operation type."),
    500: ("InternalServerError", "The server encountered an internal error. Please retry the request."),
    502: ("BadGateway", "The gateway did not receive a response from the backend in time."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry the request."),
    504: ("GatewayTimeout", "The gateway did not receive a response within the specified time period."),
}


@dataclass(frozen=True)
class HttpFault:
    status: int
    code: str
    message: str
    retry_after: float | None


@dataclass(frozen=True)
class DropFault:
    pass


@dataclass(frozen=True)
class JobOutcome:
    """How the next backup job for a VM ends; ``Completed`` is the default when nothing is scripted."""

    status: str
    error: JobError | None = None


HANG = "Hang"


def vm_key(vm_or_item_name: str) -> str:
    """Accept a VM name or a protected item/container name (``VM;iaasvmcontainerv2;rg;vm``)."""
    return vm_or_item_name.rsplit(";", 1)[-1].strip().lower()


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, deque[HttpFault | DropFault]] = {}
        self._jobs: dict[str, deque[JobOutcome]] = {}
        self._restores: dict[str, deque[JobOutcome]] = {}

    # --- request faults -------------------------------------------------
    def http(
        self,
        route: str,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next ``times`` requests to ``route`` answer ``status`` with an ARM error body."""
        self._check_route(route)
        default_code, default_message = _DEFAULT_CODES.get(status, ("InjectedFault", "Injected fault."))
        fault = HttpFault(status, code or default_code, message or default_message, retry_after)
        with self._lock:
            self._requests.setdefault(route, deque()).extend([fault] * times)

    def drop(self, route: str, times: int = 1) -> None:
        """The next ``times`` requests to ``route`` get the connection closed without any response."""
        self._check_route(route)
        with self._lock:
            self._requests.setdefault(route, deque()).extend([DropFault()] * times)

    def take_request_fault(self, route: str) -> HttpFault | DropFault | None:
        with self._lock:
            queue = self._requests.get(route)
            return queue.popleft() if queue else None

    # --- job faults -----------------------------------------------------
    def fail_next_job(
        self,
        vm_or_item_name: str,
        code: str,
        message: str | None = None,
        recommendations: list[str] | None = None,
    ) -> None:
        self._add_job(vm_or_item_name, JobOutcome("Failed", job_error(code, message, recommendations)))

    def hang_next_job(self, vm_or_item_name: str) -> None:
        """The job stays InProgress forever, like a backup stuck on a wedged VM agent."""
        self._add_job(vm_or_item_name, JobOutcome(HANG))

    def cancel_next_job(self, vm_or_item_name: str) -> None:
        self._add_job(vm_or_item_name, JobOutcome("Cancelled"))

    def warn_next_job(self, vm_or_item_name: str) -> None:
        """Ends CompletedWithWarnings with a crash-consistent recovery point (app consistency failed)."""
        self._add_job(vm_or_item_name, JobOutcome("CompletedWithWarnings"))

    def take_job_outcome(self, vm_name: str) -> JobOutcome:
        with self._lock:
            queue = self._jobs.get(vm_key(vm_name))
            return queue.popleft() if queue else JobOutcome("Completed")

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._jobs.clear()
            self._restores.clear()

    def _add_job(self, vm_or_item_name: str, outcome: JobOutcome) -> None:
        with self._lock:
            self._jobs.setdefault(vm_key(vm_or_item_name), deque()).append(outcome)

    @staticmethod
    def _check_route(route: str) -> None:
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; known routes: {', '.join(ROUTES)}")

    # --- restore faults (the drill) ---------------------------------------------
    def fail_next_restore(self, vm_or_item_name: str, code: str, message: str | None = None) -> None:
        """The VM's next Restore job fails with Azure error ``code``: Azure's wording for the codes in
        ``KNOWN_RESTORE_ERRORS``, a generic message for any other (to model new failures)."""
        known = KNOWN_RESTORE_ERRORS.get(code)
        if known is not None and message is None:
            error = known
        else:
            error = job_error(code, message or f"The restore operation failed with error {code}.", [])
        self._add_restore(vm_or_item_name, JobOutcome("Failed", error))

    def hang_next_restore(self, vm_or_item_name: str) -> None:
        self._add_restore(vm_or_item_name, JobOutcome(HANG))

    def take_restore_outcome(self, vm_name: str) -> JobOutcome:
        with self._lock:
            queue = self._restores.get(vm_key(vm_name))
            return queue.popleft() if queue else JobOutcome("Completed")

    def _add_restore(self, vm_or_item_name: str, outcome: JobOutcome) -> None:
        with self._lock:
            self._restores.setdefault(vm_key(vm_or_item_name), deque()).append(outcome)


def fault_error(fault: HttpFault) -> ApiError:
    headers = {} if fault.retry_after is None else {"Retry-After": _header_number(fault.retry_after)}
    return ApiError(fault.status, fault.code, fault.message, headers)


def _header_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
