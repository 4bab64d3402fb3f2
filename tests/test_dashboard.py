"""The Grafana dashboard: a well-formed model whose every queried metric a real /metrics page exposes.

The exposing side is real code: ``HmcoMetrics`` (``metrics_for``) with each ``record_*`` called once, and a
``RealtimeRunner`` (the catalogue's ISOs) whose store is unreachable, served by prometheus_client's
own HTTP server on loopback and scraped with httpx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from hmco.compose.realtime import RealtimeRunner
from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance.report import ActionReport
from hmco.monitoring.alerts import job_iso
from hmco.monitoring.dashboard import (
    SCRAPE_SERIES,
    dashboard,
    exposed_metric_names,
    panel_metric_names,
    promql_metric_names,
    write_dashboard,
)
from hmco.monitoring.metrics import metrics_for
from hmco.quality.freshness import check_freshness
from hmco.quality.gate import ExpectationOutcome, GateResult
from hmco.schedule.catalogue import default_catalogue
from hmco.sources.registry import get_source_class

CATALOGUE = default_catalogue(replication=True)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class UnreachableStore:
    """A ClickHouse sink whose server is down: the runner reports a poll error per ISO."""

    name = "clickhouse"

    @property
    def client(self) -> Any:
        raise ConnectionError("real-time store unreachable")


def _record_everything(registry: CollectorRegistry, home: Path) -> RealtimeRunner:
    metrics = metrics_for(registry)  # the HmcoMetrics the runner's processors share
    metrics.record_ingest("eia-daily-fuel", "eia_daily_fuel", rows=10, nbytes=1000)
    metrics.record_quarantine("eia-daily-fuel", "eia_daily_fuel")
    metrics.record_job("eia-daily-fuel", "pipeline", "succeeded", 1.5, at=NOW)
    metrics.record_backup("clickhouse", NOW - timedelta(minutes=5), now=NOW)
    metrics.record_maintenance(
        ActionReport(action="compact", table="curated.eia_daily_fuel", seconds=2.0), at=NOW
    )
    bad = ExpectationOutcome("price_not_null", success=False)
    metrics.record_gate(GateResult("eia_daily_fuel", [bad], row_count=10))
    metrics.record_freshness(check_freshness("eia_daily_fuel", NOW - timedelta(hours=1), now=NOW, target="t"))

    settings = Settings.load(home=home)
    jobs = CATALOGUE.of_kind("realtime")
    sources = {job_iso(j): get_source_class(j.spec.source.type)(settings=settings) for j in jobs if j.spec}
    runner = RealtimeRunner(
        sources,
        UnreachableStore(),  # type: ignore[arg-type]
        lake=Lake(settings),
        archive=False,
        registry=registry,
        clock=lambda: NOW,
    )
    reports = runner.run_once(force=True)
    assert {r.iso for r in reports} == set(sources) and all(r.error for r in reports)
    return runner


@pytest.fixture
def exposed(tmp_path: Path) -> Iterator[set[str]]:
    """The sample names a real prometheus_client HTTP server exposes for hmco's metrics."""
    registry = CollectorRegistry()
    _record_everything(registry, tmp_path / "hmco")
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        response = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10)
        response.raise_for_status()
        yield exposed_metric_names(response.text)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_every_panel_queries_exposed_metrics(exposed: set[str]) -> None:
    board = dashboard(CATALOGUE)
    assert "hmco_rt_lag_seconds" in exposed and "hmco_rt_poll_errors_total" in exposed
    for panel in board["panels"]:
        names = {n for t in panel.get("targets", []) for n in promql_metric_names(t["expr"])}
        unknown = names - exposed - SCRAPE_SERIES
        assert not unknown, f"panel {panel['title']!r} queries metrics nothing exposes: {sorted(unknown)}"
    assert panel_metric_names(board) - SCRAPE_SERIES <= exposed


def test_the_dashboard_is_a_well_formed_grafana_model(tmp_path: Path) -> None:
    board = json.loads(write_dashboard(tmp_path / "hmco.json", CATALOGUE).read_text())
    assert board["schemaVersion"] >= 39
    assert [v["name"] for v in board["templating"]["list"] if v["type"] == "datasource"] == ["DS_PROMETHEUS"]
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panels {cells.get((x, y))} and {p['id']} overlap"
                cells[(x, y)] = p["id"]
        for target in p.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}" and target["expr"]
        if p["type"] != "row":
            assert p["targets"], p["title"]


def test_the_dashboard_follows_the_catalogue() -> None:
    board = dashboard(CATALOGUE)
    by_title = {p["title"]: p for p in board["panels"]}
    lag = by_title["Lag per ISO"]
    assert [t["expr"] for t in lag["targets"]] == [
        f'hmco_rt_lag_seconds{{iso="{iso}"}}' for iso in ("CAISO", "MISO", "SPP")
    ]
    assert lag["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 600
    eia = by_title["eia_daily_fuel"]  # one freshness panel per dataset, its SLA + lag as the red line
    assert {t["expr"] for t in eia["targets"]} == {
        'hmco_freshness_age_seconds{dataset="eia_daily_fuel"}',
        'hmco_freshness_sla_seconds{dataset="eia_daily_fuel"}',
    }
    assert eia["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 52200
    datasets = {j.dataset for j in CATALOGUE.ingestion}
    assert datasets <= set(by_title)
    backups = by_title["Backup age vs RPO, per store"]
    assert backups["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 1800


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum by (pipeline) (rate(hmco_ingest_rows_total[5m]))", {"hmco_ingest_rows_total"}),
        (
            "histogram_quantile(0.95, sum by (le, job)"
            " (rate(hmco_job_duration_seconds_bucket[$__rate_interval])))",
            {"hmco_job_duration_seconds_bucket"},
        ),
        ('time() - max without (table) (a{action="compact", x=~"b|c"}) > bool 1e3', {"a"}),
        (
            'x_total offset 5m / on (iso) group_left (le) y and ignoring(z) {__name__="w", q="sum(v)"}',
            {"x_total", "y", "w"},
        ),
        ('label_replace(up{job="hmco-serve"}, "dst", "$1", "src", "(.*)") or vector(0)', {"up"}),
        ("rate(foo[5m:1m]) unless absent(bar:baz_ratio) * inf", {"foo", "bar:baz_ratio"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names
