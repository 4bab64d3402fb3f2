"""hmco's own engine for the built-in Great Expectations kinds: the same verdicts, on Arrow, without GX.

Each function is the ``native=`` implementation of a GX kind (:mod:`hmco.quality.kinds`) and returns
the :class:`~hmco.quality.gate.ExpectationOutcome` the GX run would: same success, unexpected count,
sample (the first unexpected rows, in row order, read from Arrow as for GX results) and ``details`` keys
(``element_count``, ``missing_count``, ``unexpected_percent``, ``observed_value``). GX 1.x semantics
are kept: a value is missing when null or NaN; ``between``, ``in_set`` and ``unique`` ignore missing
values and judge ``mostly`` on the rest, ``not_null`` on every row; an empty batch passes vacuously.
The per-batch work (missing counts, min/max, codes, duplicate groups) comes from the shared
:class:`~hmco.quality.scan.BatchScan`, so a passing batch costs a few vectorized passes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hmco.quality.checks import json_safe, scan_of
from hmco.quality.gate import ExpectationOutcome

if TYPE_CHECKING:
    from hmco.quality.kinds import CheckContext
    from hmco.quality.scan import BatchScan
    from hmco.quality.suites import Expectation
    from hmco.windows import Window

__all__ = ["between", "columns", "in_set", "not_null", "row_count", "row_count_limits", "unique"]

_ENGINE = {"engine": "hmco"}
_PER_SECONDS = {"hour": 3600.0, "day": 86400.0}


class CannotEvaluate(TypeError):
    """The expectation does not apply to this column's type (GX raises too, and the expectation fails)."""


def columns(table: pa.Table, exp: Expectation, ctx: CheckContext) -> ExpectationOutcome:
    """``ExpectTableColumnsToMatchSet``: every listed column present (``exact``: and no other)."""
    expected = {str(c) for c in exp.params["columns"]}
    actual = set(table.column_names)
    unexpected, missing = sorted(actual - expected), sorted(expected - actual)
    details: dict[str, Any] = {**_ENGINE, "observed_value": sorted(actual)}
    mismatched = {k: v for k, v in (("unexpected", unexpected), ("missing", missing)) if v}
    if mismatched:
        details["details"] = {"mismatched": mismatched}
    exact = bool(exp.params.get("exact", False))
    sample = [f"missing: {c}" for c in missing] + [f"unexpected: {c}" for c in unexpected]
    ok = not missing and not (exact and unexpected)
    return exp.outcome(ok, unexpected_count=len(sample), unexpected_sample=sample, details=details)


def not_null(table: pa.Table, exp: Expectation, ctx: CheckContext) -> ExpectationOutcome:
    """``ExpectColumnValuesToNotBeNull``: ``mostly`` is judged over every row (not only non-missing)."""
    assert exp.column is not None
    scan = scan_of(table, ctx)
    rows, unexpected = scan.num_rows, scan.missing(exp.column)
    ok = rows == 0 or (float(rows) - float(unexpected)) / float(rows) >= _mostly(exp)
    details = {
        **_ENGINE,
        "element_count": rows,
        "unexpected_percent": unexpected / rows * 100 if rows else None,
    }
    sample = [None] * min(unexpected, ctx.sample_size)
    return exp.outcome(ok, unexpected_count=unexpected, unexpected_sample=sample, details=details)


def unique(table: pa.Table, exp: Expectation, ctx: CheckContext) -> ExpectationOutcome:
    """``ExpectColumnValuesToBeUnique`` / ``ExpectCompoundColumnsToBeUnique``: each copy of a repeated key."""
    cols = [str(c) for c in (exp.columns or (exp.column,))]
    scan = scan_of(table, ctx)
    dupes = scan.duplicates(tuple(cols))
    sample: list[Any] = []
    if dupes.unexpected:
        target: list[str] | str = cols if len(cols) > 1 else cols[0]
        sample = scan.take(target, dupes.mask(), ctx.sample_size)
    return _map_outcome(exp, scan, dupes.unexpected, dupes.missing, sample)


def between(table: pa.Table, exp: Expectation, ctx: CheckContext) -> ExpectationOutcome:
    """``ExpectColumnValuesToBeBetween``: min/max first; the rows are scanned only when a bound is crossed."""
    assert exp.column is not None
    scan, name, p = scan_of(table, ctx), exp.column, exp.params
    col = table.column(name)
    lo, hi = _bound(col.type, p.get("min"), name), _bound(col.type, p.get("max"), name)
    strict_lo, strict_hi = bool(p.get("strict_min", False)), bool(p.get("strict_max", False))
    low, high = scan.min_max(name)
    inside = low is None or (
        (lo is None or (pc.greater if strict_lo else pc.greater_equal)(pa.scalar(low, col.type), lo).as_py())
        and (hi is None or (pc.less if strict_hi else pc.less_equal)(pa.scalar(high, col.type), hi).as_py())
    )
    unexpected, sample = 0, []
    if not inside:
        outside: Any = None
        if lo is not None:
            outside = (pc.less_equal if strict_lo else pc.less)(col, lo)
        if hi is not None:
            above = (pc.greater_equal if strict_hi else pc.greater)(col, hi)
            outside = above if outside is None else pc.or_(outside, above)
        mask = np.asarray(pc.fill_null(outside, False).to_numpy(zero_copy_only=False), dtype=bool)
        unexpected = int(mask.sum())
        sample = scan.take(name, mask, ctx.sample_size)
    return _map_outcome(exp, scan, unexpected, scan.missing(name), sample)


