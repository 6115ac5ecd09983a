"""Protocol time for the simulator.

Exchange's push protocol is all about time (30 s retries, StatusFrequency minutes, 30-day watermarks), so
the simulator never reads the wall clock directly. A `SystemClock` can run faster than real time for
demos; a `ManualClock` only moves when a test advances it, which makes retry schedules deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current protocol time, timezone-aware UTC."""
        ...

    def real_seconds_until(self, moment: datetime) -> float | None:
        """Real seconds to wait for `moment`; None when only an explicit advance can bring it closer."""
        ...

    def on_advance(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever protocol time jumps (manual clocks only)."""
        ...


class SystemClock:
    """Wall-clock time, optionally sped up: time_scale=60 makes one real second a protocol minute."""

    def __init__(self, time_scale: float = 1.0, start: datetime | None = None) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self.time_scale = time_scale
        self._origin = start or datetime.now(UTC)
        self._origin_monotonic = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._origin_monotonic) * self.time_scale
        return self._origin + timedelta(seconds=elapsed)

    def real_seconds_until(self, moment: datetime) -> float | None:
        return max(0.0, (moment - self.now()).total_seconds() / self.time_scale)

    def on_advance(self, listener: Callable[[], None]) -> None:
        # Wall-clock time flows by itself; nobody needs waking.
        return None


class ManualClock:
    """Time that stands still until a test calls `advance`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0.0, *, minutes: float = 0.0) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds, minutes=minutes)
            now = self._now
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
        return now

    def real_seconds_until(self, moment: datetime) -> float | None:
        return 0.0 if moment <= self.now() else None

    def on_advance(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)


def ews_datetime(moment: datetime) -> str:
    """Format like Exchange does: UTC, whole seconds, 'Z' suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ews_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        # EWS treats a dateTime without offset as UTC unless a TimeZoneContext says otherwise.
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
