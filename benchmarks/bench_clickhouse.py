"""Real-time store throughput and latency on chdb (in process; client and engine share the same cores).

    .venv/bin/pytest benchmarks/bench_clickhouse.py -q -p no:cacheprovider            # 10M rows
    HMCO_BENCH_ROWS=500000 .venv/bin/pytest benchmarks/bench_clickhouse.py -q ...      # quick

* ``test_sink_insert``: ``ClickHouseSink.write`` (conform, 500k-row chunks, SHA-256 dedup tokens) of N
  synthetic rt_lmp rows; ``test_raw_insert_ceiling``: the same Arrow data as one ``raw_insert … FORMAT
  Arrow`` per 500k rows with no conform/hash/token (the ceiling of clickhouse-connect into chdb).
* ``test_end_to_end_latency``: an interval file appears in a replayed SPP feed -> runner poll -> row
  visible through ``rt_lmp`` (FINAL view), reported in ``extra_info`` (seconds).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.schemas import TS, conform, get_dataset
from hmco.sinks.clickhouse import DEFAULT_BATCH_ROWS, ClickHouseSink, _arrow_ipc
from hmco.windows import Window, floor_time

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


def test_end_to_end_latency(benchmark, fresh) -> None:
    from tests.support.replay import ReplayServer, Reply
    from tests.test_realtime import DOWNLOAD, spp_csv

    from hmco.compose.realtime import RealtimeRunner
    from hmco.sources.http import HttpOptions
    from hmco.sources.spp import SPP, interval_file_path

    client, layout = fresh
    sink = ClickHouseSink(client, layout)
    end = floor_time(datetime.now(UTC), timedelta(minutes=5)) - timedelta(minutes=5)
    latencies: list[float] = []
    with ReplayServer() as replay:
        source = SPP(
            settings=chdb_settings(),
            base_url=replay.url + "/file-browser-api",
            http=HttpOptions(min_interval=0.0, sleep=lambda s: None, clock=lambda: 0.0),
        )
        runner = RealtimeRunner([source], sink, clock=lambda: end + timedelta(minutes=3))
        runner.run_once()  # first poll on an empty table: sets up clients and caches

        def one_interval() -> None:
            nonlocal end
            end += timedelta(minutes=5)
            appeared = time.perf_counter()
            replay.add(DOWNLOAD, Reply(200, spp_csv(end, 30.0), content_type="text/csv"),
                       match={"path": interval_file_path(end)})  # fmt: skip
            runner.run_once(end + timedelta(minutes=3), force=True)
            visible = client.query(
                f"SELECT count() FROM {layout.view} WHERE interval_end = {{e:DateTime64(6, 'UTC')}}",
                parameters={"e": end.replace(tzinfo=None)},
            ).result_rows[0][0]
            assert visible == 2
            latencies.append(time.perf_counter() - appeared)

        benchmark.pedantic(one_interval, rounds=10, iterations=1)
    benchmark.extra_info.update(
        e2e_latency_s_median=round(float(np.median(latencies)), 4),
        e2e_latency_s_max=round(max(latencies), 4),
        sla_s=600,
    )
