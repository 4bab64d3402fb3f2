"""The generated alerting rules, checked and unit-tested by Prometheus's own promtool.

One promtool test group per (rule, breach): a healthy world of series with the rule's breach written
over it. The alert must still be pending one minute before ``fire_at + for`` and firing, with exactly
its labels and annotations, at it. A group of the healthy world alone expects no alert at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from hmco.maintenance.backup_records import DEFAULT_RPO
from hmco.monitoring.alerts import (
    DEFAULT_RPO as ALERTS_RPO,
)
from hmco.monitoring.alerts import (
    AlertThresholds,
    alert_rules,
    backup_max_age,
    backup_store,
    job_iso,
    write_alert_rules,
)
from hmco.schedule.catalogue import Catalogue, Job, default_catalogue
from tests.support.promtool import promtool, run_promtool  # noqa: F401

CATALOGUE = default_catalogue(replication=True)  # every backup store, the lake's too
MINUTES = 150  # series length; the slowest rule (upkeep, for: 1h) fires at minute 71
SCRAPE = {"job": "hmco-serve", "instance": "serve:9108"}
Values = list[float]


def _labels(**labels: str) -> dict[str, str]:
    return {**labels, **SCRAPE}


def _series(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def const(v: float) -> Values:
    return [v] * (MINUTES + 1)


def now() -> Values:
    """A timestamp that keeps up with promtool's clock (time() is seconds since the test's start)."""
    return [60.0 * k for k in range(MINUTES + 1)]


def until(k: int, before: Values, after: Values) -> Values:
    """``before`` up to minute ``k - 1``, ``after`` from minute ``k``."""
    return before[:k] + after[k:]


def _target(job: Job) -> str:
    return f"rt_lmp iso={job_iso(job)}" if job.kind == "realtime" else f"curated.{job.dataset}"


def healthy(catalogue: Catalogue) -> dict[str, tuple[str, dict[str, str], Values]]:
    """Every series the rules read, at values no rule fires on (two gate failures: under the threshold)."""
    world: dict[str, tuple[str, dict[str, str], Values]] = {}

    def put(key: str, name: str, labels: dict[str, str], values: Values) -> None:
        world[key] = (name, labels, values)

    put("up", "up", dict(SCRAPE), const(1))
    put("heartbeat", "hmco_serve_heartbeat_timestamp_seconds", dict(SCRAPE), now())
    for job in catalogue.ingestion:
        assert job.dataset is not None
        fresh = _labels(dataset=job.dataset, target=_target(job))
        put(f"ok:{job.name}", "hmco_freshness_ok", fresh, const(1))
        put(f"age:{job.name}", "hmco_freshness_age_seconds", fresh, const(60))
        failed = _labels(dataset=job.dataset, outcome="failed")
        put(f"gate:{job.dataset}", "hmco_quality_gate_total", failed, until(10, const(0), const(2)))
    for job in catalogue.of_kind("realtime"):
        iso = _labels(iso=job_iso(job))
        put(f"lag:{job.name}", "hmco_rt_lag_seconds", iso, const(120))
        put(f"poll:{job.name}", "hmco_rt_last_poll_timestamp_seconds", iso, now())
        put(f"rtgate:{job.name}", "hmco_rt_gate_failures_total", iso, until(10, const(0), const(2)))
    for job in catalogue.of_kind("backup"):
        store = _labels(store=backup_store(job))
        put(f"backup:{store['store']}", "hmco_backup_last_success_timestamp_seconds", store, now())
        put(f"backup-age:{store['store']}", "hmco_backup_age_seconds", store, const(60))
    for job in catalogue.of_kind("maintenance"):
        upkeep = _labels(table="curated.eia_daily_fuel", action=str(job.action))
        put(f"upkeep:{job.action}", "hmco_maintenance_last_run_timestamp_seconds", upkeep, now())
    return world


@dataclass
class Breach:
    """The series written over the healthy world so that one rule fires, from minute ``fire_at`` on."""

    rule: dict[str, Any]
    what: str
    fire_at: int
    changes: dict[str, Values | None]  # key of the healthy world -> new values (None: the series is gone)
    labels: dict[str, str] = field(default_factory=dict)  # the labels the expression's result carries


def _rule(rules: dict[str, Any], alert: str, **labels: str) -> dict[str, Any]:
    found = [
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r["alert"] == alert and all(r["labels"].get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (alert, labels, found)
    return found[0]


def breaches(catalogue: Catalogue, rules: dict[str, Any]) -> Iterator[Breach]:
    """At least one breach of every rule."""
    for job in catalogue.ingestion:
        assert job.dataset is not None and job.sla is not None
        allowed = (job.sla + job.lag).total_seconds()
        rule = _rule(rules, "HmcoDatasetStale", hmco_job=job.name)
        fresh = _labels(dataset=job.dataset, target=_target(job))
        # the age passes SLA + lag between minutes 5 and 6 (the checker's own verdict is still "ok")
        rising = [allowed - 300 + 60 * k for k in range(MINUTES + 1)]
        yield Breach(rule, "older than its SLA", 6, {f"age:{job.name}": rising}, fresh)
        empty = {f"ok:{job.name}": until(10, const(1), const(0)), f"age:{job.name}": const(math.nan)}
        yield Breach(rule, "empty", 10, empty, fresh)
    for dataset in dict.fromkeys(j.dataset for j in catalogue.ingestion):
        assert dataset is not None
        gone: dict[str, Values | None] = {
            f"{kind}:{j.name}": None
            for j in catalogue.ingestion
            if j.dataset == dataset
            for kind in ("ok", "age")
        }
        rule = _rule(rules, "HmcoFreshnessUnknown", dataset=dataset)
        yield Breach(rule, "never measured", 0, gone, {"dataset": dataset})
        failing = {f"gate:{dataset}": until(10, const(0), const(3))}
        yield Breach(
            _rule(rules, "HmcoGateFailing", dataset=dataset), "3 failures", 10, failing, {"dataset": dataset}
        )
    for job in catalogue.of_kind("realtime"):
        iso = job_iso(job)
        labels = _labels(iso=iso)
        behind = {f"lag:{job.name}": until(5, const(120), const(math.inf))}
        yield Breach(_rule(rules, "HmcoRealtimeLagHigh", iso=iso), "no data", 5, behind, labels)
        behind = {f"lag:{job.name}": until(5, const(120), const(601))}
        yield Breach(_rule(rules, "HmcoRealtimeLagHigh", iso=iso), "601 s", 5, behind, labels)
        # the last poll stays at minute 10: 900 s old after minute 25
        stalled = {f"poll:{job.name}": until(10, now(), const(600))}
        yield Breach(_rule(rules, "HmcoRealtimePollerStalled", iso=iso), "stalled", 26, stalled, labels)
        failing = {f"rtgate:{job.name}": until(10, const(0), const(3))}
        yield Breach(
            _rule(rules, "HmcoRealtimeGateFailing", iso=iso), "3 failures", 10, failing, {"iso": iso}
        )
    for store in dict.fromkeys(backup_store(j) for j in catalogue.of_kind("backup")):
        rule = _rule(rules, "HmcoBackupOlderThanRpo", store=store)
        labels = _labels(store=store)
        # the store's limit (the RPO for the lake's replication, a day plus the job's timeout for the
        # daily backups) passes at minute 10, and the age gauge is no longer refreshed
        limit = backup_max_age(catalogue, store, AlertThresholds()).total_seconds()
        old = {f"backup:{store}": const(-limit + 600)}
        yield Breach(rule, "older than its limit", 11, old, labels)
        none = {f"backup:{store}": const(math.nan), f"backup-age:{store}": const(math.inf)}
        yield Breach(rule, "no backup", 0, none, labels)
    limit = AlertThresholds().maintenance_age.total_seconds()
    for job in catalogue.of_kind("maintenance"):
        action = str(job.action)
        rule = _rule(rules, "HmcoMaintenanceOverdue", action=action)
        # last ran 8 days minus 10 minutes before the test's start: overdue after minute 10
        overdue = {f"upkeep:{action}": const(-limit + 600)}
        yield Breach(rule, "8 days", 11, overdue, _labels(table="curated.eia_daily_fuel", action=action))
    yield Breach(
        _rule(rules, "HmcoServeDown"), "down", 10, {"up": until(10, const(1), const(0))}, dict(SCRAPE)
    )
    yield Breach(_rule(rules, "HmcoServeAbsent"), "not scraped", 0, {"up": None}, {"job": "hmco-serve"})
    stuck = {"heartbeat": until(10, now(), const(600))}  # 300 s old after minute 15
    yield Breach(_rule(rules, "HmcoServeHeartbeatStale"), "stuck", 16, stuck, dict(SCRAPE))


def _minutes(duration: str) -> int:
    seconds = int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]
    assert seconds % 60 == 0, f"promtool evaluates every minute; for: {duration}"
    return seconds // 60


_LABEL_REF = re.compile(r"\{\{ \$labels\.(\w+) \}\}")


def _render(template: str, labels: dict[str, str]) -> str:
    """Prometheus's expansion of ``{{ $labels.x }}`` (the only template the rules use)."""
    assert "{{" not in _LABEL_REF.sub("", template), f"unexpected template in {template!r}"
    return _LABEL_REF.sub(lambda m: labels.get(m.group(1), ""), template)


