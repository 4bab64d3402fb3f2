"""``hmco serve`` in process: the schedule over a simulated day, APScheduler's own triggers, a real run of
every kind of job with its metrics scraped over loopback, and what the dashboard queries.

No sleeps for timing: the simulated day drives :meth:`Serve.once` with an injected clock; the live
scheduler is observed through events (its catch-up runs report to ``on_result``).
"""

from __future__ import annotations

import collections
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pytest
import yaml
from croniter import croniter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from hmco.config import Settings
from hmco.lake import Lake
from hmco.monitoring.dashboard import SCRAPE_SERIES, dashboard, exposed_metric_names, panel_metric_names
from hmco.schedule import JobResult, JobRunner, Serve, default_catalogue
from hmco.schedule.catalogue import Catalogue, Job
from tests.support.chdb import chdb_dir, chdb_home, unique_database

SATURDAY_2359 = datetime(2026, 11, 7, 23, 59, tzinfo=UTC)  # the simulated day is Sunday 2026-11-08 (UTC)


def _recorder(ran: collections.Counter[str]) -> dict[str, Any]:
    def record(job: Job, now: datetime) -> tuple[int, str]:
        ran[job.name] += 1
        return 0, "recorded"

    return dict.fromkeys(("pipeline", "realtime", "maintenance", "backup", "freshness"), record)


def _expected_fires(job: Job, start: datetime, end: datetime) -> int:
    """Fires in (start, end] by croniter — an engine independent of the APScheduler triggers serve uses."""
    it = croniter(job.cron.expression, start.astimezone(job.cron.tz))
    n = 0
    while it.get_next(datetime) <= end:
        n += 1
    return n


def test_over_a_simulated_day_serve_runs_each_job_the_expected_number_of_times(tmp_path: Path) -> None:
    lake = Lake(Settings.load(home=tmp_path / "hmco"))
    catalogue = default_catalogue()
    ran: collections.Counter[str] = collections.Counter()
    clock = [SATURDAY_2359]
    runner = JobRunner(
        catalogue, lake, registry=CollectorRegistry(), clock=lambda: clock[0], executors=_recorder(ran)
    )
    serve = Serve(runner, metrics_port=None)
    first = serve.once(SATURDAY_2359)  # first start: ingestion catches up at once, upkeep waits its turn
    assert {r.job for r in first} == {j.name for j in catalogue.of_kind("pipeline", "realtime", "freshness")}
    ran.clear()
    for minute in range(1, 24 * 60 + 1):
        clock[0] = SATURDAY_2359 + timedelta(minutes=minute)
        serve.once(clock[0])
    end = clock[0]
    expected = {j.name: _expected_fires(j, SATURDAY_2359, end) for j in catalogue}
    assert dict(ran) == {k: v for k, v in expected.items() if v}
    # the catalogue's real cadences, spelled out: 5-minute ISOs, hourly NOAA, daily sources, Sunday upkeep
    assert ran["caiso-rt-lmp"] == ran["miso-rt-lmp"] == ran["spp-rt-lmp"] == 288
    assert ran["noaa-observations-hourly"] == 24 and ran["freshness-watch"] == 24 * 60
    assert ran["eia-daily-fuel"] == ran["fred-energy-prices"] == ran["census-marts-monthly"] == 1
    assert all(ran[j.name] == 1 for j in catalogue.of_kind("maintenance", "backup"))


def test_a_missed_stretch_runs_each_job_once_when_serve_comes_back(tmp_path: Path) -> None:
    lake = Lake(Settings.load(home=tmp_path / "hmco"))
    catalogue = default_catalogue()
    ran: collections.Counter[str] = collections.Counter()
    runner = JobRunner(catalogue, lake, registry=CollectorRegistry(), executors=_recorder(ran))
    serve = Serve(runner, metrics_port=None)
    serve.once(SATURDAY_2359)
    ran.clear()
    # down from Saturday 23:59 to Monday 09:00: every job that fell due runs once, not once per missed fire
    back = SATURDAY_2359 + timedelta(days=1, hours=9, minutes=1)
    results = serve.once(back)
    assert all(r.outcome == "succeeded" for r in results)
    assert set(ran.values()) == {1}
    assert set(ran) == {j.name for j in catalogue if _expected_fires(j, SATURDAY_2359, back)}
    assert {j.name for j in catalogue.of_kind("maintenance")} <= set(ran)  # Sunday's upkeep was missed
    ran.clear()
    assert serve.once(back) == [] and not ran  # the same instant again: nothing is due