def in_set(table: pa.Table, exp: Expectation, ctx: CheckContext) -> ExpectationOutcome:
    """``ExpectColumnValuesToBeInSet``: judged on the distinct values; rows are counted only if one is out."""
    assert exp.column is not None
    scan, name = scan_of(table, ctx), exp.column
    codes = scan.codes(name)
    bad = np.flatnonzero(~_members(codes.dictionary, list(exp.params["values"])))
    unexpected, sample = 0, []
    if len(bad):
        mask = np.isin(codes.indices, bad)
        unexpected = int(mask.sum())
        sample = scan.take(name, mask, ctx.sample_size)
    return _map_outcome(exp, scan, unexpected, scan.missing(name), sample)


def row_count(table: pa.Table, exp: Expectation, ctx: CheckContext) -> ExpectationOutcome:
    """``ExpectTableRowCountToBeBetween`` with the bounds of this window (see :func:`row_count_limits`)."""
    lo, hi = row_count_limits(exp, ctx.window)
    rows = table.num_rows
    ok = (lo is None or rows >= lo) and (hi is None or rows <= hi)
    return exp.outcome(ok, details={**_ENGINE, "observed_value": rows})


def row_count_limits(exp: Expectation, window: Window | None) -> tuple[Any, Any]:
    """A ``row_count`` expectation's (min, max) for ``window``: bounds per hour/day are scaled to the
    window's length (min rounds up, max down); per-window bounds are as given."""
    per = exp.params.get("per", "window")
    lo, hi = exp.params.get("min"), exp.params.get("max")
    if per == "window":
        return lo, hi
    scale = (window.duration / timedelta(seconds=_PER_SECONDS[per])) if window else 1.0
    return (
        None if lo is None else int(-(-(float(lo) * scale) // 1)),
        None if hi is None else int(float(hi) * scale),
    )


# --- shared by the column-map kinds -------------------------------------------------------------------


def _map_outcome(
    exp: Expectation, scan: BatchScan, unexpected: int, missing: int, sample: list[Any]
) -> ExpectationOutcome:
    """GX's column-map verdict: vacuous without non-missing rows, else the non-missing rows' share that is
    expected must reach ``mostly``."""
    rows = scan.num_rows
    nonmissing = rows - missing
    ok = (
        rows == 0
        or nonmissing == 0
        or (float(nonmissing) - float(unexpected)) / float(nonmissing) >= _mostly(exp)
    )
    details = {
        **_ENGINE,
        "element_count": rows,
        "missing_count": missing,
        "unexpected_percent": unexpected / nonmissing * 100 if rows and nonmissing else None,
    }
    return exp.outcome(ok, unexpected_count=unexpected, unexpected_sample=json_safe(sample), details=details)


def _mostly(exp: Expectation) -> float:
    mostly = exp.params.get("mostly")
    return 1.0 if mostly is None else float(mostly)


def _bound(typ: pa.DataType, value: Any, column: str) -> pa.Scalar | None:
    """A ``between`` bound as an Arrow scalar comparable with the column, else :class:`CannotEvaluate`."""
    if value is None:
        return None
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ)) and numeric:
        return pa.scalar(value)
    if pa.types.is_timestamp(typ) and isinstance(value, str | datetime):
        return pa.scalar(datetime.fromisoformat(value) if isinstance(value, str) else value, typ)
    if pa.types.is_date(typ) and isinstance(value, str | date):
        return pa.scalar(date.fromisoformat(value) if isinstance(value, str) else value, typ)
    raise CannotEvaluate(f"column {column!r} is {typ}: cannot compare it with the bound {value!r}")


def _members(dictionary: pa.Array, values: list[Any]) -> np.ndarray:
    """Which distinct values of a column are in ``values``, with Python's (and pandas' ``isin``) equality."""
    typ = dictionary.type
    if not len(dictionary):
        return np.zeros(0, bool)
    if (pa.types.is_string(typ) or pa.types.is_large_string(typ)) and all(isinstance(v, str) for v in values):
        hit = pc.is_in(dictionary, value_set=pa.array(values, typ))
    elif (pa.types.is_integer(typ) or pa.types.is_floating(typ)) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        hit = pc.is_in(dictionary.cast(pa.float64()), value_set=pa.array(values, pa.float64()))
    else:
        allowed = list(values)
        return np.array([v in allowed for v in dictionary.to_pylist()], dtype=bool)
    return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
