"""MISO real-time 5-minute ex-post LMPs from the public ``GetRealTimeFiveMinExPost`` feeds.

The public API has no history: ``Rolling`` holds today's market day, ``Previous`` yesterday's and
``Current`` the latest interval (reference §6). MISO market time is EST, UTC−5 all year (no DST).
Each feed is one JSON document ``{"headers": [...], "data": [[...], ...]}`` of strings; columns are
always mapped by ``headers`` (case-insensitive), never by position.

``INTERVAL`` is the interval END (see :data:`INTERVAL_MARKS` for MISO's own statement): ``"…T00:05:00"``
is a market day's first interval (00:00–00:05 EST) and the next day's ``"…T00:00:00"`` its last
(23:55–24:00). A feed holds the stamps of its calendar date, ``T00:00:00`` first, so a market day's last
interval is published in the next day's feed; :meth:`MISO.plan` asks for it there. Every payload records
the convention in ``meta["interval_marks"]``; the raw ``INTERVAL`` strings stay untouched in the archive.

Location types come from MISO's own node list, the ``Type`` column of the day-ahead ex-post LMP file
(``Hub``, ``Interface``, ``Loadzone``, ``Gennode``; gridstatus does the same): :meth:`MISO.fetch` yields
that file once per market day as a catalogue payload (archived like any payload) and types every CPNODE
from it; a CPNODE missing from the list is typed ``Unknown`` and counted in a warning.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, ClassVar, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from hmco.config import Settings
from hmco.errors import (
    AuthenticationError,
    NoData,
    PayloadError,
    RequestRejected,
    SchemaDriftError,
    SourceError,
)
from hmco.schemas import TS, conform, get_dataset
from hmco.sources.base import RawPayload, Source, as_list, body_snippet, in_window
from hmco.sources.http import HttpOptions, last_modified, response_payload
from hmco.sources.nodes import (
    MISO_LOCATION_TYPES,
    NODES_DATASET,
    NODES_KIND,
    UNKNOWN,
    catalogue_meta,
    new_fetch_id,
    nodes_table,
)
from hmco.windows import Window, floor_time

__all__ = [
    "EST",
    "INTERVAL",
    "INTERVAL_MARKS",
    "MISO",
    "MISO_PUBLIC_URL",
    "MISO_REPORTS_URL",
    "feed_day",
    "feed_status_error",
    "location_types",
    "market_day",
    "parse_miso_five_min",
    "parse_miso_node_list",
    "parse_payload",
]

log = logging.getLogger("hmco.sources.miso")

MISO_PUBLIC_URL: Final = "https://public-api.misoenergy.org/api"
#: MISO's market-report file store (the day-ahead ex-post LMP file, MISO's node list, lives here).
MISO_REPORTS_URL: Final = "https://docs.misoenergy.org/marketreports"
FEED_PATH: Final = "MarketPricing/GetRealTimeFiveMinExPost/{feed}"
NODE_LIST_PATH: Final = "{day:%Y%m%d}_da_expost_lmp.csv"
#: MISO market time: Eastern *Standard* Time all year (UTC−05:00, never daylight time).
EST: Final = timezone(timedelta(hours=-5), "EST")
INTERVAL: Final = timedelta(minutes=5)
INTERVAL_MARKS: Final[Literal["start", "end"]] = "end"
"""What the feed's ``INTERVAL`` value marks: the interval END (``"08:15:00"`` = 08:10–08:15 EST).

