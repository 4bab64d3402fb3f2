"""Default suites derived from the schemas, and the UIS ``checks:`` overrides on top of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from pydantic import ValidationError

from hmco.config import Settings
from hmco.errors import SpecError
from hmco.quality import Expectation, ExpectationGate, QualitySpec, build_gate, build_suite, default_suite
from hmco.schemas import RT_LMP, TS
from hmco.sources.synthetic import synthetic_lmp
from hmco.windows import Window

WINDOW = Window(datetime(2026, 11, 26, 0, tzinfo=UTC), datetime(2026, 11, 26, 1, tzinfo=UTC))


def _with_lmp(value: float) -> pa.Table:
    table = synthetic_lmp(WINDOW, 4, iso="CAISO")
    lmp = table.column("lmp").to_pylist()
    lmp[0] = value
    return table.set_column(table.schema.get_field_index("lmp"), "lmp", pa.array(lmp, pa.float64()))


def test_rt_lmp_default_suite_covers_schema_keys_ranges_sets_and_continuity() -> None:
    suite = default_suite("rt_lmp")
    assert suite.names == [
        "schema.columns",
        "schema.types",
        "not_null.ts",
        "not_null.interval_end",
        "not_null.iso",
        "not_null.market",
        "not_null.node",
        "not_null.lmp",
        "unique.primary_key",
        "range.lmp",
        "in_set.iso",
        "in_set.market",
        "row_count",
        "continuity",
        "recency",
    ]
    assert suite.get("unique.primary_key").columns == ("iso", "market", "node", "ts")
    assert suite.get("range.lmp").params == {"min": -2000.0, "max": 10000.0}
    assert suite.get("continuity").columns == ("iso", "market", "node")
    assert suite.get("continuity").params == {"time_column": "ts", "frequency": 300.0, "edges": False}
    assert suite.get("row_count").severity == "warn"
    assert suite.get("recency").params == {
        "time_column": "ts",
        "max_lag": 600.0,  # rt_lmp's SLA
        "frequency": 300.0,
        "end_column": "interval_end",
    }
    assert suite.get("recency").severity == "error"


def test_recency_is_on_for_hourly_or_finer_series_warn_for_noaa_and_off_for_coarser() -> None:
    severities = {
        name: (default_suite(name).get("recency").severity if "recency" in default_suite(name) else None)
        for name in ("rt_lmp", "da_lmp", "eia_hourly_fuel", "noaa_observations", "fred_observations")
    }
    assert severities == {
        "rt_lmp": "error",
        "da_lmp": "error",
        "eia_hourly_fuel": "error",
        "noaa_observations": "warn",
        "fred_observations": None,
    }
    assert "recency" not in default_suite("census_acs")


def test_daily_series_get_no_default_continuity() -> None:
    assert "continuity" not in default_suite("fred_observations")
    assert "continuity" not in default_suite("eia_daily_fuel")


def test_irregular_noaa_observations_continuity_only_warns() -> None:
    assert default_suite("noaa_observations").get("continuity").severity == "warn"
    assert default_suite("noaa_observations").get("range.temperature_c").params == {"min": -90.0, "max": 60.0}


def test_ranges_follow_the_schema_and_checks_can_add_one() -> None:
    assert "range.value" not in default_suite("eia_daily_fuel")  # net generation may be negative (storage)
    suite = build_suite("eia_daily_fuel", {"ranges": {"value": {"min": 0}}})
    assert suite.get("range.value").params == {"min": 0.0, "max": None}
    assert suite.get("range.value").severity == "error"


def test_yaml_lmp_bounds_override_the_default_range() -> None:
    checks = yaml.safe_load("ranges:\n  lmp: {min: -500, max: 3000}\n")
    gate = build_gate("rt_lmp", checks)
    assert gate.check(_with_lmp(2999.0), RT_LMP, WINDOW).passed
    result = gate.check(_with_lmp(3500.0), RT_LMP, WINDOW)
    assert [o.name for o in result.failed] == ["range.lmp"]
    assert result.failed[0].unexpected_sample == [3500.0]


def test_top_level_column_bounds_are_shorthand_for_ranges() -> None:
    assert QualitySpec.model_validate({"lmp": {"min": -500, "max": 3000}}) == QualitySpec.model_validate(
        {"ranges": {"lmp": {"min": -500, "max": 3000}}}
    )


def test_disable_removes_an_expectation() -> None:
    suite = build_suite("rt_lmp", {"disable": ["range.lmp", "continuity"]})
    assert "range.lmp" not in suite and "continuity" not in suite
    assert build_gate("rt_lmp", {"disable": ["range.lmp"]}).check(_with_lmp(50_000.0), RT_LMP, WINDOW).passed


def test_severity_override_turns_a_failure_into_a_warning() -> None:
    result = build_gate("rt_lmp", {"severity": {"range.lmp": "warn"}}).check(
        _with_lmp(50_000.0), RT_LMP, WINDOW
    )
    assert result.passed
    assert [o.name for o in result.warnings] == ["range.lmp"]


def test_allowed_values_override_narrows_the_set() -> None:
    suite = build_suite("rt_lmp", {"allowed": {"iso": ["MISO"]}})
    assert suite.get("in_set.iso").params == {"values": ["MISO"]}
    result = build_gate("rt_lmp", {"allowed": {"iso": ["MISO"]}}).check(_with_lmp(1.0), RT_LMP, WINDOW)
    assert [o.name for o in result.failed] == ["in_set.iso"]


def test_continuity_can_be_switched_off_or_require_full_windows() -> None:
    assert "continuity" not in build_suite("rt_lmp", {"continuity": False})
    assert build_suite("rt_lmp", {"continuity": {"edges": True}}).get("continuity").params["edges"] is True


def test_full_window_continuity_fails_a_series_that_starts_late() -> None:
    table = synthetic_lmp(WINDOW, 4, iso="CAISO").slice(4)  # every node loses 00:00
    assert build_gate("rt_lmp").check(table, RT_LMP, WINDOW).passed
    result = build_gate("rt_lmp", {"continuity": {"edges": True}}).check(table, RT_LMP, WINDOW)
    assert [o.name for o in result.failed] == ["continuity"]
    assert result.failed[0].details["missing_intervals"] == 4
    assert result.failed[0].unexpected_sample[0]["missing_ts"] == ["2026-11-26T00:00:00+00:00"]


def test_full_window_continuity_is_not_fooled_by_a_row_past_the_window_end() -> None:
    one = synthetic_lmp(WINDOW, 1, iso="CAISO")
    gap = one.filter(pc.not_equal(one.column("ts"), pa.scalar(datetime(2026, 11, 26, 0, 30, tzinfo=UTC), TS)))
    after = synthetic_lmp(Window(WINDOW.end, WINDOW.end + timedelta(minutes=5)), 1, iso="CAISO")
    table = pa.concat_tables([gap, after.cast(gap.schema)])  # 00:30 missing, 01:00 (outside) present
    result = build_gate("rt_lmp", {"continuity": {"edges": True}}).check(table, RT_LMP, WINDOW)
    assert [o.name for o in result.failed] == ["continuity"]
    details = result.failed[0].details
    assert (details["missing_intervals"], details["off_grid_rows"]) == (1, 1)
    assert result.failed[0].unexpected_sample[0]["missing_ts"] == ["2026-11-26T00:30:00+00:00"]


def _first_half() -> pa.Table:
    table = synthetic_lmp(WINDOW, 4, iso="CAISO")
    return table.filter(pc.less(table.column("ts"), pa.scalar(datetime(2026, 11, 26, 0, 30, tzinfo=UTC), TS)))


def test_recency_max_lag_override_lets_a_shorter_batch_pass() -> None:
    assert [o.name for o in build_gate("rt_lmp").check(_first_half(), RT_LMP, WINDOW).failed] == ["recency"]
    suite = build_suite("rt_lmp", {"recency": {"max_lag": "30m"}})
    assert suite.get("recency").params["max_lag"] == 1800.0
    assert suite.get("recency").severity == "error"
    assert build_gate("rt_lmp", {"recency": {"max_lag": "30m"}}).check(_first_half(), RT_LMP, WINDOW).passed
    tight = build_gate("rt_lmp", {"recency": {"max_lag": "29m"}}).check(_first_half(), RT_LMP, WINDOW)
    assert [o.name for o in tight.failed] == ["recency"]


@pytest.mark.parametrize(
    "checks", [{"recency": False}, {"recency": {"enabled": False}}, {"disable": ["recency"]}]
)
def test_recency_can_be_disabled(checks: dict) -> None:
    assert "recency" not in build_suite("rt_lmp", checks)
    assert build_gate("rt_lmp", checks).check(_first_half(), RT_LMP, WINDOW).passed


def test_recency_severity_override_turns_a_stale_batch_into_a_warning() -> None:
    for checks in ({"recency": {"severity": "warn"}}, {"severity": {"recency": "warn"}}):
        result = build_gate("rt_lmp", checks).check(_first_half(), RT_LMP, WINDOW)
        assert result.passed
        assert [o.name for o in result.warnings] == ["recency"]


def test_recency_can_be_enabled_for_a_daily_series_but_not_without_a_cadence() -> None:
    suite = build_suite("fred_observations", {"recency": True})
    assert suite.get("recency").params == {"time_column": "ts", "max_lag": 1800.0, "frequency": 86400.0}
    assert suite.get("recency").severity == "error"
    with pytest.raises(SpecError) as info:
        build_suite("census_acs", {"recency": {"max_lag": "1d"}})
    assert info.value.errors == ["checks.recency: census_acs has no interval_end column or frequency"]


def test_negative_recency_max_lag_is_an_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        QualitySpec.model_validate({"recency": {"max_lag": "-5m"}})
    assert info.value.errors()[0]["loc"][:2] == ("recency", "RecencyCheck")


def test_custom_expectation_is_added_and_replaces_by_name() -> None:
    custom = {
        "name": "range.congestion",
        "kind": "between",
        "column": "congestion",
        "params": {"min": -5, "max": 5},
    }
    suite = build_suite(
        "rt_lmp", {"expectations": [custom, {**custom, "name": "range.lmp", "column": "lmp"}]}
    )
    assert suite.names[-1] == "range.congestion"
    assert suite.get("range.lmp").column == "lmp" and suite.get("range.lmp").params == {"min": -5, "max": 5}
    assert suite.names.index("range.lmp") == default_suite("rt_lmp").names.index("range.lmp")


def test_typo_in_checks_is_a_pydantic_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        QualitySpec.model_validate({"disabel": ["range.lmp"]})
    assert info.value.errors()[0]["loc"] == ("disabel",)


def test_bad_bounds_are_errors_naming_the_column() -> None:
    with pytest.raises(ValidationError) as info:
        QualitySpec.model_validate({"ranges": {"lmp": {"min": 10, "max": 1}}})
    assert info.value.errors()[0]["loc"][:2] == ("ranges", "lmp")
    with pytest.raises(ValidationError) as info:
        QualitySpec.model_validate({"ranges": {"lmp": {"min": "cheap"}}})
    assert info.value.errors()[0]["loc"][:3] == ("ranges", "lmp", "min")


def test_bad_severity_is_an_error() -> None:
    with pytest.raises(ValidationError) as info:
        QualitySpec.model_validate({"severity": {"range.lmp": "fatal"}})
    assert info.value.errors()[0]["loc"] == ("severity", "range.lmp")


def test_build_gate_wraps_validation_errors_in_spec_error_with_field_paths() -> None:
    with pytest.raises(SpecError) as info:
        build_gate("rt_lmp", {"row_count": {"min": -1}})
    assert info.value.errors[0].startswith("checks.row_count.min:")


def test_unknown_column_or_expectation_name_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as info:
        build_suite("rt_lmp", {"ranges": {"price": {"max": 1}}, "disable": ["range.gen"]})
    assert info.value.errors == [
        "checks.ranges.price: rt_lmp has no column 'price'",
        f"checks.disable: no expectation 'range.gen'; known: {default_suite('rt_lmp').names}",
    ]


def test_expectation_without_its_required_params_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"needs params\.min and/or params\.max"):
        Expectation(name="x", kind="between", column="lmp")
    with pytest.raises(ValidationError, match="needs 'column'"):
        Expectation(name="x", kind="not_null")


UIS = """
name: caiso-gate
source: {type: synthetic_iso, params: {nodes: 4, iso: CAISO}}
sinks: [iceberg]
checks:
  lmp: {min: -500, max: 3000}
  severity: {continuity: warn}
"""


def _spec_gate(yaml_text: str, settings: Settings) -> ExpectationGate:
    import hmco

    gate = hmco.build_pipeline(yaml_text, settings=settings).gate
    assert isinstance(gate, ExpectationGate)
    return gate


def test_uis_yaml_checks_reach_the_pipeline_gate(settings: Settings) -> None:
    suite = _spec_gate(UIS, settings).suite_for("rt_lmp")
    assert suite.get("range.lmp").params == {"min": -500.0, "max": 3000.0}
    assert suite.get("continuity").severity == "warn"


def test_uis_yaml_recency_override_reaches_the_pipeline_gate(settings: Settings) -> None:
    spec = UIS.replace("  severity: {continuity: warn}\n", "  recency: {max_lag: 30m, severity: warn}\n")
    recency = _spec_gate(spec, settings).suite_for("rt_lmp").get("recency")
    assert (recency.params["max_lag"], recency.severity) == (1800.0, "warn")


def test_uis_yaml_with_bad_checks_is_a_spec_error_naming_the_field() -> None:
    import hmco

    with pytest.raises(SpecError, match="disabel"):
        hmco.load_spec(UIS + "  disabel: [range.lmp]\n")
