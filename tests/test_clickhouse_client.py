"""The one ClickHouse factory: cached chdb client per process, clear errors, HTTP settings; query helpers."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import polars as pl
import pyarrow as pa
import pytest

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.config import Settings
from hmco.errors import ConfigError, TransientError
from hmco.query.clickhouse import rt_query, rt_query_polars, top_nodes_last_hour
from hmco.redaction import redact_text
from hmco.schemas import TS, get_dataset
from hmco.sinks.clickhouse import ClickHouseSink
from hmco.windows import Window
from tests.support.chdb import chdb_dir, chdb_settings, lmp_rows, unique_database


def test_chdb_client_is_reused_for_the_same_path_and_database() -> None:
    assert connect_clickhouse(chdb_settings()) is connect_clickhouse(chdb_settings())


def test_chdb_database_is_created_and_used_for_unqualified_names() -> None:
    db = unique_database("factory")
    client = connect_clickhouse(chdb_settings(db))
    client.command("CREATE TABLE t (x UInt8) ENGINE = Memory")
    assert connect_clickhouse(chdb_settings()).query(
        f"SELECT count() FROM system.tables WHERE database = '{db}'"
    ).result_rows == [(1,)]


def test_second_chdb_path_is_refused_naming_both(tmp_path) -> None:
    connect_clickhouse(chdb_settings())
    other = Settings.load(home=tmp_path, clickhouse={"interface": "chdb", "path": tmp_path / "other"})
    with pytest.raises(ConfigError, match="one data directory per process") as info:
        connect_clickhouse(other)
    assert str(chdb_dir() / "data") in str(info.value)
    assert str(tmp_path / "other") in str(info.value)


def test_unreachable_server_raises_transient_error_without_password() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    settings = Settings.load(clickhouse={"interface": "http", "port": port, "password": "fake-test-pw-123"})
    with pytest.raises(TransientError, match=f"http://127.0.0.1:{port} is unreachable") as info:
        connect_clickhouse(settings)
    assert "fake-test-pw-123" not in str(info.value)
    assert redact_text("pw=fake-test-pw-123") == "pw=***"


@pytest.fixture
def loaded():
    db = unique_database("query")
    client = connect_clickhouse(chdb_settings(db))
    layout = ClickHouseLayout.of("rt_lmp", database=db)
    ensure_schema(client, layout)
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    table = lmp_rows(now, 2, ["A", "B", "C"])
    table = table.set_column(5, "lmp", pa.array([1.0, 5.0, 3.0, 2.0, 6.0, 4.0]))
    ClickHouseSink(client, layout).write(
        table, dataset=get_dataset("rt_lmp"), window=Window(now, now + timedelta(hours=1)), batch_id="q"
    )
    return client, layout, now


def test_seed_query_helper_returns_arrow(loaded) -> None:
    client, _, _ = loaded
    got = top_nodes_last_hour(client)
    assert got.to_pylist() == [
        {"iso": "CAISO", "node": "B", "avg_lmp": 5.5},
        {"iso": "CAISO", "node": "C", "avg_lmp": 3.5},
        {"iso": "CAISO", "node": "A", "avg_lmp": 1.5},
    ]


def test_rt_query_binds_parameters_and_returns_utc_micro_timestamps(loaded) -> None:
    client, layout, _ = loaded
    got = rt_query(
        client,
        f"SELECT hour, n FROM {layout.qualified('rt_lmp_hourly')} WHERE node = {{node:String}}",
        {"node": "A"},
    )
    assert got.schema.field("hour").type == TS
    assert sum(got.column("n").to_pylist()) == 2


def test_rt_query_polars(loaded) -> None:
    client, layout, _ = loaded
    frame = rt_query_polars(client, f"SELECT node, lmp FROM {layout.view} ORDER BY node, ts")
    assert isinstance(frame, pl.DataFrame)
    assert frame["lmp"].to_list() == [1.0, 2.0, 5.0, 6.0, 3.0, 4.0]


def test_load_rt_lmp_then_seed_query_in_the_configured_database() -> None:
    from hmco.sinks.clickhouse import load_rt_lmp

    settings = chdb_settings(unique_database("demo"))
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    table = lmp_rows(now, 3, ["A", "B"], price=10.0)
    assert load_rt_lmp(table, settings).rows == 6
    assert load_rt_lmp(table, settings).rows == 6  # re-run: deduplicated
    got = top_nodes_last_hour(connect_clickhouse(settings))
    assert sorted(got.to_pylist(), key=lambda r: r["node"]) == [
        {"iso": "CAISO", "node": "A", "avg_lmp": 11.0},
        {"iso": "CAISO", "node": "B", "avg_lmp": 11.0},
    ]
    client = connect_clickhouse(settings)
    assert client.query("SELECT count() FROM rt_lmp_store").result_rows == [(6,)]


def test_chdb_database_name_with_backslash_and_backquote_is_quoted() -> None:
    db = unique_database("odd") + "\\`x"
    client = connect_clickhouse(chdb_settings(db))
    assert client.query("SELECT currentDatabase()").result_rows == [(db,)]
