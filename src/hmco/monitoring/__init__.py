"""Monitoring: Prometheus metrics for quality gates and freshness (SLA) checks."""

from __future__ import annotations

from hmco.monitoring.metrics import HmcoMetrics, metrics_for

__all__ = ["HmcoMetrics", "metrics_for"]
