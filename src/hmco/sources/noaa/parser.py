"""NOAA, the pure half: CDO ``/data`` and api.weather.gov observation pages → canonical tables.

Nothing here does I/O (no HTTP library is imported). The ``check_*_response`` functions turn an error
answer (status, content type, body) into its typed error; the cursor readers (``cdo_result_count``,
``observations_cursor``) tell the client how to page; the parsers build the canonical rows.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any, Final

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from hmco.errors import (
    AuthenticationError,
    ConfigError,
    PayloadError,
    RateLimited,
    RequestRejected,
    SchemaDriftError,
    SourceError,
)
from hmco.payload import body_snippet, is_json_object
from hmco.redaction import redact_text
from hmco.schemas import TS, conform, get_dataset
from hmco.windows import Window, in_window

__all__ = [
    "GHCND",
    "OBSERVATIONS",
    "REJECTED_QC",
    "UNIT_SYSTEMS",
    "cdo_result_count",
    "check_cdo_response",
    "check_weather_response",
    "observations_cursor",
    "parse_ghcnd_daily",
    "parse_observations",
]

GHCND: Final = "noaa_ghcnd_daily"
OBSERVATIONS: Final = "noaa_observations"

# --------------------------------------------------------------------------------------------------
# CDO v2 (GHCN-Daily)
# --------------------------------------------------------------------------------------------------

_CDO_SCHEMA: Final = {
    "metadata": pl.Struct(
        {"resultset": pl.Struct({"offset": pl.Int64, "count": pl.Int64, "limit": pl.Int64})}
    ),
    "results": pl.List(
        pl.Struct(
            {
                "date": pl.String,
                "datatype": pl.String,
                "station": pl.String,
                "attributes": pl.String,
                "value": pl.Float64,
            }
        )
    ),
}

# Which physical quantity each GHCN-D element measures, for the ``units`` column.
_GHCND_KIND: Final = {
    **dict.fromkeys(("TMAX", "TMIN", "TAVG", "TOBS", "MDTN", "MDTX", "MNPN", "MXPN"), "temp"),
    **dict.fromkeys(("PRCP", "MDPR", "WESD", "WESF", "EVAP"), "precip"),
    **dict.fromkeys(("SNOW", "SNWD", "MDSF"), "snow"),
    **dict.fromkeys(("AWND", "WSF1", "WSF2", "WSF5", "WSFG", "WSFI", "WSFM", "MDWM"), "wind"),
    **dict.fromkeys(("WDF1", "WDF2", "WDF5", "WDFG", "WDFI", "WDFM", "WDMV"), "dir"),
}
# ``raw`` = ``units`` omitted: CDO then returns GHCN-D's stored integers (tenths of degC / mm / m/s;
# snow is already whole mm), as the rnoaa recording in the reference shows (PRCP 8, 74, 36).
_UNIT_LABELS: Final = {
    "metric": {"temp": "degC", "precip": "mm", "snow": "mm", "wind": "m/s", "dir": "deg"},
    "standard": {"temp": "degF", "precip": "in", "snow": "in", "wind": "mph", "dir": "deg"},
    "raw": {"temp": "tenths_degC", "precip": "tenths_mm", "snow": "mm", "wind": "tenths_m/s", "dir": "deg"},
}
#: the unit systems CDO can be asked for (``raw`` = ``units`` omitted).
UNIT_SYSTEMS: Final = tuple(_UNIT_LABELS)
_GHCND_TYPES: Final = pa.array(list(_GHCND_KIND))
_UNIT_COLUMNS: Final = {
    system: pa.array([labels[kind] for kind in _GHCND_KIND.values()])
    for system, labels in _UNIT_LABELS.items()
}
_TOKEN_WORDS = re.compile(r"(?i)\btoken\b")


def check_cdo_response(status: int, content_type: str | None, body: bytes, *, url: str = "") -> None:
    """Raise the typed error a CDO error answer stands for; return quietly for 200/204.

    CDO answers errors with JSON ``{"status": "400", "message": "..."}``; token problems may come as
    plain text (the reference could not pin the exact bodies, so the match is on the word "token").
    """
    if status in (200, 204):
        return
    message = _cdo_message(body)
    where = {"source": "noaa", "dataset": GHCND, "url": url, "status": status}
    if status == 429:
        raise RateLimited(f"NOAA CDO throttled the token: {message}", None, **where)
    if status in (401, 403) or _TOKEN_WORDS.search(message):
        raise AuthenticationError(
            f"NOAA CDO rejected the token: {message}. Check HMCO_SOURCES__NOAA_TOKEN "
            "(request one at https://www.ncdc.noaa.gov/cdo-web/token).",
            **where,
        )
    if status in (400, 404, 422):
        hint = ""
        if re.search(r"(?i)year|range|date", message):
            hint = " GHCND requests may span at most one year; check the window and the station's period."
        raise RequestRejected(f"NOAA CDO rejected the request: {message}.{hint}", **where)
    raise SourceError(f"NOAA CDO answered HTTP {status}: {message}", **where)


def _cdo_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("message"):
        return redact_text(str(doc["message"]))
    return body_snippet(text, 300)


def _read_frame(body: bytes, schema: Any, *, api: str, what: str, dataset: str, url: str) -> pl.DataFrame:
    """Decode one JSON object ``body`` with a fixed polars schema, mapping failures to typed errors."""
    if not is_json_object(body):
        raise PayloadError(
            f"{api} answered with a non-JSON body: {body_snippet(body, 120)!r}",
            source="noaa",
            dataset=dataset,
            url=url,
        )
    try:
        return pl.read_json(io.BytesIO(body), schema=schema)
    except pl.exceptions.ComputeError as exc:
        cls = SchemaDriftError if "deserializ" in str(exc) else PayloadError
        raise cls(f"{api} body {what}: {exc}", source="noaa", dataset=dataset, url=url) from None


def _cdo_frame(body: bytes, *, url: str = "") -> pl.DataFrame | None:
    """Decode a CDO ``/data`` body with a fixed schema; ``None`` for the empty answers (``{}``, no body)."""
    stripped = body.strip()
    if not stripped or stripped == b"{}":
        return None
    return _read_frame(
        stripped,
        _CDO_SCHEMA,
        api="NOAA CDO",
        what="cannot be decoded as a /data result set",
        dataset=GHCND,
        url=url,
    )


def cdo_result_count(body: bytes, *, url: str = "") -> int:
    """``metadata.resultset.count`` of a CDO page (0 for empty answers)."""
    frame = _cdo_frame(body, url=url)
    if frame is None or frame.height == 0:
        return 0
    count = frame.get_column("metadata").struct.field("resultset").struct.field("count")[0]
    if count is None:
        results = frame.get_column("results")[0]
        return 0 if results is None else len(results)
    return int(count)


def parse_ghcnd_daily(body: bytes, *, units: str = "metric", status: int = 200, url: str = "") -> pa.Table:
    """CDO ``/data`` JSON → ``noaa_ghcnd_daily`` rows.

    ``date`` is the station's local observation day with no zone: ``ts`` is UTC midnight of that day.
    ``attributes`` (``MFLAG,QFLAG,SFLAG,OBS-TIME``) is split into four columns, empty flags as null.
    ``units`` is the unit system requested (``metric``, ``standard`` or ``raw`` when it was omitted).
    """
    if units not in _UNIT_LABELS:
        raise ConfigError(f"NOAA CDO units must be one of {sorted(_UNIT_LABELS)}, not {units!r}")
    frame = None if status == 204 else _cdo_frame(body, url=url)
    if frame is None or frame.get_column("results").null_count() == frame.height:
        return _empty(GHCND)
    rows = _rows(frame.get_column("results"), "date")
    date_str = pc.utf8_slice_codeunits(rows.column("date"), 0, 10)
    try:
        ts = date_str.cast(pa.date32()).cast(pa.timestamp("us")).cast(TS)
    except pa.ArrowInvalid as exc:
        raise SchemaDriftError(
            f"NOAA CDO date is not YYYY-MM-DD…: {exc}", source="noaa", dataset=GHCND
        ) from None
    datatype = rows.column("datatype")
    unit = pc.take(_UNIT_COLUMNS[units], pc.index_in(datatype, value_set=_GHCND_TYPES))
    flags = _split_attributes(rows.column("attributes"))
    table = pa.table(
        {
            "ts": ts,
            "station": rows.column("station"),
            "datatype": datatype,
            "value": rows.column("value"),
            "units": unit,
            **flags,
        }
    )
    return conform(table, GHCND)


def _rows(column: pl.Series | pa.ChunkedArray, required: str) -> pa.Table:
    """A list-of-struct (or struct) column → one Arrow row per struct, nulls and rows lacking
    ``required`` dropped, ``large_string`` (polars' export) narrowed to ``string``. Stays in Arrow:
    polars' own explode/unnest start its query engine, which costs more than the page on small pages.
    """
    arr = column.to_arrow() if isinstance(column, pl.Series) else column.combine_chunks()
    if pa.types.is_large_list(arr.type) or pa.types.is_list(arr.type):
        arr = arr.flatten()
    if arr.null_count:
        arr = arr.filter(arr.is_valid())
    table = pa.Table.from_struct_array(arr)
    if table.column(required).null_count:
        table = table.filter(pc.is_valid(table.column(required)))
    return table.cast(_narrow(table.schema))


def _narrow(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_type(_narrow_type(f.type)) for f in schema])


def _narrow_type(typ: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(typ):
        return pa.string()
    if pa.types.is_struct(typ):
        return pa.struct([f.with_type(_narrow_type(f.type)) for f in typ])
    return typ


def _split_attributes(attributes: pa.ChunkedArray) -> dict[str, pa.ChunkedArray]:
    """``"T,,7,1800"`` → mflag T, qflag null, sflag 7, obs_time 1800 (vectorized; short lists padded)."""
    padded = pc.binary_join_element_wise(pc.fill_null(attributes, ""), pa.scalar(",,,"), "")
    parts = pc.split_pattern(padded, ",")
    out: dict[str, pa.ChunkedArray] = {}
    for i, name in enumerate(("mflag", "qflag", "sflag", "obs_time")):
        part = pc.utf8_trim_whitespace(pc.list_element(parts, i))
        out[name] = pc.if_else(pc.equal(part, ""), pa.scalar(None, pa.string()), part)
    return out


def _empty(dataset: str) -> pa.Table:
    return get_dataset(dataset).schema.empty_table()


# --------------------------------------------------------------------------------------------------
# api.weather.gov observations
# --------------------------------------------------------------------------------------------------

_QUANTITY: Final = pl.Struct({"unitCode": pl.String, "value": pl.Float64, "qualityControl": pl.String})
# property name -> (canonical column, unit family)
_QUANTITIES: Final = {
    "temperature": ("temperature_c", "temperature"),
    "dewpoint": ("dewpoint_c", "temperature"),
    "relativeHumidity": ("relative_humidity", "percent"),
    "windDirection": ("wind_direction_deg", "angle"),
    "windSpeed": ("wind_speed_kmh", "speed"),
    "windGust": ("wind_gust_kmh", "speed"),
    "barometricPressure": ("barometric_pressure_pa", "pressure"),
    "seaLevelPressure": ("sea_level_pressure_pa", "pressure"),
    "visibility": ("visibility_m", "distance"),
    "precipitationLastHour": ("precipitation_last_hour_mm", "precipitation"),
}
# unit family -> unit code (prefix stripped) -> (scale, offset) into the canonical unit.
_CONVERSIONS: Final[dict[str, dict[str, tuple[float, float]]]] = {
    "temperature": {"degC": (1.0, 0.0), "degF": (5 / 9, -32 * 5 / 9), "K": (1.0, -273.15)},
    "percent": {"percent": (1.0, 0.0)},
    "angle": {"degree_(angle)": (1.0, 0.0)},
    "speed": {"km_h-1": (1.0, 0.0), "m_s-1": (3.6, 0.0), "kt": (1.852, 0.0), "mi_h-1": (1.609344, 0.0)},
    "pressure": {"Pa": (1.0, 0.0), "hPa": (100.0, 0.0), "kPa": (1000.0, 0.0)},
    "distance": {"m": (1.0, 0.0), "km": (1000.0, 0.0), "mi": (1609.344, 0.0)},
    "precipitation": {"mm": (1.0, 0.0), "m": (1000.0, 0.0), "cm": (10.0, 0.0)},
}
#: MADIS quality-control flags that mark a value as rejected ("X") or subjectively bad ("B").
REJECTED_QC: Final = ("X", "B")
_OBS_SCHEMA: Final = {
    "features": pl.List(
        pl.Struct(
            {
                "properties": pl.Struct(
                    {
                        "station": pl.String,
                        "stationId": pl.String,
                        "timestamp": pl.String,
                        "textDescription": pl.String,
                        "rawMessage": pl.String,
                        **dict.fromkeys(_QUANTITIES, _QUANTITY),
                    }
                )
            }
        )
    ),
    "pagination": pl.Struct({"next": pl.String}),
}


def check_weather_response(status: int, content_type: str | None, body: bytes, *, url: str = "") -> None:
    """Raise the typed error an api.weather.gov answer stands for (``application/problem+json``)."""
    if status == 200:
        return
    where = {"source": "noaa", "dataset": OBSERVATIONS, "url": url, "status": status}
    text = body.decode("utf-8", "replace")
    detail = body_snippet(text, 300)
    params = ""
    try:
        problem = json.loads(text)
    except ValueError:
        problem = None
    if isinstance(problem, dict):
        detail = redact_text(f"{problem.get('title', '')}: {problem.get('detail', '')}".strip(": "))
        errors = problem.get("parameterErrors") or []
        if errors:
            params = "; ".join(
                f"{e.get('parameter')}: {e.get('message')}" for e in errors if isinstance(e, dict)
            )
        if problem.get("correlationId"):
            where["correlation_id"] = problem["correlationId"]
    if status in (401, 403):
        raise AuthenticationError(
            f"api.weather.gov refused the request ({detail}); it requires a User-Agent that names the "
            "application and a contact (HMCO_SOURCES__USER_AGENT).",
            **where,
        )
    if status == 404:
        raise RequestRejected(f"api.weather.gov: {detail} (is the station id right?)", **where)
    if 400 <= status < 500:
        raise RequestRejected(f"api.weather.gov rejected the request: {detail} {params}".strip(), **where)
    raise SourceError(f"api.weather.gov answered HTTP {status}: {detail}", **where)


def _obs_frame(body: bytes, *, url: str = "") -> pl.DataFrame:
    return _read_frame(
        body.strip(),
        _OBS_SCHEMA,
        api="api.weather.gov",
        what="is not an observation collection",
        dataset=OBSERVATIONS,
        url=url,
    )


def observations_cursor(body: bytes, *, url: str = "") -> tuple[int, str | None]:
    """(number of features, ``pagination.next``) of one observation collection page."""
    frame = _obs_frame(body, url=url)
    features = frame.get_column("features")[0]
    pagination = frame.get_column("pagination")[0]
    return (0 if features is None else len(features)), (pagination or {}).get("next")


def parse_observations(body: bytes, *, window: Window | None = None, url: str = "") -> pa.Table:
    """api.weather.gov observation collection → ``noaa_observations`` rows in canonical SI units.

    Timestamps carry offsets and become UTC; quantities are converted from whatever unit code they
    carry (``wmoUnit:km_h-1`` or ``unit:m_s-1`` alike); values the QC flags reject are null.
    Rows outside ``window`` (the API's ``end`` is inclusive) are dropped.
    """
    frame = _obs_frame(body, url=url)
    features = _rows(frame.get_column("features"), "properties")
    rows = _rows(features.column("properties"), "timestamp")
    if rows.num_rows == 0:
        return _empty(OBSERVATIONS)
    try:
        ts = rows.column("timestamp").cast(TS)
    except pa.ArrowInvalid as exc:
        raise SchemaDriftError(
            f"api.weather.gov timestamp is not ISO-8601 with an offset: {exc}",
            source="noaa",
            dataset=OBSERVATIONS,
        ) from None
    station_from_url = (
        pc.extract_regex(rows.column("station"), r"(?P<id>[^/]+)/?$").combine_chunks().field("id")
    )
    columns: dict[str, Any] = {
        "ts": ts,
        "station": pc.coalesce(rows.column("stationId"), station_from_url),
    }
    for prop, (column, family) in _QUANTITIES.items():
        columns[column] = _canonical_quantity(rows.column(prop), prop, family)
    columns["text_description"] = rows.column("textDescription")
    columns["raw_message"] = rows.column("rawMessage")
    table = pa.table(columns)
    if window is not None:
        table = table.filter(in_window(table.column("ts"), window))
    return conform(table, OBSERVATIONS)


def _strip_prefix(codes: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return pc.replace_substring_regex(codes, r"^[^:]*:", "")


def _canonical_quantity(column: pa.ChunkedArray, prop: str, family: str) -> pa.ChunkedArray:
    """One ``{unitCode, value, qualityControl}`` column → values in the family's canonical unit."""
    quantity = column.combine_chunks()
    if quantity.type == pa.null() or len(quantity) == 0:
        return pa.chunked_array([pa.nulls(len(quantity), pa.float64())])
    value = pc.struct_field(quantity, "value").cast(pa.float64())
    unit = _strip_prefix(pc.struct_field(quantity, "unitCode"))
    qc = _strip_prefix(pc.struct_field(quantity, "qualityControl"))
    table = _CONVERSIONS[family]
    idx = pc.index_in(unit, value_set=pa.array(list(table)))
    unknown = pc.and_(pc.is_valid(value), pc.is_null(idx))
    if pc.any(unknown).as_py():
        seen = sorted(set(pc.filter(unit, unknown).to_pylist()), key=str)
        raise SchemaDriftError(
            f"api.weather.gov {prop} has unit code(s) {seen} that hmco cannot convert to {family} "
            f"(known: {sorted(table)}); add the conversion in hmco.sources.noaa.parser._CONVERSIONS",
            source="noaa",
            dataset=OBSERVATIONS,
        )
    scale = pc.take(pa.array([s for s, _ in table.values()], pa.float64()), idx)
    offset = pc.take(pa.array([o for _, o in table.values()], pa.float64()), idx)
    converted = pc.round(pc.add(pc.multiply(value, scale), offset), 6)
    rejected = pc.fill_null(pc.is_in(qc, value_set=pa.array(REJECTED_QC)), False)
    return pa.chunked_array([pc.if_else(rejected, pa.scalar(None, pa.float64()), converted)])
