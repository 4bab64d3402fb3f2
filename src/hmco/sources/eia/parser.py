"""EIA API v2, the pure half: routes of every dataset, reading a JSON page, and :func:`parse_eia`.

Nothing here does I/O (no HTTP library is imported): a payload's bytes go in, an Arrow table or a
typed error comes out. Values are JSON strings since API v2.1.6 (``"NA"`` means null); older numeric
payloads parse too. ``hourly`` periods are UTC hour-ending; daily periods are UTC midnight of the date.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from hmco.errors import (
    AuthenticationError,
    ConfigError,
    HmcoError,
    PayloadError,
    RequestRejected,
    SchemaDriftError,
    SourceError,
)
from hmco.payload import body_sha256, body_snippet, is_json_object
from hmco.redaction import redact_text
from hmco.schemas import TS, conform, get_dataset

__all__ = [
    "DEFAULT_SPOT_SERIES",
    "REGISTER_URL",
    "ROUTES",
    "SPOT_ROUTES",
    "EIAPage",
    "EIARoute",
    "error_from_response",
    "parse_eia",
    "read_page",
    "spot_route_for",
]

log = logging.getLogger("hmco.sources.eia")

#: the two spot-price routes: Henry Hub / NYMEX natural gas, and petroleum (WTI, Brent ...).
SPOT_ROUTES = ("natural-gas/pri/fut", "petroleum/pri/spt")
DEFAULT_SPOT_SERIES = ("RNGWHHD", "RWTC", "RBRTE")
REGISTER_URL = "https://www.eia.gov/opendata/register.php"


@dataclass(frozen=True)
class EIARoute:
    """How one canonical dataset maps onto EIA routes, facets and columns."""

    dataset: str
    routes: tuple[str, ...]
    frequency: str
    #: constructor keyword -> EIA facet id
    facets: Mapping[str, str]
    #: stable sort for pagination (EIA: "pagination breaks if not sorted")
    sort: tuple[str, ...]
    #: EIA field -> canonical column (strings)
    columns: Mapping[str, str]
    hour_ending: bool = False
    #: canonical spelling of series names, by lower-cased name (folds "Pumped storage"/"Pumped Storage")
    names: Mapping[str, str] = field(default_factory=dict)
    #: EIA fields whose literal "NA" means null
    na_fields: tuple[str, ...] = ()

    @property
    def string_fields(self) -> tuple[str, ...]:
        """Row fields read as strings (everything but ``value``, whose JSON type changed over versions)."""
        return ("period", *self.columns)


_FUEL_NAMES = {
    n.lower(): n
    for n in (
        "Battery Storage",
        "Coal",
        "Geothermal",
        "Hydro",
        "Natural Gas",
        "Nuclear",
        "Other",
        "Other Energy Storage",
        "Petroleum",
        "Pumped Storage",
        "Solar",
        "Solar With Integrated Battery Storage",
        "Unknown Energy Storage",
        "Wind",
        "Wind With Integrated Battery Storage",
    )
}
_REGION_TYPE_NAMES = {
    n.lower(): n for n in ("Demand", "Day-ahead demand forecast", "Net generation", "Total interchange")
}

ROUTES: dict[str, EIARoute] = {
    "eia_daily_fuel": EIARoute(
        dataset="eia_daily_fuel",
        routes=("electricity/rto/daily-fuel-type-data",),
        frequency="daily",
        facets={"respondents": "respondent", "fueltypes": "fueltype", "timezones": "timezone"},
        sort=("period", "respondent", "fueltype", "timezone"),
        columns={
            "respondent": "region",
            "respondent-name": "region_name",
            "fueltype": "series",
            "type-name": "series_name",
            "timezone": "timezone",
            "value-units": "units",
        },
        names=_FUEL_NAMES,
    ),
    "eia_hourly_fuel": EIARoute(
        dataset="eia_hourly_fuel",
        routes=("electricity/rto/fuel-type-data",),
        frequency="hourly",
        facets={"respondents": "respondent", "fueltypes": "fueltype"},
        sort=("period", "respondent", "fueltype"),
        columns={
            "respondent": "region",
            "respondent-name": "region_name",
            "fueltype": "series",
            "type-name": "series_name",
            "value-units": "units",
        },
        hour_ending=True,
        names=_FUEL_NAMES,
    ),
    "eia_hourly_region": EIARoute(
        dataset="eia_hourly_region",
        routes=("electricity/rto/region-data",),
        frequency="hourly",
        facets={"respondents": "respondent", "types": "type"},
        sort=("period", "respondent", "type"),
        columns={
            "respondent": "region",
            "respondent-name": "region_name",
            "type": "series",
            "type-name": "series_name",
            "value-units": "units",
        },
        hour_ending=True,
        names=_REGION_TYPE_NAMES,
    ),
    "eia_spot_prices": EIARoute(
        dataset="eia_spot_prices",
        routes=SPOT_ROUTES,
        frequency="daily",
        facets={"series": "series"},
        sort=("period", "series"),
        columns={
            "series": "series",
            "series-description": "series_name",
            "duoarea": "area",
            "area-name": "area_name",
            "product": "product",
            "product-name": "product_name",
            "process": "process",
            "units": "units",
        },
        na_fields=("area-name",),
    ),
}

#: strings EIA uses for "no value"
_NULL_TOKENS = pa.array(["NA", "", "-", "--", "W", "NM", "(s)", "."])
_PERIOD_FORMATS = {4: "%Y", 7: "%Y-%m", 10: "%Y-%m-%d", 13: "%Y-%m-%dT%H"}


def spot_route_for(series: str) -> str:
    """The EIA route of a spot-price series: ``RNG*`` (Henry Hub, NYMEX) is natural gas, else petroleum."""
    return "natural-gas/pri/fut" if series.upper().startswith("RNG") else "petroleum/pri/spt"


# --- reading a page ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EIAPage:
    """One EIA JSON response: the ``response.data`` rows as Arrow plus the envelope facts paging needs."""

    rows: pa.StructArray
    total: int | None
    warnings: tuple[Mapping[str, str], ...]
    api_version: str | None

    @property
    def incomplete(self) -> bool:
        """EIA's "incomplete return" warning: more rows match than one response may carry."""
        return any(
            "incomplete" in str(w.get("warning", "")).lower()
            or "can only return" in str(w.get("description", "")).lower()
            for w in self.warnings
        )


