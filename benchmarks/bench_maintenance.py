"""Iceberg upkeep: compaction throughput against a raw Parquet ceiling, and what it buys readers.

The table is real-time shaped: ``rt_lmp`` from 1,000 five-minute polls of 1,500 nodes (one ISO) =
1,500,000 rows in 1,000 small zstd data files over 4 ``day(ts) x iso`` partitions, each file written by
the sink's own writer (``write_data_files``) and registered 10 per commit (100 snapshots). It is built
once per module on the local profile (SQLite catalog + file warehouse).

- ceiling: ``pyarrow.parquet.write_table`` of the same 1.5M rows with the same codec, in the same run
  (the issue's yardstick: the rows are already in memory, nothing is read, sorted or committed);
- I/O floor: the least any compaction of these files does, read the same 1,000 data files
  (``pyarrow.parquet.read_table`` of the list: pyarrow's multi-file reader, on its threads) and
  ``write_table`` their rows once, same codec; no sort, no checksum, no commit;
- ``compact``: every round starts from the 1,000-file snapshot (the table's current snapshot is set
  back to it, untimed; compaction deletes no files, so the old snapshot is whole) and rewrites it into
  4 sorted files, verified by read-back checksum; rows/s and MB/s are of the rows rewritten (Arrow
  bytes), and their fraction of the ceiling and of the floor. The three also report ``cpu_s``, the
  process CPU seconds of a round (mean): on a loaded machine it moves less than the wall time;
- scans with DuckDB ``iceberg_scan`` (the seed's ``avg(lmp) GROUP BY iso, node`` over every row, through
  ``LakeSQL``) and ``tbl.scan().plan_files()`` planning, on the 1,000-file snapshot, after compaction,
  and after the rest of the weekly upkeep (manifest rewrite + snapshot expiry); ``extra_info`` carries
  the metadata size (metadata file + manifest list + manifests) of each state.

Trino is opt-in (``HMCO_BENCH_TRINO=1``): its scans need the same table on PostgreSQL + SeaweedFS and
the test Trino server (``tests/support/trino_fixtures.py``), which adds ~3 minutes to ``make bench``
(measured: 2 min 47 s). With it, the same compaction also runs on PostgreSQL + SeaweedFS (2 rounds), and
the seed query runs on Trino before and after. Shrink the table with ``HMCO_BENCH_MAINT_NODES=300``.

Run: ``.venv/bin/pytest benchmarks/bench_maintenance.py --benchmark-only -p no:cacheprovider``
(``HMCO_BENCH_TRINO=1 ... -k "ceiling or s3 or trino"`` for the Trino part alone).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars  # noqa: F401 - compaction's checksum and reader: imported before timing, as pyarrow is
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance.compaction import compact
from hmco.maintenance.files import normalize_path, table_stats
from hmco.query.lake import LakeSQL
from hmco.schemas import get_dataset
from hmco.sinks.datafiles import write_data_files
from hmco.sources.synthetic import synthetic_lmp
from hmco.windows import Window

NODES = int(os.environ.get("HMCO_BENCH_MAINT_NODES", "1500"))
POLLS = 1000
FILES_PER_COMMIT = 10
ROUNDS = 3
SCAN_ROUNDS = 5
START = Window.day("2026-11-01").start
RT = get_dataset("rt_lmp")
QUERY = "SELECT iso, node, avg(lmp) AS lmp FROM hub_curated.rt_lmp GROUP BY iso, node"

#: rows/s of the raw Parquet ceiling and of the I/O floor, filled by their benchmarks (which run first in
#: this file).
CEILING: dict[str, float] = {}
FLOOR: dict[str, float] = {}


@dataclass
class PolledTable:
    """The 1,000-file table and the snapshots of its states."""

    lake: Lake
    rows: pa.Table
    written: int  # snapshot id: 1,000 small files
    states: dict[str, int] = field(default_factory=dict)  # name -> snapshot id
    metadata: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> sizes

    def table(self) -> Any:
        return self.lake.table(RT)

    def use(self, snapshot_id: int) -> Any:
        """Make ``snapshot_id`` the table's current snapshot (untimed set-up of a round)."""
        tbl = self.table()
        if current_id(tbl) != snapshot_id:
            tbl.manage_snapshots().set_current_snapshot(snapshot_id).commit()
        return self.table()


