"""ARM's subscription throttling: a token bucket per subscription and operation type.

Numbers from learn.microsoft.com, "Understand how Azure Resource Manager throttles requests"
(azure-resource-manager/management/request-limits-and-throttling, "Regional throttling and token
bucket algorithm"): subscription reads bucket 250 refilled 25/s, writes 200 refilled 10/s, deletes
200 refilled 10/s; the remaining count is reported in ``x-ms-ratelimit-remaining-subscription-reads``
(``-writes``, ``-deletes``), and an empty bucket answers 429 with ``Retry-After``. The 429's error code
``SubscriptionRequestsThrottled`` is ARM's as seen in real answers (no stored source has it: a belief).

Time is the emulator's clock, so a ManualClock test decides when tokens come back.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from .clock import Clock
from .errors import ApiError


@dataclass(frozen=True)
class BucketLimit:
    size: int
    refill_per_second: float


ARM_LIMITS: dict[str, BucketLimit] = {
    "reads": BucketLimit(250, 25.0),
    "writes": BucketLimit(200, 10.0),
    "deletes": BucketLimit(200, 10.0),
}


def operation_type(method: str) -> str:
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "reads"
    return "deletes" if method == "DELETE" else "writes"


class Throttle:
    """Always counts (the headers are always sent); refuses only when ``enforce`` is on."""

    def __init__(self, clock: Clock, enforce: bool = False, limits: dict[str, BucketLimit] | None = None) -> None:
        self.clock = clock
        self.enforce = enforce
        self.limits = dict(limits or ARM_LIMITS)
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # (sub, kind) -> (tokens, at)

    def take(self, subscription: str, method: str) -> tuple[str, str]:
        """Spend one token; returns the remaining-count header, or raises the 429."""
        kind = operation_type(method)
        limit = self.limits[kind]
        key = (subscription.lower(), kind)
        now = self.clock.now()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(limit.size), now))
            tokens = min(float(limit.size), tokens + (now - at) * limit.refill_per_second)
            if tokens < 1.0 and self.enforce:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / limit.refill_per_second)
                raise ApiError(
                    429,
                    "SubscriptionRequestsThrottled",
                    f"Number of '{kind[:-1]}' requests for subscription '{subscription}' exceeded. Please try again "
                    f"after '{wait}' seconds after additional tokens are available. "
                    "Refer to https://aka.ms/arm-throttling",
                    {"Retry-After": str(wait), f"x-ms-ratelimit-remaining-subscription-{kind}": "0"},
                )
            tokens = max(0.0, tokens - 1.0)
            self._buckets[key] = (tokens, now)
        return f"x-ms-ratelimit-remaining-subscription-{kind}", str(int(tokens))
