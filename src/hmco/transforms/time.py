"""Time transforms: local market time to UTC (DST-aware), hour-ending to interval start, shifts."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from hmco.schemas import TS

__all__ = ["hour_ending_to_start", "local_to_utc", "shift"]


def local_to_utc(
    values: pa.Array | pa.ChunkedArray,
    timezone: str,
    *,
    ambiguous: Literal["raise", "earliest", "latest"] = "raise",
    nonexistent: Literal["raise", "earliest", "latest"] = "raise",
) -> pa.Array | pa.ChunkedArray:
    """Interpret naive local timestamps in ``timezone`` (IANA name or fixed ``-05:00``) as UTC instants.

    Ambiguous (fall-back) and nonexistent (spring-forward) local times raise by default, because a
    silent guess would duplicate or drop an interval; callers that know the convention pick one.
    """
    if pa.types.is_timestamp(values.type) and values.type.tz is not None:
        return pc.cast(values, TS)
    naive = pc.cast(values, pa.timestamp("us"))
    return pc.assume_timezone(naive, timezone=timezone, ambiguous=ambiguous, nonexistent=nonexistent).cast(TS)


def shift(values: pa.Array | pa.ChunkedArray, delta: timedelta) -> pa.Array | pa.ChunkedArray:
    """Add a fixed duration to timestamps (vectorized)."""
    return pc.add(values, pa.scalar(delta, type=pa.duration("us")))


def hour_ending_to_start(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Hour-ending labels (EIA hourly, CAISO OPR_HR) to interval starts."""
    return shift(values, -timedelta(hours=1))