def _read_document(body: bytes, schema: pa.Schema | None) -> pa.Table:
    """Parse one JSON document (the whole body) into a one-row Arrow table, in C++."""
    options = pj.ReadOptions(block_size=max(len(body) + 1, 1 << 16), use_threads=False)
    parse = pj.ParseOptions(
        explicit_schema=schema, newlines_in_values=True, unexpected_field_behavior="infer"
    )
    return pj.read_json(io.BytesIO(body), read_options=options, parse_options=parse)


def _explicit_schema(fields: Sequence[str]) -> pa.Schema:
    row = pa.struct([(f, pa.string()) for f in fields if f != "value"])
    return pa.schema([("response", pa.struct([("data", pa.list_(row))]))])


def read_page(body: bytes, fields: Sequence[str] = (), *, where: Mapping[str, Any] | None = None) -> EIAPage:
    """Read an EIA v2 data response; ``fields`` are read as strings (``value`` is left to inference).

    Raises:
        AuthenticationError, RequestRejected: the body is one of EIA's error documents.
        PayloadError: the body is not JSON (HTML error page, truncated transfer) or has no ``response``.
    """
    ctx = dict(where or {})
    if not body.strip():
        raise PayloadError("EIA sent an empty body where JSON was expected; retry later", **ctx)
    if not is_json_object(body):
        # Not an object (``null``, an array, HTML): pyarrow.json cannot type it -- and crashes the
        # process on a bare ``null`` (pyarrow 26) -- so let json.loads decide and name the problem.
        return _read_page_slow(body, fields, ctx)
    try:
        table = _read_document(body, _explicit_schema(fields))
    except pa.ArrowInvalid:
        # Mixed types in one column (numbers and strings) or not JSON at all: let json.loads decide.
        return _read_page_slow(body, fields, ctx)
    if "error" in table.column_names:
        raise _error_from_document(_loads(body, ctx), None, ctx)
    if "response" not in table.column_names or table.column("response").null_count:
        raise PayloadError(f"EIA response has no 'response' object: {_snippet(body)}", **ctx)
    response = table.column("response").combine_chunks()
    assert isinstance(response, pa.StructArray)
    names = [response.type.field(i).name for i in range(response.type.num_fields)]
    data = response.field("data")
    rows = data.flatten() if isinstance(data, pa.ListArray) else pa.array([], pa.struct([]))
    if not isinstance(rows, pa.StructArray):  # "data": [] infers list<null>
        rows = pa.array([], pa.struct([]))
    total = _as_int(response.field("total")[0].as_py()) if "total" in names else None
    warnings: tuple[Mapping[str, str], ...] = ()
    if "warnings" in names:
        warnings = tuple(response.field("warnings")[0].as_py() or ())
    api_version = table.column("apiVersion")[0].as_py() if "apiVersion" in table.column_names else None
    return EIAPage(rows, total, warnings, None if api_version is None else str(api_version))


