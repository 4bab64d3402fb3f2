"""`hmco demo`: the whole spine on the embedded default, printing the seed's queries with their names."""

from __future__ import annotations

import pyarrow.compute as pc

from hmco.cli import main
from hmco.demo import run_demo


def test_demo_ingests_both_datasets_and_answers_the_seed_queries(settings) -> None:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    result = run_demo(settings, nodes=200, say=lines.append)
    assert all(r.ok for r in result.reports)
    rt_report, eia_report = result.reports
    assert rt_report.rows == 200 * 288
    assert eia_report.rows == 10 * 7 * 8  # ten days × 7 balancing authorities × 8 fuels

    assert result.eia.column_names == ["region", "series", "avg_value"]
    assert result.eia.num_rows == 7 * 8
    assert result.rt.column_names == ["iso", "node", "avg_lmp"]
    assert result.rt.num_rows == 10
    avg = result.rt.column("avg_lmp").to_pylist()
    assert avg == sorted(avg, reverse=True)
    assert pc.all(pc.equal(result.rt["iso"], "SYNTH")).as_py()

    ch = result.extra["clickhouse"]
    assert ch.column_names == ["iso", "node", "avg_lmp"] and ch.num_rows == 10
    assert ch.column("node").to_pylist() == result.rt.column("node").to_pylist()  # same answer on both stores

    text = "\n".join(lines)
    assert "FROM hub_curated.eia_daily_fuel" in text and "avg_value" in text and "avg_lmp" in text
    assert str(settings.home_dir) in text


def test_cli_demo_exits_zero(settings, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HMCO_HOME", str(settings.home))
    monkeypatch.setenv("HMCO_CLICKHOUSE__PATH", str(settings.clickhouse.path))
    monkeypatch.setenv("HMCO_CLICKHOUSE__DATABASE", settings.clickhouse.database)
    assert main(["demo", "--nodes", "50"]) == 0
    out = capsys.readouterr().out
    assert "Seed EIA query" in out and "Seed RT LMP query" in out and "Done in" in out
