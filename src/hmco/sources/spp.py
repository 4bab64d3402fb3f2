"""SPP real-time (RTBM) 5-minute LMPs by settlement location from the Marketplace file browser.

One CSV per 5-minute interval (reference §7): the folder is the interval START's local date, the
file name the interval END in Central *prevailing* time, and on the fall-back day the second
occurrence of the repeated hour carries a ``d`` suffix (``...0105d.csv``). Names are computed from
UTC instants with ``zoneinfo`` (``fold=1`` is the second occurrence), so spring-forward days have
276 files and fall-back days 300. Daily files (``use_daily_files``) hold a whole local day.

Rows are timed by ``GMTIntervalEnd`` (interval END, GMT): ``ts = end − 5 min``; the local
``Interval`` column is ignored. Headers are matched after normalization (case-fold, strip, ``_`` →
space, spaces removed), so every published variant parses.

Missing files: SPP answers HTTP 404 with an empty body for an interval not (yet) published. Such a
file is yielded as a marker payload (status 404, empty body, ``meta["missing"] = True``) that parses
to zero rows, so the raw tier records exactly which files were absent; if *every* file of a window
is missing, :class:`~hmco.errors.NoData` is raised instead, naming the paths.

Location types are gridstatus's (Hub, Interface, Settlement Location). The node catalogue
(:meth:`SPP.fetch_nodes`) is the newest interval file (every settlement location, its pnode and BAA) plus
the hub and interface layers of SPP's price-contour map (ArcGIS ``MapServer/{1,2}/query?f=json``).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

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
    NODES_DATASET,
    NODES_KIND,
    SPP_LOCATION_TYPES,
    catalogue_meta,
    first_per_location,
    new_fetch_id,
    nodes_table,
    parts_of,
)
from hmco.windows import Window, floor_time

__all__ = [
    "CENTRAL",
    "INTERFACES",
    "SPP",
    "SPP_FILE_BROWSER_URL",
    "SPP_MAP_URL",
    "daily_file_path",
    "file_status_error",
    "interval_file_path",
    "interval_file_paths",
    "location_types",
    "parse_map_locations",
    "parse_payload",
    "parse_settlement_locations",
    "parse_spp_rtbm_lmp",
]

log = logging.getLogger("hmco.sources.spp")

SPP_FILE_BROWSER_URL: Final = "https://portal.spp.org/file-browser-api"
DOWNLOAD_PATH: Final = "download/rtbm-lmp-by-location"
#: SPP's price-contour map (ArcGIS MapServer): layer 1 lists the hubs, layer 2 the interfaces.
SPP_MAP_URL: Final = (
    "https://pricecontourmap.spp.org/arcgis/rest/services/MarketMaps/RTBM_FeatureData/MapServer"
)
#: The file of the newest RTBM interval: every settlement location with its pnode and BAA.
LATEST_INTERVAL_PATH: Final = "/RTBM-LMP-SL-latestInterval.csv"
#: name -> (map layer query, what its locations are)
MAP_LAYERS: Final = {"hubs": "1/query", "interfaces": "2/query"}
_MAP_QUERY: Final = {
    "f": "json",
    "where": "OBJECTID IS NOT NULL",
    "outFields": "*",
    "returnGeometry": "false",
}
CENTRAL: Final = ZoneInfo("America/Chicago")
INTERVAL: Final = timedelta(minutes=5)
#: No limit is published; stay polite on an interface SPP calls "neither supported nor encouraged".
DEFAULT_MIN_INTERVAL: Final = 0.5
#: Settlement locations that are interties (gridstatus ``LMP_HUBS_AND_INTERFACES``); hubs end in ``_HUB``.
INTERFACES: Final = frozenset(
    {
        "AECI", "ALTW", "AMRN", "BLKW", "CLEC", "DPC", "EDDY", "EES", "ERCOTE", "ERCOTN", "GRE", "LAM345",
        "MCWEST", "MDU", "MEC", "MISO", "NSP", "OTP", "RCEAST", "SCSE", "SGE", "SPA", "SPC",
    }
)  # fmt: skip
INTERFACES_SORTED: Final = tuple(sorted(INTERFACES))

#: normalized header -> role; normalization = casefold, ``_`` -> space, all whitespace removed.
_ROLES: Final = {
    "gmtintervalend": "end",
    "gmtinterval": "end",
    "gmtintervalending": "end",
    "settlementlocation": "node",
    "settlementlocationname": "node",
    "lmp": "lmp",
    "mlc": "mlc",
    "mcc": "mcc",
    "mec": "mec",
}
_REQUIRED: Final = ("end", "node", "lmp", "mlc", "mcc", "mec")
_TIME_FORMAT: Final = "%m/%d/%Y %H:%M:%S"


def _normalize(header: str) -> str:
    return "".join(header.casefold().replace("_", " ").split())


# --------------------------------------------------------------------------------------------- paths


def interval_file_path(interval_end: datetime, prefix: str = "RTBM-LMP-SL") -> str:
    """File-browser path of the interval ending at ``interval_end`` (aware).

    Folder = local date of the interval start; name = local end time, ``d`` for the repeated hour.
    """
    end_local = interval_end.astimezone(CENTRAL)
    start_local = (interval_end - INTERVAL).astimezone(CENTRAL)
    suffix = "d" if end_local.fold else ""
    return (
        f"/{start_local:%Y}/{start_local:%m}/By_Interval/{start_local:%d}/"
        f"{prefix}-{end_local:%Y%m%d%H%M}{suffix}.csv"
    )


def interval_file_paths(window: Window) -> list[tuple[datetime, str]]:
    """``(interval end UTC, path)`` of every interval starting in ``window`` (aligned to 5 minutes)."""
    first_end = floor_time(window.start, INTERVAL) + INTERVAL
    count = -(-(window.end - first_end + INTERVAL) // INTERVAL)
    ends = (first_end + i * INTERVAL for i in range(max(0, count)))
    return [(end, interval_file_path(end)) for end in ends if end - INTERVAL < window.end]


def daily_file_path(day: date, prefix: str = "RTBM-LMP-DAILY-SL") -> str:
    """File-browser path of the daily file of local (Central) market day ``day``."""
    return f"/{day:%Y}/{day:%m}/By_Day/{prefix}-{day:%Y%m%d}.csv"


def local_days(window: Window) -> list[date]:
    """Central-time dates of the intervals starting in ``window``."""
    first = window.start.astimezone(CENTRAL).date()
    last = (window.end - timedelta(microseconds=1)).astimezone(CENTRAL).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# --------------------------------------------------------------------------------------------- parse


def location_types(
    node: pa.Array | pa.ChunkedArray,
    hubs: Sequence[str] = (),
    interfaces: Sequence[str] = INTERFACES_SORTED,
) -> pa.Array | pa.ChunkedArray:
    """Location type of settlement locations (:data:`~hmco.sources.nodes.SPP_LOCATION_TYPES`).

    Hub: in ``hubs`` or named ``*_HUB``; Interface: in ``interfaces`` (default gridstatus's list);
    else Settlement Location.
    """
    labels = SPP_LOCATION_TYPES
    is_hub = pc.ends_with(node, "_HUB")
    if hubs:
        is_hub = pc.or_(is_hub, pc.is_in(node, value_set=pa.array(list(hubs), pa.string())))
    is_interface = pc.is_in(node, value_set=pa.array(list(interfaces), pa.string()))
    return pc.if_else(
        is_hub,
        labels["hub"],
        pc.if_else(is_interface, labels["interface"], labels["settlement_location"]),
    )


def parse_spp_rtbm_lmp(
    body: bytes,
    *,
    window: Window | None = None,
    nodes: Sequence[str] | None = None,
    where: str = "",
) -> pa.Table:
    """Parse an RTBM-LMP-SL interval or daily CSV into canonical ``rt_lmp`` rows.

    Raises:
        PayloadError: HTML (the portal's React shell answers 200 for unknown paths) or unreadable CSV.
        SchemaDriftError: a required column (GMT interval end, settlement location, LMP, MLC, MCC, MEC)
            is missing.
    """
    head, names, roles = _sniff_csv(
        body, _ROLES, what="CSV", hint="the path is probably wrong or not published", where=where
    )
    missing = [r for r in _REQUIRED if r not in roles]
    if missing:
        raise SchemaDriftError(
            f"SPP RTBM LMP header {names} lacks {missing}; update hmco.sources.spp if SPP changed the "
            f"layout; "
            f"{where}"
        )
    raw = _read_columns(head, roles, where)
    if raw.num_rows == 0:
        return conform(get_dataset("rt_lmp").schema.empty_table(), "rt_lmp")
    end = raw.column("end")
    ts = pc.subtract(end, pa.scalar(INTERVAL, pa.duration("us")))
    node = raw.column("node")
    node_type = location_types(node)
    n = raw.num_rows
    table = pa.table(
        {
            "ts": ts,
            "interval_end": end,
            "iso": pa.repeat(pa.scalar("SPP"), n),
            "market": pa.repeat(pa.scalar("RT5"), n),
            "node": node,
            "node_type": node_type,
            "lmp": raw.column("lmp"),
            "energy": raw.column("mec"),
            "congestion": raw.column("mcc"),
            "loss": raw.column("mlc"),
        }
    )
    mask = None if window is None else in_window(ts, window)
    if nodes:
        in_nodes = pc.is_in(node, value_set=pa.array(list(nodes), pa.string()))
        mask = in_nodes if mask is None else pc.and_(mask, in_nodes)
    if mask is not None:
        table = table.filter(mask)
    return conform(table, "rt_lmp")


def _sniff_csv(
    body: bytes, mapping: Mapping[str, str], *, what: str, where: str, hint: str = ""
) -> tuple[memoryview, list[str], dict[str, str]]:
    """The CSV after any leading blank lines, its header names, and ``role → header`` by normalized name.

    Raises:
        PayloadError: an empty body, or an HTML page (the portal's React shell answers 200 for unknown paths).
    """
    head = memoryview(body)[_leading_blank(body) :]
    if not head:
        raise PayloadError(f"SPP returned an empty file instead of {what}; {where}")
    if head[:1] == b"<":
        raise PayloadError(
            f"not data: SPP returned an HTML page (the portal's React shell) instead of {what}"
            f"{'; ' + hint if hint else ''}; {where}: {bytes(head[:80])!r}"
        )
    newline = bytes(head[:4096]).find(b"\n")
    header = bytes(head[: newline if newline >= 0 else 4096]).decode("utf-8", "replace").rstrip("\r")
    names = next(csv.reader([header]), [])
    roles: dict[str, str] = {}
    for name in names:
        role = mapping.get(_normalize(name))
        if role and role not in roles:
            roles[role] = name
    return head, names, roles


def _leading_blank(body: bytes) -> int:
    """Length of a UTF-8 BOM and blank space before the header (without copying the body)."""
    prefix = body[:64]
    return len(prefix) - len(prefix.lstrip(b"\xef\xbb\xbf \t\r\n"))


def _read_columns(body: bytes | memoryview, roles: dict[str, str], where: str) -> pa.Table:
    """Read only the needed columns, typed by Arrow's CSV reader; fall back to trimming strings."""
    wanted = list(roles.values())
    numeric = {roles[r]: pa.float64() for r in ("lmp", "mlc", "mcc", "mec")}
    typed = pcsv.ConvertOptions(
        column_types={roles["end"]: pa.timestamp("us"), roles["node"]: pa.string(), **numeric},
        timestamp_parsers=[_TIME_FORMAT],
        include_columns=wanted,
    )
    read = pcsv.ReadOptions(block_size=1 << 22)
    try:
        raw = pcsv.read_csv(pa.BufferReader(body), read_options=read, convert_options=typed)
    except pa.ArrowInvalid:
        raw = _read_as_text(body, roles, read, where)
    by_role = {role: raw.column(name) for role, name in roles.items() if role in _REQUIRED}
    by_role["end"] = by_role["end"].cast(TS)  # GMT wall time -> UTC instant
    by_role["node"] = pc.utf8_trim_whitespace(by_role["node"])
    return pa.table({r: by_role[r] for r in _REQUIRED})


def _read_as_text(
    body: bytes | memoryview, roles: dict[str, str], read: pcsv.ReadOptions, where: str
) -> pa.Table:
    """Slow path for padded cells (``" 19.25"``): read strings, trim, then cast."""
    wanted = list(roles.values())
    try:
        text = pcsv.read_csv(
            pa.BufferReader(body),
            read_options=read,
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(wanted, pa.string()), include_columns=wanted
            ),
        )
    except pa.ArrowInvalid as exc:
        raise PayloadError(f"SPP file is not readable CSV: {exc}; {where}") from None
    cols: dict[str, pa.ChunkedArray] = {}
    try:
        for role, name in roles.items():
            col = pc.utf8_trim_whitespace(text.column(name))
            if role == "end":
                col = pc.strptime(col, format=_TIME_FORMAT, unit="us")
            elif role in ("lmp", "mlc", "mcc", "mec"):
                col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col).cast(pa.float64())
            cols[name] = col
    except pa.ArrowInvalid as exc:
        raise PayloadError(f"SPP file has a malformed value: {exc}; {where}") from None
    return pa.table(cols)


# --------------------------------------------------------------------------------------------- client


class SPP(Source):
    """SPP RTBM 5-minute LMPs by settlement location (dataset ``rt_lmp``, market ``RT5``).

    Args:
        use_daily_files: read one ``RTBM-LMP-DAILY-SL`` file per local day (published ≈ D+5) instead
            of one file per interval; best for backfills.
        nodes: keep only these settlement locations (all when empty).
        base_url: file-browser API root (test server, proxy); default
            ``https://portal.spp.org/file-browser-api``.
        map_url: price-contour map root the hub and interface lists come from (:meth:`fetch_nodes`);
            default ``https://pricecontourmap.spp.org/arcgis/rest/services/MarketMaps/RTBM_FeatureData/MapServer``.
        http: timeout, retries and pacing (:class:`~hmco.sources.http.HttpOptions` or a mapping);
            ``min_interval`` paces the file downloads (default 0.5 s).

    ``published_at`` of a payload is the response's ``Last-Modified`` when SPP sends one (the CSV
    files carry no publication time).
    """

    name: ClassVar[str] = "spp"
    #: SPP's market day is Central prevailing time.
    timezone: ClassVar[str] = "America/Chicago"
    datasets: ClassVar[tuple[str, ...]] = ("rt_lmp",)
    #: a backfill commits a day at a time (288 interval files, or one daily file).
    window_step: timedelta = timedelta(days=1)
    #: an interval file usually appears a couple of minutes after the interval ends.
    publication_lag: timedelta = timedelta(minutes=3)

    def __init__(
        self,
        dataset: str | None = None,
        *,
        settings: Settings | None = None,
        base_url: str | None = None,
        http: HttpOptions | Mapping[str, Any] | None = None,
        use_daily_files: bool = False,
        nodes: Sequence[str] | str | None = None,
        map_url: str | None = None,
    ) -> None:
        super().__init__(dataset, settings=settings)
        self.use_daily_files = use_daily_files
        self.nodes = as_list(nodes)
        self.http_options = HttpOptions.coerce(http).with_defaults(
            timeout=60.0, min_interval=DEFAULT_MIN_INTERVAL
        )
        # the host is not paced: the file tree is, by its own sub-pacer
        self._http = self.http_options.client(
            base_url or SPP_FILE_BROWSER_URL, user_agent=self.settings.sources.user_agent, host_interval=0.0
        )
        self._pacer = self._http.sub_pacer("spp-files", self.http_options.min_interval or 0.0)
        self._map = self.http_options.client(
            map_url or SPP_MAP_URL, user_agent=self.settings.sources.user_agent
        )

    def latest_window(self, now: datetime | None = None) -> Window:
        """The newest 5-minute interval whose file should be published by ``now``."""
        end = floor_time((now or datetime.now(UTC)) - self.publication_lag, INTERVAL)
        return Window(end - INTERVAL, end)

    def paths(self, window: Window) -> list[str]:
        """File-browser paths ``fetch`` requests for ``window``, in order."""
        if self.use_daily_files:
            return [daily_file_path(day) for day in local_days(window)]
        return [path for _, path in interval_file_paths(window)]

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        """Yield one payload per file; missing files as 404 markers, or NoData if all are missing."""
        pending: list[RawPayload] = []
        found = False
        for page, path in enumerate(self.paths(window)):
            payload = self._fetch_file(path, window, page)
            error = file_status_error(payload)
            if error is not None:  # yielded first, so the error answer reaches the raw archive
                yield payload
                raise error
            if payload.meta.get("missing"):
                log.warning("SPP file not published (HTTP 404): %s", path)
                if not found:
                    pending.append(payload)
                    continue
            elif not found:
                found = True
                yield from pending
                pending.clear()
            yield payload
        if not found:
            missing = [str(p.meta["path"]) for p in pending]
            hint = (
                " (daily files appear about D+5; use interval files for recent days)"
                if self.use_daily_files
                else ""
            )
            raise NoData(
                f"SPP has no RTBM LMP file for window {window}: {len(missing)} path(s) answered 404{hint}",
                source=self.name,
                dataset=self.dataset.name,
                paths=missing[:6] + (["…"] if len(missing) > 6 else []),
            )

    def _fetch_file(self, path: str, window: Window, page: int) -> RawPayload:
        self._pacer.wait()
        resp = self._http.get(DOWNLOAD_PATH, params={"path": path})
        missing = resp.status_code == 404
        return response_payload(
            self,
            resp,
            window=window,
            page=page,
            meta={"path": path, "missing": missing, "daily": self.use_daily_files, "nodes": self.nodes},
            body=b"" if missing else resp.content,
            published_at=None if missing else last_modified(resp.headers),
        )

    def parse(self, payload: RawPayload) -> pa.Table:
        return parse_payload(payload)

    # -- node catalogue ------------------------------------------------------------------------

    def fetch_nodes(self) -> Iterator[RawPayload]:
        """Yield SPP's settlement-location catalogue: the latest RTBM interval file, then the hub and
        interface layers of the price-contour map (dataset segment ``nodes``).

        Every answer is yielded (so it is archived); :meth:`parse_nodes` raises for a bad one.
        """
        fetch_id = new_fetch_id()
        window = self.latest_window()
        self._pacer.wait()
        resp = self._http.get(DOWNLOAD_PATH, params={"path": LATEST_INTERVAL_PATH})
        parts = 1 + len(MAP_LAYERS)
        meta = catalogue_meta(fetch_id, 0, parts, part_name="settlement_locations", path=LATEST_INTERVAL_PATH)
        first = response_payload(
            self, resp, window=window, page=0, meta=meta, published_at=last_modified(resp.headers)
        )
        yield replace(first, dataset=NODES_DATASET)
        for part, (name, layer) in enumerate(MAP_LAYERS.items(), start=1):
            resp = self._map.get(layer, params=_MAP_QUERY)
            meta = catalogue_meta(fetch_id, part, parts, part_name=name)
            payload = response_payload(self, resp, window=window, page=part, meta=meta)
            yield replace(payload, dataset=NODES_DATASET)

    def parse_nodes(self, payloads: Sequence[RawPayload]) -> pa.Table:
        """The catalogue (``location``, ``location_type``, ``pnode``, ``baa``) of :meth:`fetch_nodes`. Pure."""
        return parse_nodes_payloads(payloads)

    def node_catalogue(self) -> pa.Table:
        """SPP's settlement locations, hubs and interfaces as a table, fetched now (three requests).

        :func:`hmco.sources.nodes.nodes` does the same and archives (and reuses) the payloads.
        """
        return self.parse_nodes(list(self.fetch_nodes()))

    def close(self) -> None:
        self._http.close()
        self._map.close()


def file_status_error(payload: RawPayload) -> SourceError | None:
    """The typed error of a download that is neither a file (200) nor a missing-file marker (404). Pure."""
    if payload.status in (200, 404):
        return None
    if payload.status in (401, 403):
        return AuthenticationError(
            f"SPP refused the anonymous download (HTTP {payload.status}); an IP block or a changed portal",
            source="spp",
            url=payload.url,
            sha256=payload.sha256,
        )
    return RequestRejected(
        f"SPP answered HTTP {payload.status} for {payload.meta.get('path')}: {body_snippet(payload.body)!r}",
        source="spp",
        url=payload.url,
        sha256=payload.sha256,
    )


def parse_payload(payload: RawPayload) -> pa.Table:
    """Parse an archived SPP payload (pure); a missing-file marker or a catalogue payload gives zero rows."""
    if payload.meta.get("kind") == NODES_KIND:
        return conform(get_dataset("rt_lmp").schema.empty_table(), "rt_lmp")
    error = file_status_error(payload)
    if error is not None:
        raise error
    if payload.meta.get("missing") or payload.status == 404:
        return conform(get_dataset("rt_lmp").schema.empty_table(), "rt_lmp")
    where = f"source=spp, dataset={payload.dataset}, path={payload.meta.get('path')}, sha256={payload.sha256}"
    if (payload.content_type or "").startswith("text/html"):
        raise PayloadError(
            f"not data: SPP returned text/html (the portal's React shell) instead of CSV; {where}"
        )
    return parse_spp_rtbm_lmp(
        payload.body, window=payload.window, nodes=payload.meta.get("nodes"), where=where
    )


# ---------------------------------------------------------------------------------------- catalogue

_LOCATION_ROLES: Final = {
    "settlementlocation": "location",
    "settlementlocationname": "location",
    "pnode": "pnode",
    "pnodename": "pnode",
    "baa": "baa",
}


def parse_settlement_locations(body: bytes, *, where: str = "") -> pa.Table:
    """Settlement locations of an RTBM-LMP-SL file: ``location``, ``pnode``, ``baa`` (null if absent).

    Raises:
        PayloadError: empty, HTML (the portal's React shell) or unreadable CSV.
        SchemaDriftError: no settlement-location column.
    """
    head, names, roles = _sniff_csv(body, _LOCATION_ROLES, what="the settlement-location CSV", where=where)
    if "location" not in roles:
        raise SchemaDriftError(
            f"SPP settlement-location file header {names} has no Settlement Location; {where}"
        )
    try:
        raw = pcsv.read_csv(
            pa.BufferReader(head),
            convert_options=pcsv.ConvertOptions(
                include_columns=list(roles.values()), column_types=dict.fromkeys(roles.values(), pa.string())
            ),
        )
    except pa.ArrowInvalid as exc:
        raise PayloadError(f"SPP settlement-location file is not readable CSV: {exc}; {where}") from None
    n = raw.num_rows
    cols = {
        role: pc.utf8_trim_whitespace(raw.column(roles[role])) if role in roles else pa.nulls(n, pa.string())
        for role in ("location", "pnode", "baa")
    }
    return pa.table(cols).filter(pc.not_equal(cols["location"], ""))


def parse_map_locations(body: bytes, *, where: str = "") -> list[str]:
    """The ``SETTLEMENT_LOCATION`` of every feature of an ArcGIS ``query?f=json`` answer.

    Raises:
        PayloadError: not JSON (an HTML page), an ArcGIS ``{"error": …}`` document, or no ``features``.
        SchemaDriftError: features without a ``SETTLEMENT_LOCATION`` attribute.
    """
    try:
        doc = json.loads(body)
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError
        raise PayloadError(
            f"SPP price-map answer is not JSON ({exc}); {where}: {body_snippet(body, 120)!r}"
        ) from None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
        raise PayloadError(
            f"SPP price map answered ArcGIS error {err.get('code')}: {err.get('message')} "
            f"{err.get('details') or ''}; {where}"
        )
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list):
        raise PayloadError(
            f"SPP price-map answer has no 'features' list; {where}: {body_snippet(body, 120)!r}"
        )
    found = []
    for feature in features:
        attrs = feature.get("attributes") if isinstance(feature, dict) else None
        value = None
        if isinstance(attrs, dict):
            value = next((v for k, v in attrs.items() if k.casefold() == "settlement_location"), None)
        if not isinstance(value, str):
            raise SchemaDriftError(
                f"SPP price-map feature without a SETTLEMENT_LOCATION attribute: {str(feature)[:160]}; {where}"
            )
        found.append(value.strip())
    return found


