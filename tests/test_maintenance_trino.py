"""Iceberg upkeep on Trino (the real Trino 476 server the tests start) of a table hmco wrote.

hmco writes ``hub_ml.rt_lmp`` in twelve small commits; Trino rewrites its manifests, compacts it,
expires its snapshots and removes an orphan file. Reports are measured through pyiceberg, rows are
checked with DuckDB (``iceberg_scan``) after every step, and hmco writes and reads the table
afterwards with its state (committed windows, watermark) intact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from hmco.compose.pipeline import Pipeline
from hmco.errors import ConfigError
from hmco.lake import Lake
from hmco.lake.state import Interval
from hmco.maintenance.files import table_stats
from hmco.maintenance.report import ActionReport
from hmco.maintenance.trino import TrinoMaintenance, data_size, duration, quote_identifier
from hmco.query.lake import LakeSQL
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window
from tests.support.trino_fixtures import TrinoLake

TIER = "ml"  # test_trino.py owns hub_curated in the shared Trino session; this module owns hub_ml
NODES = 4
#: Twelve 2-hour windows across two days: twelve commits, six small files in each day's partition.
SPAN = Window.of("2024-02-01T12:00", "2024-02-02T12:00")
STEP = timedelta(hours=2)
PIPELINE = "trino-upkeep"


def _pipeline(lake: Lake) -> Pipeline:
    return Pipeline(
        SyntheticISO(nodes=NODES, settings=lake.settings, chunk="2h"),
        lake=lake,
        name=PIPELINE,
        publish_tier=TIER,
        stage=False,
        archive=False,
        window_step=STEP,
    )


def _rows(lake: Lake) -> pa.Table:
    with LakeSQL(lake) as duck:
        return duck.sql(f"SELECT * FROM hub_{TIER}.rt_lmp ORDER BY iso, node, ts")


def _exists(lake: Lake, location: str) -> bool:
    fs, path = lake.filesystem(location)
    return fs.get_file_info(path).type == pafs.FileType.File


@dataclass
class Upkept:
    """The table before, and what each Trino action did to it."""

    stack: TrinoLake
    rows: pa.Table
    small_files: list[str]
    windows: list[Interval]
    watermark: datetime | None
    reports: dict[str, ActionReport] = field(default_factory=dict)
    rows_after: dict[str, pa.Table] = field(default_factory=dict)
    orphan: str = ""
    orphan_left: bool = True
    live_files_left: bool = False


@pytest.fixture(scope="module")
def upkept(trino_lake: TrinoLake) -> Upkept:
    lake = trino_lake.lake
    _pipeline(lake).run(SPAN)
    tbl = lake.table("rt_lmp", TIER)
    state = Upkept(
        stack=trino_lake,
        rows=_rows(lake),
        small_files=tbl.inspect.files().column("file_path").to_pylist(),
        windows=lake.committed_windows("rt_lmp", PIPELINE, TIER),
        watermark=lake.watermark("rt_lmp", PIPELINE, TIER),
    )
    with TrinoMaintenance(trino_lake.settings, lake) as trino:
        state.reports["rewrite_manifests"] = trino.rewrite_manifests("rt_lmp", TIER)
        state.rows_after["rewrite_manifests"] = _rows(lake)
        state.reports["compact"] = trino.compact("rt_lmp", TIER, file_size_threshold="64MB")
        state.rows_after["compact"] = _rows(lake)
        state.reports["expire_snapshots"] = trino.expire_snapshots("rt_lmp", TIER, older_than=timedelta(0))
        state.rows_after["expire_snapshots"] = _rows(lake)

        # A file a killed writer left in the table's data folder: no snapshot references it.
        state.orphan = f"{tbl.location()}/data/left-by-a-killed-writer.parquet"
        fs, path = lake.filesystem(state.orphan)
        with fs.open_output_stream(path) as out:
            out.write(b"not referenced")
        state.reports["remove_orphan_files"] = trino.remove_orphan_files(
            "rt_lmp", TIER, older_than=timedelta(0)
        )
        state.rows_after["remove_orphan_files"] = _rows(lake)
    state.orphan_left = _exists(lake, state.orphan)
    live = lake.table("rt_lmp", TIER).inspect.files().column("file_path").to_pylist()
    state.live_files_left = all(_exists(lake, p) for p in live)
    return state


def test_every_trino_action_succeeds_and_reports_as_trino(upkept: Upkept) -> None:
    assert [(r.action, r.engine, r.ok) for r in upkept.reports.values()] == [
        ("rewrite_manifests", "trino", True),
        ("compact", "trino", True),
        ("expire_snapshots", "trino", True),
        ("remove_orphan_files", "trino", True),
    ]
    assert all(r.table == f"hub_{TIER}.rt_lmp" for r in upkept.reports.values())


def test_trino_compaction_turns_many_small_files_into_one_per_partition(upkept: Upkept) -> None:
    compact = upkept.reports["compact"]
    assert len(upkept.small_files) == compact.files_before == 12
    assert compact.files_after == 2  # one per day partition
    tbl = upkept.stack.lake.table("rt_lmp", TIER)
    assert table_stats(tbl).data_files == 2
    assert {f["partition"]["ts_day"] for f in tbl.inspect.files().to_pylist()} == {
        datetime(2024, 2, 1).date(),
        datetime(2024, 2, 2).date(),
    }


def test_trino_upkeep_leaves_every_row_unchanged(upkept: Upkept) -> None:
    assert upkept.rows.num_rows == 12 * 24 * NODES
    for action, rows in upkept.rows_after.items():
        assert rows.equals(upkept.rows), action


def test_trino_expiry_removes_old_snapshots_and_the_files_only_they_referenced(upkept: Upkept) -> None:
    expire = upkept.reports["expire_snapshots"]
    assert expire.snapshots_before >= 13 and expire.snapshots_after == 1
    assert [p for p in upkept.small_files if _exists(upkept.stack.lake, p)] == []  # replaced by compaction
    assert expire.removed_files >= len(upkept.small_files)
    assert expire.removed_bytes > 0


def test_trino_manifest_rewrite_merges_manifests(upkept: Upkept) -> None:
    manifests = upkept.reports["rewrite_manifests"]
    assert manifests.manifests_before >= 12  # one per commit
    assert manifests.manifests_after <= 2  # Trino clusters manifests by partition: two days
    assert manifests.files_after == manifests.files_before == 12


def test_trino_orphan_removal_deletes_only_unreferenced_files(upkept: Upkept) -> None:
    orphans = upkept.reports["remove_orphan_files"]
    assert not upkept.orphan_left
    assert orphans.removed_files >= 1
    assert upkept.live_files_left
    assert orphans.files_after == orphans.files_before == 2


def test_hmco_reads_and_writes_the_table_after_trino_upkeep(upkept: Upkept) -> None:
    lake = upkept.stack.lake
    # hmco's state rides in table properties: Trino's commits kept it.
    assert lake.committed_windows("rt_lmp", PIPELINE, TIER) == upkept.windows == [(SPAN.start, SPAN.end)]
    assert lake.watermark("rt_lmp", PIPELINE, TIER) == upkept.watermark == SPAN.end

    nxt = Window(SPAN.end, SPAN.end + STEP)
    report = _pipeline(lake).run(nxt, resume=True)

    assert report.rows == 24 * NODES
    assert lake.committed_windows("rt_lmp", PIPELINE, TIER) == [(SPAN.start, nxt.end)]
    assert lake.watermark("rt_lmp", PIPELINE, TIER) == nxt.end
    rows = _rows(lake)
    assert rows.num_rows == upkept.rows.num_rows + 24 * NODES
    assert lake.scan("rt_lmp", TIER).to_arrow().num_rows == rows.num_rows
    # Re-running a window hmco wrote before Trino compacted it still replaces, never duplicates.
    _pipeline(lake).run(Window(SPAN.start, SPAN.start + STEP))
    assert _rows(lake).num_rows == rows.num_rows


def test_dry_run_renders_the_statement_and_changes_nothing(trino_lake: TrinoLake) -> None:
    lake = trino_lake.lake
    before = lake.table("rt_lmp", TIER).current_snapshot()
    with TrinoMaintenance(trino_lake.settings, lake) as trino:
        dry = trino.expire_snapshots(
            "rt_lmp",
            TIER,
            older_than=datetime(2024, 1, 1, tzinfo=UTC),
            now=datetime(2024, 1, 8, tzinfo=UTC),
            dry_run=True,
        )
    assert dry.details == [
        {
            "statement": 'ALTER TABLE "iceberg"."hub_ml"."rt_lmp" '
            "EXECUTE expire_snapshots(retention_threshold => '604800s')"
        }
    ]
    assert lake.table("rt_lmp", TIER).current_snapshot() == before


def test_unknown_table_is_a_config_error(trino_lake: TrinoLake) -> None:
    with TrinoMaintenance(trino_lake.settings, trino_lake.lake) as trino, pytest.raises(ConfigError):
        trino.compact("da_lmp", "staged")


def test_identifiers_and_arguments_are_quoted_or_refused() -> None:
    assert quote_identifier('we"ird') == '"we""ird"'
    assert data_size(128 * 1024 * 1024) == "134217728B"
    assert data_size("1GB") == "1GB"
    assert duration(timedelta(days=7)) == "604800s"
    assert duration(timedelta(seconds=1, milliseconds=200)) == "2s"  # rounded up: never less retention
    for bad in ("1GB'); DROP TABLE x; --", "1 GiB", 0, -5):
        with pytest.raises(ConfigError):
            data_size(bad)
    with pytest.raises(ConfigError):
        duration(timedelta(seconds=-1))
