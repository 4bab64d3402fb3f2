"""Windows: half-open UTC intervals, split into aligned chunks for backfills."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hmco.windows import Window, as_utc, floor_time


def test_naive_times_are_utc_and_aware_times_are_converted() -> None:
    assert as_utc("2026-11-01T02:00:00") == datetime(2026, 11, 1, 2, tzinfo=UTC)
    est = timezone(timedelta(hours=-5))
    assert as_utc(datetime(2026, 3, 8, 8, 15, tzinfo=est)) == datetime(2026, 3, 8, 13, 15, tzinfo=UTC)


def test_split_yields_aligned_contiguous_windows_covering_the_whole() -> None:
    w = Window.of("2026-11-01T01:30", "2026-11-01T05:00")
    parts = list(w.split(timedelta(hours=1)))
    assert [p.start.hour for p in parts] == [1, 2, 3, 4]
    assert parts[0].start.minute == 30 and parts[0].end.hour == 2
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    assert parts[-1].end == w.end


def test_day_window_is_24_hours_in_utc() -> None:
    w = Window.day("2026-11-01")
    assert w.duration == timedelta(days=1)
    assert w.contains(datetime(2026, 11, 1, 23, 59, tzinfo=UTC))
    assert not w.contains(datetime(2026, 11, 2, tzinfo=UTC))


def test_empty_or_reversed_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="not after start"):
        Window.of("2026-11-02", "2026-11-01")


def test_floor_time_rounds_down_to_step() -> None:
    t = datetime(2026, 11, 27, 10, 7, 59, tzinfo=UTC)
    assert floor_time(t, timedelta(minutes=5)) == datetime(2026, 11, 27, 10, 5, tzinfo=UTC)
