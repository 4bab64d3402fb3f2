"""Rows of the lake as an analyst's frame: chosen columns in order, times in the asked time zone, sorted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hmco.errors import MissingDependency

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

__all__ = ["to_frame"]


def to_frame(
    table: pa.Table,
    *,
    tz: str,
    columns: Mapping[str, str] | None = None,
    drop: Sequence[str] = ("published_at",),
    sort_by: Sequence[str] = (),
    pandas: bool = False,
) -> Any:
    """A polars DataFrame of ``table`` (or pandas with ``pandas=True``), time-zone-aware columns in ``tz``.

    Args:
        table: canonical rows (UTC timestamps).
        tz: IANA time zone every zoned timestamp column is converted to.
        columns: ``{canonical name: output name}`` in output order; None keeps every column but ``drop``.
        drop: columns left out when ``columns`` is None.
        sort_by: output columns to sort by.
        pandas: return a ``pandas.DataFrame`` (tz-aware ``datetime64`` columns) instead.
    """
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if columns is None:
        frame = frame.drop([c for c in drop if c in frame.columns])
    else:
        frame = frame.select([pl.col(src).alias(dst) for src, dst in columns.items()])
    frame = frame.with_columns(
        [
            pl.col(name).dt.convert_time_zone(tz)
            for name, dtype in frame.schema.items()
            if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
        ]
    )
    if sort_by:
        frame = frame.sort(list(sort_by))
    return _pandas(frame) if pandas else frame


def _pandas(frame: pl.DataFrame) -> Any:
    try:
        import pandas  # noqa: F401  (polars converts; this only checks it is installed)
    except ImportError:
        raise MissingDependency(
            "pandas is needed for pandas=True but is not installed: pip install 'hmco[plot]' "
            "(or pip install pandas), or leave pandas=False for a polars DataFrame"
        ) from None
    return frame.to_pandas()
