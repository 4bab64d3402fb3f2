"""Canonical datasets: the one place that says what every dataset the platform carries looks like.

Each :class:`Dataset` declares its Arrow schema, primary key, partitioning, sort order, target tier,
time column, cadence and freshness SLA. Sources parse into these schemas, sinks create tables from
them, quality suites derive their default expectations from them. Times are
``timestamp[us, tz=UTC]``; ``ts`` is always the start of the interval or period a row describes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import pyarrow as pa

from hmco.errors import SchemaError

__all__ = ["DATASETS", "TS", "Dataset", "PartitionField", "conform", "get_dataset", "register_dataset"]

TS = pa.timestamp("us", tz="UTC")
Transform = Literal["identity", "hour", "day", "month", "year"]
TierName = Literal["raw", "staged", "curated", "ml"]


@dataclass(frozen=True)
class PartitionField:
    """One partition field: ``transform(source)`` named ``name``."""

    source: str
    transform: Transform = "identity"
    name: str | None = None

    @property
    def field_name(self) -> str:
        return self.name or (
            self.source if self.transform == "identity" else f"{self.source}_{self.transform}"
        )


@dataclass(frozen=True)
class Dataset:
    """A canonical dataset: schema + keys + layout + service levels."""

    name: str
    schema: pa.Schema
    primary_key: tuple[str, ...]
    partition_by: tuple[PartitionField, ...] = ()
    sort_by: tuple[str, ...] = ()
    tier: TierName = "curated"
    time_column: str = "ts"
    frequency: timedelta | None = None
    sla: timedelta = timedelta(hours=24)
    series_key: tuple[str, ...] = ()
    description: str = ""
    value_ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    allowed_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = set(self.schema.names)
        for col in (*self.primary_key, *self.sort_by, *self.series_key, self.time_column):
            if col not in names:
                raise SchemaError(f"dataset {self.name}: column {col!r} is not in its schema")
        for pf in self.partition_by:
            if pf.source not in names:
                raise SchemaError(f"dataset {self.name}: partition source {pf.source!r} is not in its schema")
        for col in self.primary_key:
            if self.schema.field(col).nullable:
                raise SchemaError(f"dataset {self.name}: primary-key column {col!r} must be non-nullable")

    @property
    def identifier(self) -> str:
        """``hub_<tier>.<name>``: where the dataset lives in the lake by default."""
        return f"hub_{self.tier}.{self.name}"


def _schema(*fields: pa.Field) -> pa.Schema:
    return pa.schema(list(fields))


def _req(name: str, typ: pa.DataType) -> pa.Field:
    return pa.field(name, typ, nullable=False)


def _opt(name: str, typ: pa.DataType) -> pa.Field:
    return pa.field(name, typ, nullable=True)


_DAY_ISO = (PartitionField("ts", "day", "ts_day"), PartitionField("iso"))
_MONTH = (PartitionField("ts", "month", "ts_month"),)
_YEAR = (PartitionField("ts", "year", "ts_year"),)

RT_LMP = Dataset(
    name="rt_lmp",
    description="ISO 5-minute real-time locational marginal prices ($/MWh), one row per node and interval.",
    schema=_schema(
        _req("ts", TS),
        _req("interval_end", TS),
        _req("iso", pa.string()),
        _req("market", pa.string()),
        _req("node", pa.string()),
        _opt("node_type", pa.string()),
        _req("lmp", pa.float64()),
        _opt("energy", pa.float64()),
        _opt("congestion", pa.float64()),
        _opt("loss", pa.float64()),
        _opt("ghg", pa.float64()),
        # When this revision was published (the ISO's own time, else the fetch time): newest wins.
        _opt("published_at", TS),
    ),
    primary_key=("iso", "market", "node", "ts"),
    partition_by=_DAY_ISO,
    sort_by=("iso", "node", "ts"),
    frequency=timedelta(minutes=5),
    sla=timedelta(minutes=10),
    series_key=("iso", "market", "node"),
    value_ranges={"lmp": (-2000.0, 10000.0)},
    allowed_values={"iso": ("CAISO", "MISO", "SPP", "SYNTH"), "market": ("RT5", "RT15", "DAH")},
)

DA_LMP = Dataset(
    name="da_lmp",
    description="ISO day-ahead hourly LMPs ($/MWh).",
    schema=RT_LMP.schema,
    primary_key=("iso", "market", "node", "ts"),
    partition_by=_DAY_ISO,
    sort_by=("iso", "node", "ts"),
    frequency=timedelta(hours=1),
    sla=timedelta(hours=24),
    series_key=("iso", "market", "node"),
    value_ranges={"lmp": (-2000.0, 10000.0)},
    allowed_values={"iso": ("CAISO", "MISO", "SPP", "SYNTH"), "market": ("DAH",)},
)

EIA_DAILY_FUEL = Dataset(
    name="eia_daily_fuel",
    description="EIA-930 daily net generation by balancing authority (region) and fuel type (series), MWh.",
    schema=_schema(
        _req("ts", TS),
        _req("region", pa.string()),
        _opt("region_name", pa.string()),
        _req("series", pa.string()),
        _opt("series_name", pa.string()),
        _req("timezone", pa.string()),
        _opt("value", pa.float64()),
        _opt("units", pa.string()),
    ),
    primary_key=("ts", "region", "series", "timezone"),
    partition_by=_MONTH,
    sort_by=("region", "series", "ts"),
    frequency=timedelta(days=1),
    sla=timedelta(minutes=30),
    series_key=("region", "series", "timezone"),
    # No lower bound: net generation of pumped storage and batteries is negative in EIA-930.
)

EIA_HOURLY_FUEL = Dataset(
    name="eia_hourly_fuel",
    description="EIA-930 hourly net generation by balancing authority and fuel type (UTC hour-ending on the wire).",
    schema=_schema(
        _req("ts", TS),
        _req("interval_end", TS),
        _req("region", pa.string()),
        _opt("region_name", pa.string()),
        _req("series", pa.string()),
        _opt("series_name", pa.string()),
        _opt("value", pa.float64()),
        _opt("units", pa.string()),
    ),
    primary_key=("ts", "region", "series"),
    partition_by=_MONTH,
    sort_by=("region", "series", "ts"),
    frequency=timedelta(hours=1),
    sla=timedelta(minutes=30),
    series_key=("region", "series"),
)

EIA_HOURLY_REGION = Dataset(
    name="eia_hourly_region",
    description="EIA-930 hourly demand, forecast, net generation and interchange by balancing authority.",
    schema=_schema(
        _req("ts", TS),
        _req("interval_end", TS),
        _req("region", pa.string()),
        _opt("region_name", pa.string()),
        _req("series", pa.string()),
        _opt("series_name", pa.string()),
        _opt("value", pa.float64()),
        _opt("units", pa.string()),
    ),
    primary_key=("ts", "region", "series"),
    partition_by=_MONTH,
    sort_by=("region", "series", "ts"),
    frequency=timedelta(hours=1),
    sla=timedelta(minutes=30),
    series_key=("region", "series"),
    allowed_values={"series": ("D", "DF", "NG", "TI")},
)

EIA_SPOT_PRICES = Dataset(
    name="eia_spot_prices",
    description="EIA natural-gas and petroleum spot prices (Henry Hub, WTI, Brent …).",
    schema=_schema(
        _req("ts", TS),
        _req("series", pa.string()),
        _opt("series_name", pa.string()),
        _opt("area", pa.string()),
        _opt("area_name", pa.string()),
        _opt("product", pa.string()),
        _opt("product_name", pa.string()),
        _opt("process", pa.string()),
        _opt("value", pa.float64()),
        _opt("units", pa.string()),
    ),
    primary_key=("series", "ts"),
    partition_by=_YEAR,
    sort_by=("series", "ts"),
    frequency=timedelta(days=1),
    sla=timedelta(minutes=30),
    series_key=("series",),
)

FRED_OBSERVATIONS = Dataset(
    name="fred_observations",
    description="FRED/ALFRED series observations with their vintage (realtime) window.",
    schema=_schema(
        _req("ts", TS),
        _req("series_id", pa.string()),
        _opt("value", pa.float64()),
        _req("realtime_start", pa.date32()),
        _opt("realtime_end", pa.date32()),
    ),
    primary_key=("series_id", "ts", "realtime_start"),
    partition_by=_YEAR,
    sort_by=("series_id", "ts"),
    frequency=timedelta(days=1),
    sla=timedelta(minutes=30),
    series_key=("series_id",),
)

NOAA_GHCND_DAILY = Dataset(
    name="noaa_ghcnd_daily",
    description="NOAA CDO GHCN-Daily station values (one row per station, datatype and day).",
    schema=_schema(
        _req("ts", TS),
        _req("station", pa.string()),
        _req("datatype", pa.string()),
        _opt("value", pa.float64()),
        _opt("units", pa.string()),
        _opt("mflag", pa.string()),
        _opt("qflag", pa.string()),
        _opt("sflag", pa.string()),
        _opt("obs_time", pa.string()),
    ),
    primary_key=("station", "datatype", "ts"),
    partition_by=_MONTH,
    sort_by=("station", "datatype", "ts"),
    frequency=timedelta(days=1),
    sla=timedelta(minutes=20),
    series_key=("station", "datatype"),
)

NOAA_OBSERVATIONS = Dataset(
    name="noaa_observations",
    description="api.weather.gov station observations (hourly METAR-based), SI units.",
    schema=_schema(
        _req("ts", TS),
        _req("station", pa.string()),
        _opt("temperature_c", pa.float64()),
        _opt("dewpoint_c", pa.float64()),
        _opt("relative_humidity", pa.float64()),
        _opt("wind_direction_deg", pa.float64()),
        _opt("wind_speed_kmh", pa.float64()),
        _opt("wind_gust_kmh", pa.float64()),
        _opt("barometric_pressure_pa", pa.float64()),
        _opt("sea_level_pressure_pa", pa.float64()),
        _opt("visibility_m", pa.float64()),
        _opt("precipitation_last_hour_mm", pa.float64()),
        _opt("text_description", pa.string()),
        _opt("raw_message", pa.string()),
    ),
    primary_key=("station", "ts"),
    partition_by=_MONTH,
    sort_by=("station", "ts"),
    frequency=timedelta(hours=1),
    sla=timedelta(minutes=20),
    series_key=("station",),
    value_ranges={"temperature_c": (-90.0, 60.0)},
)

CENSUS_ACS = Dataset(
    name="census_acs",
    description="Census ACS estimates in long form: one row per vintage, geography and variable.",
    schema=_schema(
        _req("ts", TS),
        _req("dataset", pa.string()),
        _req("vintage", pa.int32()),
        _req("geo_level", pa.string()),
        _req("geo_id", pa.string()),
        _opt("name", pa.string()),
        _req("variable", pa.string()),
        _opt("value", pa.float64()),
        _opt("value_text", pa.string()),
    ),
    primary_key=("dataset", "vintage", "geo_level", "geo_id", "variable"),
    partition_by=_YEAR,
    sort_by=("dataset", "variable", "geo_id"),
    sla=timedelta(hours=24),
    series_key=("dataset", "geo_level", "geo_id", "variable"),
)

CENSUS_TIMESERIES = Dataset(
    name="census_timeseries",
    description="Census economic timeseries (e.g. EITS MARTS) in long form.",
    schema=_schema(
        _req("ts", TS),
        _req("program", pa.string()),
        _req("time", pa.string()),
        _req("category_code", pa.string()),
        _req("data_type_code", pa.string()),
        _req("seasonally_adj", pa.string()),
        _req("geo_id", pa.string()),
        _opt("value", pa.float64()),
        _opt("value_text", pa.string()),
        _opt("error_data", pa.string()),
    ),
    primary_key=("program", "ts", "category_code", "data_type_code", "seasonally_adj", "geo_id"),
    partition_by=_YEAR,
    sort_by=("program", "category_code", "ts"),
    frequency=timedelta(days=30),
    sla=timedelta(hours=24),
    series_key=("program", "category_code", "data_type_code", "seasonally_adj", "geo_id"),
)

DATASETS: dict[str, Dataset] = {}


def register_dataset(dataset: Dataset, *, replace: bool = False) -> Dataset:
    """Add a dataset to the registry (custom sources declare theirs this way)."""
    if dataset.name in DATASETS and not replace and DATASETS[dataset.name] != dataset:
        raise SchemaError(f"dataset {dataset.name!r} is already registered with a different definition")
    DATASETS[dataset.name] = dataset
    return dataset


for _ds in (
    RT_LMP,
    DA_LMP,
    EIA_DAILY_FUEL,
    EIA_HOURLY_FUEL,
    EIA_HOURLY_REGION,
    EIA_SPOT_PRICES,
    FRED_OBSERVATIONS,
    NOAA_GHCND_DAILY,
    NOAA_OBSERVATIONS,
    CENSUS_ACS,
    CENSUS_TIMESERIES,
):
    register_dataset(_ds)


def get_dataset(name: str | Dataset) -> Dataset:
    """Look a dataset up by name; raises :class:`SchemaError` listing the known names."""
    if isinstance(name, Dataset):
        return name
    try:
        return DATASETS[name]
    except KeyError:
        raise SchemaError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def conform(
    table: pa.Table,
    dataset: Dataset | str,
    *,
    extra: Literal["drop", "keep", "error"] = "keep",
    strict: bool = True,
) -> pa.Table:
    """Cast ``table`` to the dataset's canonical schema, by column name.

    Missing nullable columns are added as nulls. With ``strict`` (the default) missing required
    columns, nulls in required columns and impossible casts raise :class:`SchemaError` naming the
    column. With ``strict=False`` they are left as found (absent, null, or in their original type) so a
    quality gate can name each problem; nothing is dropped. Extra columns are kept after the canonical
    ones (schema evolution), dropped, or rejected, as ``extra`` says.
    """
    ds = get_dataset(dataset)
    columns: list[pa.Array | pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    for f in ds.schema:
        if f.name not in table.column_names:
            if not f.nullable:
                if not strict:
                    continue
                raise SchemaError(
                    f"{ds.name}: required column {f.name!r} is missing", columns=table.column_names
                )
            columns.append(pa.nulls(table.num_rows, f.type))
            fields.append(f)
            continue
        col = table.column(f.name)
        field = f
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                if strict:
                    raise SchemaError(
                        f"{ds.name}: column {f.name!r} of type {col.type} cannot be cast to {f.type}: {exc}"
                    ) from None
                field = pa.field(f.name, col.type, nullable=True)
        if not f.nullable and col.null_count:
            if strict:
                raise SchemaError(f"{ds.name}: required column {f.name!r} has {col.null_count} null(s)")
            field = field.with_nullable(True)
        columns.append(col)
        fields.append(field)
    extras = [c for c in table.column_names if c not in ds.schema.names]
    if extras and extra == "error":
        raise SchemaError(f"{ds.name}: unexpected column(s) {extras}")
    if extras and extra == "keep":
        for name in extras:
            col = table.column(name)
            columns.append(col)
            fields.append(pa.field(name, col.type, nullable=True))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
