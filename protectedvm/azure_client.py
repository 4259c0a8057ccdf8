"""Thin wrapper over the Recovery Services backup SDK: the only module that touches SDK models.

Everything the verifier needs from Azure is five calls per vault, returned as small frozen
dataclasses so the core logic never depends on SDK model shapes (which changed between SDK majors):

* ``backups.trigger`` ("Backup now"), answering with the operation id from ``Azure-AsyncOperation``;
* ``backup_operation_statuses.get``, which turns that operation into a job id (or an error code);
* ``backup_jobs.list`` with an OData window filter, the one batched poll per vault;
* ``recovery_points.list`` for one item, once its job completed;
* ``protected_items.get`` for the standalone health check.

Pacing and retries: every request first waits for a token of ARM's budget in the process-wide
:mod:`protectedvm.pacing` mirror (shared by every vault of the subscription), so a fleet-sized run
stays under ARM's limits rather than collecting 429s. The SDK pipeline retries GETs on
408/429/5xx and connection errors and honours ``Retry-After`` with a little jitter; we bound that
(``Retry-After`` above ``max_retry_after``, or past the caller's time budget, is not slept on). The SDK
never retries a POST after a dropped connection or a 429 without ``Retry-After``, so
:meth:`BackupApi.trigger_backup` retries those itself, with jittered backoff, until the caller's time
budget (the verifier's ``timeoutMinutes``) says the next delay does not fit: a deadline in time, not a
count of attempts. Retrying a trigger is safe: if the first POST did start a job, Azure fails the
second operation with ``UserErrorBackupOperationInProgress`` and the verifier adopts the running job.

Credentials come from the environment (``DefaultAzureCredential``: OIDC workload identity in
pipelines, ``az login`` locally), in the cloud azure-native deploys to: ``ARM_ENVIRONMENT`` (then
``AZURE_ENVIRONMENT``) names it as for azure-native, so a stack in Azure US Government or China is
verified there with real credentials. ``PROTECTED_VM_ARM_ENDPOINT`` / ``PROTECTED_VM_CA_BUNDLE``
override the ARM endpoint and its CA (the offline emulator; tests and the rehearsal pass its
credential explicitly). No token or header is ever logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup import models as m

from protectedvm.ids import FABRIC_NAME, VM_RESOURCE_TYPE, VaultRef, VmRef
from protectedvm.pacing import ArmPacer, PacingPolicy, pacer_for

ENDPOINT_ENV = "PROTECTED_VM_ARM_ENDPOINT"
ARM_ENDPOINT = "https://management.azure.com"
CA_BUNDLE_ENV = "PROTECTED_VM_CA_BUNDLE"
#: Azure's backup job filter wants local-looking 12-hour timestamps (interpreted as UTC).
JOB_FILTER_TIME_FORMAT = "%Y-%m-%d %I:%M:%S %p"
#: Status codes worth another try: throttling and transient server/gateway errors.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

LOG = logging.getLogger(__name__)
T = TypeVar("T")


class BoundedRetryPolicy(RetryPolicy):
    """The SDK's retry policy, but a ``Retry-After`` longer than ``max_retry_after`` seconds, or than
    the caller's time budget (:attr:`time_left`), is not slept on: the error surfaces to the caller
    instead of blocking a deployment. azure-core sleeps exactly ``Retry-After``, so every thread
    throttled together comes back together; a random ``jitter`` fraction is added to spread them."""

    def __init__(self, *, max_retry_after: float = 120.0, jitter: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_retry_after = max_retry_after
        self.jitter = jitter
        self.time_left: Callable[[], float] | None = None

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after is not None and retry_after > self.max_retry_after:
            return False
        if retry_after is not None and self.time_left is not None and retry_after >= self.time_left():
            return False
        return bool(super().is_retry(settings, response))

    def _sleep_for_retry(self, response: PipelineResponse[Any, Any], transport: Any) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after:
            transport.sleep(retry_after * (1.0 + self.jitter * random.random()))
            return True
        return False

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        return float(super().get_backoff_time(settings)) * (1.0 + self.jitter * random.random())


@dataclass(frozen=True)
class RetrySettings:
    """Bounds for both retry layers. Defaults suit ARM; tests shrink the backoff."""

    sdk_total: int = 5
    backoff_factor: float = 0.8
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    #: Our own attempts at the trigger POST (the SDK makes its own on top for 500/503/504) when the
    #: caller set no time budget; with one (the verifier's ``timeoutMinutes``), the budget decides.
    trigger_attempts: int = 4
    #: Up to this fraction is added at random to every retry delay (Retry-After and backoff), so
    #: threads throttled together do not come back together.
    jitter: float = 0.2


@dataclass(frozen=True)
class ArmCloud:
    """Where ARM and its token authority are for one Azure cloud."""

    name: str
    arm_endpoint: str
    authority_host: str

    @property
    def scope(self) -> str:
        """The ARM token scope of this cloud (the audience is the ARM endpoint)."""
        return f"{self.arm_endpoint}/.default"


#: azure-native's cloud names, from ``ARM_ENVIRONMENT``/``AZURE_ENVIRONMENT`` or ``azure-native:environment``
#: (pulumi-azure-native ``provider/pkg/provider/auth.go`` ``readAzureEnvironmentFromConfig``, names as
#: ``provider/pkg/azure`` ``GetCloudByName``; compared case-insensitively there too). Endpoints and
#: authorities are the azure-sdk's (``azure.identity.AzureAuthorityHosts``; ARM endpoints as the SDK's
#: ``AzureClouds`` ``getArmEndpoint``).
ARM_CLOUDS: dict[str, ArmCloud] = {
    **dict.fromkeys(
        ("", "public"),
        ArmCloud("public", "https://management.azure.com", "login.microsoftonline.com"),
    ),
    **dict.fromkeys(
        ("usgov", "usgovernment", "azureusgovernment", "azureusgovernmentcloud"),
        ArmCloud("usgovernment", "https://management.usgovcloudapi.net", "login.microsoftonline.us"),
    ),
    **dict.fromkeys(
        ("china", "azurechinacloud"),
        ArmCloud("china", "https://management.chinacloudapi.cn", "login.chinacloudapi.cn"),
    ),
}
ENVIRONMENT_ENVS = ("ARM_ENVIRONMENT", "AZURE_ENVIRONMENT")


def arm_cloud(environ: Mapping[str, str] | None = None) -> ArmCloud:
    """The cloud azure-native deploys to, from the same variables it reads. Unlike azure-native
    (which falls back to public for an unknown name), an unknown name is an error: verifying in
    the public cloud a stack deployed elsewhere would report every VM as missing."""
    environ = os.environ if environ is None else environ
    for variable in ENVIRONMENT_ENVS:
        value = environ.get(variable, "")
        if value:
            cloud = ARM_CLOUDS.get(value.strip().lower())
            if cloud is None:
                raise ValueError(
                    f"{variable} = {value!r} is not an Azure cloud azure-native knows: "
                    "use public, usgovernment or china"
                )
            return cloud
    return ARM_CLOUDS["public"]


def default_credential(cloud: ArmCloud | None = None) -> TokenCredential:
    """``DefaultAzureCredential`` against the cloud's token authority; always a real credential
    (the emulator's token is passed explicitly by the tests and the rehearsal)."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(authority=(cloud or arm_cloud()).authority_host)


def make_sdk_client(
    subscription_id: str,
    credential: TokenCredential | None = None,
    *,
    retry: RetrySettings | None = None,
    pool_size: int = 64,
    base_url: str | None = None,
    connection_verify: str | None = None,
    pacing: bool | ArmPacer = True,
) -> RecoveryServicesBackupClient:
    """A backup client for one subscription, honouring the emulator env overrides (explicit
    ``base_url``/``connection_verify`` win, so an in-process rehearsal needs no env changes).

    The connection pool is sized for the verifier's worker threads (requests defaults to 10, which
    makes 16 concurrent triggers discard connections; the process's 32 trigger threads and a poll's 32
    reads may overlap).
    ``pacing``: True shares the process's pacer of this subscription
    (:func:`protectedvm.pacing.pacer_for`), an :class:`ArmPacer` uses that one, False sends
    unpaced (only for measuring an ARM without limits)."""
    import requests
    from requests.adapters import HTTPAdapter

    retry = retry or RetrySettings()
    cloud = arm_cloud()
    base_url = base_url or os.environ.get(ENDPOINT_ENV) or cloud.arm_endpoint
    verify: str | bool = connection_verify or os.environ.get(CA_BUNDLE_ENV) or True
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    transport = RequestsTransport(session=session, session_owner=True, connection_verify=verify)
    policy = BoundedRetryPolicy(
        max_retry_after=retry.max_retry_after,
        jitter=retry.jitter,
        retry_total=retry.sdk_total,
        retry_backoff_factor=retry.backoff_factor,
        retry_backoff_max=retry.backoff_max,
    )
    extra: dict[str, Any] = {}
    if pacing is not False:
        pacer = pacing if isinstance(pacing, ArmPacer) else pacer_for(base_url or ARM_ENDPOINT, subscription_id)
        extra["custom_hook_policy"] = PacingPolicy(pacer)  # after the retry policy: every attempt is paced
    return RecoveryServicesBackupClient(
        credential or default_credential(cloud),
        subscription_id,
        base_url=base_url,
        credential_scopes=[cloud.scope],
        transport=transport,
        retry_policy=policy,
        connection_verify=verify,
        **extra,
    )


# --- plain results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobError:
    code: str
    message: str
    recommendations: tuple[str, ...] = ()

    def describe(self) -> str:
        text = f"{self.code}: {self.message}" if self.message else self.code
        if self.recommendations:
            text += " Recommendations: " + " ".join(self.recommendations)
        return text


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    operation: str
    status: str
    entity_friendly_name: str
    container_name: str | None
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    duration_seconds: float | None
    errors: tuple[JobError, ...] = ()

    def belongs_to(self, vm: VmRef) -> bool:
        """Jobs carry the VM's friendly name and, usually, its container; the container wins
        because two VMs of one vault may share a name across resource groups."""
        if self.container_name:
            return vm.owns_container(self.container_name)
        return self.entity_friendly_name.lower() == vm.name.lower()


@dataclass(frozen=True)
class OperationInfo:
    status: str
    job_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class RecoveryPointInfo:
    id: str
    name: str
    time: dt.datetime | None
    #: ``recoveryPointDiskConfiguration.numberOfDisksIncludedInBackup``: the disks a restore of this
    #: point brings back (selective disk backup); None when Azure does not say.
    disks_included: int | None = None
    #: ``numberOfDisksAttachedToVm``: the VM's disks when the point was taken; None when not said.
    disks_attached: int | None = None


@dataclass(frozen=True)
class ItemHealth:
    protection_state: str | None
    protection_status: str | None
    health_status: str | None
    last_backup_status: str | None
    last_backup_time: dt.datetime | None
    last_recovery_point: dt.datetime | None


#: Microsoft.RecoveryServices/vaults and Microsoft.Compute/virtualMachines API versions for the
#: two plain ARM reads (and one PATCH) outside the backup SDK.
VAULT_API_VERSION = "2025-02-01"
COMPUTE_API_VERSION = "2024-07-01"


@dataclass(frozen=True)
class ItemState:
    protection_state: str
    soft_deleted: bool
    policy_id: str | None


@dataclass(frozen=True)
class VaultSecurity:
    location: str
    immutability: str | None
    soft_delete: str | None


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


@dataclass(frozen=True)
class BackupStatus:
    protection_status: str
    vault_id: str | None
    error_code: str | None = None
    error_message: str | None = None


def _json_body(body: Mapping[str, Any]) -> Any:
    """A raw JSON body for the SDK: its typed models drop or reshape day-two fields
    (``isRehydrate`` without a policy), and IO[bytes] is the overload that sends bytes as-is."""
    import io
    import json

    return io.BytesIO(json.dumps(body).encode())


# --- conversions from SDK models (raw JSON access where the SDK's typing is too strict) --------


def _count(value: object) -> int | None:
    """A disk count as Azure sends it (int32); anything else is "not said", never a guess."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _utc(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = str(value).replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


#: Azure answers ``lastBackupTime: 2001-01-01T00:00:00Z`` for an item that was never backed up (issue 12;
#: the emulator's ``NEVER_BACKED_UP``). Any time at or before it means "never", not a 25-year-old backup.
NEVER_BACKED_UP = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)


def _item_time(value: object) -> dt.datetime | None:
    """A protected item's backup time, with Azure's "never" sentinel turned into None."""
    moment = _utc(value)
    return None if moment is None or moment <= NEVER_BACKED_UP else moment


def _seconds(value: object) -> float | None:
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, str) and value:
        # ISO 8601 (PT1H2M3.5S) or .NET TimeSpan (01:02:03.5); jobs use either.
        try:
            if value.startswith("P"):
                import isodate

                return float(isodate.parse_duration(value).total_seconds())
            days = 0.0
            if "." in value.split(":")[0]:
                day_part, value = value.split(".", 1)
                days = float(day_part)
            hours, minutes, secs = value.split(":")
            return days * 86400 + float(hours) * 3600 + float(minutes) * 60 + float(secs)
        except (ValueError, ImportError):
            return None
    return None


def _raw(model: object) -> Mapping[str, Any]:
    """SDK models are mutable mappings over the wire JSON; reading raw keys sidesteps typed
    accessors that would choke on e.g. a string ``errorCode`` where the spec says int."""
    return model if isinstance(model, Mapping) else {}


_READABLE_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _job_errors(props: Mapping[str, Any]) -> tuple[JobError, ...]:
    """``errorDetails`` of an IaaS VM job, each carrying Azure's readable code whatever field holds it.

    bms.json (AzureIaaSVMErrorInfo, 2024-10-01 and 2026-10-01) types ``errorCode`` as int32 and calls
    ``errorTitle`` "typically, the entity that the error pertains to"; no official example shows a
    failed job. So: a non-numeric ``errorCode`` is the readable code; else an identifier-like
    ``errorTitle`` ("UserErrorGuestAgentStatusUnavailable") is; a bare number becomes
    ``AzureBackupError<n>`` so the message still names something searchable.
    A title that is prose (an entity name) goes into the message instead of being lost.
    """
    errors: list[JobError] = []
    for detail in props.get("errorDetails") or []:
        raw = _raw(detail)
        title = str(raw.get("errorTitle") or "").strip()
        code = raw.get("errorCode")
        code_text = "" if code in (None, "") else str(code).strip()
        numeric = code_text if code_text.lstrip("-").isdigit() else ""
        readable = code_text if code_text and not numeric else ""
        if not readable and _READABLE_CODE.match(title):
            readable = title
        label = readable or (f"AzureBackupError{numeric}" if numeric else "Unknown")
        message = str(raw.get("errorString") or "")
        if title and title != readable:
            message = f"{title}: {message}" if message else title
        errors.append(
            JobError(
                code=label,
                message=message,
                recommendations=tuple(str(r) for r in raw.get("recommendations") or []),
            )
        )
    return tuple(errors)


def job_info(resource: m.JobResource) -> JobInfo:
    props = _raw(resource.get("properties") if isinstance(resource, Mapping) else None)
    return JobInfo(
        job_id=str(resource.name or str(resource.id or "").rsplit("/", 1)[-1]),
        operation=str(props.get("operation") or ""),
        status=str(props.get("status") or ""),
        entity_friendly_name=str(props.get("entityFriendlyName") or ""),
        container_name=str(props["containerName"]) if props.get("containerName") else None,
        start_time=_utc(props.get("startTime")),
        end_time=_utc(props.get("endTime")),
        duration_seconds=_seconds(props.get("duration")),
        errors=_job_errors(props),
    )


def operation_id_from_headers(headers: Mapping[str, str]) -> str:
    """``Azure-AsyncOperation: .../operationsStatus/{id}?api-version=...`` (or ``Location:
    .../operationResults/{id}``) -> ``{id}``, the name ``backup_operation_statuses.get`` takes."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for header in ("azure-asyncoperation", "location"):
        url = lowered.get(header)
        if url:
            path = urllib.parse.urlparse(url).path.rstrip("/")
            return urllib.parse.unquote(path.rsplit("/", 1)[-1])
    raise ValueError("the backup trigger answered without an Azure-AsyncOperation or Location header")


def job_filter(start: dt.datetime, end: dt.datetime, status: str | None = None, operation: str = "Backup") -> str:
    """The one OData filter per poll: IaaS VM jobs of one operation (``Backup``; the restore drill
    asks for ``Restore``) whose start lies in [start, end] (UTC), optionally only those in one status
    (``InProgress`` keeps a month-long window small)."""
    fmt = JOB_FILTER_TIME_FORMAT
    status_clause = f" and status eq '{status}'" if status else ""
    return (
        f"operation eq '{operation}' and backupManagementType eq 'AzureIaasVM'{status_clause}"
        f" and startTime eq '{start.astimezone(dt.UTC).strftime(fmt)}'"
        f" and endTime eq '{end.astimezone(dt.UTC).strftime(fmt)}'"
    )


def is_transient(error: Exception) -> bool:
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return True
    return isinstance(error, HttpResponseError) and error.status_code in TRANSIENT_STATUS


def error_code(error: Exception) -> str:
    if isinstance(error, HttpResponseError):
        code = getattr(error.error, "code", None) if error.error is not None else None
        return str(code or f"HTTP{error.status_code}")
    return type(error).__name__


def describe_error(error: Exception) -> str:
    """One line a person can act on: ``HTTP 429 TooManyRequests: <Azure's message>``, or for a
    request that never got an answer, which host could not be reached and why."""
    if isinstance(error, HttpResponseError):
        code = error_code(error)
        status = f"HTTP {error.status_code} " if error.status_code else ""
        message = first_line(getattr(error.error, "message", None) if error.error is not None else None)
        if not message:
            message = first_line(getattr(error, "reason", None))
        prefix = status if code == f"HTTP{error.status_code}" else f"{status}{code}"
        return f"{prefix.strip()}: {message}" if message else prefix.strip()
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        host = _error_host(error) or "the Azure endpoint"
        reason = _connection_reason(str(error))
        if isinstance(error, ServiceRequestError):
            return f"cannot reach {host}: {reason}"
        return f"no response from {host} (connection dropped after the request was sent): {reason}"
    return f"{type(error).__name__}: {first_line(str(error))}".rstrip(": ")


def first_line(text: object) -> str:
    """The first non-empty line of an error text, trimmed: Azure's messages can run to pages."""
    lines = str(text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _error_host(error: Exception) -> str | None:
    """The host of the request that failed, from the transport's own exception (requests keeps it)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        request = getattr(current, "request", None)
        url = getattr(request, "url", None)
        if isinstance(url, str) and url:
            netloc = urllib.parse.urlparse(url).netloc
            if netloc:
                return netloc
        current = getattr(current, "inner_exception", None) or current.__cause__ or current.__context__
    return None


def _connection_reason(text: str) -> str:
    """The socket-level reason inside urllib3's wrapping (``...Failed to establish a new connection:
    [Errno 111] Connection refused"))`` -> ``Connection refused``; ``('Connection aborted.',
    RemoteDisconnected('Remote end closed connection without response'))`` -> the quoted text): the
    wrapping names the whole URL, which the host already says."""
    patterns = (
        r"Failed to establish a new connection: (?:\[Errno -?\d+\] )?([^\"')]+)",
        r"Failed to resolve [^(]*\((?:\[Errno -?\d+\] )?([^\"')]+)",
        r"RemoteDisconnected\('([^']+)'\)",
        r"ConnectionResetError\(-?\d+, '([^']+)'\)",
        r"SSLError\(\S*\((?:\d+, )?'([^']+)'",
    )
    for pattern in patterns:
        found = re.search(pattern, text)
        if found:
            return found.group(1).strip()
    return first_line(text)[:200]


def retry_after_seconds(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# --- the wrapper -------------------------------------------------------------------------------


class BackupApi:
    """The verifier's view of one vault. Thread-safe as far as the SDK client is (one shared
    ``requests`` session with a pool sized for the trigger threads)."""

    def __init__(
        self,
        client: RecoveryServicesBackupClient,
        vault: VaultRef,
        *,
        retry: RetrySettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.vault = vault
        self.retry = retry or RetrySettings()
        self._sleep = sleep
        self._time_left: Callable[[], float] | None = None

    @staticmethod
    def for_vault(vault: VaultRef, credential: TokenCredential | None = None) -> BackupApi:
        return BackupApi(make_sdk_client(vault.subscription_id, credential), vault)

    def close(self) -> None:
        self.client.close()

    def set_time_budget(self, time_left: Callable[[], float] | None) -> None:
        """Seconds left of the caller's deadline (the verifier's ``timeoutMinutes``): a retry delay
        that does not fit is not slept on; the error goes to the caller instead. The SDK's own retry
        policy gets the same budget."""
        self._time_left = time_left
        policy = getattr(getattr(self.client, "_config", None), "retry_policy", None)
        if isinstance(policy, BoundedRetryPolicy):
            policy.time_left = time_left

    def _with_retries(self, what: str, call: Callable[[], T]) -> T:
        """Retry transient errors with jittered backoff (or ``Retry-After``). Throttling (429) is
        retried while the next delay fits the time budget, however many attempts that takes: ARM's
        budget refills, so a throttled request is not a failure while time remains. Server errors and
        dropped connections get ``trigger_attempts`` attempts (a lost answer is then looked for in the
        job list by the verifier), as does throttling when no budget is set."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
                if not is_transient(error):
                    raise
                throttled = isinstance(error, HttpResponseError) and error.status_code == 429
                budgeted = throttled and self._time_left is not None
                if not budgeted and attempt >= max(1, self.retry.trigger_attempts):
                    raise
                delay = retry_after_seconds(error)
                if delay is None:
                    delay = min(self.retry.backoff_max, self.retry.backoff_factor * 2 ** (attempt - 1))
                elif delay > self.retry.max_retry_after:
                    raise
                delay *= 1.0 + self.retry.jitter * random.random()
                if self._time_left is not None and delay >= self._time_left():
                    raise
                LOG.info("%s: %s (attempt %d), retrying in %.1fs", what, error_code(error), attempt, delay)
                self._sleep(delay)

    def trigger_backup(self, vm: VmRef, expiry: dt.datetime) -> str:
        """POST "Backup now" for the VM; returns the operation id to resolve into a job."""
        request = m.BackupRequestResource(
            properties=m.IaasVMBackupRequest(recovery_point_expiry_time_in_utc=expiry.astimezone(dt.UTC))
        )

        def post() -> str:
            captured: dict[str, str] = {}

            def keep_headers(response: PipelineResponse[Any, Any], _body: object, _headers: object) -> None:
                # trigger() returns None; its 202's headers are the only handle on the operation.
                captured.update(response.http_response.headers)

            self.client.backups.trigger(
                self.vault.name,
                self.vault.resource_group,
                FABRIC_NAME,
                vm.container_name,
                vm.protected_item_name,
                request,
                cls=keep_headers,
            )
            return operation_id_from_headers(captured)

        return self._with_retries(f"{vm.name}: trigger backup", post)

    def operation_status(self, operation_id: str) -> OperationInfo:
        status = self.client.backup_operation_statuses.get(self.vault.name, self.vault.resource_group, operation_id)
        raw = _raw(status)
        error = _raw(raw.get("error"))
        props = _raw(raw.get("properties"))
        job_id = props.get("jobId")
        return OperationInfo(
            status=str(raw.get("status") or ""),
            job_id=str(job_id).rsplit("/", 1)[-1] if job_id else None,
            error_code=str(error["code"]) if error.get("code") else None,
            error_message=str(error["message"]) if error.get("message") else None,
        )

    #: :meth:`list_backup_jobs` takes ``on_page``: the verifier starts recovery point lists while later
    #: pages of a fleet's job list still load.
    streams_job_pages = True

    def list_backup_jobs(
        self,
        start: dt.datetime,
        end: dt.datetime,
        status: str | None = None,
        on_page: Callable[[list[JobInfo]], None] | None = None,
    ) -> list[JobInfo]:
        """All IaaS VM backup jobs of the vault started in the window: one paged call per poll;
        ``on_page`` sees each page as it arrives."""
        pager = self.client.backup_jobs.list(
            self.vault.name, self.vault.resource_group, filter=job_filter(start, end, status)
        )
        found: list[JobInfo] = []
        page: Iterable[m.JobResource]
        for page in pager.by_page():
            batch = [job_info(job) for job in page]
            found += batch
            if on_page is not None:
                on_page(batch)
        return found

    def get_job(self, job_id: str) -> JobInfo:
        """Only for the odd job missing from the list, or a failure the list did not detail."""
        return job_info(self.client.job_details.get(self.vault.name, self.vault.resource_group, job_id))

    def recovery_points(self, vm: VmRef) -> list[RecoveryPointInfo]:
        points = self.client.recovery_points.list(
            self.vault.name, self.vault.resource_group, FABRIC_NAME, vm.container_name, vm.protected_item_name
        )
        found: list[RecoveryPointInfo] = []
        for point in points:
            props = _raw(_raw(point).get("properties"))
            # bms.json IaasVMRecoveryPoint.recoveryPointDiskConfiguration (RecoveryPointDiskConfiguration,
            # SDK 11.x model of the same name); docs selective-disk-backup-restore show the LIST answer
            # carrying the two counts with null disk lists, so the counts are read here, no GET per point.
            disks = _raw(props.get("recoveryPointDiskConfiguration"))
            found.append(
                RecoveryPointInfo(
                    id=str(point.id or ""),
                    name=str(point.name or ""),
                    time=_utc(props.get("recoveryPointTime")),
                    disks_included=_count(disks.get("numberOfDisksIncludedInBackup")),
                    disks_attached=_count(disks.get("numberOfDisksAttachedToVm")),
                )
            )
        return found

    def protected_item(self, vm: VmRef) -> ItemHealth:
        item = self.client.protected_items.get(
            self.vault.name, self.vault.resource_group, FABRIC_NAME, vm.container_name, vm.protected_item_name
        )
        props = _raw(_raw(item).get("properties"))

        def text(key: str) -> str | None:
            value = props.get(key)
            return str(value) if value not in (None, "") else None

        return ItemHealth(
            protection_state=text("protectionState"),
            protection_status=text("protectionStatus"),
            health_status=text("healthStatus"),
            last_backup_status=text("lastBackupStatus"),
            last_backup_time=_item_time(props.get("lastBackupTime")),
            last_recovery_point=_item_time(props.get("lastRecoveryPoint")),
        )

    # --- the restore drill (protectedvm/drill.py) ------------------------------------------

    def list_jobs(
        self, start: dt.datetime, end: dt.datetime, operation: str, status: str | None = None
    ) -> list[JobInfo]:
        """Like :meth:`list_backup_jobs` for any operation (the drill polls ``Restore`` jobs)."""
        pages: Iterable[m.JobResource] = self.client.backup_jobs.list(
            self.vault.name, self.vault.resource_group, filter=job_filter(start, end, status, operation)
        )
        return [job_info(job) for job in pages]

    def job_property_bag(self, job_id: str) -> dict[str, str]:
        """``extendedInfo.propertyBag`` of one job: for a restore, where Azure put what it restored
        ("Target resource group", "Target Storage Account Name", "Template Blob Uri", ...)."""
        job = self.client.job_details.get(self.vault.name, self.vault.resource_group, job_id)
        props = _raw(job.get("properties") if isinstance(job, Mapping) else None)
        bag = _raw(_raw(props.get("extendedInfo")).get("propertyBag"))
        return {str(key): str(value) for key, value in bag.items()}

    def trigger_restore(self, vm: VmRef, recovery_point: str, target: RestoreTarget) -> str:
        """POST a "RestoreDisks" restore of one recovery point as managed disks into the target
        resource group (the request of the official TriggerRestore_RestoreDisks_IaasVMRestoreRequest
        example, without its optional identity and disk-access settings); returns the operation id.

        Not retried on our side like the backup trigger: a duplicate restore would create a second
        set of disks. The SDK's own retries (5xx on the initial POST) still apply."""
        request = m.RestoreRequestResource(
            properties=m.IaasVMRestoreRequest(
                recovery_point_id=recovery_point,
                recovery_type="RestoreDisks",
                source_resource_id=vm.vm_id,
                storage_account_id=target.storage_account_id,
                target_resource_group_id=target.resource_group_id,
                region=target.region,
                create_new_cloud_service=True,
                original_storage_account_option=False,
                encryption_details=m.EncryptionDetails(encryption_enabled=False),
            )
        )
        captured: dict[str, str] = {}

        def keep_headers(response: PipelineResponse[Any, Any], _body: object, _headers: object) -> None:
            captured.update(response.http_response.headers)

        self.client.restores.begin_trigger(
            self.vault.name,
            self.vault.resource_group,
            FABRIC_NAME,
            vm.container_name,
            vm.protected_item_name,
            recovery_point,
            request,
            polling=False,
            cls=keep_headers,
        ).result()
        return operation_id_from_headers(captured)

    # --- day two: item lifecycle (components/vm_protection.py) ------------------------------------

    def item_state(self, vm: VmRef) -> ItemState | None:
        """The item's protection state and soft-delete flag, or None when the vault has no item
        for the VM (404)."""
        try:
            item = self.client.protected_items.get(
                self.vault.name, self.vault.resource_group, FABRIC_NAME, vm.container_name, vm.protected_item_name
            )
        except HttpResponseError as error:
            if error.status_code == 404:
                return None
            raise
        props = _raw(_raw(item).get("properties"))
        return ItemState(
            protection_state=str(props.get("protectionState") or ""),
            soft_deleted=bool(props.get("isScheduledForDeferredDelete")),
            policy_id=str(props["policyId"]) if props.get("policyId") else None,
        )

    def _put_item(self, vm: VmRef, properties: dict[str, Any], what: str) -> None:
        """PUT the item with a raw body; the SDK's poller follows Azure's 202 +
        ``Azure-AsyncOperation`` to the end and raises on a failed operation."""
        try:
            self.client.protected_items.begin_create_or_update(
                self.vault.name,
                self.vault.resource_group,
                FABRIC_NAME,
                vm.container_name,
                vm.protected_item_name,
                _json_body({"properties": properties}),
            ).result()
        except HttpResponseError as error:
            raise RuntimeError(f"{vm.name}: {what} failed: {error_code(error)}: {error.message}") from error

    def _wait_item_operation(self, vm: VmRef, headers: Mapping[str, str], what: str, timeout: float) -> None:
        if not headers:
            return  # 200/204 without an operation: done synchronously
        operation = operation_id_from_headers(headers)
        waited = 0.0
        while True:
            status = self.client.protected_item_operation_statuses.get(
                self.vault.name,
                self.vault.resource_group,
                FABRIC_NAME,
                vm.container_name,
                vm.protected_item_name,
                operation,
            )
            raw = _raw(status)
            state = str(raw.get("status") or "")
            if state == "Succeeded":
                return
            if state in ("Failed", "Canceled", "Cancelled"):
                error = _raw(raw.get("error"))
                raise RuntimeError(f"{vm.name}: {what} failed: {error.get('code')}: {error.get('message')}")
            if waited >= timeout:
                raise RuntimeError(f"{vm.name}: {what} still {state or 'running'} after {timeout:.0f}s")
            self._sleep(2.0)
            waited += 2.0

    def stop_protection_retain_data(self, vm: VmRef) -> None:
        """Azure's "stop backup and retain data": a PUT with ``protectionState: ProtectionStopped``
        and no policy (azure-rest-api-specs ``examples/AzureIaasVm/StopProtection.json``; azurerm
        ``backup_protected_vm_resource.go`` does the same on destroy when
        ``VMBackupStopProtectionAndRetainDataOnDestroy`` is set). Recovery points are kept."""
        self._put_item(
            vm,
            {
                "protectedItemType": VM_RESOURCE_TYPE,
                "sourceResourceId": vm.vm_id,
                "protectionState": "ProtectionStopped",
            },
            "stop protection (retain data)",
        )

    def undelete_item(self, vm: VmRef) -> None:
        """Undo a soft delete: a PUT with ``isRehydrate: true`` (azurerm
        ``resourceRecoveryServicesVaultBackupProtectedVMRecoverSoftDeleted``; the SDK documents the
        flag as "deferred deleted DS is to be moved into Pause state"): the item comes back
        ProtectionStopped with its recovery points, ready to be protected again."""
        self._put_item(
            vm,
            {
                "protectedItemType": VM_RESOURCE_TYPE,
                "sourceResourceId": vm.vm_id,
                "isRehydrate": True,
            },
            "undelete",
        )

    def delete_item_data(self, vm: VmRef) -> None:
        """Azure's "stop backup and delete data" (DELETE on the item); with soft delete the data
        stays recoverable for the vault's soft-delete retention, then it is gone."""
        captured: dict[str, str] = {}

        def keep_headers(response: PipelineResponse[Any, Any], _body: object, _headers: object) -> None:
            captured.update(response.http_response.headers)

        self.client.protected_items.delete(
            self.vault.name,
            self.vault.resource_group,
            FABRIC_NAME,
            vm.container_name,
            vm.protected_item_name,
            cls=keep_headers,
        )
        self._wait_item_operation(vm, captured, "delete backup data", 600.0)

    def backup_status(self, vm: VmRef, region: str) -> BackupStatus:
        """Which vault (if any) protects the VM: ``POST .../locations/{region}/backupStatus``
        (``examples/AzureIaasVm/GetBackupStatus.json``)."""
        response = self.client.backup_status.get(
            region, {"resourceId": vm.vm_id, "resourceType": "VM"}
        )
        raw = _raw(response)
        return BackupStatus(
            protection_status=str(raw.get("protectionStatus") or ""),
            vault_id=str(raw["vaultId"]) if raw.get("vaultId") else None,
            error_code=str(raw["errorCode"]) if raw.get("errorCode") else None,
            error_message=str(raw["errorMessage"]) if raw.get("errorMessage") else None,
        )

    # --- day two: the vault's one-way settings and the pre-flight's VM read --------------------------

    def _arm_json(self, method: str, path: str, api_version: str, body: Mapping[str, Any] | None = None) -> Any:
        """A plain ARM call (:func:`arm_send`): the vault's security settings and a VM's region are
        not part of the backup SDK."""
        response = arm_send(self.client, method, f"{path}?api-version={api_version}", body)
        return response.json() if response.text() else None

    def vault_settings(self) -> VaultSecurity:
        """The vault's immutability and soft-delete state as Azure has them now."""
        body = _raw(self._arm_json("GET", self.vault.id, VAULT_API_VERSION))
        security = _raw(_raw(body.get("properties")).get("securitySettings"))
        return VaultSecurity(
            location=str(body.get("location") or "").replace(" ", "").lower(),
            immutability=_text(_raw(security.get("immutabilitySettings")).get("state")),
            soft_delete=_text(_raw(security.get("softDeleteSettings")).get("softDeleteState")),
        )

    def set_immutability(self, state: str) -> None:
        """PATCH only the immutability (azurerm locks a new vault this way after creating it
        Unlocked: ``recovery_services_vault_resource.go``, ``UpdateThenPoll``)."""
        self._arm_json(
            "PATCH",
            self.vault.id,
            VAULT_API_VERSION,
            {"properties": {"securitySettings": {"immutabilitySettings": {"state": state}}}},
        )

    def vm_location(self, vm: VmRef) -> str | None:
        """The VM's region, or None when it does not exist (404)."""
        try:
            body = _raw(self._arm_json("GET", vm.vm_id, COMPUTE_API_VERSION))
        except HttpResponseError as error:
            if error.status_code == 404:
                return None
            raise
        return str(body.get("location") or "").replace(" ", "").lower() or None

    def resume_protection(self, vm: VmRef, policy_id: str) -> None:
        """Protect (again) with ``policy_id``: the same PUT that enables protection resumes an item
        stopped with retained data ("resume backup"); its recovery points are kept."""
        self._put_item(
            vm,
            {
                "protectedItemType": VM_RESOURCE_TYPE,
                "sourceResourceId": vm.vm_id,
                "policyId": policy_id,
            },
            "resume protection",
        )


