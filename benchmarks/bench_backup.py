"""Backups and DR throughput: lake replication and ClickHouse BACKUP/RESTORE against ``copy_files`` ceilings.

Real engines: PostgreSQL (catalog), two SeaweedFS servers (primary and DR site), chdb (ClickHouse in
process). Every figure sits next to a plain :func:`pyarrow.fs.copy_files` of the *same bytes*, measured
in the same run (object by object, 8 at a time, no verification, no records): the ceiling of an object
copy here.

* **Lake** (``HMCO_BENCH_BACKUP_GB``, default 1): days of canonical ``rt_lmp`` (5,200 nodes x 288
  intervals, ``IcebergSink`` into the curated tier) are written to the primary until its tier objects
  hold that many GB. ``test_lake_ceiling_copy_files``: ``copy_files`` of the same objects from the
  primary endpoint to the DR endpoint (see :func:`_copy_objects`); ``test_lake_replicate``:
  :func:`~hmco.maintenance.replication.replicate` (8 workers, per-object SHA-256 of source and copy, metadata last, manifest and record). The DR site
  is emptied before every round (untimed), so each round is a full copy.
* **ClickHouse** (``HMCO_BENCH_ROWS``, default 10M): synthetic rt_lmp rows in a chdb store.
  ``test_clickhouse_full_backup``: ``ClickHouseBackups.full()`` (``BACKUP … TO S3`` on the primary
  SeaweedFS, then listing and recording); ``test_clickhouse_restore``: ``restore()`` of that backup into
  an empty database (verify, RESTORE, ensure_schema). Ceilings: ``copy_files`` of the backup's own objects
  S3 -> local disk (the restore's direction) and local disk -> S3 (the backup's direction).
* **Drill**: :func:`~hmco.maintenance.drill.run_drill` once at test scale (the fixture of
  ``tests/test_dr_drill.py``); its measured RPO and RTO go to ``extra_info``.

MB/s are decimal (1e6 bytes) of stored bytes, from the mean round. Rounds: ``HMCO_BENCH_BACKUP_ROUNDS``
(default 1; the data is big).

Run: ``.venv/bin/pytest benchmarks/bench_backup.py -p no:cacheprovider --benchmark-only``
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest
from tests import conftest as _tests_conftest
from tests.support.chdb import chdb_settings, lmp_rows, unique_database
from tests.support.servers import S3_KEY, S3_SECRET, SeaweedFS

from bench_clickhouse import synthetic_rt_lmp  # the same 10M synthetic rows as the sink benchmark
from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema, refresh_rollups
from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.lake import TIERS, Lake
from hmco.maintenance.backup_records import BackupRecord
from hmco.maintenance.clickhouse_backup import ClickHouseBackups
from hmco.maintenance.drill import run_drill
from hmco.maintenance.replication import replicate
from hmco.schemas import get_dataset
from hmco.sinks.clickhouse import DEFAULT_BATCH_ROWS, _arrow_ipc
from hmco.sinks.iceberg import IcebergSink
from hmco.sources.synthetic import SyntheticEIADailyFuel, SyntheticISO, synthetic_lmp
from hmco.windows import Window, floor_time

GB = float(os.environ.get("HMCO_BENCH_BACKUP_GB", "1"))
ROWS = int(os.environ.get("HMCO_BENCH_ROWS", "10000000"))
ROUNDS = int(os.environ.get("HMCO_BENCH_BACKUP_ROUNDS", "1"))
NODES = 5200
MAX_DAYS = 200
CHUNK = 8 * 1024 * 1024
RT_LMP = get_dataset("rt_lmp")
DAY0 = Window.day("2026-01-01")

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

seaweed_dr = _tests_conftest.seaweed_dr  # the DR site's SeaweedFS (a session fixture of the tests)

#: MB/s measured earlier in the run (ceilings, backups), for the fractions in ``extra_info``.
MBPS: dict[str, float] = {}
#: the ClickHouse backup taken by ``test_clickhouse_full_backup`` (restore and ceilings use it).
TAKEN: dict[str, Any] = {}


def _mbps(benchmark: Any, size: int) -> float:
    return size / 1e6 / benchmark.stats.stats.mean


def _report(benchmark: Any, name: str, size: int, *, ceiling: str | None = None, **extra: Any) -> None:
    mbps = _mbps(benchmark, size)
    MBPS[name] = mbps
    info: dict[str, Any] = {
        "mb": round(size / 1e6, 1),
        "mb_per_s": round(mbps, 1),
        "best_mb_per_s": round(size / 1e6 / benchmark.stats.stats.min, 1),
        **extra,
    }
    if ceiling and ceiling in MBPS:
        info["ceiling_mb_per_s"] = round(MBPS[ceiling], 1)
        info["fraction_of_ceiling"] = round(mbps / MBPS[ceiling], 2)
    benchmark.extra_info.update(info)


# --- sites: a primary lake of GB gigabytes, and its DR site ------------------------------------------


def _listing(fs: pafs.FileSystem, roots: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for root in roots:
        for info in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
            if info.type == pafs.FileType.File:
                found[info.path] = int(info.size or 0)
    return found


def _copy_objects(src: pafs.FileSystem, dst: pafs.FileSystem, pairs: list[tuple[str, str]]) -> None:
    """The ceiling: ``copy_files`` object by object, 8 at a time (as replicate's workers), no verification.

    Not one directory ``copy_files``: that writes prefix markers, which the DR's S3 Tables bucket refuses.
    """

    def one(pair: tuple[str, str]) -> None:
        pafs.copy_files(
            pair[0],
            pair[1],
            source_filesystem=src,
            destination_filesystem=dst,
            chunk_size=CHUNK,
            use_threads=False,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, pairs))


def _roots(lake: Lake) -> list[str]:
    return [lake.storage_location(name).removeprefix("s3://").rstrip("/") for name in TIERS]


def _shifted(table: pa.Table, days: int) -> pa.Table:
    delta = pa.scalar(timedelta(days=days), pa.duration("us"))
    for name in ("ts", "interval_end"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pc.add(table.column(name), delta))
    return table


@pytest.fixture(scope="module")
def sites(
    postgres: Any, seaweed: SeaweedFS, seaweed_dr: SeaweedFS, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Lake, Lake]:
    """The primary (PostgreSQL catalog, SeaweedFS) holding >= GB of rt_lmp, and its (empty) DR site."""
    tag = f"bk{os.getpid()}-{uuid.uuid4().hex[:6]}"
    primary = Lake(
        Settings.load(
            profile="cluster",
            home=tmp_path_factory.mktemp("primary"),
            storage_prefix=tag,
            catalog={"type": "sql", "uri": postgres.create_database(f"catalog_{tag.replace('-', '_')}")},
            s3={"endpoint": seaweed.endpoint, "access_key_id": S3_KEY, "secret_access_key": S3_SECRET},
        )
    )
    dr = Lake(
        Settings.load(
            home=tmp_path_factory.mktemp("dr"),
            storage_prefix=tag,
            s3={"endpoint": seaweed_dr.endpoint, "access_key_id": S3_KEY, "secret_access_key": S3_SECRET},
        )
    )
    primary.create_tiers()
    sink = IcebergSink(primary, "curated", pipeline="bench")
    day = synthetic_lmp(DAY0, NODES, iso="CAISO")
    fs, _ = primary.filesystem("s3://")
    target = GB * 1e9
    for d in range(MAX_DAYS):
        window = Window(DAY0.start + timedelta(days=d), DAY0.start + timedelta(days=d + 1))
        sink.write(
            _shifted(day, d), dataset=RT_LMP, window=window, batch_id=f"day{d}", scope={"iso": ["CAISO"]}
        )
        if sum(_listing(fs, _roots(primary)).values()) >= target:
            break
    return primary, dr


@pytest.fixture(scope="module")
def lake_objects(sites: tuple[Lake, Lake]) -> dict[str, int]:
    primary, _ = sites
    fs, _ = primary.filesystem("s3://")
    return _listing(fs, _roots(primary))


def _wipe_dr(dr: Lake) -> None:
    """Delete every object of the DR site's tier roots and backups location (listed: the DR's curated
    bucket is an S3 Tables bucket, whose HEAD of a prefix is refused)."""
    fs, _ = dr.filesystem("s3://")
    for path in _listing(fs, [*_roots(dr), dr.backup_location().removeprefix("s3://")]):
        fs.delete_file(path)


def test_lake_ceiling_copy_files(
    benchmark: Any, sites: tuple[Lake, Lake], lake_objects: dict[str, int]
) -> None:
    primary, dr = sites
    src, _ = primary.filesystem("s3://")
    dst, _ = dr.filesystem("s3://")
    buckets = sorted({p.split("/", 1)[0] for p in lake_objects})

    def setup() -> None:
        _wipe_dr(dr)
        for bucket in buckets:
            dst.create_dir(bucket, recursive=False)

    def copy() -> None:
        _copy_objects(src, dst, [(p, p) for p in sorted(lake_objects)])

    benchmark.pedantic(copy, setup=setup, rounds=ROUNDS, iterations=1)
    assert _listing(dst, _roots(dr)) == lake_objects
    _report(benchmark, "lake_ceiling", sum(lake_objects.values()), objects=len(lake_objects))


def test_lake_replicate(benchmark: Any, sites: tuple[Lake, Lake], lake_objects: dict[str, int]) -> None:
    primary, dr = sites
    reports: list[Any] = []

    def run() -> None:
        reports.append(replicate(primary, dr))

    benchmark.pedantic(run, setup=lambda: _wipe_dr(dr), rounds=ROUNDS, iterations=1)
    report = reports[-1]
    assert (
        report.ok and report.copied == len(lake_objects) and report.bytes_copied == sum(lake_objects.values())
    )
    dst, _ = dr.filesystem("s3://")
    assert _listing(dst, _roots(dr)) == lake_objects
    _report(
        benchmark,
        "lake_replicate",
        report.bytes_copied,
        ceiling="lake_ceiling",
        objects=report.copied,
        metadata_files=report.metadata_copied,
        tables=len(report.tables),
    )


# --- ClickHouse: a store of ROWS rows, full backup to S3 and restore -----------------------------------


@pytest.fixture(scope="module")
def ch(sites: tuple[Lake, Lake]) -> Iterator[ClickHouseBackups]:
    """A chdb store of ROWS rows whose backups go to the primary lake's backups bucket (SeaweedFS)."""
    primary, _ = sites
    db = unique_database("bkbench")
    client = connect_clickhouse(chdb_settings(db))
    layout = ClickHouseLayout.of("rt_lmp", database=db)
    ensure_schema(client, layout)
    data = synthetic_rt_lmp(ROWS)
    for offset in range(0, data.num_rows, DEFAULT_BATCH_ROWS):
        chunk = data.slice(offset, DEFAULT_BATCH_ROWS)
        client.raw_insert(layout.store, chunk.schema.names, _arrow_ipc(chunk, None), fmt="Arrow")
    del data
    client.command(
        f"OPTIMIZE TABLE {layout.store} FINAL"
    )  # settle merges: every round backs up the same parts
    yield ClickHouseBackups.for_lake(client, layout, primary)
    for database in [db, *TAKEN.get("restored", [])]:
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")


