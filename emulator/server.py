"""HTTPS front end and the ``Emulator`` harness tests use.

The real SDK refuses bearer tokens over plain HTTP, so the server speaks TLS
with a throw-away trustme CA whose PEM is written to a temp file for the
client's ``connection_verify``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import shutil
import socket
import ssl
import tempfile
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trustme

from .clock import Clock, MonotonicClock
from .credential import EMULATOR_TOKEN, StaticTokenCredential
from .errors import ApiError, arm_error_body
from .faults import DropFault, Faults, fault_error
from .routes import AZURE_RETRY_AFTER, SUPPORTED_API_VERSIONS, Request, Response, Router, match
from .state import JobView, State
from .throttle import DEFAULT_PRINCIPAL, Throttle


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # callers fan out many concurrent triggers; a backlog of 5 stalls them

    def __init__(self, context: ssl.SSLContext, emulator: Emulator) -> None:
        self.context = context
        self.emulator = emulator
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Handshake in the per-connection thread so one slow client cannot stall accept().
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-request are normal in fault tests; keep test output clean.
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the body would wait for the
    # client's delayed ACK (~40 ms per request on loopback), an artifact no ARM endpoint has.
    disable_nagle_algorithm = True
    server: _TLSServer

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        emu = self.server.emulator
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        found = match(self.command, split.path)
        if found is None:
            self._send(Response(404, arm_error_body("NotFound", f"No route for {self.command} {split.path}.")))
            return
        emu._count(found.route)
        rate_header: tuple[str, str] | None = None
        try:
            principal = self._authorize()
            rate_header = emu.throttle.take(found.vault[0], self.command, principal)
            fault = emu.faults.take_request_fault(found.route)
            if isinstance(fault, DropFault):
                self._drop()
                return
            if fault is not None:
                raise fault_error(fault)
            response = emu.router.handle(Request(self.command, split.path, query, body, emu.base_url), found)
        except ApiError as err:
            response = Response(err.status, err.body(), err.headers)
        if rate_header is not None:
            response.headers.setdefault(*rate_header)
        self._send(response)

    def _authorize(self) -> str:
        """The caller's principal (ARM throttles per principal): the emulator has one token, so one."""
        header = self.headers.get("Authorization")
        if not header:
            raise ApiError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                {
                    "WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", '
                    'error="invalid_token", error_description="The authentication failed because of missing '
                    "'Authorization' header.\""
                },
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.server.emulator.token:
            raise ApiError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            )
        return DEFAULT_PRINCIPAL

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        # ARM gives every request its own ids and echoes the client's id under its own name
        # (x-ms-client-request-id), never as x-ms-request-id.
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("x-ms-correlation-request-id", str(uuid.uuid4()))
        client_id = self.headers.get("x-ms-client-request-id")
        if client_id:
            self.send_header("x-ms-client-request-id", client_id)
        self.end_headers()
        if payload:
            self.wfile.write(payload)


