"""MISO real-time 5-minute ex-post LMPs from the public ``GetRealTimeFiveMinExPost`` feeds.

The public API has no history: ``Rolling`` holds today's market day, ``Previous`` yesterday's and
``Current`` the latest interval (reference §6). MISO market time is EST, UTC−5 all year (no DST).
Each feed is one JSON document ``{"headers": [...], "data": [[...], ...]}`` of strings; columns are
always mapped by ``headers`` (case-insensitive), never by position.

Whether ``INTERVAL`` marks the interval start or end is disputed (gridstatus 0.37 reads it as the
end); :data:`INTERVAL_MARKS` holds the choice in one place, and every payload records it in
``meta["interval_marks"]`` while the raw ``INTERVAL`` strings stay untouched in the archived bytes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, ClassVar, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from hmco.config import Settings
from hmco.errors import AuthenticationError, PayloadError, RequestRejected, SchemaDriftError, SourceError
from hmco.schemas import TS, conform, get_dataset
from hmco.sources.base import RawPayload, Source, as_list, body_snippet, in_window
from hmco.sources.http import HttpOptions, last_modified, response_payload
from hmco.windows import Window, floor_time

__all__ = [
    "EST",
    "INTERVAL",
    "INTERVAL_MARKS",
    "MISO",
    "MISO_PUBLIC_URL",
    "feed_status_error",
    "market_day",
    "parse_miso_five_min",
    "parse_payload",
]

log = logging.getLogger("hmco.sources.miso")

MISO_PUBLIC_URL: Final = "https://public-api.misoenergy.org/api"
FEED_PATH: Final = "MarketPricing/GetRealTimeFiveMinExPost/{feed}"
#: MISO market time: Eastern *Standard* Time all year (UTC−05:00, never daylight time).
EST: Final = timezone(timedelta(hours=-5), "EST")
INTERVAL: Final = timedelta(minutes=5)
#: What the feed's ``INTERVAL`` value marks. "start" follows the reference (§6.2); gridstatus 0.37
#: reads it as the interval *end*. Change only here; payloads record the value used.
INTERVAL_MARKS: Final[Literal["start", "end"]] = "start"
#: MISO asks callers not to poll a public feed more than once a minute.
DEFAULT_MIN_INTERVAL: Final = 60.0

Feed = Literal["Current", "Rolling", "Previous"]
_FEEDS: Final[dict[str, Feed]] = {"current": "Current", "rolling": "Rolling", "previous": "Previous"}
_REQUIRED: Final = ("interval", "cpnode", "lmp", "mlc", "mcc")
_TIME_FORMATS: Final = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%m/%d/%Y %H:%M:%S")
_LOOSE_JSON: Final = re.compile(rb"[\[\],]\s")


def market_day(instant: datetime) -> date:
    """The MISO market day (EST calendar date) an instant falls in."""
    return instant.astimezone(EST).date()


def _day_window(day: date) -> Window:
    start = datetime(day.year, day.month, day.day, tzinfo=EST)
    return Window(start, start + timedelta(days=1))


# --------------------------------------------------------------------------------------------- parse


def parse_miso_five_min(
    body: bytes,
    *,
    window: Window | None = None,
    nodes: Sequence[str] | None = None,
    where: str = "",
) -> pa.Table:
    """Parse a ``GetRealTimeFiveMinExPost`` JSON document into canonical ``rt_lmp`` rows.

    Rows are kept when ``ts`` falls in ``window`` (and the node is in ``nodes``, if given).

    Raises:
        PayloadError: the bytes are not the feed's JSON envelope (HTML page, API error object …).
        SchemaDriftError: ``headers`` lack one of INTERVAL, CPNODE, LMP, MLC, MCC.
    """
    _, raw = _read_feed(body, where)
    if raw.num_rows == 0:
        return conform(_empty(), "rt_lmp")
    stamp = _parse_interval(raw.column("interval"), where)
    ts = pc.subtract(stamp, pa.scalar(INTERVAL, pa.duration("us"))) if INTERVAL_MARKS == "end" else stamp
    node = raw.column("cpnode")
    lmp, mlc, mcc = (_to_float(raw.column(c), c, where) for c in ("lmp", "mlc", "mcc"))
    node_type = pc.if_else(pc.ends_with(node, ".HUB"), pa.scalar("Hub"), pa.scalar(None, pa.string()))
    table = pa.table(
        {
            "ts": ts,
            "interval_end": pc.add(ts, pa.scalar(INTERVAL, pa.duration("us"))),
            "iso": _const("MISO", raw.num_rows),
            "market": _const("RT5", raw.num_rows),
            "node": node,
            "node_type": node_type,
            "lmp": lmp,
            "energy": pc.subtract(pc.subtract(lmp, mlc), mcc),
            "congestion": mcc,
            "loss": mlc,
        }
    )
    mask = None if window is None else in_window(table["ts"], window)
    if nodes:
        in_nodes = pc.is_in(table["node"], value_set=pa.array(list(nodes), pa.string()))
        mask = in_nodes if mask is None else pc.and_(mask, in_nodes)
    if mask is not None:
        table = table.filter(mask)
    return conform(table, "rt_lmp")


def _const(value: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _empty() -> pa.Table:
    return get_dataset("rt_lmp").schema.empty_table()


def _read_feed(body: bytes, where: str) -> tuple[list[str], pa.Table]:
    """Split the envelope: returns the feed's headers and a table of the five columns, named by role."""
    stripped = body.lstrip()
    if not stripped:
        raise PayloadError(f"MISO returned an empty body instead of the feed's JSON; {where}")
    if stripped[:1] == b"<":
        raise PayloadError(
            f"MISO returned an HTML page, not the feed's JSON (maintenance or a moved endpoint, see "
            f"gridstatus PR #751); check the URL; {where}: {stripped[:120]!r}"
        )
    span, rest = _split_data(body)
    if span is not None:
        try:
            return _read_envelope(body, rest, span, where)
        except PayloadError:
            pass  # the byte scan can mis-delimit "data" (a nested array after it): decode it all
    return _read_envelope(body, body, None, where)


