"""Maps ARM URLs to state operations and shapes the HTTP answers (status codes, LRO headers, paging).

Kept free of sockets so the ARM rules (case-insensitive names, api-version
checks, 202 + Azure-AsyncOperation) read in one place.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from .compute import COMPUTE_API_VERSIONS, ComputeState
from .errors import ApiError, invalid_input
from .state import Job, Operation, State, Vault

#: Stable api-versions of Microsoft.RecoveryServices backup with a spec in azure-rest-api-specs
#: (recoveryservicesbackup .../stable/2024-10-01, 2025-02-01, 2025-08-01 and
#: RecoveryServicesBackup/stable/2026-10-01); the SDK in requirements.txt sends 2026-10-01.
SUPPORTED_API_VERSIONS = ("2026-10-01", "2025-08-01", "2025-02-01", "2024-10-01")
#: Vaults version their API apart from backup: recoveryservices main.tsp (azure-rest-api-specs,
#: RecoveryServices/main.tsp, commit 1054bbbc) lists 2025-02-01 ... 2026-05-01; 2024-10-01 is the
#: stable/2024-10-01 folder of specification/recoveryservices. Whether the vault type also answers the
#: backup-only versions (2026-10-01) is not documented; the emulator accepts them rather than refuse a
#: request Azure may serve.
VAULT_API_VERSIONS = ("2026-10-01", "2026-05-01", "2026-02-01", "2026-01-01", "2025-08-01", "2025-02-01", "2024-10-01")
#: Retry-After of every 202 in the official examples (TriggerBackup_Post.json, ConfigureProtection.json,
#: ProtectedItem_Delete.json, TriggerCancelJob.json: "Retry-After": 60).
AZURE_RETRY_AFTER = 60


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    base_url: str


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    route: str
    vault: tuple[str, str, str]
    args: tuple[str, ...]


Handler = Callable[[Request, Match], Response]


def split_path(path: str) -> list[str]:
    """Segments with percent-escapes undone: SDK 11.x sends ';' as %3B inside names."""
    return [unquote(p) for p in path.split("?", 1)[0].split("/") if p]




def _match_outside_vaults(method: str, seg: list[str], low: list[str]) -> Match | None:
    """Day-two routes that do not live under a vault: the regional backupStatus (a VM's GET is the
    Microsoft.Compute slice's, :func:`match_compute`)."""
    if (
        method.upper() == "POST"
        and len(seg) == 7
        and low[0] == "subscriptions"
        and low[2:5] == ["providers", "microsoft.recoveryservices", "locations"]
        and low[6] == "backupstatus"
    ):
        return Match("backupStatus.get", (seg[1], "", ""), (seg[5],))
    return None


def match(method: str, path: str) -> Match | None:
    seg = split_path(path)
    low = [s.lower() for s in seg]
    if len(seg) >= 7 and low[:1] == ["subscriptions"] and low[2] == "resourcegroups" and low[5] == "microsoft.compute":
        return match_compute(method.upper(), seg, low)
    outside = _match_outside_vaults(method, seg, low)
    if outside is not None:
        return outside
    if (
        len(seg) < 8
        or low[0] != "subscriptions"
        or low[2] != "resourcegroups"
        or low[4] != "providers"
        or low[5] != "microsoft.recoveryservices"
        or low[6] != "vaults"
    ):
        return None
    vault = (seg[1], seg[3], seg[7])
    rest, lrest = seg[8:], low[8:]
    method = method.upper()

    def m(route: str, *args: str) -> Match:
        return Match(route, vault, args)

    if not rest:
        return {"PUT": m("vault.put"), "GET": m("vault.get"), "PATCH": m("vault.patch")}.get(method)
    if len(rest) == 2 and lrest[0] == "backuppolicies":
        return {"PUT": m("policy.put", rest[1]), "GET": m("policy.get", rest[1])}.get(method)
    if len(rest) == 2 and lrest[0] == "backupoperations" and method == "GET":
        return m("backupOperations.get", rest[1])
    if lrest == ["backupjobs"] and method == "GET":
        return m("jobs.list")
    if len(rest) == 2 and lrest[0] == "backupjobs" and method == "GET":
        return m("job.get", rest[1])
    if len(rest) == 3 and lrest[0] == "backupjobs" and lrest[2] == "cancel" and method == "POST":
        return m("job.cancel", rest[1])
    if len(rest) == 4 and lrest[0] == "backupjobs" and lrest[2] == "operationresults" and method == "GET":
        return m("job.operationResults.get", rest[1], rest[3])
    if lrest == ["backupprotecteditems"] and method == "GET":
        return m("items.list")
    if (
        len(rest) >= 6
        and lrest[0] == "backupfabrics"
        and lrest[1] == "azure"
        and lrest[2] == "protectioncontainers"
        and lrest[4] == "protecteditems"
    ):
        container, item, tail, ltail = rest[3], rest[5], rest[6:], lrest[6:]
        if not tail:
            routes = {"PUT": "item.put", "GET": "item.get", "DELETE": "item.delete"}
            return m(routes[method], container, item) if method in routes else None
        if ltail == ["backup"] and method == "POST":
            return m("backup.trigger", container, item)
        if len(tail) == 2 and ltail[0] == "operationsstatus" and method == "GET":
            return m("item.operationsStatus.get", container, item, tail[1])
        if len(tail) == 2 and ltail[0] == "operationresults" and method == "GET":
            return m("item.operationResults.get", container, item, tail[1])
        if ltail == ["recoverypoints"] and method == "GET":
            return m("recoveryPoints.list", container, item)
        if len(tail) == 2 and ltail[0] == "recoverypoints" and method == "GET":
            return m("recoveryPoint.get", container, item, tail[1])
        if len(tail) == 3 and ltail[0] == "recoverypoints" and ltail[2] == "restore" and method == "POST":
            return m("restore.trigger", container, item, tail[1])
    return None


class Router:
    def __init__(self, state: State, page_size: int, lro_retry_after: int) -> None:
        self.state = state
        self.page_size = page_size
        self.lro_retry_after = lro_retry_after
        self._cursors: dict[str, tuple[str | None, int]] = {}
        self._cursor_lock = threading.Lock()
        self._handlers: dict[str, Handler] = {
            "vault.put": self._vault_put,
            "vault.get": self._vault_get,
            "policy.put": self._policy_put,
            "policy.get": self._policy_get,
            "item.put": self._item_put,
            "item.get": self._item_get,
            "item.delete": self._item_delete,
            "backup.trigger": self._trigger,
            "backupOperations.get": self._backup_operation,
            "item.operationsStatus.get": self._item_operation_status,
            "item.operationResults.get": self._item_operation_result,
            "jobs.list": self._jobs_list,
            "job.get": self._job_get,
            "job.cancel": self._job_cancel,
            "job.operationResults.get": self._job_operation_result,
            "items.list": self._items_list,
            "recoveryPoints.list": self._rps_list,
            "recoveryPoint.get": self._rp_get,
            "restore.trigger": self._restore,
            "compute.vm.get": self._compute_vm_get,
            "compute.disks.list": self._disks_list,
            "compute.disk.get": self._disk_get,
            "compute.disk.patch": self._disk_patch,
            "compute.disk.delete": self._disk_delete,
            "vault.patch": self._vault_patch,
            "backupStatus.get": self._backup_status,
        }

    def handle(self, req: Request, found: Match) -> Response:
        if found.route.startswith("compute."):  # the restore drill's Microsoft.Compute slice
            kind = "virtualMachines" if found.route == "compute.vm.get" else "disks"
            check_api_version(req.query.get("api-version"), COMPUTE_API_VERSIONS, kind)
            self.state.settle()
            return self._handlers[found.route](req, found)
        kind = _RESOURCE_TYPES.get(found.route.split(".", 1)[0], "vaults")
        supported = VAULT_API_VERSIONS if kind == "vaults" else SUPPORTED_API_VERSIONS
        check_api_version(req.query.get("api-version"), supported, kind)
        return self._handlers[found.route](req, found)

    # --- helpers --------------------------------------------------------
    def _vault(self, found: Match) -> Vault:
        return self.state.require_vault(*found.vault)

    def _lro_headers(self, req: Request, item_url: str, op: Operation) -> dict[str, str]:
        version = req.query.get("api-version", SUPPORTED_API_VERSIONS[0])
        return {
            "Azure-AsyncOperation": f"{item_url}/operationsStatus/{op.op_id}?api-version={version}",
            "Location": f"{item_url}/operationResults/{op.op_id}?api-version={version}",
            "Retry-After": str(self.lro_retry_after),
        }

    def _item_url(self, req: Request, vault: Vault, container: str, item: str) -> str:
        # ';' kept literal as the service does; the SDK's poller fetches these URLs verbatim.
        return (
            f"{req.base_url}{vault.id}/backupFabrics/Azure/protectionContainers/{quote(container, safe=';')}"
            f"/protectedItems/{quote(item, safe=';')}"
        )

    # --- vault & policy -------------------------------------------------
    def _vault_put(self, req: Request, found: Match) -> Response:
        created, body = self.state.put_vault(*found.vault, parse_body(req.body))
        return Response(201 if created else 200, body)

    def _vault_get(self, req: Request, found: Match) -> Response:
        return Response(200, self.state.get_vault(*found.vault))

    # --- day two ----------------------------------------------------------
    def _vault_patch(self, req: Request, found: Match) -> Response:
        return Response(200, self.state.patch_vault(*found.vault, parse_body(req.body)))

    def _backup_status(self, req: Request, found: Match) -> Response:
        return Response(200, self.state.backup_status(found.args[0], parse_body(req.body)))

    def _policy_put(self, req: Request, found: Match) -> Response:
        return Response(200, self.state.put_policy(self._vault(found), found.args[0], parse_body(req.body)))

    def _policy_get(self, req: Request, found: Match) -> Response:
        return Response(200, self.state.get_policy(self._vault(found), found.args[0]))

    # --- items ------------------------------------------------------------
    def _item_put(self, req: Request, found: Match) -> Response:
        vault = self._vault(found)
        container, item = found.args
        op = self.state.put_item(vault, container, item, parse_body(req.body))
        return Response(202, None, self._lro_headers(req, self._item_url(req, vault, container, item), op))

    def _item_get(self, req: Request, found: Match) -> Response:
        return Response(200, self.state.get_item(self._vault(found), *found.args))

    def _item_delete(self, req: Request, found: Match) -> Response:
        vault = self._vault(found)
        container, item = found.args
        op = self.state.delete_item(vault, container, item)
        return Response(202, None, self._lro_headers(req, self._item_url(req, vault, container, item), op))

    def _trigger(self, req: Request, found: Match) -> Response:
        vault = self._vault(found)
        container, item = found.args
        op = self.state.trigger_backup(vault, container, item, parse_body(req.body))
        return Response(202, None, self._lro_headers(req, self._item_url(req, vault, container, item), op))

    def _backup_operation(self, req: Request, found: Match) -> Response:
        return Response(200, self.state.operation_status(self._vault(found), found.args[0]))

    def _item_operation_status(self, req: Request, found: Match) -> Response:
        _, item, op_id = found.args
        return Response(200, self.state.operation_status(self._vault(found), op_id, item))

    def _item_operation_result(self, req: Request, found: Match) -> Response:
        vault = self._vault(found)
        container, item, op_id = found.args
        status, body = self.state.operation_result(vault, op_id, item)
        if status == "InProgress":
            # ProtectedItemOperationResults.json: the 202 repeats Location, Azure-AsyncOperation, Retry-After.
            op = self.state.operation_ref(vault, op_id)
            return Response(202, None, self._lro_headers(req, self._item_url(req, vault, container, item), op))
        if body is not None:
            return Response(200, body)
        return Response(204)

    # --- jobs -------------------------------------------------------------
    def _jobs_list(self, req: Request, found: Match) -> Response:
        vault = self._vault(found)
        token = req.query.get("$skipToken")
        if token:
            with self._cursor_lock:
                cursor = self._cursors.get(token)
            if cursor is None:
                raise invalid_input(f"The skip token '{token}' is invalid or has expired.")
            filter_text, offset = cursor
        else:
            filter_text, offset = req.query.get("$filter"), 0
        predicate = parse_job_filter(filter_text)
        jobs = self.state.list_jobs(vault, predicate)
        page = jobs[offset : offset + self.page_size]
        body: dict[str, Any] = {"value": page}
        if offset + self.page_size < len(jobs):
            next_token = uuid.uuid4().hex
            with self._cursor_lock:
                self._cursors[next_token] = (filter_text, offset + self.page_size)
            version = req.query.get("api-version", SUPPORTED_API_VERSIONS[0])
            body["nextLink"] = f"{req.base_url}{vault.id}/backupJobs?api-version={version}&$skipToken={next_token}"
        return Response(200, body)

    def _job_get(self, req: Request, found: Match) -> Response:
        return Response(200, self.state.get_job(self._vault(found), found.args[0]))

    def _job_result_url(self, req: Request, vault: Vault, job: str, op_id: str) -> str:
        version = req.query.get("api-version", SUPPORTED_API_VERSIONS[0])
        return f"{req.base_url}{vault.id}/backupJobs/{job}/operationResults/{op_id}?api-version={version}"

    def _job_cancel(self, req: Request, found: Match) -> Response:
        """TriggerCancelJob.json: 202 with Location (no Azure-AsyncOperation) and Retry-After."""
        vault = self._vault(found)
        op = self.state.cancel_job(vault, found.args[0])
        url = self._job_result_url(req, vault, found.args[0], op.op_id)
        return Response(202, None, {"Location": url, "Retry-After": str(self.lro_retry_after)})

    def _job_operation_result(self, req: Request, found: Match) -> Response:
        """CancelJobOperationResult.json: 202 + Location while the job is Cancelling, then 204."""
        vault = self._vault(found)
        job, op_id = found.args
        if self.state.cancel_result(vault, job, op_id) == "InProgress":
            url = self._job_result_url(req, vault, job, op_id)
            return Response(202, None, {"Location": url, "Retry-After": str(self.lro_retry_after)})
        return Response(204)

    def _items_list(self, req: Request, found: Match) -> Response:
        return Response(200, {"value": self.state.list_items(self._vault(found))})

    # --- recovery points ------------------------------------------------
    def _rps_list(self, req: Request, found: Match) -> Response:
        return Response(200, {"value": self.state.list_recovery_points(self._vault(found), *found.args)})

    def _rp_get(self, req: Request, found: Match) -> Response:
        return Response(200, self.state.get_recovery_point(self._vault(found), *found.args))

    # --- restore (the restore drill) -------------------------------------
    def _restore(self, req: Request, found: Match) -> Response:
        """202 with Azure-AsyncOperation, Location and Retry-After, as in
        TriggerRestore_RestoreDisks_IaasVMRestoreRequest.json (the same headers as a backup trigger)."""
        vault = self._vault(found)
        container, item, rp = found.args
        op = self.state.trigger_restore(vault, container, item, rp, parse_body(req.body))
        return Response(202, None, self._lro_headers(req, self._item_url(req, vault, container, item), op))

    # --- Microsoft.Compute slice (emulator/compute.py) ---------------------
    @property
    def _compute(self) -> ComputeState:
        return self.state.compute

    def _compute_vm_get(self, req: Request, found: Match) -> Response:
        sub, rg, _ = found.vault
        return Response(200, self.state.vm_body(sub, rg, found.args[0]))

    def _disks_list(self, req: Request, found: Match) -> Response:
        sub, rg, _ = found.vault
        return Response(200, {"value": [self._compute.disk_body(d) for d in self._compute.disks(sub, rg)]})

    def _disk_get(self, req: Request, found: Match) -> Response:
        sub, rg, _ = found.vault
        return Response(200, self._compute.disk_body(self._compute.require_disk(sub, rg, found.args[0])))

    def _disk_patch(self, req: Request, found: Match) -> Response:
        sub, rg, _ = found.vault
        disk = self._compute.patch_disk(sub, rg, found.args[0], parse_body(req.body))
        return Response(200, self._compute.disk_body(disk))

    def _disk_delete(self, req: Request, found: Match) -> Response:
        """200 when a disk was deleted, 204 when there was none (Disk_Delete.json lists 200/202/204)."""
        sub, rg, _ = found.vault
        return Response(200 if self._compute.delete_disk(sub, rg, found.args[0]) else 204)


def match_compute(method: str, seg: list[str], low: list[str]) -> Match | None:
    """``/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/`` + ``virtualMachines/{vm}``,
    ``disks`` or ``disks/{disk}``."""
    group = (seg[1], seg[3], "")
    rest, lrest = seg[6:], low[6:]
    if len(rest) == 2 and lrest[0] == "virtualmachines" and method == "GET":
        return Match("compute.vm.get", group, (rest[1],))
    if lrest == ["disks"] and method == "GET":
        return Match("compute.disks.list", group, ())
    if len(rest) == 2 and lrest[0] == "disks":
        routes = {"GET": "compute.disk.get", "PATCH": "compute.disk.patch", "DELETE": "compute.disk.delete"}
        return Match(routes[method], group, (rest[1],)) if method in routes else None
    return None


_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


_RESOURCE_TYPES = {
    "vault": "vaults",
    "policy": "vaults/backupPolicies",
    "item": "vaults/backupFabrics/protectionContainers/protectedItems",
    "items": "vaults/backupProtectedItems",
    "backup": "vaults/backupFabrics/protectionContainers/protectedItems/backup",
    "backupOperations": "vaults/backupOperations",
    "jobs": "vaults/backupJobs",
    "job": "vaults/backupJobs",
    "recoveryPoints": "vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints",
    "recoveryPoint": "vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints",
    "restore": "vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/restore",
    "backupStatus": "locations/backupStatus",
}


def check_api_version(
    version: str | None, supported: tuple[str, ...] = SUPPORTED_API_VERSIONS, resource_type: str = "vaults"
) -> None:
    """ARM's three answers: no api-version, a malformed one, and one the provider does not serve.

    Codes and wording follow ARM's errors (MissingApiVersionParameter, InvalidApiVersionParameter,
    NoRegisteredProviderFound, as documented in learn.microsoft.com "Resolve errors for resource
    provider registration" for the last); the exact message texts of the first two are beliefs.
    """
    if not version:
        raise ApiError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not _API_VERSION.match(version):
        raise ApiError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are '{', '.join(supported)}'.",
        )
    if version not in supported:
        raise ApiError(
            400,
            "NoRegisteredProviderFound",
            f"No registered resource provider found for API version '{version}' and type '{resource_type}'. "
            f"The supported api-versions are '{', '.join(supported)}'.",
        )


