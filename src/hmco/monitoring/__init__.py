"""Monitoring: Prometheus metrics, alerting rules, the Grafana dashboard and the alert notifier.

It depends on no other hmco package: metrics take gate verdicts and freshness readings by shape
(protocols), and the rules and dashboard take the job catalogue by shape, so :mod:`hmco.quality`,
:mod:`hmco.compose` and :mod:`hmco.schedule` record into it, never the other way round.
"""

from __future__ import annotations

from hmco.monitoring.alerts import AlertThresholds, alert_rules, write_alert_rules
from hmco.monitoring.dashboard import dashboard, panel_metric_names, write_dashboard
from hmco.monitoring.metrics import FreshnessReading, GateVerdict, HmcoMetrics, metrics_for
from hmco.monitoring.notify import WebhookNotifier

__all__ = [
    "AlertThresholds",
    "FreshnessReading",
    "GateVerdict",
    "HmcoMetrics",
    "WebhookNotifier",
    "alert_rules",
    "dashboard",
    "metrics_for",
    "panel_metric_names",
    "write_alert_rules",
    "write_dashboard",
]
