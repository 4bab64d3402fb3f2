"""The pipeline spine: archive before parse, audit branch ‖ gate → curated, windows, backfills, resume, reports."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hmco.compose.pipeline import Pipeline
from hmco.errors import PipelineError, QualityGateFailed, SourceUnavailable
from hmco.lake import Lake
from hmco.quality.gate import ExpectationOutcome, GateResult
from hmco.schemas import Dataset
from hmco.sinks.raw import RawArchive
from hmco.sources.base import RawPayload
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window

REPO = Path(__file__).resolve().parents[1]
SIX_HOURS = Window.of("2026-11-26T00:00", "2026-11-26T06:00")


class RejectNegativeLmp:
    """A real gate (not a mock): fails the batch if any LMP is below a floor."""

    def __init__(self, floor: float) -> None:
        self.floor = floor
        self.calls = 0

    def check(self, table: pa.Table, dataset: Dataset, window: Window) -> GateResult:
        self.calls += 1
        bad = table.filter(pc.less(table["lmp"], self.floor))
        return GateResult(
            dataset.name,
            [
                ExpectationOutcome(
                    "lmp_above_floor", bad.num_rows == 0, column="lmp", unexpected_count=bad.num_rows
                )
            ],
            table.num_rows,
        )


class FlakySource(SyntheticISO):
    """Fails fetching the windows whose start hour is listed, until ``heal()``."""

    def __init__(self, *args: object, fail_hours: set[int], **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.fail_hours = set(fail_hours)

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        if window.start.hour in self.fail_hours:
            raise SourceUnavailable("feed down", url="synthetic://")
        yield from super().fetch(window)


class CorruptPageSource(SyntheticISO):
    """The second payload of each window is truncated bytes (like a cut-off download)."""

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        for p in super().fetch(window):
            yield replace(p, body=p.body[:100]) if p.page == 1 else p


def _curated(lake: Lake) -> pa.Table:
    return lake.table("rt_lmp").scan().to_arrow()


def _data_files(lake: Lake, tier: str | None = None) -> set[str]:
    """Every Parquet file under the table's data directory (what was written, committed or not)."""
    import pyarrow.fs as pafs

    tbl = lake.table("rt_lmp", tier)
    fs, base = lake.filesystem(f"{tbl.location()}/data")
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return {i.path.rsplit("/", 1)[-1] for i in infos if i.path.endswith(".parquet")}


def _live_files(lake: Lake, tier: str | None = None) -> set[str]:
    tbl = lake.table("rt_lmp", tier)
    return {t.file.file_path.rsplit("/", 1)[-1] for t in tbl.scan().plan_files()}


def test_window_is_written_once_and_published_from_its_audit_branch(lake: Lake) -> None:
    pipe = Pipeline(
        SyntheticISO(nodes=30, settings=lake.settings), lake=lake, name="rt", window_step=timedelta(hours=2)
    )
    report = pipe.run(SIX_HOURS)
    assert [w.status for w in report.windows] == ["ok", "ok", "ok"]
    assert report.rows == 30 * 72 and report.ok
    assert _curated(lake).num_rows == 30 * 72
    # Written once: every data file written is live in curated, nothing went to the staged tier, and
    # each window's snapshot on main is the one its audit branch held (the branch itself is gone).
    assert _data_files(lake) == _live_files(lake) and len(_live_files(lake)) == 3
    assert lake.table("rt_lmp", "staged").current_snapshot() is None
    tbl = lake.table("rt_lmp")
    assert [r for r in tbl.metadata.refs if r != "main"] == []
    assert all(w.timings["stage"] > 0 and w.timings["gate"] > 0 for w in report.windows)
    assert all(w.payloads == 2 and w.archived == 2 for w in report.windows)  # 1-hour pages, archived first
    assert pipe.watermark == SIX_HOURS.end
    assert "3 ok" in str(report) and "2,160 rows" in str(report)


def test_same_window_twice_gives_the_same_rows(lake: Lake) -> None:
    pipe = Pipeline(SyntheticISO(nodes=20, settings=lake.settings), lake=lake, name="rt")
    pipe.run(SIX_HOURS)
    before = _curated(lake).sort_by([("node", "ascending"), ("ts", "ascending")])
    report = pipe.run(SIX_HOURS)
    after = _curated(lake).sort_by([("node", "ascending"), ("ts", "ascending")])
    # The same rows, now as a later revision: published_at is the (newer) fetch time of the re-run.
    assert after.drop_columns(["published_at"]).equals(before.drop_columns(["published_at"]))
    assert pc.min(after["published_at"]).as_py() > pc.max(before["published_at"]).as_py()
    assert sum(w.archived for w in report.windows) == 0  # identical payloads are not stored again