def test_apscheduler_fires_every_job_when_cron_says(tmp_path: Path) -> None:
    """The live scheduler's next fire of each job equals croniter's (weekday numbering, time zones)."""
    lake = Lake(Settings.load(home=tmp_path / "hmco"))
    catalogue = default_catalogue(timezone="America/Chicago")
    runner = JobRunner(
        catalogue, lake, registry=CollectorRegistry(), executors=_recorder(collections.Counter())
    )
    serve = Serve(runner, metrics_port=None)
    serve.start()
    try:
        fires = serve.next_fires()
        now = datetime.now(UTC)
    finally:
        serve.shutdown()
    assert set(fires) == {j.name for j in catalogue}
    for job in catalogue:
        after = croniter(job.cron.expression, (now - timedelta(seconds=90)).astimezone(job.cron.tz))
        candidates = [after.get_next(datetime) for _ in range(3)]
        assert fires[job.name] in candidates, (job.name, fires[job.name], candidates)
    sunday = fires["iceberg-compact"].astimezone(catalogue.get("iceberg-compact").cron.tz)
    assert (sunday.weekday(), sunday.hour) == (6, 4)  # Sunday 04:00 Chicago, not Monday (APScheduler's 0)


def _specs(directory: Path, start: datetime) -> Path:
    """Three synthetic pipelines (no network): a batch one, a real-time one, and one whose gate fails."""
    directory.mkdir()
    common = {"schedule": "*/5 * * * *", "window": "1h", "start": start.isoformat(), "retries": 0}
    specs = {
        "synth-batch": {"source": {"type": "synthetic_iso", "params": {"nodes": 10, "iso": "SYNTH"}}},
        "synth-rt": {
            "source": {"type": "synthetic_iso", "params": {"nodes": 10, "iso": "CAISO"}},
            "sinks": ["iceberg", "clickhouse"],
        },
        "synth-bad": {
            "source": {"type": "synthetic_iso", "params": {"nodes": 10, "iso": "SPP"}},
            "checks": {"lmp": {"min": -500, "max": 1}},  # synthetic prices are far above $1: the gate fails
        },
    }
    for name, spec in specs.items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **common, **spec}))
    return directory