def parse_nodes_payloads(payloads: Sequence[RawPayload]) -> pa.Table:
    """SPP's catalogue from its three payloads (settlement locations, hubs, interfaces). Pure."""
    parts = parts_of(payloads, ("settlement_locations", *MAP_LAYERS))
    for payload in parts.values():
        if payload.status != 200:
            raise RequestRejected(
                f"SPP answered HTTP {payload.status} for its {payload.meta.get('part_name')} list: "
                f"{body_snippet(payload.body)!r}",
                source="spp",
                url=payload.url,
                sha256=payload.sha256,
            )

    def where(name: str) -> str:
        return f"source=spp, node catalogue part {name}, url={parts[name].url}, sha256={parts[name].sha256}"

    located = parse_settlement_locations(
        parts["settlement_locations"].body, where=where("settlement_locations")
    )
    hubs = parse_map_locations(parts["hubs"].body, where=where("hubs"))
    interfaces = parse_map_locations(parts["interfaces"].body, where=where("interfaces"))
    known = set(located.column("location").to_pylist())
    extra = sorted({*hubs, *interfaces} - known)
    table = pa.concat_tables(
        [
            located,
            pa.table(
                {
                    "location": pa.array(extra, pa.string()),
                    "pnode": pa.nulls(len(extra), pa.string()),
                    "baa": pa.nulls(len(extra), pa.string()),
                }
            ),
        ]
    )
    table = first_per_location(table)
    kind = location_types(table.column("location"), hubs=hubs, interfaces=interfaces)
    try:
        return nodes_table(
            {
                "location": table.column("location"),
                "location_type": kind,
                "pnode": table.column("pnode"),
                "baa": table.column("baa"),
            }
        )
    except PayloadError as exc:
        raise PayloadError(f"SPP {exc}; {where('settlement_locations')}") from None
