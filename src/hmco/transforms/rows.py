"""Row-level transforms: keep the latest row per key, keep a window's rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hmco.windows import Window

__all__ = ["dedupe_latest", "filter_window"]


def dedupe_latest(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Keep the last row of each key (a later revision in the same batch wins), preserving order."""
    if table.num_rows < 2 or not keys:
        return table
    indexed = table.select(list(keys)).append_column(
        "__row", pa.array(np.arange(table.num_rows, dtype=np.int64))
    )
    last = indexed.group_by(list(keys), use_threads=False).aggregate([("__row", "max")]).column("__row_max")
    if len(last) == table.num_rows:
        return table
    return table.take(pc.sort_indices(last))


def filter_window(table: pa.Table, window: Window, column: str = "ts") -> pa.Table:
    """Rows whose ``column`` lies in ``[window.start, window.end)``."""
    if table.num_rows == 0:
        return table
    col = table.column(column)
    start = pa.scalar(window.start, type=col.type)
    end = pa.scalar(window.end, type=col.type)
    mask = pc.and_(pc.greater_equal(col, start), pc.less(col, end))
    return table.filter(mask)
