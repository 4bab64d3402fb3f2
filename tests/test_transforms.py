"""Vectorized transforms: dedupe keeps the latest revision, DST-aware local time, hour-ending shifts."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from hmco.transforms import dedupe_latest, filter_window, hour_ending_to_start, local_to_utc
from hmco.windows import Window


def test_dedupe_keeps_the_last_revision_of_each_key() -> None:
    t = pa.table({"node": ["A", "B", "A", "C", "B"], "lmp": [10.0, 20.0, 11.0, 30.0, 21.0]})
    out = dedupe_latest(t, ["node"])
    # one row per key, each the key's last revision, in the order those revisions arrived
    assert out.to_pylist() == [
        {"node": "A", "lmp": 11.0},
        {"node": "C", "lmp": 30.0},
        {"node": "B", "lmp": 21.0},
    ]


def test_dedupe_on_a_compound_key_keeps_rows_that_differ_in_any_part() -> None:
    t = pa.table({"node": ["A", "A", "A"], "hour": [1, 2, 1], "lmp": [10.0, 20.0, 11.0]})
    out = dedupe_latest(t, ["node", "hour"])
    assert out.to_pylist() == [
        {"node": "A", "hour": 2, "lmp": 20.0},
        {"node": "A", "hour": 1, "lmp": 11.0},
    ]


def test_dedupe_without_duplicates_returns_the_table_untouched() -> None:
    t = pa.table({"node": ["A", "B"], "ts": [1, 2]})
    assert dedupe_latest(t, ["node", "ts"]) is t


def test_local_time_on_spring_forward_and_fall_back_days() -> None:
    local = pa.array([datetime(2026, 3, 8, 1, 55), datetime(2026, 3, 8, 3, 0)], pa.timestamp("us"))
    utc = local_to_utc(local, "America/Chicago").to_pylist()
    assert [t.astimezone(UTC).hour for t in utc] == [7, 8]  # 01:55 CST and 03:00 CDT are 5 minutes apart
    ambiguous = pa.array([datetime(2026, 11, 1, 1, 30)], pa.timestamp("us"))
    with pytest.raises(pa.ArrowInvalid):
        local_to_utc(ambiguous, "America/Chicago")  # a silent guess would duplicate or drop an interval
    assert local_to_utc(ambiguous, "America/Chicago", ambiguous="latest")[0].as_py().hour == 7


def test_hour_ending_labels_become_interval_starts() -> None:
    ending = pa.array([datetime(2024, 3, 10, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
    assert hour_ending_to_start(ending)[0].as_py() == datetime(2024, 3, 10, 0, tzinfo=UTC)


def test_filter_window_is_half_open() -> None:
    ts = pa.array([datetime(2026, 11, 26, h, tzinfo=UTC) for h in (0, 5, 6)], pa.timestamp("us", tz="UTC"))
    out = filter_window(pa.table({"ts": ts}), Window.of("2026-11-26T00:00", "2026-11-26T06:00"))
    assert [t.hour for t in out["ts"].to_pylist()] == [0, 5]
