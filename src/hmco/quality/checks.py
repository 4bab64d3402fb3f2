"""Expectations evaluated directly on Arrow: schema types, continuity and recency of interval series.

Great Expectations has no continuity or recency expectation, and it sees pandas dtypes rather than the
Arrow types hmco's schemas declare, so these kinds run here, vectorized (pyarrow / numpy), and are
reported as ordinary :class:`~hmco.quality.gate.ExpectationOutcome`\\ s in the same result. Each is an
Arrow check, ``(table, exp, ctx) -> ExpectationOutcome``, registered in :mod:`hmco.quality.kinds`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hmco.quality.gate import ExpectationOutcome
from hmco.quality.scan import BatchScan
from hmco.windows import Window, parse_duration

if TYPE_CHECKING:
    from hmco.quality.kinds import CheckContext
    from hmco.quality.suites import Expectation

__all__ = [
    "check_continuity",
    "check_recency",
    "check_types",
    "json_safe",
    "missing_columns_outcome",
    "scan_of",
]

_TS_US = pa.timestamp("us", tz="UTC")
_ARROW = {"engine": "arrow"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def json_safe(value: Any) -> Any:
    """Make a sample value JSON-friendly: NaN/NaT → None, datetimes → ISO strings, numpy → Python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        try:
            return value.isoformat()
        except ValueError:  # pandas NaT
            return None
    return str(value)


def scan_of(table: pa.Table, ctx: CheckContext) -> BatchScan:
    """The gate's shared scan of ``table``, or a fresh one when a check is called on its own."""
    scan = ctx.scan
    return scan if scan is not None and scan.table is table else BatchScan(table)


def missing_columns_outcome(exp: Expectation, missing: list[str]) -> ExpectationOutcome:
    """An expectation that cannot be evaluated because its columns are absent: it fails (closed)."""
    return ExpectationOutcome(
        name=exp.name,
        success=False,
        severity=exp.severity,
        column=exp.column,
        unexpected_count=0,
        details={"error": f"column(s) {missing} missing from the batch", "kind": exp.kind},
    )


def check_types(table: pa.Table, exp: Expectation, ctx: CheckContext) -> ExpectationOutcome:
    """Compare each present column's Arrow type with the expected one (missing columns: ``columns``)."""
    expected: dict[str, str] = exp.params["types"]
    schema = table.schema
    drift = [
        f"{name}: {schema.field(name).type} (expected {typ})"
        for name, typ in expected.items()
        if name in schema.names and str(schema.field(name).type) != typ
    ]
    return exp.outcome(not drift, unexpected_count=len(drift), unexpected_sample=drift, details=_ARROW)


def check_continuity(table: pa.Table, exp: Expectation, ctx: CheckContext) -> ExpectationOutcome:
    """One row per series and step: count missing steps, duplicate timestamps and off-grid points.

    Per series the expected steps run from its first to its last timestamp (or over the whole window
    when ``params.edges`` is true). Vectorized on integer codes, no sort: series ids come from the
    shared scan (the codes ``unique.primary_key`` also uses), each on-grid row's step is a slot in one
    bitmap over every series' span, so distinct steps per series are a ``bincount``. The gate has
    checked that the columns are present.
    """
    tcol = str(exp.params.get("time_column", "ts"))
    keys = tuple(exp.columns)
    window = ctx.window
    if not pa.types.is_timestamp(table.schema.field(tcol).type):
        return _error(exp, f"time column {tcol!r} is {table.schema.field(tcol).type}, not a timestamp")
    step = int(parse_duration(exp.params["frequency"]) / timedelta(microseconds=1))
    edges = bool(exp.params.get("edges", False)) and window is not None
    scan = scan_of(table, ctx)
    stats = _series_stats(scan, keys, tcol, step, window if edges else None)
    bad = np.flatnonzero((stats.missing > 0) | (stats.duplicates > 0) | (stats.off_grid > 0))
    missing, dupes, off = (int(stats.missing.sum()), int(stats.duplicates.sum()), int(stats.off_grid.sum()))
    sample = _sample_series(scan, stats, bad, keys, step, ctx.sample_size) if len(bad) else []
    return exp.outcome(
        len(bad) == 0,
        column=tcol,
        unexpected_count=missing + dupes + off,
        unexpected_sample=sample,
        details={
            **_ARROW,
            "series_checked": len(stats.rows),
            "series_failing": len(bad),
            "missing_intervals": missing,
            "duplicate_rows": dupes,
            "off_grid_rows": off,
            "frequency_seconds": step / 1e6,
            "edges": edges,
        },
    )


