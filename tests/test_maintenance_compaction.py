"""Compaction: small files bin-packed per partition, rows identical, concurrent writers and kills survived.

Tables are real-time shaped: one small data file per 5-minute poll. Rows are compared with DuckDB's
``iceberg_scan`` (an independent reader), all columns, not only counts.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance.compaction import compact, content_checksum
from hmco.maintenance.files import list_files, normalize_path, referenced_files
from hmco.query.lake import LakeSQL
from hmco.schemas import get_dataset
from hmco.sinks.datafiles import write_data_files
from hmco.sinks.iceberg import IcebergSink
from hmco.sources.synthetic import synthetic_lmp
from hmco.windows import Window, in_window

RT = get_dataset("rt_lmp")
START = Window.day("2026-11-26").start
POLL = timedelta(minutes=5)
PER_DAY = 288
HOUR = timedelta(hours=1)
DAY1 = START.date()
KEY = "iso, market, node, ts"


# --- helpers ---------------------------------------------------------------------------------------------


def poll(i: int, step: timedelta = POLL) -> Window:
    return Window(START + i * step, START + (i + 1) * step)


def write_poll_files(
    lake: Lake, polls: Iterable[int], *, nodes: int = 3, iso: str = "SYNTH", step: timedelta = POLL
) -> None:
    """One small data file per poll (every 5-minute interval of ``step``), as the real-time runner's lake
    copy leaves them.

    Each poll's file is written by the sink's own writer (``write_data_files``: field ids, zstd) and
    registered with ``add_files``, 100 files per commit: a window commit per poll through
    ``IcebergSink.write`` would make the same files at ~50 ms per commit (~1 min for 1,000).
    """
    tbl = lake.table(RT)
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    schema = schema_to_pyarrow(tbl.schema())

    def write(i: int) -> list[str]:
        rows = synthetic_lmp(poll(i, step), nodes=nodes, iso=iso)
        rows = pa.Table.from_arrays([rows.column(f.name).cast(f.type) for f in schema], schema=schema)
        return write_data_files(tbl, rows, f"poll-{i}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = [p for written in pool.map(write, polls) for p in written]
    for k in range(0, len(paths), 100):
        tbl.add_files(paths[k : k + 100], check_duplicate_files=False)


def duck_rows(lake: Lake) -> pa.Table:
    """Every column of every row, read by DuckDB's ``iceberg_scan``, in key order."""
    with LakeSQL(lake) as sql:
        return sql.sql(f"SELECT * FROM hub_curated.rt_lmp ORDER BY {KEY}", dialect="duckdb")


def duck_counts(lake: Lake) -> tuple[int, int]:
    """(rows, distinct primary keys) read by DuckDB."""
    with LakeSQL(lake) as sql:
        out = sql.sql(
            f"SELECT count(*) AS n, count(DISTINCT ({KEY})) AS k FROM hub_curated.rt_lmp", dialect="duckdb"
        )
    return out.column("n")[0].as_py(), out.column("k")[0].as_py()


def iceberg_rows(lake: Lake) -> pa.Table:
    rows = lake.table(RT).scan().to_arrow()
    return rows.sort_by([(c, "ascending") for c in ("iso", "market", "node", "ts")])


def current_snapshot_id(lake: Lake) -> int:
    snapshot = lake.table(RT).current_snapshot()
    assert snapshot is not None
    return snapshot.snapshot_id


def first_snapshot_id(lake: Lake) -> int:
    """The newest snapshot before any compaction (the last one the set-up committed)."""
    from pyiceberg.table.snapshots import Operation

    snapshots = lake.table(RT).snapshots()
    return [s.snapshot_id for s in snapshots if s.summary and s.summary.operation != Operation.OVERWRITE][-1]


def live_files(lake: Lake) -> pa.Table:
    return lake.table(RT).inspect.data_files()