def arm_send(
    client: RecoveryServicesBackupClient, method: str, url: str, body: Mapping[str, Any] | None = None
) -> Any:
    """One plain ARM request through a backup client's own pipeline (``send_request``: the same
    credential, retry policy, transport and endpoint override), for the few calls outside the
    backup SDK (vault security settings, Compute VMs and disks). An error status raises
    ``HttpResponseError`` parsed as ARM's error format, so :func:`error_code` reads Azure's code."""
    from azure.core.rest import HttpRequest
    from azure.mgmt.core.exceptions import ARMErrorFormat

    response = client.send_request(HttpRequest(method, url, json=dict(body) if body is not None else None))
    if response.status_code >= 400:
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    return response


# --- restore drill: targets and the managed-disk slice of Microsoft.Compute ----------------------

#: Microsoft.Compute api-versions the drill speaks (disks: the DiskRP version of the official examples).
DISKS_API_VERSION = "2024-03-02"


@dataclass(frozen=True)
class RestoreTarget:
    """Where a "RestoreDisks" restore puts its output: managed disks in ``resource_group_id``, the
    VM config and template in the staging storage account, in ``region`` (the vault's)."""

    resource_group_id: str
    storage_account_id: str
    region: str


@dataclass(frozen=True)
class SourceVm:
    vm_id: str
    location: str
    disk_names: tuple[str, ...]


