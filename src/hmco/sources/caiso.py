"""CAISO OASIS locational marginal prices: 5-minute (RTD), 15-minute (FMM) and day-ahead hourly (DAM).

OASIS serves every report as a zip from ``SingleZip``; a failed request is *also* an HTTP 200 zip,
holding an XML document with an ``ERR_CODE``. The edge throttles to one request per 5 s per client
with an HTTP 429 HTML page. So:

- ``fetch`` paces requests 5 s apart (process-wide per host), retries the 429 page after 5 s, retries
  transient in-zip errors (1003/1006-1010/1012/1013/1015) with backoff, and yields every final
  response as a :class:`RawPayload` -- including error zips, so their bytes reach the raw tier;
- ``parse`` (pure) turns a payload into the canonical ``rt_lmp``/``da_lmp`` table, or raises the typed
  error its ``ERR_CODE`` means (1000 "no data" is an empty table unless ``require_data``).

Times come only from the ``*_GMT`` columns, so DST days need no special casing: the spring-forward
trade date has 276 five-minute intervals, the fall-back one 300 (``OPR_HR`` 25).
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from tenacity import RetryCallState

from hmco.config import Settings
from hmco.errors import (
    ConfigError,
    NoData,
    PayloadError,
    RateLimited,
    RequestRejected,
    SchemaDriftError,
    SourceError,
    SourceUnavailable,
)
from hmco.schemas import TS, conform, get_dataset
from hmco.sources.base import RawPayload, Source, body_snippet, in_window, register_source
from hmco.sources.http import HttpClient
from hmco.windows import Window, as_utc, floor_time

__all__ = [
    "CAISO",
    "DEFAULT_BASE_URL",
    "DEFAULT_NODES",
    "MIN_INTERVAL",
    "OASIS_ERRORS",
    "REPORTS",
    "OasisReport",
    "is_throttle_page",
    "oasis_error_of",
    "parse_oasis_lmp",
    "parse_payload",
    "trade_date_window",
]

log = logging.getLogger("hmco.sources.caiso")

DEFAULT_BASE_URL = "https://oasis.caiso.com/oasisapi"
#: OASIS acceptable-use rule: one request per 5 s per client (HTTP 429 otherwise).
MIN_INTERVAL = 5.0
#: wait after the 429 page, which says "Please retry your request after 5 seconds" (no Retry-After).
THROTTLE_RETRY_SECONDS = 5.0
THROTTLE_MARKER = b"Acceptable Use Policy Violation"
#: named-node requests: at most this many nodes (ERR 1017) and this long a window (ERR 1004).
MAX_NODES_PER_REQUEST = 10
MAX_REQUEST_WINDOW = timedelta(days=31)
#: group (ALL / ALL_APNODES) requests of interval reports: at most one hour each.
MAX_GROUP_WINDOW_INTERVAL = timedelta(hours=1)
PACIFIC = ZoneInfo("America/Los_Angeles")
DEFAULT_NODES = ("TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "TH_ZP26_GEN-APND")
GROUP_TYPES = ("ALL", "ALL_APNODES")

# Report versions are pinned: the version changes the column layout (reference §5.1, gridstatus 3/3/12).
PRC_INTVL_LMP_VERSION = 3
PRC_RTPD_LMP_VERSION = 3
PRC_LMP_VERSION = 12

START_COLUMN = "INTERVALSTARTTIME_GMT"
END_COLUMN = "INTERVALENDTIME_GMT"
TYPE_COLUMN = "LMP_TYPE"
NODE_COLUMNS = ("NODE", "NODE_ID", "NODE_ID_XML")
#: LMP_TYPE -> canonical column.
COMPONENTS = {"LMP": "lmp", "MCE": "energy", "MCC": "congestion", "MCL": "loss", "MGHG": "ghg"}


@dataclass(frozen=True)
class OasisReport:
    """One OASIS price report: how to ask for it and how to read it."""

    market: str
    dataset: str
    queryname: str
    market_run_id: str
    version: int
    value_column: str
    interval: timedelta
    #: how much a single ALL-node request may cover; ``None`` = one Pacific trade date.
    group_window: timedelta | None
    #: how far back ``latest_window`` reaches, so late-published intervals are re-read.
    poll_lookback: timedelta


REPORTS: dict[str, OasisReport] = {
    "RT5": OasisReport(
        "RT5", "rt_lmp", "PRC_INTVL_LMP", "RTM", PRC_INTVL_LMP_VERSION, "VALUE",
        timedelta(minutes=5), MAX_GROUP_WINDOW_INTERVAL, timedelta(minutes=30),
    ),
    "RT15": OasisReport(
        "RT15", "rt_lmp", "PRC_RTPD_LMP", "RTPD", PRC_RTPD_LMP_VERSION, "PRC",
        timedelta(minutes=15), MAX_GROUP_WINDOW_INTERVAL, timedelta(hours=1),
    ),
    "DAH": OasisReport(
        "DAH", "da_lmp", "PRC_LMP", "DAM", PRC_LMP_VERSION, "MW",
        timedelta(hours=1), None, timedelta(days=1),
    ),
}  # fmt: skip

ErrorKind = Literal["no_data", "rejected", "transient"]


@dataclass(frozen=True)
class OasisError:
    """What an OASIS ``ERR_CODE`` means for hmco: its kind and the fix to suggest."""

    kind: ErrorKind
    fix: str


OASIS_ERRORS: dict[int, OasisError] = {
    1000: OasisError("no_data", "widen or shift the window, or wait: the report may not be published yet"),
    1001: OasisError(
        "rejected", "check the report's parameters (queryname, market_run_id, node or grp_type, version)"
    ),
    1002: OasisError("rejected", "send startdatetime/enddatetime as yyyymmddTHH:MM-0000 (GMT)"),
    1003: OasisError("transient", "the query timed out at CAISO; retry later or ask for fewer nodes"),
    1004: OasisError(
        "rejected", "the window is longer than 31 days; split it into windows of at most 31 days"
    ),
    1005: OasisError("rejected", "unknown report name; use a published OASIS queryname"),
    1006: OasisError("transient", "CAISO failed transforming the report; retry later"),
    1007: OasisError("transient", "the report file is not available at CAISO yet; retry later"),
    1008: OasisError(
        "transient", "CAISO ran out of memory; retry later or ask for fewer nodes/a shorter window"
    ),
    1009: OasisError("transient", "CAISO failed reading its report files; retry later"),
    1010: OasisError("transient", "CAISO system error; retry later"),
    1011: OasisError("rejected", "empty query: send queryname, startdatetime, enddatetime and version"),
    1012: OasisError("transient", "connection refused inside CAISO; retry later"),
    1013: OasisError("transient", "CAISO resources unavailable; retry later"),
    1014: OasisError(
        "rejected", "the start date is beyond OASIS retention (~39 months); move the window inside it"
    ),
    1015: OasisError("transient", "the GroupZip is still being prepared; re-request after a while"),
    1016: OasisError("rejected", "unknown GROUPID; use a published group id"),
    1017: OasisError("rejected", "more than 10 nodes in one request; ask for at most 10 or use grp_type=ALL"),
    1020: OasisError("rejected", "report version missing or invalid; pin a published version"),
}

_ERR_CODE = re.compile(rb"<(?:\w+:)?ERR_CODE>\s*(\d+)\s*</")
_ERR_DESC = re.compile(rb"<(?:\w+:)?ERR_DESC>(.*?)</", re.S)
_ZIP_MAGIC = b"PK"


# --------------------------------------------------------------------------------------------- time


def trade_date_window(trade_date: date | str) -> Window:
    """The UTC window of one CAISO trade date (Pacific midnight to midnight: 23, 24 or 25 hours)."""
    day = date.fromisoformat(trade_date) if isinstance(trade_date, str) else trade_date
    start = datetime(day.year, day.month, day.day, tzinfo=PACIFIC)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=PACIFIC)
    return Window(as_utc(start), as_utc(end))


def _split_trade_dates(window: Window) -> Iterator[Window]:
    cursor = window.start
    while cursor < window.end:
        nxt = min(trade_date_window(cursor.astimezone(PACIFIC).date()).end, window.end)
        yield Window(cursor, nxt)
        cursor = nxt


def _oasis_time(value: datetime, *, ceil: bool = False) -> str:
    """``yyyymmddTHH:MM-0000`` in GMT (OASIS takes minutes; round the end up so no interval is lost)."""
    floored = floor_time(value, timedelta(minutes=1))
    if ceil and floored < value:
        floored += timedelta(minutes=1)
    return floored.strftime("%Y%m%dT%H:%M-0000")


# ----------------------------------------------------------------------------------- error payloads


def is_throttle_page(resp: httpx.Response) -> bool:
    """True for the edge's "Acceptable Use Policy Violation" page (whatever its status code)."""
    ctype = resp.headers.get("content-type", "")
    return "html" in ctype.lower() and THROTTLE_MARKER in resp.content[:1024]