Source: MISO's Data Exchange developer portal, "Pricing API", operation "Real-Time Ex-Post LMP"
(``GET /pricing/v1/real-time/{date}/lmp-expost``), its description, note "[On May 6, 2026 Changes Applied
including historical dates - 5-MINUTE INTERVALS ONLY] Interval labels corrected. Database stores
end-of-interval timestamps." — https://data-exchange.misoenergy.org/developer/apis/pricing-api/operations/
get-v1-real-time-date-lmp-expost (verbatim copy: api-evangelist/miso
``openapi/_original/miso-data-exchange-pricing-api-openapi.json``, harvested 2026-07-27). MISO stores its
5-minute ex-post LMPs under the END of their interval: its example record stored at ``23:55`` is the
interval 23:50–23:55. The public feed, which has no documentation of its own beyond its endpoint table
(https://public-api.misoenergy.org/), serves that stored stamp as ``INTERVAL``; gridstatus reads it the
same way since PR #946 (2026-09-04). Change only here; every payload records the value used.
"""
#: MISO asks callers not to poll a public feed more than once a minute.
DEFAULT_MIN_INTERVAL: Final = 60.0
#: Pacing of the market-report host (a node list a day, plus a few look-backs).
REPORTS_MIN_INTERVAL: Final = 1.0
#: Days to look back when the node list of a market day is not posted (HTTP 404) yet.
NODE_LIST_LOOKBACK: Final = 3
#: After a failed node-list fetch, the real-time path tries again this much later.
NODE_LIST_RETRY: Final = timedelta(hours=1)

Feed = Literal["Current", "Rolling", "Previous"]
_FEEDS: Final[dict[str, Feed]] = {"current": "Current", "rolling": "Rolling", "previous": "Previous"}
_REQUIRED: Final = ("interval", "cpnode", "lmp", "mlc", "mcc")
_TIME_FORMATS: Final = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%m/%d/%Y %H:%M:%S")
_LOOSE_JSON: Final = re.compile(rb"[\[\],]\s")
#: a node list's header is within its first lines (4 preamble lines in every file seen).
_NODE_LIST_HEADER_SCAN: Final = 16


def market_day(instant: datetime) -> date:
    """The MISO market day (EST calendar date) an instant falls in."""
    return instant.astimezone(EST).date()


def feed_day(interval_start: datetime) -> date:
    """The date of the feed (Rolling/Previous) holding the interval starting at ``interval_start``.

    A feed holds the ``INTERVAL`` stamps of its EST date, ``T00:00:00`` first (live captures of 2026-07-27:
    Previous opens with ``"2026-07-26T00:00:00"``, Rolling with ``"2026-07-27T00:00:00"``, in api-evangelist/
    miso ``openapi/_original/miso-public-api-openapi.json``); with end stamps, a market day's 23:55–24:00 is
    stamped ``T00:00:00`` of the next date and so is in the next day's feed.
    """
    stamp = interval_start + INTERVAL if INTERVAL_MARKS == "end" else interval_start
    return market_day(stamp)


def _day_window(day: date) -> Window:
    start = datetime(day.year, day.month, day.day, tzinfo=EST)
    return Window(start, start + timedelta(days=1))


def _feed_window(day: date) -> Window:
    """The intervals whose ``INTERVAL`` stamp falls on EST date ``day`` (what that day's feed holds)."""
    shift = INTERVAL if INTERVAL_MARKS == "end" else timedelta(0)
    whole = _day_window(day)
    return Window(whole.start - shift, whole.end - shift)


# --------------------------------------------------------------------------------------------- parse


def parse_miso_five_min(
    body: bytes,
    *,
    window: Window | None = None,
    nodes: Sequence[str] | None = None,
    node_list: pa.Table | None = None,
    where: str = "",
) -> pa.Table:
    """Parse a ``GetRealTimeFiveMinExPost`` JSON document into canonical ``rt_lmp`` rows.

    Rows are kept when ``ts`` falls in ``window`` (and the node is in ``nodes``, if given). ``node_list``
    (:func:`parse_miso_node_list`) types every CPNODE; see :func:`location_types`.

    Raises:
        PayloadError: the bytes are not the feed's JSON envelope (HTML page, API error object …).
        SchemaDriftError: ``headers`` lack one of INTERVAL, CPNODE, LMP, MLC, MCC.
    """
    _, raw = _read_feed(body, where)
    if raw.num_rows == 0:
        return conform(_empty(), "rt_lmp")
    stamp = _parse_interval(raw.column("interval"), where)
    step = pa.scalar(INTERVAL, pa.duration("us"))
    ts = pc.subtract(stamp, step) if INTERVAL_MARKS == "end" else stamp
    node = raw.column("cpnode")
    lmp, mlc, mcc = (_to_float(raw.column(c), c, where) for c in ("lmp", "mlc", "mcc"))
    table = pa.table(
        {
            "ts": ts,
            "interval_end": stamp if INTERVAL_MARKS == "end" else pc.add(ts, step),
            "iso": _const("MISO", raw.num_rows),
            "market": _const("RT5", raw.num_rows),
            "node": node,
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
    node_type = location_types(table["node"], node_list, where=where)
    return conform(table.append_column("node_type", node_type), "rt_lmp")


def location_types(
    node: pa.Array | pa.ChunkedArray, node_list: pa.Table | None, *, where: str = ""
) -> pa.Array:
    """The location type of every CPNODE in ``node``, from MISO's node list; never null.

    A node missing from the list is ``Unknown`` (how many is logged as a warning). Without a list
    (none could be fetched) names ending ``.HUB`` are ``Hub``, MISO's hub naming, and the rest
    ``Unknown``. Each distinct name is looked up once.
    """
    names = node.combine_chunks() if isinstance(node, pa.ChunkedArray) else node
    encoded = pc.dictionary_encode(names)
    distinct = encoded.dictionary
    if node_list is None:
        types = pc.if_else(pc.ends_with(distinct, ".HUB"), pa.scalar("Hub"), pa.scalar(UNKNOWN))
        log.debug("MISO: no node list; %d CPNODE(s) typed by name only; %s", len(distinct), where)
    else:
        listed = node_list.column("location").combine_chunks()
        found = pc.index_in(distinct, value_set=listed)
        types = pc.fill_null(pc.take(node_list.column("location_type").combine_chunks(), found), UNKNOWN)
        missing = found.null_count
        if missing:
            sample = pc.filter(distinct, pc.is_null(found))[:5].to_pylist()
            log.warning(
                "MISO: %d of %d CPNODE(s) are not in MISO's node list (e.g. %s); typed %r; %s",
                missing,
                len(distinct),
                ", ".join(map(str, sample)),
                UNKNOWN,
                where,
            )
    return pc.take(types, encoded.indices)


def parse_miso_node_list(body: bytes, *, where: str = "") -> pa.Table:
    """Parse MISO's day-ahead ex-post LMP CSV into its node list: ``location``, ``location_type``.

    The file is four preamble lines (title, market date, blank, time-zone note), a header
    ``Node,Type,Value,HE 1,…,HE 24`` and three rows per node (``Value`` LMP, MCC, MLC); only ``Node`` and
    ``Type`` are read (by header name), and each node once. Types map through
    :data:`~hmco.sources.nodes.MISO_LOCATION_TYPES` (a new MISO type passes through verbatim).

    Raises:
        PayloadError: an empty body, an HTML page or XML error document, unreadable CSV, or no nodes.
        SchemaDriftError: no header line starting ``Node``, or no ``Type`` column.
    """
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise PayloadError(f"MISO node list is empty; {where}")
    if head[:1] == b"<":
        raise PayloadError(
            f"MISO node list is an HTML page or XML error document, not the day-ahead ex-post CSV; "
            f"{where}: {body_snippet(head, 120)!r}"
        )
    offset, names = _node_list_header(body, where)
    folded = {n.strip().casefold(): n for n in names}
    if "type" not in folded:
        raise SchemaDriftError(
            f"MISO node list header {names} has no 'Type' column; the file layout changed, update "
            f"hmco.sources.miso; {where}"
        )
    node_col, type_col = folded["node"], folded["type"]
    try:
        raw = pcsv.read_csv(
            pa.BufferReader(memoryview(body)[offset:]),
            parse_options=pcsv.ParseOptions(invalid_row_handler=lambda row: "skip"),
            convert_options=pcsv.ConvertOptions(
                include_columns=[node_col, type_col],
                column_types={node_col: pa.string(), type_col: pa.string()},
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise PayloadError(f"MISO node list is not readable CSV: {exc}; {where}") from None
    node = pc.utf8_trim_whitespace(raw.column(node_col))
    kind = pc.utf8_trim_whitespace(raw.column(type_col))
    rows = pa.table({"location": node, "kind": kind}).filter(pc.not_equal(node, ""))
    distinct = rows.group_by("location", use_threads=False).aggregate([("kind", "first")])
    if distinct.num_rows == 0:
        raise PayloadError(f"MISO node list has a header but no nodes; {where}")
    kinds = distinct.column("kind_first").combine_chunks()
    keys = pa.array(list(MISO_LOCATION_TYPES), pa.string())
    mapped = pc.take(pa.array(list(MISO_LOCATION_TYPES.values()), pa.string()), pc.index_in(kinds, keys))
    try:
        return nodes_table(
            {"location": distinct.column("location"), "location_type": pc.coalesce(mapped, kinds)}
        )
    except PayloadError as exc:
        raise PayloadError(f"MISO {exc}; {where}") from None


def _node_list_header(body: bytes, where: str) -> tuple[int, list[str]]:
    """(byte offset, cells) of the node list's header line: the first line whose first cell is ``Node``."""
    pos = 0
    for _ in range(_NODE_LIST_HEADER_SCAN):
        nl = body.find(b"\n", pos)
        line = body[pos : nl if nl >= 0 else len(body)].decode("utf-8-sig", "replace").strip()
        cells = next(csv.reader([line]), [])
        if cells and cells[0].strip().casefold() == "node":
            return pos, cells
        if nl < 0:
            break
        pos = nl + 1
    raise SchemaDriftError(
        f"MISO node list has no header line starting with 'Node' in its first {_NODE_LIST_HEADER_SCAN} "
        f"lines; the file layout changed; {where}: {body_snippet(body, 160)!r}"
    )


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


@dataclass(frozen=True)
class _NodeListState:
    """The node list the real-time path uses for one market day (``table`` None: fetching failed)."""

    day: date
    table: pa.Table | None
    sha256: str | None
    retry_at: datetime


class MISO(Source):
    """MISO 5-minute real-time ex-post LMPs (dataset ``rt_lmp``, market ``RT5``) from the public feeds.

    Args:
        feed: "auto" picks by window (today's feed → Rolling, yesterday's → Previous); "current",
            "rolling" or "previous" force one feed.
        nodes: keep only these CPNODEs (all when empty).
        now: clock deciding what "today" is (tests and replays).
        base_url: API root (test server, proxy); default ``https://public-api.misoenergy.org/api``.
        reports_url: market-report root the node list is read from; default
            ``https://docs.misoenergy.org/marketreports``.
        node_list: type nodes from MISO's node list (fetched once per market day). Default: on, unless
            ``base_url`` points elsewhere than MISO and ``reports_url`` is not given (a mirror or test
            server must serve the node list too); off types ``*.HUB`` as ``Hub``, the rest ``Unknown``.
        http: timeout, retries and pacing (:class:`~hmco.sources.http.HttpOptions` or a mapping);
            ``min_interval`` paces each *feed* (default 60 s, MISO's once-a-minute guidance).

    ``published_at`` of a payload is the response's ``Last-Modified`` when MISO sends one (the feed's
    JSON carries no publication time). The node list is yielded by ``fetch`` as a catalogue payload
    (``meta["kind"] == "nodes"``, dataset segment ``nodes``) that parses to no rows; feed payloads name
    it in ``meta["node_list"]`` (its sha256), so a replay that parses it first types nodes the same way.
    If no node list can be had, prices still flow (types by name) and a warning says why.
    """

    name: ClassVar[str] = "miso"
    #: MISO's market runs on Eastern Standard Time all year (fixed UTC-05:00).
    timezone: ClassVar[str] = "EST"
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
        reports_url: str | None = None,
        http: HttpOptions | Mapping[str, Any] | None = None,
        now: Callable[[], datetime] = _utcnow,
        feed: str = "auto",
        nodes: Sequence[str] | str | None = None,
        node_list: bool | None = None,
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
        agent = self.settings.sources.user_agent
        self._http = self.http_options.client(
            base_url or MISO_PUBLIC_URL, user_agent=agent, host_interval=0.0
        )
        self._reports = self.http_options.client(
            reports_url or MISO_REPORTS_URL,
            user_agent=agent,
            host_interval=min(self.min_interval, REPORTS_MIN_INTERVAL),
        )
        own_host = base_url is None or base_url.rstrip("/") == MISO_PUBLIC_URL
        self.node_list = (own_host or reports_url is not None) if node_list is None else node_list
        self._node_list: _NodeListState | None = None
        self._node_lists: OrderedDict[str, pa.Table] = OrderedDict()

    # -- planning ------------------------------------------------------------------------------

    def plan(self, window: Window) -> list[tuple[Feed, Window]]:
        """The feeds to request for ``window``, each with the part of the window it serves.

        A feed serves the intervals whose ``INTERVAL`` stamp falls on its date (:func:`feed_day`), so a
        window reaching a market day's last interval also reads the next day's feed when it is out.

        Raises:
            RequestRejected: the window reaches before yesterday's feed or is entirely ahead of now.
        """
        if self.feed != "auto":
            return [(_FEEDS[self.feed], window)]
        today = market_day(self._now())
        first = feed_day(floor_time(window.start, INTERVAL))
        last = feed_day(floor_time(window.end - timedelta(microseconds=1), INTERVAL))
        if first < today - timedelta(days=1):
            raise RequestRejected(
                f"MISO's public 5-minute feeds only cover today's and yesterday's market day (EST); window "
                f"{window} starts in the feed of {first}. For history use the MISO Data Exchange API "
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
            fw = _feed_window(day)
            start, end = max(fw.start, window.start), min(fw.end, window.end)
            if start < end:
                plan.append(("Rolling" if day == today else "Previous", Window(start, end)))
        return plan

    def latest_window(self, now: datetime | None = None) -> Window:
        """The newest 5-minute interval whose prices should be posted (served from the Rolling feed)."""
        now = now or self._now()
        end = floor_time(now - self.publication_lag, INTERVAL)
        return Window(end - INTERVAL, end)

    # -- I/O -----------------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        """The market day's node list (first time only), then one request per feed the window needs.

        An error answer of a feed (403, 404 …) is yielded too, then raised, so its bytes reach the raw
        archive.
        """
        plan = self.plan(window)
        fresh = self._refresh_node_list()
        if fresh is not None:
            yield fresh
        listed = self._node_list.sha256 if self._node_list is not None else None
        for page, (feed, part) in enumerate(plan):
            payload = self._fetch_feed(feed, part, page, listed)
            yield payload
            error = feed_status_error(payload)
            if error is not None:
                raise error

    def _fetch_feed(self, feed: Feed, part: Window, page: int, node_list: str | None) -> RawPayload:
        # per-feed pacing (≤ 1 request/min each), on top of the host's
        self._http.sub_pacer(feed, self.min_interval).wait()
        resp = self._http.get(FEED_PATH.format(feed=feed))
        return response_payload(
            self,
            resp,
            window=part,
            page=page,
            meta={
                "feed": feed,
                "interval_marks": INTERVAL_MARKS,
                "nodes": self.nodes,
                "node_list": node_list,
            },
            published_at=last_modified(resp.headers),
        )

    def fetch_nodes(self, day: date | None = None) -> Iterator[RawPayload]:
        """Yield MISO's node list: the day-ahead ex-post LMP file of ``day`` (default: today, EST).

        A file not posted yet (HTTP 404) is looked for up to :data:`NODE_LIST_LOOKBACK` days back. The
        payload's dataset segment is ``nodes``; another error answer is yielded, then raised.

        Raises:
            NoData: no file in the look-back; AuthenticationError / RequestRejected: another refusal.
        """
        first = day or market_day(self._now())
        tried = []
        for back in range(NODE_LIST_LOOKBACK + 1):
            on = first - timedelta(days=back)
            path = NODE_LIST_PATH.format(day=on)
            resp = self._reports.get(path)
            if resp.status_code == 404:
                tried.append(path)
                continue
            payload = response_payload(
                self,
                resp,
                window=_day_window(on),
                page=0,
                meta=catalogue_meta(
                    new_fetch_id(), 0, 1, part_name="da_expost_lmp", market_day=on.isoformat()
                ),
                published_at=last_modified(resp.headers),
            )
            payload = replace(payload, dataset=NODES_DATASET)
            yield payload
            error = node_list_status_error(payload)
            if error is not None:
                raise error
            return
        raise NoData(
            f"MISO has not posted a day-ahead ex-post LMP file (its node list) for {first} or the "
            f"{NODE_LIST_LOOKBACK} days before: {', '.join(tried)} answered HTTP 404",
            source=self.name,
        )

    def node_catalogue(self, day: date | None = None) -> pa.Table:
        """MISO's node list as a table (``location``, ``location_type``, ``market_day``), fetched now.

        :func:`hmco.sources.nodes.nodes` does the same and archives (and reuses) the payload.
        """
        return self.parse_nodes(list(self.fetch_nodes(day)))

    def parse_nodes(self, payloads: Sequence[RawPayload]) -> pa.Table:
        """The node table of a fetched (or archived) node list. Pure."""
        payload = next((p for p in payloads if p.meta.get("kind") == NODES_KIND), None)
        if payload is None:
            raise PayloadError("no MISO node-list payload given", source=self.name)
        table = parse_node_list_payload(payload)
        day = date.fromisoformat(str(payload.meta["market_day"]))
        return table.append_column("market_day", pa.repeat(pa.scalar(day, pa.date32()), table.num_rows))

    def _refresh_node_list(self) -> RawPayload | None:
        """Fetch the market day's node list if this source has none yet; the payload to yield, if new.

        A failure is logged and retried after :data:`NODE_LIST_RETRY`; prices flow meanwhile.
        """
        if not self.node_list:
            return None
        now = self._now()
        day = market_day(now)
        state = self._node_list
        if state is not None and state.day == day and (state.table is not None or now < state.retry_at):
            return None
        try:
            (payload,) = self.fetch_nodes(day)
            table = self._remember_node_list(payload)
        except SourceError as exc:
            log.warning(
                "MISO node list unavailable (%s); CPNODEs are typed by name (*.HUB Hub, else %r) until a "
                "retry after %s",
                exc,
                UNKNOWN,
                NODE_LIST_RETRY,
            )
            self._node_list = _NodeListState(day, None, None, now + NODE_LIST_RETRY)
            return None
        self._node_list = _NodeListState(day, table, payload.sha256, now)
        return payload

    def _remember_node_list(self, payload: RawPayload) -> pa.Table:
        table = self._node_lists.get(payload.sha256)
        if table is None:
            table = parse_node_list_payload(payload)
            self._node_lists[payload.sha256] = table
            while len(self._node_lists) > 4:
                self._node_lists.popitem(last=False)
        return table

    def parse(self, payload: RawPayload) -> pa.Table:
        """Canonical rows of a feed payload; a node-list payload is remembered and gives no rows."""
        if payload.meta.get("kind") == NODES_KIND:
            self._remember_node_list(payload)
            return conform(_empty(), "rt_lmp")
        sha = payload.meta.get("node_list")
        node_list = self._node_lists.get(sha) if sha else None
        if sha and node_list is None:
            log.warning(
                "MISO payload %s was typed with node list %s, which this source has not parsed; parse that "
                "archived payload first to type nodes the same way",
                payload.sha256,
                sha,
            )
        return parse_payload(payload, node_list=node_list)

    def close(self) -> None:
        self._http.close()
        self._reports.close()


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


def node_list_status_error(payload: RawPayload) -> SourceError | None:
    """The typed error of a node-list answer that is not HTTP 200 (``None`` for a 200). Pure."""
    if payload.status == 200:
        return None
    cls = AuthenticationError if payload.status in (401, 403) else RequestRejected
    return cls(
        f"MISO's report store answered HTTP {payload.status} for the node list "
        f"{payload.meta.get('market_day')}: {body_snippet(payload.body)!r}; check reports_url",
        source="miso",
        url=payload.url,
        sha256=payload.sha256,
    )


def parse_node_list_payload(payload: RawPayload) -> pa.Table:
    """Parse an archived node-list payload (status check, then :func:`parse_miso_node_list`). Pure."""
    error = node_list_status_error(payload)
    if error is not None:
        raise error
    where = (
        f"source=miso, node list {payload.meta.get('market_day')}, url={payload.url}, sha256={payload.sha256}"
    )
    return parse_miso_node_list(payload.body, where=where)


def parse_payload(payload: RawPayload, *, node_list: pa.Table | None = None) -> pa.Table:
    """Parse an archived MISO payload (pure; uses only the payload's bytes, status, window and meta).

    A node-list payload gives no rows; ``node_list`` types the CPNODEs of a feed payload.
    """
    if payload.meta.get("kind") == NODES_KIND:
        return conform(_empty(), "rt_lmp")
    error = feed_status_error(payload)
    if error is not None:
        raise error
    marks = payload.meta.get("interval_marks", INTERVAL_MARKS)
    if marks != INTERVAL_MARKS:
        log.warning(
            "payload %s was fetched when hmco read INTERVAL as the interval %s; parsing it as the %s "
            "(MISO's documented convention, see hmco.sources.miso.INTERVAL_MARKS)",
            payload.sha256,
            marks,
            INTERVAL_MARKS,
        )
    nodes: Mapping[str, Any] | list[str] = payload.meta.get("nodes") or []
    where = f"source=miso, dataset={payload.dataset}, url={payload.url}, sha256={payload.sha256}"
    return parse_miso_five_min(
        payload.body, window=payload.window, nodes=list(nodes), node_list=node_list, where=where
    )
