"""EIA API v2: EIA-930 grid data (daily and hourly generation by fuel, hourly region data) and spot prices.

EIA pages JSON results 5,000 rows at a time (``offset``/``length``), reports the full match count in
``response.total`` (a string), and echoes every request parameter -- ``api_key`` included -- back in
``request.params``. So:

- ``fetch`` (:mod:`.client`) sends the key as the ``api_key`` query parameter (EIA ignores headers), paces requests
  0.2 s apart (EIA suspends keys bursting over 5 req/s), always sorts explicitly so pages are stable,
  walks ``offset`` until ``total`` rows have arrived, redacts the echoed key from every body before it
  becomes a :class:`RawPayload`, and turns error bodies into typed errors;
- :func:`parse_eia` (pure, :mod:`.parser`) reads the payload with ``pyarrow.json`` (no per-row Python) and builds the
  canonical table. Values are JSON strings since API v2.1.6 (``"NA"`` means null); older numeric
  payloads parse too.

Times: ``hourly`` periods are UTC *hour-ending* (``2024-03-10T08`` is the hour 07:00-08:00 UTC), so
``ts = period - 1h`` and ``interval_end = period``. Daily periods carry no zone: ``ts`` is UTC midnight
of the period date (the ``timezone`` column says whose day it is). Spot-price days are UTC midnight
of the trade date as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hmco.sources.eia.parser import (
    DEFAULT_SPOT_SERIES,
    REGISTER_URL,
    ROUTES,
    SPOT_ROUTES,
    EIAPage,
    EIARoute,
    error_from_response,
    parse_eia,
    read_page,
    spot_route_for,
)
from hmco.sources.registry import lazy_getattr

if TYPE_CHECKING:
    from hmco.sources.eia.client import (
        DEFAULT_BASE_URL,
        EIA,
        MAX_PAGE_LENGTH,
        MIN_INTERVAL,
    )

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_SPOT_SERIES",
    "EIA",
    "MAX_PAGE_LENGTH",
    "MIN_INTERVAL",
    "REGISTER_URL",
    "ROUTES",
    "SPOT_ROUTES",
    "EIAPage",
    "EIARoute",
    "error_from_response",
    "parse_eia",
    "read_page",
    "spot_route_for",
]

#: the client's names (those not defined above) load on first use: importing the parser loads no HTTP library
__getattr__ = lazy_getattr(__name__, dict.fromkeys(__all__, "hmco.sources.eia.client"))