def test_clickhouse_full_backup(benchmark: Any, ch: ClickHouseBackups) -> None:
    records: list[BackupRecord] = []
    benchmark.pedantic(lambda: records.append(ch.full()), rounds=ROUNDS, iterations=1)
    record = records[-1]
    TAKEN["record"] = record
    on_disk = ch.client.query(
        f"SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '{ch.layout.database}' AND active"
    ).result_rows[0][0]
    _report(
        benchmark,
        "ch_backup",
        record.size,
        rows=ROWS,
        objects=record.details["objects"],
        parts_on_disk_mb=round(int(on_disk) / 1e6, 1),
    )


def test_clickhouse_restore(benchmark: Any, ch: ClickHouseBackups) -> None:
    record: BackupRecord = TAKEN["record"]
    targets = iter(ClickHouseLayout.of("rt_lmp", database=unique_database("bkrestored")) for _ in range(100))
    reports: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        into = next(targets)
        TAKEN.setdefault("restored", []).append(into.database)
        return (into,), {}

    def run(into: ClickHouseLayout) -> None:
        reports.append(ch.restore(record.id, into=into))

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    restored = reports[-1].rows
    assert sum(n for t, n in restored.items() if t.endswith(".rt_lmp_store")) == ROWS
    _report(benchmark, "ch_restore", record.size, rows=ROWS)