def _input(
    world: dict[str, tuple[str, dict[str, str], Values]], changes: dict[str, Values | None]
) -> list[Any]:
    out = []
    for key, (name, labels, values) in world.items():
        if key in changes:
            new = changes[key]
            if new is None:
                continue
            values = new
        out.append({"series": _series(name, labels), "values": " ".join(map(_fmt, values))})
    return out


def unit_tests(catalogue: Catalogue, rules: dict[str, Any], rules_file: str) -> tuple[dict[str, Any], int]:
    """promtool's test file, and how many rules its breaches cover."""
    world = healthy(catalogue)
    alertnames = sorted({r["alert"] for g in rules["groups"] for r in g["rules"]})
    groups: list[dict[str, Any]] = [
        {
            "name": "healthy: nothing fires",
            "interval": "1m",
            "input_series": _input(world, {}),
            "alert_rule_test": [
                {"eval_time": f"{t}m", "alertname": name, "exp_alerts": []}
                for t in (5, 60, MINUTES)
                for name in alertnames
            ],
        }
    ]
    covered: set[int] = set()
    for b in breaches(catalogue, rules):
        covered.add(id(b.rule))
        fires = b.fire_at + _minutes(b.rule["for"])
        expected = {
            "exp_labels": {**b.labels, **b.rule["labels"]},
            "exp_annotations": {k: _render(v, b.labels) for k, v in b.rule["annotations"].items()},
        }
        name = b.rule["alert"]
        groups.append(
            {
                "name": f"{name} {b.rule['labels']}: {b.what}",
                "interval": "1m",
                "input_series": _input(world, b.changes),
                "alert_rule_test": [
                    {"eval_time": f"{fires - 1}m", "alertname": name, "exp_alerts": []},
                    {"eval_time": f"{fires}m", "alertname": name, "exp_alerts": [expected]},
                ],
            }
        )
    return {"rule_files": [rules_file], "evaluation_interval": "1m", "tests": groups}, len(covered)