@dataclass(frozen=True)
class DiskInfo:
    id: str
    name: str
    tags: Mapping[str, str]
    time_created: dt.datetime | None


class ComputeApi:
    """The few Microsoft.Compute calls the drill makes, sent through a backup client's own pipeline
    (``send_request``: same credential, retry policy and transport), so no compute SDK is needed."""

    def __init__(self, client: RecoveryServicesBackupClient) -> None:
        self.client = client

    def _send(self, method: str, url: str, body: Mapping[str, Any] | None = None) -> Any:
        return arm_send(self.client, method, url, body)

    def source_vm(self, vm_id: str) -> SourceVm:
        body = self._send("GET", f"{vm_id}?api-version={COMPUTE_API_VERSION}").json()
        profile = _raw(_raw(body.get("properties")).get("storageProfile"))
        names = [str(_raw(profile.get("osDisk")).get("name") or "")]
        names += [str(_raw(disk).get("name") or "") for disk in profile.get("dataDisks") or []]
        return SourceVm(vm_id, str(body.get("location") or ""), tuple(name for name in names if name))

    def list_disks(self, resource_group_id: str) -> list[DiskInfo]:
        url: str | None = f"{resource_group_id}/providers/Microsoft.Compute/disks?api-version={DISKS_API_VERSION}"
        found: list[DiskInfo] = []
        while url:
            page = self._send("GET", url).json()
            found += [_disk_info(_raw(item)) for item in page.get("value") or []]
            url = page.get("nextLink") or None
        return found

    def get_disk(self, disk_id: str) -> DiskInfo | None:
        try:
            return _disk_info(self._send("GET", f"{disk_id}?api-version={DISKS_API_VERSION}").json())
        except HttpResponseError as error:
            if error.status_code == 404:
                return None
            raise

    def set_disk_tags(self, disk_id: str, tags: Mapping[str, str]) -> None:
        self._send("PATCH", f"{disk_id}?api-version={DISKS_API_VERSION}", {"tags": dict(tags)})

    def delete_disk(self, disk_id: str) -> None:
        """200/204 are done; a 202 is followed (its Location) until the delete finished."""
        response = self._send("DELETE", f"{disk_id}?api-version={DISKS_API_VERSION}")
        for _ in range(120):
            if response.status_code != 202:
                return
            location = response.headers.get("Location") or response.headers.get("Azure-AsyncOperation")
            if not location:
                return
            time.sleep(min(30.0, float(response.headers.get("Retry-After") or 5)))
            response = self._send("GET", location)
        raise TimeoutError(f"deleting {disk_id} did not finish")


def _disk_info(body: Mapping[str, Any]) -> DiskInfo:
    tags = _raw(body.get("tags"))
    return DiskInfo(
        id=str(body.get("id") or ""),
        name=str(body.get("name") or ""),
        tags={str(k): str(v) for k, v in tags.items()},
        time_created=_utc(_raw(body.get("properties")).get("timeCreated")),
    )