def test_clickhouse_ceiling_download(benchmark: Any, ch: ClickHouseBackups, tmp_path: Path) -> None:
    """``copy_files`` of the backup's objects from S3 to local disk: the restore's direction."""
    record: BackupRecord = TAKEN["record"]
    fs, path = ch.target.filesystem(record.location)
    local = pafs.LocalFileSystem()
    dirs = iter(tmp_path / f"round-{i}" for i in range(100))

    objects = sorted(_listing(fs, [path]))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        into = str(next(dirs))
        pairs = [(o, into + o[len(path) :]) for o in objects]
        for _, dest in pairs:  # local files need their directories (untimed)
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
        return (pairs,), {}

    def copy(pairs: list[tuple[str, str]]) -> None:
        _copy_objects(fs, local, pairs)

    benchmark.pedantic(copy, setup=setup, rounds=ROUNDS, iterations=1)
    copied = _listing(local, [str(tmp_path / "round-0")])
    assert sum(copied.values()) == record.size
    TAKEN["local_copy"] = tmp_path / "round-0"
    _report(benchmark, "ch_ceiling_download", record.size, objects=len(copied))
    benchmark.extra_info["restore_fraction_of_this"] = round(
        MBPS["ch_restore"] / MBPS["ch_ceiling_download"], 2
    )


