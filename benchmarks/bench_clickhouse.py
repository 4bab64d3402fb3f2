"""Real-time store throughput and latency on chdb (in process; client and engine share the same cores).

    .venv/bin/pytest benchmarks/bench_clickhouse.py -q -p no:cacheprovider            # 10M rows
    HMCO_BENCH_ROWS=500000 .venv/bin/pytest benchmarks/bench_clickhouse.py -q ...      # quick

* ``test_sink_insert``: ``ClickHouseSink.write`` (conform, 500k-row chunks, SHA-256 dedup tokens) of N
  synthetic rt_lmp rows; ``test_raw_insert_ceiling``: the same Arrow data as one ``raw_insert … FORMAT
  Arrow`` per 500k rows with no conform/hash/token (the ceiling of clickhouse-connect into chdb).

Interval-to-queryable through the runner and its gate is ``bench_realtime.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.schemas import TS, conform, get_dataset
from hmco.sinks.clickhouse import DEFAULT_BATCH_ROWS, ClickHouseSink, _arrow_ipc
from hmco.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's tests.support helpers
from tests.support.chdb import chdb_settings, unique_database

ROWS = int(os.environ.get("HMCO_BENCH_ROWS", "10000000"))
RT = get_dataset("rt_lmp")
START = datetime(2026, 11, 1, tzinfo=UTC)


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
        }
    )
    return conform(table, RT)


@pytest.fixture(scope="module")
def data() -> pa.Table:
    return synthetic_rt_lmp(ROWS)


@pytest.fixture
def fresh() -> Iterator[tuple]:
    client = connect_clickhouse(chdb_settings())
    layout = ClickHouseLayout.of("rt_lmp", database=unique_database("bench"))
    ensure_schema(client, layout)
    yield client, layout
    client.command(f"DROP DATABASE IF EXISTS {layout.database} SYNC")


def _report(benchmark, table: pa.Table, stored: int) -> None:
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        rows=table.num_rows,
        rows_stored=stored,
        arrow_mb=round(table.nbytes / 1e6, 1),
        rows_per_s=round(table.num_rows / seconds),
        mb_per_s=round(table.nbytes / 1e6 / seconds, 1),
    )


def test_sink_insert(benchmark, data: pa.Table, fresh) -> None:
    client, layout = fresh
    sink = ClickHouseSink(client, layout, rollups=False)
    window = Window(START, START + timedelta(days=400))

    def truncate() -> None:
        client.command(f"TRUNCATE TABLE {layout.store}")

    def run() -> None:
        sink.write(data, dataset=RT, window=window, batch_id="bench")

    benchmark.pedantic(run, setup=truncate, rounds=2, iterations=1)
    stored = client.query(f"SELECT count() FROM {layout.store}").result_rows[0][0]
    assert stored == data.num_rows
    _report(benchmark, data, stored)


def test_raw_insert_ceiling(benchmark, data: pa.Table, fresh) -> None:
    client, layout = fresh
    chunks = [data.slice(o, DEFAULT_BATCH_ROWS) for o in range(0, data.num_rows, DEFAULT_BATCH_ROWS)]

    def truncate() -> None:
        client.command(f"TRUNCATE TABLE {layout.store}")

    def run() -> None:
        for chunk in chunks:
            client.raw_insert(layout.store, chunk.schema.names, _arrow_ipc(chunk, None), fmt="Arrow")

    benchmark.pedantic(run, setup=truncate, rounds=2, iterations=1)
    stored = client.query(f"SELECT count() FROM {layout.store}").result_rows[0][0]
    assert stored == data.num_rows
    _report(benchmark, data, stored)
