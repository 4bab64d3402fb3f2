"""The `hmco` command: exit codes a scheduler can act on, and the outputs people read."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmco.cli import main
from hmco.config import Settings

REPO = Path(__file__).resolve().parents[1]


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
