"""Iceberg sink throughput against raw Parquet ceilings, pyiceberg's own append and dlt, on the same rows.

The batch is ~2M canonical ``rt_lmp`` rows from :func:`hmco.sources.synthetic.synthetic_lmp` spread over
``days x isos`` ``day(ts) x iso`` partitions (default 4 x 3 = 12), grouped as a parser emits them (ISO by
ISO, day by day), generated once per module. Every timed round writes the batch as a *new* window (the
rows shifted by whole days, prepared untimed), as a backfill does. Measured in one run:

- ceilings: ``pq.write_table(zstd)`` of the batch as one file (Arrow's defaults, and the options the
  sink chooses: plain encoding for nearly unique columns), and of its N partition slices as N files
  (one after another, and on a thread pool of one thread per core);
- ``IcebergSink.write`` (split, write data files, ``delete(window)`` + ``add_files`` in one commit) into
  an unpartitioned copy of ``rt_lmp`` and into the partitioned ``rt_lmp``;
- pyiceberg's own ``tbl.append`` of the same rows into a table with the same partition spec;
- dlt's filesystem destination with ``table_format="iceberg"`` and the same partitions (when dlt is
  installed; it writes through pyiceberg's ``append`` on an SQLite catalog, no network);
- with the ``s3`` marker: the one-file ceiling and the partitioned sink on SeaweedFS (+ PostgreSQL).

``extra_info`` carries rows, Arrow MB, rows/s and MB/s of the *median* round and the fraction of each
ceiling measured earlier in the run (``of_one_file``, ``of_one_file_sink_options``, ``of_n_files_loop``,
``of_n_files_pool``), and the Parquet MB each path wrote per round. Knobs:
``HMCO_BENCH_ICEBERG_ROWS`` (2000000), ``HMCO_BENCH_ICEBERG_PARTITIONS`` (``4x3``: days x ISOs),
``HMCO_BENCH_ICEBERG_ROUNDS`` (3).

Run: ``.venv/bin/pytest benchmarks/bench_iceberg.py --benchmark-only -p no:cacheprovider -m "not s3"``
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hmco.config import Settings
from hmco.lake import Lake
from hmco.schemas import Dataset, get_dataset
from hmco.sinks.datafiles import parquet_options
from hmco.sinks.iceberg import IcebergSink
from hmco.sources.synthetic import synthetic_lmp
from hmco.windows import Window

ROWS = int(os.environ.get("HMCO_BENCH_ICEBERG_ROWS", "2000000"))
DAYS, ISO_COUNT = (int(x) for x in os.environ.get("HMCO_BENCH_ICEBERG_PARTITIONS", "4x3").split("x"))
ROUNDS = int(os.environ.get("HMCO_BENCH_ICEBERG_ROUNDS", "3"))
PARTITIONS = DAYS * ISO_COUNT
DAY0 = Window.day("2026-11-01")
RT_LMP = get_dataset("rt_lmp")
RT_LMP_FLAT = dataclasses.replace(RT_LMP, name="rt_lmp_flat", partition_by=())
ISOS = ("CAISO", "MISO", "SPP", "ERCOT", "PJM", "NYISO", "ISONE")[:ISO_COUNT]

#: rows/s of the raw Parquet ceilings (median round), filled by the ceiling benchmarks, which run first.
CEILING: dict[str, float] = {}


# --- data --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def partitions() -> list[pa.Table]:
    """One table per ``(iso, day)`` partition, ISO by ISO and day by day, ~ROWS rows in all."""
    nodes = max(1, ROWS // (PARTITIONS * 288))
    return [
        synthetic_lmp(window_of(d), nodes, iso=iso, seed=k) for k, iso in enumerate(ISOS) for d in range(DAYS)
    ]


@pytest.fixture(scope="module")
def batch(partitions: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(partitions).combine_chunks()


@pytest.fixture(scope="module")
def slices(batch: pa.Table, partitions: list[pa.Table]) -> list[pa.Table]:
    """The batch's partition slices (zero-copy), the same ones the sink writes."""
    bounds = np.cumsum([0, *(p.num_rows for p in partitions)]).tolist()
    return [batch.slice(a, b - a) for a, b in itertools.pairwise(bounds)]


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


def new_windows(table: pa.Table) -> Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]:
    """A pytest-benchmark ``setup``: each round the batch shifted to the next unwritten DAYS-day window."""
    rounds = itertools.count(1)

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        i = next(rounds) * DAYS
        return (shifted(table, i), window_of(i, DAYS)), {}

    return setup


def median_rate(benchmark: Any, rows: int) -> float:
    return rows / benchmark.stats.stats.median


