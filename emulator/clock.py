"""Clocks that backup jobs progress on.

Jobs and long-running operations finish when enough *clock* seconds have
passed, so a test can either run in (scaled) real time or step time forward
explicitly and never sleep.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since an arbitrary origin; only differences matter."""
        ...


class MonotonicClock:
    """Real time, optionally sped up so a "30 minute" job can take a second."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._origin = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._origin) * self.time_scale


class ManualClock:
    """Time that moves only when a test says so, which keeps job tests deterministic."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += seconds
