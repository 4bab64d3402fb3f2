"""The lake's state holds its promises: exact resume, a watermark that never jumps a gap, a lost catalog
found again, race-safe creation, and hmco's own commit retry — each checked by an independent reader."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.errors import CommitConflict
from hmco.lake import Lake
from hmco.lake.state import merge_windows
from hmco.schemas import get_dataset
from hmco.sinks.iceberg import IcebergSink
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window
from tests.support.lake_workers import NODES, STEP

ROOT = Path(__file__).resolve().parents[1]
RT = get_dataset("rt_lmp")
DAY0 = datetime(2026, 11, 20, tzinfo=UTC)
PER_WINDOW = NODES * 72  # 6 hours of 5-minute intervals per node


def _duckdb_count(lake: Lake, dataset: str = "rt_lmp") -> tuple[int, int]:
    """Rows and distinct (node, ts) keys of a curated table, read by DuckDB's iceberg_scan, not pyiceberg."""
    from hmco.query.lake import LakeSQL

    with LakeSQL(lake) as sql:
        out = sql.sql(
            f"SELECT count(*) AS n, count(DISTINCT (node, ts)) AS k FROM hub_curated.{dataset}",
            dialect="duckdb",
        )
    return int(out["n"][0].as_py()), int(out["k"][0].as_py())


