"""Iceberg write throughput: ``IcebergSink.write`` and ``Pipeline.run`` against a raw Parquet ceiling.

The batch is one day of canonical ``rt_lmp`` rows from :func:`hmco.sources.synthetic.synthetic_lmp`
(default 5,200 nodes x 288 five-minute intervals = 1,497,600 rows, ~150 MB of Arrow), generated once
per module. Every round writes a *new* day (the batch shifted by whole days, prepared untimed), as a
backfill does; ``replace`` rounds re-write the same day (the sink replaces it). Paths:

- local profile (SQLite catalog + file warehouse): 1 partition, and the same volume spread over 21
  (7 days x 3 ISOs) and 210 (30 days x 7 ISOs) ``day(ts) x iso`` partitions, pyiceberg's weak spot;
- cluster profile (PostgreSQL catalog + SeaweedFS S3), 1 partition;
- ceiling: ``pyarrow.parquet.write_table`` of the same table with the same codec (zstd), to a local
  file and to S3 through ``pyarrow.fs.S3FileSystem``, measured in the same run;
- the whole pipeline (archive + parse + staged + curated), quality gate off and on.

``extra_info`` carries rows, Arrow MB, rows/s and MB/s (from the mean round) and, for sink rounds, the
fraction of the ceiling measured earlier in the run. Shrink with ``HMCO_BENCH_ICEBERG_NODES=500``.

Run: ``.venv/bin/pytest benchmarks/bench_iceberg.py --benchmark-only -p no:cacheprovider``
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.lake import Lake
from hmco.quality import ExpectationGate, build_gate
from hmco.schemas import conform, get_dataset
from hmco.sinks.iceberg import IcebergSink
from hmco.sources.base import RawPayload, Source
from hmco.sources.synthetic import ARROW_STREAM, synthetic_lmp
from hmco.windows import Window

NODES = int(os.environ.get("HMCO_BENCH_ICEBERG_NODES", "5200"))
ROUNDS = 3
DAY0 = Window.day("2026-11-01")
RT_LMP = get_dataset("rt_lmp")
ISOS = ("CAISO", "MISO", "SPP", "ERCOT", "PJM", "NYISO", "ISONE")

#: rows/s of the raw Parquet ceilings, filled by the ceiling benchmarks (which run first in this file).
CEILING: dict[str, float] = {}


# --- data --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch() -> pa.Table:
    """One day, one ISO: a single ``day(ts) x iso`` partition."""
    return synthetic_lmp(DAY0, NODES, iso="CAISO")


def many_partitions(days: int, isos: int) -> pa.Table:
    """``days`` x ``isos`` partitions with about as many rows as :func:`batch`."""
    window = Window(DAY0.start, DAY0.start + timedelta(days=days))
    nodes = max(1, NODES // (days * isos))
    return pa.concat_tables(
        [synthetic_lmp(window, nodes, iso=iso, seed=i) for i, iso in enumerate(ISOS[:isos])]
    )


def shifted(table: pa.Table, days: int) -> pa.Table:
    """The same rows ``days`` later (a new window for the sink), zero-copy except the two time columns."""
    delta = pa.scalar(timedelta(days=days), pa.duration("us"))
    for name in ("ts", "interval_end"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pc.add(table.column(name), delta))
    return table


def window_of(days: int, length: int = 1) -> Window:
    start = DAY0.start + timedelta(days=days)
    return Window(start, start + timedelta(days=length))


def report(benchmark: Any, table: pa.Table, *, ceiling: str | None = None, **extra: Any) -> None:
    """rows/s and MB/s (Arrow bytes) of the mean and best rounds into ``benchmark.extra_info``."""
    stats = benchmark.stats.stats
    info: dict[str, Any] = {
        "rows": table.num_rows,
        "arrow_mb": round(table.nbytes / 1e6, 1),
        "rows_per_s": round(table.num_rows / stats.mean),
        "mb_per_s": round(table.nbytes / 1e6 / stats.mean, 1),
        "best_rows_per_s": round(table.num_rows / stats.min),
        **extra,
    }
    if ceiling and ceiling in CEILING:
        info["ceiling_rows_per_s"] = round(CEILING[ceiling])
        info["fraction_of_ceiling"] = round(info["rows_per_s"] / CEILING[ceiling], 2)
    benchmark.extra_info.update(info)


# --- ceilings: raw Parquet writes of the same table ---------------------------------------------------


def test_ceiling_parquet_local(benchmark: Any, batch: pa.Table, tmp_path: Path) -> None:
    paths = iter(tmp_path / f"round-{i}.parquet" for i in range(100))

    def write() -> None:
        pq.write_table(batch, next(paths), compression="zstd")

    benchmark.pedantic(write, rounds=ROUNDS, iterations=1)
    assert pq.read_metadata(tmp_path / "round-0.parquet").num_rows == batch.num_rows
    report(benchmark, batch)
    CEILING["local"] = batch.num_rows / benchmark.stats.stats.mean


@pytest.mark.s3
def test_ceiling_parquet_s3(benchmark: Any, batch: pa.Table, seaweed: Any) -> None:
    fs = seaweed.filesystem()
    bucket = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    fs.create_dir(bucket)
    paths = iter(f"{bucket}/round-{i}.parquet" for i in range(100))

    def write() -> None:
        pq.write_table(batch, next(paths), filesystem=fs, compression="zstd")

    benchmark.pedantic(write, rounds=ROUNDS, iterations=1)
    assert pq.read_metadata(f"{bucket}/round-0.parquet", filesystem=fs).num_rows == batch.num_rows
    report(benchmark, batch)
    CEILING["s3"] = batch.num_rows / benchmark.stats.stats.mean


# --- IcebergSink.write ----------------------------------------------------------------------------------


def _sink_new_windows(benchmark: Any, lake: Lake, table: pa.Table, days: int = 1) -> None:
    """Each round writes the batch as a new ``days``-long window of the same table (a backfill)."""
    lake.create_tiers()
    sink = IcebergSink(lake, "curated", pipeline="bench")
    rounds = iter(range(1, 100))
    isos = pc.unique(table.column("iso")).to_pylist()

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        i = next(rounds) * days
        return (shifted(table, i), window_of(i, days)), {}

    def write(data: pa.Table, window: Window) -> None:
        sink.write(data, dataset=RT_LMP, window=window, batch_id="bench", scope={"iso": isos})

    sink.write(
        table, dataset=RT_LMP, window=window_of(0, days), batch_id="warm", scope={"iso": isos}
    )  # table exists
    benchmark.pedantic(write, setup=setup, rounds=ROUNDS, iterations=1)
    assert lake.scan(RT_LMP).to_arrow().num_rows == table.num_rows * (ROUNDS + 1)


def test_sink_local_new_window(benchmark: Any, batch: pa.Table, bench_settings: Settings) -> None:
    _sink_new_windows(benchmark, Lake(bench_settings), batch)
    report(benchmark, batch, ceiling="local", partitions=1)


@pytest.mark.parametrize(("days", "isos"), [(7, 3), (30, 7)], ids=["21_partitions", "210_partitions"])
def test_sink_local_new_window_partitions(
    benchmark: Any, bench_settings: Settings, days: int, isos: int
) -> None:
    table = many_partitions(days, isos)
    _sink_new_windows(benchmark, Lake(bench_settings), table, days=days)
    report(benchmark, table, ceiling="local", partitions=days * isos)


def test_sink_local_replace_window(benchmark: Any, batch: pa.Table, bench_settings: Settings) -> None:
    lake = Lake(bench_settings)
    lake.create_tiers()
    sink = IcebergSink(lake, "curated", pipeline="bench")

    def write() -> None:
        sink.write(batch, dataset=RT_LMP, window=DAY0, batch_id="bench", scope={"iso": ["CAISO"]})

    write()  # the first copy: every timed round replaces it
    benchmark.pedantic(write, rounds=ROUNDS, iterations=1)
    assert lake.scan(RT_LMP).to_arrow().num_rows == batch.num_rows
    report(benchmark, batch, ceiling="local", partitions=1)


@pytest.mark.s3
@pytest.mark.postgres
def test_sink_s3_postgres_new_window(benchmark: Any, batch: pa.Table, cluster_settings: Settings) -> None:
    _sink_new_windows(benchmark, Lake(cluster_settings), batch)
    report(benchmark, batch, ceiling="s3", partitions=1)


# --- the whole pipeline: archive + parse + staged (+ gate) + curated ------------------------------------


class PreparedPayloads(Source):
    """Serves payloads prepared before the timed round (hourly Arrow IPC, as SyntheticISO sends them)."""

    name: ClassVar[str] = "bench_prepared"
    datasets: ClassVar[tuple[str, ...]] = ("rt_lmp",)
    window_step: timedelta = timedelta(days=1)

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings=settings)
        self.payloads: list[RawPayload] = []

    def scope(self) -> dict[str, list[str]]:
        return {"iso": ["CAISO"]}

    def prepare(self, table: pa.Table, window: Window) -> None:
        self.payloads = []
        for page, part in enumerate(window.split(timedelta(hours=1))):
            rows = table.filter((pc.field("ts") >= part.start) & (pc.field("ts") < part.end))
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, rows.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as w:
                w.write_table(rows)
            body = sink.getvalue().to_pybytes()
            self.payloads.append(
                RawPayload(self.name, "rt_lmp", body, content_type=ARROW_STREAM, window=part, page=page)
            )

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        yield from self.payloads

    def parse(self, payload: RawPayload) -> pa.Table:
        return conform(pa.ipc.open_stream(payload.body).read_all(), self.dataset)


@pytest.fixture(scope="module")
def warm_gate(batch: pa.Table) -> ExpectationGate:
    gate = build_gate(RT_LMP, None)
    assert gate.check(batch, RT_LMP, DAY0).passed  # import Great Expectations outside the timing
    return gate


@pytest.mark.parametrize("gated", [False, True], ids=["gate_off", "gate_on"])
def test_pipeline_run_local(
    benchmark: Any, batch: pa.Table, bench_settings: Settings, warm_gate: ExpectationGate, gated: bool
) -> None:
    lake = Lake(bench_settings)
    lake.create_tiers()
    source = PreparedPayloads(bench_settings)
    pipeline = Pipeline(source, lake=lake, name="bench-pipeline", gate=warm_gate if gated else False)
    rounds = iter(range(100))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        i = next(rounds)
        window = window_of(i)
        source.prepare(shifted(batch, i), window)
        return (window,), {}

    def run(window: Window) -> None:
        result = pipeline.run(window)
        assert result.ok and result.rows == batch.num_rows

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    assert lake.scan(RT_LMP).to_arrow().num_rows == batch.num_rows * ROUNDS
    assert pipeline.watermark == window_of(ROUNDS - 1).end
    report(benchmark, batch, ceiling="local", gate=gated, payloads=len(source.payloads))
