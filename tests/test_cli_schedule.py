"""``hmco schedule …`` and ``hmco serve --once`` from the command line (in process, through ``main``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from hmco.cli import main
from hmco.compose.spec import load_spec
from hmco.config import Settings
from hmco.lake import Lake


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HMCO_HOME", str(tmp_path / "hmco"))
    return tmp_path / "hmco"


def _json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def test_list_shows_every_job_with_its_schedule_and_command(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", "list", "--json", "--now", "2026-12-02T12:00:00Z"]) == 0
    jobs = {j["job"]: j for j in _json(capsys)}  # type: ignore[attr-defined]
    assert len(jobs) == 16  # 7 pipelines, 5 upkeep actions, 3 backups, the freshness watch
    eia = jobs["eia-daily-fuel"]
    assert (eia["cron"], eia["timezone"], eia["sla"]) == ("30 7 * * *", "America/New_York", "30m")
    assert eia["next"] == "2026-12-02T12:30+00:00"  # 07:30 EST, half an hour later
    assert jobs["iceberg-compact"]["next"] == "2026-12-06T04:00+00:00"  # the coming Sunday
    assert all(j["command"] == f"hmco schedule run {name}" for name, j in jobs.items())


def test_a_shipped_spec_is_overridden_by_name_not_rewritten(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", "show", "noaa-observations-hourly"]) == 0
    shipped = yaml.safe_load(capsys.readouterr().out)
    assert load_spec(shipped).name == "noaa-observations-hourly"  # what `show` prints is a valid spec
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    (overrides / "noaa.yaml").write_text(
        "name: noaa-observations-hourly\nschedule: '50 * * * *'\nsource: {params: {stations: [KORD]}}\n"
    )
    assert main(["schedule", "list", "--json", "--specs", str(overrides)]) == 0
    noaa = next(j for j in _json(capsys) if j["job"] == "noaa-observations-hourly")  # type: ignore[attr-defined]
    assert noaa["cron"] == "50 * * * *" and noaa["sla"] == "20m"  # the rest is the shipped spec's


def test_a_bad_override_names_its_file_and_field(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    (overrides / "eia.yaml").write_text("name: eia-daily-fuel\nschedule: '99 99 99 99 99'\n")
    assert main(["schedule", "list", "--specs", str(overrides)]) == 2
    err = capsys.readouterr().err
    assert "eia.yaml" in err and "schedule" in err and "not a valid 5-field cron" in err


def test_export_rules_and_dashboard_are_written_from_the_catalogue(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["schedule", "export", "--dolphinscheduler", "--out", str(out / "ds")]) == 0
    files = sorted(p.stem for p in (out / "ds").glob("*.yaml"))
    assert len(files) == 16 and "eia-daily-fuel" in files
    workflow = yaml.safe_load((out / "ds" / "iceberg-compact.yaml").read_text())
    assert workflow["workflow"]["schedule"] == "0 0 4 ? * SUN *"
    assert main(["schedule", "rules", "--out", str(out / "rules.yml")]) == 0
    groups = yaml.safe_load((out / "rules.yml").read_text())["groups"]
    assert {g["name"] for g in groups} >= {"hmco-freshness", "hmco-realtime", "hmco-serve"}
    assert main(["schedule", "dashboard", "--out", str(out / "dash.json")]) == 0
    assert json.loads((out / "dash.json").read_text())["panels"]


def _synthetic(tmp_path: Path) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "synth.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "synth",
                "source": {"type": "synthetic_iso", "params": {"nodes": 5}},
                "schedule": "0 * * * *",
                "window": "1h",
                "start": "2026-11-20T08:00:00+00:00",
            }
        )
    )
    return specs


def test_schedule_run_and_serve_once_run_a_job_under_its_lease(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = str(_synthetic(tmp_path))
    now = "2026-11-20T12:10:00Z"
    assert main(["schedule", "run", "synth", "--specs", specs, "--now", now, "--json"]) == 0
    [result] = _json(capsys)  # type: ignore[misc]
    assert result["outcome"] == "succeeded" and result["rows"] == 5 * 12 * 4  # 08:00 .. 12:00
    lake = Lake(Settings.load())
    assert lake.table("rt_lmp").scan().to_arrow().num_rows == 240
    # the by-hand run answered the 12:00 fire: serve --once at the same instant has nothing to do
    assert main(["serve", "--once", "--specs", specs, "--job", "synth", "--now", now, "--json"]) == 0
    assert _json(capsys) == []
    later = "2026-11-20T18:10:00Z"  # the synthetic source serves whole 6-hour steps: through 18:00
    assert main(["serve", "--once", "--specs", specs, "--job", "synth", "--now", later, "--json"]) == 0
    [result] = _json(capsys)  # type: ignore[misc]
    assert (result["outcome"], result["fire"], result["rows"]) == (
        "succeeded",
        "2026-11-20T18:00:00+00:00",
        360,
    )
    assert lake.table("rt_lmp").scan().to_arrow().num_rows == 600
    assert lake.state.jobs.last_run("synth").last_fire == datetime(2026, 11, 20, 18, tzinfo=UTC)


def test_now_belongs_to_once(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--now", "2026-11-20T12:00:00Z", "--metrics-port", "0"]) == 2
    assert "--now only applies to --once" in capsys.readouterr().err
