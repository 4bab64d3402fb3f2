"""Prometheus metrics of the quality gate and of freshness checks.

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
==========================================  =========  =================================================

Prometheus refuses to register a metric name twice in one registry, so :func:`metrics_for` keeps one
:class:`HmcoMetrics` per registry; pass your own ``CollectorRegistry`` to isolate (tests, push jobs).

Monitoring sits below the packages it measures and imports none of them: it records anything shaped
like a gate verdict (:class:`GateVerdict`, e.g. :class:`hmco.quality.GateResult`) or a freshness
reading (:class:`FreshnessReading`, e.g. :class:`hmco.quality.FreshnessStatus`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = [
    "FailedExpectation",
    "FreshnessReading",
    "GateVerdict",
    "HmcoMetrics",
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