def test_failed_gate_publishes_nothing_and_keeps_the_batch_in_quarantine(lake: Lake) -> None:
    gate = RejectNegativeLmp(floor=1e9)
    pipe = Pipeline(SyntheticISO(nodes=10, settings=lake.settings), lake=lake, name="rt", gate=gate)
    with pytest.raises(QualityGateFailed) as info:
        pipe.run(SIX_HOURS)
    assert info.value.failed == ["lmp_above_floor"]
    report = info.value.report  # type: ignore[attr-defined]
    assert report.windows[0].status == "failed"
    assert report.windows[0].failed_expectations == ["lmp_above_floor"]
    assert _curated(lake).num_rows == 0
    assert len(lake.state.quarantined("rt_lmp")) == 1
    fs, path = lake.filesystem(lake.state.quarantined("rt_lmp")[0])
    assert pq.read_table(path, filesystem=fs).num_rows == 10 * 72
    # Its audit branch is dropped and the data files written for it are deleted.
    assert list(lake.table("rt_lmp").metadata.refs) == ["main"]
    assert _data_files(lake) == set()
    assert pipe.watermark is None


def test_gate_result_is_stored_beside_the_staged_data(lake: Lake) -> None:
    import json

    pipe = Pipeline(
        SyntheticISO(nodes=5, settings=lake.settings), lake=lake, name="rt", gate=RejectNegativeLmp(-1e9)
    )
    pipe.run(SIX_HOURS)
    fs, base = lake.filesystem(f"{lake.storage_location('staged')}/_quality/rt_lmp")
    import pyarrow.fs as pafs

    files = [i.path for i in fs.get_file_info(pafs.FileSelector(base)) if i.path.endswith(".json")]
    assert len(files) == 1
    with fs.open_input_stream(files[0]) as f:
        doc = json.loads(f.read())
    assert doc["success"] is True and doc["row_count"] == 5 * 72 and doc["pipeline"] == "rt"


def test_fixed_data_publishes_after_a_failed_gate(lake: Lake) -> None:
    gate = RejectNegativeLmp(floor=1e9)
    pipe = Pipeline(SyntheticISO(nodes=10, settings=lake.settings), lake=lake, name="rt", gate=gate)
    with pytest.raises(QualityGateFailed):
        pipe.run(SIX_HOURS)
    gate.floor = -1e9  # the data (or the threshold) is fixed
    assert pipe.run(SIX_HOURS).ok
    assert _curated(lake).num_rows == 10 * 72


def test_parse_failure_keeps_the_raw_payload_and_names_it(lake: Lake) -> None:
    pipe = Pipeline(CorruptPageSource(nodes=5, settings=lake.settings), lake=lake, name="rt")
    with pytest.raises(PipelineError) as info:
        pipe.run(SIX_HOURS)
    assert "archived_key=" in str(info.value)
    archive = RawArchive(lake)
    assert len(archive.keys("synthetic_iso")) == 2  # the good page and the corrupt one, byte for byte
    assert {len(p.body) for p in archive.payloads("synthetic_iso")} >= {100}
    assert _curated(lake).num_rows == 0


def test_source_outage_stops_the_backfill_and_resume_fills_the_rest(lake: Lake) -> None:
    source = FlakySource(nodes=8, settings=lake.settings, fail_hours={2})
    pipe = Pipeline(source, lake=lake, name="rt", window_step=timedelta(hours=1))
    with pytest.raises(PipelineError) as info:
        pipe.backfill("2026-11-26T00:00", "2026-11-26T05:00")
    report = info.value.report
    assert [w.status for w in report.windows] == ["ok", "ok", "failed"]
    assert "SourceUnavailable" in report.windows[2].error
    assert pipe.watermark == datetime(2026, 11, 26, 2, tzinfo=UTC)
    source.fail_hours.clear()
    resumed = pipe.backfill("2026-11-26T00:00", "2026-11-26T05:00")
    assert [w.status for w in resumed.windows] == ["skipped", "skipped", "ok", "ok", "ok"]
    out = _curated(lake)
    assert out.num_rows == 8 * 12 * 5
    assert out.group_by(["node", "ts"]).aggregate([]).num_rows == out.num_rows


CRASHING_RUN = """
import os, sys
from datetime import timedelta
from hmco.config import Settings
from hmco.lake import Lake
from hmco.compose.pipeline import Pipeline
from hmco.sources.synthetic import SyntheticISO

class CrashOnThird:
    def __init__(self):
        self.calls = 0
    def check(self, table, dataset, window):
        self.calls += 1
        if self.calls == 3:
            os._exit(17)  # the process dies after staging window 3, before publishing it
        from hmco.quality.gate import GateResult
        return GateResult(dataset.name, [], table.num_rows)

settings = Settings.load(home=sys.argv[1])
pipe = Pipeline(SyntheticISO(nodes=6, settings=settings), lake=Lake(settings), name="rt",
                gate=CrashOnThird(), window_step=timedelta(hours=1))
pipe.backfill("2026-11-26T00:00", "2026-11-26T06:00")
"""


