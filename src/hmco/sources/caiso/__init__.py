"""CAISO OASIS locational marginal prices: 5-minute (RTD), 15-minute (FMM) and day-ahead hourly (DAM).

OASIS serves every report as a zip from ``SingleZip``; a failed request is *also* an HTTP 200 zip,
holding an XML document with an ``ERR_CODE``. The edge throttles to one request per 5 s per client
with an HTTP 429 HTML page. So:

- ``fetch`` (:mod:`.client`) paces requests 5 s apart (process-wide per host), retries the 429 page after 5 s, retries
  transient in-zip errors (1003/1006-1010/1012/1013/1015) with backoff, and yields every final
  response as a :class:`RawPayload` -- including error zips, so their bytes reach the raw tier;
- ``parse`` (pure, :mod:`.parser`) turns a payload into the canonical ``rt_lmp``/``da_lmp`` table, or raises the typed
  error its ``ERR_CODE`` means (1000 "no data" is an empty table unless ``require_data``).

Times come only from the ``*_GMT`` columns, so DST days need no special casing: the spring-forward
trade date has 276 five-minute intervals, the fall-back one 300 (``OPR_HR`` 25).

``node_type`` uses gridstatus's labels (``Trading Hub``, ``DLAP``, ``AP Node``, ``Node``;
:data:`hmco.sources.nodes.CAISO_LOCATION_TYPES`). The node catalogue is OASIS's Atlas listings
``ATL_APNODE`` and ``ATL_PNODE`` (:meth:`CAISO.fetch_nodes`, :func:`parse_oasis_nodes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hmco.sources.caiso.parser import (
    CATALOGUES,
    COMPONENTS,
    MAX_GROUP_WINDOW_INTERVAL,
    OASIS_ERRORS,
    REPORTS,
    OasisError,
    OasisReport,
    location_types,
    oasis_error_of,
    oasis_report_time,
    parse_oasis_lmp,
    parse_oasis_nodes,
    parse_payload,
)
from hmco.sources.registry import lazy_getattr

if TYPE_CHECKING:
    from hmco.sources.caiso.client import (
        CAISO,
        DEFAULT_BASE_URL,
        DEFAULT_NODES,
        GROUP_TYPES,
        MAX_NODES_PER_REQUEST,
        MAX_REQUEST_WINDOW,
        MIN_INTERVAL,
        PACIFIC,
        THROTTLE_MARKER,
        THROTTLE_RETRY_SECONDS,
        is_throttle_page,
        trade_date_window,
    )

__all__ = [
    "CAISO",
    "CATALOGUES",
    "COMPONENTS",
    "DEFAULT_BASE_URL",
    "DEFAULT_NODES",
    "GROUP_TYPES",
    "MAX_GROUP_WINDOW_INTERVAL",
    "MAX_NODES_PER_REQUEST",
    "MAX_REQUEST_WINDOW",
    "MIN_INTERVAL",
    "OASIS_ERRORS",
    "PACIFIC",
    "REPORTS",
    "THROTTLE_MARKER",
    "THROTTLE_RETRY_SECONDS",
    "OasisError",
    "OasisReport",
    "is_throttle_page",
    "location_types",
    "oasis_error_of",
    "oasis_report_time",
    "parse_oasis_lmp",
    "parse_oasis_nodes",
    "parse_payload",
    "trade_date_window",
]

#: the client's names (those not defined above) load on first use: importing the parser loads no HTTP library
__getattr__ = lazy_getattr(__name__, dict.fromkeys(__all__, "hmco.sources.caiso.client"))