def _read_envelope(body: bytes, doc: bytes, span: bytes | None, where: str) -> tuple[list[str], pa.Table]:
    """Decode ``doc`` (the body, or the body with the compact ``data`` span cut out) and its rows."""
    try:
        envelope = json.loads(doc)
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        raise PayloadError(f"MISO feed body is not valid JSON ({exc}); {where}") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("headers"), list):
        raise PayloadError(
            f"MISO feed body is not the {{'headers', 'data'}} envelope (an API error object?); {where}: "
            f"{body[:200]!r}"
        )
    headers = [str(h) for h in envelope["headers"]]
    roles = _map_headers(headers, where)
    if span is None:
        data = envelope.get("data")
        if not isinstance(data, list):
            raise PayloadError(f"MISO feed 'data' is not a list; {where}")
        return headers, _from_rows(data, headers, roles, where)
    return headers, _from_compact(span, headers, roles, where)


def _split_data(body: bytes) -> tuple[bytes | None, bytes]:
    """Find the compact ``"data": [[...]]`` array; return (its bytes, the document without it).

    Returns ``(None, body)`` when the array is not in the compact, escape-free form the fast path
    handles (pretty-printed, escaped strings, ``null`` cells); the caller then uses ``json.loads``.
    """
    key = body.find(b'"data"')
    if key < 0:
        return None, body
    open_ = body.find(b"[", key)
    close = body.rfind(b"]]")
    between = body[key + 6 : open_].strip()
    if open_ < 0 or between != b":" or close < open_ or body[open_ : open_ + 2] != b"[[":
        return None, body
    span = body[open_ : close + 2]
    if b"\\" in span or b"null" in span or _LOOSE_JSON.search(span) is not None:
        return None, body
    return span, body[:open_] + b"[]" + body[close + 2 :]


def _map_headers(headers: list[str], where: str) -> dict[str, int]:
    folded = {h.strip().casefold(): i for i, h in enumerate(headers)}
    missing = [r for r in _REQUIRED if r not in folded]
    if missing:
        raise SchemaDriftError(
            f"MISO feed headers {headers} lack {[m.upper() for m in missing]}; the feed layout changed, "
            f"update hmco.sources.miso; {where}"
        )
    return {r: folded[r] for r in _REQUIRED}


