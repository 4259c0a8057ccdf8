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

from .errors import ApiError, invalid_input
from .state import Job, Operation, State, Vault

SUPPORTED_API_VERSIONS = ("2026-10-01", "2025-02-01", "2024-10-01")


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


#: Compute's VM GET (the pre-flight reads a VM's existence and region); any recent version.
COMPUTE_API_VERSIONS = ("2024-11-01", "2024-07-01", "2024-03-01")


def _match_outside_vaults(method: str, seg: list[str], low: list[str]) -> Match | None:
    """Day-two routes that do not live under a vault: a VM's GET and the regional backupStatus."""
    if (
        method.upper() == "GET"
        and len(seg) == 8
        and low[0] == "subscriptions"
        and low[2] == "resourcegroups"
        and low[4:7] == ["providers", "microsoft.compute", "virtualmachines"]
    ):
        return Match("vm.get", (seg[1], "", ""), ("/" + "/".join(seg),))
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
            "recoveryPoints.list": self._rps_list,
            "recoveryPoint.get": self._rp_get,
            "vault.patch": self._vault_patch,
            "vm.get": self._vm_get,
            "backupStatus.get": self._backup_status,
        }

    def handle(self, req: Request, found: Match) -> Response:
        if found.route == "vm.get":
            check_api_version(req.query.get("api-version"), COMPUTE_API_VERSIONS)
        else:
            check_api_version(req.query.get("api-version"))
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

    def _vm_get(self, req: Request, found: Match) -> Response:
        return Response(200, self.state.get_vm(found.args[0]))

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
            version = req.query.get("api-version", SUPPORTED_API_VERSIONS[0])
            url = f"{self._item_url(req, vault, container, item)}/operationResults/{op_id}?api-version={version}"
            return Response(202, None, {"Location": url, "Retry-After": str(self.lro_retry_after)})
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

    # --- recovery points ------------------------------------------------
    def _rps_list(self, req: Request, found: Match) -> Response:
        return Response(200, {"value": self.state.list_recovery_points(self._vault(found), *found.args)})

    def _rp_get(self, req: Request, found: Match) -> Response:
        return Response(200, self.state.get_recovery_point(self._vault(found), *found.args))


def check_api_version(version: str | None, supported: tuple[str, ...] = SUPPORTED_API_VERSIONS) -> None:
    if version not in supported:
        raise ApiError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version or ''}' is invalid. The supported versions are "
            f"'{', '.join(supported)}'.",
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
