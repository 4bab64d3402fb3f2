"""CAISO OASIS, the I/O half: the :class:`CAISO` source plans ``SingleZip`` requests, paces them 5 s
apart, retries the throttle page and transient in-zip errors, and yields every final response.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx
import pyarrow as pa
from tenacity import RetryCallState

from hmco.config import Settings
from hmco.errors import ConfigError, RateLimited
from hmco.sources.base import RawPayload, Source
from hmco.sources.caiso.parser import (
    CATALOGUES,
    OASIS_ERRORS,
    REPORTS,
    oasis_error_of,
    oasis_report_time,
    parse_nodes_payloads,
    parse_payload,
)
from hmco.sources.http import HttpClient, HttpOptions, last_modified, response_payload
from hmco.sources.nodes import NODES_DATASET, NODES_KIND, catalogue_meta, new_fetch_id
from hmco.windows import Window, as_utc, floor_time

__all__ = [
    "CAISO",
    "DEFAULT_BASE_URL",
    "DEFAULT_NODES",
    "GROUP_TYPES",
    "MAX_NODES_PER_REQUEST",
    "MAX_REQUEST_WINDOW",
    "MIN_INTERVAL",
    "PACIFIC",
    "THROTTLE_MARKER",
    "THROTTLE_RETRY_SECONDS",
    "is_throttle_page",
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
PACIFIC = ZoneInfo("America/Los_Angeles")
DEFAULT_NODES = ("TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "TH_ZP26_GEN-APND")
GROUP_TYPES = ("ALL", "ALL_APNODES")


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


# -------------------------------------------------------------------------------------------- fetch


class _OasisHttpClient(HttpClient):
    """HttpClient whose throttle retries wait the 5 s the CAISO 429 page asks for (no Retry-After sent)."""

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is None:
            self.pacer.push_back(THROTTLE_RETRY_SECONDS)
            return THROTTLE_RETRY_SECONDS
        return super()._wait(state)


class CAISO(Source):
    """CAISO OASIS LMPs: ``rt_lmp`` (market ``RT5`` default, or ``RT15``) and ``da_lmp`` (``DAH``).

    Args:
        dataset: ``rt_lmp`` (default) or ``da_lmp``; inferred from ``market`` when omitted.
        market: ``RT5`` (PRC_INTVL_LMP), ``RT15`` (PRC_RTPD_LMP) or ``DAH`` (PRC_LMP).
        nodes: node names (chunked by 10 per request), or ``"ALL"``/``"ALL_APNODES"`` for every node
            (then requests cover at most 1 hour, or 1 trade date for DAH).
        grp_type: ``ALL`` or ``ALL_APNODES`` instead of ``nodes``.
        require_data: raise :class:`NoData` on OASIS error 1000 instead of returning an empty table.
        base_url: OASIS API root (mirror, proxy, test server); default ``https://oasis.caiso.com/oasisapi``.
        http: timeout, retries, pacing and TLS (:class:`~hmco.sources.http.HttpOptions` or a mapping);
            by default requests go 5 s apart, process-wide per host (OASIS's rule), with a 120 s timeout.

    In-zip errors: 1000 -> empty table (or :class:`NoData`); request errors (1001/1002/1004/1005/1011/
    1014/1016/1017/1020) -> :class:`RequestRejected` with the fix; server-side errors (1003, 1006-1010,
    1012/1013/1015) are retried by ``fetch`` like a 5xx (``http.max_attempts``, exponential ``http.backoff``)
    and, if they persist, yielded and raised by ``parse`` as :class:`SourceUnavailable` (transient).
    """

    name: ClassVar[str] = "caiso"
    #: CAISO's trade date (OPR_DT) is Pacific prevailing time.
    timezone: ClassVar[str] = "America/Los_Angeles"
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
        http: HttpOptions | Mapping[str, Any] | None = None,
        market: str | None = None,
        nodes: Sequence[str] | str | None = None,
        grp_type: str | None = None,
        require_data: bool = False,
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
        self.http_options = HttpOptions.coerce(http).with_defaults(timeout=120.0, min_interval=MIN_INTERVAL)
        self._http = self.http_options.client(
            base_url or DEFAULT_BASE_URL,
            user_agent=self.settings.sources.user_agent,
            rate_limit_detector=is_throttle_page,
            client_class=_OasisHttpClient,
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
        """One payload per OASIS request; error zips are yielded too (``parse`` raises for them).

        ``published_at`` is the report's own ``TimeDate`` (XML reports), else the response's
        ``Last-Modified``, else unset: OASIS CSV zips state no publication time.
        """
        for page, (chunk, params) in enumerate(self.requests_for(window)):
            resp, error = self._get(params)
            yield response_payload(
                self,
                resp,
                window=chunk,
                page=page,
                published_at=oasis_report_time(resp.content) or last_modified(resp.headers),
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
        for attempt in range(1, self.http_options.max_attempts + 1):
            resp = self._http.get("SingleZip", params)
            error = oasis_error_of(resp.content) if resp.status_code == 200 else None
            known = OASIS_ERRORS.get(error[0]) if error else None
            if (
                error is None
                or known is None
                or known.kind != "transient"
                or attempt == self.http_options.max_attempts
            ):
                return resp, error
            wait = min(self.http_options.backoff * 2 ** (attempt - 1), 60.0)
            log.warning(
                "CAISO OASIS error %s (%s); retrying in %.1fs (%d/%d)",
                *error,
                wait,
                attempt,
                self.http_options.max_attempts,
            )
            self.http_options.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def parse(self, payload: RawPayload) -> pa.Table:
        if payload.meta.get("kind") == NODES_KIND:  # an archived catalogue replayed: no price rows
            return self.dataset.schema.empty_table()
        return parse_payload(payload, require_data=self.require_data)

    # --- node catalogue ------------------------------------------------------------------------

    def fetch_nodes(self, now: datetime | None = None) -> Iterator[RawPayload]:
        """Yield the OASIS Atlas listings ``ATL_APNODE`` then ``ATL_PNODE`` (all types, today's trade date).

        Paced and retried like every OASIS request; the payloads' dataset segment is ``nodes``. An error
        zip is yielded too (so it is archived) and :meth:`parse_nodes` raises its typed error.
        """
        day = (as_utc(now) if now is not None else datetime.now(UTC)).astimezone(PACIFIC).date()
        window = trade_date_window(day)
        fetch_id = new_fetch_id()
        for part, spec in enumerate(CATALOGUES.values()):
            params = [
                ("queryname", spec.queryname),
                ("startdatetime", _oasis_time(window.start)),
                ("enddatetime", _oasis_time(window.end, ceil=True)),
                ("version", str(spec.version)),
                spec.selection,
                ("resultformat", "6"),
            ]
            resp, error = self._get(params)
            payload = response_payload(
                self,
                resp,
                window=window,
                page=part,
                published_at=oasis_report_time(resp.content) or last_modified(resp.headers),
                meta=catalogue_meta(
                    fetch_id,
                    part,
                    len(CATALOGUES),
                    part_name=spec.queryname,
                    oasis_error=error[0] if error else None,
                ),
            )
            yield replace(payload, dataset=NODES_DATASET)

    def parse_nodes(self, payloads: Sequence[RawPayload]) -> pa.Table:
        """The node catalogue (``location``, ``location_type``, ``oasis_type``, ``catalogue`` …). Pure."""
        return parse_nodes_payloads(payloads)

    def node_catalogue(self) -> pa.Table:
        """CAISO's APNodes and PNodes as a table, fetched now (two OASIS requests, 5 s apart).

        :func:`hmco.sources.nodes.nodes` does the same and archives (and reuses) the payloads.
        """
        return self.parse_nodes(list(self.fetch_nodes()))

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