def parse_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "InvalidRequestContent", f"The request content was invalid: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body


_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
_FILTER_FIELDS = {"operation", "status", "backupmanagementtype", "starttime", "endtime", "jobid"}


def parse_filter_time(text: str) -> dt.datetime:
    """The jobs API takes ``%Y-%m-%d %I:%M:%S %p`` (UTC); ``00:00:00 AM`` appears in Azure's own examples."""
    for fmt in ("%Y-%m-%d %I:%M:%S %p", "%Y-%m-%d %H:%M:%S %p"):
        try:
            return dt.datetime.strptime(text.strip(), fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    raise invalid_input(f"'{text}' is not a valid time; use the format 'yyyy-MM-dd hh:mm:ss AM'.")


def parse_job_filter(text: str | None) -> Callable[[Job], bool]:
    """OData subset the jobs API supports: ``field eq 'value'`` clauses joined by ``and``."""
    if not text or not text.strip():
        return lambda job: True
    conditions: list[Callable[[Job], bool]] = []
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.match(clause)
        if m is None or m.group(1).lower() not in _FILTER_FIELDS:
            raise invalid_input(f"The filter clause '{clause}' is not supported.")
        name, value = m.group(1).lower(), m.group(2)
        conditions.append(_condition(name, value))
    return lambda job: all(cond(job) for cond in conditions)


def _condition(name: str, value: str) -> Callable[[Job], bool]:
    low = value.lower()
    if name == "operation":
        return lambda job: job.operation.lower() == low
    if name == "status":
        return lambda job: job.status.lower() == low
    if name == "backupmanagementtype":
        return lambda job: low == "azureiaasvm"
    if name == "jobid":
        return lambda job: job.job_id == low
    moment = parse_filter_time(value)
    if name == "starttime":
        return lambda job: job.start_time >= moment
    return lambda job: job.start_time <= moment
