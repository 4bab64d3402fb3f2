"""Every kind of bad batch is stopped at the gate: the right expectation named, curated untouched, batch quarantined.

Each case runs a real :class:`hmco.Pipeline` (``SyntheticISO`` → local lake, default gate) with a buggy
transform that injects one kind of defect. The gate sees the batch before de-duplication and strict
schema enforcement, so it can name the defect; the batch goes to
``<staged>/_quarantine/rt_lmp/<window-start>_<batch>.parquet`` and nothing reaches curated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from pyiceberg.exceptions import NoSuchTableError

import hmco
from hmco.compose.pipeline import Transform, WindowOutcome
from hmco.config import Settings
from hmco.errors import QualityGateFailed
from hmco.quality import build_gate
from hmco.schemas import TS
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window

WINDOW = Window(datetime(2026, 11, 26, 0, tzinfo=UTC), datetime(2026, 11, 26, 1, tzinfo=UTC))
NODES = 4
ROWS = 12 * NODES  # 5-minute intervals x nodes in the one-hour window
SPIKE = 99_999.0
GAP_NODE = "CAISO_HUB_00002"
GAP_AT = datetime(2026, 11, 26, 0, 25, tzinfo=UTC)
HALF = datetime(2026, 11, 26, 0, 30, tzinfo=UTC)
NAME = "bad-batch-test"


# --- bad-data transforms (pa.Table -> pa.Table), each injecting one defect ------------------------


def _with_value(
    table: pa.Table, name: str, row: int, value: object, typ: pa.DataType | None = None
) -> pa.Table:
    values = table.column(name).to_pylist()
    values[row] = value
    arr = pa.array(values, typ or table.schema.field(name).type)
    return table.set_column(table.schema.get_field_index(name), pa.field(name, arr.type, nullable=True), arr)


def lmp_out_of_range(table: pa.Table) -> pa.Table:
    return _with_value(table, "lmp", 0, SPIKE)


def null_node(table: pa.Table) -> pa.Table:
    return _with_value(table, "node", 3, None)


def duplicated_key(table: pa.Table) -> pa.Table:
    return pa.concat_tables([table, table.slice(5, 1)])


def lmp_as_uncastable_strings(table: pa.Table) -> pa.Table:
    as_text = table.set_column(
        table.schema.get_field_index("lmp"), "lmp", pc.cast(table.column("lmp"), pa.string())
    )
    return _with_value(as_text, "lmp", 0, "n/a", pa.string())


def missing_interval(table: pa.Table) -> pa.Table:
    hit = pc.and_(
        pc.equal(table.column("node"), GAP_NODE), pc.equal(table.column("ts"), pa.scalar(GAP_AT, TS))
    )
    return table.filter(pc.invert(hit))


def first_half_only(table: pa.Table) -> pa.Table:
    return table.filter(pc.less(table.column("ts"), pa.scalar(HALF, TS)))


@dataclass(frozen=True)
class BadBatch:
    transform: Transform
    expectation: str
    rows: int  # rows of the quarantined batch
    evidence: Callable[[pa.Table], bool]  # the defect is visible in the quarantined batch


CASES = {
    "out_of_range": BadBatch(
        lmp_out_of_range, "range.lmp", ROWS, lambda t: pc.max(t.column("lmp")).as_py() == SPIKE
    ),
    "null_key": BadBatch(null_node, "not_null.node", ROWS, lambda t: t.column("node").null_count == 1),
    "duplicate_key": BadBatch(
        duplicated_key,
        "unique.primary_key",
        ROWS + 1,
        lambda t: t.group_by(["iso", "market", "node", "ts"]).aggregate([]).num_rows == ROWS,
    ),
    "schema_drift": BadBatch(
        lmp_as_uncastable_strings,
        "schema.types",
        ROWS,
        lambda t: t.schema.field("lmp").type == pa.string() and t.column("lmp")[0].as_py() == "n/a",
    ),
    "gap": BadBatch(
        missing_interval,
        "continuity",
        ROWS - 1,
        lambda t: t.filter(pc.equal(t.column("node"), GAP_NODE)).num_rows == 11,
    ),
    "stale": BadBatch(
        first_half_only,
        "recency",
        ROWS // 2,
        lambda t: pc.max(t.column("interval_end")).as_py() == HALF,
    ),
}


def _pipeline(settings: Settings, transforms: list[Transform]) -> hmco.Pipeline:
    source = SyntheticISO(settings=settings, nodes=NODES, iso="CAISO")
    return hmco.Pipeline(
        source,
        lake=hmco.Lake(settings),
        name=NAME,
        transforms=transforms,
        gate=build_gate(source.dataset, None),
    )


def _curated_rows(lake: hmco.Lake) -> int:
    """Rows of the window in curated; a table that was never created holds none."""
    try:
        table = lake.table("rt_lmp", "curated", create=False)
    except NoSuchTableError:
        return 0
    flt = f"ts >= '{WINDOW.start.isoformat()}' and ts < '{WINDOW.end.isoformat()}'"
    return table.scan(row_filter=flt).to_arrow().num_rows


def _quarantine_dir(lake: hmco.Lake) -> str:
    return f"{lake.storage_location('staged').rstrip('/')}/_quarantine/rt_lmp"


def _quarantined_files(lake: hmco.Lake) -> list[str]:
    fs, base = lake.filesystem(_quarantine_dir(lake))
    infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.File)


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_batch_is_stopped_at_the_gate_by_name_and_quarantined(kind: str, settings: Settings) -> None:
    case = CASES[kind]
    pipeline = _pipeline(settings, [case.transform])

    with pytest.raises(QualityGateFailed) as info:
        pipeline.run(WINDOW)

    assert case.expectation in info.value.failed
    assert _curated_rows(pipeline.lake) == 0
    assert pipeline.watermark is None
    report = info.value.report  # type: ignore[attr-defined]
    assert not report.ok
    (outcome,) = report.windows
    assert isinstance(outcome, WindowOutcome)
    assert (outcome.window, outcome.status) == (WINDOW, "failed")
    assert case.expectation in outcome.failed_expectations
    name = f"20261126T000000Z_{outcome.batch_id}.parquet"
    assert _quarantined_files(pipeline.lake) == [name]
    fs, path = pipeline.lake.filesystem(f"{_quarantine_dir(pipeline.lake)}/{name}")
    quarantined = pq.read_table(path, filesystem=fs)
    assert quarantined.num_rows == case.rows
    assert case.evidence(quarantined)


def test_good_batch_passes_the_gate_and_publishes_without_quarantine(settings: Settings) -> None:
    pipeline = _pipeline(settings, [])
    report = pipeline.run(WINDOW)
    assert report.ok
    assert [(w.status, w.rows, w.failed_expectations) for w in report.windows] == [("ok", ROWS, [])]
    assert _curated_rows(pipeline.lake) == ROWS
    assert pipeline.watermark == WINDOW.end
    assert _quarantined_files(pipeline.lake) == []
