"""NOAA: GHCN-Daily station values (CDO web services v2) and station observations (api.weather.gov).

Two APIs behind one source. ``noaa_ghcnd_daily`` pages CDO ``/data`` (token header, 1-based
``offset``, at most one year per request); ``noaa_observations`` walks api.weather.gov's GeoJSON
collections by ``pagination.next`` cursor and converts every quantity to the canonical SI column,
whatever unit code the payload carries (``wmoUnit:`` today, ``unit:`` in older payloads).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hmco.sources.noaa.parser import (
    GHCND,
    OBSERVATIONS,
    REJECTED_QC,
    UNIT_SYSTEMS,
    cdo_result_count,
    check_cdo_response,
    check_weather_response,
    observations_cursor,
    parse_ghcnd_daily,
    parse_observations,
)

if TYPE_CHECKING:
    from hmco.sources.noaa.client import (
        CDO_BASE_URL,
        CDO_MAX_LIMIT,
        CDO_MIN_INTERVAL,
        NOAA,
        WEATHER_BASE_URL,
        WEATHER_MAX_LIMIT,
        WEATHER_MIN_INTERVAL,
        cdo_date_chunks,
    )

#: the I/O half loads on first use, so importing the pure parser never loads an HTTP library
_CLIENT_NAMES = frozenset(
    {
        "CDO_BASE_URL",
        "CDO_MAX_LIMIT",
        "CDO_MIN_INTERVAL",
        "NOAA",
        "WEATHER_BASE_URL",
        "WEATHER_MAX_LIMIT",
        "WEATHER_MIN_INTERVAL",
        "cdo_date_chunks",
    }
)

__all__ = [
    "CDO_BASE_URL",
    "CDO_MAX_LIMIT",
    "CDO_MIN_INTERVAL",
    "GHCND",
    "NOAA",
    "OBSERVATIONS",
    "REJECTED_QC",
    "UNIT_SYSTEMS",
    "WEATHER_BASE_URL",
    "WEATHER_MAX_LIMIT",
    "WEATHER_MIN_INTERVAL",
    "cdo_date_chunks",
    "cdo_result_count",
    "check_cdo_response",
    "check_weather_response",
    "observations_cursor",
    "parse_ghcnd_daily",
    "parse_observations",
]


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        return getattr(importlib.import_module("hmco.sources.noaa.client"), name)
    raise AttributeError(f"module 'hmco.sources.noaa' has no attribute {name!r}")
