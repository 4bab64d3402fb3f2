"""Prometheus metrics of the quality gate, of freshness checks and of lake upkeep.

==========================================  =========  =================================================
metric                                      type       labels
==========================================  =========  =================================================
``hmco_quality_gate_total``                 counter    dataset, outcome (passed | warned | failed)
``hmco_quality_expectation_failures_total`` counter    dataset, expectation, severity
``hmco_quality_gate_rows_total``            counter    dataset
``hmco_freshness_age_seconds``              gauge      dataset, target (NaN when empty)
``hmco_freshness_ok``                       gauge      dataset, target (1 fresh, 0 stale/empty)
``hmco_freshness_newest_timestamp_seconds`` gauge      dataset, target
``hmco_freshness_sla_seconds``              gauge      dataset, target
``hmco_maintenance_last_run_timestamp_seconds``  gauge  table, action (Unix time of the last run)
``hmco_maintenance_duration_seconds``       gauge      table, action (the last run's)
``hmco_maintenance_files_removed_total``    counter    table, action
``hmco_maintenance_bytes_removed_total``    counter    table, action
``hmco_maintenance_failures_total``         counter    table, action
``hmco_ingest_rows_total``                  counter    pipeline, dataset (rows published by a window)
``hmco_ingest_bytes_total``                 counter    pipeline, dataset (Arrow bytes published)
``hmco_quarantined_batches_total``          counter    pipeline, dataset
``hmco_job_runs_total``                     counter    hmco_job, kind, outcome (succeeded | failed | skipped)
``hmco_job_duration_seconds``               histogram  hmco_job, kind
``hmco_job_last_run_timestamp_seconds``     gauge      hmco_job, kind (Unix time the last run ended)
``hmco_job_last_success_timestamp_seconds`` gauge      hmco_job, kind
``hmco_backup_last_success_timestamp_seconds`` gauge   store (clickhouse | catalog | lake)
``hmco_backup_age_seconds``                 gauge      store (now minus the newest restorable point)
``hmco_serve_up``                           gauge      (1 while ``hmco serve`` runs)
``hmco_serve_heartbeat_timestamp_seconds``  gauge      (Unix time of serve's last scheduler tick)
``hmco_notifications_total``                counter    kind (breach | recovery), outcome (sent | failed)
``hmco_rt_lag_seconds``                     gauge      iso (registered by the real-time runner)
``hmco_rt_gate_failures_total``             counter    iso (registered by the real-time runner)
==========================================  =========  =================================================

Prometheus refuses to register a metric name twice in one registry, so :func:`metrics_for` keeps one
:class:`HmcoMetrics` per registry; pass your own ``CollectorRegistry`` to isolate (tests, push jobs).

Monitoring sits below the packages it measures and imports none of them: it records anything shaped
like a gate verdict (:class:`GateVerdict`, e.g. :class:`hmco.quality.GateResult`) or a freshness
reading (:class:`FreshnessReading`, e.g. :class:`hmco.quality.FreshnessStatus`) or an upkeep action
(:class:`MaintenanceAction`, e.g. :class:`hmco.maintenance.ActionReport`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "FailedExpectation",
    "FreshnessReading",
    "GateVerdict",
    "HmcoMetrics",
    "MaintenanceAction",
    "gate_outcome",
    "metrics_for",
]


class FailedExpectation(Protocol):
    """An expectation that failed on a batch."""

    @property
    def name(self) -> str: ...
    @property
    def severity(self) -> str: ...


class GateVerdict(Protocol):
    """What a quality gate concluded about one batch."""

    @property
    def dataset(self) -> str: ...
    @property
    def row_count(self) -> int: ...
    @property
    def passed(self) -> bool: ...
    @property
    def failed(self) -> Sequence[FailedExpectation]: ...
    @property
    def warnings(self) -> Sequence[FailedExpectation]: ...


class FreshnessReading(Protocol):
    """One dataset's (slice's) freshness."""

    @property
    def dataset(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def newest(self) -> datetime | None: ...
    @property
    def age(self) -> timedelta | None: ...
    @property
    def ok(self) -> bool: ...
    @property
    def sla(self) -> timedelta: ...
    @property
    def lag(self) -> timedelta: ...


class MaintenanceAction(Protocol):
    """One upkeep action on one table, as :class:`hmco.maintenance.ActionReport` reports it."""

    @property
    def action(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def removed_files(self) -> int: ...
    @property
    def removed_bytes(self) -> int: ...
    @property
    def seconds(self) -> float: ...


_lock = threading.Lock()
_by_registry: dict[int, HmcoMetrics] = {}


def gate_outcome(result: GateVerdict) -> str:
    """``failed`` (error-level failures), ``warned`` (only warn-level ones) or ``passed``."""
    if not result.passed:
        return "failed"
    return "warned" if result.warnings else "passed"


class HmcoMetrics:
    """The hmco metric families, registered in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else REGISTRY
        reg = self.registry
        self.gate_total = Counter(
            "hmco_quality_gate", "Quality-gate verdicts on batches", ["dataset", "outcome"], registry=reg
        )
        self.expectation_failures = Counter(
            "hmco_quality_expectation_failures",
            "Failed expectations by name and severity",
            ["dataset", "expectation", "severity"],
            registry=reg,
        )
        self.gate_rows = Counter(
            "hmco_quality_gate_rows", "Rows checked by the quality gate", ["dataset"], registry=reg
        )
        labels = ["dataset", "target"]
        self.freshness_age = Gauge(
            "hmco_freshness_age_seconds",
            "Seconds since the newest data stopped being current",
            labels,
            registry=reg,
        )
        self.freshness_ok = Gauge(
            "hmco_freshness_ok", "1 when the dataset is within its SLA", labels, registry=reg
        )
        self.freshness_newest = Gauge(
            "hmco_freshness_newest_timestamp_seconds", "Unix time of the newest data", labels, registry=reg
        )
        self.freshness_sla = Gauge(
            "hmco_freshness_sla_seconds", "The SLA (plus publication lag) in seconds", labels, registry=reg
        )

        upkeep = ["table", "action"]
        self.maintenance_last_run = Gauge(
            "hmco_maintenance_last_run_timestamp_seconds",
            "Unix time an upkeep action last ran on a table",
            upkeep,
            registry=reg,
        )
        self.maintenance_duration = Gauge(
            "hmco_maintenance_duration_seconds", "Seconds the last upkeep action took", upkeep, registry=reg
        )
        self.maintenance_files_removed = Counter(
            "hmco_maintenance_files_removed", "Files removed from storage by upkeep", upkeep, registry=reg
        )
        self.maintenance_bytes_removed = Counter(
            "hmco_maintenance_bytes_removed", "Bytes removed from storage by upkeep", upkeep, registry=reg
        )
        self.maintenance_failures = Counter(
            "hmco_maintenance_failures", "Upkeep actions that failed", upkeep, registry=reg
        )

        ingest = ["pipeline", "dataset"]
        self.ingest_rows = Counter(
            "hmco_ingest_rows", "Rows published to the lake or store, per pipeline", ingest, registry=reg
        )
        self.ingest_bytes = Counter(
            "hmco_ingest_bytes", "Arrow bytes published, per pipeline", ingest, registry=reg
        )
        self.quarantined = Counter(
            "hmco_quarantined_batches",
            "Batches the gate (or the schema) stopped and quarantined",
            ingest,
            registry=reg,
        )
        job = ["hmco_job", "kind"]  # not "job": Prometheus's scrape label would rename it exported_job
        self.job_runs = Counter(
            "hmco_job_runs", "Scheduled job runs by outcome", [*job, "outcome"], registry=reg
        )
        self.job_duration = Histogram(
            "hmco_job_duration_seconds",
            "Seconds a scheduled job run took",
            job,
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600),
            registry=reg,
        )
        self.job_last_run = Gauge(
            "hmco_job_last_run_timestamp_seconds", "Unix time a job's last run ended", job, registry=reg
        )
        self.job_last_success = Gauge(
            "hmco_job_last_success_timestamp_seconds",
            "Unix time a job last succeeded",
            job,
            registry=reg,
        )
        self.backup_last_success = Gauge(
            "hmco_backup_last_success_timestamp_seconds",
            "Unix time of the newest restorable backup, per store",
            ["store"],
            registry=reg,
        )
        self.backup_age = Gauge(
            "hmco_backup_age_seconds",
            "Seconds since the newest restorable backup, per store (inf: none)",
            ["store"],
            registry=reg,
        )
        self.serve_up = Gauge("hmco_serve_up", "1 while hmco serve is running", registry=reg)
        self.serve_heartbeat = Gauge(
            "hmco_serve_heartbeat_timestamp_seconds", "Unix time of serve's last tick", registry=reg
        )
        self.notifications = Counter(
            "hmco_notifications", "Alert notifications posted", ["kind", "outcome"], registry=reg
        )

    def record_ingest(self, pipeline: str, dataset: str, rows: int, nbytes: int) -> None:
        """Count rows and bytes one window published."""
        self.ingest_rows.labels(pipeline=pipeline, dataset=dataset).inc(rows)
        self.ingest_bytes.labels(pipeline=pipeline, dataset=dataset).inc(nbytes)

    def record_quarantine(self, pipeline: str, dataset: str) -> None:
        self.quarantined.labels(pipeline=pipeline, dataset=dataset).inc()

    def record_job(self, job: str, kind: str, outcome: str, seconds: float, *, at: datetime) -> None:
        """One scheduled run: its outcome (succeeded | failed | skipped), duration and end time."""
        self.job_runs.labels(hmco_job=job, kind=kind, outcome=outcome).inc()
        if outcome == "skipped":
            return
        self.job_duration.labels(hmco_job=job, kind=kind).observe(seconds)
        self.job_last_run.labels(hmco_job=job, kind=kind).set(at.timestamp())
        if outcome == "succeeded":
            self.job_last_success.labels(hmco_job=job, kind=kind).set(at.timestamp())

    def record_backup(self, store: str, newest: datetime | None, *, now: datetime) -> None:
        """The newest restorable point of ``store`` and its age at ``now``."""
        if newest is None:
            self.backup_last_success.labels(store=store).set(math.nan)
            self.backup_age.labels(store=store).set(math.inf)
            return
        self.backup_last_success.labels(store=store).set(newest.timestamp())
        self.backup_age.labels(store=store).set(max(0.0, (now - newest).total_seconds()))

    def record_maintenance(self, action: MaintenanceAction, *, at: datetime | None = None) -> None:
        """Record one upkeep action: when it ran, how long, what it removed, whether it failed."""
        labels = {"table": action.table, "action": action.action}
        when = at or datetime.now().astimezone()
        self.maintenance_last_run.labels(**labels).set(when.timestamp())
        self.maintenance_duration.labels(**labels).set(action.seconds)
        self.maintenance_files_removed.labels(**labels).inc(action.removed_files)
        self.maintenance_bytes_removed.labels(**labels).inc(action.removed_bytes)
        failures = self.maintenance_failures.labels(**labels)  # present (0) once a table has been maintained
        if not action.ok:
            failures.inc()

    def record_gate(self, result: GateVerdict) -> str:
        """Count one gate verdict and its failed expectations; returns the outcome label."""
        outcome = gate_outcome(result)
        self.gate_total.labels(dataset=result.dataset, outcome=outcome).inc()
        self.gate_rows.labels(dataset=result.dataset).inc(result.row_count)
        for failed in [*result.failed, *result.warnings]:
            self.expectation_failures.labels(
                dataset=result.dataset, expectation=failed.name, severity=failed.severity
            ).inc()
        return outcome

    def record_freshness(self, status: FreshnessReading) -> None:
        """Set the freshness gauges of one dataset (slice)."""
        labels = {"dataset": status.dataset, "target": status.target}
        age = status.age
        self.freshness_age.labels(**labels).set(age.total_seconds() if age is not None else math.nan)
        self.freshness_ok.labels(**labels).set(1.0 if status.ok else 0.0)
        newest = status.newest.timestamp() if status.newest is not None else math.nan
        self.freshness_newest.labels(**labels).set(newest)
        self.freshness_sla.labels(**labels).set((status.sla + status.lag).total_seconds())


def metrics_for(registry: CollectorRegistry | None = None) -> HmcoMetrics:
    """The :class:`HmcoMetrics` of ``registry`` (default: prometheus_client's global registry)."""
    reg = registry if registry is not None else REGISTRY
    with _lock:
        metrics = _by_registry.get(id(reg))
        if metrics is None or metrics.registry is not reg:
            metrics = HmcoMetrics(reg)
            _by_registry[id(reg)] = metrics
        return metrics
