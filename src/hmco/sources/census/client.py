"""US Census Data API, the I/O half: the :class:`Census` source turns windows into requests (vintages,
``time`` predicates, ≤ 50-variable chunks) and yields every answer before judging it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pyarrow as pa

from hmco.config import Settings
from hmco.errors import ConfigError, NoData
from hmco.redaction import redact_bytes
from hmco.sources.base import RawPayload, Source, as_list
from hmco.sources.census.parser import (
    ACS,
    EITS_VARIABLES,
    TIMESERIES,
    check_census_response,
    parse_acs,
    parse_timeseries,
    vintage_from_url,
)
from hmco.sources.http import HttpClient, HttpOptions, response_payload
from hmco.windows import Window

__all__ = ["BASE_URL", "MAX_VARIABLES", "MIN_INTERVAL", "Census", "time_predicate", "variable_chunks"]

BASE_URL: Final = "https://api.census.gov/data/"
#: "You can include up to 50 variables in a single API query" (Census API user guide).
MAX_VARIABLES: Final = 50
#: 500 queries/IP/day without a key; keyed limits are undocumented. One request a second is polite.
MIN_INTERVAL: Final = 1.0


# --------------------------------------------------------------------------------------------------
# windows → requests
# --------------------------------------------------------------------------------------------------


def _years_in(window: Window) -> list[int]:
    """Years whose 1 January (UTC) lies in ``window``."""
    years = range(window.start.year, window.end.year + 1)
    return [y for y in years if window.contains(datetime(y, 1, 1, tzinfo=UTC))]


def _months_in(window: Window) -> list[tuple[int, int]]:
    """(year, month) of every month whose first instant lies in ``window``."""
    out: list[tuple[int, int]] = []
    y, m = window.start.year, window.start.month
    while True:
        start = datetime(y, m, 1, tzinfo=UTC)
        if start >= window.end:
            return out
        if start >= window.start:
            out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def time_predicate(window: Window, frequency: str) -> str | None:
    """``from A to B`` covering the periods that start in ``window`` (``None`` if none does)."""
    months = _months_in(window)
    if frequency == "monthly":
        labels = [f"{y:04d}-{m:02d}" for y, m in months]
    elif frequency == "quarterly":
        labels = [f"{y:04d}-Q{(m - 1) // 3 + 1}" for y, m in months if m in (1, 4, 7, 10)]
    elif frequency == "annual":
        labels = [f"{y:04d}" for y, m in months if m == 1]
    else:
        raise ConfigError(f"census: frequency must be monthly, quarterly or annual, not {frequency!r}")
    if not labels:
        return None
    return f"from {labels[0]} to {labels[-1]}"


def variable_chunks(
    variables: Sequence[str], *, with_name: bool, size: int = MAX_VARIABLES
) -> list[list[str]]:
    """Split ``get`` variables so each query names at most ``size`` (``NAME`` counts and rides along)."""
    per_chunk = size - 1 if with_name else size
    chunks = [list(variables[i : i + per_chunk]) for i in range(0, len(variables), per_chunk)] or [[]]
    return [["NAME", *c] if with_name else c for c in chunks]


class Census(Source):
    """US Census Data API: EITS-style timeseries (default) or ACS estimates, in long form.

    Args:
        dataset: ``census_timeseries`` (default) or ``census_acs``.
        variables: ACS variables (``B01001_001E`` …; more than 50 are split across requests) or the
            timeseries ``get`` list (default: the EITS columns).
        geography: the ``for`` predicate (``state:*``, ``county:*``; timeseries default ``us:*``).
        within: the ``in`` predicate(s) (``state:06``); a list is joined with spaces.
        survey: ACS dataset path (``acs/acs5`` default, ``acs/acs1`` …).
        vintages: restrict ACS fetches to these vintages (a window fetches vintages whose 1 January
            lies in it; ``ts`` is that instant).
        program: timeseries program path (``eits/marts`` default).
        frequency: timeseries period (``monthly``, ``quarterly``, ``annual``) for the ``time`` predicate.
        predicates: extra filters, e.g. ``{category_code: 44X72, seasonally_adj: "yes"}``.
        require_data: raise :class:`NoData` instead of returning an empty table on HTTP 204.
        base_url: API root (mirror, proxy, test server); default ``https://api.census.gov/data/``.
        http: timeout, retries and pacing (:class:`~hmco.sources.http.HttpOptions` or a mapping);
            by default one request a second and a 120 s timeout.
    """

    name = "census"
    datasets = (TIMESERIES, ACS)
    window_step: timedelta = timedelta(days=31)
    publication_lag: timedelta = timedelta(days=15)

    def __init__(
        self,
        dataset: str | None = None,
        *,
        settings: Settings | None = None,
        base_url: str | None = None,
        http: HttpOptions | Mapping[str, Any] | None = None,
        variables: list[str] | str | None = None,
        geography: str | None = None,
        within: list[str] | str | None = None,
        survey: str = "acs/acs5",
        vintages: list[int] | int | None = None,
        program: str = "eits/marts",
        frequency: str = "monthly",
        predicates: Mapping[str, str] | None = None,
        require_data: bool = False,
    ) -> None:
        super().__init__(dataset, settings=settings)
        self.acs = self.dataset.name == ACS
        if self.acs:
            # ACS 5-year vintage Y is released in December of Y+1
            self.window_step = timedelta(days=366)
            self.publication_lag = timedelta(days=345)
        default_vars: list[str] = [] if self.acs else list(EITS_VARIABLES)
        self.variables = [v for v in (as_list(variables) or default_vars) if v != "NAME"]
        if self.acs and not self.variables:
            raise ConfigError("census_acs needs `variables` (e.g. [B01001_001E, B19013_001E])")
        self.geography = geography or ("state:*" if self.acs else "us:*")
        self.geo_level = self.geography.split(":", 1)[0]
        self.within = " ".join(as_list(within) if not isinstance(within, str) else [within]) or None
        self.survey = survey.strip("/")
        self.vintages = (
            None
            if vintages is None
            else {int(v) for v in ([vintages] if isinstance(vintages, int) else vintages)}
        )
        self.program = program.strip("/")
        if frequency not in ("monthly", "quarterly", "annual"):
            raise ConfigError(f"census: frequency must be monthly, quarterly or annual, not {frequency!r}")
        self.frequency = frequency
        self.predicates = {str(k): str(v) for k, v in (predicates or {}).items()}
        self.require_data = require_data
        self.base_url = base_url or BASE_URL
        self.http_options = HttpOptions.coerce(http).with_defaults(timeout=120.0, min_interval=MIN_INTERVAL)
        self._http: HttpClient | None = None
        #: the optional key as of each request (a rotated key file is picked up without a rebuild)
        self._key = self.settings.secret("sources.census_key")

    @property
    def http(self) -> HttpClient:
        """The paced client, built on first use (the optional key is sent per request)."""
        if self._http is None:
            self._http = self.http_options.client(self.base_url, user_agent=self.settings.sources.user_agent)
        return self._http

    def scope(self) -> dict[str, list[str]]:
        """Re-running a window replaces only this program's rows (narrowed by predicates on its columns).

        ACS rows are keyed by variable, so an ACS source owns its variables' rows.
        """
        if self.acs:
            return {"variable": list(self.variables)} if "variable" in self.dataset.schema.names else {}
        columns = set(self.dataset.schema.names)
        scope = {"program": [self.program]}
        scope.update({k: [v] for k, v in self.predicates.items() if k in columns})
        return scope

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # ---- fetch --------------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        """ACS: one request per vintage in ``window`` and ≤ 50-variable chunk; timeseries: one per window.

        Each answer is yielded before it is judged: an error page reaches the raw archive, then raises.
        """
        if self.acs:
            for vintage in _years_in(window):
                if self.vintages is not None and vintage not in self.vintages:
                    continue
                sub = Window(datetime(vintage, 1, 1, tzinfo=UTC), datetime(vintage + 1, 1, 1, tzinfo=UTC))
                for part, get in enumerate(variable_chunks(self.variables, with_name=True)):
                    params = self._params(get)
                    meta = {
                        "vintage": vintage,
                        "survey": self.survey,
                        "get": get,
                        "geo_level": self.geo_level,
                        "predicates": list(self.predicates),
                    }
                    yield from self._request(f"{vintage}/{self.survey}", params, sub, part, meta)
        else:
            predicate = time_predicate(window, self.frequency)
            if predicate is None:
                return
            for part, get in enumerate(variable_chunks(self.variables, with_name=False)):
                params = [*self._params(get), ("time", predicate)]
                meta = {"program": self.program, "get": get, "geo_level": self.geo_level}
                yield from self._request(f"timeseries/{self.program}", params, window, part, meta)

    def _params(self, get: list[str]) -> list[tuple[str, str]]:
        params = [("get", ",".join(get)), ("for", self.geography)]
        if self.within:
            params.append(("in", self.within))
        params += list(self.predicates.items())
        return params

    def _request(
        self, path: str, params: list[tuple[str, str]], window: Window, page: int, meta: dict[str, Any]
    ) -> Iterator[RawPayload]:
        http = self.http
        if self._key.get():
            resp = http.get_with_secret(path, params, secret=self._key, param="key")
        else:
            resp = http.get(path, params)
        location = resp.headers.get("location")
        payload = response_payload(
            self,
            resp,
            window=window,
            page=page,
            meta={**meta, "location": location} if location else meta,
            body=redact_bytes(resp.content),
        )
        yield payload
        check_census_response(
            payload.status,
            payload.content_type,
            payload.body,
            url=payload.url,
            dataset=self.dataset.name,
            location=location,
        )
        if payload.status == 204 and self.require_data:
            raise NoData(
                "Census API matched no rows (HTTP 204) for this request; check geography and predicates",
                source="census",
                dataset=self.dataset.name,
                url=payload.url,
            )

    # ---- parse --------------------------------------------------------------------------------

    def parse(self, payload: RawPayload) -> pa.Table:
        """Pure: one payload → long-form rows (:func:`parse_acs` / :func:`parse_timeseries`)."""
        meta = payload.meta
        check_census_response(
            payload.status,
            payload.content_type,
            payload.body,
            url=payload.url,
            dataset=payload.dataset,
            location=meta.get("location"),
        )
        if payload.dataset == ACS:
            vintage = meta.get("vintage") or vintage_from_url(payload.url)
            return parse_acs(
                payload.body,
                vintage=int(vintage),
                survey=str(meta.get("survey", "acs/acs5")),
                requested=meta.get("get"),
                geo_level=meta.get("geo_level"),
                predicates=meta.get("predicates", ()),
                status=payload.status,
                url=payload.url,
            )
        return parse_timeseries(
            payload.body,
            program=str(meta.get("program", self.program)),
            geo_level=meta.get("geo_level"),
            status=payload.status,
            url=payload.url,
        )

    def latest_window(self, now: datetime | None = None) -> Window:
        """The latest published period: last month (timeseries) or the latest ACS vintage's year."""
        ref = (now or datetime.now(UTC)).astimezone(UTC) - self.publication_lag
        if self.acs:
            return Window(datetime(ref.year - 1, 1, 1, tzinfo=UTC), datetime(ref.year, 1, 1, tzinfo=UTC))
        end = datetime(ref.year, ref.month, 1, tzinfo=UTC)
        start = (
            datetime(end.year - 1, 12, 1, tzinfo=UTC) if end.month == 1 else end.replace(month=end.month - 1)
        )
        return Window(start, end)
