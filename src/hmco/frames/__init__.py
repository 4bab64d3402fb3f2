"""Data frames in one call, read through the lake: ISO prices, node lists and the EIA, FRED, NOAA and
Census series.

::

    import hmco
    prices = hmco.lmp("CAISO", "2026-11-01", nodes=["TH_NP15_GEN-APND"])   # a Pacific market day
    hubs = hmco.nodes("MISO", kind="Hub")
    oil = hmco.fred("DCOILWTICO", "2026-01-01", "2026-07-01")

Each call returns a polars DataFrame (``pandas=True`` for pandas). Windows the lake holds are read
from it; missing ones are fetched, archived, gated and stored by the dataset's shipped pipeline
first (:mod:`hmco.frames.reader`), so a second call for the same range makes no request.
"""

from __future__ import annotations

from hmco.frames.prices import ISO_TIMEZONES, MARKETS, iso_timezone, lmp, nodes
from hmco.frames.series import census, eia, fred, noaa

__all__ = ["ISO_TIMEZONES", "MARKETS", "census", "eia", "fred", "iso_timezone", "lmp", "noaa", "nodes"]
