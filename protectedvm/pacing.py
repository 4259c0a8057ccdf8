"""Client-side pacing of ARM requests, so a fleet-sized run stays inside ARM's budget instead of
bouncing off it.

ARM throttles with token buckets per subscription, principal and operation type (learn.microsoft.com,
"Understand how Azure Resource Manager throttles requests", request-limits-and-throttling: reads 250
refilled 25/s, writes 200 refilled 10/s, deletes 200 refilled 10/s) and reports what is left in
``x-ms-ratelimit-remaining-subscription-reads`` / ``-writes`` / ``-deletes``. A 429 carries
``Retry-After``, and "if you send a request before the retry value elapses, your request isn't
processed and a new retry value is returned".

Bouncing off that limit is what failed VMs: 16 trigger threads per vault, each sleeping exactly the
SDK's ``Retry-After`` and coming back together, spend their attempts on 429s. :class:`ArmPacer` keeps
a mirror of the buckets instead, one per (endpoint, subscription) for the whole process
(:func:`pacer_for`), so every vault verified in one process (one provider host, one ``verify``
command, the benchmark's ten vaults) shares it:

* a request waits for a token of its kind before it is sent (:class:`PacingPolicy`, an azure-core
  policy placed after the SDK's retry policy, so every attempt is paced);
* every answer's remaining-count header lowers the mirror to what ARM says is left, less the requests
  of this process still in flight (other processes or principals spending the same budget are
  seen that way);
* a 429 saying the budget is spent (remaining 0) empties the mirror and holds every thread of the
  process until its ``Retry-After`` has passed (plus jitter), then lets them go one token at a time,
  not all at once.

The mirror only ever waits less than ARM would refuse: it never sends a request ARM is known to
refuse, and a wrong guess costs one 429 that the retry layers absorb.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy


@dataclass(frozen=True)
class Bucket:
    size: int
    refill_per_second: float


#: ARM's published buckets for one principal in one subscription (the docs page above).
ARM_BUCKETS: Mapping[str, Bucket] = {
    "reads": Bucket(250, 25.0),
    "writes": Bucket(200, 10.0),
    "deletes": Bucket(200, 10.0),
}
REMAINING_HEADER = "x-ms-ratelimit-remaining-subscription-{kind}"
#: Added to every wait for a token, so that float rounding never sends a request a hair early.
TOKEN_MARGIN_SECONDS = 0.005
#: A 429 holds the process's requests for its Retry-After, but never longer than this.
MAX_BLOCK_SECONDS = 60.0


def request_kind(method: str) -> str:
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "reads"
    return "deletes" if method == "DELETE" else "writes"


class _Mirror:
    __slots__ = ("at", "blocked_until", "bucket", "in_flight", "tokens")

    def __init__(self, bucket: Bucket, now: float) -> None:
        self.bucket = bucket
        self.tokens = float(bucket.size)
        self.at = now
        self.blocked_until = now
        self.in_flight = 0

    def refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(float(self.bucket.size), self.tokens + (now - self.at) * self.bucket.refill_per_second)
            self.at = now


class ArmPacer:
    """A mirror of ARM's buckets for one subscription; thread-safe, shared by every client of it."""

    def __init__(
        self,
        buckets: Mapping[str, Bucket] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self._sleep = sleep
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        now = clock()
        self._mirrors = {kind: _Mirror(bucket, now) for kind, bucket in (buckets or ARM_BUCKETS).items()}
        #: Seconds spent waiting for tokens and 429s seen, per kind: what the benchmark reports.
        self.waited: dict[str, float] = {kind: 0.0 for kind in self._mirrors}
        self.throttled: dict[str, int] = {kind: 0 for kind in self._mirrors}

    def acquire(self, kind: str) -> float:
        """Wait until a token of ``kind`` is there, spend it, and return how long that took."""
        mirror = self._mirrors.get(kind)
        if mirror is None:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                mirror.refill(now)
                if now >= mirror.blocked_until and mirror.tokens >= 1.0:
                    mirror.tokens -= 1.0
                    mirror.in_flight += 1
                    self.waited[kind] += waited
                    return waited
                if now < mirror.blocked_until:
                    delay = mirror.blocked_until - now
                else:
                    # A hair more than the refill time: ARM's bucket must have the token, not 0.9999 of it.
                    delay = (1.0 - mirror.tokens) / mirror.bucket.refill_per_second + TOKEN_MARGIN_SECONDS
            # A little jitter so the threads woken for one token do not all come back at once.
            delay *= 1.0 + self.jitter * self._rng.random()
            self._sleep(delay)
            waited += delay

    def observe(self, kind: str, status: int | None, headers: Mapping[str, str], retry_after: float | None) -> None:
        """One answer (or a request that got none: ``status`` None): what ARM says is left."""
        mirror = self._mirrors.get(kind)
        if mirror is None:
            return
        with self._lock:
            now = self.clock()
            mirror.in_flight = max(0, mirror.in_flight - 1)
            mirror.refill(now)
            remaining = _int_header(headers, REMAINING_HEADER.format(kind=kind))
            if remaining is not None:
                # ARM's count does not include our requests it has not answered yet.
                mirror.tokens = min(mirror.tokens, float(max(0, remaining - mirror.in_flight)))
            if status == 429:
                self.throttled[kind] += 1
                if remaining == 0:
                    # The subscription's budget is spent for everyone here: hold every thread until
                    # ARM's Retry-After (bounded: a longer one is the retry layers' to judge). A 429
                    # that leaves budget (a resource provider's own limit) concerns its request only.
                    mirror.tokens = 0.0
                    wait = retry_after if retry_after is not None else 1.0 / mirror.bucket.refill_per_second
                    mirror.blocked_until = max(mirror.blocked_until, now + min(wait, MAX_BLOCK_SECONDS))


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    for key, value in headers.items():
        if key.lower() == name:
            try:
                return int(float(value))
            except ValueError:
                return None
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


_PACERS: dict[tuple[str, str], ArmPacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(endpoint: str, subscription_id: str) -> ArmPacer:
    """The process's one pacer for a subscription at an endpoint (a new emulator is a new endpoint)."""
    key = (endpoint.rstrip("/").lower(), subscription_id.lower())
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None:
            pacer = _PACERS[key] = ArmPacer()
        return pacer


class PacingPolicy(SansIOHTTPPolicy[Any, Any]):
    """Puts every attempt of every request through the pacer (it runs after the retry policy)."""

    def __init__(self, pacer: ArmPacer) -> None:
        self.pacer = pacer

    def on_request(self, request: PipelineRequest[Any]) -> None:
        kind = request_kind(request.http_request.method)
        request.context["pacing_kind"] = kind
        self.pacer.acquire(kind)

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        headers = dict(response.http_response.headers)
        kind = request.context.get("pacing_kind", "reads")
        self.pacer.observe(kind, response.http_response.status_code, headers, _retry_after(headers))

    def on_exception(self, request: PipelineRequest[Any]) -> None:
        kind = request.context.get("pacing_kind")
        if kind:
            self.pacer.observe(kind, None, {}, None)