def files_per_partition(lake: Lake) -> dict[tuple[Any, ...], int]:
    counts: dict[tuple[Any, ...], int] = {}
    for p in live_files(lake).column("partition").to_pylist():
        key = (p["ts_day"], p["iso"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def settings_json(settings: Settings) -> str:
    """Settings for a child process, secrets included (test plumbing on loopback)."""
    data = settings.model_dump(mode="json")
    for key in ("access_key_id", "secret_access_key"):
        value = getattr(settings.s3, key)
        data["s3"][key] = value.get_secret_value() if value else None
    return json.dumps(data)


def by_status(report: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d in report.details:
        out.setdefault(d["status"], []).append(d["partition"])
    return out


# --- the real-time-shaped table ----------------------------------------------------------------------------


def test_thousand_poll_files_become_one_file_per_partition_with_identical_rows(lake: Lake) -> None:
    write_poll_files(lake, range(1000))  # 1,000 polls of 3 nodes: 4 days, one ISO → 4 partitions
    assert live_files(lake).num_rows == 1000
    before = duck_rows(lake)

    report = compact(lake.table(RT))

    assert report.ok, report.error
    assert (report.files_before, report.files_after) == (1000, 4)
    assert sorted(files_per_partition(lake).values()) == [1, 1, 1, 1]
    assert by_status(report) == {"rewritten": [d["partition"] for d in report.details]}
    assert sum(d["files_in"] for d in report.details) == 1000
    assert sum(d["rows"] for d in report.details) == 1000 * 3
    after = duck_rows(lake)
    assert after.num_rows == 3000
    assert after.equals(before)  # every column of every row, by an independent reader
    assert iceberg_rows(lake).cast(before.schema).equals(before)  # and by pyiceberg


def test_outputs_are_sorted_zstd_parquet_with_field_ids_and_stats(lake: Lake) -> None:
    write_poll_files(lake, range(40), nodes=4)
    compact(lake.table(RT))
    tbl = lake.table(RT)
    (path,) = live_files(lake).column("file_path").to_pylist()
    with tbl.io.new_input(path).open() as f:
        parquet = pq.ParquetFile(f)
        rows = parquet.read()
        codec = parquet.metadata.row_group(0).column(0).compression
    assert codec == "ZSTD"
    ids = {f.name: int(f.metadata[b"PARQUET:field_id"]) for f in rows.schema}
    assert ids == {f.name: f.field_id for f in tbl.schema().fields}
    key = rows.select(["iso", "node", "ts"])
    assert key.equals(key.sort_by([("iso", "ascending"), ("node", "ascending"), ("ts", "ascending")]))
    (task,) = tbl.scan(row_filter="node = 'SYNTH_HUB_00002'").plan_files()
    assert task.file.record_count == 40 * 4
    assert not list(tbl.scan(row_filter="node = 'ZZZ'").plan_files())  # column stats prune the file
    assert task.file.sort_order_id == tbl.sort_order().order_id


def test_a_small_target_size_makes_several_files_of_about_that_size(settings: Settings) -> None:
    lake = Lake(settings)
    write_poll_files(lake, range(200), nodes=20)  # one day: one partition
    before = duck_rows(lake)
    total = sum(live_files(lake).column("file_size_in_bytes").to_pylist())

    report = compact(lake.table(RT), target_file_size=total // 4)

    sizes = live_files(lake).column("file_size_in_bytes").to_pylist()
    assert report.details[0]["files_out"] == len(sizes) == 4
    assert max(sizes) <= total // 4
    assert duck_rows(lake).equals(before)


def _peak_arrow_memory(settings_json_: str, target: int, results: Any) -> None:
    """Compact rt_lmp in this (fresh) process and report the Arrow memory pool's peak."""
    lake = Lake(Settings.model_validate_json(settings_json_))
    report = compact(lake.table("rt_lmp"), target_file_size=target, workers=1)
    results.put((report.files_after, pa.default_memory_pool().max_memory()))


def test_memory_is_bounded_by_one_bin_not_by_the_partition(settings: Settings) -> None:
    lake = Lake(settings)
    write_poll_files(lake, range(PER_DAY), nodes=1000)  # one partition, ~36 MB of Arrow
    partition_bytes = lake.table(RT).scan().to_arrow().nbytes
    parquet_bytes = sum(live_files(lake).column("file_size_in_bytes").to_pylist())
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    peaks = {}
    for bins in (1, 8):  # one bin is the whole partition; eight bins are an eighth of it each
        tbl = lake.table(RT)
        tbl.manage_snapshots().set_current_snapshot(first_snapshot_id(lake)).commit()
        child = ctx.Process(
            target=_peak_arrow_memory, args=(settings_json(settings), parquet_bytes // bins + 1, results)
        )
        child.start()
        files_after, peaks[bins] = results.get(timeout=240)
        child.join(timeout=60)
        assert files_after == bins
    assert peaks[1] > partition_bytes  # the measure sees the rows
    assert peaks[8] < partition_bytes / 2


def test_a_second_run_leaves_compacted_partitions_unchanged(settings: Settings) -> None:
    lake = Lake(settings)
    write_poll_files(lake, range(20))
    compact(lake.table(RT))
    snapshot = current_snapshot_id(lake)

    again = compact(lake.table(RT))

    assert by_status(again) == {"unchanged": ["ts_day=2026-11-26/iso=SYNTH"]}
    assert again.details[0]["reason"] == "1 small file(s), fewer than min_input_files=2"
    assert current_snapshot_id(lake) == snapshot


def test_dry_run_plans_without_writing_or_committing(settings: Settings) -> None:
    lake = Lake(settings)
    write_poll_files(lake, range(30))
    tbl = lake.table(RT)
    snapshot = current_snapshot_id(lake)
    stored = {p.name for p in Path(normalize_path(tbl.location())).rglob("*.parquet")}

    report = compact(tbl, dry_run=True)

    assert report.dry_run and report.ok
    assert [(d["status"], d["files_in"], d["files_out"]) for d in report.details] == [("planned", 30, 1)]
    assert current_snapshot_id(lake) == snapshot
    assert {p.name for p in Path(normalize_path(tbl.location())).rglob("*.parquet")} == stored


def test_a_partition_filter_compacts_only_the_partitions_it_selects(settings: Settings) -> None:
    lake = Lake(settings)
    write_poll_files(lake, range(10), iso="CAISO")
    write_poll_files(lake, range(10), iso="SPP")
    before = duck_rows(lake)

    report = compact(lake.table(RT), partitions="iso = 'SPP'")

    assert by_status(report) == {"rewritten": ["ts_day=2026-11-26/iso=SPP"]}
    assert files_per_partition(lake) == {(DAY1, "CAISO"): 10, (DAY1, "SPP"): 1}
    assert duck_rows(lake).equals(before)


def test_files_written_before_a_schema_change_are_read_by_field_id(settings: Settings) -> None:
    lake = Lake(settings)
    sink = IcebergSink(lake, pipeline="rt")
    for i in range(3):  # before the new column
        sink.write(synthetic_lmp(poll(i), nodes=2), dataset=RT, window=poll(i), batch_id=f"a{i}")
    for i in range(3, 6):  # the batch brings a new nullable column: the sink evolves the schema
        rows = synthetic_lmp(poll(i), nodes=2)
        rows = rows.append_column("baa", pa.array(["CISO"] * rows.num_rows))
        sink.write(rows, dataset=RT, window=poll(i), batch_id=f"b{i}")
    before = duck_rows(lake)
    assert before.column("baa").null_count == 6

    report = compact(lake.table(RT))

    assert report.ok and report.files_after == 1
    assert duck_rows(lake).equals(before)


def test_files_without_field_ids_are_read_through_the_name_mapping(settings: Settings) -> None:
    lake = Lake(settings)
    tbl = lake.table(RT)
    folder = Path(normalize_path(tbl.location())) / "imported"
    folder.mkdir(parents=True)
    for i in range(4):  # plain Parquet files (no field ids) registered with add_files, as an import does
        path = folder / f"import-{i}.parquet"
        pq.write_table(synthetic_lmp(poll(i), nodes=2), path)
        tbl.add_files([str(path)])
    before = duck_rows(lake)

    report = compact(lake.table(RT))

    assert report.ok and report.files_after == 1
    assert duck_rows(lake).equals(before)


def test_compaction_keeps_table_properties_and_pipeline_state_and_hmco_resumes(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="rt")
    for i in range(6):
        sink.write(synthetic_lmp(poll(i), nodes=2), dataset=RT, window=poll(i), batch_id=f"poll-{i}")
    properties = dict(lake.table(RT).properties)
    windows = lake.committed_windows("rt_lmp", "rt")
    assert lake.watermark("rt_lmp", "rt") == poll(5).end

    report = compact(lake.table(RT))

    assert report.ok and report.files_after == 1
    assert dict(lake.table(RT).properties) == properties
    assert lake.committed_windows("rt_lmp", "rt") == windows
    assert lake.watermark("rt_lmp", "rt") == poll(5).end
    assert lake.state.newest_watermark(lake.table(RT)) == poll(5).end
    # The next poll commits and moves the watermark; a revision of a compacted window replaces its rows.
    sink.write(synthetic_lmp(poll(6), nodes=2), dataset=RT, window=poll(6), batch_id="poll-6")
    revised = synthetic_lmp(poll(2), nodes=2)
    revised = revised.set_column(revised.schema.get_field_index("lmp"), "lmp", pc.add(revised["lmp"], 500.0))
    sink.write(revised, dataset=RT, window=poll(2), batch_id="revision-2")
    assert lake.watermark("rt_lmp", "rt") == poll(6).end
    assert duck_counts(lake) == (7 * 2, 7 * 2)
    rows = duck_rows(lake)
    in_poll_2 = rows.filter(pc.equal(rows["ts"], pa.scalar(poll(2).start, rows["ts"].type)))
    assert sorted(in_poll_2.column("lmp").to_pylist()) == sorted(revised.column("lmp").to_pylist())


# --- verification ------------------------------------------------------------------------------------------


def test_an_output_that_does_not_hold_the_rows_read_is_discarded_and_reported(settings: Settings) -> None:
    lake = Lake(settings)
    write_poll_files(lake, range(12))
    tbl = lake.table(RT)
    before, snapshot = duck_rows(lake), current_snapshot_id(lake)
    written: list[str] = []

    def corrupt(locations: list[str]) -> None:
        """Storage hands back different bytes: one price changed in the written file."""
        (location,) = locations
        written.append(location)
        with tbl.io.new_input(location).open() as f:
            rows = pq.read_table(f)
        lmp = rows.column("lmp").to_pylist()
        lmp[7] += 0.01
        rows = rows.set_column(rows.schema.get_field_index("lmp"), rows.schema.field("lmp"), pa.array(lmp))
        with tbl.io.new_output(location).create(overwrite=True) as out:
            pq.write_table(rows, out)

    report = compact(tbl, on_written=corrupt)

    assert not report.ok and "content checksum" in (report.error or "")
    assert report.details[0]["status"] == "skipped"
    assert report.details[0]["reason"].startswith("verification failed: content checksum")
    assert current_snapshot_id(lake) == snapshot  # nothing committed
    assert not tbl.io.new_input(written[0]).exists()  # the bad output is gone
    assert duck_rows(lake).equals(before)


def test_content_checksum_ignores_row_order_but_not_content() -> None:
    rows = synthetic_lmp(Window(START, START + timedelta(hours=1)), nodes=5)
    shuffled = rows.take(pa.array(list(range(rows.num_rows))[::-1]))
    assert content_checksum(shuffled) == content_checksum(rows)
    duplicated = pa.concat_tables([rows.slice(0, rows.num_rows - 1), rows.slice(0, 1)])
    assert content_checksum(duplicated).rows == rows.num_rows
    assert content_checksum(duplicated) != content_checksum(rows)  # a lost row and a duplicate: caught
    nulled = rows.set_column(
        rows.schema.get_field_index("energy"), "energy", pa.nulls(rows.num_rows, pa.float64())
    )
    assert content_checksum(nulled) != content_checksum(rows)


# --- a concurrent writer in another process ------------------------------------------------------------


# Hourly polls here (24 files a day) keep the two-partition tests quick; what matters is the interleaving.
REPLACED = 10  # the hour replaced (with revised prices) in day 1 while compaction has written its files
APPENDED = 24 + 23  # the last hour of day 2, absent at first, appended while compaction runs
ROWS_PER_HOUR = 12 * 3  # 12 intervals x 3 nodes


def _writer(settings_json_: str, requests: Any, done: Any) -> None:
    """A second process writing windows through IcebergSink when the test asks it to."""
    lake = Lake(Settings.model_validate_json(settings_json_))
    sink = IcebergSink(lake, pipeline="rt")
    while (request := requests.get(timeout=120)) is not None:
        if request == "replace":
            rows = synthetic_lmp(poll(REPLACED, HOUR), nodes=3)
            rows = rows.set_column(rows.schema.get_field_index("lmp"), "lmp", pc.add(rows["lmp"], 1000.0))
            sink.write(rows, dataset=RT, window=poll(REPLACED, HOUR), batch_id="revision")
        else:
            sink.write(
                synthetic_lmp(poll(APPENDED, HOUR), nodes=3),
                dataset=RT,
                window=poll(APPENDED, HOUR),
                batch_id="new",
            )
        done.put(request)


def test_a_writer_in_another_process_during_compaction_loses_and_duplicates_nothing(lake: Lake) -> None:
    write_poll_files(lake, [i for i in range(48) if i != APPENDED], step=HOUR)  # two days: two partitions
    expected = 48 * ROWS_PER_HOUR
    ctx = mp.get_context("spawn")
    requests, done = ctx.Queue(), ctx.Queue()
    writer = ctx.Process(target=_writer, args=(settings_json(lake.settings), requests, done))
    writer.start()
    # Partitions are rewritten in order (one worker). Each time compaction has written a partition's files
    # and not yet committed them, the other process commits into that partition and compaction waits for it:
    # day 1 gets a window replaced, day 2 a window appended.
    actions = iter(["replace", "append"])

    def write_while_compacting(locations: list[str]) -> None:
        action = next(actions)
        requests.put(action)
        assert done.get(timeout=120) == action

    try:
        report = compact(lake.table(RT), workers=1, on_written=write_while_compacting)
    finally:
        requests.put(None)
        writer.join(timeout=120)
    assert writer.exitcode == 0

    assert duck_counts(lake) == (expected, expected)  # every row once: count == distinct keys == expected
    day1, day2 = report.details
    assert (day1["status"], day2["status"]) == ("skipped", "rewritten")
    assert day1["reason"] == "a concurrent commit replaced 1 of the 24 file(s) read"
    assert day2["attempts"] == 2  # the first commit was refused (stale snapshot), the retry kept the append
    assert report.ok  # a skip for a concurrent writer is not an error
    rows = duck_rows(lake)
    replaced = rows.filter(in_window(rows["ts"], poll(REPLACED, HOUR)))
    assert replaced.num_rows == ROWS_PER_HOUR
    assert min(replaced.column("lmp").to_pylist()) > 900  # the writer's revision won
    assert rows.filter(in_window(rows["ts"], poll(APPENDED, HOUR))).num_rows == ROWS_PER_HOUR
    assert sorted(files_per_partition(lake).values()) == [2, 24]  # day 2: compacted + appended
    assert not unreferenced_outputs(lake)  # the skipped partition's outputs were deleted


def unreferenced_outputs(lake: Lake) -> list[str]:
    """Files compaction wrote that no snapshot references."""
    tbl = lake.table(RT)
    referenced = referenced_files(tbl)
    return [f.path for f in list_files(tbl) if "/compact-" in f.path and f.path not in referenced]


# --- kill -9 -----------------------------------------------------------------------------------------------


def _compact_and_die(settings_json_: str, record: str) -> None:
    """Compact rt_lmp; SIGKILL this process once the second partition's files are written (the first is
    committed by then), after noting every output location in ``record``."""
    lake = Lake(Settings.model_validate_json(settings_json_))
    outputs: list[str] = []

    def die_on_second(locations: list[str]) -> None:
        outputs.extend(locations)
        Path(record).write_text(json.dumps(outputs))
        if len(outputs) == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    compact(lake.table("rt_lmp"), workers=1, on_written=die_on_second)


def test_kill_9_in_the_middle_of_compaction_leaves_the_rows_and_only_unreferenced_files(
    lake: Lake, tmp_path: Path
) -> None:
    write_poll_files(lake, range(36), step=HOUR)  # a day and a half: two partitions
    before = duck_rows(lake)
    record = tmp_path / "outputs.json"
    ctx = mp.get_context("spawn")
    child = ctx.Process(target=_compact_and_die, args=(settings_json(lake.settings), str(record)))
    child.start()
    child.join(timeout=240)
    assert child.exitcode == -signal.SIGKILL

    first, second = json.loads(record.read_text())
    tbl = lake.table(RT)
    referenced = referenced_files(tbl)
    assert normalize_path(first) in referenced  # the first partition was committed before the kill
    assert normalize_path(second) not in referenced  # the second was written, never committed
    assert tbl.io.new_input(second).exists()
    assert duck_rows(lake).equals(before)  # readable, the same rows

    from hmco.maintenance.orphans import remove_orphan_files

    sweep = remove_orphan_files(tbl, now=datetime.now(UTC) + timedelta(days=4))
    assert normalize_path(second) in {normalize_path(d["path"]) for d in sweep.details}
    assert not tbl.io.new_input(second).exists()
    assert duck_rows(lake).equals(before)
    # and the next run finishes the job
    again = compact(lake.table(RT))
    assert by_status(again) == {
        "unchanged": [again.details[0]["partition"]],
        "rewritten": [again.details[1]["partition"]],
    }
    assert sorted(files_per_partition(lake).values()) == [1, 1]
    assert duck_rows(lake).equals(before)


def test_a_conflict_that_outlasts_the_attempts_skips_the_partition(settings: Settings) -> None:
    lake = Lake(settings)
    write_poll_files(lake, range(10))
    other = IcebergSink(Lake(settings), pipeline="rt")  # another writer, with its own catalog connection

    def append_meanwhile(locations: list[str]) -> None:
        other.write(synthetic_lmp(poll(50), nodes=3), dataset=RT, window=poll(50), batch_id="new")

    report = compact(lake.table(RT), max_attempts=1, on_written=append_meanwhile)

    (detail,) = report.details
    assert detail["status"] == "skipped" and detail["attempts"] == 1
    assert detail["reason"].startswith("concurrent commits on all 1 attempt(s)")
    assert duck_counts(lake) == (11 * 3, 11 * 3)
    assert not unreferenced_outputs(lake)


def test_a_commit_whose_outcome_is_unknown_stops_the_run_and_keeps_its_files(settings: Settings) -> None:
    import sqlalchemy.exc
    from pyiceberg.catalog.sql import SqlCatalog

    from hmco.catalog import catalog_properties

    class LostConnectionCatalog(SqlCatalog):
        """A real SQLite catalog whose connection drops during the commit: it may or may not have landed."""

        def commit_table(self, table, requirements, updates):  # type: ignore[no-untyped-def]
            raise sqlalchemy.exc.OperationalError("UPDATE iceberg_tables", {}, Exception("connection lost"))

    lake = Lake(settings)
    write_poll_files(lake, range(6), iso="CAISO")
    write_poll_files(lake, range(6), iso="SPP")
    before = duck_rows(lake)
    broken = Lake(settings, catalog=LostConnectionCatalog("hmco", **catalog_properties(settings)))

    report = compact(broken.table(RT))  # two workers: SPP is rewritten while CAISO commits

    caiso, spp = report.details
    assert caiso["status"] == "failed" and "commit outcome unknown" in caiso["reason"]
    assert spp["status"] == "skipped" and spp["reason"].startswith("not attempted")
    assert not report.ok
    assert duck_rows(lake).equals(before)
    # CAISO's output is kept (had the commit landed it would be live; the orphan sweep decides later),
    # SPP's never-committed output is deleted.
    (kept,) = unreferenced_outputs(lake)
    assert pq.read_table(kept).column("iso").unique().to_pylist() == ["CAISO"]
