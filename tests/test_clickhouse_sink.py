"""ClickHouseSink on chdb: exactly-once inserts on both routes, retries of transient failures only, chunking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.errors import ConfigError, SinkError, TransientError
from hmco.schemas import get_dataset
from hmco.sinks.base import Sink
from hmco.sinks.clickhouse import ClickHouseSink, is_transient
from hmco.windows import Window
from tests.support.chdb import chdb_settings, lmp_rows, unique_database

T0 = datetime(2026, 11, 26, tzinfo=UTC)
RT = get_dataset("rt_lmp")
WINDOW = Window(T0, T0 + timedelta(days=1))


@pytest.fixture
def client():
    return connect_clickhouse(chdb_settings())


@pytest.fixture
def layout(client) -> ClickHouseLayout:
    lay = ClickHouseLayout.of("rt_lmp", database=unique_database("sink"))
    ensure_schema(client, lay)
    return lay


@pytest.fixture(params=["python", "arrow"])
def route(request) -> str:
    return request.param


class LostAckInsert:
    """A real inserter whose first ``fail`` inserts are applied by the engine but answered with an error."""

    def __init__(self, inner: Any, fail: int = 1, apply: bool = True) -> None:
        self.inner = inner
        self.route = inner.route
        self.fail = fail
        self.apply = apply
        self.calls = 0

    def __call__(self, *args: Any) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            if self.apply:
                self.inner(*args)
            raise OperationalError("connection reset by peer after the insert was sent")
        self.inner(*args)


class ServerClient:
    """The calls a sink makes on a ClickHouse server's client, passed to chdb; no in-process engine shows.

    Records what ``insert_arrow`` is handed: over HTTP clickhouse-connect sends those settings as the
    request's query parameters and the Arrow table as the body.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self.inserts: list[tuple[str, pa.Table, dict[str, Any]]] = []

    def insert_arrow(self, table: str, arrow_table: pa.Table, settings: dict[str, Any]) -> Any:
        self.inserts.append((table, arrow_table, settings))
        return self._client.insert_arrow(table, arrow_table, settings=settings)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        return self._client.command(*args, **kwargs)


def raw_count(client, layout: ClickHouseLayout) -> int:
    """Rows physically stored (no FINAL): proves dedup happened at insert, not only at read."""
    return client.query(f"SELECT count() FROM {layout.store}").result_rows[0][0]


def test_sink_satisfies_sink_protocol(client, layout) -> None:
    assert isinstance(ClickHouseSink(client, layout), Sink)


def test_resent_identical_batch_stores_no_duplicate(client, layout, route) -> None:
    sink = ClickHouseSink(client, layout, rollups=False, route=route)
    table = lmp_rows(T0, 12, ["A", "B"])
    first = sink.write(table, dataset=RT, window=WINDOW, batch_id="b1")
    second = sink.write(table, dataset=RT, window=WINDOW, batch_id="b1")
    assert first.rows == second.rows == 24
    assert first.meta["dedup_tokens"] == second.meta["dedup_tokens"]
    assert raw_count(client, layout) == 24


def test_revised_batch_under_same_batch_id_replaces_rows(client, layout, route) -> None:
    sink = ClickHouseSink(client, layout, rollups=False, route=route)
    sink.write(lmp_rows(T0, 3, ["A"], price=10.0), dataset=RT, window=WINDOW, batch_id="b1")
    sink.write(lmp_rows(T0, 3, ["A"], price=20.0), dataset=RT, window=WINDOW, batch_id="b1")
    assert raw_count(client, layout) == 6  # a different content hash is a new insert ...
    got = client.query(f"SELECT lmp FROM {layout.view} ORDER BY ts").result_rows
    assert got == [(20.0,), (21.0,), (22.0,)]  # ... and the newest version wins


def test_large_batch_is_split_into_inserts_of_batch_rows(client, layout, route) -> None:
    sink = ClickHouseSink(client, layout, batch_rows=1000, rollups=False, route=route)
    table = lmp_rows(T0, 250, [f"N{i}" for i in range(10)])
    result = sink.write(table, dataset=RT, window=WINDOW, batch_id="big")
    assert result.meta["inserts"] == 3
    assert result.rows == 2500
    assert raw_count(client, layout) == 2500
    # every chunk's own rows were stored (not the first chunk three times)
    got = client.query(f"SELECT sum(lmp), uniqExact(node, ts) FROM {layout.store}").result_rows
    assert got == [(sum(table.column("lmp").to_pylist()), 2500)]


def test_insert_applied_but_unacknowledged_is_retried_without_duplicate(client, layout, route) -> None:
    waits: list[float] = []
    sink = ClickHouseSink(client, layout, rollups=False, backoff=0.25, sleep=waits.append, route=route)
    sink.inserter = flaky = LostAckInsert(sink.inserter, fail=1, apply=True)
    sink.write(lmp_rows(T0, 6, ["A"]), dataset=RT, window=WINDOW, batch_id="b1")
    assert flaky.calls == 2
    assert len(waits) == 1
    assert raw_count(client, layout) == 6


