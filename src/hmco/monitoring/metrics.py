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
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from hmco.quality.freshness import FreshnessStatus
    from hmco.quality.gate import GateResult

__all__ = ["HmcoMetrics", "gate_outcome", "metrics_for"]

_lock = threading.Lock()
_by_registry: dict[int, HmcoMetrics] = {}


def gate_outcome(result: GateResult) -> str:
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

    def record_gate(self, result: GateResult) -> str:
        """Count one gate verdict and its failed expectations; returns the outcome label."""
        outcome = gate_outcome(result)
        self.gate_total.labels(dataset=result.dataset, outcome=outcome).inc()
        self.gate_rows.labels(dataset=result.dataset).inc(result.row_count)
        for failed in [*result.failed, *result.warnings]:
            self.expectation_failures.labels(
                dataset=result.dataset, expectation=failed.name, severity=failed.severity
            ).inc()
        return outcome

    def record_freshness(self, status: FreshnessStatus) -> None:
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
