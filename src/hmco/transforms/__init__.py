"""Vectorized Arrow transforms: pure functions ``pa.Table -> pa.Table`` used between parse and sinks."""

from hmco.transforms.rows import dedupe_latest, filter_window
from hmco.transforms.time import hour_ending_to_start, local_to_utc, shift

__all__ = ["dedupe_latest", "filter_window", "hour_ending_to_start", "local_to_utc", "shift"]
