"""Prometheus alerting rules for the platform, generated from the job catalogue.

One rule per ingestion job (freshness against its SLA + lag), per real-time ISO (lag, a stalled poller),
per dataset (repeated gate failures, freshness never measured), per backup store (older than the RPO),
per upkeep action (not run for 8 days), and ``hmco serve`` being down. Every alert carries a
``severity`` and a ``runbook`` annotation: the hmco command a person runs when it fires.

Monitoring imports nothing of hmco above it, so the catalogue is taken by shape (:class:`CatalogueJob`,
e.g. :class:`hmco.schedule.catalogue.Job`)::

    write_alert_rules("hmco-alerts.yml", default_catalogue())
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from hmco.monitoring.jobs import CatalogueJob
from hmco.windows import format_duration

__all__ = [
    "DEFAULT_RPO",
    "DEFAULT_SCRAPE_JOB",
    "AlertThresholds",
    "alert_rules",
    "backup_max_age",
    "backup_store",
    "job_iso",
    "prom_duration",
    "write_alert_rules",
]

#: The Prometheus scrape job of ``hmco serve``'s /metrics.
DEFAULT_SCRAPE_JOB = "hmco-serve"
#: The platform's RPO; the same value as :data:`hmco.maintenance.backup_records.DEFAULT_RPO` (monitoring
#: sits below maintenance and cannot import it; a test keeps the two equal).
DEFAULT_RPO = timedelta(minutes=30)


@dataclass(frozen=True)
class AlertThresholds:
    """What counts as broken: shared by the alerting rules and the dashboard's threshold lines."""

    scrape_job: str = DEFAULT_SCRAPE_JOB
    rpo: timedelta = DEFAULT_RPO
    rt_lag: timedelta = timedelta(minutes=10)
    #: A real-time ISO not polled for this long has a stuck or dead poller (three 5-minute cadences).
    rt_poll_stale: timedelta = timedelta(minutes=15)
    maintenance_age: timedelta = timedelta(days=8)
    gate_failures: int = 3
    gate_window: timedelta = timedelta(hours=1)
    #: ``serve`` ticks at least every minute; a heartbeat this old means its scheduler loop is stuck.
    heartbeat_stale: timedelta = timedelta(minutes=5)


def prom_duration(delta: timedelta) -> str:
    """``delta`` in Prometheus's duration syntax, in its largest exact unit (``52200s`` → ``870m``)."""
    seconds = int(delta.total_seconds())
    if seconds != delta.total_seconds() or seconds < 0:
        raise ValueError(f"a Prometheus duration is a whole, non-negative number of seconds: {delta}")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def job_iso(job: CatalogueJob) -> str:
    """The ISO code a real-time job polls (``CAISO``), as its metrics are labelled."""
    return str(job.iso)


def backup_store(job: CatalogueJob) -> str:
    """The store a backup job backs up: ``clickhouse`` (of ``clickhouse:full``), ``catalog``, ``lake``."""
    return (job.action or job.name).split(":", 1)[0]


def _rule(
    alert: str,
    expr: str,
    for_: timedelta,
    labels: dict[str, str],
    summary: str,
    description: str,
    runbook: str,
) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": prom_duration(for_),
        "labels": labels,
        "annotations": {"summary": summary, "description": description, "runbook": runbook},
    }


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _freshness_rules(jobs: list[CatalogueJob], t: AlertThresholds) -> list[dict[str, Any]]:
    """A breach per ingestion job (a real-time job judges its ISO's slice), and a dataset not measured."""
    rules = []
    for job in jobs:
        if job.dataset is None or job.sla is None:
            continue
        allowed = job.sla + job.lag
        matchers = f'dataset="{job.dataset}"'
        labels = {"severity": "critical", "dataset": job.dataset, "hmco_job": job.name}
        what = job.dataset
        if job.kind == "realtime":  # ISOs share rt_lmp; clickhouse_freshness names a slice "… iso=<ISO>"
            iso = job_iso(job)
            matchers += f', target=~".*iso={iso}"'
            labels["iso"] = iso
            what = f"{job.dataset} ({iso})"
        seconds = int(allowed.total_seconds())
        rules.append(
            _rule(
                "HmcoDatasetStale",
                f"hmco_freshness_ok{{{matchers}}} == 0"
                f" or hmco_freshness_age_seconds{{{matchers}}} > {seconds}",
                timedelta(minutes=5),
                labels,
                f"{what} is stale or empty: older than its SLA of {format_duration(allowed, exact=True)}",
                f"{{{{ $labels.target }}}}: the newest {job.dataset} data is older than SLA {format_duration(job.sla, exact=True)}"
                + (f" + publication lag {format_duration(job.lag, exact=True)}" if job.lag else "")
                + f" ({seconds} s), or there is none. Job {job.name} feeds it.",
                job.runbook,
            )
        )
    for dataset in _unique(j.dataset for j in jobs if j.dataset and j.sla is not None):
        rules.append(
            _rule(
                "HmcoFreshnessUnknown",
                f'absent(hmco_freshness_ok{{dataset="{dataset}"}})'
                f' and on() (up{{job="{t.scrape_job}"}} == 1)',
                timedelta(minutes=15),
                {"severity": "warning", "dataset": dataset},
                f"{dataset}'s freshness is not measured",
                f"hmco serve is up but exports no freshness for {dataset}: its table may not exist yet, "
                "or the freshness watch is failing.",
                f"hmco freshness {dataset}",
            )
        )
    return rules


