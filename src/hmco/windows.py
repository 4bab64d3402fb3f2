"""Time windows: the unit of fetching, writing, validating and committing.

A window is half-open, ``[start, end)``, in UTC. Backfills are sequences of windows; every window is
committed atomically and replaces exactly its own rows when re-run. This module is hmco's one place
for time arithmetic shared by every layer: the window mask (:func:`in_window`, :func:`rows_in_window`)
and the duration grammar (:func:`parse_duration`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Window", "as_utc", "floor_time", "in_window", "market_window", "parse_duration", "rows_in_window"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|min|h|d|w)?\s*$", re.IGNORECASE)
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)
_UNIT_SECONDS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """``"30s"``, ``"5m"``, ``"1h"``, ``"7d"``, ``"2w"``, ``"250ms"``, ``"PT10M"``, a number of seconds → ``timedelta``.

    The one duration grammar of hmco: specs, quality checks and sources all read durations here.
    A bare number (or numeric string) is seconds.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1h, 7d or PT10M)")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    m = _DURATION.match(value)
    if m:
        return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[(m.group(2) or "s").lower()])
    m = _ISO_DURATION.match(value.strip())
    if m and any(m.groups()):
        d, h, mi = (int(g or 0) for g in m.groups()[:3])
        return timedelta(days=d, hours=h, minutes=mi, seconds=float(m.group(4) or 0))
    raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1h, 7d or PT10M)")


def in_window(ts: pa.Array | pa.ChunkedArray, window: Window) -> pa.Array | pa.ChunkedArray:
    """Mask of timestamps in the half-open ``[window.start, window.end)``; a null timestamp gives null.

    Callers choose what null means: ``Table.filter`` drops those rows, ``pc.all`` skips them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.and_(
        pc.greater_equal(ts, pa.scalar(window.start, ts.type)),
        pc.less(ts, pa.scalar(window.end, ts.type)),
    )


def rows_in_window(table: pa.Table, window: Window, column: str, *, keep_null: bool = False) -> pa.Table:
    """The rows of ``table`` whose ``column`` lies in ``window``.

    With ``keep_null`` rows whose time is null stay (the gate names them); otherwise they are dropped.
    A table without a timestamp ``column`` is returned as is.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0 or column not in table.column_names:
        return table
    if not pa.types.is_timestamp(table.schema.field(column).type):
        return table
    mask = in_window(table.column(column), window)
    mask = pc.fill_null(mask, True) if keep_null else mask
    if pc.all(mask).as_py():  # the usual case: no copy of the batch
        return table
    return table.filter(mask)


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


def format_duration(delta: timedelta, *, exact: bool = False) -> str:
    """A duration for people: ``1.5h``, ``2.0d``, ``4m05s`` (ages), or with ``exact`` ``14h30m``, ``21d``
    (SLAs and limits, in the grammar :func:`parse_duration` reads)."""
    secs = max(int(delta.total_seconds()), 0)
    if exact:
        parts = []
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            if secs >= size:
                parts.append(f"{secs // size}{unit}")
                secs %= size
        return "".join(parts) or "0s"
    if secs >= 86400:
        return f"{secs / 86400:.1f}d"
    if secs >= 3600:
        return f"{secs / 3600:.1f}h"
    if secs >= 60:
        return f"{secs // 60}m{secs % 60:02d}s"
    return f"{secs}s"


_RELATIVE_DAYS = {"today": 0, "yesterday": -1, "tomorrow": 1}


def _zone(tz: str | tzinfo) -> tzinfo:
    """``tz`` as a ``tzinfo``; an unknown IANA name is a :class:`~hmco.errors.ConfigError`."""
    if isinstance(tz, tzinfo):
        return tz
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from hmco.errors import ConfigError

    try:
        return UTC if tz.upper() == "UTC" else ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {tz!r}: use an IANA name such as 'America/Chicago' or 'UTC'"
        ) from exc


def _local_start(value: datetime | date | str, zone: tzinfo, what: str) -> datetime:
    """An aware instant for a market-calendar bound: dates are midnight in ``zone``, naive times are in ``zone``."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _RELATIVE_DAYS:
            value = datetime.now(zone).date() + timedelta(days=_RELATIVE_DAYS[text.lower()])
        else:
            try:
                value = (
                    date.fromisoformat(text)
                    if len(text) == 10
                    else datetime.fromisoformat(text.replace("Z", "+00:00"))
                )
            except ValueError as exc:
                from hmco.errors import ConfigError

                raise ConfigError(
                    f"{what} {value!r} is not a date or time: use YYYY-MM-DD, an ISO datetime, 'today' or 'yesterday'"
                ) from exc
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


def market_window(
    start: datetime | date | str,
    end: datetime | date | str | None = None,
    tz: str | tzinfo = "UTC",
) -> Window:
    """The UTC window of market days ``[start, end)`` read on the calendar of time zone ``tz``.

    A date (or ``YYYY-MM-DD``, ``"today"``, ``"yesterday"``) means midnight in ``tz``, so a day is 23 or
    25 hours long on DST-change days; a naive datetime is read in ``tz``, an aware one is honoured as
    is. ``end`` is exclusive and defaults to one calendar day in ``tz`` after ``start``.

    Args:
        start: First market day or instant.
        end: End of the range, exclusive; ``None`` for one day after ``start``.
        tz: IANA time zone of the market calendar (``"America/Los_Angeles"``, ``"EST"`` …).

    Returns:
        The half-open UTC :class:`Window`.

    Raises:
        ConfigError: An unknown time zone, an unreadable date, or ``end`` not after ``start``.

    Examples:
        >>> w = market_window("2026-11-01", tz="America/Los_Angeles")   # fall-back day: 25 hours
        >>> str(w), w.duration
        ('[2026-11-01T07:00:00+00:00, 2026-11-02T08:00:00+00:00)', datetime.timedelta(days=1, seconds=3600))
        >>> market_window("2026-07-27", "2026-07-29", tz="EST").duration.days
        2
    """
    from hmco.errors import ConfigError

    zone = _zone(tz)
    first = _local_start(start, zone, "start")
    if end is None:
        # one calendar day on the wall clock of tz, whatever its length in hours
        local = first.astimezone(zone)
        last = (local.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)
    else:
        last = _local_start(end, zone, "end")
    if as_utc(last) <= as_utc(first):
        raise ConfigError(f"end {last.isoformat()} is not after start {first.isoformat()}")
    return Window(first, last)