def current_id(tbl: Any) -> int:
    snapshot = tbl.current_snapshot()
    assert snapshot is not None
    return int(snapshot.snapshot_id)


def metadata_size(tbl: Any) -> dict[str, int]:
    """Bytes a reader fetches before the first data byte: metadata file, manifest list, manifests."""
    stats = table_stats(tbl)
    snapshot = tbl.current_snapshot()
    manifest_list = len(tbl.io.new_input(snapshot.manifest_list)) if snapshot else 0
    return {
        "metadata_json_bytes": stats.metadata_bytes,
        "manifest_list_bytes": manifest_list,
        "manifests": stats.manifests,
        "manifest_bytes": stats.manifest_bytes,
        "metadata_bytes": stats.metadata_bytes + manifest_list + stats.manifest_bytes,
        "snapshots": stats.snapshots,
        "data_files": stats.data_files,
    }


def build_polled(lake: Lake) -> PolledTable:
    """The real-time-shaped table in ``lake`` (see the module docstring)."""
    lake.create_tiers()
    tbl = lake.table(RT)
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    schema = schema_to_pyarrow(tbl.schema())
    rows = synthetic_lmp(Window(START, START + POLLS * timedelta(minutes=5)), NODES, iso="CAISO")
    rows = pa.Table.from_arrays([rows.column(f.name).cast(f.type) for f in schema], schema=schema)
    rows = rows.sort_by([("ts", "ascending")])
    ts = rows.column("ts").to_numpy()
    bounds = [0, *(np.flatnonzero(ts[1:] != ts[:-1]) + 1).tolist(), rows.num_rows]
    assert len(bounds) - 1 == POLLS

    def write(i: int) -> list[str]:
        return write_data_files(tbl, rows.slice(bounds[i], bounds[i + 1] - bounds[i]), f"poll-{i}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = [p for written in pool.map(write, range(POLLS)) for p in written]
    for k in range(0, len(paths), FILES_PER_COMMIT):
        tbl.add_files(paths[k : k + FILES_PER_COMMIT], check_duplicate_files=False)
    tbl = lake.table(RT)
    polled = PolledTable(lake, rows, current_id(tbl))
    polled.states["small_files"] = polled.written
    polled.metadata["small_files"] = metadata_size(tbl)
    return polled


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory) -> PolledTable:
    return build_polled(Lake(Settings.load(home=tmp_path_factory.mktemp("maint") / "hmco")))


def sizes(polled: PolledTable, state: str) -> dict[str, Any]:
    return dict(polled.metadata[state])


def report(
    benchmark: Any,
    rows: int,
    nbytes: int,
    *,
    baselines: bool = False,
    cpu: list[float] | None = None,
    **extra: Any,
) -> None:
    """rows/s and MB/s (Arrow bytes) of the mean and best rounds into ``benchmark.extra_info``, with the
    fractions of the Parquet-write ceiling and of the I/O floor measured earlier in the run when
    ``baselines``, and the mean CPU seconds of the rounds in ``cpu``."""
    stats = benchmark.stats.stats
    info: dict[str, Any] = {
        "rows": rows,
        "arrow_mb": round(nbytes / 1e6, 1),
        "rows_per_s": round(rows / stats.mean),
        "mb_per_s": round(nbytes / 1e6 / stats.mean, 1),
        "best_rows_per_s": round(rows / stats.min),
        **extra,
    }
    if cpu:
        info["cpu_s"] = round(sum(cpu) / len(cpu), 3)
    for name, baseline in (("ceiling", CEILING), ("floor", FLOOR)):
        if baselines and "local" in baseline:
            info[f"{name}_rows_per_s"] = round(baseline["local"])
            info[f"fraction_of_{name}"] = round(info["rows_per_s"] / baseline["local"], 2)
    benchmark.extra_info.update(info)