def _worker(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.lake_workers", "backfill", str(home), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _iso(t: datetime) -> str:
    return t.isoformat()


# --- the state's arithmetic --------------------------------------------------------------------------


def test_committed_windows_merge_into_intervals() -> None:
    h = timedelta(hours=1)
    spans = [
        (DAY0 + 2 * h, DAY0 + 3 * h),
        (DAY0, DAY0 + h),
        (DAY0 + h, DAY0 + 2 * h),
        (DAY0 + 5 * h, DAY0 + 6 * h),
    ]
    assert merge_windows(spans) == [(DAY0, DAY0 + 3 * h), (DAY0 + 5 * h, DAY0 + 6 * h)]


def test_the_watermark_never_jumps_a_gap_and_catches_up_when_it_fills(settings: Settings) -> None:
    lake = Lake(settings)
    sink = IcebergSink(lake, pipeline="p")
    w = [Window(DAY0 + i * STEP, DAY0 + (i + 1) * STEP) for i in range(4)]
    src = SyntheticISO(nodes=2, settings=settings)

    def write(window: Window) -> None:
        table = pa.concat_tables([t for _, t in src.read(window)])
        sink.write(table, dataset=RT, window=window, batch_id=f"b{window.start:%H}")

    write(w[0])
    write(w[2])
    write(w[3])
    assert lake.watermark("rt_lmp", "p") == w[0].end  # w[1] is missing: the mark stays before it
    write(w[1])
    assert lake.watermark("rt_lmp", "p") == w[3].end
    assert lake.committed_windows("rt_lmp", "p") == [(w[0].start, w[3].end)]


def test_committed_windows_survive_the_snapshot_log(settings: Settings) -> None:
    """Resume must not depend on snapshots that upkeep expires: the record lives in a table property."""
    lake = Lake(settings)
    pipe = Pipeline(SyntheticISO(nodes=2, settings=settings), lake=lake, name="p", window_step=STEP)
    pipe.run(Window(DAY0, DAY0 + 2 * STEP))
    tbl = lake.table("rt_lmp")
    current = tbl.current_snapshot()
    assert current is not None
    tbl.maintenance.expire_snapshots().older_than(datetime.now(UTC) + timedelta(days=1)).commit()
    assert len(lake.table("rt_lmp").snapshots()) == 1
    again = pipe.run(Window(DAY0, DAY0 + 2 * STEP), resume=True)
    assert [w.status for w in again.windows] == ["skipped", "skipped"]


# --- parallel backfill with a killed process ------------------------------------------------------------


def test_parallel_backfill_with_a_killed_process_resumes_without_a_gap(settings: Settings) -> None:
    home = settings.home_dir
    windows = [DAY0 + i * STEP for i in range(9)]
    # Process 1 owns windows 0-1 and is killed (SIGKILL) while fetching window 1, after committing window 0.
    killed = _worker(home, _iso(windows[0]), _iso(windows[2]), _iso(windows[1]))
    killed.communicate(timeout=240)
    assert killed.returncode == -9
    # Three more processes backfill the rest of the range at the same time.
    others = [_worker(home, _iso(windows[i]), _iso(windows[i + 2])) for i in (2, 4, 6)]
    for proc in others:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
    lake = Lake(settings)
    assert _duckdb_count(lake) == (7 * PER_WINDOW, 7 * PER_WINDOW)  # window 1 is missing
    # The watermark never passes the window the killed process did not commit.
    assert lake.watermark("rt_lmp", "parallel") == windows[1]

    from tests.support.lake_workers import pipeline

    report = pipeline(str(home)).backfill(_iso(windows[0]), _iso(windows[8]))
    assert [w.status for w in report.windows] == ["skipped", "ok"] + ["skipped"] * 6
    assert _duckdb_count(lake) == (8 * PER_WINDOW, 8 * PER_WINDOW)
    assert lake.watermark("rt_lmp", "parallel") == windows[8]


# --- a lost catalog --------------------------------------------------------------------------------------


def test_a_lost_catalog_finds_the_existing_table_and_its_history(settings: Settings) -> None:
    lake = Lake(settings)
    pipe = Pipeline(SyntheticISO(nodes=NODES, settings=settings), lake=lake, name="p", window_step=STEP)
    pipe.run(Window(DAY0, DAY0 + 2 * STEP))
    (settings.home_dir / "catalog.db").unlink()  # the catalog is lost; the table's files are not

    fresh = Lake(settings)
    again = Pipeline(SyntheticISO(nodes=NODES, settings=settings), lake=fresh, name="p", window_step=STEP)
    report = again.run(Window(DAY0, DAY0 + 3 * STEP), resume=True)
    assert [w.status for w in report.windows] == ["skipped", "skipped", "ok"]
    assert _duckdb_count(fresh) == (3 * PER_WINDOW, 3 * PER_WINDOW)
    # One metadata chain: the re-registered table continues the old one, it does not start beside it.
    tbl = fresh.table("rt_lmp")
    assert len([s for s in tbl.snapshots() if s.parent_snapshot_id is None]) == 1


def test_reading_state_after_a_lost_catalog_finds_it_without_creating(settings: Settings) -> None:
    lake = Lake(settings)
    Pipeline(SyntheticISO(nodes=2, settings=settings), lake=lake, name="p", window_step=STEP).run(
        Window(DAY0, DAY0 + STEP)
    )
    (settings.home_dir / "catalog.db").unlink()
    fresh = Lake(settings)
    assert fresh.watermark("rt_lmp", "p") == DAY0 + STEP
    assert fresh.table("rt_lmp", create=False).scan().to_arrow().num_rows == 2 * 72


# --- a fresh lake, four processes ------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
def test_four_processes_on_a_fresh_lake_all_succeed(tmp_path: Path, round_: int) -> None:
    from tests.support.lake_workers import race_write

    home = tmp_path / f"hmco-{round_}"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=race_write, args=(str(home), _iso(DAY0 + i * STEP), barrier, results))
        for i in range(4)
    ]
    for proc in procs:
        proc.start()
    rows = sorted(results.get(timeout=240) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert rows == [PER_WINDOW] * 4, rows
    lake = Lake(Settings.load(home=home))
    assert _duckdb_count(lake) == (4 * PER_WINDOW, 4 * PER_WINDOW)


# --- hmco's own commit retry, reached for real -------------------------------------------------------------


def _interleaving_lake(settings: Settings) -> tuple[Lake, Any, pa.Table, Window]:
    """A lake on a real SqlCatalog whose next commit is preceded by another writer's real commit.

    The interleaved commit comes from a second, independent catalog and Table handle, exactly as a
    concurrent process would make it, so the sink's commit meets a genuine conflict (stale base metadata).
    """
    from pyiceberg.catalog.sql import SqlCatalog

    from hmco.catalog import catalog_properties, load_catalog

    base = Lake(settings)
    base.table("rt_lmp")  # created with hmco's properties: pyiceberg's own retries are off
    assert base.table("rt_lmp").properties["commit.retry.num-retries"] == "0"
    src = SyntheticISO(nodes=2, settings=settings)
    mine, theirs = Window(DAY0, DAY0 + STEP), Window(DAY0 + STEP, DAY0 + 2 * STEP)
    theirs_rows = pa.concat_tables([t for _, t in src.read(theirs)])
    mine_rows = pa.concat_tables([t for _, t in src.read(mine)])

    class InterleavingCatalog(SqlCatalog):
        pending = 1

        def commit_table(self, table: Any, requirements: Any, updates: Any) -> Any:
            if self.pending and updates:
                type(self).pending -= 1
                other = IcebergSink(Lake(settings, catalog=load_catalog(settings)), pipeline="other")
                other.write(theirs_rows, dataset=RT, window=theirs, batch_id="interleaved")
            return super().commit_table(table, requirements, updates)

    catalog = InterleavingCatalog(settings.catalog.name, **catalog_properties(settings))
    return Lake(settings, catalog=catalog), InterleavingCatalog, mine_rows, mine


def test_a_commit_conflict_is_handed_to_hmco_and_surfaces_without_retries(settings: Settings) -> None:
    lake, catalog, rows, window = _interleaving_lake(settings)
    with pytest.raises(CommitConflict):
        IcebergSink(lake, pipeline="mine", max_attempts=1).write(
            rows, dataset=RT, window=window, batch_id="m"
        )
    assert catalog.pending == 0


def test_hmcos_commit_retry_loses_nothing(settings: Settings) -> None:
    lake, catalog, rows, window = _interleaving_lake(settings)
    result = IcebergSink(lake, pipeline="mine").write(rows, dataset=RT, window=window, batch_id="m")
    assert catalog.pending == 0 and result.rows == rows.num_rows
    assert _duckdb_count(Lake(settings)) == (4 * 72, 4 * 72)  # both writers' rows, each exactly once
    assert lake.committed_windows("rt_lmp", "mine") == [(window.start, window.end)]
    assert lake.committed_windows("rt_lmp", "other") == [(window.end, window.end + STEP)]
