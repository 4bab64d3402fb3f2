"""UIS: pipelines declared in YAML load, validate, and fail with errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hmco.compose.spec import build_pipeline, load_spec, parse_duration
from hmco.errors import SpecError
from hmco.lake import Lake

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "src" / "hmco" / "specs").glob("*.yaml"))

SYNTH = """
name: synthetic-rt
source:
  type: synthetic_iso
  params: {nodes: 25, seed: 3}
schedule: "*/5 * * * *"
sla: 10m
window: 2h
sinks: [iceberg]
checks: {}
"""


def test_there_is_an_example_spec_for_each_of_the_seven_sources() -> None:
    types = {load_spec(p).source.type for p in SPECS}
    assert {"eia", "fred", "noaa", "census", "caiso", "miso", "spp"} <= types


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_example_specs_validate(path: Path) -> None:
    spec = load_spec(path)
    assert spec.sla is not None and spec.schedule is not None
    assert "iceberg" in spec.sinks


def test_spec_builds_a_pipeline_that_runs(settings) -> None:  # type: ignore[no-untyped-def]
    lake = Lake(settings)
    pipe = build_pipeline(SYNTH, lake=lake)
    assert pipe.name == "synthetic-rt" and pipe.window_step.total_seconds() == 7200
    report = pipe.run(__import__("hmco").Window.of("2026-11-26T00:00", "2026-11-26T04:00"))
    assert report.ok and report.rows == 25 * 48 and len(report.windows) == 2
    assert lake.table("rt_lmp").scan().to_arrow().num_rows == 25 * 48


@pytest.mark.parametrize(
    ("patch", "field", "problem"),
    [
        ({"name": "Bad Name!"}, "name", "should match pattern"),
        ({"sla": "ten minutes"}, "sla", "is not a duration"),
        ({"schedule": "every 5 minutes"}, "schedule", "5-field cron"),
        ({"sinks": ["clickhouse"]}, "sinks", "must include 'iceberg'"),
        ({"source": {"type": "caiso-x"}}, "source", "unknown source 'caiso-x'"),
        (
            {"source": {"type": "synthetic_iso", "params": {"nodez": 3}}},
            "source",
            "no parameter(s) ['nodez']",
        ),
        (
            {"source": {"type": "synthetic_iso", "dataset": "eia_daily_fuel"}},
            "source",
            "cannot produce dataset",
        ),
        ({"window": "-1h"}, "window", "not a duration"),
        ({"transforms": ["nowhere:fn"]}, "transforms", "cannot be imported"),
        ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
    ],
)
def test_malformed_spec_error_names_the_field_and_problem(patch: dict, field: str, problem: str) -> None:  # type: ignore[type-arg]
    import yaml

    data = yaml.safe_load(SYNTH) | patch
    with pytest.raises(SpecError) as info:
        load_spec(data)
    assert any(e.startswith(field) and problem in e for e in info.value.errors), info.value.errors


def test_missing_required_fields_are_all_listed() -> None:
    with pytest.raises(SpecError) as info:
        load_spec("schedule: '* * * * *'\n")
    assert {e.split(":")[0] for e in info.value.errors} == {"name", "source"}


def test_invalid_yaml_and_missing_file_are_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec("name: [unclosed\n  source: x")
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")


def test_quality_checks_are_validated_by_the_quality_model() -> None:
    import yaml

    data = yaml.safe_load(SYNTH) | {"checks": {"expectations": "not-a-list"}}
    with pytest.raises(SpecError, match="checks"):
        load_spec(data)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("1h", 3600), ("24h", 86400), ("7d", 604800), ("PT10M", 600)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(
    ("patch", "field", "problem"),
    [
        ({"schedule": "99 99 99 99 99"}, "schedule", "not a valid 5-field cron"),
        ({"schedule": "0 0 31 2 *"}, "schedule", "not a valid"),
        ({"schedule": "0 1 1 * 1"}, "schedule", "restricts both day-of-month and day-of-week"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not an IANA time zone"),
    ],
)
def test_schedules_are_validated_by_a_cron_library(patch: dict, field: str, problem: str) -> None:  # type: ignore[type-arg]
    import yaml

    data = yaml.safe_load(SYNTH) | patch
    with pytest.raises(SpecError) as info:
        load_spec(data)
    assert any(e.startswith(field) and problem in e for e in info.value.errors), info.value.errors


def test_a_schedule_carries_its_time_zone_across_dst() -> None:
    import yaml

    spec = load_spec(yaml.safe_load(SYNTH) | {"schedule": "30 7 * * *", "timezone": "America/New_York"})
    cron = spec.cron
    assert cron is not None
    # 07:30 New York is 11:30 UTC in summer (EDT) and 12:30 UTC in winter (EST); DST ended 2026-11-01.
    fires = [
        t.astimezone(UTC)
        for t in cron.fire_times(datetime(2026, 10, 30, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    ]
    assert [(t.day, t.hour, t.minute) for t in fires] == [
        (30, 11, 30),
        (31, 11, 30),
        (1, 12, 30),
        (2, 12, 30),
    ]
