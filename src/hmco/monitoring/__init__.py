"""Monitoring: Prometheus metrics for quality gates and freshness (SLA) checks.

It depends on no other hmco package: metrics take gate verdicts and freshness readings by shape
(protocols), so :mod:`hmco.quality` and :mod:`hmco.compose` record into it, never the other way round.
"""

from __future__ import annotations

from hmco.monitoring.metrics import FreshnessReading, GateVerdict, HmcoMetrics, metrics_for

__all__ = ["FreshnessReading", "GateVerdict", "HmcoMetrics", "metrics_for"]
