"""Both insert routes on chdb: a retried chunk with the same token inserts nothing; columns go by name.

``python`` is chdb's ``Python()`` table function on the client's own connection; ``arrow`` is
clickhouse-connect's ``insert_arrow`` (Arrow IPC through a temporary file on chdb, a request body over HTTP).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.clickhouse.dedup import insert_settings
from hmco.clickhouse.inserts import arrow_insert
from hmco.schemas import TS, conform, get_dataset
from hmco.sinks.clickhouse import is_transient
from tests.support.chdb import chdb_settings, lmp_rows, unique_database

RT = get_dataset("rt_lmp")
T0 = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture
def client():
    return connect_clickhouse(chdb_settings())


@pytest.fixture
def layout(client) -> ClickHouseLayout:
    lay = ClickHouseLayout.of("rt_lmp", database=unique_database("ins"))
    ensure_schema(client, lay)
    return lay


@pytest.fixture(params=["python", "arrow"])
def route(request) -> str:
    return request.param


def stored(client, layout: ClickHouseLayout) -> int:
    return client.query(f"SELECT count() FROM {layout.store}").result_rows[0][0]


def months(rows_per_month: int, *months: int) -> pa.Table:
    """Canonical rows spread over the given months of 2026 (one partition each)."""
    parts = [lmp_rows(datetime(2026, m, 3, tzinfo=UTC), rows_per_month, ["A"]) for m in months]
    return conform(pa.concat_tables(parts), RT)


def test_retried_chunk_with_the_same_token_inserts_nothing(client, layout, route) -> None:
    insert = arrow_insert(client, route)
    chunk = conform(lmp_rows(T0, 50, ["A", "B"]), RT)
    insert(layout.store, chunk, insert_settings("retry-me", chunk.num_rows))
    insert(layout.store, chunk, insert_settings("retry-me", chunk.num_rows))
    assert stored(client, layout) == 100
    insert(layout.store, chunk, insert_settings("another", chunk.num_rows))
    assert stored(client, layout) == 200  # the token, not the content, decided


def test_retry_of_a_chunk_spanning_partitions_inserts_nothing_in_any(client, layout, route) -> None:
    insert = arrow_insert(client, route)
    chunk = months(40, 1, 2, 3)
    for _ in range(3):
        insert(layout.store, chunk, insert_settings("three-months", chunk.num_rows))
    parts = client.query(
        "SELECT partition, count() FROM system.parts WHERE database = {db:String} "
        "AND table = 'rt_lmp_store' AND active GROUP BY partition ORDER BY partition",
        parameters={"db": layout.database},
    ).result_rows
    assert parts == [("202601", 1), ("202602", 1), ("202603", 1)]
    assert stored(client, layout) == 120


def test_chunk_larger_than_a_read_block_is_one_block_so_its_retry_is_recognised(
    client, layout, route
) -> None:
    # 150k rows (1000 nodes x 150 intervals): chdb reads Python() in blocks of ~65k rows, yet the chunk
    # must form one insert block, whose id the retry reproduces
    n = 150_000
    idx = np.arange(n)
    start = int(T0.timestamp()) * 1_000_000 + (idx // 1000) * 300_000_000
    chunk = conform(
        pa.table(
            {
                "ts": pa.array(start).cast(TS),
                "interval_end": pa.array(start + 300_000_000).cast(TS),
                "iso": pa.repeat(pa.scalar("SPP"), n),
                "market": pa.repeat(pa.scalar("RT5"), n),
                "node": pa.array([f"N{i % 1000}" for i in range(n)]),
                "lmp": idx.astype(np.float64),
            }
        ),
        RT,
    )
    client.command(f"SYSTEM STOP MERGES {layout.store}")
    insert = arrow_insert(client, route)
    # A server whose profile squashes inserts into blocks of 10k rows: the insert's settings must win.
    default = client.query("SELECT value FROM system.settings WHERE name = 'min_insert_block_size_rows'")
    client.set_client_setting("min_insert_block_size_rows", 10_000)
    try:
        for _ in range(2):
            insert(layout.store, chunk, insert_settings("big", chunk.num_rows))
    finally:
        client.set_client_setting("min_insert_block_size_rows", default.result_rows[0][0])
    assert stored(client, layout) == n
    parts = client.query(
        "SELECT count() FROM system.parts WHERE database = {db:String} AND table = 'rt_lmp_store' AND active",
        parameters={"db": layout.database},
    ).result_rows
    assert parts == [(1,)]  # one partition, one part: the chunk went in as one block, once


def test_python_route_reads_each_new_chunk_never_a_previous_one(client, layout) -> None:
    insert = arrow_insert(client, "python")
    first = conform(lmp_rows(T0, 3, ["A"], price=1.0), RT)
    second = conform(lmp_rows(T0 + timedelta(days=1), 3, ["B"], price=100.0), RT)
    insert(layout.store, first, insert_settings("1", 3))
    insert(layout.store, second, insert_settings("2", 3))
    got = client.query(f"SELECT node, sum(lmp) FROM {layout.store} GROUP BY node ORDER BY node").result_rows
    assert got == [("A", 6.0), ("B", 303.0)]


def test_columns_are_matched_by_name_not_position(client, layout, route) -> None:
    rows = lmp_rows(T0, 2, ["A"])
    shuffled = rows.select(["lmp", "node", "market", "iso", "interval_end", "ts"])
    arrow_insert(client, route)(layout.store, shuffled, insert_settings(f"by-name-{route}", 2))
    got = client.query(
        f"SELECT ts, iso, market, node, lmp, energy FROM {layout.store} ORDER BY ts"
    ).result_rows
    assert got == [
        (T0.replace(tzinfo=None), "CAISO", "RT5", "A", 10.0, None),
        (T0.replace(tzinfo=None) + timedelta(minutes=5), "CAISO", "RT5", "A", 11.0, None),
    ]


def test_token_with_quotes_is_a_literal_not_sql(client, layout) -> None:
    insert = arrow_insert(client, "python")
    chunk = conform(lmp_rows(T0, 1, ["A"]), RT)
    token = "b'); DROP TABLE x; --\\"
    insert(layout.store, chunk, insert_settings(token, 1))
    insert(layout.store, chunk, insert_settings(token, 1))
    assert stored(client, layout) == 1


def test_python_route_raises_clickhouse_errors_with_their_code(client, layout) -> None:
    chunk = conform(lmp_rows(T0, 1, ["A"]), RT)
    missing = layout.qualified("no_such_table")
    with pytest.raises(DatabaseError, match=r"^Code: 60\.") as info:
        arrow_insert(client, "python")(missing, chunk, insert_settings("x", 1))
    assert not is_transient(info.value)


def test_python_route_from_threads_on_two_clients_reads_each_threads_own_chunk(layout) -> None:
    other = ClickHouseLayout.of("rt_lmp", database=unique_database("ins"))
    clients = [connect_clickhouse(chdb_settings(lay.database)) for lay in (layout, other)]
    ensure_schema(clients[1], other)
    for client, lay in zip(clients, (layout, other), strict=True):
        client.command(f"SYSTEM STOP MERGES {lay.store}")  # the five copies of a key must stay apart
    nodes = [f"N{i}" for i in range(10)]
    chunks = [conform(lmp_rows(T0, 2000, nodes, price=p), RT) for p in (1.0, 1000.0)]

    def load(i: int) -> None:
        insert = arrow_insert(clients[i], "python")
        for k in range(5):
            insert((layout, other)[i].store, chunks[i], insert_settings(f"t{k}", chunks[i].num_rows))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(load, [0, 1]))
    for client, lay, chunk in zip(clients, (layout, other), chunks, strict=True):
        got = client.query(f"SELECT count(), sum(lmp) FROM {lay.store}").result_rows
        assert got == [(5 * 20_000, 5 * sum(chunk.column("lmp").to_pylist()))]
