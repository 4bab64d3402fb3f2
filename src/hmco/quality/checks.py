"""Expectations evaluated directly on Arrow: schema types, continuity and recency of interval series.

Great Expectations has no continuity or recency expectation, and it sees pandas dtypes rather than the
Arrow types hmco's schemas declare, so these kinds run here, vectorized (pyarrow / polars), and are
reported as ordinary :class:`~hmco.quality.gate.ExpectationOutcome`\\ s in the same result. Each is an
Arrow check, ``(table, exp, ctx) -> ExpectationOutcome``, registered in :mod:`hmco.quality.kinds`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hmco.quality.gate import ExpectationOutcome
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
    when ``params.edges`` is true). Computed with one polars ``group_by``; the missing timestamps are
    listed only for the sampled series. The gate has checked that the columns are present.
    """
    pl = _polars()
    tcol = str(exp.params.get("time_column", "ts"))
    keys = list(exp.columns)
    window = ctx.window
    if not pa.types.is_timestamp(table.schema.field(tcol).type):
        return _error(exp, f"time column {tcol!r} is {table.schema.field(tcol).type}, not a timestamp")
    step = int(parse_duration(exp.params["frequency"]) / timedelta(microseconds=1))
    edges = bool(exp.params.get("edges", False)) and window is not None
    df = pl.from_arrow(table.select([*keys, tcol]))
    assert isinstance(df, pl.DataFrame)
    t = pl.col(tcol).dt.epoch("us")
    df = df.filter(pl.col(tcol).is_not_null()).with_columns(_t=t)
    t = pl.col("_t")
    if edges:
        assert window is not None
        lo, hi = _micros(window.start), _micros(window.end)
        anchor: Any = pl.lit(lo)
        span_first, span_last = pl.lit(lo), pl.lit(lo + ((hi - lo - 1) // step) * step)
        # A row outside the window must not stand in for a missing step inside it: it counts as off-grid.
        on_grid = (((t - anchor) % step) == 0) & (t >= lo) & (t < hi)
    else:
        anchor, span_first, span_last = t.min(), t.min(), t.max()
        on_grid = ((t - anchor) % step) == 0
    agg = df.group_by(keys).agg(
        rows=pl.len(),
        distinct=t.n_unique(),
        on_grid=t.filter(on_grid).n_unique(),
        first=t.min(),
        last=t.max(),
        expected=((span_last - span_first) // step + 1),
    )
    agg = agg.with_columns(
        missing=(pl.col("expected") - pl.col("on_grid")).clip(lower_bound=0),
        duplicates=pl.col("rows") - pl.col("distinct"),
        off_grid=pl.col("distinct") - pl.col("on_grid"),
    )
    bad = agg.filter((pl.col("missing") > 0) | (pl.col("duplicates") > 0) | (pl.col("off_grid") > 0))
    bad = bad.sort(keys)  # group_by order is arbitrary: sample the same series on every run
    totals = bad.select(pl.col("missing").sum(), pl.col("duplicates").sum(), pl.col("off_grid").sum()).row(0)
    missing, dupes, off = (int(x or 0) for x in totals)
    sample = _sample_series(df, bad.head(ctx.sample_size), keys, step, edges, window) if bad.height else []
    return exp.outcome(
        bad.height == 0,
        column=tcol,
        unexpected_count=missing + dupes + off,
        unexpected_sample=sample,
        details={
            **_ARROW,
            "series_checked": agg.height,
            "series_failing": bad.height,
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


def _sample_series(
    df: Any, bad: Any, keys: list[str], step: int, edges: bool, window: Window | None
) -> list[dict[str, Any]]:
    """Describe up to ``len(bad)`` failing series, with their first few missing timestamps."""
    pl = _polars()
    rows = df.join(bad.select(keys), on=keys, how="semi").group_by(keys).agg(pl.col("_t").sort())
    times = {tuple(r[:-1]): np.asarray(r[-1], dtype=np.int64) for r in rows.iter_rows()}
    out: list[dict[str, Any]] = []
    for rec in bad.iter_rows(named=True):
        ts = times.get(tuple(rec[k] for k in keys), np.empty(0, dtype=np.int64))
        if edges and window is not None:
            first, last = _micros(window.start), _micros(window.end) - 1
        else:
            first, last = int(rec["first"]), int(rec["last"])
        grid = np.arange(first, last + 1, step, dtype=np.int64)
        gaps = np.setdiff1d(grid, ts, assume_unique=False)[:5]
        out.append(
            {
                **{k: rec[k] for k in keys},
                "first": _iso(int(rec["first"])),
                "last": _iso(int(rec["last"])),
                "missing": int(rec["missing"]),
                "duplicates": int(rec["duplicates"]),
                "off_grid": int(rec["off_grid"]),
                "missing_ts": [_iso(int(x)) for x in gaps],
            }
        )
    return out


def _error(exp: Expectation, message: str) -> ExpectationOutcome:
    return ExpectationOutcome(
        name=exp.name, success=False, severity=exp.severity, details={"error": message, "kind": exp.kind}
    )


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _iso(micros: int) -> str:
    return (_EPOCH + timedelta(microseconds=micros)).isoformat()


def _polars() -> Any:
    import polars  # deferred: keeps `import hmco` fast

    return polars
