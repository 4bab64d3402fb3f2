"""NOAA, the I/O half: the :class:`NOAA` source pages CDO ``/data`` by offset and api.weather.gov
observations by cursor, yielding each page before reading where the next one is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote, urlsplit

import pyarrow as pa

from hmco.config import Settings
from hmco.errors import AuthenticationError, ConfigError, RateLimited
from hmco.redaction import redact_bytes
from hmco.sources.base import RawPayload, Source, as_list
from hmco.sources.http import HttpClient, HttpOptions, response_payload
from hmco.sources.noaa.parser import (
    GHCND,
    OBSERVATIONS,
    UNIT_SYSTEMS,
    cdo_result_count,
    check_cdo_response,
    check_weather_response,
    observations_cursor,
    parse_ghcnd_daily,
    parse_observations,
)
from hmco.windows import Window

__all__ = [
    "CDO_BASE_URL",
    "CDO_MAX_LIMIT",
    "CDO_MIN_INTERVAL",
    "NOAA",
    "WEATHER_BASE_URL",
    "WEATHER_MAX_LIMIT",
    "WEATHER_MIN_INTERVAL",
    "cdo_date_chunks",
]

CDO_BASE_URL: Final = "https://www.ncei.noaa.gov/cdo-web/api/v2/"
WEATHER_BASE_URL: Final = "https://api.weather.gov"
#: CDO allows 5 requests/s per token (and 10,000/day).
CDO_MIN_INTERVAL: Final = 0.2
#: api.weather.gov publishes no limit; stay polite and let 429 + Retry-After do the rest.
WEATHER_MIN_INTERVAL: Final = 0.25
CDO_MAX_LIMIT: Final = 1000
WEATHER_MAX_LIMIT: Final = 500


def cdo_date_chunks(window: Window) -> Iterator[tuple[Window, date, date]]:
    """Split ``window`` into per-calendar-year requests: (sub-window, startdate, enddate inclusive).

    A day belongs to the window when its UTC midnight does; CDO limits daily datasets to one year per
    request, so no chunk crosses 1 January.
    """
    first = (
        window.start.date()
        if window.start.time() == datetime.min.time()
        else window.start.date() + timedelta(1)
    )
    last = (window.end - timedelta(microseconds=1)).date()
    cursor = first
    while cursor <= last:
        chunk_last = min(last, date(cursor.year, 12, 31))
        start = datetime(cursor.year, cursor.month, cursor.day, tzinfo=UTC)
        end = datetime(chunk_last.year, chunk_last.month, chunk_last.day, tzinfo=UTC) + timedelta(days=1)
        yield Window(start, end), cursor, chunk_last
        cursor = chunk_last + timedelta(days=1)


def _rebase(next_url: str) -> str:
    """Path and query of an absolute ``pagination.next`` link, to be resolved on our own base URL."""
    parts = urlsplit(next_url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _iso_z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NOAA(Source):
    """NOAA weather: hourly station observations (api.weather.gov) or GHCN-Daily values (CDO v2).

    Args:
        dataset: ``noaa_observations`` (default) or ``noaa_ghcnd_daily``.
        base_url: CDO root (default the NCEI host). For ``noaa_observations`` it is used as the
            weather.gov root when ``weather_base_url`` is not given (so a UIS ``base_url`` just works).
        http: timeout, retries and pacing (:class:`~hmco.sources.http.HttpOptions` or a mapping); requests
            go 0.2 s apart by default for CDO's 5 req/s, 0.25 s for weather.gov.
        stations: CDO ``GHCND:USW00094728`` (bare ids get the ``GHCND:`` prefix) or weather.gov
            ``KSUA``-style ids.
        datatypes: GHCN-D elements (``TMAX``, ``TMIN``, ``PRCP`` …); all when omitted.
        locations: CDO ``locationid`` values (``FIPS:37``, ``ZIP:28801``) instead of/with stations.
        units: ``metric`` (default), ``standard`` or ``None``/``"raw"`` to omit it (tenths as stored).
        page_size: CDO ``limit`` (≤ 1000) or weather.gov ``limit`` (≤ 500).
        weather_base_url: api.weather.gov root (default https://api.weather.gov).
    """

    name = "noaa"
    datasets = (OBSERVATIONS, GHCND)
    window_step = timedelta(hours=1)
    publication_lag = timedelta(minutes=10)

    def __init__(
        self,
        dataset: str | None = None,
        *,
        settings: Settings | None = None,
        base_url: str | None = None,
        http: HttpOptions | Mapping[str, Any] | None = None,
        stations: list[str] | str | None = None,
        datatypes: list[str] | str | None = None,
        locations: list[str] | str | None = None,
        units: str | None = "metric",
        page_size: int | None = None,
        weather_base_url: str | None = None,
    ) -> None:
        super().__init__(dataset, settings=settings)
        self.daily = self.dataset.name == GHCND
        if self.daily:
            # one window per station day; GHCN-D arrives about a day late
            self.window_step = timedelta(days=1)
            self.publication_lag = timedelta(days=2)
        self.stations = as_list(stations)
        if self.daily:
            self.stations = [s if ":" in s else f"GHCND:{s}" for s in self.stations]
        self.datatypes = [d.upper() for d in as_list(datatypes)]
        self.locations = as_list(locations)
        units_key = "raw" if units in (None, "", "raw") else str(units).lower()
        if units_key not in UNIT_SYSTEMS:
            raise ConfigError(f"noaa: units must be 'metric', 'standard' or omitted, not {units!r}")
        self.units = units_key
        max_limit = CDO_MAX_LIMIT if self.daily else WEATHER_MAX_LIMIT
        self.page_size = min(int(page_size or max_limit), max_limit)
        if self.page_size < 1:
            raise ConfigError(f"noaa: page_size must be ≥ 1, not {page_size}")
        if self.daily and not (self.stations or self.locations):
            raise ConfigError("noaa_ghcnd_daily needs `stations` (e.g. GHCND:USW00094728) or `locations`")
        if not self.daily and not self.stations:
            raise ConfigError("noaa_observations needs `stations` (e.g. KSUA)")
        if self.daily:
            self.base_url = base_url or CDO_BASE_URL
        else:
            self.base_url = weather_base_url or base_url or WEATHER_BASE_URL
        options = HttpOptions.coerce(http)
        default_interval = CDO_MIN_INTERVAL if self.daily else WEATHER_MIN_INTERVAL
        #: seconds between two requests to the host
        self.min_interval = default_interval if options.min_interval is None else options.min_interval
        self.http_options = options.with_defaults(timeout=60.0, min_interval=self.min_interval)
        self._http: HttpClient | None = None
        #: the CDO token as of each request: a rotated token file is picked up without a rebuild
        self._token = self.settings.secret("sources.noaa_token")

    # ---- HTTP ---------------------------------------------------------------------------------

    @property
    def http(self) -> HttpClient:
        """The paced client, built on first use (CDO needs the token only when fetching)."""
        if self._http is None:
            agent = self.settings.sources.user_agent
            if not agent or not agent.strip():
                raise AuthenticationError(
                    "api.weather.gov and CDO want a User-Agent naming the application and a contact: "
                    "set HMCO_SOURCES__USER_AGENT",
                    source="noaa",
                )
            headers: dict[str, str] = {}
            if self.daily:
                if not self._token.get():
                    raise AuthenticationError(
                        "NOAA CDO needs a token: set HMCO_SOURCES__NOAA_TOKEN "
                        "(free at https://www.ncdc.noaa.gov/cdo-web/token)",
                        source="noaa",
                        dataset=GHCND,
                    )
            else:
                headers["Accept"] = "application/geo+json"
            self._http = self.http_options.client(self.base_url, user_agent=agent, headers=headers)
        return self._http

    def scope(self) -> dict[str, list[str]]:
        """Re-running a window replaces only these stations' rows (and these elements', if named).

        Selected by ``locations`` alone, the stations are not known in advance: the whole window is
        replaced, as for any source without a scope.
        """
        scope: dict[str, list[str]] = {}
        if self.stations:
            scope["station"] = list(self.stations)
        if self.daily and self.datatypes:
            scope["datatype"] = list(self.datatypes)
        return scope

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # ---- fetch --------------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        """Yield every page covering ``window`` (year chunks × offset pages, or stations × cursor pages).

        Each answer is yielded before it is judged: an error page reaches the raw archive, then raises.
        """
        if self.daily:
            yield from self._fetch_ghcnd(window)
        else:
            yield from self._fetch_observations(window)

    def _ghcnd_params(self, first: date, last: date, offset: int) -> list[tuple[str, str]]:
        params = [("datasetid", "GHCND")]
        params += [("stationid", s) for s in self.stations]
        params += [("locationid", loc) for loc in self.locations]
        params += [("datatypeid", d) for d in self.datatypes]
        params += [("startdate", first.isoformat()), ("enddate", last.isoformat())]
        if self.units != "raw":
            params.append(("units", self.units))
        params += [("limit", str(self.page_size)), ("offset", str(offset))]
        return params

    def _fetch_ghcnd(self, window: Window) -> Iterator[RawPayload]:
        http = self.http
        for chunk, first, last in cdo_date_chunks(window):
            offset, page = 1, 0
            while True:
                try:
                    resp = http.get_with_secret(
                        "data", self._ghcnd_params(first, last, offset), secret=self._token, header="token"
                    )
                except RateLimited as exc:
                    raise _cdo_quota_error(exc) from None
                payload = response_payload(
                    self,
                    resp,
                    window=chunk,
                    page=page,
                    meta={
                        "units": self.units,
                        "offset": offset,
                        "startdate": str(first),
                        "enddate": str(last),
                    },
                    body=redact_bytes(resp.content),
                )
                yield payload
                # judged only after the yield, so an error answer reaches the raw archive first
                check_cdo_response(payload.status, payload.content_type, payload.body, url=payload.url)
                count = 0 if payload.status == 204 else cdo_result_count(payload.body, url=payload.url)
                offset += self.page_size
                page += 1
                if offset > count:
                    break

    def _fetch_observations(self, window: Window) -> Iterator[RawPayload]:
        http = self.http
        for station in self.stations:
            path: str = f"stations/{quote(station, safe='')}/observations"
            params: list[tuple[str, str]] | None = [
                ("start", _iso_z(window.start)),
                ("end", _iso_z(window.end)),
                ("limit", str(self.page_size)),
            ]
            seen: set[str] = set()
            page = 0
            while True:
                resp = http.get(path, params)
                payload = response_payload(
                    self,
                    resp,
                    window=window,
                    page=page,
                    meta={"station": station},
                    body=redact_bytes(resp.content),
                )
                yield payload
                # judged after the yield, as above
                check_weather_response(payload.status, payload.content_type, payload.body, url=payload.url)
                n_features, next_url = observations_cursor(payload.body, url=payload.url)
                if n_features == 0 or not next_url or next_url in seen:
                    break
                seen.add(next_url)
                path, params = _rebase(next_url), None
                page += 1

    # ---- parse --------------------------------------------------------------------------------

    def parse(self, payload: RawPayload) -> pa.Table:
        """Pure: one page → canonical rows (:func:`parse_ghcnd_daily` / :func:`parse_observations`)."""
        if payload.dataset == GHCND:
            check_cdo_response(payload.status, payload.content_type, payload.body, url=payload.url)
            return parse_ghcnd_daily(
                payload.body, units=_payload_units(payload), status=payload.status, url=payload.url
            )
        check_weather_response(payload.status, payload.content_type, payload.body, url=payload.url)
        return parse_observations(payload.body, window=payload.window, url=payload.url)


def _payload_units(payload: RawPayload) -> str:
    units = payload.meta.get("units")
    if units:
        return str(units)
    return str(payload.params.get("units") or "raw")


def _cdo_quota_error(exc: RateLimited) -> RateLimited:
    """CDO's 429 means either 5/s (retry soon) or the 10,000/day quota (retry after midnight)."""
    if re.search(r"(?i)per day|daily", exc.message):
        now = datetime.now(UTC)
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        return RateLimited(
            "NOAA CDO: the token's 10,000 requests/day quota is exhausted; the pipeline resumes when it "
            f"resets (≈ next UTC midnight). {exc.message}",
            retry_after=math.ceil((midnight - now).total_seconds()),
            source="noaa",
            dataset=GHCND,
        )
    return exc