def test_transient_failures_exhaust_into_transient_error_with_nothing_written(client, layout) -> None:
    waits: list[float] = []
    sink = ClickHouseSink(client, layout, rollups=False, max_attempts=3, sleep=waits.append)
    sink.inserter = flaky = LostAckInsert(sink.inserter, fail=99, apply=False)
    with pytest.raises(TransientError, match="re-sent safely") as info:
        sink.write(lmp_rows(T0, 2, ["A"]), dataset=RT, window=WINDOW, batch_id="b9")
    assert info.value.context["batch_id"] == "b9"
    assert flaky.calls == 3
    assert len(waits) == 2
    assert raw_count(client, layout) == 0


def test_rejected_insert_raises_sink_error_without_retry(client, layout, route) -> None:
    waits: list[float] = []
    missing = ClickHouseLayout.of("rt_lmp", database=layout.database + "_missing")
    sink = ClickHouseSink(client, missing, rollups=False, sleep=waits.append, route=route)
    with pytest.raises(SinkError, match=r"rejected the insert.*UNKNOWN_DATABASE"):
        sink.write(lmp_rows(T0, 2, ["A"]), dataset=RT, window=WINDOW, batch_id="b1")
    assert waits == []


def test_input_is_conformed_before_insert(client, layout, route) -> None:
    table = lmp_rows(T0, 2, ["A"])
    shuffled = pa.table(
        {
            "node": table.column("node"),
            "extra": pa.array(["x", "y"]),
            "lmp": pa.array([1, 2], pa.int64()),
            "ts": table.column("ts").cast(pa.timestamp("ms", tz="UTC")),
            "interval_end": table.column("interval_end"),
            "iso": table.column("iso"),
            "market": table.column("market"),
        }
    )
    sink = ClickHouseSink(client, layout, rollups=False, route=route)
    sink.write(shuffled, dataset=RT, window=WINDOW, batch_id="c")
    got = client.query(f"SELECT ts, node, lmp, energy FROM {layout.view} ORDER BY ts").result_rows
    assert got == [
        (T0.replace(tzinfo=None), "A", 1.0, None),
        (T0.replace(tzinfo=None) + timedelta(minutes=5), "A", 2.0, None),
    ]


def test_sink_refuses_another_dataset(client, layout) -> None:
    with pytest.raises(SinkError, match="writes rt_lmp, not da_lmp"):
        ClickHouseSink(client, layout).write(
            lmp_rows(T0, 1, ["A"]), dataset=get_dataset("da_lmp"), window=WINDOW, batch_id="x"
        )


def test_empty_batch_writes_nothing(client, layout) -> None:
    result = ClickHouseSink(client, layout).write(
        lmp_rows(T0, 0, ["A"]), dataset=RT, window=WINDOW, batch_id="e"
    )
    assert (result.rows, result.meta["inserts"]) == (0, 0)
    assert raw_count(client, layout) == 0


def test_in_process_chdb_inserts_through_python_table_function_by_default(client, layout) -> None:
    sink = ClickHouseSink(client, layout, rollups=False)
    result = sink.write(lmp_rows(T0, 2, ["A"]), dataset=RT, window=WINDOW, batch_id="d")
    assert sink.inserter.route == result.meta["route"] == "python"
    assert raw_count(client, layout) == 2


def test_server_client_gets_insert_arrow_with_token_and_synchronous_single_block_settings(
    client, layout
) -> None:
    server = ServerClient(client)
    sink = ClickHouseSink(server, layout, batch_rows=4, rollups=False)  # type: ignore[arg-type]
    table = lmp_rows(T0, 3, ["A", "B"])
    result = sink.write(table, dataset=RT, window=WINDOW, batch_id="h1")
    assert result.meta["route"] == "arrow"
    assert [(t, c.num_rows) for t, c, _ in server.inserts] == [(layout.store, 4), (layout.store, 2)]
    assert [s["insert_deduplication_token"] for *_, s in server.inserts] == result.meta["dedup_tokens"]
    assert {k: v for k, v in server.inserts[1][2].items() if k != "insert_deduplication_token"} == {
        "insert_deduplicate": 1,
        "async_insert": 0,
        "min_insert_block_size_rows": 2,
        "min_insert_block_size_bytes": 0,
    }
    assert server.inserts[0][1].column_names == RT.schema.names  # canonical columns, in order
    sink.write(table, dataset=RT, window=WINDOW, batch_id="h1")  # a re-send: the server drops both chunks
    assert raw_count(client, layout) == 6


def test_python_route_needs_an_in_process_engine(client, layout) -> None:
    with pytest.raises(ConfigError, match="needs an in-process chdb client"):
        ClickHouseSink(ServerClient(client), layout, route="python")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown ClickHouse insert route 'native'"):
        ClickHouseSink(client, layout, route="native")


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("Code: 252. DB::Exception: Too many parts (300). Merges are processing significantly slower", True),
        ("Code: 999. Coordination::Exception: Connection loss", True),
        ("Code: 60. DB::Exception: Table x.y does not exist. (UNKNOWN_TABLE)", False),
        ("Code: 62. DB::Exception: Syntax error", False),
    ],
)
def test_server_error_codes_classified(message: str, transient: bool) -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError

    assert is_transient(DatabaseError(message)) is transient
