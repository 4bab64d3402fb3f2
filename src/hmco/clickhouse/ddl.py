"""ClickHouse DDL for a real-time dataset, rendered from its canonical schema (pure: text in, text out).

Layout for dataset ``rt_lmp`` (the same names for any dataset with ``iso``/``node`` series keys)::

    single node                                 cluster (ON CLUSTER c, 3 shards x 2 replicas)
    rt_lmp_store  ReplacingMergeTree(version)   rt_lmp_local  ReplicatedReplacingMergeTree(..., version)
                                                rt_lmp_store  Distributed(c, db, rt_lmp_local,
                                                              cityHash64(iso, node))
    rt_lmp         VIEW ... FROM rt_lmp_store FINAL   (both: what readers, BI and the seed query use)
    rt_lmp_hourly / rt_lmp_daily                  VIEWs ... FINAL over the rollup stores
    rt_lmp_{hourly,daily}_store                   ReplacingMergeTree(computed_at) holding exact rollups
    rt_lmp_{hourly,daily}_refresh                 refreshable MVs recomputing the recent days from FINAL

Writers insert into ``<name>_store``; readers query ``<name>``, a view with ``FINAL``, so a re-delivered or
revised interval is seen once, with its newest ``version``, whatever the merge state.

``version`` is the row's *source* revision time, never the server's insert time: the column's DEFAULT is
``published_at`` in epoch microseconds (``toUInt64(greatest(ifNull(toUnixTimestamp64Micro(published_at),
0), 0))``), computed by the server from the row itself. ``published_at`` travels inside every batch (the
ISO's publication time, else a per-source increasing fetch time; the ClickHouse sink stamps rows that
still lack it with its own increasing clock), so the newest revision wins whatever order batches arrive
in: a stale batch re-sent after the insert-deduplication window loses to the newer revision already
stored, and a revision that returns to earlier values (A -> B -> A) carries a newer ``published_at`` and
therefore different bytes and a different deduplication token. A row inserted by hand without
``published_at`` gets version 0 (older than any sourced row; equal versions keep the last insert).
Stores created before this rule (``version`` = insert time) are upgraded in place by
:func:`hmco.clickhouse.setup.ensure_schema` (:meth:`ClickHouseLayout.upgrade`); their old rows keep the
insert-time versions they were stored with, which are epoch microseconds too.

Rollups are never incremental MVs (they would double-count revisions, lakehouse.md §4.2): each rollup row
is recomputed from ``FINAL`` and replaces the previous one (see :mod:`hmco.clickhouse.setup`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from hmco.errors import SchemaError
from hmco.schemas import Dataset, get_dataset

__all__ = [
    "ROLLUPS",
    "VERSION_SOURCE",
    "ClickHouseLayout",
    "Rollup",
    "column_type",
    "quote_identifier",
    "render_schema",
]


#: The canonical column a row's ``version`` is derived from (a timestamp; see the module docstring).
VERSION_SOURCE = "published_at"


@dataclass(frozen=True)
class Rollup:
    """One exact aggregate level: ``bucket`` column computed by ``expr`` from the time column."""

    name: str  # "hourly" -> tables <dataset>_hourly(_store|_local|_refresh)
    bucket: str  # output column name
    expr: str  # ClickHouse expression over the time column, {ts} placeholder
    bucket_type: str
    align_seconds: int  # a recompute window must start and end on multiples of this


ROLLUPS = (
    Rollup("hourly", "hour", "toStartOfHour({ts})", "DateTime64(0, 'UTC')", 3600),
    Rollup("daily", "day", "toDate({ts}, 'UTC')", "Date", 86400),
)


def column_type(field: pa.Field) -> str:
    """ClickHouse column type and codec of one canonical Arrow field."""
    t = field.type
    if pa.types.is_timestamp(t):
        unit = {"s": 0, "ms": 3, "us": 6, "ns": 9}[t.unit]
        base, codec = f"DateTime64({unit}, '{t.tz or 'UTC'}')", "CODEC(Delta, ZSTD(1))"
    elif pa.types.is_floating(t):
        base, codec = "Float64" if t.bit_width == 64 else "Float32", "CODEC(Gorilla, ZSTD(1))"
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        return "LowCardinality(Nullable(String))" if field.nullable else "LowCardinality(String)"
    elif pa.types.is_integer(t):
        base = f"{'' if pa.types.is_signed_integer(t) else 'U'}Int{t.bit_width}"
        codec = "CODEC(T64, ZSTD(1))"
    elif pa.types.is_date(t):
        base, codec = "Date32", "CODEC(Delta, ZSTD(1))"
    elif pa.types.is_boolean(t):
        base, codec = "Bool", ""
    else:
        raise SchemaError(f"no ClickHouse type for column {field.name!r} of Arrow type {t}")
    typ = f"Nullable({base})" if field.nullable else base
    return f"{typ} {codec}".rstrip()


@dataclass(frozen=True)
class ClickHouseLayout:
    """Names, keys and settings of one dataset's real-time tables; ``render()`` gives the DDL."""

    dataset: Dataset
    database: str = "default"
    cluster: str | None = None
    retention_days: int = 400
    refresh_every: str = "5 MINUTE"
    lookback_days: int = 2
    dedup_window: int = 1000

    @classmethod
    def of(
        cls,
        dataset: str | Dataset = "rt_lmp",
        *,
        database: str = "default",
        cluster: str | None = None,
        retention_days: int = 400,
        **kwargs: object,
    ) -> ClickHouseLayout:
        return cls(get_dataset(dataset), database, cluster, retention_days, **kwargs)  # type: ignore[arg-type]

    # names ---------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.dataset.name

    def qualified(self, table: str) -> str:
        return f"{quote_identifier(self.database)}.{quote_identifier(table)}"

    @property
    def view(self) -> str:
        """What readers query (deduplicated): ``<db>.rt_lmp``."""
        return self.qualified(self.name)

    @property
    def store(self) -> str:
        """What writers insert into: the RMT table, or the Distributed table over it on a cluster."""
        return self.qualified(f"{self.name}_store")

    @property
    def local(self) -> str:
        """The table holding rows on each node (``_store`` on a single node)."""
        return self.qualified(f"{self.name}_local" if self.cluster else f"{self.name}_store")

    @property
    def local_name(self) -> str:
        """Unqualified, unquoted name of :attr:`local` (for ``system.*`` lookups)."""
        return f"{self.name}_local" if self.cluster else f"{self.name}_store"

    @property
    def store_name(self) -> str:
        """Unqualified, unquoted name of :attr:`store`."""
        return f"{self.name}_store"

    def rollup_view(self, rollup: Rollup) -> str:
        return self.qualified(f"{self.name}_{rollup.name}")

    def rollup_store(self, rollup: Rollup) -> str:
        return self.qualified(f"{self.name}_{rollup.name}_store")

    def rollup_local(self, rollup: Rollup) -> str:
        suffix = "local" if self.cluster else "store"
        return self.qualified(f"{self.name}_{rollup.name}_{suffix}")

    def rollup_refresh(self, rollup: Rollup) -> str:
        return self.qualified(f"{self.name}_{rollup.name}_refresh")

    def row_tables(self) -> list[str]:
        """Tables whose rows carry ``iso`` (where row policies go: the ``_local`` ones on a cluster)."""
        return [self.local, *(self.rollup_local(r) for r in ROLLUPS)]

    # keys ----------------------------------------------------------------------------------------
    @property
    def time_column(self) -> str:
        return self.dataset.time_column

    @property
    def series(self) -> tuple[str, ...]:
        """Series columns in ORDER BY order: sort_by first (iso, node), then the rest of the key (market)."""
        ds = self.dataset
        first = [c for c in ds.sort_by if c != ds.time_column]
        rest = [c for c in ds.primary_key if c not in first and c != ds.time_column]
        return tuple(first + rest)

    @property
    def order_by(self) -> tuple[str, ...]:
        return (*self.series, self.time_column)

    @property
    def shard_key(self) -> str:
        return f"cityHash64({', '.join(quote_identifier(c) for c in self.series[:2])})"

    @property
    def version_source(self) -> str:
        """The timestamp column ``version`` is derived from (``published_at``).

        Raises:
            SchemaError: the dataset has no ``published_at`` timestamp column to version rows by.
        """
        schema = self.dataset.schema
        if VERSION_SOURCE not in schema.names or not pa.types.is_timestamp(schema.field(VERSION_SOURCE).type):
            raise SchemaError(
                f"dataset {self.name} has no {VERSION_SOURCE!r} timestamp column: ClickHouse keeps the "
                "newest revision of a row by its source publication time and needs that column"
            )
        return VERSION_SOURCE

    def version_expression(self) -> str:
        """``version`` of a row: its ``published_at`` in epoch microseconds (0 when it has none)."""
        src = quote_identifier(self.version_source)
        return f"toUInt64(greatest(ifNull(toUnixTimestamp64Micro({src}), 0), 0))"

    def version_column(self, *, codec: bool = True) -> str:
        """The ``version`` column definition (without the codec on a Distributed table: no storage)."""
        definition = f"version UInt64 DEFAULT {self.version_expression()}"
        return f"{definition} CODEC(Delta, ZSTD(1))" if codec else definition

    @property
    def value_columns(self) -> tuple[str, ...]:
        """Float columns averaged by the rollups; the first (``lmp``) also gets min/max/sum."""
        ds = self.dataset
        return tuple(f.name for f in ds.schema if pa.types.is_floating(f.type))

    # rendering -----------------------------------------------------------------------------------
    def _on_cluster(self) -> str:
        return f" ON CLUSTER {quote_identifier(self.cluster)}" if self.cluster else ""

    def _ttl(self, column_expr: str) -> str:
        return f"TTL {column_expr} + INTERVAL {int(self.retention_days)} DAY DELETE"

    def ttl_expression(self) -> str:
        return self._ttl(f"toDateTime({quote_identifier(self.time_column)})")

    def rollup_ttl_expression(self, rollup: Rollup) -> str:
        return self._ttl(f"toDateTime({quote_identifier(rollup.bucket)})")

    def _engine(self, version: str) -> str:
        if self.cluster:
            path = "/clickhouse/tables/{shard}/{database}/{table}"
            return f"ReplicatedReplacingMergeTree('{path}', '{{replica}}', {version})"
        return f"ReplacingMergeTree({version})"

    def create_database(self) -> str:
        return f"CREATE DATABASE IF NOT EXISTS {quote_identifier(self.database)}{self._on_cluster()}"

    def create_local(self) -> str:
        ds = self.dataset
        cols = [f"    {quote_identifier(f.name)} {column_type(f)}" for f in ds.schema]
        cols.append(f"    {self.version_column()}")
        settings = ["index_granularity = 8192"]
        if not self.cluster:
            settings.append(f"non_replicated_deduplication_window = {int(self.dedup_window)}")
        return (
            f"CREATE TABLE IF NOT EXISTS {self.local}{self._on_cluster()}\n(\n"
            + ",\n".join(cols)
            + f"\n)\nENGINE = {self._engine('version')}\n"
            f"PARTITION BY toYYYYMM({quote_identifier(self.time_column)})\n"
            f"ORDER BY ({', '.join(quote_identifier(c) for c in self.order_by)})\n"
            f"{self.ttl_expression()}\n"
            f"SETTINGS {', '.join(settings)}"
        )

    def create_distributed(self, local: str, dist: str) -> str:
        db, table = local.split(".", 1)
        return (
            f"CREATE TABLE IF NOT EXISTS {dist}{self._on_cluster()} AS {local}\n"
            f"ENGINE = Distributed({quote_identifier(self.cluster or '')}, {db}, {table}, {self.shard_key})"
        )

    def view_columns(self) -> list[str]:
        return [*(quote_identifier(f.name) for f in self.dataset.schema), "version"]

    def create_view(self, *, replace: bool = False) -> str:
        create = "CREATE OR REPLACE VIEW" if replace else "CREATE VIEW IF NOT EXISTS"
        return (
            f"{create} {self.view}{self._on_cluster()} AS\n"
            f"SELECT {', '.join(self.view_columns())}\nFROM {self.store} FINAL"
        )

    def rollup_columns(self, rollup: Rollup) -> list[tuple[str, str]]:
        """(name, type) of rollup columns: series, bucket, lmp avg/min/max/sum, averages, n, computed_at."""
        ds = self.dataset
        out = [(c, column_type(ds.schema.field(c)).split(" CODEC")[0]) for c in self.series]
        out.append((rollup.bucket, rollup.bucket_type))
        first, *others = self.value_columns
        out += [(f"{first}_{agg}", "Float64") for agg in ("avg", "min", "max", "sum")]
        out += [(f"{c}_avg", "Nullable(Float64)") for c in others]
        out += [("n", "UInt32"), ("computed_at", "DateTime64(6, 'UTC')")]
        return out

    def create_rollup_local(self, rollup: Rollup) -> str:
        cols = ",\n".join(f"    {quote_identifier(n)} {t}" for n, t in self.rollup_columns(rollup))
        order = ", ".join(quote_identifier(c) for c in (*self.series, rollup.bucket))
        return (
            f"CREATE TABLE IF NOT EXISTS {self.rollup_local(rollup)}{self._on_cluster()}\n(\n{cols}\n)\n"
            f"ENGINE = {self._engine('computed_at')}\n"
            f"PARTITION BY toYYYYMM({quote_identifier(rollup.bucket)})\n"
            f"ORDER BY ({order})\n"
            f"{self.rollup_ttl_expression(rollup)}\n"
            "SETTINGS index_granularity = 8192"
        )

    def create_rollup_view(self, rollup: Rollup) -> str:
        names = [quote_identifier(n) for n, _ in self.rollup_columns(rollup)]
        return (
            f"CREATE VIEW IF NOT EXISTS {self.rollup_view(rollup)}{self._on_cluster()} AS\n"
            f"SELECT {', '.join(names)}\nFROM {self.rollup_store(rollup)} FINAL"
        )

    def rollup_select(self, rollup: Rollup, source: str, where: str) -> str:
        """The exact aggregate over deduplicated rows of ``source`` (FINAL) restricted by ``where``."""
        ts = quote_identifier(self.time_column)
        first, *others = self.value_columns
        keys = [quote_identifier(c) for c in self.series]
        aggs = [
            f"avg({first}) AS {first}_avg",
            f"min({first}) AS {first}_min",
            f"max({first}) AS {first}_max",
            f"sum({first}) AS {first}_sum",
            *(f"avg({c}) AS {c}_avg" for c in others),
            "toUInt32(count()) AS n",
            "now64(6, 'UTC') AS computed_at",
        ]
        bucket = f"{rollup.expr.format(ts=ts)} AS {quote_identifier(rollup.bucket)}"
        return (
            f"SELECT {', '.join(keys)}, {bucket}, {', '.join(aggs)}\n"
            f"FROM {source} FINAL\nWHERE {where}\n"
            f"GROUP BY {', '.join(keys)}, {quote_identifier(rollup.bucket)}"
        )

    def create_rollup_refresh(self, rollup: Rollup) -> str:
        """Refreshable MV: every ``refresh_every`` recompute the last ``lookback_days`` whole UTC days.

        On a cluster it runs on every node over the node's own shard (rows of a series live on one shard),
        so the result is exact; replicas compute the same rows, which the rollup RMT collapses.
        """
        ts = quote_identifier(self.time_column)
        where = f"{ts} >= toStartOfDay(now('UTC')) - INTERVAL {int(self.lookback_days)} DAY"
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.rollup_refresh(rollup)}{self._on_cluster()}\n"
            f"REFRESH EVERY {self.refresh_every} APPEND TO {self.rollup_local(rollup)} AS\n"
            + self.rollup_select(rollup, self.local, where)
        )

    def render(self) -> list[str]:
        """Every statement, in dependency order; each is idempotent (IF NOT EXISTS)."""
        out = [self.create_database(), self.create_local()]
        if self.cluster:
            out.append(self.create_distributed(self.local, self.store))
        out.append(self.create_view())
        for rollup in ROLLUPS:
            out.append(self.create_rollup_local(rollup))
            if self.cluster:
                out.append(self.create_distributed(self.rollup_local(rollup), self.rollup_store(rollup)))
            out.append(self.create_rollup_view(rollup))
            out.append(self.create_rollup_refresh(rollup))
        return out

    def modify_ttl(self) -> list[str]:
        """ALTERs that set the retention on existing tables (after ``retention_days`` changed)."""
        on = self._on_cluster()
        return [
            f"ALTER TABLE {self.local}{on} MODIFY {self.ttl_expression()}",
            *(
                f"ALTER TABLE {self.rollup_local(r)}{on} MODIFY {self.rollup_ttl_expression(r)}"
                for r in ROLLUPS
            ),
        ]

    def add_column(self, table: str, column: str) -> str:
        """``ALTER TABLE … ADD COLUMN IF NOT EXISTS`` for a canonical column an older ``table`` lacks.

        ``table`` is :attr:`local` or, on a cluster, :attr:`store` (the Distributed table gets no codec).
        """
        schema = self.dataset.schema
        field = schema.field(column)
        if not field.nullable:
            raise SchemaError(
                f"cannot add required column {column!r} to existing {table}: old rows have no value for it"
            )
        at = schema.get_field_index(column)
        where = f"AFTER {quote_identifier(schema.names[at - 1])}" if at else "FIRST"
        typ = column_type(field) if table == self.local else column_type(field).split(" CODEC")[0]
        return f"ALTER TABLE {table}{self._on_cluster()} ADD COLUMN IF NOT EXISTS {quote_identifier(column)} {typ} {where}"

    def modify_version(self, table: str) -> str:
        """``ALTER TABLE … MODIFY COLUMN version`` to the derived DEFAULT (metadata only, no mutation)."""
        column = self.version_column(codec=table == self.local)
        return f"ALTER TABLE {table}{self._on_cluster()} MODIFY COLUMN {column}"

    def upgrade(self) -> list[str]:
        """Every statement that upgrades a store created when ``version`` was the server's insert time.

        Add ``published_at`` (rows stored before keep NULL and their insert-time ``version``), make
        ``version`` default to it, and re-create the view with the new column. Local table first, then the
        Distributed table over it. :func:`hmco.clickhouse.setup.ensure_schema` runs only what is missing.
        """
        tables = [self.local, self.store] if self.cluster else [self.local]
        src = self.version_source
        return [
            *(self.add_column(t, src) for t in tables),
            *(self.modify_version(t) for t in tables),
            self.create_view(replace=True),
        ]


def render_schema(
    dataset: str | Dataset = "rt_lmp",
    *,
    database: str = "default",
    cluster: str | None = None,
    retention_days: int = 400,
) -> list[str]:
    """The DDL statements for ``dataset``'s real-time tables (see the module docstring for the layout)."""
    return ClickHouseLayout.of(
        dataset, database=database, cluster=cluster, retention_days=retention_days
    ).render()


def quote_identifier(name: str) -> str:
    """Quote an identifier only when needed (names from schemas and settings; never user data)."""
    if name.replace("_", "").isalnum() and not name[0].isdigit():
        return name
    if "`" in name or "\\" in name:  # a backslash would escape the closing backquote
        raise SchemaError(f"identifier {name!r} contains a backquote or backslash")
    return f"`{name}`"
