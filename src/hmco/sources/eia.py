"""EIA API v2: EIA-930 grid data (daily and hourly generation by fuel, hourly region data) and spot prices.

EIA pages JSON results 5,000 rows at a time (``offset``/``length``), reports the full match count in
``response.total`` (a string), and echoes every request parameter -- ``api_key`` included -- back in
``request.params``. So:

- ``fetch`` sends the key as the ``api_key`` query parameter (EIA ignores headers), paces requests
  0.2 s apart (EIA suspends keys bursting over 5 req/s), always sorts explicitly so pages are stable,
  walks ``offset`` until ``total`` rows have arrived, redacts the echoed key from every body before it
  becomes a :class:`RawPayload`, and turns error bodies into typed errors;
- :func:`parse_eia` (pure) reads the payload with ``pyarrow.json`` (no per-row Python) and builds the
  canonical table. Values are JSON strings since API v2.1.6 (``"NA"`` means null); older numeric
  payloads parse too.

Times: ``hourly`` periods are UTC *hour-ending* (``2024-03-10T08`` is the hour 07:00-08:00 UTC), so
``ts = period - 1h`` and ``interval_end = period``. Daily periods carry no zone: ``ts`` is UTC midnight
of the period date (the ``timezone`` column says whose day it is). Spot-price days are UTC midnight
of the trade date as well.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
from hmco.schemas import TS, conform, get_dataset
from hmco.security.redaction import redact_bytes, redact_text
from hmco.sources.base import (
    RawPayload,
    Source,
    as_list,
    body_sha256,
    body_snippet,
    is_json_object,
    register_source,
    secret_value,
)
from hmco.sources.http import HttpClient
from hmco.windows import Window

__all__ = [
    "DEFAULT_BASE_URL",
    "EIA",
    "MAX_PAGE_LENGTH",
    "MIN_INTERVAL",
    "ROUTES",
    "EIAPage",
    "EIARoute",
    "parse_eia",
    "read_page",
    "spot_route_for",
]

log = logging.getLogger("hmco.sources.eia")

DEFAULT_BASE_URL = "https://api.eia.gov/v2/"
#: EIA asks for bursts under 5 requests/s; over that the key is suspended for seconds to minutes.
MIN_INTERVAL = 0.2
#: JSON results are capped at 5,000 rows per request.
MAX_PAGE_LENGTH = 5000
SPOT_ROUTES = ("natural-gas/pri/fut", "petroleum/pri/spt")
DEFAULT_SPOT_SERIES = ("RNGWHHD", "RWTC", "RBRTE")
_REGISTER_URL = "https://www.eia.gov/opendata/register.php"


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
_PERIOD_PARAM_FORMATS = {
    "hourly": "%Y-%m-%dT%H",
    "daily": "%Y-%m-%d",
    "weekly": "%Y-%m-%d",
    "monthly": "%Y-%m",
    "annual": "%Y",
}


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
            hint = f"set HMCO_SOURCES__EIA_API_KEY (free key: {_REGISTER_URL})"
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


# --- the client ---------------------------------------------------------------------------------------


@register_source
class EIA(Source):
    """EIA API v2 datasets: ``eia_daily_fuel`` (default), ``eia_hourly_fuel``, ``eia_hourly_region``
    and ``eia_spot_prices``.

    Args:
        dataset: which canonical dataset to produce.
        respondents, fueltypes, types, timezones, series: EIA facet values (lists or one string);
            only the facets of the chosen dataset are accepted. Unknown values match nothing.
        route: spot prices only: force ``natural-gas/pri/fut`` or ``petroleum/pri/spt`` (default: by series).
        frequency: spot prices only: ``daily`` (default), ``weekly``, ``monthly`` or ``annual``.
        page_length: rows per request (at most 5,000, EIA's JSON cap).
        require_data: raise :class:`NoData` when a window matches no rows (default: empty table + warning).
        min_interval: seconds between requests to the host, process-wide (default 0.2: under 5 req/s).
        sleep, clock: injectable for tests; injecting either gives this client its own pacer.
    """

    name: ClassVar[str] = "eia"
    datasets: ClassVar[tuple[str, ...]] = tuple(ROUTES)
    window_step: timedelta = timedelta(days=1)
    #: EIA-930 days close at local midnight (up to UTC-10) and are posted hours later.
    publication_lag: timedelta = timedelta(hours=12)

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
        respondents: Sequence[str] | str | None = None,
        fueltypes: Sequence[str] | str | None = None,
        types: Sequence[str] | str | None = None,
        timezones: Sequence[str] | str | None = None,
        series: Sequence[str] | str | None = None,
        route: str | None = None,
        frequency: str | None = None,
        page_length: int = MAX_PAGE_LENGTH,
        require_data: bool = False,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(dataset, settings=settings)
        self.spec = ROUTES[self.dataset.name]
        given = {
            "respondents": respondents,
            "fueltypes": fueltypes,
            "types": types,
            "timezones": timezones,
            "series": series,
        }
        unknown = sorted(k for k, v in given.items() if v is not None and k not in self.spec.facets)
        if unknown:
            raise ConfigError(
                f"eia: {self.dataset.name} has no facet(s) {unknown}; it takes {sorted(self.spec.facets)}"
            )
        self.facets: dict[str, list[str]] = {
            self.spec.facets[k]: as_list(v) for k, v in given.items() if v is not None
        }
        is_spot = self.dataset.name == "eia_spot_prices"
        if (route is not None or frequency is not None) and not is_spot:
            raise ConfigError("eia: 'route' and 'frequency' apply to eia_spot_prices only")
        if route is not None and route.strip("/") not in SPOT_ROUTES:
            raise ConfigError(f"eia: spot route must be one of {SPOT_ROUTES}, not {route!r}")
        self.route = route.strip("/") if route else None
        self.frequency = frequency or self.spec.frequency
        if self.frequency not in _PERIOD_PARAM_FORMATS:
            raise ConfigError(
                f"eia: unknown frequency {self.frequency!r}; use one of {sorted(_PERIOD_PARAM_FORMATS)}"
            )
        if not 1 <= int(page_length) <= MAX_PAGE_LENGTH:
            raise ConfigError(f"eia: page_length must be 1..{MAX_PAGE_LENGTH}, not {page_length}")
        self.page_length = int(page_length)
        self.require_data = bool(require_data)
        self._api_key = secret_value(self.settings.sources.eia_api_key)
        interval = MIN_INTERVAL if min_interval is None else min_interval
        self._http = HttpClient(
            base_url or DEFAULT_BASE_URL,
            min_interval=interval,
            max_attempts=max_attempts,
            backoff=backoff,
            timeout=timeout,
            user_agent=self.settings.sources.user_agent,
            sleep=sleep,
            clock=clock,
        )

    # --- planning ---------------------------------------------------------------------------------

    def requests_for(self, window: Window) -> list[tuple[str, list[tuple[str, str]]]]:
        """(route, query params without key/offset) of every request sequence covering ``window``."""
        plans: list[tuple[str, dict[str, list[str]]]] = []
        if self.dataset.name == "eia_spot_prices":
            wanted = self.facets.get("series") or list(DEFAULT_SPOT_SERIES)
            by_route: dict[str, list[str]] = {}
            for s in wanted:
                by_route.setdefault(self.route or spot_route_for(s), []).append(s)
            plans = [(r, {**self.facets, "series": s}) for r, s in by_route.items()]
        else:
            plans = [(self.spec.routes[0], self.facets)]
        start, end = self._period_bounds(window)
        out = []
        for route, facets in plans:
            params: list[tuple[str, str]] = [("frequency", self.frequency), ("data[0]", "value")]
            for facet, values in facets.items():
                params += [(f"facets[{facet}][]", v) for v in values]
            params += [("start", start), ("end", end)]
            for i, col in enumerate(self.spec.sort):
                params += [(f"sort[{i}][column]", col), (f"sort[{i}][direction]", "asc")]
            out.append((route, params))
        return out

    def _period_bounds(self, window: Window) -> tuple[str, str]:
        """Inclusive ``start``/``end`` period strings (EIA compares them lexically with ``period``)."""
        fmt = _PERIOD_PARAM_FORMATS[self.frequency]
        if self.spec.hour_ending:
            hour = timedelta(hours=1)
            first = (
                _ceil_hour(window.start) + hour
            )  # period (hour end) of the first interval starting >= start
            last = _ceil_hour(window.end)  # period of the last interval starting < end
            return first.strftime(fmt), last.strftime(fmt)
        last_instant = window.end - timedelta(microseconds=1)
        return window.start.strftime(fmt), last_instant.strftime(fmt)

    # --- fetching ---------------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        """Yield every page of every request covering ``window`` (redacted), raising typed errors."""
        if not self._api_key:
            raise AuthenticationError(
                f"EIA needs an API key: set HMCO_SOURCES__EIA_API_KEY (free key: {_REGISTER_URL})",
                source=self.name,
                dataset=self.dataset.name,
            )
        rows_seen = 0
        for route, base_params in self.requests_for(window):
            rows_seen += yield from self._walk(route, base_params, window)
        if rows_seen == 0 and self.require_data:
            raise NoData(
                f"EIA matched no {self.dataset.name} rows in {window} for facets {self.facets}: "
                "check the facet values against the route's /facet list",
                source=self.name,
                dataset=self.dataset.name,
            )

    def _walk(
        self, route: str, base_params: list[tuple[str, str]], window: Window
    ) -> Generator[RawPayload, None, int]:
        offset, page_no = 0, 0
        path = f"{route}/data/"
        while True:
            params = [*base_params, ("offset", str(offset)), ("length", str(self.page_length))]
            resp = self._http.get(path, [("api_key", self._api_key or ""), *params])
            body = redact_bytes(resp.content)
            url, rparams, headers = self._http.describe_request(resp)
            ctx = {"source": self.name, "dataset": self.dataset.name, "url": url, "sha256": body_sha256(body)}
            if resp.status_code != 200:
                raise _error_from_response(resp.status_code, body, ctx)
            page = read_page(body, self.spec.string_fields, where=ctx)
            n = len(page.rows)
            total = page.total
            yield RawPayload(
                source=self.name,
                dataset=self.dataset.name,
                body=body,
                url=url,
                params=rparams,
                headers=headers,
                status=resp.status_code,
                content_type=resp.headers.get("content-type"),
                window=window,
                page=page_no,
                meta={
                    "route": route,
                    "offset": offset,
                    "length": self.page_length,
                    "rows": n,
                    "total": total,
                    "api_version": page.api_version,
                    "warnings": [dict(w) for w in page.warnings],
                },
            )
            if total is None:
                if page.incomplete:
                    raise PayloadError(
                        "EIA flagged an incomplete return but sent no response.total to page by", **ctx
                    )
                total = offset + n
            if page.incomplete:
                log.debug(
                    "eia: %s page at offset %d is one of %d rows; walking offsets", route, offset, total
                )
            if n == 0 and offset == 0:
                log.warning(
                    "eia: %s returned no rows for %s (facets %s): unknown facet value or no data yet",
                    route,
                    window,
                    self.facets,
                )
                return 0
            offset += n
            if offset >= total:
                return offset
            if n == 0:
                raise PayloadError(
                    f"EIA stopped returning rows at offset {offset} of {total}; the result may have changed "
                    "while paging -- re-run the window",
                    **ctx,
                )
            if n < self.page_length:
                log.warning(
                    "eia: short page (%d of %d rows) at offset %d of %d", n, self.page_length, offset, total
                )
            page_no += 1

    def parse(self, payload: RawPayload) -> pa.Table:
        return parse_eia(payload.body, payload.dataset)

    def scope(self) -> dict[str, list[str]]:
        """The facet slice this instance fetches, in canonical column names (for window replacement)."""
        canonical = {"respondent": "region", "fueltype": "series", "type": "series", "timezone": "timezone"}
        scope = {canonical.get(k, k): list(v) for k, v in self.facets.items()}
        if self.dataset.name == "eia_spot_prices" and "series" not in scope:
            scope["series"] = list(DEFAULT_SPOT_SERIES)
        return scope

    def close(self) -> None:
        self._http.close()


def _error_from_response(status: int, body: bytes, ctx: Mapping[str, Any]) -> SourceError | PayloadError:
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


def _ceil_hour(value: datetime) -> datetime:
    floored = value.replace(minute=0, second=0, microsecond=0)
    return floored if floored == value else floored + timedelta(hours=1)