def _scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url, timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} not exposed; have {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


@pytest.fixture
def live(tmp_path: Path) -> Any:
    """A runner over the synthetic catalogue on a lake whose backups chdb may write."""
    now = datetime(2026, 11, 10, 12, 1, tzinfo=UTC)
    settings = Settings.load(
        home=chdb_home() / unique_database("serve"),
        clickhouse={"interface": "chdb", "path": chdb_dir() / "data", "database": unique_database("serve")},
    )
    catalogue = default_catalogue(
        _specs(tmp_path / "specs", now.replace(minute=0) - timedelta(hours=3)),
        pipelines=["synth-batch", "synth-rt", "synth-bad"],
    )
    registry = CollectorRegistry()
    runner = JobRunner(catalogue, Lake(settings), registry=registry, clock=lambda: now)
    return runner, now


def test_metrics_served_on_loopback_carry_every_family_with_the_values_of_a_real_run(live: Any) -> None:
    runner, now = live
    results = {
        name: runner.run(name)
        for name in (
            "synth-batch",
            "synth-rt",
            "synth-bad",
            "iceberg-expire-snapshots",
            "backup-catalog",
            "backup-clickhouse-full",
            "freshness-watch",
        )
    }
    failed = {n: r.detail for n, r in results.items() if n != "synth-bad" and r.outcome != "succeeded"}
    assert not failed
    assert results["synth-bad"].outcome == "failed" and "lmp" in results["synth-bad"].detail

    serve = Serve(runner, metrics_port=0)
    serve.start()
    try:
        assert serve.metrics_url is not None and serve.metrics_url.startswith("http://127.0.0.1:")
        samples = _scrape(serve.metrics_url)
        text = httpx.get(serve.metrics_url, timeout=10).text
    finally:
        serve.shutdown()

    lake = runner.lake
    curated = lake.table("rt_lmp").scan().to_arrow()
    batch_rows = pc.sum(pc.equal(curated["iso"], "SYNTH")).as_py()
    assert batch_rows == 10 * 12 * 3  # 10 nodes x 12 intervals x 3 hours
    assert _value(samples, "hmco_ingest_rows_total", pipeline="synth-batch", dataset="rt_lmp") == batch_rows
    assert _value(samples, "hmco_ingest_bytes_total", pipeline="synth-batch", dataset="rt_lmp") > 0
    # the failing pipeline stops at its first window: one verdict, one quarantined batch, nothing published
    assert _value(samples, "hmco_quarantined_batches_total", pipeline="synth-bad", dataset="rt_lmp") == 1
    assert _value(samples, "hmco_quality_gate_total", dataset="rt_lmp", outcome="failed") == 1
    assert pc.sum(pc.equal(curated["iso"], "SPP")).as_py() == 0
    for job, kind in (("synth-batch", "pipeline"), ("synth-rt", "realtime"), ("backup-catalog", "backup")):
        assert _value(samples, "hmco_job_runs_total", hmco_job=job, kind=kind, outcome="succeeded") == 1
        assert (
            _value(samples, "hmco_job_last_success_timestamp_seconds", hmco_job=job, kind=kind)
            >= now.timestamp()
        )
    assert (
        _value(samples, "hmco_job_runs_total", hmco_job="synth-bad", kind="pipeline", outcome="failed") == 1
    )
    assert _value(samples, "hmco_job_duration_seconds_count", hmco_job="synth-batch", kind="pipeline") == 1
    # the real-time ISO: polled at `now`, its newest interval ends at 12:00, a minute before
    assert _value(samples, "hmco_rt_lag_seconds", iso="CAISO") == 60.0
    rt_rows = pc.sum(pc.equal(curated["iso"], "CAISO")).as_py()  # the runner's lake copy
    assert rt_rows > 0 and _value(samples, "hmco_rt_rows_written_total", iso="CAISO") == rt_rows
    # freshness per dataset and target, against the spec's SLA
    age = _value(samples, "hmco_freshness_age_seconds", dataset="rt_lmp", target="rt_lmp iso=CAISO")
    assert age == 60.0
    assert _value(samples, "hmco_freshness_ok", dataset="rt_lmp", target="rt_lmp iso=CAISO") == 1.0
    # upkeep and backups
    assert (
        _value(
            samples,
            "hmco_maintenance_last_run_timestamp_seconds",
            table="hub_curated.rt_lmp",
            action="expire_snapshots",
        )
        > 0
    )
    assert _value(samples, "hmco_backup_age_seconds", store="catalog") < 120
    assert _value(samples, "hmco_backup_age_seconds", store="clickhouse") < 120
    assert _value(samples, "hmco_serve_up") == 1.0
    assert _value(samples, "hmco_serve_heartbeat_timestamp_seconds") == now.timestamp()
    # and every metric the Grafana dashboard queries is on this page
    queried = panel_metric_names(dashboard(runner.catalogue)) - SCRAPE_SERIES
    missing = queried - exposed_metric_names(text)
    assert not missing, f"dashboard panels query metrics serve does not expose: {sorted(missing)}"


def test_shutdown_lets_a_running_job_finish_and_stops_firing(live: Any) -> None:
    runner, _ = live
    started, release = threading.Event(), threading.Event()
    done: list[JobResult] = []

    def slow(job: Job, now: datetime) -> tuple[int, str]:
        started.set()
        assert release.wait(30)
        return 7, "finished after shutdown began"

    catalogue = Catalogue((runner.catalogue.get("synth-batch"),))
    runner = JobRunner(catalogue, runner.lake, registry=CollectorRegistry(), executors={"pipeline": slow})
    serve = Serve(runner, metrics_port=None, on_result=done.append)
    serve.start()  # the job has never run: its catch-up run starts at once, on APScheduler's pool
    assert started.wait(30)
    stopper = threading.Thread(target=serve.shutdown)
    stopper.start()
    assert serve.stop_event.wait(5)  # shutdown began while the job runs
    assert stopper.is_alive()  # ... and waits for it
    release.set()
    stopper.join(30)
    assert not stopper.is_alive()
    assert [(r.job, r.outcome, r.rows) for r in done] == [("synth-batch", "succeeded", 7)]
    assert serve.scheduler is not None and not serve.scheduler.running
    assert runner.ledger.holder("synth-batch") is None  # the lease was released


def test_the_freshness_watch_posts_a_breach_then_its_recovery_to_the_webhook(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from hmco.monitoring.notify import WebhookNotifier
    from tests.support.webhook import TOKEN, WebhookReceiver

    now = datetime(2026, 11, 10, 12, 1, tzinfo=UTC)
    clock = [now]
    catalogue = default_catalogue(
        _specs(tmp_path / "specs", now.replace(minute=0) - timedelta(hours=1)), pipelines=["synth-batch"]
    )
    lake = Lake(Settings.load(home=tmp_path / "hmco"))
    with WebhookReceiver() as receiver:
        notifier = WebhookNotifier(
            SecretStr(receiver.url), clock=lambda: clock[0], registry=CollectorRegistry()
        )
        runner = JobRunner(
            catalogue, lake, registry=CollectorRegistry(), clock=lambda: clock[0], notifier=notifier
        )
        serve = Serve(runner, metrics_port=None)
        assert {r.job: r.outcome for r in serve.once(now)} == {
            "synth-batch": "succeeded",
            "freshness-watch": "succeeded",
        }
        assert receiver.received == []  # fresh: nothing to say
        clock[0] = now + timedelta(minutes=20)  # the newest interval ended at 12:00; the SLA is 10 minutes
        serve.once(clock[0], only=["freshness-watch"])
        [breach] = receiver.received
        assert "rt_lmp" in breach["text"] and "stale" in breach["text"].lower()
        assert "hmco schedule run synth-batch" in breach["text"]  # the runbook command
        serve.once(clock[0] + timedelta(minutes=1), only=["freshness-watch"])
        assert len(receiver.received) == 1  # still stale: not posted again
        clock[0] = now.replace(hour=18, minute=1)  # the pipeline's next run catches up; the watch recovers
        assert all(r.ok for r in serve.once(clock[0]))
        assert len(receiver.received) == 2
        recovery = receiver.received[1]
        assert "rt_lmp" in recovery["text"] and "recover" in recovery["text"].lower()
        assert all(TOKEN not in str(m) for m in receiver.received)
