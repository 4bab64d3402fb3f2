"""rt_lmp schema as code on the real ClickHouse engine (chdb): DDL, dedup view, rollups, TTL, cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from hmco.clickhouse import (
    ROLLUPS,
    ClickHouseLayout,
    connect_clickhouse,
    ensure_schema,
    newest_intervals,
    refresh_rollups,
    set_retention,
)
from hmco.clickhouse.setup import upgrade_statements
from hmco.query.clickhouse import SEED_QUERY, rt_query
from hmco.schemas import TS, get_dataset
from hmco.sinks.clickhouse import ClickHouseSink
from hmco.windows import Window
from tests.support.chdb import chdb_settings, lmp_rows, unique_database

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)


@pytest.fixture
def db() -> str:
    return unique_database("schema")


@pytest.fixture
def client(db: str):
    return connect_clickhouse(chdb_settings(db))


@pytest.fixture
def layout(client, db: str) -> ClickHouseLayout:
    lay = ClickHouseLayout.of("rt_lmp", database=db)
    ensure_schema(client, lay)
    return lay


def write(sink: ClickHouseSink, table: pa.Table, batch_id: str) -> None:
    ts = table.column("ts")
    lo = ts[0].as_py()
    sink.write(
        table,
        dataset=get_dataset("rt_lmp"),
        window=Window(lo, lo + timedelta(days=1)),
        batch_id=batch_id,
    )


def tables_state(client, db: str) -> list[tuple]:
    return client.query(
        "SELECT name, engine, create_table_query, metadata_modification_time FROM system.tables "
        "WHERE database = {db:String} ORDER BY name",
        parameters={"db": db},
    ).result_rows


def test_setup_twice_changes_nothing(client, layout: ClickHouseLayout, db: str) -> None:
    before = tables_state(client, db)
    ensure_schema(client, layout)
    assert tables_state(client, db) == before
    assert [r[0] for r in before] == [
        "rt_lmp",
        "rt_lmp_daily",
        "rt_lmp_daily_refresh",
        "rt_lmp_daily_store",
        "rt_lmp_hourly",
        "rt_lmp_hourly_refresh",
        "rt_lmp_hourly_store",
        "rt_lmp_store",
    ]


def test_store_is_replacing_merge_tree_derived_from_canonical_schema(
    client, layout: ClickHouseLayout, db: str
) -> None:
    row = client.query(
        "SELECT engine_full, sorting_key, partition_key FROM system.tables WHERE database = {db:String} "
        "AND name = 'rt_lmp_store'",
        parameters={"db": db},
    ).result_rows[0]
    assert row[0].startswith(
        "ReplacingMergeTree(version) PARTITION BY toYYYYMM(ts) ORDER BY (iso, node, market, ts)"
    )
    assert "TTL toDateTime(ts) + toIntervalDay(400)" in row[0]
    assert "non_replicated_deduplication_window = 1000" in row[0]
    assert row[1] == "iso, node, market, ts"
    columns = dict(
        client.query(
            f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'rt_lmp_store'"
        ).result_rows
    )
    assert list(columns) == [*get_dataset("rt_lmp").schema.names, "version"]
    assert columns["ts"] == "DateTime64(6, 'UTC')"
    assert columns["iso"] == "LowCardinality(String)"
    assert columns["node_type"] == "LowCardinality(Nullable(String))"
    assert columns["energy"] == "Nullable(Float64)"
    assert columns["published_at"] == "Nullable(DateTime64(6, 'UTC'))"
    assert columns["version"] == "UInt64"
    version = client.query(
        "SELECT default_kind, default_expression FROM system.columns "
        f"WHERE database = '{db}' AND table = 'rt_lmp_store' AND name = 'version'"
    ).result_rows
    assert version == [("DEFAULT", "toUInt64(greatest(ifNull(toUnixTimestamp64Micro(published_at), 0), 0))")]


def test_version_is_published_at_in_microseconds_never_the_insert_time(
    client, layout: ClickHouseLayout
) -> None:
    store = layout.store
    client.command(
        f"INSERT INTO {store} (ts, interval_end, iso, market, node, lmp, published_at) VALUES "
        "('2026-11-26 00:00:00', '2026-11-26 00:05:00', 'CAISO', 'RT5', 'P', 1, '2021-03-04 05:06:07.000008'), "
        "('2026-11-26 00:00:00', '2026-11-26 00:05:00', 'CAISO', 'RT5', 'N', 1, NULL)"
    )
    client.command(  # a row inserted by hand without the column at all
        f"INSERT INTO {store} (ts, interval_end, iso, market, node, lmp) VALUES "
        "('2026-11-26 00:00:00', '2026-11-26 00:05:00', 'CAISO', 'RT5', 'M', 1)"
    )
    got = client.query(f"SELECT node, version FROM {store} ORDER BY node").result_rows
    published = int(datetime(2021, 3, 4, 5, 6, 7, 8, tzinfo=UTC).timestamp() * 1_000_000)
    assert got == [("M", 0), ("N", 0), ("P", published)]  # not the server's now(): no source time -> 0


LEGACY_STORE = """CREATE TABLE {db}.rt_lmp_store
(
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    interval_end DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    iso LowCardinality(String),
    market LowCardinality(String),
    node LowCardinality(String),
    node_type LowCardinality(Nullable(String)),
    lmp Float64 CODEC(Gorilla, ZSTD(1)),
    energy Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    congestion Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    loss Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    ghg Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    version UInt64 DEFAULT toUnixTimestamp64Micro(now64(6)) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(ts)
ORDER BY (iso, node, market, ts)
TTL toDateTime(ts) + INTERVAL 400 DAY DELETE
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000"""

LEGACY_VIEW = """CREATE VIEW {db}.rt_lmp AS
SELECT ts, interval_end, iso, market, node, node_type, lmp, energy, congestion, loss, ghg, version
FROM {db}.rt_lmp_store FINAL"""


def test_ensure_schema_upgrades_a_store_versioned_by_insert_time(client) -> None:
    db = unique_database("legacy")
    client.command(f"CREATE DATABASE {db}")
    client.command(LEGACY_STORE.format(db=db))
    client.command(LEGACY_VIEW.format(db=db))
    client.insert_arrow(f"{db}.rt_lmp_store", lmp_rows(T0, 2, ["A", "B"], price=10.0))  # the old sink
    old = client.query(f"SELECT node, ts, version FROM {db}.rt_lmp_store ORDER BY node, ts").result_rows
    layout = ClickHouseLayout.of("rt_lmp", database=db)

    ran = ensure_schema(client, layout)

    assert layout.upgrade() == [
        f"ALTER TABLE {db}.rt_lmp_store ADD COLUMN IF NOT EXISTS published_at "
        "Nullable(DateTime64(6, 'UTC')) CODEC(Delta, ZSTD(1)) AFTER ghg",
        f"ALTER TABLE {db}.rt_lmp_store MODIFY COLUMN version UInt64 DEFAULT "
        "toUInt64(greatest(ifNull(toUnixTimestamp64Micro(published_at), 0), 0)) CODEC(Delta, ZSTD(1))",
        layout.create_view(replace=True),
    ]
    render = layout.render()  # database and store, the upgrade, then the (existing) view and rollups
    assert ran == [*render[:2], *layout.upgrade(), *render[2:]]
    columns = client.query(
        f"SELECT table, name, default_expression FROM system.columns WHERE database = '{db}' "
        "AND table IN ('rt_lmp_store', 'rt_lmp') AND name IN ('published_at', 'version') ORDER BY table, name"
    ).result_rows
    expr = "toUInt64(greatest(ifNull(toUnixTimestamp64Micro(published_at), 0), 0))"
    assert columns == [
        ("rt_lmp", "published_at", ""),
        ("rt_lmp", "version", ""),
        ("rt_lmp_store", "published_at", ""),
        ("rt_lmp_store", "version", expr),
    ]
    # Stored rows keep their insert-time versions (metadata-only ALTER) and get a NULL published_at.
    assert client.query(f"SELECT node, ts, version FROM {layout.view} ORDER BY node, ts").result_rows == old
    assert client.query(f"SELECT count() FROM {layout.view} WHERE published_at IS NULL").result_rows == [(4,)]

    # Idempotent: a second run finds nothing to upgrade and changes nothing.
    before = tables_state(client, db)
    assert ensure_schema(client, layout) == layout.render()
    assert tables_state(client, db) == before

    # From now on the data decides: a revision published after the old rows wins, a stale one loses.
    newest_old = datetime.fromtimestamp(max(v for *_, v in old) / 1e6, UTC)
    sink = ClickHouseSink(client, layout)
    write(sink, published(lmp_rows(T0, 1, ["A"], price=70.0), newest_old + timedelta(seconds=1)), "new")
    write(sink, published(lmp_rows(T0, 2, ["B"], price=-5.0), newest_old - timedelta(days=1)), "stale")
    got = client.query(f"SELECT node, lmp FROM {layout.view} ORDER BY node, ts").result_rows
    assert got == [("A", 70.0), ("A", 11.0), ("B", 10.0), ("B", 11.0)]
    assert stored_rollup(client, layout, "hourly") == direct_rollup(client, layout, "toStartOfHour(ts)")


def published(table: pa.Table, at: datetime) -> pa.Table:
    return table.append_column("published_at", pa.array([at] * table.num_rows, TS))


def test_view_returns_canonical_arrow_schema(client, layout: ClickHouseLayout) -> None:
    sink = ClickHouseSink(client, layout, rollups=False)
    write(sink, lmp_rows(T0, 2, ["A"]), "b1")
    got = rt_query(client, f"SELECT * EXCEPT version FROM {layout.view} ORDER BY ts")
    assert got.schema.names == get_dataset("rt_lmp").schema.names
    assert got.schema.field("ts").type == TS
    assert got.column("ts").to_pylist() == [T0, T0 + timedelta(minutes=5)]


def test_seed_query_runs_as_written_and_counts_revised_interval_once(
    client, layout: ClickHouseLayout
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    sink = ClickHouseSink(client, layout, rollups=False)
    write(sink, lmp_rows(now, 3, ["A", "B"], price=10.0), "first")
    revised = lmp_rows(now, 1, ["A"], price=100.0)  # A's first interval: 10 -> 100
    write(sink, revised, "revision")
    got = rt_query(client, SEED_QUERY).to_pylist()
    # A: (100 + 11 + 12) / 3; B: (10 + 11 + 12) / 3 -- the revision replaced, did not add, a row.
    assert got == [
        {"iso": "CAISO", "node": "A", "avg_lmp": pytest.approx(41.0)},
        {"iso": "CAISO", "node": "B", "avg_lmp": pytest.approx(11.0)},
    ]
    raw = client.query(f"SELECT count() FROM {layout.store}").result_rows[0][0]
    assert raw == 7  # stored twice until a merge; the view shows it once


def direct_rollup(client, layout: ClickHouseLayout, bucket: str) -> list[tuple]:
    return client.query(
        f"SELECT iso, node, market, {bucket} AS b, round(avg(lmp), 9), min(lmp), max(lmp), "
        f"round(sum(lmp), 9), toUInt32(count()) FROM {layout.view} "
        "GROUP BY iso, node, market, b ORDER BY iso, node, market, b"
    ).result_rows


def stored_rollup(client, layout: ClickHouseLayout, name: str) -> list[tuple]:
    rollup = next(r for r in ROLLUPS if r.name == name)
    return client.query(
        f"SELECT iso, node, market, {rollup.bucket}, round(lmp_avg, 9), lmp_min, lmp_max, "
        "round(lmp_sum, 9), n "
        f"FROM {layout.rollup_view(rollup)} ORDER BY iso, node, market, {rollup.bucket}"
    ).result_rows


def test_rollups_equal_group_by_over_deduplicated_rows_after_revisions(
    client, layout: ClickHouseLayout
) -> None:
    sink = ClickHouseSink(client, layout)
    write(sink, lmp_rows(T0, 36, ["A", "B"]), "day")  # 3 hours
    write(sink, lmp_rows(T0, 36, ["A", "B"]), "day")  # re-delivered as is
    write(sink, lmp_rows(T0 + timedelta(minutes=65), 2, ["B"], price=500.0), "revision-1")
    write(sink, lmp_rows(T0 + timedelta(minutes=65), 1, ["B"], price=-50.0), "revision-2")
    hourly = stored_rollup(client, layout, "hourly")
    assert hourly == direct_rollup(client, layout, "toStartOfHour(ts)")
    assert len(hourly) == 6
    b_hour1 = next(r for r in hourly if r[1] == "B" and r[3] == datetime(2026, 11, 26, 1, 0))
    assert b_hour1[6:] == (501.0, sum([22.0, -50.0, 501.0, *[10.0 + i for i in range(15, 24)]]), 12)
    daily = stored_rollup(client, layout, "daily")
    assert daily == direct_rollup(client, layout, "toDate(ts, 'UTC')")
    assert [r[-1] for r in daily] == [36, 36]


def test_refreshable_views_recompute_exact_rollups(client, layout: ClickHouseLayout) -> None:
    recent = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    sink = ClickHouseSink(client, layout, rollups=False)
    write(sink, lmp_rows(recent, 24, ["A"]), "rows")
    write(sink, lmp_rows(recent + timedelta(minutes=10), 1, ["A"], price=99.0), "revision")
    for rollup in ROLLUPS:
        client.command(f"SYSTEM REFRESH VIEW {layout.rollup_refresh(rollup)}")
        client.command(f"SYSTEM WAIT VIEW {layout.rollup_refresh(rollup)}")
    assert stored_rollup(client, layout, "hourly") == direct_rollup(client, layout, "toStartOfHour(ts)")
    assert stored_rollup(client, layout, "daily") == direct_rollup(client, layout, "toDate(ts, 'UTC')")
    assert sum(r[-1] for r in stored_rollup(client, layout, "hourly")) == 24


def test_ttl_removes_expired_rows_on_optimize_final(client, layout: ClickHouseLayout) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    sink = ClickHouseSink(client, layout)
    write(sink, lmp_rows(now - timedelta(days=2), 3, ["OLD"]), "old")
    write(sink, lmp_rows(now - timedelta(hours=2), 3, ["NEW"]), "new")
    short = ClickHouseLayout.of("rt_lmp", database=layout.database, retention_days=1)
    set_retention(client, short)
    client.command(f"OPTIMIZE TABLE {layout.store} FINAL")
    for rollup in ROLLUPS:
        client.command(f"OPTIMIZE TABLE {layout.rollup_store(rollup)} FINAL")
    assert client.query(f"SELECT DISTINCT node FROM {layout.store}").result_rows == [("NEW",)]
    assert client.query(f"SELECT count() FROM {layout.store}").result_rows == [(3,)]
    hours = client.query(f"SELECT DISTINCT node FROM {layout.rollup_store(ROLLUPS[0])}").result_rows
    assert hours == [("NEW",)]


def test_ensure_schema_aligns_changed_retention(client, layout: ClickHouseLayout, db: str) -> None:
    ran = ensure_schema(client, ClickHouseLayout.of("rt_lmp", database=db, retention_days=30))
    assert any("MODIFY TTL toDateTime(ts) + INTERVAL 30 DAY DELETE" in s for s in ran)
    engine = client.query(
        f"SELECT engine_full FROM system.tables WHERE database = '{db}' AND name = 'rt_lmp_store'"
    )
    assert "toIntervalDay(30)" in engine.result_rows[0][0]


def test_newest_interval_end_per_iso(client, layout: ClickHouseLayout) -> None:
    sink = ClickHouseSink(client, layout, rollups=False)
    write(sink, lmp_rows(T0, 4, ["A"], iso="CAISO"), "c")
    write(sink, lmp_rows(T0, 2, ["M"], iso="MISO"), "m")
    got = newest_intervals(client, layout, since=T0 - timedelta(days=1))
    assert got == {"CAISO": T0 + timedelta(minutes=20), "MISO": T0 + timedelta(minutes=10)}


def test_refresh_rollups_aligns_window_to_whole_days(client, layout: ClickHouseLayout) -> None:
    sink = ClickHouseSink(client, layout, rollups=False)
    write(sink, lmp_rows(T0, 288, ["A"]), "day")
    refresh_rollups(
        client, layout, Window(T0 + timedelta(hours=5), T0 + timedelta(hours=5, minutes=5)), ["CAISO"]
    )
    daily = stored_rollup(client, layout, "daily")
    assert [(r[3], r[-1]) for r in daily] == [(T0.date(), 288)]  # whole day, not the 5-minute window
    assert [r[3] for r in stored_rollup(client, layout, "hourly")] == [datetime(2026, 11, 26, 5, 0)]


# cluster DDL: text (golden) + ClickHouse's own parser (EXPLAIN AST); chdb has no cluster to run it on.

CLUSTER = ClickHouseLayout.of("rt_lmp", database="lmp", cluster="hmco_cluster")


def test_cluster_local_table_is_replicated_rmt_on_cluster() -> None:
    assert (
        CLUSTER.create_local().splitlines()[0]
        == "CREATE TABLE IF NOT EXISTS lmp.rt_lmp_local ON CLUSTER hmco_cluster"
    )
    assert (
        "ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)" in CLUSTER.create_local()
    )
    assert "non_replicated_deduplication_window" not in CLUSTER.create_local()
    assert CLUSTER.create_local().splitlines()[13:16] == [
        "    published_at Nullable(DateTime64(6, 'UTC')) CODEC(Delta, ZSTD(1)),",
        "    version UInt64 DEFAULT toUInt64(greatest(ifNull(toUnixTimestamp64Micro(published_at), 0), 0)) "
        "CODEC(Delta, ZSTD(1))",
        ")",
    ]
    assert "now64" not in CLUSTER.create_local()


VERSION_EXPR = "toUInt64(greatest(ifNull(toUnixTimestamp64Micro(published_at), 0), 0))"

CLUSTER_UPGRADE = [
    "ALTER TABLE lmp.rt_lmp_local ON CLUSTER hmco_cluster ADD COLUMN IF NOT EXISTS published_at "
    "Nullable(DateTime64(6, 'UTC')) CODEC(Delta, ZSTD(1)) AFTER ghg",
    "ALTER TABLE lmp.rt_lmp_store ON CLUSTER hmco_cluster ADD COLUMN IF NOT EXISTS published_at "
    "Nullable(DateTime64(6, 'UTC')) AFTER ghg",
    "ALTER TABLE lmp.rt_lmp_local ON CLUSTER hmco_cluster MODIFY COLUMN version UInt64 DEFAULT "
    f"{VERSION_EXPR} CODEC(Delta, ZSTD(1))",
    f"ALTER TABLE lmp.rt_lmp_store ON CLUSTER hmco_cluster MODIFY COLUMN version UInt64 DEFAULT {VERSION_EXPR}",
    "CREATE OR REPLACE VIEW lmp.rt_lmp ON CLUSTER hmco_cluster AS\n"
    "SELECT ts, interval_end, iso, market, node, node_type, lmp, energy, congestion, loss, ghg, "
    "published_at, version\n"
    "FROM lmp.rt_lmp_store FINAL",
]


def test_cluster_upgrade_alters_local_then_distributed_then_replaces_view() -> None:
    assert CLUSTER.upgrade() == CLUSTER_UPGRADE


class SystemColumns:
    """Answers ``system.columns`` lookups from a dict (no cluster here to ask); records nothing else."""

    def __init__(self, tables: dict[str, list[tuple[str, str, str]]]) -> None:
        self.tables = tables

    def query(self, sql: str, parameters: dict[str, str]) -> Any:
        assert "system.columns" in sql and parameters["db"] == "lmp"
        return SimpleNamespace(result_rows=self.tables.get(parameters["t"], []))


def legacy_columns(*, source: bool, derived: bool) -> list[tuple[str, str, str]]:
    names = [n for n in get_dataset("rt_lmp").schema.names if source or n != "published_at"]
    version = ("DEFAULT", VERSION_EXPR if derived else "toUnixTimestamp64Micro(now64(6))")
    return [(n, "", "") for n in names] + [("version", *version)]


def test_cluster_upgrade_inspects_the_local_and_the_distributed_table() -> None:
    view = [(n, "", "") for n in [*get_dataset("rt_lmp").schema.names, "version"]]
    old = legacy_columns(source=False, derived=False)
    legacy = SystemColumns({"rt_lmp_local": old, "rt_lmp_store": old, "rt_lmp": old})
    assert upgrade_statements(legacy, CLUSTER) == CLUSTER_UPGRADE  # type: ignore[arg-type]
    # A previous run upgraded the local tables and stopped: only the Distributed table is left to do.
    half = SystemColumns(
        {"rt_lmp_local": legacy_columns(source=True, derived=True), "rt_lmp_store": old, "rt_lmp": view}
    )
    assert upgrade_statements(half, CLUSTER) == [CLUSTER_UPGRADE[1], CLUSTER_UPGRADE[3]]  # type: ignore[arg-type]
    done = legacy_columns(source=True, derived=True)
    current = SystemColumns({"rt_lmp_local": done, "rt_lmp_store": done, "rt_lmp": view})
    assert upgrade_statements(current, CLUSTER) == []  # type: ignore[arg-type]


def test_cluster_store_is_distributed_sharded_by_iso_and_node() -> None:
    statements = CLUSTER.render()
    assert statements[2] == (
        "CREATE TABLE IF NOT EXISTS lmp.rt_lmp_store ON CLUSTER hmco_cluster AS lmp.rt_lmp_local\n"
        "ENGINE = Distributed(hmco_cluster, lmp, rt_lmp_local, cityHash64(iso, node))"
    )
    assert statements[3] == (
        "CREATE VIEW IF NOT EXISTS lmp.rt_lmp ON CLUSTER hmco_cluster AS\n"
        "SELECT ts, interval_end, iso, market, node, node_type, lmp, energy, congestion, loss, ghg, "
        "published_at, version\n"
        "FROM lmp.rt_lmp_store FINAL"
    )
    assert (
        "CREATE TABLE IF NOT EXISTS lmp.rt_lmp_hourly_store ON CLUSTER hmco_cluster "
        "AS lmp.rt_lmp_hourly_local\n"
        "ENGINE = Distributed(hmco_cluster, lmp, rt_lmp_hourly_local, cityHash64(iso, node))"
    ) in statements


def test_cluster_refresh_views_read_and_write_local_tables() -> None:
    refresh = CLUSTER.create_rollup_refresh(ROLLUPS[0])
    assert refresh.splitlines()[:2] == [
        "CREATE MATERIALIZED VIEW IF NOT EXISTS lmp.rt_lmp_hourly_refresh ON CLUSTER hmco_cluster",
        "REFRESH EVERY 5 MINUTE APPEND TO lmp.rt_lmp_hourly_local AS",
    ]
    assert "FROM lmp.rt_lmp_local FINAL" in refresh


def test_every_cluster_statement_parses(client) -> None:
    statements = CLUSTER.render() + CLUSTER.modify_ttl() + CLUSTER.upgrade()
    assert len(statements) == 12 + 3 + 5
    for stmt in statements:
        assert client.query(f"EXPLAIN AST {stmt}").result_rows, stmt


def test_parser_rejects_a_broken_statement(client) -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError

    with pytest.raises(DatabaseError, match="Syntax error"):
        client.query("EXPLAIN AST " + CLUSTER.create_local().replace("ORDER BY", "ORDER"))


def test_identifier_with_a_backslash_is_refused() -> None:
    from hmco.errors import SchemaError

    with pytest.raises(SchemaError, match="backslash"):
        ClickHouseLayout.of("rt_lmp", database="lmp\\").render()