def test_crash_in_the_middle_of_a_backfill_resumes_without_gap_or_duplicate(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(CRASHING_RUN))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, str(script), str(settings.home)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 17, proc.stderr
    lake = Lake(settings)
    pipe = Pipeline(
        SyntheticISO(nodes=6, settings=settings), lake=lake, name="rt", window_step=timedelta(hours=1)
    )
    assert pipe.watermark == datetime(2026, 11, 26, 2, tzinfo=UTC)  # windows 1-2 committed before the crash
    report = pipe.backfill("2026-11-26T00:00", "2026-11-26T06:00")
    assert [w.status for w in report.windows] == ["skipped", "skipped", "ok", "ok", "ok", "ok"]
    out = _curated(lake)
    assert out.num_rows == 6 * 12 * 6
    assert out.group_by(["node", "ts"]).aggregate([]).num_rows == out.num_rows
    hours = sorted({t.hour for t in out.column("ts").to_pylist()})
    assert hours == [0, 1, 2, 3, 4, 5]


def test_empty_window_erases_nothing_and_moves_the_watermark(lake: Lake) -> None:
    pipe = Pipeline(SyntheticISO(nodes=4, settings=lake.settings), lake=lake, name="rt")
    pipe.run(SIX_HOURS)

    class Silent(SyntheticISO):
        def fetch(self, window: Window) -> Iterator[RawPayload]:
            return iter(())

    later = Window(SIX_HOURS.end, SIX_HOURS.end + timedelta(hours=6))
    silent = Pipeline(Silent(nodes=4, settings=lake.settings), lake=lake, name="rt")
    report = silent.run(Window(SIX_HOURS.start, later.end))
    assert {w.status for w in report.windows} == {"empty"}
    assert _curated(lake).num_rows == 4 * 72
    assert silent.watermark == later.end


def test_rows_outside_the_window_are_dropped_so_reruns_stay_exact(lake: Lake) -> None:
    class Overreaching(SyntheticISO):
        def fetch(self, window: Window) -> Iterator[RawPayload]:
            yield from super().fetch(Window(window.start - timedelta(hours=1), window.end))

    pipe = Pipeline(Overreaching(nodes=3, settings=lake.settings), lake=lake, name="rt")
    report = pipe.run(SIX_HOURS)
    assert report.windows[0].dropped_outside_window == 3 * 12
    assert _curated(lake).num_rows == 3 * 72


def test_run_since_watermark_catches_up_to_the_latest_window(lake: Lake) -> None:
    source = SyntheticISO(nodes=2, settings=lake.settings)
    pipe = Pipeline(source, lake=lake, name="rt", window_step=timedelta(hours=6))
    now = datetime(2026, 11, 26, 13, 7, tzinfo=UTC)
    first = pipe.run_since_watermark(start="2026-11-26T00:00", now=now)
    assert pipe.watermark == datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert first.rows == 2 * 144
    again = pipe.run_since_watermark(now=now)
    assert again.windows == []
    later = pipe.run_since_watermark(now=now + timedelta(hours=6))
    assert later.rows == 2 * 72 and pipe.watermark == datetime(2026, 11, 26, 18, tzinfo=UTC)


def test_windows_after_a_failure_do_not_move_the_watermark_past_it(lake: Lake) -> None:
    source = FlakySource(nodes=3, settings=lake.settings, fail_hours={1})
    pipe = Pipeline(source, lake=lake, name="rt", window_step=timedelta(hours=1))
    with pytest.raises(PipelineError):
        pipe.run(Window.of("2026-11-26T00:00", "2026-11-26T04:00"), stop_on_error=False)
    assert pipe.watermark == datetime(2026, 11, 26, 1, tzinfo=UTC)  # hours 2-3 landed, the mark did not jump
    source.fail_hours.clear()
    resumed = pipe.run(Window.of("2026-11-26T00:00", "2026-11-26T04:00"), resume=True)
    # Only the failed hour runs again: the hours committed after it are known from the snapshot log.
    assert [w.status for w in resumed.windows] == ["skipped", "ok", "skipped", "skipped"]
    assert _curated(lake).num_rows == 3 * 12 * 4
    assert pipe.watermark == datetime(2026, 11, 26, 4, tzinfo=UTC)