def check_recency(table: pa.Table, exp: Expectation, ctx: CheckContext) -> ExpectationOutcome:
    """The batch's newest interval end must reach ``window.end - max_lag``: catches stale or short feeds.

    The interval end is ``max(end_column)`` when the batch has that column, else ``max(time_column) +
    frequency``. Judged against the window, not the wall clock, so complete backfills pass. An empty
    batch, or a check without a window, passes vacuously (``details["skipped"]`` says why): an empty
    window is ``row_count``'s business.
    """
    p, window = exp.params, ctx.window
    lag = parse_duration(p.get("max_lag", 0))
    details: dict[str, Any] = {**_ARROW, "max_lag_seconds": lag.total_seconds()}
    end_col, tcol = p.get("end_column"), str(p.get("time_column", "ts"))
    if end_col and end_col in table.column_names:
        column, shift = str(end_col), timedelta(0)
    elif p.get("frequency") and tcol in table.column_names:
        column, shift = tcol, parse_duration(p["frequency"])
    else:
        return missing_columns_outcome(exp, [str(end_col or tcol)])
    if not pa.types.is_timestamp(table.schema.field(column).type):
        return _error(exp, f"time column {column!r} is {table.schema.field(column).type}, not a timestamp")
    if window is None or table.num_rows == 0:
        skipped = "no window to judge against" if window is None else "empty batch (see row_count)"
        return exp.outcome(True, column=column, details={**details, "skipped": skipped})
    newest = pc.max(table.column(column).cast(_TS_US))
    required = window.end - lag
    details.update(window_end=window.end.isoformat(), required_end=required.isoformat())
    if not newest.is_valid:
        return _error(
            exp, f"column {column!r} has no non-null timestamps: the newest interval end is unknown"
        )
    newest_end = int(newest.value) + shift // timedelta(microseconds=1)
    behind = _micros(window.end) - newest_end
    ok = newest_end >= _micros(required)
    details.update(newest_end=_iso(newest_end), lag_seconds=behind / 1e6)
    sample = [] if ok else [{"newest_end": _iso(newest_end), "required_end": required.isoformat()}]
    return exp.outcome(
        ok, column=column, unexpected_count=len(sample), unexpected_sample=sample, details=details
    )


@dataclass(frozen=True)
class _SeriesStats:
    """Per-series continuity counts (arrays indexed by dense series number) and the row arrays behind them."""

    rows: np.ndarray  # rows with a timestamp
    first: np.ndarray
    last: np.ndarray
    expected: np.ndarray  # steps from the grid's first to its last point
    missing: np.ndarray
    duplicates: np.ndarray
    off_grid: np.ndarray  # distinct off-grid timestamps
    grid_first: np.ndarray
    series: np.ndarray  # per row (with a timestamp): dense series number
    times: np.ndarray  # per row: epoch microseconds
    on_grid: np.ndarray | None  # per row; None: every row is on the grid
    slots: np.ndarray  # per row: step number from the series' grid start
    rows_index: np.ndarray | None  # batch row of each entry (None: every row, in order)