def _from_compact(span: bytes, headers: list[str], roles: dict[str, int], where: str) -> pa.Table:
    """Fast path: the compact array becomes CSV lines read by Arrow's multithreaded CSV reader."""
    if span == b"[]":
        return _from_rows([], headers, roles, where)
    lines = span[2:-2].replace(b"],[", b"\n")
    names = [f"c{i}" for i in range(len(headers))]
    try:
        raw = pcsv.read_csv(
            pa.BufferReader(lines),
            read_options=pcsv.ReadOptions(column_names=names, block_size=1 << 22),
            parse_options=pcsv.ParseOptions(quote_char='"', double_quote=False),
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                include_columns=[f"c{roles[r]}" for r in _REQUIRED],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise PayloadError(
            f"MISO feed rows do not match its {len(headers)} headers: {exc}; {where}"
        ) from None
    return raw.rename_columns(list(_REQUIRED))


def _from_rows(data: list[Any], headers: list[str], roles: dict[str, int], where: str) -> pa.Table:
    """General path for any valid JSON layout (pretty-printed, escaped, nulls)."""
    try:
        rows = pa.array(data, pa.list_(pa.string()))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise PayloadError(f"MISO feed 'data' is not a list of string rows: {exc}; {where}") from None
    lengths = pc.list_value_length(rows)
    if len(rows) and (pc.min(lengths).as_py() != len(headers) or pc.max(lengths).as_py() != len(headers)):
        raise PayloadError(f"MISO feed rows do not all have {len(headers)} cells like its headers; {where}")
    return pa.table(
        {r: pc.list_element(rows, roles[r]) if len(rows) else pa.array([], pa.string()) for r in _REQUIRED}
    )


def _parse_interval(column: pa.ChunkedArray, where: str) -> pa.ChunkedArray:
    """Naive EST strings -> UTC timestamps, parsing each distinct value once (288 a day)."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    values = pc.utf8_trim_whitespace(encoded.dictionary)
    parsed = None
    for fmt in _TIME_FORMATS:
        try:
            parsed = pc.strptime(values, format=fmt, unit="us")
            break
        except pa.ArrowInvalid:
            continue
    if parsed is None:
        raise PayloadError(
            f"MISO INTERVAL values like {values[0].as_py()!r} are not a known time format; {where}"
        )
    utc = pc.add(parsed, pa.scalar(timedelta(hours=5), pa.duration("us"))).cast(TS)
    return pa.chunked_array([pc.take(utc, encoded.indices)])


def _to_float(column: pa.ChunkedArray, name: str, where: str) -> pa.ChunkedArray:
    text = pc.utf8_trim_whitespace(column)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        return pc.cast(text, pa.float64())
    except pa.ArrowInvalid as exc:
        raise PayloadError(f"MISO {name.upper()} has non-numeric values: {exc}; {where}") from None


# --------------------------------------------------------------------------------------------- client


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MISO(Source):
    """MISO 5-minute real-time ex-post LMPs (dataset ``rt_lmp``, market ``RT5``) from the public feeds.

    Args:
        feed: "auto" picks by window (today's market day → Rolling, yesterday → Previous); "current",
            "rolling" or "previous" force one feed.
        nodes: keep only these CPNODEs (all when empty).
        now: clock deciding what "today" is (tests and replays).
        base_url: API root (test server, proxy); default ``https://public-api.misoenergy.org/api``.
        http: timeout, retries and pacing (:class:`~hmco.sources.http.HttpOptions` or a mapping);
            ``min_interval`` paces each *feed* (default 60 s, MISO's once-a-minute guidance).

    ``published_at`` of a payload is the response's ``Last-Modified`` when MISO sends one (the feed's
    JSON carries no publication time).
    """

    name: ClassVar[str] = "miso"
    datasets: ClassVar[tuple[str, ...]] = ("rt_lmp",)
    #: a backfill window is a day: one request per market day touched (Rolling/Previous are whole days).
    window_step: timedelta = timedelta(days=1)
    #: an interval's ex-post prices are usually posted within a few minutes of its end.
    publication_lag: timedelta = timedelta(minutes=5)

    def __init__(
        self,
        dataset: str | None = None,
        *,
        settings: Settings | None = None,
        base_url: str | None = None,
        http: HttpOptions | Mapping[str, Any] | None = None,
        now: Callable[[], datetime] = _utcnow,
        feed: str = "auto",
        nodes: Sequence[str] | str | None = None,
    ) -> None:
        super().__init__(dataset, settings=settings)
        if feed.lower() != "auto" and feed.lower() not in _FEEDS:
            raise RequestRejected(f"MISO feed must be auto, current, rolling or previous, not {feed!r}")
        self.feed = feed.lower()
        self.nodes = as_list(nodes)
        self._now = now
        options = HttpOptions.coerce(http)
        #: seconds between two requests to one feed
        self.min_interval = DEFAULT_MIN_INTERVAL if options.min_interval is None else options.min_interval
        self.http_options = options.with_defaults(timeout=120.0, min_interval=self.min_interval)
        # the host is not paced: each feed is, by its own sub-pacer (see _fetch_feed)
        self._http = self.http_options.client(
            base_url or MISO_PUBLIC_URL, user_agent=self.settings.sources.user_agent, host_interval=0.0
        )

    # -- planning ------------------------------------------------------------------------------

    def plan(self, window: Window) -> list[tuple[Feed, Window]]:
        """The feeds to request for ``window``, each with the part of the window it serves.

        Raises:
            RequestRejected: the window reaches before yesterday's market day or is entirely ahead of now.
        """
        if self.feed != "auto":
            return [(_FEEDS[self.feed], window)]
        today = market_day(self._now())
        first, last = market_day(window.start), market_day(window.end - timedelta(microseconds=1))
        if first < today - timedelta(days=1):
            raise RequestRejected(
                f"MISO's public 5-minute feeds only cover today's and yesterday's market day (EST); window "
                f"{window} starts on {first}. For history use the MISO Data Exchange API "
                f"(apim.misoenergy.org pricing/v1 real-time lmp-expost, subscription key) or the weekly "
                f"docs.misoenergy.org YYYYMMDD_5MIN_LMP.zip",
                source=self.name,
            )
        if first > today:
            raise RequestRejected(
                f"MISO window {window} lies after today's market day {today}", source=self.name
            )
        plan: list[tuple[Feed, Window]] = []
        for offset in range((min(last, today) - first).days + 1):
            day = first + timedelta(days=offset)
            dw = _day_window(day)
            part = Window(max(dw.start, window.start), min(dw.end, window.end))
            plan.append(("Rolling" if day == today else "Previous", part))
        return plan

    def latest_window(self, now: datetime | None = None) -> Window:
        """The newest 5-minute interval whose prices should be posted (served from the Rolling feed)."""
        now = now or self._now()
        end = floor_time(now - self.publication_lag, INTERVAL)
        return Window(end - INTERVAL, end)

    # -- I/O -----------------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        """One request per feed the window needs; each payload carries its part of the window.

        An error answer (403, 404 …) is yielded too, then raised, so its bytes reach the raw archive.
        """
        for page, (feed, part) in enumerate(self.plan(window)):
            payload = self._fetch_feed(feed, part, page)
            yield payload
            error = feed_status_error(payload)
            if error is not None:
                raise error

    def _fetch_feed(self, feed: Feed, part: Window, page: int) -> RawPayload:
        # per-feed pacing (≤ 1 request/min each), on top of the host's
        self._http.sub_pacer(feed, self.min_interval).wait()
        resp = self._http.get(FEED_PATH.format(feed=feed))
        return response_payload(
            self,
            resp,
            window=part,
            page=page,
            meta={"feed": feed, "interval_marks": INTERVAL_MARKS, "nodes": self.nodes},
            published_at=last_modified(resp.headers),
        )

    def parse(self, payload: RawPayload) -> pa.Table:
        return parse_payload(payload)

    def close(self) -> None:
        self._http.close()


def feed_status_error(payload: RawPayload) -> SourceError | None:
    """The typed error of a feed answer that is not HTTP 200 (``None`` for a 200). Pure."""
    if payload.status == 200:
        return None
    if payload.status in (401, 403):
        return AuthenticationError(
            f"MISO refused the public feed (HTTP {payload.status}); the public API needs no key, so "
            f"this is an IP block or a moved endpoint",
            source="miso",
            url=payload.url,
            sha256=payload.sha256,
        )
    return RequestRejected(
        f"MISO answered HTTP {payload.status} for the {payload.meta.get('feed')} feed: "
        f"{body_snippet(payload.body)!r}; check base_url",
        source="miso",
        url=payload.url,
        sha256=payload.sha256,
    )


def parse_payload(payload: RawPayload) -> pa.Table:
    """Parse an archived MISO payload (pure; uses only the payload's bytes, status, window and meta)."""
    error = feed_status_error(payload)
    if error is not None:
        raise error
    marks = payload.meta.get("interval_marks", INTERVAL_MARKS)
    if marks != INTERVAL_MARKS:
        log.warning(
            "payload %s was fetched when INTERVAL marked the %s; parsing as %s",
            payload.sha256,
            marks,
            INTERVAL_MARKS,
        )
    nodes: Mapping[str, Any] | list[str] = payload.meta.get("nodes") or []
    where = f"source=miso, dataset={payload.dataset}, url={payload.url}, sha256={payload.sha256}"
    return parse_miso_five_min(payload.body, window=payload.window, nodes=list(nodes), where=where)