def _read_page_slow(body: bytes, fields: Sequence[str], ctx: Mapping[str, Any]) -> EIAPage:
    """Fallback for payloads pyarrow cannot type (old mixed number/string columns) or cannot read."""
    doc = _loads(body, ctx)
    if not isinstance(doc, dict):
        raise PayloadError(f"EIA response is not a JSON object: {_snippet(body)}", **ctx)
    if "error" in doc:
        raise _error_from_document(doc, None, ctx)
    response = doc.get("response")
    if not isinstance(response, dict):
        raise PayloadError(f"EIA response has no 'response' object: {_snippet(body)}", **ctx)
    data = response.get("data") or []
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise PayloadError(f"EIA response.data is not a list of row objects: {_snippet(body)}", **ctx)
    present = {k for row in data[:1000] for k in row}
    wanted = [f for f in dict.fromkeys(("period", *fields, "value")) if f in present]
    arrays = [pa.array([_text(row.get(f)) for row in data], pa.string()) for f in wanted]
    rows = pa.StructArray.from_arrays(arrays, names=wanted) if wanted else pa.array([], pa.struct([]))
    warnings = tuple(w for w in response.get("warnings") or () if isinstance(w, dict))
    version = doc.get("apiVersion")
    return EIAPage(rows, _as_int(response.get("total")), warnings, None if version is None else str(version))


def _loads(body: bytes, ctx: Mapping[str, Any]) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise PayloadError(
            f"EIA sent a body that is not JSON (HTML error page or truncated transfer): {_snippet(body)}",
            **ctx,
        ) from None


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value)


def _as_int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _snippet(body: bytes) -> str:
    return body_snippet(body, 160)


def _error_from_document(doc: Any, status: int | None, ctx: Mapping[str, Any]) -> SourceError:
    """Map EIA's two error shapes (key gate ``{"error": {code, message}}``, ``{"error": str, "code": n}``)."""
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "")
        message = redact_text(str(error.get("message") or ""))
    else:
        code = str(doc.get("code") or status or "") if isinstance(doc, dict) else str(status or "")
        message = redact_text(str(error or ""))
    if status in (401, 403) or code.startswith("API_KEY") or code == "403":
        if code == "API_KEY_MISSING":
            hint = f"set HMCO_SOURCES__EIA_API_KEY (free key: {REGISTER_URL})"
        elif code == "API_KEY_INVALID":
            hint = "the key is not an EIA key: check HMCO_SOURCES__EIA_API_KEY or re-register"
        else:
            hint = (
                "the key may be suspended for bursting over 5 requests/s or ~9,000/hour; EIA re-enables it "
                "after a cool-down -- wait, then retry with a larger min_interval"
            )
        return AuthenticationError(f"EIA refused the API key ({code or status}): {message} -- {hint}", **ctx)
    if status == 404 or code == "404":
        return RequestRejected(
            f"EIA route not found: {message or 'Not found.'} -- check the route path", **ctx
        )
    return RequestRejected(
        f"EIA rejected the request ({code or status}): {message} -- read the route's metadata "
        "(the route without /data) for valid frequencies, facets and columns",
        **ctx,
    )