def cpu_timed(fn: Any, cpu: list[float]) -> Any:
    """``fn``, noting the process CPU seconds of each call in ``cpu``."""

    def timed(*args: Any) -> None:
        started = time.process_time()
        fn(*args)
        cpu.append(time.process_time() - started)

    return timed


# --- the ceiling and compaction ---------------------------------------------------------------------------


def test_ceiling_parquet_write(benchmark: Any, polled: PolledTable, tmp_path: Path) -> None:
    paths = iter(tmp_path / f"round-{i}.parquet" for i in range(100))
    cpu: list[float] = []

    def write() -> None:
        pq.write_table(polled.rows, next(paths), compression="zstd")

    benchmark.pedantic(cpu_timed(write, cpu), rounds=ROUNDS, iterations=1)
    assert pq.read_metadata(tmp_path / "round-0.parquet").num_rows == polled.rows.num_rows
    CEILING["local"] = polled.rows.num_rows / benchmark.stats.stats.mean
    report(benchmark, polled.rows.num_rows, polled.rows.nbytes, cpu=cpu)


def test_floor_read_and_write_1000_files(benchmark: Any, polled: PolledTable, tmp_path: Path) -> None:
    """The I/O floor: read the 1,000 small files in parallel and write their rows once (see the module
    docstring)."""
    tbl = polled.use(polled.written)
    files = [normalize_path(task.file.file_path) for task in tbl.scan().plan_files()]
    assert len(files) == POLLS
    paths = iter(tmp_path / f"round-{i}.parquet" for i in range(100))
    cpu: list[float] = []

    def read_and_write() -> None:
        pq.write_table(pq.read_table(files), next(paths), compression="zstd")

    benchmark.pedantic(cpu_timed(read_and_write, cpu), rounds=ROUNDS, iterations=1)
    assert pq.read_metadata(tmp_path / "round-0.parquet").num_rows == polled.rows.num_rows
    report(
        benchmark,
        polled.rows.num_rows,
        polled.rows.nbytes,
        baselines=True,
        cpu=cpu,
        files_in=len(files),
        parquet_mb_in=round(sum(os.path.getsize(f) for f in files) / 1e6, 1),
    )
    FLOOR["local"] = polled.rows.num_rows / benchmark.stats.stats.mean


def test_compact_1000_files(benchmark: Any, polled: PolledTable) -> None:
    reports = []
    cpu: list[float] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (polled.use(polled.written),), {}

    def run(tbl: Any) -> None:
        reports.append(compact(tbl))

    benchmark.pedantic(cpu_timed(run, cpu), setup=setup, rounds=ROUNDS, iterations=1)
    last = reports[-1]
    assert all(r.ok for r in reports), [r.error for r in reports]
    assert (last.files_before, last.files_after) == (POLLS, 4)
    assert sum(d["rows"] for d in last.details) == polled.rows.num_rows
    polled.states["compacted"] = current_id(polled.table())
    polled.metadata["compacted"] = metadata_size(polled.table())
    report(
        benchmark,
        polled.rows.num_rows,
        polled.rows.nbytes,
        baselines=True,
        cpu=cpu,
        files_before=last.files_before,
        files_after=last.files_after,
        parquet_mb_in=round(last.bytes_before / 1e6, 1),
        parquet_mb_out=round(last.bytes_after / 1e6, 1),
        parquet_mb_in_per_s=round(last.bytes_before / 1e6 / benchmark.stats.stats.mean, 1),
    )


# --- what readers see: scans and planning, before and after ------------------------------------------------


def scan_duckdb(benchmark: Any, polled: PolledTable, state: str) -> None:
    polled.use(polled.states[state])
    with LakeSQL(polled.lake) as sql:
        result = benchmark.pedantic(lambda: sql.sql(QUERY), rounds=SCAN_ROUNDS, iterations=1, warmup_rounds=1)
    assert result.num_rows == NODES
    report(benchmark, polled.rows.num_rows, polled.rows.nbytes, **sizes(polled, state))


def plan_files(benchmark: Any, polled: PolledTable, state: str) -> None:
    tbl = polled.use(polled.states[state])
    tasks = benchmark.pedantic(lambda: list(tbl.scan().plan_files()), rounds=SCAN_ROUNDS, iterations=1)
    assert len(tasks) == polled.metadata[state]["data_files"]
    benchmark.extra_info.update(polled.metadata[state])


