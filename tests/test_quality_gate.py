"""The gate on real rt_lmp batches: each kind of bad batch is stopped by name, by either engine.

Every behaviour test runs twice: on the default native engine (``engine="hmco"``) and on the all-GX
path (``engine="great_expectations"``); the verdicts, counts and samples must be the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from prometheus_client import CollectorRegistry

from hmco.monitoring import metrics_for
from hmco.quality import ExpectationGate, Gate, build_gate, default_suite
from hmco.quality.expectation_gate import GateEngine
from hmco.quality.gx import _GXRuntime
from hmco.schemas import RT_LMP
from hmco.sources.synthetic import synthetic_lmp
from hmco.windows import Window

WINDOW = Window(datetime(2026, 11, 26, 0, tzinfo=UTC), datetime(2026, 11, 26, 1, tzinfo=UTC))
NODES = 20  # 20 nodes x 12 intervals = 240 rows


@pytest.fixture(scope="module", params=["hmco", "great_expectations"])
def engine(request: pytest.FixtureRequest) -> GateEngine:
    return request.param


@pytest.fixture(scope="module")
def gate(engine: GateEngine) -> ExpectationGate:
    return build_gate("rt_lmp", engine=engine)


@pytest.fixture(scope="module")
def gx_gate() -> ExpectationGate:
    return build_gate("rt_lmp", engine="great_expectations")


@pytest.fixture
def batch() -> pa.Table:
    return synthetic_lmp(WINDOW, NODES, iso="CAISO")


def _replace(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    field = pa.field(name, values.type, nullable=True)
    return table.set_column(table.schema.get_field_index(name), field, values)


def _set(table: pa.Table, name: str, row: int, value: object) -> pa.Table:
    values = table.column(name).to_pylist()
    values[row] = value
    return _replace(table, name, pa.array(values, table.schema.field(name).type))


def test_expectation_gate_is_a_gate(gate: ExpectationGate) -> None:
    assert isinstance(gate, Gate)


def test_good_batch_passes_every_expectation(
    gate: ExpectationGate, engine: GateEngine, batch: pa.Table
) -> None:
    result = gate.check(batch, RT_LMP, WINDOW)
    assert result.passed
    assert result.failed == [] and result.warnings == []
    assert [o.name for o in result.outcomes] == default_suite("rt_lmp").names
    assert result.row_count == 240
    assert result.window == ("2026-11-26T00:00:00+00:00", "2026-11-26T01:00:00+00:00")
    assert result.engine == engine  # a passing batch: GX ran only if asked to judge
    assert "great_expectations" not in result.meta


def test_lmp_above_range_fails_range_lmp_with_the_value(gate: ExpectationGate, batch: pa.Table) -> None:
    result = gate.check(_set(batch, "lmp", 17, 12_500.0), RT_LMP, WINDOW)
    assert not result.passed
    assert [o.name for o in result.failed] == ["range.lmp"]
    (failed,) = result.failed
    assert failed.column == "lmp"
    assert failed.unexpected_count == 1
    assert failed.unexpected_sample == [12_500.0]


def test_null_node_fails_not_null_node(gate: ExpectationGate, batch: pa.Table) -> None:
    result = gate.check(_set(batch, "node", 3, None), RT_LMP, WINDOW)
    assert "not_null.node" in [o.name for o in result.failed]
    outcome = next(o for o in result.outcomes if o.name == "not_null.node")
    assert outcome.unexpected_count == 1


def test_null_timestamp_fails_not_null_ts(gate: ExpectationGate, batch: pa.Table) -> None:
    result = gate.check(_set(batch, "ts", 0, None), RT_LMP, WINDOW)
    assert "not_null.ts" in [o.name for o in result.failed]


def test_duplicate_primary_key_fails_unique_primary_key(gate: ExpectationGate, batch: pa.Table) -> None:
    doubled = pa.concat_tables([batch, batch.slice(5, 2)])
    result = gate.check(doubled, RT_LMP, WINDOW)
    assert "unique.primary_key" in [o.name for o in result.failed]
    outcome = next(o for o in result.outcomes if o.name == "unique.primary_key")
    assert outcome.unexpected_count == 4  # both copies of each of the 2 duplicated keys
    assert len(outcome.unexpected_sample) == 4


def test_lmp_as_strings_fails_schema_types_naming_the_column(gate: ExpectationGate, batch: pa.Table) -> None:
    drifted = _replace(batch, "lmp", pc.cast(batch.column("lmp"), pa.string()).combine_chunks())
    result = gate.check(drifted, RT_LMP, WINDOW)
    assert "schema.types" in [o.name for o in result.failed]
    types = next(o for o in result.outcomes if o.name == "schema.types")
    assert types.unexpected_sample == ["lmp: string (expected double)"]


def test_missing_column_fails_schema_columns_and_its_checks(gate: ExpectationGate, batch: pa.Table) -> None:
    drifted = batch.drop_columns(["node"])
    result = gate.check(drifted, RT_LMP, WINDOW)
    failed = [o.name for o in result.failed]
    assert failed[:1] == ["schema.columns"]
    assert {"not_null.node", "unique.primary_key", "continuity"} <= set(failed)
    columns = next(o for o in result.outcomes if o.name == "schema.columns")
    assert columns.unexpected_sample == ["missing: node"]
    not_null = next(o for o in result.outcomes if o.name == "not_null.node")
    assert "node" in not_null.details["error"]


def test_extra_column_is_allowed(gate: ExpectationGate, batch: pa.Table) -> None:
    result = gate.check(
        batch.append_column("source_file", pa.repeat("x.zip", batch.num_rows)), RT_LMP, WINDOW
    )
    assert result.passed


def test_unknown_iso_fails_in_set_iso(gate: ExpectationGate, batch: pa.Table) -> None:
    result = gate.check(_set(batch, "iso", 9, "ERCOT"), RT_LMP, WINDOW)
    assert [o.name for o in result.failed] == ["in_set.iso"]
    assert result.failed[0].unexpected_sample == ["ERCOT"]


def test_gap_in_5_minute_series_fails_continuity_with_missing_interval(
    gate: ExpectationGate, batch: pa.Table
) -> None:
    node = batch.column("node")[0].as_py()
    gap_at = datetime(2026, 11, 26, 0, 25, tzinfo=UTC)
    keep = pc.invert(
        pc.and_(
            pc.equal(batch.column("node"), node),
            pc.equal(batch.column("ts"), pa.scalar(gap_at, RT_LMP.schema.field("ts").type)),
        )
    )
    result = gate.check(batch.filter(keep), RT_LMP, WINDOW)
    assert [o.name for o in result.failed] == ["continuity"]
    (outcome,) = result.failed
    assert outcome.unexpected_count == 1
    assert outcome.details["missing_intervals"] == 1
    assert outcome.details["series_checked"] == NODES
    assert outcome.unexpected_sample == [
        {
            "iso": "CAISO",
            "market": "RT5",
            "node": node,
            "first": "2026-11-26T00:00:00+00:00",
            "last": "2026-11-26T00:55:00+00:00",
            "missing": 1,
            "duplicates": 0,
            "off_grid": 0,
            "missing_ts": ["2026-11-26T00:25:00+00:00"],
        }
    ]


def _until(table: pa.Table, end: datetime) -> pa.Table:
    """Only the rows whose interval starts before ``end`` (a feed that stopped serving at ``end``)."""
    return table.filter(pc.less(table.column("ts"), pa.scalar(end, RT_LMP.schema.field("ts").type)))


def test_stale_batch_with_only_the_first_half_of_the_window_fails_recency(
    gate: ExpectationGate, batch: pa.Table
) -> None:
    stale = _until(batch, datetime(2026, 11, 26, 0, 30, tzinfo=UTC))
    result = gate.check(stale, RT_LMP, WINDOW)
    assert [o.name for o in result.failed] == ["recency"]  # every series is gap-free: continuity passes
    (outcome,) = result.failed
    assert outcome.column == "interval_end"
    assert outcome.unexpected_count == 1
    assert outcome.unexpected_sample == [
        {"newest_end": "2026-11-26T00:30:00+00:00", "required_end": "2026-11-26T00:50:00+00:00"}
    ]
    assert outcome.details["lag_seconds"] == 1800.0
    assert outcome.details["max_lag_seconds"] == 600.0


def test_complete_batch_passes_recency_with_its_newest_interval_end(
    gate: ExpectationGate, batch: pa.Table
) -> None:
    outcome = next(o for o in gate.check(batch, RT_LMP, WINDOW).outcomes if o.name == "recency")
    assert outcome.success
    assert outcome.unexpected_sample == []
    assert (outcome.details["newest_end"], outcome.details["required_end"]) == (
        "2026-11-26T01:00:00+00:00",
        "2026-11-26T00:50:00+00:00",
    )
    assert outcome.details["lag_seconds"] == 0.0


def test_recency_allows_a_shortfall_up_to_the_sla(gate: ExpectationGate, batch: pa.Table) -> None:
    # rt_lmp's SLA is 10 minutes: data ending 00:50 is just in time, ending 00:45 is stale.
    just_in_time = _until(batch, datetime(2026, 11, 26, 0, 50, tzinfo=UTC))
    assert gate.check(just_in_time, RT_LMP, WINDOW).passed
    too_old = _until(batch, datetime(2026, 11, 26, 0, 45, tzinfo=UTC))
    assert [o.name for o in gate.check(too_old, RT_LMP, WINDOW).failed] == ["recency"]


def test_backfill_of_an_old_complete_window_passes_recency(gate: ExpectationGate) -> None:
    old = Window(datetime(2019, 3, 10, 9, tzinfo=UTC), datetime(2019, 3, 10, 10, tzinfo=UTC))
    result = gate.check(synthetic_lmp(old, 3, iso="CAISO"), RT_LMP, old)
    assert result.passed
    assert next(o for o in result.outcomes if o.name == "recency").details["newest_end"] == (
        "2019-03-10T10:00:00+00:00"
    )


def test_recency_passes_an_empty_batch_vacuously(gate: ExpectationGate) -> None:
    result = gate.check(RT_LMP.schema.empty_table(), RT_LMP, WINDOW)
    outcome = next(o for o in result.outcomes if o.name == "recency")
    assert outcome.success
    assert outcome.details["skipped"] == "empty batch (see row_count)"


def test_recency_without_interval_end_uses_ts_plus_frequency(engine: GateEngine) -> None:
    from hmco.schemas import NOAA_OBSERVATIONS, conform

    hours = [datetime(2026, 11, 26, h, tzinfo=UTC) for h in range(12)]  # 00:00 .. 11:00 of a whole day
    raw = pa.table({"ts": pa.array(hours, pa.timestamp("us", tz="UTC")), "station": ["KSUA"] * 12})
    table, day = conform(raw, NOAA_OBSERVATIONS), Window.day("2026-11-26")
    default = ExpectationGate(engine=engine).check(table, NOAA_OBSERVATIONS, day)
    assert default.passed  # irregular station reports: recency only warns by default
    assert [o.name for o in default.warnings] == ["recency"]
    result = build_gate("noaa_observations", {"recency": {"severity": "error"}}, engine=engine).check(
        table, NOAA_OBSERVATIONS, day
    )
    assert [o.name for o in result.failed] == ["recency"]
    assert result.failed[0].column == "ts"
    assert result.failed[0].unexpected_sample == [
        {"newest_end": "2026-11-26T12:00:00+00:00", "required_end": "2026-11-26T23:40:00+00:00"}
    ]


def test_off_grid_timestamp_fails_continuity(gate: ExpectationGate, batch: pa.Table) -> None:
    shifted = _set(batch, "ts", NODES * 5, datetime(2026, 11, 26, 0, 27, tzinfo=UTC))  # 00:25 -> 00:27
    result = gate.check(shifted, RT_LMP, WINDOW)
    outcome = next(o for o in result.outcomes if o.name == "continuity")
    assert not outcome.success
    assert outcome.details["off_grid_rows"] == 1
    assert outcome.details["missing_intervals"] == 1


def test_empty_batch_passes_with_row_count_warning(gate: ExpectationGate) -> None:
    result = gate.check(RT_LMP.schema.empty_table(), RT_LMP, WINDOW)
    assert result.passed
    assert [o.name for o in result.warnings] == ["row_count"]
    assert result.warnings[0].details["observed_value"] == 0


def test_warn_level_failure_passes_and_is_recorded(engine: GateEngine, batch: pa.Table) -> None:
    gate = build_gate("rt_lmp", {"ranges": {"lmp": {"max": 100, "severity": "warn"}}}, engine=engine)
    spiky = _set(batch, "lmp", 2, 150.0)
    result = gate.check(spiky, RT_LMP, WINDOW)
    assert result.passed
    assert [o.name for o in result.warnings] == ["range.lmp"]
    doc = json.loads(result.to_json())
    assert doc["success"] is True
    assert doc["warnings"] == ["range.lmp"]
    assert doc["failed"] == []


def test_result_json_is_strict_json_with_samples(gate: ExpectationGate, batch: pa.Table) -> None:
    bad = _set(_set(batch, "lmp", 1, 20_000.0), "node", 4, None)
    doc = json.loads(gate.check(bad, RT_LMP, WINDOW).to_json(), parse_constant=lambda c: pytest.fail(c))
    assert doc["success"] is False
    assert doc["failed"] == ["not_null.node", "range.lmp"]
    by_name = {o["name"]: o for o in doc["outcomes"]}
    assert by_name["range.lmp"]["unexpected_sample"] == [20_000.0]
    assert by_name["not_null.node"]["unexpected_sample"] == [None]


def test_row_count_per_hour_scales_with_the_window(engine: GateEngine, batch: pa.Table) -> None:
    gate = build_gate(
        "rt_lmp", {"row_count": {"min": 300, "per": "hour", "severity": "error"}}, engine=engine
    )
    one_hour = gate.check(batch, RT_LMP, WINDOW)
    assert [o.name for o in one_hour.failed] == ["row_count"]
    half_hour = Window(WINDOW.start, WINDOW.start + timedelta(minutes=30))
    # min 300/hour is 150 rows for 30 minutes
    assert gate.check(batch.slice(0, 150), RT_LMP, half_hour).failed == []
    assert [o.name for o in gate.check(batch.slice(0, 149), RT_LMP, half_hour).failed] == ["row_count"]


def test_gx_suite_is_compiled_once_and_reused(batch: pa.Table) -> None:
    gate = build_gate("rt_lmp", {"ranges": {"lmp": {"min": -999, "max": 999}}}, engine="great_expectations")
    gate.check(batch, RT_LMP, WINDOW)
    compiled = dict(_GXRuntime.get().compiled)
    gate.check(batch, RT_LMP, WINDOW)
    assert _GXRuntime.get().compiled == compiled  # same keys, same compiled objects


def test_gate_writes_no_progress_bar(
    gate: ExpectationGate, batch: pa.Table, capfd: pytest.CaptureFixture[str]
) -> None:
    result = gate.check(_set(batch, "lmp", 0, 50_000.0), RT_LMP, WINDOW)  # fails: GX runs on either engine
    assert "great_expectations" in result.meta
    out, err = capfd.readouterr()
    assert "Calculating Metrics" not in err + out


def test_gate_for_another_dataset_is_rejected(batch: pa.Table) -> None:
    with pytest.raises(ValueError, match="rt_lmp"):
        build_gate("rt_lmp").check(batch, "da_lmp", WINDOW)


def test_default_gate_checks_each_dataset_with_its_own_suite(engine: GateEngine) -> None:
    from hmco.schemas import NOAA_OBSERVATIONS, conform

    hours = [datetime(2026, 11, 26, h, tzinfo=UTC) for h in range(3)]
    raw = pa.table(
        {
            "ts": pa.array(hours, pa.timestamp("us", tz="UTC")),
            "station": ["KSUA"] * 3,
            "temperature_c": [21.0, 71.0, np.float64(22.5)],  # 71 °C is not a plausible air temperature
        }
    )
    result = ExpectationGate(engine=engine).check(
        conform(raw, NOAA_OBSERVATIONS), NOAA_OBSERVATIONS, Window.day("2026-11-26")
    )
    assert [o.name for o in result.failed] == ["range.temperature_c"]
    assert result.failed[0].unexpected_sample == [71.0]


def test_gate_outcomes_are_counted_in_prometheus(
    gate: ExpectationGate, engine: GateEngine, batch: pa.Table
) -> None:
    registry = CollectorRegistry()
    metrics = metrics_for(registry)
    warn_gate = build_gate("rt_lmp", {"severity": {"range.lmp": "warn"}}, engine=engine)
    spiky = _set(batch, "lmp", 0, 50_000.0)
    outcomes = [
        metrics.record_gate(gate.check(batch, RT_LMP, WINDOW)),
        metrics.record_gate(warn_gate.check(spiky, RT_LMP, WINDOW)),
        metrics.record_gate(gate.check(spiky, RT_LMP, WINDOW)),
    ]
    assert outcomes == ["passed", "warned", "failed"]
    for outcome in outcomes:
        assert (
            registry.get_sample_value("hmco_quality_gate_total", {"dataset": "rt_lmp", "outcome": outcome})
            == 1.0
        )
    failures = {"dataset": "rt_lmp", "expectation": "range.lmp"}
    assert (
        registry.get_sample_value("hmco_quality_expectation_failures_total", {**failures, "severity": "warn"})
        == 1.0
    )
    assert (
        registry.get_sample_value(
            "hmco_quality_expectation_failures_total", {**failures, "severity": "error"}
        )
        == 1.0
    )
    assert registry.get_sample_value("hmco_quality_gate_rows_total", {"dataset": "rt_lmp"}) == 3 * 240


def test_import_hmco_quality_does_not_import_great_expectations() -> None:
    code = (
        "import sys, hmco, hmco.quality, hmco.quality.spec, hmco.monitoring; "
        "print('great_expectations' in sys.modules, 'scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_monitoring_imports_nothing_from_quality() -> None:
    """Dependencies point one way: quality (and compose) record into monitoring, never the reverse."""
    import ast
    from pathlib import Path

    import hmco.monitoring

    imported: set[str] = set()
    for path in Path(hmco.monitoring.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    from tests.test_layers import CORE

    above = [m for m in imported if m.startswith("hmco.") and m.split(".")[1] not in {"monitoring", *CORE}]
    assert sorted(above) == []  # the shared core (errors, windows, redaction …) is below everything


def test_repeated_checks_keep_no_results_in_the_gx_context(gx_gate: ExpectationGate, batch: pa.Table) -> None:
    for _ in range(3):
        assert gx_gate.check(batch, RT_LMP, WINDOW).passed
    assert _GXRuntime.get().context.validation_results_store.list_keys() == []