def _series_stats(
    scan: BatchScan, keys: tuple[str, ...], tcol: str, step: int, window: Window | None
) -> _SeriesStats:
    """Rows, span, distinct on/off-grid steps and duplicates per series; ``window``: grid spans the window."""
    times, valid = scan.epoch_micros(tcol)
    groups = scan.groups(keys) if keys else None
    ids = groups.ids if groups is not None else np.zeros(len(times), np.int64)
    size = groups.size if groups is not None else 1
    rows_index = None
    if valid is not None:
        rows_index = np.flatnonzero(valid)
        ids, times = ids[rows_index], times[rows_index]
    counts = np.bincount(ids, minlength=size)
    present = np.flatnonzero(counts)
    n = len(present)
    if n == size:  # every group id has rows (e.g. one ISO and market): ids are already series numbers
        series, rows = ids, counts
    else:
        dense = np.full(size, -1, np.int64)
        dense[present] = np.arange(n)
        series, rows = dense[ids], counts[present]
    first = np.full(n, np.iinfo(np.int64).max, np.int64)
    last = np.full(n, np.iinfo(np.int64).min, np.int64)
    np.minimum.at(first, series, times)
    np.maximum.at(last, series, times)
    if window is not None:
        lo, hi = _micros(window.start), _micros(window.end)
        grid_first = np.full(n, lo, np.int64)
        expected = np.full(n, (hi - lo - 1) // step + 1, np.int64)
        offsets = times - lo
    else:
        grid_first = first
        expected = (last - first) // step + 1
        offsets = times - first[series]
    slots = offsets // step
    grid_rows = slots * step == offsets
    if window is not None:
        # A row outside the window must not stand in for a missing step inside it: it counts as off-grid.
        grid_rows &= (times >= lo) & (times < hi)
    on_grid = None if grid_rows.all() else grid_rows
    on_series = series if on_grid is None else series[on_grid]
    on_slots = slots if on_grid is None else slots[on_grid]
    distinct_on = _distinct_steps(on_series, on_slots, expected)
    distinct_off = np.zeros(n, np.int64)
    if on_grid is not None:
        off = ~on_grid
        distinct_off = _distinct_pairs(series[off], times[off], n)
    return _SeriesStats(
        rows=rows,
        first=first,
        last=last,
        expected=expected,
        missing=np.clip(expected - distinct_on, 0, None),
        duplicates=rows - distinct_on - distinct_off,
        off_grid=distinct_off,
        grid_first=grid_first,
        series=series,
        times=times,
        on_grid=on_grid,
        slots=slots,
        rows_index=rows_index,
    )


def _distinct_steps(series: np.ndarray, slots: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Distinct grid steps per series: one bitmap over all series' spans, or a sort when spans are huge."""
    total = int(expected.sum())
    if len(expected) == 0:
        return np.zeros(0, np.int64)
    if total > max(4 * len(series), 1 << 20):  # a stray far-off timestamp: don't allocate its whole span
        return _distinct_pairs(series, slots, len(expected))
    starts = np.cumsum(expected) - expected
    occupied = np.bincount(starts[series] + slots, minlength=total) > 0
    return np.add.reduceat(occupied, starts, dtype=np.int64)


def _distinct_pairs(series: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Distinct ``values`` per series by sorting the pairs (used for the few off-grid rows)."""
    if len(series) == 0:
        return np.zeros(n, np.int64)
    order = np.lexsort((values, series))
    s, v = series[order], values[order]
    new = np.ones(len(s), bool)
    new[1:] = (s[1:] != s[:-1]) | (v[1:] != v[:-1])
    return np.bincount(s[new], minlength=n)


def _sample_series(
    scan: BatchScan, stats: _SeriesStats, bad: np.ndarray, keys: tuple[str, ...], step: int, limit: int
) -> list[dict[str, Any]]:
    """Describe the first ``limit`` failing series in key order, with their first few missing timestamps."""
    rows_of_bad = np.flatnonzero(np.isin(stats.series, bad))
    bad_series, first_at = np.unique(stats.series[rows_of_bad], return_index=True)
    batch_rows = (
        rows_of_bad[first_at] if stats.rows_index is None else stats.rows_index[rows_of_bad[first_at]]
    )
    key_rows = scan.table.select(list(keys)).take(pa.array(batch_rows)).to_pylist()
    ordered = sorted(zip(bad_series.tolist(), key_rows, strict=True), key=lambda p: _key_order(p[1], keys))
    chosen = ordered[:limit]
    wanted = np.array([s for s, _ in chosen], np.int64)
    on = np.isin(stats.series, wanted)
    if stats.on_grid is not None:
        on &= stats.on_grid
    steps_by_series: dict[int, np.ndarray] = {}
    sel = np.flatnonzero(on)
    order = np.argsort(stats.series[sel], kind="stable")
    sel_series, sel_slots = stats.series[sel][order], stats.slots[sel][order]
    for s, start, end in _runs(sel_series):
        steps_by_series[s] = np.unique(sel_slots[start:end])
    out: list[dict[str, Any]] = []
    for s, key in chosen:
        present = steps_by_series.get(s, np.empty(0, np.int64))
        candidates = np.arange(min(int(stats.expected[s]), len(present) + 5), dtype=np.int64)
        gaps = np.setdiff1d(candidates, present, assume_unique=True)[:5]
        grid_first = int(stats.grid_first[s])
        out.append(
            {
                **key,
                "first": _iso(int(stats.first[s])),
                "last": _iso(int(stats.last[s])),
                "missing": int(stats.missing[s]),
                "duplicates": int(stats.duplicates[s]),
                "off_grid": int(stats.off_grid[s]),
                "missing_ts": [_iso(grid_first + int(g) * step) for g in gaps],
            }
        )
    return json_safe(out)


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """``(value, start, end)`` of each run of equal values in a sorted array."""
    if len(values) == 0:
        return []
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(values)]])
    return [(int(values[a]), int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _key_order(key: dict[str, Any], keys: tuple[str, ...]) -> tuple[Any, ...]:
    """The order failing series are sampled in (stable across runs): by key, missing values first."""
    return tuple((key[k] is not None, key[k] if key[k] is not None else 0) for k in keys)


def _error(exp: Expectation, message: str) -> ExpectationOutcome:
    return ExpectationOutcome(
        name=exp.name, success=False, severity=exp.severity, details={"error": message, "kind": exp.kind}
    )


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _iso(micros: int) -> str:
    return (_EPOCH + timedelta(microseconds=micros)).isoformat()