class Emulator:
    """A local Recovery Services backup endpoint the unmodified SDK talks to over HTTPS.

    Start with ``with Emulator(...) as emu:``; everything a test needs to script or
    inspect hangs off the instance (faults, clock, counts, jobs).
    """

    def __init__(
        self,
        job_duration: float = 2.0,
        operation_delay: float = 0.0,
        time_scale: float = 1.0,
        clock: Clock | None = None,
        page_size: int = 50,
        lro_retry_after: int = AZURE_RETRY_AFTER,
        polling_interval: float = 0.01,
        job_appearance_delay: float = 0.0,
        cancel_duration: float = 10.0,
        throttling: bool = False,
        start_time: dt.datetime | None = None,
    ) -> None:
        """Fidelity switches (each documented where it is modelled):

        * ``lro_retry_after``: ``Retry-After`` of every 202, 60 like Azure's examples; the SDK's LRO
          pollers sleep that long in real time, so tests that poll an LRO pass 0;
        * ``job_appearance_delay``: clock seconds before a triggered job is listed (its trigger
          operation says InProgress until then), as on Azure; 0 keeps the old instant appearance;
        * ``cancel_duration``: clock seconds a job stays Cancelling before Cancelled;
        * ``throttling``: refuse requests past ARM's token buckets with 429 (the
          ``x-ms-ratelimit-remaining-subscription-*`` headers are sent either way);
        * ``start_time``: the wall time at the clock's origin (replay an example at its own date).
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.clock: Clock = clock if clock is not None else MonotonicClock(time_scale)
        self.faults = Faults()
        self.token = EMULATOR_TOKEN
        self.polling_interval = polling_interval
        self.state = State(
            self.clock,
            self.faults,
            job_duration,
            operation_delay,
            job_appearance_delay=job_appearance_delay,
            cancel_duration=cancel_duration,
            start_time=start_time,
        )
        self.throttle = Throttle(self.clock, enforce=throttling)
        self.router = Router(self.state, page_size, lro_retry_after)
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._server: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self._ca_path: str | None = None

    # --- lifecycle ------------------------------------------------------
    def start(self) -> Emulator:
        if self._server is not None:
            return self
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._tmpdir = tempfile.mkdtemp(prefix="rsv-emulator-")
        ca_path = Path(self._tmpdir) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        self._ca_path = str(ca_path)
        self._server = _TLSServer(context, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="rsv-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *args: object) -> None:
        self.stop()

    # --- connection details -------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_path(self) -> str:
        if self._ca_path is None:
            raise RuntimeError("emulator is not running")
        return self._ca_path

    def credential(self) -> StaticTokenCredential:
        return StaticTokenCredential(self.token)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for building one's own SDK client against the emulator.

        ``polling_interval`` matters: with ``Retry-After: 0`` azure-core falls back to
        it, and its default (30 s) would make every LRO wait half a minute. With Azure's
        ``Retry-After: 60`` (the default) LRO pollers wait a real minute per poll.
        """
        return {
            "base_url": self.base_url,
            "connection_verify": self.ca_path,
            "polling_interval": self.polling_interval,
        }

    def client(self, subscription_id: str, **kwargs: Any) -> Any:
        from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

        options = {**self.client_kwargs(), **kwargs}
        return RecoveryServicesBackupClient(self.credential(), subscription_id, **options)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_path)

    # --- seeding --------------------------------------------------------
    def add_vm(self, vm_id: str, location: str = "westeurope") -> None:
        self.state.add_vm(vm_id, location)

    def create_vault(self, subscription_id: str, resource_group: str, vault_name: str, **props: Any) -> dict[str, Any]:
        """PUT a vault over HTTPS, like a deployment would.

        ``location``, ``sku``, ``tags`` and ``identity`` are top-level; ``properties=``
        and any other keyword (``redundancySettings=...``, ``publicNetworkAccess=...``)
        land in ``properties``.
        """
        body: dict[str, Any] = {
            "location": props.pop("location", "westeurope"),
            "sku": props.pop("sku", {"name": "RS0", "tier": "Standard"}),
        }
        for key in ("tags", "identity"):
            if key in props:
                body[key] = props.pop(key)
        properties = dict(props.pop("properties", {}) or {})
        properties.update(props)
        body["properties"] = properties
        path = (
            f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{vault_name}?api-version={SUPPORTED_API_VERSIONS[1]}"
        )
        status, payload = self.raw_request("PUT", path, body)
        if status not in (200, 201):
            raise RuntimeError(f"vault PUT failed: {status} {payload}")
        return dict(payload)

    def raw_request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, token: bool = True
    ) -> tuple[int, Any]:
        """One HTTPS request without the SDK (for routes the SDK lacks, or to omit the token)."""
        status, _, payload = self.raw_exchange(method, path, body, headers, token)
        return status, payload

    def raw_exchange(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, token: bool = True
    ) -> tuple[int, dict[str, str], Any]:
        """Like :meth:`raw_request`, with the response headers (conformance checks compare them)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl_context(), timeout=10)
        try:
            all_headers = {"Content-Type": "application/json"}
            if token:
                all_headers["Authorization"] = f"Bearer {self.token}"
            all_headers.update(headers or {})
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=all_headers)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, dict(resp.getheaders()), (json.loads(raw) if raw else None)
        finally:
            conn.close()

    def start_job(self, vm_or_item_name: str, hang: bool = False, duration: float | None = None) -> str:
        """Start an InProgress backup as if someone pressed "Backup now" in the portal; returns the job id.

        It does not count in ``trigger_count`` (which counts API triggers only).
        """
        return self.state.start_job(vm_or_item_name, hang=hang, duration=duration)

    # --- inspection ---------------------------------------------------
    def _count(self, route: str) -> None:
        with self._counts_lock:
            self._counts[route] += 1

    @property
    def counts(self) -> Counter[str]:
        with self._counts_lock:
            return Counter(self._counts)

    def reset_counts(self) -> None:
        with self._counts_lock:
            self._counts.clear()

    def trigger_count(self, item_name_or_vm_name: str) -> int:
        return self.state.trigger_count(item_name_or_vm_name)

    @property
    def jobs(self) -> tuple[JobView, ...]:
        return self.state.job_views()
