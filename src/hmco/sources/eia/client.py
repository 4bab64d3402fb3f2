"""EIA API v2, the I/O half: the :class:`EIA` source plans requests, pages and paces them.

``fetch`` sends the key as the ``api_key`` query parameter (EIA ignores headers), paces requests 0.2 s
apart (EIA suspends keys bursting over 5 req/s), always sorts explicitly so pages are stable, walks
``offset`` until ``response.total`` rows have arrived, and redacts the echoed key from every body
before it becomes a :class:`RawPayload`. Every page is yielded before it is judged, so an HTML or
truncated page reaches the raw archive before its error is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pyarrow as pa

from hmco.config import Settings
from hmco.errors import AuthenticationError, ConfigError, NoData, PayloadError
from hmco.redaction import redact_bytes
from hmco.sources.base import RawPayload, Source, as_list
from hmco.sources.eia.parser import (
    DEFAULT_SPOT_SERIES,
    REGISTER_URL,
    ROUTES,
    SPOT_ROUTES,
    EIAPage,
    error_from_response,
    parse_eia,
    read_page,
    spot_route_for,
)
from hmco.sources.http import HttpOptions, response_payload
from hmco.windows import Window

__all__ = ["DEFAULT_BASE_URL", "EIA", "MAX_PAGE_LENGTH", "MIN_INTERVAL"]

log = logging.getLogger("hmco.sources.eia")

DEFAULT_BASE_URL = "https://api.eia.gov/v2/"
#: EIA asks for bursts under 5 requests/s; over that the key is suspended for seconds to minutes.
MIN_INTERVAL = 0.2
#: JSON results are capped at 5,000 rows per request.
MAX_PAGE_LENGTH = 5000
_PERIOD_PARAM_FORMATS = {
    "hourly": "%Y-%m-%dT%H",
    "daily": "%Y-%m-%d",
    "weekly": "%Y-%m-%d",
    "monthly": "%Y-%m",
    "annual": "%Y",
}


class EIA(Source):
    """EIA API v2 datasets: ``eia_daily_fuel`` (default), ``eia_hourly_fuel``, ``eia_hourly_region``
    and ``eia_spot_prices``.

    Args:
        dataset: which canonical dataset to produce.
        respondents, fueltypes, types, timezones, series: EIA facet values (lists or one string);
            only the facets of the chosen dataset are accepted. Unknown values match nothing.
        route: spot prices only: force ``natural-gas/pri/fut`` or ``petroleum/pri/spt`` (default: by series).
        frequency: spot prices only: ``daily`` (default), ``weekly``, ``monthly`` or ``annual``.
        page_length: rows per request (at most 5,000, EIA's JSON cap).
        require_data: raise :class:`NoData` when a window matches no rows (default: empty table + warning).
        base_url: API root (mirror, proxy, test server); default ``https://api.eia.gov/v2/``.
        http: timeout, retries and pacing (:class:`~hmco.sources.http.HttpOptions` or a mapping);
            by default requests go 0.2 s apart, process-wide (EIA suspends keys over 5 req/s).
    """

    name: ClassVar[str] = "eia"
    datasets: ClassVar[tuple[str, ...]] = tuple(ROUTES)
    window_step: timedelta = timedelta(days=1)
    #: EIA-930 days close at local midnight (up to UTC-10) and are posted hours later.
    publication_lag: timedelta = timedelta(hours=12)

    def __init__(
        self,
        dataset: str | None = None,
        *,
        settings: Settings | None = None,
        base_url: str | None = None,
        http: HttpOptions | Mapping[str, Any] | None = None,
        respondents: Sequence[str] | str | None = None,
        fueltypes: Sequence[str] | str | None = None,
        types: Sequence[str] | str | None = None,
        timezones: Sequence[str] | str | None = None,
        series: Sequence[str] | str | None = None,
        route: str | None = None,
        frequency: str | None = None,
        page_length: int = MAX_PAGE_LENGTH,
        require_data: bool = False,
    ) -> None:
        super().__init__(dataset, settings=settings)
        self.spec = ROUTES[self.dataset.name]
        given = {
            "respondents": respondents,
            "fueltypes": fueltypes,
            "types": types,
            "timezones": timezones,
            "series": series,
        }
        unknown = sorted(k for k, v in given.items() if v is not None and k not in self.spec.facets)
        if unknown:
            raise ConfigError(
                f"eia: {self.dataset.name} has no facet(s) {unknown}; it takes {sorted(self.spec.facets)}"
            )
        self.facets: dict[str, list[str]] = {
            self.spec.facets[k]: as_list(v) for k, v in given.items() if v is not None
        }
        is_spot = self.dataset.name == "eia_spot_prices"
        if (route is not None or frequency is not None) and not is_spot:
            raise ConfigError("eia: 'route' and 'frequency' apply to eia_spot_prices only")
        if route is not None and route.strip("/") not in SPOT_ROUTES:
            raise ConfigError(f"eia: spot route must be one of {SPOT_ROUTES}, not {route!r}")
        self.route = route.strip("/") if route else None
        self.frequency = frequency or self.spec.frequency
        if self.frequency not in _PERIOD_PARAM_FORMATS:
            raise ConfigError(
                f"eia: unknown frequency {self.frequency!r}; use one of {sorted(_PERIOD_PARAM_FORMATS)}"
            )
        if not 1 <= int(page_length) <= MAX_PAGE_LENGTH:
            raise ConfigError(f"eia: page_length must be 1..{MAX_PAGE_LENGTH}, not {page_length}")
        self.page_length = int(page_length)
        self.require_data = bool(require_data)
        #: the key as of each request: a rotated key file is picked up without rebuilding the source
        self._api_key = self.settings.secret("sources.eia_api_key")
        self.http_options = HttpOptions.coerce(http).with_defaults(timeout=60.0, min_interval=MIN_INTERVAL)
        self._http = self.http_options.client(
            base_url or DEFAULT_BASE_URL, user_agent=self.settings.sources.user_agent
        )

    # --- planning ---------------------------------------------------------------------------------

    def requests_for(self, window: Window) -> list[tuple[str, list[tuple[str, str]]]]:
        """(route, query params without key/offset) of every request sequence covering ``window``."""
        plans: list[tuple[str, dict[str, list[str]]]] = []
        if self.dataset.name == "eia_spot_prices":
            wanted = self.facets.get("series") or list(DEFAULT_SPOT_SERIES)
            by_route: dict[str, list[str]] = {}
            for s in wanted:
                by_route.setdefault(self.route or spot_route_for(s), []).append(s)
            plans = [(r, {**self.facets, "series": s}) for r, s in by_route.items()]
        else:
            plans = [(self.spec.routes[0], self.facets)]
        start, end = self._period_bounds(window)
        out = []
        for route, facets in plans:
            params: list[tuple[str, str]] = [("frequency", self.frequency), ("data[0]", "value")]
            for facet, values in facets.items():
                params += [(f"facets[{facet}][]", v) for v in values]
            params += [("start", start), ("end", end)]
            for i, col in enumerate(self.spec.sort):
                params += [(f"sort[{i}][column]", col), (f"sort[{i}][direction]", "asc")]
            out.append((route, params))
        return out

    def _period_bounds(self, window: Window) -> tuple[str, str]:
        """Inclusive ``start``/``end`` period strings (EIA compares them lexically with ``period``)."""
        fmt = _PERIOD_PARAM_FORMATS[self.frequency]
        if self.spec.hour_ending:
            hour = timedelta(hours=1)
            first = (
                _ceil_hour(window.start) + hour
            )  # period (hour end) of the first interval starting >= start
            last = _ceil_hour(window.end)  # period of the last interval starting < end
            return first.strftime(fmt), last.strftime(fmt)
        last_instant = window.end - timedelta(microseconds=1)
        return window.start.strftime(fmt), last_instant.strftime(fmt)

    # --- fetching ---------------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        """Yield every page of every request covering ``window`` (redacted), raising typed errors."""
        if not self._api_key.get():
            raise AuthenticationError(
                f"EIA needs an API key: set HMCO_SOURCES__EIA_API_KEY (free key: {REGISTER_URL})",
                source=self.name,
                dataset=self.dataset.name,
            )
        rows_seen = 0
        for route, base_params in self.requests_for(window):
            rows_seen += yield from self._walk(route, base_params, window)
        if rows_seen == 0 and self.require_data:
            raise NoData(
                f"EIA matched no {self.dataset.name} rows in {window} for facets {self.facets}: "
                "check the facet values against the route's /facet list",
                source=self.name,
                dataset=self.dataset.name,
            )

    def _walk(
        self, route: str, base_params: list[tuple[str, str]], window: Window
    ) -> Generator[RawPayload, None, int]:
        """Yield each page, *then* judge it: a bad page reaches the raw archive before its error is raised."""
        offset, page_no = 0, 0
        path = f"{route}/data/"
        while True:
            params = [*base_params, ("offset", str(offset)), ("length", str(self.page_length))]
            resp = self._http.get_with_secret(path, params, secret=self._api_key, param="api_key")
            payload = response_payload(
                self,
                resp,
                window=window,
                page=page_no,
                meta={"route": route, "offset": offset, "length": self.page_length},
                body=redact_bytes(resp.content),
            )
            ctx = {
                "source": self.name,
                "dataset": self.dataset.name,
                "url": payload.url,
                "sha256": payload.sha256,
            }
            page, problem = self._judge(payload.status, payload.body, ctx)
            if page is not None:
                envelope = {
                    "rows": len(page.rows),
                    "total": page.total,
                    "api_version": page.api_version,
                    "warnings": [dict(w) for w in page.warnings],
                }
                payload = replace(payload, meta={**payload.meta, **envelope})
            yield payload
            if problem is not None:
                raise problem
            assert page is not None
            n = len(page.rows)
            total = page.total
            if total is None:
                if page.incomplete:
                    raise PayloadError(
                        "EIA flagged an incomplete return but sent no response.total to page by", **ctx
                    )
                total = offset + n
            if page.incomplete:
                log.debug(
                    "eia: %s page at offset %d is one of %d rows; walking offsets", route, offset, total
                )
            if n == 0 and offset == 0:
                log.warning(
                    "eia: %s returned no rows for %s (facets %s): unknown facet value or no data yet",
                    route,
                    window,
                    self.facets,
                )
                return 0
            offset += n
            if offset >= total:
                return offset
            if n == 0:
                raise PayloadError(
                    f"EIA stopped returning rows at offset {offset} of {total}; the result may have changed "
                    "while paging -- re-run the window",
                    **ctx,
                )
            if n < self.page_length:
                log.warning(
                    "eia: short page (%d of %d rows) at offset %d of %d", n, self.page_length, offset, total
                )
            page_no += 1

    def _judge(
        self, status: int, body: bytes, ctx: Mapping[str, Any]
    ) -> tuple[EIAPage | None, Exception | None]:
        """The page's envelope (to page by), or the error it stands for -- returned, not raised, so
        ``_walk`` yields the payload before raising."""
        try:
            if status != 200:
                raise error_from_response(status, body, ctx)
            return read_page(body, self.spec.string_fields, where=ctx), None
        except Exception as exc:  # judged after the yield; a parser bug must not lose the bytes either
            return None, exc

    def parse(self, payload: RawPayload) -> pa.Table:
        """Pure: the canonical table of one page, or the typed error of an error answer."""
        if payload.status != 200:
            ctx = {
                "source": self.name,
                "dataset": payload.dataset,
                "url": payload.url,
                "sha256": payload.sha256,
            }
            raise error_from_response(payload.status, payload.body, ctx)
        return parse_eia(payload.body, payload.dataset)

    def scope(self) -> dict[str, list[str]]:
        """The facet slice this instance fetches, in canonical column names (for window replacement)."""
        canonical = {"respondent": "region", "fueltype": "series", "type": "series", "timezone": "timezone"}
        scope = {canonical.get(k, k): list(v) for k, v in self.facets.items()}
        if self.dataset.name == "eia_spot_prices" and "series" not in scope:
            scope["series"] = list(DEFAULT_SPOT_SERIES)
        return scope

    def close(self) -> None:
        self._http.close()


def _ceil_hour(value: datetime) -> datetime:
    floored = value.replace(minute=0, second=0, microsecond=0)
    return floored if floored == value else floored + timedelta(hours=1)