# --- parsing ------------------------------------------------------------------------------------------


def parse_eia(body: bytes, dataset: str) -> pa.Table:
    """Turn one EIA v2 JSON response into the canonical table of ``dataset`` (pure, vectorized).

    Raises:
        PayloadError: not JSON; SchemaDriftError: expected fields missing or unparseable;
        AuthenticationError / RequestRejected: the body is an EIA error document.
    """
    spec = _route(dataset)
    try:
        return _parse_rows(body, spec, {"source": "eia", "dataset": spec.dataset})
    except HmcoError as exc:
        exc.context.setdefault("sha256", body_sha256(body))  # hashed only on failure: 45 ms per 100 MB
        raise


def _parse_rows(body: bytes, spec: EIARoute, ctx: Mapping[str, Any]) -> pa.Table:
    ds = get_dataset(spec.dataset)
    page = read_page(body, spec.string_fields, where=ctx)
    rows = page.rows
    if len(rows) == 0:
        return ds.schema.empty_table()
    # explicitly typed fields absent from the payload come back as all-null columns; value is inferred
    names = [rows.type.field(i).name for i in range(rows.type.num_fields)]
    present = {n for i, n in enumerate(names) if rows.field(i).null_count < len(rows)}
    missing = [f for f in ("period", *spec.columns) if f not in present and _required(spec, f)]
    missing += [] if "value" in names else ["value"]
    if missing:
        raise SchemaDriftError(
            f"EIA {spec.dataset} rows lack field(s) {missing}; they have {sorted(present)} "
            "(was data[]=value sent? has the route changed?)",
            **ctx,
        )
    columns: dict[str, pa.Array] = {}
    end = _parse_period(rows.field("period"), ctx)
    if spec.hour_ending:
        columns["ts"] = pc.subtract(end, pa.scalar(timedelta(hours=1), pa.duration("us")))
        columns["interval_end"] = end
    else:
        columns["ts"] = end
    for src, dst in spec.columns.items():
        if src not in present:
            continue
        col = rows.field(src)
        if src in spec.na_fields:
            col = pc.if_else(pc.equal(col, "NA"), pa.scalar(None, col.type), col)
        columns[dst] = col
    columns["value"] = _to_float(rows.field("value"), ctx)
    if "series_name" in columns:
        columns["series_name"], folded = _fold_case(columns["series_name"], spec.names)
    else:
        folded = False
    table = pa.table(columns)
    if folded:
        table = _sum_duplicates(table, [c for c in ds.primary_key if c in table.column_names])
    return conform(table, ds)


def _route(dataset: str) -> EIARoute:
    try:
        return ROUTES[dataset]
    except KeyError:
        raise ConfigError(f"eia: unknown dataset {dataset!r}; EIA produces {sorted(ROUTES)}") from None


def _required(spec: EIARoute, field_name: str) -> bool:
    if field_name == "period":
        return True
    column = spec.columns.get(field_name)
    return column is not None and not get_dataset(spec.dataset).schema.field(column).nullable


def _parse_period(period: pa.Array, ctx: Mapping[str, Any]) -> pa.Array:
    """EIA ``period`` strings (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, ``YYYY-MM-DDTHH``) -> UTC timestamps."""
    if pa.types.is_timestamp(period.type):
        return period.cast(pa.timestamp("us")).cast(TS)
    if period.null_count:
        raise SchemaDriftError(f"EIA rows have {period.null_count} null period(s)", **ctx)
    lengths = pc.unique(pc.utf8_length(period)).to_pylist()
    if len(lengths) != 1 or lengths[0] not in _PERIOD_FORMATS:
        sample = period[0].as_py()
        raise SchemaDriftError(
            f"EIA period {sample!r} is not a known format (YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DDTHH); "
            "local-hourly periods are not supported -- request frequency=hourly",
            **ctx,
        )
    try:
        parsed = pc.strptime(period, format=_PERIOD_FORMATS[lengths[0]], unit="us")
    except pa.ArrowInvalid as exc:
        raise SchemaDriftError(f"EIA period values do not parse: {exc}", **ctx) from None
    return parsed.cast(TS)


