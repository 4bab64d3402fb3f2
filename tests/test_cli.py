"""The `hmco` command: exit codes a scheduler can act on, and the outputs people read."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from hmco.cli import main
from hmco.config import Settings
from hmco.sources.base import register_source
from hmco.sources.synthetic import SyntheticISO
from tests.support.replay import ReplayServer, Reply

REPO = Path(__file__).resolve().parents[1]
HMCO = Path(sys.executable).with_name("hmco")  # the console script of this environment


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HMCO_HOME", str(settings.home))
    monkeypatch.setenv("HMCO_CLICKHOUSE__PATH", str(settings.clickhouse.path))
    monkeypatch.setenv("HMCO_CLICKHOUSE__DATABASE", settings.clickhouse.database)
    return settings


def test_validate_accepts_the_example_specs(capsys: pytest.CaptureFixture[str]) -> None:
    specs = sorted(str(p) for p in (REPO / "src" / "hmco" / "specs").glob("*.yaml"))
    assert main(["validate", *specs]) == 0
    assert capsys.readouterr().out.count("ok ") == len(specs)


def test_validate_names_the_bad_field_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsource: {type: synthetic_iso, params: {nodes: 3}}\nsla: soon\n")
    assert main(["validate", str(bad)]) == 2
    assert "sla: 'soon' is not a duration" in capsys.readouterr().err


def test_run_a_spec_for_a_window_then_query_it(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "synth.yaml"
    spec.write_text("name: synth\nsource: {type: synthetic_iso, params: {nodes: 7}}\nwindow: 1h\n")
    assert main(["run", str(spec), "--start", "2026-11-26T00:00", "--end", "2026-11-26T02:00"]) == 0
    assert "2 ok" in capsys.readouterr().out
    assert main(["sql", "SELECT count(*) AS n FROM hub_curated.rt_lmp"]) == 0
    assert "168" in capsys.readouterr().out


def test_tiers_lists_buckets_namespaces_and_retention(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tiers", "--create"]) == 0
    out = capsys.readouterr().out
    assert "hmco-raw" in out and "hub_curated" in out and "1825 d" in out


def test_freshness_exit_code_reports_stale_data(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "synth.yaml"
    spec.write_text("name: synth\nsource: {type: synthetic_iso, params: {nodes: 2}}\n")
    main(["run", str(spec), "--start", "2026-11-26T00:00", "--end", "2026-11-26T01:00"])
    capsys.readouterr()
    metrics = tmp_path / "hmco.prom"
    assert main(["freshness", "rt_lmp", "--metrics", str(metrics)]) == 1  # data from a past day: stale
    assert "stale" in capsys.readouterr().out
    assert 'hmco_freshness_ok{dataset="rt_lmp"' in metrics.read_text()


def test_rt_ddl_and_rbac_render_without_a_server(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rt", "ddl"]) == 0
    assert "ReplacingMergeTree" in capsys.readouterr().out
    assert main(["rt", "rbac"]) == 0
    out = capsys.readouterr().out
    assert "CREATE ROLE" in out and "ROW POLICY" in out


def test_missing_profile_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--profile", "/nonexistent/p.yaml", "tiers"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_rt_setup_then_one_poll_of_a_feed_lands_rows_in_clickhouse(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from hmco.clickhouse import connect_clickhouse

    assert main(["rt", "setup"]) == 0
    assert "schema ready" in capsys.readouterr().out
    assert main(["rt", "run", "--isos", "synthetic_iso", "--once", "--lake"]) == 0
    out = capsys.readouterr().out
    assert "SYNTH:" in out and "lag SYNTH:" in out
    client = connect_clickhouse(env)
    stored = client.query("SELECT count() FROM rt_lmp WHERE iso = 'SYNTH'").result_rows[0][0]
    assert stored > 0
    from hmco.lake import Lake

    assert Lake(env).table("rt_lmp").scan().to_arrow().num_rows == stored  # the lake keeps the same rows


def test_archive_lists_and_replays_a_payload(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "synth.yaml"
    spec.write_text("name: synth\nsource: {type: synthetic_iso, params: {nodes: 3}}\n")
    assert main(["run", str(spec), "--start", "2026-11-26T00:00", "--end", "2026-11-26T01:00"]) == 0
    capsys.readouterr()
    assert main(["archive", "--source", "synthetic_iso"]) == 0
    (key,) = capsys.readouterr().out.split()
    assert main(["archive", "--replay", key, "--limit", "2"]) == 0
    assert "→ 36 rows" in capsys.readouterr().out


def test_bad_sql_is_a_one_line_error_with_exit_2(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    main(["tiers", "--create"])
    capsys.readouterr()
    assert main(["sql", "SELEC 1 FROM"]) == 2
    assert main(["sql", "SELECT no_such_column FROM (VALUES (1)) AS t(x)"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("hmco: ") for line in err)
    assert "no_such_column" in err[1]


def test_a_failing_run_prints_its_report_and_exits_1(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "tight.yaml"
    spec.write_text(
        "name: tight\nsource: {type: synthetic_iso, params: {nodes: 2}}\nchecks: {ranges: {lmp: {max: 1}}}\n"
    )
    assert main(["run", str(spec), "--start", "2026-11-26T00:00", "--end", "2026-11-26T01:00"]) == 1
    captured = capsys.readouterr()
    assert "1 failed" in captured.out and "range.lmp" in captured.err


def test_end_without_start_is_a_usage_error(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nsource: {type: synthetic_iso}\n")
    assert main(["run", str(spec), "--end", "2026-11-26T01:00"]) == 2
    assert "--end needs --start" in capsys.readouterr().err


# --- one error line per failure, naming the action to take (a real `hmco` process) -----------------


def _hmco(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HMCO_HOME": str(home)}
    return subprocess.run([str(HMCO), *args], capture_output=True, text=True, env=env, timeout=120)


def _caiso_spec(path: Path, base_url: str) -> Path:
    path.write_text(
        "name: caiso-down\n"
        f"source: {{type: caiso, base_url: '{base_url}', params: {{nodes: [TH_NP15_GEN-APND], "
        "http: {min_interval: 0, connect_budget: 0.2}}}\n"
        "window: 1h\n"
    )
    return path


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_source_is_one_error_line_saying_what_to_do(tmp_path: Path, closed_port: int) -> None:
    spec = _caiso_spec(tmp_path / "caiso.yaml", f"http://127.0.0.1:{closed_port}/oasisapi")
    run = _hmco("run", str(spec), "--start", "2026-11-01T00:00Z", "--end", "2026-11-01T01:00Z", home=tmp_path)
    assert run.returncode == 1
    (line,) = run.stderr.splitlines()  # no log lines, no retry notices: one line
    assert line.startswith("hmco: PipelineError: caiso-down: window") and "ConnectionFailed" in line
    assert "attempts=3" in line  # three quick tries, then the run failed
    assert "check that the source is up" in line and "base_url" in line and "--resume" in line
    assert "1 failed" in run.stdout  # the run's report summary
    assert (run.stdout + run.stderr).count("Connection refused") == 2  # the report's line and the error's


def test_verbose_adds_the_traceback(tmp_path: Path, closed_port: int) -> None:
    spec = _caiso_spec(tmp_path / "caiso.yaml", f"http://127.0.0.1:{closed_port}/oasisapi")
    run = _hmco(
        "run", str(spec), "--start", "2026-11-01T00:00Z", "--end", "2026-11-01T01:00Z", "-v", home=tmp_path
    )
    assert run.returncode == 1
    assert "Traceback (most recent call last)" in run.stderr and "hmco.errors.PipelineError" in run.stderr
    assert run.stderr.splitlines()[-1].startswith("hmco: PipelineError: ")


def test_an_unresolvable_host_fails_at_once_naming_host_and_setting(tmp_path: Path) -> None:
    spec = _caiso_spec(tmp_path / "caiso.yaml", "http://hmco-test.invalid/oasisapi")
    run = _hmco("run", str(spec), "--start", "2026-11-01T00:00Z", "--end", "2026-11-01T01:00Z", home=tmp_path)
    assert run.returncode == 1
    (line,) = run.stderr.splitlines()
    assert "HostNotFound: cannot resolve the host name 'hmco-test.invalid'" in line
    assert "source.base_url" in line and "attempts=" not in line  # not retried


def test_a_malformed_spec_is_one_error_line_with_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: x\nsource: [\n  type: caiso\n")
    run = _hmco("run", str(spec), home=tmp_path)
    assert run.returncode == 2 and run.stdout == ""
    (line,) = run.stderr.splitlines()
    assert line.startswith("hmco: spec is not valid YAML") and "broken.yaml" in line
    assert f"hmco validate {spec} names every bad field" in line


# --- --start/--end are market days in the source's time zone ----------------------------------------


@register_source
class EasternSynthetic(SyntheticISO):
    """The synthetic feed on a market calendar of New York (as an ISO's own time zone)."""

    name: ClassVar[str] = "synthetic_eastern"
    timezone: ClassVar[str] = "America/New_York"


def _run_day(env: Settings, tmp_path: Path, source: str, *tz: str) -> tuple[datetime, datetime]:
    spec = tmp_path / f"{source}.yaml"
    spec.write_text(f"name: {source}-day\nsource: {{type: {source}, params: {{nodes: 2}}}}\nwindow: 1d\n")
    assert main(["run", str(spec), "--start", "2026-11-26", "--end", "2026-11-27", *tz]) == 0
    from hmco.lake import Lake

    ts = Lake(env).table("rt_lmp").scan(selected_fields=("ts",)).to_arrow()["ts"]
    return min(ts.to_pylist()), max(ts.to_pylist())


def test_dates_are_market_days_in_the_sources_time_zone(env: Settings, tmp_path: Path) -> None:
    first, last = _run_day(env, tmp_path, "synthetic_eastern")
    assert first == datetime(2026, 11, 26, 5, 0, tzinfo=UTC)  # midnight in New York (EST)
    assert last == datetime(2026, 11, 27, 4, 55, tzinfo=UTC)


def test_tz_utc_reads_dates_as_utc_days(env: Settings, tmp_path: Path) -> None:
    first, last = _run_day(env, tmp_path, "synthetic_eastern", "--tz", "UTC")
    assert (first, last) == (datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 26, 23, 55, tzinfo=UTC))