def _realtime_rules(jobs: list[CatalogueJob], t: AlertThresholds) -> list[dict[str, Any]]:
    rules = []
    lag = int(t.rt_lag.total_seconds())
    stale = int(t.rt_poll_stale.total_seconds())
    for job in jobs:
        iso = job_iso(job)
        labels = {"severity": "critical", "iso": iso, "hmco_job": job.name}
        rules.append(
            _rule(
                "HmcoRealtimeLagHigh",
                f'hmco_rt_lag_seconds{{iso="{iso}"}} > {lag}',
                timedelta(minutes=2),
                labels,
                f"{iso} real-time LMPs are more than {format_duration(t.rt_lag, exact=True)} behind",
                f"The newest {iso} interval in the real-time store is over {lag} s old "
                f"(or there is none). Job {job.name} polls it.",
                job.runbook,
            )
        )
        rules.append(
            _rule(
                "HmcoRealtimePollerStalled",
                f'time() - hmco_rt_last_poll_timestamp_seconds{{iso="{iso}"}} > {stale}',
                timedelta(minutes=2),
                labels,
                f"{iso} has not been polled for {format_duration(t.rt_poll_stale, exact=True)}",
                f"The real-time runner's last poll of {iso} is over {stale} s old: the poller is stuck "
                "or dead, so its lag gauge is no longer updated.",
                job.runbook,
            )
        )
    return rules


def _gate_rules(ingestion: list[CatalogueJob], t: AlertThresholds) -> list[dict[str, Any]]:
    rules = []
    window = prom_duration(t.gate_window)
    n = t.gate_failures
    for dataset in _unique(j.dataset for j in ingestion if j.dataset):
        rules.append(
            _rule(
                "HmcoGateFailing",
                f"sum by (dataset) (increase(hmco_quality_gate_total"
                f'{{dataset="{dataset}", outcome="failed"}}[{window}])) >= {n}',
                timedelta(minutes=1),
                {"severity": "warning", "dataset": dataset},
                f"the quality gate failed {dataset} batches {n}+ times in {format_duration(t.gate_window, exact=True)}",
                f"At least {n} batches of {dataset} were stopped by the gate and quarantined within "
                f"{format_duration(t.gate_window, exact=True)}: the source changed or broke. Inspect the raw payloads.",
                f"hmco archive --dataset {dataset}",
            )
        )
    for job in ingestion:
        if job.kind != "realtime":
            continue
        iso = job_iso(job)
        rules.append(
            _rule(
                "HmcoRealtimeGateFailing",
                f'sum by (iso) (increase(hmco_rt_gate_failures_total{{iso="{iso}"}}[{window}])) >= {n}',
                timedelta(minutes=1),
                {"severity": "warning", "iso": iso, "hmco_job": job.name},
                f"the quality gate stopped {n}+ {iso} real-time batches in {format_duration(t.gate_window, exact=True)}",
                f"At least {n} {iso} windows were quarantined by the gate (or were unstorable) within "
                f"{format_duration(t.gate_window, exact=True)}. Inspect the raw payloads.",
                f"hmco archive --source {job.spec.source.type}",
            )
        )
    return rules


def backup_max_age(jobs: Iterable[CatalogueJob], store: str, t: AlertThresholds) -> timedelta:
    """How old ``store``'s newest backup may get: the RPO when it is backed up more often than that
    (the lake's replication), else its most frequent backup's cadence plus that job's timeout (the seed
    backs ClickHouse and the catalog up daily: an RPO of 30 min for them needs WAL/log shipping)."""
    mine = [j for j in jobs if j.kind == "backup" and backup_store(j) == store]
    if not mine:
        return t.rpo
    quickest = min(mine, key=lambda j: j.cadence)
    return t.rpo if quickest.cadence <= t.rpo else quickest.cadence + quickest.timeout


