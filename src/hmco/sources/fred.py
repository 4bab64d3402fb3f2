"""FRED / ALFRED series observations (St. Louis Fed).

``GET /fred/series/observations`` returns one series per request, up to 100,000 observations, paged by
``offset``/``limit`` with the full count in ``count``. The default ``file_type`` is XML, so ``json`` is
always sent. The key travels as the ``api_key`` query parameter (masked in everything recorded).
FRED allows 120 requests a minute per key; over that it answers HTTP 429, which the HTTP client
retries (honouring ``Retry-After``). A bad series id or key is an HTTP 400 JSON document.

Times: ``date`` is the start of the observation period, a calendar date without zone, so ``ts`` is UTC
midnight of it. ``realtime_start``/``realtime_end`` (the vintage) are kept as dates; a missing value
is the string ``"."``.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from hmco.config import Settings
from hmco.errors import (
    AuthenticationError,
    ConfigError,
    HmcoError,
    NoData,
    PayloadError,
    RequestRejected,
    SchemaDriftError,
    SourceError,
)
from hmco.redaction import redact_bytes, redact_text
from hmco.schemas import TS, conform, get_dataset
from hmco.sources.base import (
    RawPayload,
    Source,
    body_sha256,
    body_snippet,
    is_json_object,
)
from hmco.sources.http import HttpOptions, response_payload
from hmco.windows import Window

__all__ = ["DEFAULT_BASE_URL", "FRED", "MAX_LIMIT", "MIN_INTERVAL", "FredPage", "parse_fred", "read_page"]

log = logging.getLogger("hmco.sources.fred")

DEFAULT_BASE_URL = "https://api.stlouisfed.org/fred/"
#: 120 requests per minute per key.
MIN_INTERVAL = 0.5
#: observations per request (FRED's maximum and default).
MAX_LIMIT = 100_000
_OBSERVATION = pa.struct(
    [
        ("realtime_start", pa.string()),
        ("realtime_end", pa.string()),
        ("date", pa.string()),
        ("value", pa.string()),
    ]
)
_SCHEMA = pa.schema([("observations", pa.list_(_OBSERVATION))])
_KEY_URL = "https://fred.stlouisfed.org/docs/api/api_key.html"


@dataclass(frozen=True)
class FredPage:
    """One observations response: the rows as Arrow plus ``count``/``offset`` for paging."""

    rows: pa.StructArray
    count: int | None
    offset: int | None


def read_page(body: bytes, *, where: Mapping[str, Any] | None = None) -> FredPage:
    """Read a ``series/observations`` JSON response (in C++, no per-row Python).

    Raises:
        AuthenticationError, RequestRejected: the body is a FRED error document.
        PayloadError: not JSON (HTML page, XML, truncated) or no ``observations``.
    """
    ctx = dict(where or {})
    if not body.strip():
        raise PayloadError("FRED sent an empty body where JSON was expected; retry later", **ctx)
    if not is_json_object(body):
        # pyarrow.json crashes the process on a bare ``null`` (pyarrow 26): never hand it a non-object.
        _loads(body, ctx)
        raise PayloadError(f"FRED response is not a JSON object: {_snippet(body)}", **ctx)
    try:
        options = pj.ReadOptions(block_size=max(len(body) + 1, 1 << 16), use_threads=False)
        parse = pj.ParseOptions(explicit_schema=_SCHEMA, newlines_in_values=True)
        table = pj.read_json(io.BytesIO(body), read_options=options, parse_options=parse)
    except pa.ArrowInvalid:
        doc = _loads(body, ctx)
        if isinstance(doc, dict) and "error_message" in doc:
            raise _error_from_document(doc, None, ctx) from None
        raise PayloadError(f"FRED observations have an unexpected shape: {_snippet(body)}", **ctx) from None
    if "error_message" in table.column_names or "error_code" in table.column_names:
        raise _error_from_document(_loads(body, ctx), None, ctx)
    column = table.column("observations")
    if column.null_count:
        raise PayloadError(f"FRED response has no 'observations': {_snippet(body)}", **ctx)
    rows = column.combine_chunks().flatten()
    assert isinstance(rows, pa.StructArray)
    return FredPage(rows, _scalar_int(table, "count"), _scalar_int(table, "offset"))


def parse_fred(body: bytes, series_id: str) -> pa.Table:
    """Turn one observations response of ``series_id`` into the canonical ``fred_observations`` table.

    ``"."`` (FRED's missing value) becomes null. Pure and vectorized.
    """
    try:
        return _parse_rows(body, series_id)
    except HmcoError as exc:
        exc.context.setdefault("sha256", body_sha256(body))  # hashed only on failure
        raise


def _parse_rows(body: bytes, series_id: str) -> pa.Table:
    ds = get_dataset("fred_observations")
    ctx = {"source": "fred", "dataset": ds.name, "series_id": series_id}
    rows = read_page(body, where=ctx).rows
    n = len(rows)
    if n == 0:
        return ds.schema.empty_table()
    for name in ("date", "realtime_start"):
        if rows.field(name).null_count:
            raise SchemaDriftError(f"FRED observations have null or missing {name!r}", **ctx)
    try:
        ts = pc.strptime(rows.field("date"), format="%Y-%m-%d", unit="us").cast(TS)
        realtime_start = rows.field("realtime_start").cast(pa.date32())
        realtime_end = rows.field("realtime_end").cast(pa.date32())
    except pa.ArrowInvalid as exc:
        raise SchemaDriftError(f"FRED dates do not parse as YYYY-MM-DD: {exc}", **ctx) from None
    raw = rows.field("value")
    missing = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(raw), "."), True)
    try:
        value = pc.if_else(missing, None, raw).cast(pa.float64())
    except pa.ArrowInvalid:
        bad = pc.unique(pc.filter(raw, pc.invert(pc.fill_null(pc.utf8_is_numeric(raw), True)))).to_pylist()[
            :5
        ]
        raise SchemaDriftError(f"FRED values are not numbers: {bad}", **ctx) from None
    table = pa.table(
        {
            "ts": ts,
            "series_id": pa.repeat(pa.scalar(series_id, pa.string()), n),
            "value": value,
            "realtime_start": realtime_start,
            "realtime_end": realtime_end,
        }
    )
    return conform(table, ds)


def _scalar_int(table: pa.Table, name: str) -> int | None:
    if name not in table.column_names:
        return None
    try:
        value = table.column(name)[0].as_py()
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _loads(body: bytes, ctx: Mapping[str, Any]) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise PayloadError(
            f"FRED sent a body that is not JSON (HTML/XML page or truncated transfer): {_snippet(body)}",
            **ctx,
        ) from None


def _snippet(body: bytes) -> str:
    return body_snippet(body, 160)


def _error_from_document(doc: Any, status: int | None, ctx: Mapping[str, Any]) -> SourceError:
    """FRED errors are ``{"error_code": n, "error_message": "Bad Request.  ..."}``."""
    message = redact_text(str(doc.get("error_message", ""))) if isinstance(doc, dict) else ""
    code = doc.get("error_code", status) if isinstance(doc, dict) else status
    if "api_key" in message or code in (401, 403) or status in (401, 403):
        return AuthenticationError(
            f"FRED refused the API key ({code}): {message} -- set HMCO_SOURCES__FRED_API_KEY to a registered "
            f"32-character key ({_KEY_URL})",
            **ctx,
        )
    return RequestRejected(f"FRED rejected the request ({code}): {message}", **ctx)


def _error_from_response(status: int, body: bytes, ctx: Mapping[str, Any]) -> SourceError:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        doc = None
    if isinstance(doc, dict) and "error_message" in doc:
        return _error_from_document(doc, status, ctx)
    if status in (401, 403):
        return AuthenticationError(f"FRED refused the request (HTTP {status}): {_snippet(body)}", **ctx)
    return RequestRejected(f"FRED answered HTTP {status}: {_snippet(body)}", **ctx)


def _judge(status: int, body: bytes, ctx: Mapping[str, Any]) -> tuple[FredPage | None, Exception | None]:
    """A page's rows and count (to page by), or the error it stands for -- returned, not raised, so the
    client yields the payload (and the pipeline archives it) before raising."""
    try:
        if status != 200:
            raise _error_from_response(status, body, ctx)
        return read_page(body, where=ctx), None
    except Exception as exc:  # judged after the yield; a reader bug must not lose the bytes either
        return None, exc


class FRED(Source):
    """FRED series observations (``fred_observations``), one request sequence per series.

    Args:
        series_ids: FRED series ids (e.g. ``["DCOILWTICO", "DHHNGSP"]``); one string is accepted too.
        realtime_start, realtime_end: vintage window (``YYYY-MM-DD``); FRED's default is today.
        vintage_dates: ALFRED vintage dates (list or comma-separated string).
        units, frequency, aggregation_method: FRED transformations, passed through.
        limit: observations per request (1..100,000); larger series are paged by ``offset``.
        require_data: raise :class:`NoData` when no series has observations in the window.
        base_url: API root (mirror, proxy, test server); default ``https://api.stlouisfed.org/fred/``.
        http: timeout, retries and pacing (:class:`~hmco.sources.http.HttpOptions` or a mapping);
            by default requests go 0.5 s apart, process-wide (FRED allows 120 a minute per key).
    """

    name: ClassVar[str] = "fred"
    datasets: ClassVar[tuple[str, ...]] = ("fred_observations",)
    window_step: timedelta = timedelta(days=1)
    #: daily series (oil, gas, rates) appear a business day or so after the observation date.
    publication_lag: timedelta = timedelta(days=1)

    def __init__(
        self,
        dataset: str | None = None,
        *,
        settings: Settings | None = None,
        base_url: str | None = None,
        http: HttpOptions | Mapping[str, Any] | None = None,
        series_ids: Sequence[str] | str = (),
        realtime_start: str | None = None,
        realtime_end: str | None = None,
        vintage_dates: Sequence[str] | str | None = None,
        units: str | None = None,
        frequency: str | None = None,
        aggregation_method: str | None = None,
        limit: int = MAX_LIMIT,
        require_data: bool = False,
    ) -> None:
        super().__init__(dataset, settings=settings)
        ids = [series_ids] if isinstance(series_ids, str) else [str(s) for s in series_ids]
        if not ids:
            raise ConfigError("fred: give at least one series id (series_ids: [DCOILWTICO, ...])")
        bad = [s for s in ids if not (s.replace("_", "").isalnum() and len(s) <= 25)]
        if bad:
            raise ConfigError(f"fred: series ids must be at most 25 alphanumeric characters: {bad}")
        self.series_ids = ids
        if not 1 <= int(limit) <= MAX_LIMIT:
            raise ConfigError(f"fred: limit must be 1..{MAX_LIMIT}, not {limit}")
        self.limit = int(limit)
        vintages = (
            vintage_dates
            if vintage_dates is None or isinstance(vintage_dates, str)
            else ",".join(vintage_dates)
        )
        self.options: dict[str, str] = {
            k: str(v)
            for k, v in {
                "realtime_start": realtime_start,
                "realtime_end": realtime_end,
                "vintage_dates": vintages,
                "units": units,
                "frequency": frequency,
                "aggregation_method": aggregation_method,
            }.items()
            if v is not None
        }
        self.require_data = bool(require_data)
        #: the key as of each request: a rotated key file is picked up without rebuilding the source
        self._api_key = self.settings.secret("sources.fred_api_key")
        self.http_options = HttpOptions.coerce(http).with_defaults(timeout=60.0, min_interval=MIN_INTERVAL)
        self._http = self.http_options.client(
            base_url or DEFAULT_BASE_URL, user_agent=self.settings.sources.user_agent
        )

    def requests_for(self, window: Window) -> list[tuple[str, list[tuple[str, str]]]]:
        """(series id, query params without key/offset) of every request sequence covering ``window``."""
        last_day = (window.end - timedelta(microseconds=1)).date()
        out = []
        for sid in self.series_ids:
            params = [
                ("series_id", sid),
                ("file_type", "json"),
                ("observation_start", window.start.date().isoformat()),
                ("observation_end", last_day.isoformat()),
                ("sort_order", "asc"),
                *self.options.items(),
            ]
            out.append((sid, params))
        return out

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        """Yield every page of every series covering ``window``; typed errors for FRED's error bodies."""
        if not self._api_key.get():
            raise AuthenticationError(
                f"FRED needs an API key: set HMCO_SOURCES__FRED_API_KEY ({_KEY_URL})",
                source=self.name,
                dataset=self.dataset.name,
            )
        rows_seen = 0
        for sid, params in self.requests_for(window):
            rows_seen += yield from self._walk(sid, params, window)
        if rows_seen == 0 and self.require_data:
            raise NoData(
                f"FRED has no observations of {self.series_ids} in {window}",
                source=self.name,
                dataset=self.dataset.name,
            )

    def _walk(
        self, series_id: str, base_params: list[tuple[str, str]], window: Window
    ) -> Generator[RawPayload, None, int]:
        """Yield each page, *then* judge it: a bad page reaches the raw archive before its error is raised."""
        offset, page_no = 0, 0
        while True:
            params = [*base_params, ("limit", str(self.limit)), ("offset", str(offset))]
            resp = self._http.get_with_secret(
                "series/observations", list(params), secret=self._api_key, param="api_key"
            )
            payload = response_payload(
                self,
                resp,
                window=window,
                page=page_no,
                meta={"series_id": series_id, "offset": offset, "limit": self.limit},
                body=redact_bytes(resp.content),
            )
            ctx = {
                "source": self.name,
                "dataset": self.dataset.name,
                "series_id": series_id,
                "url": payload.url,
                "sha256": payload.sha256,
            }
            page, problem = _judge(payload.status, payload.body, ctx)
            if page is not None:
                n = len(page.rows)
                count = page.count if page.count is not None else offset + n
                payload = replace(payload, meta={**payload.meta, "rows": n, "count": count})
            yield payload
            if problem is not None:
                raise problem
            assert page is not None
            if n == 0:
                if offset == 0:
                    log.info("fred: %s has no observations in %s", series_id, window)
                return offset
            offset += n
            if offset >= count:
                return offset
            page_no += 1

    def parse(self, payload: RawPayload) -> pa.Table:
        """Pure: the canonical table of one page, or the typed error of an error answer."""
        series_id = payload.meta.get("series_id") or payload.params.get("series_id")
        if payload.status != 200:
            ctx = {
                "source": self.name,
                "dataset": payload.dataset,
                "series_id": series_id,
                "url": payload.url,
                "sha256": payload.sha256,
            }
            raise _error_from_response(payload.status, payload.body, ctx)
        if not series_id:
            raise PayloadError(
                "FRED payload does not say which series it holds (meta/params lack series_id)",
                source=self.name,
                sha256=payload.sha256,
            )
        return parse_fred(payload.body, str(series_id))

    def scope(self) -> dict[str, list[str]]:
        """Re-running a window replaces only this instance's series."""
        return {"series_id": list(self.series_ids)}

    def close(self) -> None:
        self._http.close()
