"""Time windows: the unit of fetching, writing, validating and committing.

A window is half-open, ``[start, end)``, in UTC. Backfills are sequences of windows; every window is
committed atomically and replaces exactly its own rows when re-run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

__all__ = ["Window", "as_utc", "floor_time"]


def as_utc(value: datetime | date | str) -> datetime:
    """Coerce a datetime, date or ISO string to an aware UTC datetime (naive means UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def floor_time(value: datetime, step: timedelta) -> datetime:
    """Round ``value`` down to a multiple of ``step`` since the Unix epoch (UTC)."""
    value = as_utc(value)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((value - epoch) // step) * step


@dataclass(frozen=True, order=True)
class Window:
    """A half-open UTC interval ``[start, end)``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} is not after start {self.start.isoformat()}")

    @classmethod
    def of(cls, start: datetime | date | str, end: datetime | date | str) -> Window:
        return cls(as_utc(start), as_utc(end))

    @classmethod
    def day(cls, day: date | str) -> Window:
        start = as_utc(day)
        return cls(start, start + timedelta(days=1))

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def split(self, step: timedelta, *, align: bool = True) -> Iterator[Window]:
        """Yield consecutive sub-windows of at most ``step``; aligned to multiples of ``step`` if asked."""
        if step <= timedelta(0):
            raise ValueError("step must be positive")
        cursor = self.start
        while cursor < self.end:
            nxt = floor_time(cursor, step) + step if align else cursor + step
            nxt = min(nxt, self.end)
            yield Window(cursor, nxt)
            cursor = nxt

    def contains(self, instant: datetime) -> bool:
        return self.start <= as_utc(instant) < self.end

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"