def _backup_rules(jobs: list[CatalogueJob], t: AlertThresholds) -> list[dict[str, Any]]:
    rules = []
    for store in _unique(backup_store(j) for j in jobs):
        limit = backup_max_age(jobs, store, t)
        seconds = int(limit.total_seconds())
        # The timestamp keeps ageing between status checks; the age gauge is +Inf when there is no backup.
        rules.append(
            _rule(
                "HmcoBackupOlderThanRpo",
                f'time() - hmco_backup_last_success_timestamp_seconds{{store="{store}"}} > {seconds}'
                f' or hmco_backup_age_seconds{{store="{store}"}} > {seconds}',
                timedelta(minutes=5),
                {"severity": "critical", "store": store},
                f"the newest {store} backup is older than {format_duration(limit, exact=True)}",
                f"The newest restorable {store} backup is more than {seconds} s old, or there is none "
                f"(platform RPO {format_duration(t.rpo, exact=True)}).",
                f"hmco backup run {store}",
            )
        )
    return rules


def _maintenance_rules(jobs: list[CatalogueJob], t: AlertThresholds) -> list[dict[str, Any]]:
    limit = int(t.maintenance_age.total_seconds())
    rules = []
    for job in jobs:
        action = job.action or job.name
        rules.append(
            _rule(
                "HmcoMaintenanceOverdue",
                f'time() - hmco_maintenance_last_run_timestamp_seconds{{action="{action}"}} > {limit}',
                timedelta(hours=1),
                {"severity": "warning", "action": action, "hmco_job": job.name},
                f"Iceberg upkeep {action} has not run for {format_duration(t.maintenance_age, exact=True)}",
                f"{action} last ran on {{{{ $labels.table }}}} more than {limit} s ago; it is weekly "
                f"(job {job.name}).",
                f"hmco maintain --action {action}",
            )
        )
    return rules


def _serve_rules(t: AlertThresholds) -> list[dict[str, Any]]:
    up = f'up{{job="{t.scrape_job}"}}'
    stale = int(t.heartbeat_stale.total_seconds())
    return [
        _rule(
            "HmcoServeDown",
            f"{up} == 0",
            timedelta(minutes=2),
            {"severity": "critical"},
            "hmco serve is down",
            f"Prometheus cannot scrape {{{{ $labels.instance }}}} (job {t.scrape_job}): no job is scheduled.",
            "hmco serve",
        ),
        _rule(
            "HmcoServeAbsent",
            f"absent({up})",
            timedelta(minutes=5),
            {"severity": "critical"},
            "hmco serve is not scraped",
            f"Prometheus has no target for job {t.scrape_job}: serve is not deployed or not discovered.",
            "hmco serve",
        ),
        _rule(
            "HmcoServeHeartbeatStale",
            f'time() - hmco_serve_heartbeat_timestamp_seconds{{job="{t.scrape_job}"}} > {stale}',
            timedelta(minutes=2),
            {"severity": "critical"},
            "hmco serve's scheduler is stuck",
            f"{{{{ $labels.instance }}}} answers but its scheduler has not ticked for over {stale} s.",
            "hmco serve",
        ),
    ]


def alert_rules(
    catalogue: Iterable[CatalogueJob], thresholds: AlertThresholds | None = None
) -> dict[str, Any]:
    """The Prometheus rule file (``{"groups": [...]}``, ready for ``yaml.safe_dump``) for ``catalogue``."""
    t = thresholds or AlertThresholds()
    jobs = list(catalogue)
    ingestion = [j for j in jobs if j.kind in ("pipeline", "realtime")]
    groups = [
        ("hmco-freshness", _freshness_rules(ingestion, t)),
        ("hmco-realtime", _realtime_rules([j for j in jobs if j.kind == "realtime"], t)),
        ("hmco-quality", _gate_rules(ingestion, t)),
        ("hmco-backups", _backup_rules([j for j in jobs if j.kind == "backup"], t)),
        ("hmco-maintenance", _maintenance_rules([j for j in jobs if j.kind == "maintenance"], t)),
        ("hmco-serve", _serve_rules(t)),
    ]
    return {"groups": [{"name": name, "rules": rules} for name, rules in groups if rules]}


def write_alert_rules(
    path: str | Path, catalogue: Iterable[CatalogueJob], thresholds: AlertThresholds | None = None
) -> Path:
    """Write :func:`alert_rules` as YAML to ``path`` (for Prometheus's ``rule_files``); returns it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(alert_rules(catalogue, thresholds), sort_keys=False, width=1000)
    out.write_text("# Generated by hmco.monitoring.alerts from the job catalogue; do not edit.\n" + text)
    return out