def _null_first_node(table: pa.Table) -> pa.Table:
    nodes = table.column("node").to_pylist()
    nodes[0] = None
    return table.set_column(table.schema.get_field_index("node"), "node", pa.array(nodes, pa.string()))


def test_batch_that_cannot_be_stored_is_quarantined_with_a_typed_error(lake: Lake) -> None:
    import pyarrow.parquet as pq

    # Ungated on purpose: with the gate on, not_null.node stops this batch first (tests/test_quality_*).
    pipe = Pipeline(
        SyntheticISO(nodes=4, settings=lake.settings),
        lake=lake,
        name="rt",
        transforms=[_null_first_node],
        gate=False,
    )
    with pytest.raises(PipelineError) as info:
        pipe.run(SIX_HOURS)
    outcome = info.value.report.windows[0]
    assert "SchemaError" in outcome.error and "'node' has 1 null" in outcome.error
    quarantine = outcome.error.split("quarantine=")[1].split(",")[0].rstrip("]")
    fs, path = lake.filesystem(quarantine)
    kept = pq.read_table(path, filesystem=fs)
    assert kept.num_rows == 4 * 72 and kept.column("node").null_count == 1
    assert _curated(lake).num_rows == 0


def test_a_revision_inside_one_batch_publishes_only_the_last_value(lake: Lake) -> None:
    def revise_first_row(table: pa.Table) -> pa.Table:
        revised = table.slice(0, 1)
        revised = revised.set_column(revised.schema.get_field_index("lmp"), "lmp", pa.array([999.0]))
        return pa.concat_tables([table, revised], promote_options="permissive")

    # Ungated: the default suite refuses duplicate keys in a batch (unique.primary_key); without it,
    # publishing still de-duplicates, keeping the last revision.
    pipe = Pipeline(
        SyntheticISO(nodes=4, settings=lake.settings),
        lake=lake,
        name="rt",
        transforms=[revise_first_row],
        gate=False,
    )
    report = pipe.run(SIX_HOURS)
    out = _curated(lake)
    assert report.rows == out.num_rows == 4 * 72
    first = out.filter(pc.and_(pc.equal(out["node"], "SYNTH_HUB_00000"), pc.equal(out["ts"], out["ts"][0])))
    assert 999.0 in out.column("lmp").to_pylist() and first.num_rows == 1


class FailingSink:
    """A second sink (think ClickHouse) that is down for the windows whose start hour is listed."""

    name = "rt-store"

    def __init__(self, fail_hours: set[int]) -> None:
        self.fail_hours = set(fail_hours)
        self.windows: list[Window] = []

    def write(
        self,
        table: pa.Table,
        *,
        dataset: Dataset,
        window: Window,
        batch_id: str,
        scope=None,
        fingerprint=None,
    ):  # type: ignore[no-untyped-def]
        from hmco.errors import SinkError
        from hmco.sinks.base import WriteResult

        if window.start.hour in self.fail_hours:
            raise SinkError("rt store down")
        self.windows.append(window)
        return WriteResult(self.name, "rt_lmp", table.num_rows)


def test_a_failed_extra_sink_does_not_move_the_watermark_past_its_window(lake: Lake) -> None:
    sink = FailingSink(fail_hours={1})
    pipe = Pipeline(
        SyntheticISO(nodes=2, settings=lake.settings),
        lake=lake,
        name="rt",
        sinks=[sink],
        window_step=timedelta(hours=1),
    )
    with pytest.raises(PipelineError):
        pipe.backfill("2026-11-26T00:00", "2026-11-26T03:00")
    assert pipe.watermark == datetime(2026, 11, 26, 1, tzinfo=UTC)
    sink.fail_hours.clear()
    resumed = pipe.backfill("2026-11-26T00:00", "2026-11-26T03:00")
    assert [w.status for w in resumed.windows] == ["skipped", "ok", "ok"]
    assert [w.start.hour for w in sink.windows] == [0, 1, 2]


def test_backfilling_older_history_after_live_running_loads_it(lake: Lake) -> None:
    pipe = Pipeline(
        SyntheticISO(nodes=2, settings=lake.settings), lake=lake, name="rt", window_step=timedelta(hours=6)
    )
    pipe.run(Window.day("2026-11-26"))  # live running has moved the watermark to 11-27
    report = pipe.backfill("2026-11-20", "2026-11-22")  # resume is on by default
    assert [w.status for w in report.windows] == ["ok"] * 8
    again = pipe.backfill("2026-11-20", "2026-11-22")  # now every window is known to be committed
    assert [w.status for w in again.windows] == ["skipped"] * 8
    assert _curated(lake).num_rows == 2 * 288 * 3
    assert pipe.watermark == datetime(2026, 11, 27, tzinfo=UTC)
