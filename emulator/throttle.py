"""ARM's subscription throttling: token buckets per subscription, principal and operation type.

Numbers from learn.microsoft.com, "Understand how Azure Resource Manager throttles requests"
(azure-resource-manager/management/request-limits-and-throttling, "Regional throttling and token
bucket algorithm"; MicrosoftDocs/azure-docs articles/azure-resource-manager/management/
request-limits-and-throttling.md): subscription reads bucket 250 refilled 25/s, writes 200 refilled
10/s, deletes 200 refilled 10/s. "The subscription limits apply per subscription, per service
principal, and per operation type. There are also global subscription limits that are equivalent to
15 times the individual service principal limits for each operation type. The global limits apply
across all service principals. Requests are throttled if the global, service principal, or tenant
specific limits are exceeded." So a request spends one token from its principal's bucket and one
from the subscription's global bucket (15x). The remaining count is reported in
``x-ms-ratelimit-remaining-subscription-reads`` (``-writes``, ``-deletes``), and an empty bucket answers
429 with ``Retry-After`` ("If you send a request before the retry value elapses, your request isn't
processed": a refused request spends no token).

Beliefs, no stored source: the header reports the smaller of the two buckets (what this principal
can still send); the 429's error code ``SubscriptionRequestsThrottled`` and its message are ARM's as
seen in real answers. Tenant-level limits are not modelled (every backup call names a subscription).

Time is the emulator's clock, so a ManualClock test decides when tokens come back.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass

from .clock import Clock
from .errors import ApiError


@dataclass(frozen=True)
class BucketLimit:
    size: int
    refill_per_second: float

    def times(self, factor: float) -> BucketLimit:
        return BucketLimit(int(self.size * factor), self.refill_per_second * factor)


ARM_LIMITS: dict[str, BucketLimit] = {
    "reads": BucketLimit(250, 25.0),
    "writes": BucketLimit(200, 10.0),
    "deletes": BucketLimit(200, 10.0),
}
#: The subscription's global buckets are this many times one principal's (same source).
GLOBAL_FACTOR = 15.0
#: The principal of callers that name none (the emulator accepts one token: one principal).
DEFAULT_PRINCIPAL = "emulator"


def operation_type(method: str) -> str:
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "reads"
    return "deletes" if method == "DELETE" else "writes"


class Throttle:
    """Always counts (the headers are always sent); refuses only when ``enforce`` is on.

    ``limits`` are one principal's buckets; the subscription-wide bucket is ``GLOBAL_FACTOR`` times
    them. ``refused`` counts the 429s answered, per operation type."""

    def __init__(self, clock: Clock, enforce: bool = False, limits: dict[str, BucketLimit] | None = None) -> None:
        self.clock = clock
        self.enforce = enforce
        self.limits = dict(limits or ARM_LIMITS)
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        # (sub, principal or "*" for the global bucket, kind) -> (tokens, at)
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}

    def _level(self, key: tuple[str, str, str], limit: BucketLimit, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(limit.size), now))
        # A request that read the clock before another one updated the bucket refills nothing.
        return min(float(limit.size), tokens + max(0.0, now - at) * limit.refill_per_second)

    def take(self, subscription: str, method: str, principal: str = DEFAULT_PRINCIPAL) -> tuple[str, str]:
        """Spend one token of the principal's bucket and of the subscription's global one; returns
        the remaining-count header, or raises the 429 (spending nothing)."""
        kind = operation_type(method)
        own_limit = self.limits[kind]
        global_limit = own_limit.times(GLOBAL_FACTOR)
        sub = subscription.lower()
        own_key, global_key = (sub, principal, kind), (sub, "*", kind)
        with self._lock:
            now = self.clock.now()
            own = self._level(own_key, own_limit, now)
            shared = self._level(global_key, global_limit, now)
            if self.enforce and (own < 1.0 or shared < 1.0):
                self._buckets[own_key], self._buckets[global_key] = (own, now), (shared, now)
                self.refused[kind] += 1
                wait = max(
                    math.ceil((1.0 - level) / limit.refill_per_second)
                    for level, limit in ((own, own_limit), (shared, global_limit))
                    if level < 1.0
                )
                raise ApiError(
                    429,
                    "SubscriptionRequestsThrottled",
                    f"Number of '{kind[:-1]}' requests for subscription '{subscription}' exceeded. Please try again "
                    f"after '{wait}' seconds after additional tokens are available. "
                    "Refer to https://aka.ms/arm-throttling",
                    {"Retry-After": str(wait), f"x-ms-ratelimit-remaining-subscription-{kind}": "0"},
                )
            own, shared = max(0.0, own - 1.0), max(0.0, shared - 1.0)
            self._buckets[own_key], self._buckets[global_key] = (own, now), (shared, now)
        return f"x-ms-ratelimit-remaining-subscription-{kind}", str(int(min(own, shared)))
