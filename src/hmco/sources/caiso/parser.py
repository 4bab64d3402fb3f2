"""CAISO OASIS, the pure half: report layouts, ``ERR_CODE`` meanings, and zip bytes → canonical table.

Nothing here does I/O (no HTTP library is imported). Times come only from the ``*_GMT`` columns, so
DST days need no special casing.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from hmco.errors import (
    NoData,
    PayloadError,
    RequestRejected,
    SchemaDriftError,
    SourceError,
    SourceUnavailable,
)
from hmco.payload import RawPayload, body_snippet
from hmco.schemas import TS, conform, get_dataset
from hmco.sources.nodes import CAISO_LOCATION_TYPES, NODES_KIND, first_per_location, nodes_table
from hmco.windows import Window, in_window

__all__ = [
    "CATALOGUES",
    "COMPONENTS",
    "MAX_GROUP_WINDOW_INTERVAL",
    "OASIS_ERRORS",
    "REPORTS",
    "OasisError",
    "OasisReport",
    "location_types",
    "oasis_error_of",
    "oasis_report_time",
    "parse_oasis_lmp",
    "parse_oasis_nodes",
    "parse_payload",
]

#: group (ALL / ALL_APNODES) requests of interval reports: at most one hour each.
MAX_GROUP_WINDOW_INTERVAL = timedelta(hours=1)

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
_TIME_DATE = re.compile(rb"<(?:\w+:)?TimeDate>(.*?)</", re.S)
_ZIP_MAGIC = b"PK"


def _oasis_xml(body: bytes) -> bytes | None:
    """The XML document of a zip that holds only XML (an OASIS error report), else ``None``."""
    if not body.startswith(_ZIP_MAGIC):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            names = zf.namelist()
            if not names or not all(n.lower().endswith(".xml") for n in names):
                return None
            return zf.read(names[0])
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError):
        return None


def oasis_error_of(body: bytes) -> tuple[int, str] | None:
    """``(ERR_CODE, ERR_DESC)`` if ``body`` is a zip holding only an OASIS error XML, else ``None``."""
    xml = _oasis_xml(body)
    code = None if xml is None else _ERR_CODE.search(xml)
    if xml is None or code is None:
        return None
    desc = _ERR_DESC.search(xml)
    return int(code.group(1)), (desc.group(1).decode("utf-8", "replace").strip() if desc else "")


def oasis_report_time(body: bytes) -> datetime | None:
    """When OASIS produced an XML report: its ``MessageHeader/TimeDate`` (``2026-09-14T17:10:55.764Z``).

    ``None`` for CSV zips (their members state no time, reference §5.4) and for a time without an
    offset (never guessed).
    """
    xml = _oasis_xml(body)
    found = None if xml is None else _TIME_DATE.search(xml)
    if found is None:
        return None
    try:
        when = datetime.fromisoformat(found.group(1).decode("ascii", "replace").strip())
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo is not None else None


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


def location_types(names: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Location type from CAISO naming, as gridstatus labels it (:data:`CAISO_LOCATION_TYPES`).

    ``TH_*`` Trading Hub, ``DLAP_*`` DLAP, any other ``*-APND`` AP Node, everything else Node.
    """
    labels = CAISO_LOCATION_TYPES
    return pc.if_else(
        pc.starts_with(names, "TH_"),
        labels["trading_hub"],
        pc.if_else(
            pc.starts_with(names, "DLAP_"),
            labels["dlap"],
            pc.if_else(pc.ends_with(names, "-APND"), labels["apnode"], labels["node"]),
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
            "node_type": location_types(nodes).take(node_index),
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


# ------------------------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class OasisCatalogue:
    """One OASIS Atlas node listing: how to ask for it and which columns name and type a node."""

    queryname: str
    version: int
    #: the "all of them" filter (``APnode_type=ALL``)
    selection: tuple[str, str]
    id_columns: tuple[str, ...]
    type_column: str


#: The Atlas listings :meth:`CAISO.fetch_nodes` reads, APNodes first (they win over a same-named PNode).
CATALOGUES: dict[str, OasisCatalogue] = {
    "ATL_APNODE": OasisCatalogue("ATL_APNODE", 1, ("APnode_type", "ALL"), ("APNODE_ID", "APNODE_NAME"), "APNODE_TYPE"),
    "ATL_PNODE": OasisCatalogue("ATL_PNODE", 1, ("Pnode_type", "ALL"), ("PNODE_ID", "PNODE_NAME"), "PNODE_TYPE"),
}  # fmt: skip


def parse_oasis_nodes(body: bytes, *, queryname: str, context: Mapping[str, Any] | None = None) -> pa.Table:
    """Parse an Atlas listing zip (``ATL_APNODE``/``ATL_PNODE``, ``resultformat=6``) into node rows.

    Columns: ``location`` (the ``*_ID`` column), ``location_type`` (:func:`location_types`), ``oasis_type``
    (the listing's own ``*_TYPE`` code, if it has one), ``catalogue`` (the queryname), then every other
    column of the listing, lower-cased, as strings. A node listed twice keeps its first row. Pure.

    Raises:
        NoData / RequestRejected / SourceUnavailable / SourceError: the zip holds an OASIS error XML
            (1000 "no data" included: a listing is never empty).
        PayloadError: not a zip (an HTML page), a corrupt zip, no CSV member, or no rows.
        SchemaDriftError: a member has none of the listing's node-id columns.
    """
    spec = CATALOGUES[queryname]
    ctx = dict(context or {})
    if not body.startswith(_ZIP_MAGIC):
        raise PayloadError(
            f"CAISO answered {queryname} with something that is not a zip: {body_snippet(body, 120)!r}", **ctx
        )
    error = oasis_error_of(body)
    if error is not None:
        _raise_for_oasis_error(*error, require_data=True, ctx=ctx)
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            members = [n for n in zf.namelist() if n.lower().endswith(".csv")]
            if not members:
                raise PayloadError(f"CAISO {queryname} zip holds no CSV member: {zf.namelist()}", **ctx)
            parts = [_read_catalogue_member(zf, name, spec, ctx) for name in members]
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise PayloadError(
            f"CAISO {queryname} zip is corrupt or truncated ({type(exc).__name__}: {exc})", **ctx
        ) from None
    except pa.ArrowInvalid as exc:
        raise PayloadError(f"CAISO {queryname} CSV cannot be parsed: {exc}", **ctx) from None
    table = first_per_location(pa.concat_tables(parts, promote_options="permissive"))
    try:
        return nodes_table({name: table.column(name) for name in table.column_names})
    except PayloadError as exc:
        raise PayloadError(f"CAISO {queryname}: {exc}", **ctx) from None


def _read_catalogue_member(
    zf: zipfile.ZipFile, name: str, spec: OasisCatalogue, ctx: Mapping[str, Any]
) -> pa.Table:
    with zf.open(name) as fh:
        header = fh.readline().decode("utf-8-sig", "replace")
    names = next(csv.reader([header.rstrip("\r\n")]), [])
    with zf.open(name) as fh:
        raw = pcsv.read_csv(
            fh,
            read_options=pcsv.ReadOptions(block_size=8 << 20),
            convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
        )
    actual = {_normalize(c): c for c in raw.column_names}
    id_col = next((actual[c] for c in spec.id_columns if c in actual), None)
    if id_col is None:
        raise SchemaDriftError(
            f"CAISO {spec.queryname} member {name!r} has none of the node-id columns {list(spec.id_columns)}; "
            f"it has {sorted(actual)}",
            **ctx,
        )
    location = pc.utf8_trim_whitespace(raw.column(id_col).cast(pa.string()))
    type_col = actual.get(spec.type_column)
    columns: dict[str, pa.ChunkedArray | pa.Array] = {
        "location": location,
        "location_type": location_types(location),
        "oasis_type": raw.column(type_col) if type_col else pa.nulls(raw.num_rows, pa.string()),
        "catalogue": pa.repeat(pa.scalar(spec.queryname), raw.num_rows),
    }
    for col in raw.column_names:
        if col not in (id_col, type_col):
            columns[col.strip().lower()] = raw.column(col)
    table = pa.table(columns)
    return table.filter(pc.and_(pc.is_valid(location), pc.not_equal(location, "")))


def parse_nodes_payloads(payloads: Sequence[RawPayload]) -> pa.Table:
    """The CAISO node catalogue of fetched (or archived) Atlas payloads, APNodes first. Pure."""
    tables = []
    for payload in payloads:
        if payload.meta.get("kind") != NODES_KIND:
            continue
        ctx = {"source": payload.source, "url": payload.url, "sha256": payload.sha256}
        if payload.status != 200:
            raise RequestRejected(
                f"CAISO OASIS answered HTTP {payload.status}: {body_snippet(payload.body)}", **ctx
            )
        queryname = str(payload.meta.get("part_name"))
        if queryname not in CATALOGUES:
            raise PayloadError(f"payload meta names unknown CAISO catalogue {queryname!r}", **ctx)
        tables.append(parse_oasis_nodes(payload.body, queryname=queryname, context=ctx))
    if not tables:
        raise PayloadError("no CAISO node-catalogue payload given", source="caiso")
    return first_per_location(pa.concat_tables(tables, promote_options="permissive")).sort_by("location")