def _to_float(values: pa.Array, ctx: Mapping[str, Any]) -> pa.Array:
    """Values as float64: JSON strings (``"NA"`` and friends -> null) or numbers (API < 2.1.6)."""
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), pa.float64())
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return values.cast(pa.float64())
    if not pa.types.is_string(values.type):
        raise SchemaDriftError(f"EIA value column has unexpected type {values.type}", **ctx)
    cleaned = pc.if_else(pc.is_in(pc.utf8_trim_whitespace(values), value_set=_NULL_TOKENS), None, values)
    try:
        return pc.cast(cleaned, pa.float64())
    except pa.ArrowInvalid:
        bad = pc.filter(cleaned, pc.invert(pc.fill_null(pc.utf8_is_numeric(cleaned), True)))
        sample = pc.unique(bad).to_pylist()[:5]
        raise SchemaDriftError(f"EIA values are not numbers: {sample}", **ctx) from None


def _fold_case(names: pa.Array, canonical: Mapping[str, str]) -> tuple[pa.Array, bool]:
    """Fold case variants ("Pumped storage"/"Pumped Storage") onto one spelling; True if any were folded.

    Known names take their canonical spelling; unknown names keep theirs unless another spelling of the
    same name is present, in which case both become sentence case. Works on the distinct values only.
    """
    uniques = [u for u in pc.unique(names).to_pylist() if u is not None]
    spellings: dict[str, list[str]] = {}
    for name in uniques:
        spellings.setdefault(name.lower(), []).append(name)
    mapping: dict[str, str] = {}
    for lower, variants in spellings.items():
        target = canonical.get(lower) or (
            variants[0] if len(variants) == 1 else lower[:1].upper() + lower[1:]
        )
        mapping.update(dict.fromkeys(variants, target))
    if all(k == v for k, v in mapping.items()):
        return names, False
    index = pc.index_in(names, value_set=pa.array(uniques, pa.string()))
    folded = pc.take(pa.array([mapping[u] for u in uniques], pa.string()), index)
    return folded, any(len(v) > 1 for v in spellings.values())


def _sum_duplicates(table: pa.Table, keys: list[str]) -> pa.Table:
    """After folding, rows sharing a key are one series split by spelling: sum them (as gridstatus does)."""
    if table.group_by(keys).aggregate([]).num_rows == table.num_rows:
        return table
    others = [c for c in table.column_names if c not in keys and c != "value"]
    grouped = table.group_by(keys, use_threads=False).aggregate(
        [("value", "sum"), *((c, "first") for c in others)]
    )
    renamed = {f"{c}_first": c for c in others} | {"value_sum": "value"}
    log.warning(
        "eia: summed %d rows that differed only by series-name case", table.num_rows - grouped.num_rows
    )
    return grouped.rename_columns([renamed.get(c, c) for c in grouped.column_names])


def error_from_response(status: int, body: bytes, ctx: Mapping[str, Any]) -> SourceError:
    """The typed error of a non-200 EIA answer (its error document, else the status decides)."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        doc = None
    if isinstance(doc, dict) and "error" in doc:
        return _error_from_document(doc, status, ctx)
    if status in (401, 403):
        return AuthenticationError(
            f"EIA refused the request (HTTP {status}): {_snippet(body)} -- check HMCO_SOURCES__EIA_API_KEY",
            **ctx,
        )
    if 400 <= status < 500:
        return RequestRejected(f"EIA answered HTTP {status}: {_snippet(body)}", **ctx)
    return PayloadError(f"EIA answered HTTP {status} with an unexpected body: {_snippet(body)}", **ctx)
