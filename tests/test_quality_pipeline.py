"""Write–audit–publish with the real gate: a failing batch is quarantined, curated gets nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import hmco
from hmco.config import Settings
from hmco.errors import QualityGateFailed
from hmco.quality import build_gate
from hmco.quality.freshness import iceberg_freshness
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window

WINDOW = Window(datetime(2026, 11, 26, 0, tzinfo=UTC), datetime(2026, 11, 26, 1, tzinfo=UTC))
NODES = 10
SPIKE = 99_999.0


def corrupt_first_price(table: pa.Table) -> pa.Table:
    """A buggy transform: one price comes out far beyond any plausible LMP."""
    lmp = table.column("lmp").to_pylist()
    lmp[0] = SPIKE
    return table.set_column(table.schema.get_field_index("lmp"), "lmp", pa.array(lmp, pa.float64()))


def _pipeline(
    lake: hmco.Lake, settings: Settings, *, checks: dict | None = None, buggy: bool = True
) -> hmco.Pipeline:
    source = SyntheticISO(settings=settings, nodes=NODES, iso="CAISO")
    return hmco.Pipeline(
        source,
        lake=lake,
        name="caiso-gate-test",
        transforms=[corrupt_first_price] if buggy else [],
        gate=build_gate("rt_lmp", checks),
    )


def _rows(lake: hmco.Lake, tier: str) -> pa.Table:
    flt = f"ts >= '{WINDOW.start.isoformat()}' and ts < '{WINDOW.end.isoformat()}'"
    return lake.table("rt_lmp", tier).scan(row_filter=flt).to_arrow()


@pytest.fixture
def lake(settings: Settings) -> hmco.Lake:
    return hmco.Lake(settings)


@pytest.fixture
def failed(lake: hmco.Lake, settings: Settings) -> QualityGateFailed:
    with pytest.raises(QualityGateFailed) as info:
        _pipeline(lake, settings).run(WINDOW)
    return info.value


def test_failing_gate_raises_naming_the_expectation(failed: QualityGateFailed) -> None:
    assert failed.failed == ["range.lmp"]
    assert "range.lmp" in str(failed)


def test_failing_gate_publishes_nothing_to_curated(failed: QualityGateFailed, lake: hmco.Lake) -> None:
    assert _rows(lake, "curated").num_rows == 0
    assert lake.watermark("rt_lmp", "caiso-gate-test", "curated") is None


def test_failing_batch_is_kept_in_quarantine_and_its_audit_branch_dropped(
    failed: QualityGateFailed, lake: hmco.Lake
) -> None:
    import pyarrow.parquet as pq

    (path,) = lake.state.quarantined("rt_lmp")
    fs, local = lake.filesystem(path)
    kept = pq.read_table(local, filesystem=fs)
    assert kept.num_rows == 12 * NODES
    assert pc.max(kept.column("lmp")).as_py() == SPIKE
    assert list(lake.table("rt_lmp").metadata.refs) == ["main"]


def test_run_report_marks_the_window_failed(failed: QualityGateFailed) -> None:
    report = failed.report  # type: ignore[attr-defined]
    assert not report.ok
    (outcome,) = report.windows
    assert outcome.window == WINDOW
    assert outcome.status == "failed"
    assert outcome.failed_expectations == ["range.lmp"]


def test_gate_result_is_stored_beside_the_staged_data(failed: QualityGateFailed, settings: Settings) -> None:
    (path,) = (Path(settings.home_dir) / "warehouse").rglob("_quality/rt_lmp/*.json")
    doc = json.loads(path.read_text())
    assert doc["success"] is False
    assert doc["failed"] == ["range.lmp"]
    spike = next(o for o in doc["outcomes"] if o["name"] == "range.lmp")
    assert spike["unexpected_sample"] == [SPIKE]


def test_fixed_data_rerun_publishes_the_window(
    failed: QualityGateFailed, lake: hmco.Lake, settings: Settings
) -> None:
    report = _pipeline(lake, settings, buggy=False).run(WINDOW)
    assert report.ok
    assert [w.status for w in report.windows] == ["ok"]
    curated = _rows(lake, "curated")
    assert curated.num_rows == 12 * NODES
    assert pc.max(curated.column("lmp")).as_py() < 1_000
    assert lake.watermark("rt_lmp", "caiso-gate-test", "curated") == WINDOW.end


def test_warn_level_failure_publishes_and_is_recorded(lake: hmco.Lake, settings: Settings) -> None:
    checks = {"ranges": {"lmp": {"min": -2000, "max": 10_000, "severity": "warn"}}}
    report = _pipeline(lake, settings, checks=checks).run(WINDOW)
    assert report.ok
    assert report.windows[0].warnings == ["range.lmp"]
    assert _rows(lake, "curated").num_rows == 12 * NODES


def test_published_window_is_fresh_by_data_and_by_watermark(lake: hmco.Lake, settings: Settings) -> None:
    _pipeline(lake, settings, buggy=False).run(WINDOW)
    curated = lake.table("rt_lmp", "curated")
    at = WINDOW.end + timedelta(minutes=8)
    by_data = iceberg_freshness(curated, "rt_lmp", now=at)
    by_mark = iceberg_freshness(curated, "rt_lmp", now=at, prefer="watermark")
    assert (by_data.newest, by_data.age, by_data.status) == (
        WINDOW.end - timedelta(minutes=5),
        timedelta(minutes=8),
        "fresh",
    )
    assert (by_mark.origin, by_mark.current_to, by_mark.status) == ("iceberg:watermark", WINDOW.end, "fresh")
    assert iceberg_freshness(curated, "rt_lmp", now=at + timedelta(minutes=3)).status == "stale"
