"""NOAA: GHCN-Daily station values (CDO web services v2) and station observations (api.weather.gov).

Two APIs behind one source. ``noaa_ghcnd_daily`` pages CDO ``/data`` (token header, 1-based
``offset``, at most one year per request); ``noaa_observations`` walks api.weather.gov's GeoJSON
collections by ``pagination.next`` cursor and converts every quantity to the canonical SI column,
whatever unit code the payload carries (``wmoUnit:`` today, ``unit:`` in older payloads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from hmco.sources.registry import lazy_getattr

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

#: the client's names (those not defined above) load on first use: importing the parser loads no HTTP library
__getattr__ = lazy_getattr(__name__, dict.fromkeys(__all__, "hmco.sources.noaa.client"))