def oasis_error_of(body: bytes) -> tuple[int, str] | None:
    """``(ERR_CODE, ERR_DESC)`` if ``body`` is a zip holding only an OASIS error XML, else ``None``."""
    if not body.startswith(_ZIP_MAGIC):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            names = zf.namelist()
            if not names or not all(n.lower().endswith(".xml") for n in names):
                return None
            xml = zf.read(names[0])
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError):
        return None
    code = _ERR_CODE.search(xml)
    if code is None:
        return None
    desc = _ERR_DESC.search(xml)
    return int(code.group(1)), (desc.group(1).decode("utf-8", "replace").strip() if desc else "")


def _raise_for_oasis_error(code: int, desc: str, *, require_data: bool, ctx: Mapping[str, Any]) -> None:
    """Raise the typed error of an OASIS ``ERR_CODE`` (returns for 1000 when data is optional)."""
    known = OASIS_ERRORS.get(code)
    if known is None:
        raise SourceError(
            f"CAISO OASIS error {code} ({desc}): not a code hmco knows; see the OASIS spec", **ctx
        )
    msg = f"CAISO OASIS error {code} ({desc}): {known.fix}"
    if known.kind == "no_data":
        if require_data:
            raise NoData(msg, **ctx)
        return
    if known.kind == "transient":
        raise SourceUnavailable(msg, **ctx)
    raise RequestRejected(msg, **ctx)


