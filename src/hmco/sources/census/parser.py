"""US Census Data API, the pure half: error answers → typed errors, array-of-arrays → long-form rows.

Nothing here does I/O (no HTTP library is imported).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hmco.errors import AuthenticationError, PayloadError, RequestRejected, SchemaDriftError, SourceError
from hmco.payload import body_snippet
from hmco.schemas import TS, conform, get_dataset

__all__ = [
    "ACS",
    "ACS_SENTINELS",
    "EITS_VARIABLES",
    "GEOGRAPHY_NAMES",
    "TIMESERIES",
    "check_census_response",
    "parse_acs",
    "parse_timeseries",
    "period_starts",
    "vintage_from_url",
]

ACS: Final = "census_acs"
TIMESERIES: Final = "census_timeseries"
#: EITS columns, as the reference lists them.
EITS_VARIABLES: Final = (
    "cell_value",
    "data_type_code",
    "time_slot_id",
    "error_data",
    "category_code",
    "seasonally_adj",
)
#: ACS annotation values: an estimate/MOE cell carrying one of these is a footnote, not a number.
ACS_SENTINELS: Final = (
    -999999999.0,
    -888888888.0,
    -666666666.0,
    -555555555.0,
    -333333333.0,
    -222222222.0,
)
#: Geography column names, used only when a payload's meta does not say which columns are geography.
GEOGRAPHY_NAMES: Final = frozenset(
    {
        "us",
        "region",
        "division",
        "state",
        "county",
        "county subdivision",
        "tract",
        "block group",
        "place",
        "zip code tabulation area",
        "metropolitan statistical area/micropolitan statistical area",
        "combined statistical area",
        "congressional district",
        "state legislative district (upper chamber)",
        "state legislative district (lower chamber)",
        "school district (unified)",
        "public use microdata area",
        "american indian area/alaska native area/hawaiian home land",
    }
)
_NUMERIC = r"^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_UNKNOWN_VARIABLE = re.compile(r"unknown (?:predicate )?variable\s*'([^']*)'", re.IGNORECASE)
_SENTINELS: Final = pa.array(ACS_SENTINELS, pa.float64())
_QUARTER_MONTH: Final = pa.array(["01", "04", "07", "10"])

# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------


def check_census_response(
    status: int,
    content_type: str | None,
    body: bytes,
    *,
    url: str = "",
    dataset: str = ACS,
    location: str | None = None,
) -> None:
    """Raise the typed error a Census answer stands for; return quietly for JSON 200s and 204.

    The Content-Type is checked before any JSON decoding: an invalid key is an HTML page on HTTP 200
    (or, per the reference, a redirect to ``invalid_key.html``).
    """
    where = {"source": "census", "dataset": dataset, "url": url, "status": status}
    text = body.decode("utf-8", "replace").strip()
    ctype = (content_type or "").lower()
    if status == 204:
        return
    if 300 <= status < 400:
        if "invalid_key" in (location or ""):
            raise AuthenticationError(_INVALID_KEY, **where)
        raise SourceError(f"Census API redirected to {location!r}; check base_url", **where)
    if status == 200:
        if "html" in ctype or text[:1] == "<":
            if re.search(r"(?i)invalid\s+key", text):
                raise AuthenticationError(_INVALID_KEY, **where)
            raise PayloadError(
                f"Census API answered HTTP 200 with an HTML page, not JSON: {body_snippet(text)}", **where
            )
        return
    message = body_snippet(text)
    if status in (401, 403) or re.search(r"(?i)invalid\s+key", text):
        raise AuthenticationError(_INVALID_KEY, **where)
    if status == 400 and (match := _UNKNOWN_VARIABLE.search(text)):
        raise RequestRejected(
            f"Census API does not know variable {match.group(1)!r} ({message}); check the variable list "
            "for this vintage at https://api.census.gov/data/<vintage>/<dataset>/variables.html",
            variable=match.group(1),
            **where,
        )
    if status in (400, 404):
        raise RequestRejected(
            f"Census API rejected the request: {message} (check vintage, dataset path and geography)",
            **where,
        )
    raise SourceError(f"Census API answered HTTP {status}: {message}", **where)


_INVALID_KEY = (
    "Census API rejected the key (Invalid Key page): check HMCO_SOURCES__CENSUS_KEY, or activate the "
    "key from the e-mail Census sent; without a key up to 500 queries/IP/day are allowed"
)


# --------------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------------


def _decode(body: bytes, *, url: str, dataset: str) -> tuple[list[str], list[list[Any]]] | None:
    """Header and data rows of an array-of-arrays body; ``None`` when there is nothing."""
    if not body.strip():
        return None
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise PayloadError(
            f"Census API body is not valid JSON (truncated download?): {exc}",
            source="census",
            dataset=dataset,
            url=url,
            size=len(body),
        ) from None
    if not isinstance(doc, list) or not doc or not isinstance(doc[0], list):
        raise SchemaDriftError(
            f"Census API body is not an array of arrays with a header row: {body_snippet(str(doc))}",
            source="census",
            dataset=dataset,
            url=url,
        )
    header = [str(h) for h in doc[0]]
    return header, doc[1:]


def _cells(rows: list[list[Any]], width: int, *, url: str, dataset: str) -> pa.Array:
    """All cells, row-major, as one string array (one C-level conversion; numbers become text)."""
    try:
        lists = pa.array(rows, type=pa.list_(pa.string()))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if not all(isinstance(row, list) for row in rows):
            raise SchemaDriftError(
                "Census API body has a data row that is not an array",
                source="census",
                dataset=dataset,
                url=url,
            ) from None
        lists = pa.array(
            [[None if v is None else str(v) for v in row] for row in rows], type=pa.list_(pa.string())
        )
    lengths = pc.list_value_length(lists)
    if len(lists) and (pc.min(lengths).as_py() != width or pc.max(lengths).as_py() != width):
        raise SchemaDriftError(
            f"Census API rows do not all have the header's {width} cells",
            source="census",
            dataset=dataset,
            url=url,
        )
    return lists.flatten()


def _first_positions(header: list[str]) -> dict[str, int]:
    """Column name → first position (predicate columns repeat in the header; the first one wins)."""
    positions: dict[str, int] = {}
    for i, name in enumerate(header):
        positions.setdefault(name, i)
    return positions


def _geo_columns(
    header: list[str], requested: Sequence[str] | None, geo_level: str | None, predicates: Sequence[str] = ()
) -> list[str]:
    """Geography columns in hierarchy order: what was not asked for with ``get`` (or known geo names)."""
    names = list(dict.fromkeys(header))
    if requested is not None:
        skip = {v.lower() for v in (*requested, *predicates, *_PREDICATE_ONLY, "time")}
        return [n for n in names if n.lower() not in skip]
    geos = [n for n in names if n.lower() in GEOGRAPHY_NAMES]
    if geo_level and geo_level not in geos and geo_level in names:
        geos.append(geo_level)
    return geos


# predicates that are never geography (timeseries filters that can show up without being in ``get``)
_PREDICATE_ONLY: Final = frozenset(EITS_VARIABLES) | {"for", "in", "ucgid", "geo_id"}


def _values(text: pa.Array, *, sentinels: bool) -> tuple[pa.Array, pa.Array]:
    """(value float or null, value_text) from cell strings: non-numeric and sentinel cells keep text."""
    numeric = pc.fill_null(pc.match_substring_regex(text, _NUMERIC), False)
    value = pc.if_else(numeric, text, pa.scalar(None, pa.string())).cast(pa.float64())
    keep_text = pc.and_(pc.invert(numeric), pc.is_valid(text))
    if sentinels:
        flagged = pc.fill_null(pc.is_in(value, value_set=_SENTINELS), False)
        value = pc.if_else(flagged, pa.scalar(None, pa.float64()), value)
        keep_text = pc.or_(keep_text, flagged)
    value_text = pc.if_else(keep_text, text, pa.scalar(None, pa.string()))
    return value, value_text


def _join_geo(cells: pa.Array, rows: np.ndarray, width: int, positions: list[int]) -> pa.Array:
    if not positions:
        return pa.array([""] * len(rows), pa.string())
    parts = [pc.fill_null(cells.take(pa.array(rows * width + p)), "") for p in positions]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "")


# --------------------------------------------------------------------------------------------------
# parsers
# --------------------------------------------------------------------------------------------------


def parse_acs(
    body: bytes,
    *,
    vintage: int,
    survey: str = "acs/acs5",
    requested: Sequence[str] | None = None,
    geo_level: str | None = None,
    predicates: Sequence[str] = (),
    status: int = 200,
    url: str = "",
) -> pa.Table:
    """ACS array-of-arrays → ``census_acs`` long form: one row per geography and variable.

    ``requested`` is the ``get`` list (tells variables from geography columns); ``NAME`` becomes the
    ``name`` column; ``geo_id`` joins the geography codes (state 06 + county 037 → ``06037``).
    Annotation sentinels (-666666666 …) become null values with ``value_text`` kept.
    """
    decoded = None if status == 204 else _decode(body, url=url, dataset=ACS)
    if decoded is None or not decoded[1]:
        return get_dataset(ACS).schema.empty_table()
    header, data = decoded
    width = len(header)
    cells = _cells(data, width, url=url, dataset=ACS)
    positions = _first_positions(header)
    geo_names = _geo_columns(header, requested, geo_level, predicates)
    if not geo_names:
        raise SchemaDriftError(
            f"Census ACS header {header} has no geography column", source="census", dataset=ACS, url=url
        )
    skip = {*geo_names, *predicates, "NAME"}
    variables = [n for n in positions if n not in skip]
    n_rows, n_vars = len(data), len(variables)
    rows = np.arange(n_rows, dtype=np.int64)
    var_pos = np.array([positions[v] for v in variables], dtype=np.int64)
    take = (rows[:, None] * width + var_pos[None, :]).ravel()
    per_row = np.repeat(rows, n_vars)
    text = cells.take(pa.array(take))
    value, value_text = _values(text, sentinels=True)
    geo_id = _join_geo(cells, rows, width, [positions[g] for g in geo_names]).take(pa.array(per_row))
    name = (
        cells.take(pa.array(per_row * width + positions["NAME"]))
        if "NAME" in positions
        else pa.nulls(len(take), pa.string())
    )
    level = geo_level or geo_names[-1]
    n = len(take)
    table = pa.table(
        {
            "ts": _repeat(datetime(vintage, 1, 1, tzinfo=UTC), n, TS),
            "dataset": _repeat(survey, n),
            "vintage": _repeat(vintage, n, pa.int32()),
            "geo_level": _repeat(level, n),
            "geo_id": geo_id,
            "name": name,
            "variable": pa.array(variables, pa.string()).take(pa.array(np.tile(np.arange(n_vars), n_rows))),
            "value": value,
            "value_text": value_text,
        }
    )
    return conform(table, ACS)


def _repeat(value: Any, n: int, typ: pa.DataType | None = None) -> pa.Array:
    return pa.repeat(pa.scalar(value, typ), n)


def parse_timeseries(
    body: bytes,
    *,
    program: str,
    geo_level: str | None = "us",
    status: int = 200,
    url: str = "",
) -> pa.Table:
    """Census timeseries (e.g. EITS MARTS) → ``census_timeseries`` rows.

    ``ts`` is the start of the period in ``time`` (``YYYY``, ``YYYY-MM`` or ``YYYY-Qn``); suppressed
    cells such as ``(S)`` get a null ``value`` and keep their text in ``value_text``.
    """
    decoded = None if status == 204 else _decode(body, url=url, dataset=TIMESERIES)
    if decoded is None or not decoded[1]:
        return get_dataset(TIMESERIES).schema.empty_table()
    header, data = decoded
    width = len(header)
    cells = _cells(data, width, url=url, dataset=TIMESERIES)
    positions = _first_positions(header)
    missing = [
        c
        for c in ("cell_value", "category_code", "data_type_code", "seasonally_adj", "time")
        if c not in positions
    ]
    if missing:
        raise SchemaDriftError(
            f"Census timeseries {program} lacks column(s) {missing}; got {header}",
            source="census",
            dataset=TIMESERIES,
            url=url,
        )
    rows = np.arange(len(data), dtype=np.int64)

    def column(name: str) -> pa.Array:
        if name not in positions:
            return pa.nulls(len(rows), pa.string())
        return cells.take(pa.array(rows * width + positions[name]))

    geo_names = [g for g in dict.fromkeys(header) if g.lower() in GEOGRAPHY_NAMES]
    if geo_level and geo_level in positions and geo_level not in geo_names:
        geo_names.append(geo_level)
    value, value_text = _values(column("cell_value"), sentinels=False)
    time_text = column("time")
    table = pa.table(
        {
            "ts": period_starts(time_text, url=url),
            "program": _repeat(program, len(rows)),
            "time": time_text,
            "category_code": column("category_code"),
            "data_type_code": column("data_type_code"),
            "seasonally_adj": column("seasonally_adj"),
            "geo_id": _join_geo(cells, rows, width, [positions[g] for g in geo_names]),
            "value": value,
            "value_text": value_text,
            "error_data": column("error_data"),
        }
    )
    return conform(table, TIMESERIES)


def period_starts(time_text: pa.Array, *, url: str = "") -> pa.Array:
    """``YYYY`` / ``YYYY-MM`` / ``YYYY-Qn`` strings → UTC timestamps of the period start (vectorized)."""
    parts = pc.extract_regex(time_text, r"^(?P<y>\d{4})(?:-(?P<m>\d{2})|-Q(?P<q>[1-4]))?$")
    bad = pc.and_(pc.is_valid(time_text), pc.invert(pc.fill_null(pc.is_valid(parts), False)))
    if pc.any(bad).as_py() or time_text.null_count:
        sample = pc.filter(time_text, pc.fill_null(bad, True)).to_pylist()[:3]
        raise SchemaDriftError(
            f"Census timeseries `time` values {sample} are not YYYY, YYYY-MM or YYYY-Qn",
            source="census",
            dataset=TIMESERIES,
            url=url,
        )
    parts = parts.combine_chunks() if isinstance(parts, pa.ChunkedArray) else parts
    year, month, quarter = parts.field("y"), parts.field("m"), parts.field("q")
    q_index = pc.subtract(pc.if_else(pc.equal(quarter, ""), "1", quarter).cast(pa.int64()), 1)
    q_month = pc.take(_QUARTER_MONTH, q_index)
    month = pc.if_else(pc.equal(month, ""), pc.if_else(pc.equal(quarter, ""), "01", q_month), month)
    iso = pc.binary_join_element_wise(year, month, "01", "-")
    try:
        return iso.cast(pa.date32()).cast(pa.timestamp("us")).cast(TS)
    except pa.ArrowInvalid as exc:  # a month outside 01..12
        raise SchemaDriftError(
            f"Census timeseries `time` has an impossible month: {exc}",
            source="census",
            dataset=TIMESERIES,
            url=url,
        ) from None


def vintage_from_url(url: str) -> int:
    """The ACS vintage in a payload URL (``/data/2023/acs/acs5``), for payloads archived without meta."""
    match = re.search(r"/data/(\d{4})/|/(\d{4})/acs/", url)
    if match is None:
        raise PayloadError(
            f"cannot tell the ACS vintage of payload {url!r}: no meta and no /<year>/ in the URL"
        )
    return int(match.group(1) or match.group(2))
