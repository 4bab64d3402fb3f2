"""Write–audit–publish without writing twice: audit branches, one publish commit, and overlapped windows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest

from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance.expire import expire_snapshots
from hmco.payload import RawPayload
from hmco.quality.gate import ExpectationOutcome, GateResult
from hmco.schemas import Dataset
from hmco.sinks.iceberg import AUDIT_PREFIX, IcebergSink, audit_branches
from hmco.sources.synthetic import SyntheticISO, synthetic_lmp
from hmco.windows import Window

DAY0 = datetime(2026, 11, 20, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def lake(settings: Settings) -> Lake:
    lake = Lake(settings)
    lake.create_tiers()
    return lake


def _files_written(lake: Lake) -> set[str]:
    tbl = lake.table("rt_lmp")
    fs, base = lake.filesystem(f"{tbl.location()}/data")
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return {i.path.rsplit("/", 1)[-1] for i in infos if i.path.endswith(".parquet")}


def _names(paths: list[str]) -> set[str]:
    return {p.rsplit("/", 1)[-1] for p in paths}


def _main_rows(lake: Lake) -> int:
    return lake.table("rt_lmp").scan().to_arrow().num_rows


def _branch_rows(lake: Lake, branch: str) -> int:
    tbl = lake.table("rt_lmp")
    snapshot = tbl.metadata.snapshot_by_name(branch)
    assert snapshot is not None, f"no branch {branch}"
    return tbl.scan(snapshot_id=snapshot.snapshot_id).to_arrow().num_rows


def test_staged_batch_is_invisible_on_main_until_one_publish_commit(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="p")
    first = Window(DAY0, DAY0 + HOUR)
    sink.write(synthetic_lmp(first, 4), dataset=_ds(), window=first, batch_id="b0")
    second = Window(DAY0 + HOUR, DAY0 + 2 * HOUR)
    staged = sink.stage(synthetic_lmp(second, 4), dataset=_ds(), window=second, batch_id="b1")

    assert staged.branch == AUDIT_PREFIX + "b1"
    assert _main_rows(lake) == 4 * 12  # readers of main see only the first window
    assert _branch_rows(lake, staged.branch) == 2 * 4 * 12  # the branch is main with the window added
    assert lake.watermark("rt_lmp", "p") == first.end  # the state moves only with the publish

    before = lake.table("rt_lmp").current_snapshot()
    result = sink.publish(staged)
    tbl = lake.table("rt_lmp")
    assert _main_rows(lake) == 2 * 4 * 12
    assert lake.watermark("rt_lmp", "p") == second.end
    assert audit_branches(tbl) == []
    # main now points at the audited snapshot itself, a descendant of the old head: nothing re-written.
    assert result.snapshot_id == tbl.current_snapshot().snapshot_id  # type: ignore[union-attr]
    assert result.snapshot_id is not None and before is not None
    assert _ancestor(tbl, result.snapshot_id, before.snapshot_id)
    assert _names(staged.paths) <= _files_written(lake)
    assert len(_files_written(lake)) == 2  # one file per window, none written twice


def test_publish_after_another_writer_moved_main_rebases_without_rewriting(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="p")
    other = IcebergSink(lake, pipeline="q")
    mine = Window(DAY0, DAY0 + HOUR)
    staged = sink.stage(synthetic_lmp(mine, 3, iso="CAISO"), dataset=_ds(), window=mine, batch_id="mine")
    theirs = Window(DAY0 + 5 * HOUR, DAY0 + 6 * HOUR)
    other.write(synthetic_lmp(theirs, 2, iso="SPP"), dataset=_ds(), window=theirs, batch_id="theirs")

    sink.publish(staged)  # main moved since the branch was cut: same files, re-committed on the new head

    table = lake.table("rt_lmp").scan().to_arrow()
    assert table.num_rows == 3 * 12 + 2 * 12
    assert sorted(pc.unique(table["iso"]).to_pylist()) == ["CAISO", "SPP"]
    assert len(_files_written(lake)) == 2
    assert lake.watermark("rt_lmp", "p") == mine.end and lake.watermark("rt_lmp", "q") == theirs.end


def test_abandoned_batch_leaves_no_branch_and_no_file(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="p")
    window = Window(DAY0, DAY0 + HOUR)
    staged = sink.stage(synthetic_lmp(window, 3), dataset=_ds(), window=window, batch_id="bad")
    assert _files_written(lake) == _names(staged.paths)
    sink.abandon(staged)
    assert audit_branches(lake.table("rt_lmp")) == []
    assert _files_written(lake) == set()
    assert _main_rows(lake) == 0 and lake.watermark("rt_lmp", "p") is None


def test_upkeep_drops_an_audit_branch_a_crashed_writer_left_behind(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="p")
    window = Window(DAY0, DAY0 + HOUR)
    sink.stage(synthetic_lmp(window, 3), dataset=_ds(), window=window, batch_id="crashed")
    tbl = lake.table("rt_lmp")
    assert audit_branches(tbl) == [AUDIT_PREFIX + "crashed"]
    expire_snapshots(tbl, older_than=timedelta(days=1))  # younger than the horizon: kept
    assert audit_branches(tbl) == [AUDIT_PREFIX + "crashed"]
    expire_snapshots(tbl, older_than=timedelta(0), now=datetime.now(UTC) + timedelta(minutes=1))
    assert audit_branches(lake.table("rt_lmp")) == []
    assert _main_rows(lake) == 0


# --- the pipeline overlaps windows: collect n+1 while n is gated and published ---------------------------


class RecordingSource(SyntheticISO):
    """Records which thread fetched each window, and tells the gate when a window's fetch has begun."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.fetched: dict[datetime, str] = {}
        self.started: dict[datetime, threading.Event] = {}

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        self.fetched[window.start] = threading.current_thread().name
        self.started.setdefault(window.start, threading.Event()).set()
        yield from super().fetch(window)