# -------------------------------------------------------------------------------------------- parse

_DICT = pa.dictionary(pa.int32(), pa.string())


def _normalize(name: str) -> str:
    return name.strip().upper()


def _read_member(zf: zipfile.ZipFile, name: str, report: OasisReport, ctx: Mapping[str, Any]) -> pa.Table:
    """Read the five columns the pivot needs from one CSV member, by header name (any order/case).

    Strings are read dictionary-encoded: a day of 5-minute data has 288 distinct timestamps and a few
    thousand nodes, so times are parsed once per distinct value and the pivot works on small integers.
    """
    with zf.open(name) as fh:
        header = fh.readline().decode("utf-8-sig", "replace")
    actual = {_normalize(c): c for c in next(csv.reader([header.rstrip("\r\n")]), [])}
    node_col = next((c for c in NODE_COLUMNS if c in actual), None)
    wanted = [START_COLUMN, END_COLUMN, TYPE_COLUMN, report.value_column]
    missing = [c for c in wanted if c not in actual] + ([] if node_col else [NODE_COLUMNS[0]])
    if missing or node_col is None:
        raise SchemaDriftError(
            f"CAISO {report.queryname} v{report.version} member {name!r} lacks column(s) {missing}; "
            f"it has {sorted(actual)}. The report layout changed: check the pinned version",
            **ctx,
        )
    renames = {
        actual[START_COLUMN]: "ts",
        actual[END_COLUMN]: "interval_end",
        actual[node_col]: "node",
        actual[TYPE_COLUMN]: "lmp_type",
        actual[report.value_column]: "value",
    }
    types = {src: (pa.float64() if dst == "value" else _DICT) for src, dst in renames.items()}
    convert = pcsv.ConvertOptions(
        include_columns=list(renames), column_types=types, strings_can_be_null=False
    )
    with zf.open(name) as fh:
        table = pcsv.read_csv(fh, read_options=pcsv.ReadOptions(block_size=8 << 20), convert_options=convert)
    table = table.rename_columns([renames[c] for c in table.column_names])
    return table.select(["ts", "interval_end", "node", "lmp_type", "value"])


