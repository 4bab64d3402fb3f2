"""Real-time store insert throughput on chdb against the engine's own ceiling, all in one run.

    .venv/bin/pytest benchmarks/bench_clickhouse.py --benchmark-only -p no:cacheprovider       # 5M rows
    HMCO_BENCH_ROWS=500000 .venv/bin/pytest benchmarks/bench_clickhouse.py --benchmark-only ...  # quick

The same N canonical rt_lmp rows (``published_at`` filled, as the window processor leaves them) go into
a fresh ``rt_lmp_store`` each round (truncated untimed; merges stopped on it so one round's background
merges do not slow the next), in this order:

* ``test_ceiling_python_table_function[whole]``: one ``INSERT … SELECT * FROM Python(table)`` of the whole
  table on the chdb connection: what the engine does with no client in the way (``of_ceiling``);
* ``test_ceiling_python_table_function[chunks]``: the same per ``DEFAULT_BATCH_ROWS`` slice, as the sink
  chunks, with no token (``of_ceiling_chunks``: the sink's own overhead at equal chunking);
* ``test_insert_arrow``: clickhouse-connect's plain ``client.insert_arrow`` per ``DEFAULT_BATCH_ROWS``
  (Arrow IPC + a temporary file on chdb), no token;
* ``test_sink_insert[python]``: ``ClickHouseSink.write``, default route on chdb (``Python()``), no
  fingerprint (tokens from the content digest);
* ``test_sink_insert[python-fingerprint]``: the same with the processor's payload fingerprint;
* ``test_sink_insert[arrow]``: ``ClickHouseSink.write`` on its other route (``insert_arrow``).

``extra_info`` carries rows, Arrow MB, rows/s and MB/s of the median round, the fraction of the ceiling
and of ``insert_arrow`` measured earlier in the run, and the load average after the case. Client and
engine share the same cores. Knobs: ``HMCO_BENCH_ROWS`` (5000000), ``HMCO_BENCH_ROUNDS`` (3).
Interval-to-queryable through the runner and its gate is ``bench_realtime.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.clickhouse.inserts import chdb_handle
from hmco.schemas import TS, conform, get_dataset
from hmco.sinks.clickhouse import DEFAULT_BATCH_ROWS, ClickHouseSink
from hmco.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's tests.support helpers
from tests.support.chdb import chdb_settings, unique_database

ROWS = int(os.environ.get("HMCO_BENCH_ROWS", "5000000"))
ROUNDS = int(os.environ.get("HMCO_BENCH_ROUNDS", "3"))
RT = get_dataset("rt_lmp")
START = datetime(2026, 11, 1, tzinfo=UTC)
PUBLISHED = datetime(2026, 11, 30, 12, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(days=400))
MEDIANS: dict[str, float] = {}  # seconds of the median round, by case, for the ratios


def synthetic_rt_lmp(rows: int, nodes: int = 2000, seed: int = 7) -> pa.Table:
    """``rows`` canonical rt_lmp rows: ``nodes`` nodes x consecutive 5-minute intervals (numpy, no loops)."""
    rng = np.random.default_rng(seed)
    idx = np.arange(rows, dtype=np.int64)
    start_us = int(START.timestamp() * 1_000_000)
    ts_us = start_us + (idx // nodes) * 300_000_000
    node_ids = (idx % nodes).astype(np.int32)
    node_dict = pa.array([f"NODE_{i:05d}" for i in range(nodes)])
    iso_dict = pa.array(["CAISO", "MISO", "SPP"])
    energy = rng.normal(40.0, 10.0, rows)
    congestion = rng.normal(0.0, 3.0, rows)
    loss = rng.normal(0.0, 0.5, rows)
    table = pa.table(
        {
            "ts": pa.array(ts_us, pa.int64()).cast(TS),
            "interval_end": pa.array(ts_us + 300_000_000, pa.int64()).cast(TS),
            "iso": pa.DictionaryArray.from_arrays(pa.array(node_ids % 3), iso_dict).cast(pa.string()),
            "market": pa.repeat(pa.scalar("RT5"), rows),
            "node": pa.DictionaryArray.from_arrays(pa.array(node_ids), node_dict).cast(pa.string()),
            "lmp": energy + congestion + loss,
            "energy": energy,
            "congestion": congestion,
            "loss": loss,
            "published_at": pa.repeat(pa.scalar(PUBLISHED, TS), rows),
        }
    )
    return conform(table, RT)


@pytest.fixture(scope="module")
def data() -> pa.Table:
    return synthetic_rt_lmp(ROWS)


@pytest.fixture
def fresh() -> Iterator[tuple[Any, ClickHouseLayout]]:
    client = connect_clickhouse(chdb_settings())
    layout = ClickHouseLayout.of("rt_lmp", database=unique_database("bench"))
    ensure_schema(client, layout)
    client.command(f"SYSTEM STOP MERGES {layout.store}")
    yield client, layout
    client.command(f"DROP DATABASE IF EXISTS {layout.database} SYNC")


def _run(benchmark, name: str, table: pa.Table, client: Any, layout: ClickHouseLayout, insert) -> None:
    def truncate() -> None:
        client.command(f"TRUNCATE TABLE {layout.store}")

    benchmark.pedantic(insert, setup=truncate, rounds=ROUNDS, iterations=1)
    stored = client.query(f"SELECT count() FROM {layout.store}").result_rows[0][0]
    assert stored == table.num_rows
    seconds = benchmark.stats.stats.median
    MEDIANS[name] = seconds
    info: dict[str, Any] = {
        "rows": table.num_rows,
        "arrow_mb": round(table.nbytes / 1e6, 1),
        "rows_per_s": round(table.num_rows / seconds),
        "mb_per_s": round(table.nbytes / 1e6 / seconds, 1),
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }
    for base in ("ceiling", "ceiling_chunks", "insert_arrow"):
        if base in MEDIANS and base != name:
            info[f"of_{base}"] = round(MEDIANS[base] / seconds, 2)
    benchmark.extra_info.update(info)


@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunks"])
def test_ceiling_python_table_function(benchmark, data: pa.Table, fresh, chunked: bool) -> None:
    client, layout = fresh
    handle = chdb_handle(client)
    assert handle is not None
    sql = f"INSERT INTO {layout.store} ({', '.join(data.column_names)}) SELECT * FROM Python(part)"
    size = DEFAULT_BATCH_ROWS if chunked else data.num_rows

    def insert() -> None:
        for offset in range(0, data.num_rows, size):
            part = data.slice(offset, size)  # noqa: F841  (Python(part) reads this local)
            with handle.lock:
                handle.conn.query(sql, "TabSeparated")

    _run(benchmark, "ceiling_chunks" if chunked else "ceiling", data, client, layout, insert)


def test_insert_arrow(benchmark, data: pa.Table, fresh) -> None:
    client, layout = fresh

    def insert() -> None:
        for offset in range(0, data.num_rows, DEFAULT_BATCH_ROWS):
            client.insert_arrow(layout.store, data.slice(offset, DEFAULT_BATCH_ROWS))

    _run(benchmark, "insert_arrow", data, client, layout, insert)


@pytest.mark.parametrize(
    ("route", "fingerprint"),
    [("python", None), ("python", "f" * 32), ("arrow", None)],
    ids=["python", "python-fingerprint", "arrow"],
)
def test_sink_insert(benchmark, data: pa.Table, fresh, route: str, fingerprint: str | None) -> None:
    client, layout = fresh
    sink = ClickHouseSink(client, layout, rollups=False, route=route)
    assert sink.inserter.route == route

    def insert() -> None:
        sink.write(data, dataset=RT, window=WINDOW, batch_id="bench", fingerprint=fingerprint)

    name = f"sink_{route}" + ("_fingerprint" if fingerprint else "")
    _run(benchmark, name, data, client, layout, insert)
