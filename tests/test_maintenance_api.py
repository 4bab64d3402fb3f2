"""The maintenance API notebooks and schedulers call: TableMaintenance, maintain(), the schedule, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry

from hmco.cli import main
from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance import ACTIONS, WEEKLY_SCHEDULE, TableMaintenance, maintain
from hmco.schemas import get_dataset
from hmco.sinks.iceberg import IcebergSink
from hmco.sources.synthetic import synthetic_lmp
from hmco.windows import Window

RT = get_dataset("rt_lmp")
START = datetime(2026, 11, 20, tzinfo=UTC)


def _polls(lake: Lake, n: int) -> None:
    sink = IcebergSink(lake, pipeline="rt")
    for i in range(n):
        w = Window(START + i * timedelta(minutes=5), START + (i + 1) * timedelta(minutes=5))
        sink.write(synthetic_lmp(w, 3), dataset=RT, window=w, batch_id=f"p{i}")


def test_the_weekly_schedule_is_the_platforms() -> None:
    by_action = {s.action: s.cron for s in WEEKLY_SCHEDULE}
    assert by_action["expire_snapshots"] == "0 2 * * 0"  # Sunday 02:00
    assert by_action["rewrite_manifests"] == "0 3 * * 0"  # Sunday 03:00
    assert by_action["compact"] == "0 4 * * 0"  # Sunday 04:00
    assert tuple(s.action for s in WEEKLY_SCHEDULE) == ACTIONS


def test_maintain_runs_every_action_on_every_table_and_records_metrics(settings: Settings) -> None:
    lake = Lake(settings)
    _polls(lake, 12)
    before = lake.table("rt_lmp").scan().to_arrow().num_rows
    registry = CollectorRegistry()
    report = maintain(lake, tiers=["curated"], registry=registry, now=datetime.now(UTC) + timedelta(days=8))
    assert report.ok, str(report)
    assert [a.action for a in report.actions] == list(ACTIONS)
    compact = next(a for a in report.actions if a.action == "compact")
    assert compact.files_before == 12 and compact.files_after == 1
    assert lake.table("rt_lmp").scan().to_arrow().num_rows == before
    labels = {"table": "hub_curated.rt_lmp", "action": "compact"}
    assert registry.get_sample_value("hmco_maintenance_last_run_timestamp_seconds", labels) is not None
    assert registry.get_sample_value("hmco_maintenance_failures_total", labels) == 0.0


def test_a_failing_action_is_reported_and_the_others_still_run(settings: Settings) -> None:
    lake = Lake(settings)
    _polls(lake, 3)
    # A table one of whose data files was lost from storage: compacting it fails, the run goes on.
    da = get_dataset("da_lmp")
    sink = IcebergSink(lake, pipeline="da")
    for i in range(2):
        w = Window(START + i * timedelta(hours=1), START + (i + 1) * timedelta(hours=1))
        sink.write(synthetic_lmp(w, 3), dataset=da, window=w, batch_id=f"d{i}")
    tbl = lake.table("da_lmp")
    lost = next(iter(tbl.inspect.files().column("file_path").to_pylist()))
    tbl.io.delete(lost)
    report = maintain(lake, tiers=["curated"], actions=["compact"])
    assert report.exit_code == 1
    by_table = {a.table: a for a in report.actions}
    assert by_table["hub_curated.rt_lmp"].ok and not by_table["hub_curated.da_lmp"].ok


def test_dry_run_changes_nothing(settings: Settings) -> None:
    lake = Lake(settings)
    _polls(lake, 6)
    snapshots = len(lake.table("rt_lmp").snapshots())
    report = TableMaintenance(lake, "rt_lmp").compact(dry_run=True)
    assert report.dry_run and report.files_before == 6
    assert len(lake.table("rt_lmp").snapshots()) == snapshots


def test_cli_maintain_prints_a_report_and_exits_for_schedulers(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(settings)
    _polls(lake, 4)
    monkeypatch.setenv("HMCO_HOME", str(settings.home_dir))
    prom = tmp_path / "hmco.prom"
    code = main(["maintain", "--tier", "curated", "--action", "compact", "--json", "--metrics", str(prom)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"]
    (action,) = out["actions"]
    assert (action["action"], action["files_before"], action["files_after"]) == ("compact", 4, 1)
    assert (
        'hmco_maintenance_duration_seconds{action="compact",table="hub_curated.rt_lmp"}' in prom.read_text()
    )
    assert main(["maintain", "--tier", "nowhere"]) == 2


def test_an_unknown_engine_or_action_is_a_config_error(settings: Settings) -> None:
    from hmco.errors import ConfigError

    with pytest.raises(ConfigError):
        TableMaintenance(Lake(settings), "rt_lmp", engine="spark")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        maintain(Lake(settings), actions=["vacuum"])  # type: ignore[list-item]
    assert pa is not None