def report(benchmark: Any, table: pa.Table, *, ceiling: str = "local", **extra: Any) -> None:
    """rows/s and MB/s (Arrow bytes) of the median round, and its fraction of each ceiling, into extra_info."""
    stats = benchmark.stats.stats
    rate = median_rate(benchmark, table.num_rows)
    info: dict[str, Any] = {
        "rows": table.num_rows,
        "arrow_mb": round(table.nbytes / 1e6, 1),
        "partitions": PARTITIONS,
        "median_s": round(stats.median, 3),
        "rows_per_s": round(rate),
        "mb_per_s": round(table.nbytes / 1e6 / stats.median, 1),
        "cores": pa.cpu_count(),
        **extra,
    }
    for name in ("one_file", "one_file_sink_options", "n_files_loop", "n_files_pool"):
        key = f"{ceiling}_{name}"
        if key in CEILING:
            info[f"of_{name}"] = round(rate / CEILING[key], 2)
    benchmark.extra_info.update(info)


# --- ceilings: raw Parquet writes of the same rows ------------------------------------------------------


def test_ceiling_one_file(benchmark: Any, batch: pa.Table, tmp_path: Path) -> None:
    paths = (tmp_path / f"round-{i}.parquet" for i in itertools.count())

    def write() -> None:
        pq.write_table(batch, next(paths), compression="zstd")

    benchmark.pedantic(write, rounds=ROUNDS, iterations=1)
    assert pq.read_metadata(tmp_path / "round-0.parquet").num_rows == batch.num_rows
    CEILING["local_one_file"] = median_rate(benchmark, batch.num_rows)
    report(benchmark, batch, files=1, parquet_mb=_mb(tmp_path / "round-0.parquet"))


def test_ceiling_one_file_sink_options(
    benchmark: Any, batch: pa.Table, bench_settings: Settings, tmp_path: Path
) -> None:
    """One file with the options the sink chooses (per-column dictionaries, the table's row groups)."""
    lake = Lake(bench_settings)
    lake.create_tiers()
    options = parquet_options(lake.table(RT_LMP), batch)
    paths = (tmp_path / f"round-{i}.parquet" for i in itertools.count())

    def write() -> None:
        pq.write_table(batch, next(paths), **options)

    benchmark.pedantic(write, rounds=ROUNDS, iterations=1)
    assert pq.read_metadata(tmp_path / "round-0.parquet").num_rows == batch.num_rows
    CEILING["local_one_file_sink_options"] = median_rate(benchmark, batch.num_rows)
    dictionary = options["use_dictionary"]
    plain = sorted(set(batch.column_names) - set(dictionary)) if isinstance(dictionary, list) else []
    report(benchmark, batch, files=1, parquet_mb=_mb(tmp_path / "round-0.parquet"), plain_columns=plain)


def _mb(*paths: Path) -> float:
    return round(sum(p.stat().st_size for p in paths) / 1e6, 1)


def test_ceiling_n_files_loop(
    benchmark: Any, batch: pa.Table, slices: list[pa.Table], tmp_path: Path
) -> None:
    rounds = itertools.count()

    def write() -> None:
        r = next(rounds)
        for i, piece in enumerate(slices):
            pq.write_table(piece, tmp_path / f"round-{r}-{i}.parquet", compression="zstd")

    benchmark.pedantic(write, rounds=ROUNDS, iterations=1)
    assert sum(pq.read_metadata(p).num_rows for p in tmp_path.glob("round-0-*")) == batch.num_rows
    CEILING["local_n_files_loop"] = median_rate(benchmark, batch.num_rows)
    report(benchmark, batch, files=len(slices), parquet_mb=_mb(*tmp_path.glob("round-0-*")))


def test_ceiling_n_files_pool(
    benchmark: Any, batch: pa.Table, slices: list[pa.Table], tmp_path: Path
) -> None:
    rounds = itertools.count()
    workers = min(len(slices), pa.cpu_count())

    def write() -> None:
        r = next(rounds)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(
                pool.map(
                    lambda i: pq.write_table(
                        slices[i], tmp_path / f"round-{r}-{i}.parquet", compression="zstd"
                    ),
                    range(len(slices)),
                )
            )

    benchmark.pedantic(write, rounds=ROUNDS, iterations=1)
    assert sum(pq.read_metadata(p).num_rows for p in tmp_path.glob("round-0-*")) == batch.num_rows
    CEILING["local_n_files_pool"] = median_rate(benchmark, batch.num_rows)
    report(benchmark, batch, files=len(slices), threads=workers, parquet_mb=_mb(*tmp_path.glob("round-0-*")))


@pytest.mark.s3
def test_ceiling_one_file_s3(benchmark: Any, batch: pa.Table, seaweed: Any) -> None:
    fs = seaweed.filesystem()
    bucket = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    fs.create_dir(bucket)
    paths = (f"{bucket}/round-{i}.parquet" for i in itertools.count())

    def write() -> None:
        pq.write_table(batch, next(paths), filesystem=fs, compression="zstd")

    benchmark.pedantic(write, rounds=ROUNDS, iterations=1)
    assert pq.read_metadata(f"{bucket}/round-0.parquet", filesystem=fs).num_rows == batch.num_rows
    CEILING["s3_one_file"] = median_rate(benchmark, batch.num_rows)
    report(benchmark, batch, ceiling="s3", files=1)