class WaitsForTheNextFetch:
    """A gate that passes window n only once window n+1's fetch has begun (it fails if they never overlap)."""

    def __init__(self, source: RecordingSource, step: timedelta, last: datetime) -> None:
        self.source, self.step, self.last = source, step, last
        self.overlapped: list[bool] = []

    def check(self, table: pa.Table, dataset: Dataset, window: Window) -> GateResult:
        nxt = window.start + self.step
        if nxt < self.last:
            event = self.source.started.setdefault(nxt, threading.Event())
            self.overlapped.append(event.wait(timeout=60))
        ok = ExpectationOutcome(name="overlap", success=all(self.overlapped))
        return GateResult(dataset=dataset.name, outcomes=[ok], row_count=table.num_rows)


def test_next_window_is_collected_while_the_current_one_is_gated(lake: Lake) -> None:
    step = timedelta(hours=2)
    span = Window(DAY0, DAY0 + 4 * step)
    source = RecordingSource(nodes=5, settings=lake.settings)
    gate = WaitsForTheNextFetch(source, step, span.end)
    pipe = Pipeline(source, lake=lake, name="overlap", gate=gate, window_step=step)
    report = pipe.run(span)
    assert report.ok and [w.status for w in report.windows] == ["ok"] * 4
    assert gate.overlapped == [True, True, True]
    assert [source.fetched[w.window.start].startswith("hmco-collect") for w in report.windows] == [
        False,
        True,
        True,
        True,
    ]
    assert pipe.watermark == span.end and _main_rows(lake) == 5 * 24 * 4


def test_without_prefetch_windows_run_one_after_another(lake: Lake) -> None:
    step = timedelta(hours=2)
    span = Window(DAY0, DAY0 + 2 * step)
    source = RecordingSource(nodes=5, settings=lake.settings)
    pipe = Pipeline(source, lake=lake, name="serial", gate=False, window_step=step, prefetch=False)
    assert pipe.run(span).ok
    assert set(source.fetched.values()) == {threading.current_thread().name}


def test_a_failed_window_stops_the_run_and_the_window_collected_ahead_is_not_published(lake: Lake) -> None:
    from hmco.errors import SourceUnavailable

    class Down(SyntheticISO):
        def fetch(self, window: Window) -> Iterator[RawPayload]:
            if window.start == DAY0 + timedelta(hours=2):
                raise SourceUnavailable("feed down", url="synthetic://")
            yield from super().fetch(window)

    step = timedelta(hours=2)
    pipe = Pipeline(Down(nodes=3, settings=lake.settings), lake=lake, name="stop", window_step=step)
    with pytest.raises(Exception, match="feed down"):
        pipe.run(Window(DAY0, DAY0 + 4 * step))
    # Window 1 published; window 2 failed; window 3 may have been collected ahead but was not published.
    assert pipe.watermark == DAY0 + step
    assert _main_rows(lake) == 3 * 24
    assert audit_branches(lake.table("rt_lmp")) == []


def _ds() -> Dataset:
    from hmco.schemas import get_dataset

    return get_dataset("rt_lmp")


def _ancestor(tbl: object, snapshot_id: int, ancestor_id: int) -> bool:
    from pyiceberg.table.snapshots import ancestors_of

    metadata = tbl.metadata  # type: ignore[attr-defined]
    return any(
        s.snapshot_id == ancestor_id for s in ancestors_of(metadata.snapshot_by_id(snapshot_id), metadata)
    )


def test_a_unique_check_passing_under_mostly_still_leaves_one_row_per_key(lake: Lake) -> None:
    """Duplicates let through by ``mostly`` are de-duplicated before the audit branch is published."""
    from hmco.quality import build_gate

    class Revised(SyntheticISO):
        def parse(self, payload: RawPayload) -> pa.Table:
            table = super().parse(payload)
            return pa.concat_tables([table, table.slice(0, 3)])  # three rows sent twice in one batch

    checks = {
        "continuity": False,  # it would name the repeated intervals too
        "expectations": [
            {
                "name": "unique.primary_key",
                "kind": "unique",
                "columns": ["iso", "market", "node", "ts"],
                "params": {"mostly": 0.5},
            }
        ],
    }
    window = Window(DAY0, DAY0 + HOUR)
    pipe = Pipeline(
        Revised(nodes=4, settings=lake.settings), lake=lake, name="mostly", gate=build_gate("rt_lmp", checks)
    )
    report = pipe.run(window)
    assert report.ok
    table = lake.table("rt_lmp").scan().to_arrow()
    keys = table.select(["iso", "market", "node", "ts"]).group_by(["iso", "market", "node", "ts"])
    assert table.num_rows == 4 * 12 == keys.aggregate([]).num_rows
    assert audit_branches(lake.table("rt_lmp")) == []
