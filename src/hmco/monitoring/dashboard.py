"""The Grafana dashboard of the platform (a JSON model), generated from the job catalogue.

Rows: ingest throughput per pipeline, real-time lag per ISO (with the 10-minute line), freshness age
against the SLA per dataset, the quality gate and quarantines, scheduled jobs, upkeep and backups.
Panels query a ``${DS_PROMETHEUS}`` data-source variable. Scheduled jobs are labelled ``hmco_job`` (``job``
is Prometheus's scrape label), so the job panels group by it.

:func:`panel_metric_names` lists every metric a panel queries, so a test can hold them against what
``hmco serve`` really exposes (:func:`exposed_metric_names` reads a /metrics page).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from hmco.monitoring.alerts import AlertThresholds, backup_store, job_iso
from hmco.monitoring.jobs import CatalogueJob

__all__ = [
    "DATASOURCE",
    "SCRAPE_SERIES",
    "dashboard",
    "exposed_metric_names",
    "metric_names_in",
    "panel_metric_names",
    "promql_metric_names",
    "write_dashboard",
]

#: Every panel's data source: the dashboard's Prometheus variable.
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
#: Series Prometheus makes itself for each scrape target (not on any /metrics page).
SCRAPE_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"})
_WIDTH = 24


class _Layout:
    """Hands out panel ids and gridPos, left to right, top to bottom, on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self._add({"type": "row", "title": title, "collapsed": False, "panels": []}, _WIDTH, 1)

    def add(self, panel: dict[str, Any], w: int = 12, h: int = 8) -> None:
        if self.x + w > _WIDTH:
            self._newline()
        self._add(panel, w, h)

    def _newline(self) -> None:
        self.y += self.row_h
        self.x = self.row_h = 0

    def _add(self, panel: dict[str, Any], w: int, h: int) -> None:
        panel = {"id": len(self.panels) + 1, **panel, "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y}}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def _target(expr: str, legend: str, ref: int) -> dict[str, Any]:
    return {"refId": chr(ord("A") + ref), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}


def _timeseries(
    title: str,
    targets: Iterable[tuple[str, str]],
    *,
    unit: str = "short",
    threshold: float | None = None,
    description: str = "",
) -> dict[str, Any]:
    """A time-series panel; ``threshold`` draws a red dashed line (the SLA, the 600 s lag, the RPO)."""
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if threshold is not None:
        steps.append({"color": "red", "value": threshold})
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [_target(e, legend, i) for i, (e, legend) in enumerate(targets)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": {"thresholdsStyle": {"mode": "dashed" if threshold is not None else "off"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
    }


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _ingest(lay: _Layout) -> None:
    lay.row("Ingest")
    rate = "sum by (pipeline) (rate({}[5m]))"
    lay.add(
        _timeseries(
            "Rows/s per pipeline", [(rate.format("hmco_ingest_rows_total"), "{{pipeline}}")], unit="rowsps"
        )
    )
    lay.add(
        _timeseries(
            "Bytes/s per pipeline", [(rate.format("hmco_ingest_bytes_total"), "{{pipeline}}")], unit="Bps"
        )
    )


def _realtime(lay: _Layout, realtime: list[CatalogueJob], t: AlertThresholds) -> None:
    if not realtime:
        return
    isos = [job_iso(j) for j in realtime]
    lag = t.rt_lag.total_seconds()
    lay.row("Real-time ISOs")
    lay.add(
        _timeseries(
            "Lag per ISO",
            [(f'hmco_rt_lag_seconds{{iso="{iso}"}}', iso) for iso in isos],
            unit="s",
            threshold=lag,
            description=f"Now minus the newest stored interval end; alerts above {lag:.0f} s.",
        ),
        w=8,
    )
    lay.add(
        _timeseries(
            "Rows written/s per ISO",
            [("sum by (iso) (rate(hmco_rt_rows_written_total[5m]))", "{{iso}}")],
            unit="rowsps",
        ),
        w=8,
    )
    lay.add(
        _timeseries(
            "Poll errors and gate failures per ISO (1h)",
            [
                ("sum by (iso) (increase(hmco_rt_poll_errors_total[1h]))", "errors {{iso}}"),
                ("sum by (iso) (increase(hmco_rt_gate_failures_total[1h]))", "gate {{iso}}"),
            ],
            threshold=t.gate_failures,
        ),
        w=8,
    )


def _freshness(lay: _Layout, ingestion: list[CatalogueJob]) -> None:
    lay.row("Freshness (age vs SLA + lag)")
    by_dataset: dict[str, list[CatalogueJob]] = {}
    for job in ingestion:
        if job.dataset and job.sla is not None:
            by_dataset.setdefault(job.dataset, []).append(job)
    for dataset, jobs in by_dataset.items():
        allowed = min((j.sla or timedelta(0)) + j.lag for j in jobs).total_seconds()
        lay.add(
            _timeseries(
                dataset,
                [
                    (f'hmco_freshness_age_seconds{{dataset="{dataset}"}}', "age {{target}}"),
                    (f'hmco_freshness_sla_seconds{{dataset="{dataset}"}}', "SLA {{target}}"),
                ],
                unit="s",
                threshold=allowed,
                description=f"Fed by {', '.join(j.name for j in jobs)}; allowed: {allowed:.0f} s.",
            ),
            w=8,
        )


def _quality(lay: _Layout) -> None:
    lay.row("Quality gate")
    lay.add(
        _timeseries(
            "Gate verdicts per dataset (1h)",
            [
                (
                    "sum by (dataset, outcome) (increase(hmco_quality_gate_total[1h]))",
                    "{{dataset}} {{outcome}}",
                )
            ],
        )
    )
    lay.add(
        _timeseries(
            "Quarantined batches (1h)",
            [
                (
                    "sum by (pipeline, dataset) (increase(hmco_quarantined_batches_total[1h]))",
                    "{{pipeline}} {{dataset}}",
                )
            ],
        )
    )


def _jobs(lay: _Layout) -> None:
    lay.row("Scheduled jobs")
    lay.add(
        _timeseries(
            "Runs by outcome (1h)",
            [
                (
                    "sum by (hmco_job, outcome) (increase(hmco_job_runs_total[1h]))",
                    "{{hmco_job}} {{outcome}}",
                )
            ],
        ),
        w=8,
    )
    lay.add(
        _timeseries(
            "Duration p95",
            [
                (
                    "histogram_quantile(0.95,"
                    " sum by (hmco_job, le) (rate(hmco_job_duration_seconds_bucket[1h])))",
                    "{{hmco_job}}",
                ),
            ],
            unit="s",
        ),
        w=8,
    )
    lay.add(
        _timeseries(
            "Mean duration and time since last success",
            [
                (
                    "sum by (hmco_job) (rate(hmco_job_duration_seconds_sum[1h]))"
                    " / sum by (hmco_job) (rate(hmco_job_duration_seconds_count[1h]))",
                    "mean {{hmco_job}}",
                ),
                ("time() - hmco_job_last_success_timestamp_seconds", "since success {{hmco_job}}"),
            ],
            unit="s",
        ),
        w=8,
    )


def _stat(title: str, targets: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A stat panel of 0/1 series: red at 0, green at 1."""
    steps = [{"color": "red", "value": None}, {"color": "green", "value": 1}]
    return {
        "type": "stat",
        "title": title,
        "datasource": DATASOURCE,
        "targets": [_target(e, legend, i) for i, (e, legend) in enumerate(targets)],
        "fieldConfig": {
            "defaults": {"unit": "none", "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
    }


def _upkeep(lay: _Layout, jobs: list[CatalogueJob], t: AlertThresholds) -> None:
    lay.row("Upkeep, backups and serve")
    lay.add(
        _timeseries(
            "Time since upkeep ran, per action",
            [
                ("time() - max by (action) (hmco_maintenance_last_run_timestamp_seconds)", "{{action}}"),
                ("sum by (action) (increase(hmco_maintenance_failures_total[1d]))", "failures {{action}}"),
            ],
            unit="s",
            threshold=t.maintenance_age.total_seconds(),
        ),
        w=6,
    )
    stores = _unique(backup_store(j) for j in jobs if j.kind == "backup")
    lay.add(
        _timeseries(
            "Backup age vs RPO, per store",
            [(f'hmco_backup_age_seconds{{store="{s}"}}', s) for s in stores]
            + [("time() - hmco_backup_last_success_timestamp_seconds", "since newest {{store}}")],
            unit="s",
            threshold=t.rpo.total_seconds(),
            description=f"The RPO is {t.rpo.total_seconds():.0f} s.",
        ),
        w=6,
    )
    lay.add(
        _timeseries(
            "Since serve's last heartbeat",
            [("time() - hmco_serve_heartbeat_timestamp_seconds", "{{instance}}")],
            unit="s",
            threshold=t.heartbeat_stale.total_seconds(),
        ),
        w=6,
    )
    lay.add(
        _stat(
            "hmco serve up",
            [
                (f'up{{job="{t.scrape_job}"}}', "scraped {{instance}}"),
                ("hmco_serve_up", "serving {{instance}}"),
            ],
        ),
        w=6,
    )


def dashboard(
    catalogue: Iterable[CatalogueJob],
    thresholds: AlertThresholds | None = None,
    *,
    title: str = "hmco platform",
) -> dict[str, Any]:
    """The Grafana dashboard JSON model (``schemaVersion`` 39) for ``catalogue``."""
    t = thresholds or AlertThresholds()
    jobs = list(catalogue)
    ingestion = [j for j in jobs if j.kind in ("pipeline", "realtime")]
    lay = _Layout()
    _ingest(lay)
    _realtime(lay, [j for j in ingestion if j.kind == "realtime"], t)
    _freshness(lay, ingestion)
    _quality(lay)
    _jobs(lay)
    _upkeep(lay, jobs, t)
    return {
        "uid": "hmco-platform",
        "title": title,
        "tags": ["hmco"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "timezone": "utc",
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "DS_PROMETHEUS",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "hide": 0,
                    "current": {},
                }
            ]
        },
        "panels": lay.panels,
    }


def write_dashboard(
    path: str | Path, catalogue: Iterable[CatalogueJob], thresholds: AlertThresholds | None = None
) -> Path:
    """Write :func:`dashboard` as JSON to ``path`` (for Grafana's import or provisioning); returns it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dashboard(catalogue, thresholds), indent=2) + "\n")
    return out


# --- which metrics a dashboard queries --------------------------------------------------------------

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*=\s*("(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\')')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_VARIABLE = re.compile(r"\$(?:\{[^}]*\}|\w+)")
_IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}
    | {"atan2", "inf", "nan", "start", "end"}
)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords, labels or their values)."""
    names = {json.loads(m) if m.startswith('"') else m[1:-1] for m in _NAME_MATCHER.findall(expr)}
    text = _STRING.sub('""', expr)
    text = _GROUPING.sub(" ", text)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def _panels(panels: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", ()))  # a collapsed row holds its panels


def panel_metric_names(board: Mapping[str, Any]) -> set[str]:
    """Every metric name the panels' target ``expr``s query (``_bucket``/``_sum``/``_count`` as written)."""
    return {
        name
        for panel in _panels(board.get("panels", ()))
        for target in panel.get("targets", ())
        for name in promql_metric_names(str(target.get("expr", "")))
    }


#: The name the lead's /metrics test looks for; the same as :func:`panel_metric_names`.
metric_names_in = panel_metric_names


def exposed_metric_names(exposition: str) -> set[str]:
    """The sample names a /metrics page exposes; a family with no series yet counts by its type.

    A labelled family shows only ``# TYPE`` until its first series exists: a counter then stands for
    ``<name>_total``, a histogram for its ``_bucket``, ``_sum`` and ``_count``, a summary for ``_sum``
    and ``_count``.
    """
    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        if family.samples:
            names.update(s.name for s in family.samples)
        elif family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        elif family.type == "summary":
            names.update(f"{family.name}{suffix}" for suffix in ("", "_sum", "_count"))
        else:
            names.add(family.name)
    return names