# --- IcebergSink.write ----------------------------------------------------------------------------------


def _sink_new_windows(benchmark: Any, lake: Lake, dataset: Dataset, table: pa.Table) -> Any:
    """Each round writes the batch as a new DAYS-day window of the same table (a backfill)."""
    lake.create_tiers()
    sink = IcebergSink(lake, "curated", pipeline="bench")

    def write(data: pa.Table, window: Window) -> None:
        sink.write(data, dataset=dataset, window=window, batch_id="bench", scope={"iso": list(ISOS)})

    write(table, window_of(0, DAYS))  # the table exists and every import is done before the clock runs
    benchmark.pedantic(write, setup=new_windows(table), rounds=ROUNDS, iterations=1)
    tbl = lake.table(dataset, "curated")
    snapshot = tbl.current_snapshot()
    assert snapshot is not None
    assert int(snapshot.summary["total-records"]) == table.num_rows * (ROUNDS + 1)
    return tbl


def test_sink_unpartitioned(benchmark: Any, batch: pa.Table, bench_settings: Settings) -> None:
    tbl = _sink_new_windows(benchmark, Lake(bench_settings), RT_LMP_FLAT, batch)
    assert tbl.spec().is_unpartitioned()
    report(benchmark, batch, table_partitions=1, **_files(tbl))


def test_sink_partitioned(benchmark: Any, batch: pa.Table, bench_settings: Settings) -> None:
    tbl = _sink_new_windows(benchmark, Lake(bench_settings), RT_LMP, batch)
    report(benchmark, batch, **_files(tbl))


def _files(tbl: Any) -> dict[str, Any]:
    """Data files and Parquet MB written per round (every round writes the same rows)."""
    files = tbl.inspect.files()
    return {
        "files_per_round": files.num_rows // (ROUNDS + 1),
        "parquet_mb": round(pc.sum(files.column("file_size_in_bytes")).as_py() / 1e6 / (ROUNDS + 1), 1),
    }


@pytest.mark.s3
@pytest.mark.postgres
def test_sink_partitioned_s3_postgres(benchmark: Any, batch: pa.Table, cluster_settings: Settings) -> None:
    tbl = _sink_new_windows(benchmark, Lake(cluster_settings), RT_LMP, batch)
    report(benchmark, batch, ceiling="s3", **_files(tbl))


# --- baselines: pyiceberg's own append and dlt's Iceberg destination ------------------------------------


def test_pyiceberg_append_partitioned(benchmark: Any, batch: pa.Table, bench_settings: Settings) -> None:
    """``tbl.append`` into a table with rt_lmp's schema and ``day(ts) x iso`` spec (the ml tier's copy)."""
    lake = Lake(bench_settings)
    lake.create_tiers()
    tbl = lake.table(RT_LMP, "ml")

    def append(data: pa.Table, window: Window) -> None:
        tbl.append(data)

    append(batch, window_of(0, DAYS))
    benchmark.pedantic(append, setup=new_windows(batch), rounds=ROUNDS, iterations=1)
    snapshot = tbl.current_snapshot()
    assert snapshot is not None and int(snapshot.summary["total-records"]) == batch.num_rows * (ROUNDS + 1)
    report(benchmark, batch, **_files(tbl))


def test_dlt_iceberg_partitioned(
    benchmark: Any, batch: pa.Table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dlt's filesystem destination, ``table_format="iceberg"``, ``day(ts) x iso``, on a local bucket."""
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")  # dlt reports usage over the network by default
    dlt = pytest.importorskip("dlt", reason="dlt is not installed: pip install 'dlt[pyiceberg]'")
    from dlt.destinations.adapters import iceberg_adapter, iceberg_partition

    pipeline = dlt.pipeline(
        pipeline_name="bench_dlt",
        destination=dlt.destinations.filesystem(bucket_url=(tmp_path / "bucket").as_uri()),
        dataset_name="bench",
        pipelines_dir=str(tmp_path / "pipelines"),
    )

    def load(data: pa.Table, window: Window) -> None:
        resource = dlt.resource(data, name="rt_lmp", table_format="iceberg", write_disposition="append")
        info = pipeline.run(iceberg_adapter(resource, partition=[iceberg_partition.day("ts"), "iso"]))
        assert not info.has_failed_jobs

    load(batch, window_of(0, DAYS))
    benchmark.pedantic(load, setup=new_windows(batch), rounds=ROUNDS, iterations=1)
    files = list((tmp_path / "bucket").rglob("*.parquet"))
    assert sum(pq.read_metadata(p).num_rows for p in files) == batch.num_rows * (ROUNDS + 1)
    report(
        benchmark,
        batch,
        dlt=dlt.__version__,
        files_per_round=len(files) // (ROUNDS + 1),
        parquet_mb=round(_mb(*files) / (ROUNDS + 1), 1),
    )
