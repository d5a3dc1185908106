"""One clock for every flow, so tests and the flow runner can move time without sleeping.

Times are naive UTC datetimes truncated to milliseconds: that is what BSON stores, so a
value read back from any store equals the value written (hashes depend on it).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


def to_millis(moment: datetime) -> datetime:
    """Drop sub-millisecond digits and time zone (converting to UTC first)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return to_millis(datetime.now(UTC))


class ManualClock:
    """A clock that only moves when told to; thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = to_millis(start or datetime(2026, 1, 1, 12, 0, 0))
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now = to_millis(self._now + delta)
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = to_millis(moment)