def test_clickhouse_ceiling_upload(benchmark: Any, ch: ClickHouseBackups) -> None:
    """``copy_files`` of the same objects from local disk back to S3: the backup's direction."""
    record: BackupRecord = TAKEN["record"]
    fs, path = ch.target.filesystem(record.location)
    local = pafs.LocalFileSystem()
    source = str(TAKEN["local_copy"])
    targets = iter(f"{path}-ceiling-{i}" for i in range(100))

    objects = sorted(_listing(local, [source]))

    def copy() -> None:
        into = next(targets)
        _copy_objects(local, fs, [(o, into + o[len(source) :]) for o in objects])

    benchmark.pedantic(copy, rounds=ROUNDS, iterations=1)
    assert sum(_listing(fs, [f"{path}-ceiling-0"]).values()) == record.size
    for i in range(ROUNDS):
        fs.delete_dir(f"{path}-ceiling-{i}")
    _report(benchmark, "ch_ceiling_upload", record.size)
    benchmark.extra_info["backup_fraction_of_this"] = round(MBPS["ch_backup"] / MBPS["ch_ceiling_upload"], 2)


# --- the drill at test scale: measured RPO and RTO -----------------------------------------------------


def test_drill_rpo_rto(
    benchmark: Any, cluster_settings: Settings, seaweed_dr: SeaweedFS, postgres: Any, tmp_path: Path
) -> None:
    """``run_drill`` once on the stores of ``tests/test_dr_drill.py`` (2 hours of 3 nodes, 10 days of EIA)."""
    now = datetime.now(UTC)
    primary = Lake(cluster_settings)
    primary.create_tiers()
    start = floor_time(now, timedelta(hours=1)) - timedelta(days=2)
    rt = Pipeline(SyntheticISO(nodes=3, settings=cluster_settings), lake=primary, name="rt")
    for d in range(2):
        assert rt.run(Window(start - timedelta(days=d), start - timedelta(days=d) + timedelta(hours=1))).ok
    today = floor_time(now, timedelta(days=1))
    eia = Pipeline(
        SyntheticEIADailyFuel(settings=cluster_settings),
        lake=primary,
        name="eia",
        window_step=timedelta(days=10),
    )
    assert eia.run(Window(today - timedelta(days=10), today)).ok
    dr = Lake(
        Settings.load(
            home=tmp_path / "dr",
            storage_prefix=cluster_settings.storage_prefix,
            s3={"endpoint": seaweed_dr.endpoint, "access_key_id": S3_KEY, "secret_access_key": S3_SECRET},
        )
    )
    db = unique_database("drillbench")
    client = connect_clickhouse(chdb_settings(db))
    layout = ClickHouseLayout.of("rt_lmp", database=db)
    ensure_schema(client, layout)
    first = floor_time(now, timedelta(minutes=5)) - timedelta(minutes=50)
    table = lmp_rows(first, 10, [f"N{i:03d}" for i in range(5)])
    prices = np.random.default_rng(7).normal(40.0, 15.0, table.num_rows)
    client.insert_arrow(
        layout.store, table.set_column(table.schema.get_field_index("lmp"), "lmp", pa.array(prices))
    )
    refresh_rollups(client, layout, Window(first, first + timedelta(minutes=50)))

    report = benchmark.pedantic(lambda: run_drill(primary, dr, client, layout), rounds=1, iterations=1)
    print(report)
    client.command(f"DROP DATABASE IF EXISTS {db} SYNC")
    assert report.ok, str(report)
    benchmark.extra_info.update(
        rpo_s=round(report.rpo.total_seconds(), 1),
        rpo_target_s=report.rpo_target.total_seconds(),
        rto_s=round(report.rto.total_seconds(), 1),
        rto_target_s=report.rto_target.total_seconds(),
        steps_s={k: round(v, 1) for k, v in report.steps.items()},
        lost_rows=report.lost,
    )