def test_tz_names_another_zone(env: Settings, tmp_path: Path) -> None:
    first, _ = _run_day(env, tmp_path, "synthetic_iso", "--tz", "America/Chicago")
    assert first == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def _caiso_days(env: Settings, tmp_path: Path, replay: ReplayServer, *tz: str) -> list[tuple[str, str]]:
    """The (start, end) of every OASIS request a CAISO run of the market day 2026-11-01 makes."""
    replay.add("/oasisapi/SingleZip", Reply.file("caiso/error_1000_no_data.xml.zip"))
    spec = tmp_path / "caiso.yaml"
    spec.write_text(
        f"name: caiso-day\nsource: {{type: caiso, base_url: '{replay.url}/oasisapi', "
        "params: {nodes: [TH_NP15_GEN-APND], http: {min_interval: 0}}}\nwindow: 1d\n"
    )
    assert main(["run", str(spec), "--start", "2026-11-01", "--end", "2026-11-02", *tz]) == 0
    return [(str(r.param("startdatetime")), str(r.param("enddatetime"))) for r in replay.requests]


def test_caiso_dates_are_pacific_market_days_by_default(
    env: Settings, tmp_path: Path, replay: ReplayServer
) -> None:
    days = _caiso_days(env, tmp_path, replay)
    assert days[0][0] == "20261101T07:00-0000"  # midnight PDT
    assert days[-1][1] == "20261102T08:00-0000"  # midnight PST: the fall-back day has 25 hours


def test_caiso_dates_with_tz_utc_are_utc_days(env: Settings, tmp_path: Path, replay: ReplayServer) -> None:
    days = _caiso_days(env, tmp_path, replay, "--tz", "UTC")
    assert (days[0][0], days[-1][1]) == ("20261101T00:00-0000", "20261102T00:00-0000")


def test_an_unknown_tz_is_a_usage_error(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nsource: {type: synthetic_iso}\n")
    assert (
        main(["run", str(spec), "--start", "2026-11-26", "--end", "2026-11-27", "--tz", "Mars/Olympus"]) == 2
    )
    (line,) = capsys.readouterr().err.splitlines()
    assert "unknown time zone 'Mars/Olympus'" in line