def _all_rules(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in rules["groups"] for r in g["rules"]]


def test_promtool_checks_the_generated_rules(tmp_path: Path, promtool: Path) -> None:  # noqa: F811
    path = write_alert_rules(tmp_path / "hmco-alerts.yml", CATALOGUE)
    result = run_promtool(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_all_rules(alert_rules(CATALOGUE)))} rules found" in result.stdout


def test_every_rule_fires_on_its_breach_at_the_right_time_and_not_when_healthy(
    tmp_path: Path,
    promtool: Path,  # noqa: F811
) -> None:
    rules = yaml.safe_load(write_alert_rules(tmp_path / "hmco-alerts.yml", CATALOGUE).read_text())
    tests, covered = unit_tests(CATALOGUE, rules, "hmco-alerts.yml")
    assert covered == len(_all_rules(rules)), "a rule has no breach in the promtool tests"
    (tmp_path / "hmco-alerts.test.yml").write_text(yaml.safe_dump(tests, sort_keys=False, width=100_000))
    result = run_promtool(promtool, "test", "rules", "hmco-alerts.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]


def test_rules_follow_the_catalogue() -> None:
    """Thresholds and runbooks come from the catalogue: the SLA + lag, the job's runbook, the store."""
    rules = alert_rules(CATALOGUE)
    eia = CATALOGUE.get("eia-daily-fuel")
    stale = _rule(rules, "HmcoDatasetStale", dataset="eia_daily_fuel")
    assert stale["expr"] == (
        'hmco_freshness_ok{dataset="eia_daily_fuel"} == 0'
        ' or hmco_freshness_age_seconds{dataset="eia_daily_fuel"} > 52200'
    )
    assert stale["annotations"]["runbook"] == eia.runbook == "hmco schedule run eia-daily-fuel"
    caiso = _rule(rules, "HmcoRealtimeLagHigh", iso="CAISO")
    assert caiso["expr"] == 'hmco_rt_lag_seconds{iso="CAISO"} > 600'
    assert caiso["labels"]["severity"] == "critical"
    assert _rule(rules, "HmcoBackupOlderThanRpo", store="clickhouse")["annotations"]["runbook"] == (
        "hmco backup run clickhouse"
    )
    assert _rule(rules, "HmcoMaintenanceOverdue", action="compact")["annotations"]["runbook"] == (
        "hmco maintain --action compact"
    )
    assert {r["annotations"]["runbook"] for r in rules["groups"][-1]["rules"]} == {"hmco serve"}
    for rule in _all_rules(rules):
        assert rule["for"] and rule["labels"]["severity"] in ("critical", "warning"), rule
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}, rule
        assert rule["annotations"]["runbook"].startswith("hmco "), rule


def test_scrape_job_and_rpo_are_parameters() -> None:
    assert ALERTS_RPO == DEFAULT_RPO  # monitoring cannot import maintenance; the two must agree
    rules = alert_rules(CATALOGUE, AlertThresholds(scrape_job="serve-eu", rpo=timedelta(hours=1)))
    assert _rule(rules, "HmcoServeDown")["expr"] == 'up{job="serve-eu"} == 0'
    assert _rule(rules, "HmcoServeAbsent")["expr"] == 'absent(up{job="serve-eu"})'
    assert "> 3600" in _rule(rules, "HmcoBackupOlderThanRpo", store="lake")["expr"]  # replicated every 15 min
    # the daily backups: a day plus the job's 2 h timeout, whatever the RPO
    assert "> 93600" in _rule(rules, "HmcoBackupOlderThanRpo", store="catalog")["expr"]
    assert "> 1800" in _rule(alert_rules(CATALOGUE), "HmcoBackupOlderThanRpo", store="lake")["expr"]
    without_lake = alert_rules(default_catalogue())
    stores = {r["labels"].get("store") for r in _all_rules(without_lake)} - {None}
    assert stores == {"clickhouse", "catalog"}
