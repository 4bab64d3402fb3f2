"""US Census Data API: ACS estimates and economic timeseries (EITS) in long form.

The API answers a JSON array of arrays whose first row is the header (variables, then repeated
predicate columns, then geography columns in hierarchy order), every cell a string or ``null``. A
query may name at most 50 variables, so wide requests are split into chunks that each yield their
own payload; long-form rows from the chunks simply concatenate. Errors come in three shapes: plain
text on HTTP 400, an HTML "Invalid Key" page on HTTP 200, and an empty HTTP 204 for no match.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hmco.sources.census.parser import (
    ACS,
    ACS_SENTINELS,
    EITS_VARIABLES,
    GEOGRAPHY_NAMES,
    TIMESERIES,
    check_census_response,
    parse_acs,
    parse_timeseries,
    period_starts,
    vintage_from_url,
)
from hmco.sources.registry import lazy_getattr

if TYPE_CHECKING:
    from hmco.sources.census.client import (
        BASE_URL,
        MAX_VARIABLES,
        MIN_INTERVAL,
        Census,
        time_predicate,
        variable_chunks,
    )

__all__ = [
    "ACS",
    "ACS_SENTINELS",
    "BASE_URL",
    "EITS_VARIABLES",
    "GEOGRAPHY_NAMES",
    "MAX_VARIABLES",
    "MIN_INTERVAL",
    "TIMESERIES",
    "Census",
    "check_census_response",
    "parse_acs",
    "parse_timeseries",
    "period_starts",
    "time_predicate",
    "variable_chunks",
    "vintage_from_url",
]

#: the client's names (those not defined above) load on first use: importing the parser loads no HTTP library
__getattr__ = lazy_getattr(__name__, dict.fromkeys(__all__, "hmco.sources.census.client"))