def _node_types(names: pa.Array) -> pa.Array:
    """node_type from CAISO naming: ``TH_*`` Hub, ``DLAP_*`` DLAP, ``*-APND`` APNode, else Node."""
    return pc.if_else(
        pc.starts_with(names, "TH_"),
        "Hub",
        pc.if_else(
            pc.starts_with(names, "DLAP_"),
            "DLAP",
            pc.if_else(pc.ends_with(names, "-APND"), "APNode", "Node"),
        ),
    )


def _dense_rank(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(0-based rank of each value, the distinct values in ascending order); equal values share a rank."""
    rank = pc.rank(values, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64) - 1
    distinct = np.zeros(int(rank.max()) + 1 if len(rank) else 0, dtype=np.int64)
    distinct[rank] = np.arange(len(rank))  # any representative of each rank
    return rank, values.take(pa.array(distinct))


def _pivot(long: pa.Table, ctx: Mapping[str, Any]) -> pa.Table:
    """One row per (node, interval), sorted by node then time, from one row per ``LMP_TYPE``.

    Vectorized, without hashing: node and time dictionaries are ranked (sorted once per distinct
    value), each row gets the slot ``node_rank * n_times + time_rank``, and every component is
    scattered into its slot. Sparse slot ranges are compacted with ``np.unique`` first.
    """
    long = long.unify_dictionaries().combine_chunks()
    start, end, node, kind = (long.column(c).chunk(0) for c in ("ts", "interval_end", "node", "lmp_type"))
    try:
        start_times = start.dictionary.cast(TS)
        end_times = end.dictionary.cast(TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise PayloadError(f"CAISO interval times are not ISO-8601 with an offset: {exc}", **ctx) from None
    time_rank, times = _dense_rank(start_times)
    node_rank, nodes = _dense_rank(node.dictionary)
    keys = node_rank[node.indices.to_numpy()] * len(times) + time_rank[start.indices.to_numpy()]
    code = pc.index_in(kind.dictionary, value_set=pa.array(list(COMPONENTS))).to_numpy(zero_copy_only=False)
    row_code = code[kind.indices.to_numpy()]  # NaN for LMP_TYPEs hmco does not know (ignored)
    known = ~np.isnan(row_code)
    if len(times) * len(nodes) <= 4 * len(keys) + 1024:
        slots, slot_keys = keys, None
    else:
        slot_keys, slots = np.unique(keys, return_inverse=True)
    size = len(slot_keys) if slot_keys is not None else len(times) * len(nodes)
    present = np.zeros(size, dtype=bool)
    present[slots[known]] = True
    filled = np.flatnonzero(present)
    value_column = long.column("value").chunk(0)
    values = value_column.to_numpy(zero_copy_only=False)
    valid = ~np.asarray(value_column.is_null())
    columns: dict[str, pa.Array] = {}
    for position, name in enumerate(COMPONENTS.values()):
        rows = row_code == position
        target = np.full(size, np.nan)
        target[slots[rows]] = values[rows]
        if not np.array_equal(target[slots[rows]], values[rows], equal_nan=True):
            raise PayloadError(
                f"CAISO payload repeats a (node, interval) with different {name} values", **ctx
            )
        has = np.zeros(size, dtype=bool)
        has[slots[rows]] = valid[rows]
        columns[name] = pa.array(target[filled], mask=~has[filled])
    end_slot = np.zeros(size, dtype=np.int64)
    end_slot[slots[known]] = end.indices.to_numpy()[known]
    filled_keys = filled if slot_keys is None else slot_keys[filled]
    node_index = pa.array(filled_keys // len(times))
    return pa.table(
        {
            "ts": times.take(pa.array(filled_keys % len(times))),
            "interval_end": end_times.take(pa.array(end_slot[filled])),
            "node": nodes.take(node_index),
            "node_type": _node_types(nodes).take(node_index),
            **columns,
        }
    )


def parse_oasis_lmp(
    body: bytes,
    *,
    market: str = "RT5",
    window: Window | None = None,
    require_data: bool = False,
    context: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Parse an OASIS ``resultformat=6`` LMP zip into the canonical ``rt_lmp``/``da_lmp`` table.

    Every CSV member is read (by header name) and concatenated, the long rows are pivoted on
    ``LMP_TYPE``, rows outside ``window`` (if given) are dropped; output is sorted by node, then time.
    Pure: bytes in, Arrow out.

    Raises:
        NoData / RequestRejected / SourceUnavailable / SourceError: the zip holds an OASIS error XML.
        PayloadError: not a zip, a corrupt or truncated zip, or components without an LMP row.
        SchemaDriftError: a CSV member lacks a required column (named in the message).
    """
    report = REPORTS[market]
    dataset = get_dataset(report.dataset)
    ctx = dict(context or {})
    if not body.startswith(_ZIP_MAGIC):
        snippet = body[:120].decode("utf-8", "replace").replace("\n", " ")
        raise PayloadError(f"CAISO answered with something that is not a zip: {snippet!r}", **ctx)
    error = oasis_error_of(body)
    if error is not None:
        _raise_for_oasis_error(*error, require_data=require_data, ctx=ctx)
        return dataset.schema.empty_table()
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            members = [n for n in zf.namelist() if n.lower().endswith(".csv")]
            if not members:
                raise PayloadError(f"CAISO zip holds no CSV member: {zf.namelist()}", **ctx)
            long = pa.concat_tables([_read_member(zf, name, report, ctx) for name in members])
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise PayloadError(
            f"CAISO zip is corrupt or truncated ({type(exc).__name__}: {exc})", **ctx
        ) from None
    except pa.ArrowInvalid as exc:
        raise PayloadError(f"CAISO CSV cannot be parsed: {exc}", **ctx) from None
    if long.num_rows == 0:
        if require_data:
            raise NoData("CAISO returned a CSV without rows", **ctx)
        return dataset.schema.empty_table()
    wide = _pivot(long, ctx)
    if window is not None:
        inside = in_window(wide["ts"], window)
        if not pc.all(inside).as_py():
            wide = wide.filter(inside)
    missing_lmp = wide["lmp"].null_count
    if missing_lmp:
        raise PayloadError(f"CAISO payload has {missing_lmp} node-interval(s) without an LMP value", **ctx)
    n = wide.num_rows
    table = pa.table(
        {
            "ts": wide["ts"],
            "interval_end": wide["interval_end"],
            "iso": pa.repeat("CAISO", n),
            "market": pa.repeat(report.market, n),
            **{name: wide[name] for name in ("node", "node_type", *COMPONENTS.values())},
        }
    )
    return conform(table, dataset)


def parse_payload(payload: RawPayload, *, require_data: bool = False) -> pa.Table:
    """Parse one CAISO :class:`RawPayload` (status check, then :func:`parse_oasis_lmp`). Pure."""
    ctx = {"source": payload.source, "dataset": payload.dataset, "url": payload.url, "sha256": payload.sha256}
    if payload.status != 200:
        raise RequestRejected(
            f"CAISO OASIS answered HTTP {payload.status}: {body_snippet(payload.body)}", **ctx
        )
    market = str(payload.meta.get("market", "DAH" if payload.dataset == "da_lmp" else "RT5"))
    if market not in REPORTS:
        raise PayloadError(f"payload meta names unknown CAISO market {market!r}", **ctx)
    return parse_oasis_lmp(
        payload.body, market=market, window=payload.window, require_data=require_data, context=ctx
    )


# -------------------------------------------------------------------------------------------- fetch


class _OasisHttpClient(HttpClient):
    """HttpClient whose throttle retries wait the 5 s the CAISO 429 page asks for (no Retry-After sent)."""

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is None:
            self.pacer.push_back(THROTTLE_RETRY_SECONDS)
            return THROTTLE_RETRY_SECONDS
        return super()._wait(state)


@register_source
class CAISO(Source):
    """CAISO OASIS LMPs: ``rt_lmp`` (market ``RT5`` default, or ``RT15``) and ``da_lmp`` (``DAH``).

    Args:
        dataset: ``rt_lmp`` (default) or ``da_lmp``; inferred from ``market`` when omitted.
        market: ``RT5`` (PRC_INTVL_LMP), ``RT15`` (PRC_RTPD_LMP) or ``DAH`` (PRC_LMP).
        nodes: node names (chunked by 10 per request), or ``"ALL"``/``"ALL_APNODES"`` for every node
            (then requests cover at most 1 hour, or 1 trade date for DAH).
        grp_type: ``ALL`` or ``ALL_APNODES`` instead of ``nodes``.
        require_data: raise :class:`NoData` on OASIS error 1000 instead of returning an empty table.
        min_interval: seconds between requests to the host, process-wide (OASIS asks for 5).
        sleep, clock: injectable for tests; injecting either gives this client its own pacer
            (otherwise the process-wide pacer of the host is used).

    In-zip errors: 1000 -> empty table (or :class:`NoData`); request errors (1001/1002/1004/1005/1011/
    1014/1016/1017/1020) -> :class:`RequestRejected` with the fix; server-side errors (1003, 1006-1010,
    1012/1013/1015) are retried by ``fetch`` like a 5xx (``max_attempts``, exponential ``backoff``)
    and, if they persist, yielded and raised by ``parse`` as :class:`SourceUnavailable` (transient).
    """

    name: ClassVar[str] = "caiso"
    datasets: ClassVar[tuple[str, ...]] = ("rt_lmp", "da_lmp")
    #: backfills chunk by hour: one request per hour (per 10 nodes) keeps payloads small. For da_lmp
    #: prefer ``window: 1d`` in the spec (one request per trade day).
    window_step: timedelta = timedelta(hours=1)
    #: RTD prices are on OASIS a few minutes after the interval ends.
    publication_lag: timedelta = timedelta(minutes=5)

    def __init__(
        self,
        dataset: str | None = None,
        *,
        settings: Settings | None = None,
        base_url: str | None = None,
        min_interval: float | None = None,
        max_attempts: int = 5,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] | None = None,
        market: str | None = None,
        nodes: Sequence[str] | str | None = None,
        grp_type: str | None = None,
        require_data: bool = False,
        timeout: float = 120.0,
        verify: bool = True,
    ) -> None:
        market = market.upper() if market else ("DAH" if dataset == "da_lmp" else "RT5")
        if market not in REPORTS:
            raise ConfigError(f"caiso: unknown market {market!r}; choose one of {sorted(REPORTS)}")
        report = REPORTS[market]
        if dataset is not None and dataset != report.dataset:
            raise ConfigError(f"caiso: market {market} produces {report.dataset}, not {dataset}")
        super().__init__(report.dataset, settings=settings)
        self.report = report
        self.market = market
        self.nodes, self.grp_type = _nodes_and_group(nodes, grp_type)
        self.require_data = require_data
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self._sleep = sleep
        interval = MIN_INTERVAL if min_interval is None else min_interval
        self._http = _OasisHttpClient(
            base_url or DEFAULT_BASE_URL,
            min_interval=interval,
            max_attempts=max_attempts,
            backoff=backoff,
            timeout=timeout,
            user_agent=self.settings.sources.user_agent,
            rate_limit_detector=is_throttle_page,
            sleep=sleep,
            clock=clock,
            verify=verify,
        )

    # --- planning ------------------------------------------------------------------------------

    def requests_for(self, window: Window) -> list[tuple[Window, list[tuple[str, str]]]]:
        """The (chunk window, query params) of every OASIS request covering ``window``, in order."""
        if self.grp_type:
            if self.report.group_window is None:
                chunks = list(_split_trade_dates(window))
            else:
                chunks = list(window.split(self.report.group_window))
            return [(chunk, self._params(chunk, ("grp_type", self.grp_type))) for chunk in chunks]
        groups = [
            self.nodes[i : i + MAX_NODES_PER_REQUEST]
            for i in range(0, len(self.nodes), MAX_NODES_PER_REQUEST)
        ]
        return [
            (chunk, self._params(chunk, ("node", ",".join(group))))
            for chunk in window.split(MAX_REQUEST_WINDOW, align=False)
            for group in groups
        ]

    def _params(self, chunk: Window, selection: tuple[str, str]) -> list[tuple[str, str]]:
        return [
            ("queryname", self.report.queryname),
            ("startdatetime", _oasis_time(chunk.start)),
            ("enddatetime", _oasis_time(chunk.end, ceil=True)),
            ("market_run_id", self.report.market_run_id),
            ("version", str(self.report.version)),
            selection,
            ("resultformat", "6"),
        ]

    # --- I/O -----------------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        """One payload per OASIS request; error zips are yielded too (``parse`` raises for them)."""
        for page, (chunk, params) in enumerate(self.requests_for(window)):
            resp, error = self._get(params)
            url, sent_params, headers = self._http.describe_request(resp)
            yield RawPayload(
                source=self.name,
                dataset=self.dataset.name,
                body=resp.content,
                url=url,
                params=sent_params,
                headers=headers,
                status=resp.status_code,
                content_type=resp.headers.get("content-type"),
                window=chunk,
                page=page,
                meta={
                    "market": self.market,
                    "queryname": self.report.queryname,
                    "version": self.report.version,
                    "market_run_id": self.report.market_run_id,
                    "content_disposition": resp.headers.get("content-disposition"),
                    "oasis_error": error[0] if error else None,
                },
            )

    def _get(self, params: list[tuple[str, str]]) -> tuple[httpx.Response, tuple[int, str] | None]:
        """GET ``SingleZip`` -> (response, in-zip error); transient in-zip errors are retried with backoff.

        They mean "CAISO failed, not your request" like a 5xx does, so they are retried the same way;
        the last failing response is returned (and archived) if every attempt fails.
        """
        for attempt in range(1, self.max_attempts + 1):
            resp = self._http.get("SingleZip", params)
            error = oasis_error_of(resp.content) if resp.status_code == 200 else None
            known = OASIS_ERRORS.get(error[0]) if error else None
            if error is None or known is None or known.kind != "transient" or attempt == self.max_attempts:
                return resp, error
            wait = min(self.backoff * 2 ** (attempt - 1), 60.0)
            log.warning(
                "CAISO OASIS error %s (%s); retrying in %.1fs (%d/%d)",
                *error,
                wait,
                attempt,
                self.max_attempts,
            )
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def parse(self, payload: RawPayload) -> pa.Table:
        return parse_payload(payload, require_data=self.require_data)

    def latest_window(self, now: datetime | None = None) -> Window:
        """Real-time: the last complete intervals (``poll_lookback`` deep, so late ones are re-read).

        Day-ahead: the next trade date once DAM results are out (after 14:00 Pacific), else today's.
        """
        now = as_utc(now) if now is not None else datetime.now(UTC)
        if self.report.group_window is None:
            local = now.astimezone(PACIFIC)
            day = local.date() + timedelta(days=1) if local.hour >= 14 else local.date()
            return trade_date_window(day)
        end = floor_time(now - self.publication_lag, self.report.interval)
        return Window(end - self.report.poll_lookback, end)

    def scope(self) -> dict[str, list[str]]:
        """Re-running a window replaces only CAISO rows of this market (and of these nodes, if named)."""
        scope = {"iso": ["CAISO"], "market": [self.market]}
        if not self.grp_type:
            scope["node"] = list(self.nodes)
        return scope

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        selection = self.grp_type or ",".join(self.nodes)
        return f"CAISO(dataset={self.dataset.name!r}, market={self.market!r}, nodes={selection!r})"


def _nodes_and_group(nodes: Sequence[str] | str | None, grp_type: str | None) -> tuple[list[str], str | None]:
    """Normalize ``nodes``/``grp_type`` (YAML-friendly: a list, a comma string, or ``"ALL"``)."""
    if isinstance(nodes, str):
        nodes = [n for n in (part.strip() for part in nodes.split(",")) if n]
    node_list = list(nodes) if nodes is not None else []
    if len(node_list) == 1 and node_list[0].upper() in GROUP_TYPES:
        grp_type, node_list = grp_type or node_list[0].upper(), []
    if grp_type is not None:
        grp_type = grp_type.upper()
        if grp_type not in GROUP_TYPES:
            raise ConfigError(f"caiso: grp_type must be one of {GROUP_TYPES}, not {grp_type!r}")
        if node_list:
            raise ConfigError("caiso: give either nodes or grp_type, not both")
        return [], grp_type
    return node_list or list(DEFAULT_NODES), None
