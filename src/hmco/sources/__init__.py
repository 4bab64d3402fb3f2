"""Source clients: one module per source; each yields raw payloads and parses them with pure functions.

Classes are imported on first access so ``import hmco.sources`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from hmco.sources.base import SOURCES, RawPayload, Source, get_source_class, register_source

_LAZY = {
    "EIA": "hmco.sources.eia",
    "FRED": "hmco.sources.fred",
    "NOAA": "hmco.sources.noaa",
    "Census": "hmco.sources.census",
    "CAISO": "hmco.sources.caiso",
    "MISO": "hmco.sources.miso",
    "SPP": "hmco.sources.spp",
    "SyntheticISO": "hmco.sources.synthetic",
    "SyntheticEIADailyFuel": "hmco.sources.synthetic",
}

#: registry name -> module, so a UIS spec can name a source without importing all of them.
SOURCE_MODULES = {
    "eia": "hmco.sources.eia",
    "fred": "hmco.sources.fred",
    "noaa": "hmco.sources.noaa",
    "census": "hmco.sources.census",
    "caiso": "hmco.sources.caiso",
    "miso": "hmco.sources.miso",
    "spp": "hmco.sources.spp",
    "synthetic_iso": "hmco.sources.synthetic",
    "synthetic_eia_daily_fuel": "hmco.sources.synthetic",
}

__all__ = [*_LAZY, "SOURCES", "SOURCE_MODULES", "RawPayload", "Source", "get_source_class", "register_source"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hmco.sources' has no attribute {name!r}")