@pytest.mark.parametrize("state", ["small_files", "compacted"])
def test_scan_duckdb(benchmark: Any, polled: PolledTable, state: str) -> None:
    scan_duckdb(benchmark, polled, state)


@pytest.mark.parametrize("state", ["small_files", "compacted"])
def test_plan_files(benchmark: Any, polled: PolledTable, state: str) -> None:
    plan_files(benchmark, polled, state)


def test_weekly_upkeep_after_compaction(benchmark: Any, polled: PolledTable) -> None:
    """Rewrite manifests, then expire every snapshot but the compacted one (one round: it deletes files)."""
    from hmco.maintenance.expire import expire_snapshots
    from hmco.maintenance.manifests import rewrite_manifests

    def upkeep(tbl: Any) -> None:
        assert rewrite_manifests(tbl).ok
        expired = expire_snapshots(polled.table(), older_than=timedelta(0), retain_last=1)
        assert expired.ok
        benchmark.extra_info.update(removed_files=expired.removed_files, removed_bytes=expired.removed_bytes)

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (polled.use(polled.states["compacted"]),), {}

    benchmark.pedantic(upkeep, setup=setup, rounds=1, iterations=1)
    tbl = polled.table()
    polled.states["upkept"] = current_id(tbl)
    polled.metadata["upkept"] = metadata_size(tbl)
    assert polled.metadata["upkept"]["snapshots"] == 1


def test_scan_duckdb_after_upkeep(benchmark: Any, polled: PolledTable) -> None:
    scan_duckdb(benchmark, polled, "upkept")


def test_plan_files_after_upkeep(benchmark: Any, polled: PolledTable) -> None:
    plan_files(benchmark, polled, "upkept")


# --- Trino (opt-in: HMCO_BENCH_TRINO=1) ---------------------------------------------------------------------

TRINO = os.environ.get("HMCO_BENCH_TRINO", "") == "1"
trino_only = pytest.mark.skipif(not TRINO, reason="Trino scans start a Trino server: set HMCO_BENCH_TRINO=1")


@pytest.fixture(scope="module")
def s3_polled(request: pytest.FixtureRequest) -> PolledTable:
    """The same table on PostgreSQL + SeaweedFS, in the catalog the test Trino server reads."""
    return build_polled(request.getfixturevalue("trino_lake").lake)


@trino_only
@pytest.mark.s3
@pytest.mark.postgres
def test_compact_1000_files_s3(benchmark: Any, s3_polled: PolledTable) -> None:
    reports = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (s3_polled.use(s3_polled.written),), {}

    benchmark.pedantic(lambda tbl: reports.append(compact(tbl)), setup=setup, rounds=2, iterations=1)
    assert all(r.ok for r in reports) and reports[-1].files_after == 4
    s3_polled.states["compacted"] = current_id(s3_polled.table())
    s3_polled.metadata["compacted"] = metadata_size(s3_polled.table())
    report(
        benchmark,
        s3_polled.rows.num_rows,
        s3_polled.rows.nbytes,
        files_after=reports[-1].files_after,
    )


@trino_only
@pytest.mark.s3
@pytest.mark.postgres
@pytest.mark.parametrize("state", ["small_files", "compacted"])
def test_scan_trino(
    benchmark: Any, s3_polled: PolledTable, request: pytest.FixtureRequest, state: str
) -> None:
    from hmco.query.trino import TrinoSQL

    s3_polled.use(s3_polled.states[state])
    with TrinoSQL(request.getfixturevalue("trino_lake").settings) as trino:
        result = benchmark.pedantic(
            lambda: trino.sql(QUERY.replace("hub_curated.", "iceberg.hub_curated.")),
            rounds=SCAN_ROUNDS,
            iterations=1,
            warmup_rounds=1,
        )
    assert result.num_rows == NODES
    report(benchmark, s3_polled.rows.num_rows, s3_polled.rows.nbytes, **sizes(s3_polled, state))
