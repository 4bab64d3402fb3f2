"""Run catalogue jobs: each under its lease, with bounded retries, recorded in the ledger and in metrics.

:class:`JobRunner` is the one place a job runs, whoever fires it: ``hmco serve``'s scheduler,
``hmco serve --once`` from cron, or ``hmco schedule run NAME`` from DolphinScheduler. Whether a job is
*due* is decided from the ledger (the newest fire it handled, in the catalog database), so a restarted
process runs each missed job once and two processes never handle the same fire twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from hmco._logging import get_logger
from hmco.errors import ConfigError, HmcoError, is_transient
from hmco.lake.ledger import JobRun, Lease, LeaseHeld, default_owner
from hmco.monitoring.metrics import metrics_for
from hmco.schedule.catalogue import Catalogue, Job, JobKind
from hmco.windows import as_utc

if TYPE_CHECKING:
    from hmco.compose.pipeline import Pipeline
    from hmco.compose.realtime import RealtimeRunner
    from hmco.lake import Lake
    from hmco.monitoring.notify import WebhookNotifier

__all__ = ["Executor", "JobResult", "JobRunner", "Outcome"]

log = get_logger("hmco.schedule")

Outcome = Literal["succeeded", "failed", "skipped"]
#: What runs a job of one kind: ``(job, now) -> (rows, detail)``; raises on failure.
Executor = Callable[[Job, datetime], tuple[int, str]]
#: How long a lease outlives its job's timeout (a holder that stops renewing loses it after this).
LEASE_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class JobResult:
    """One run (or skip) of a job."""

    job: str
    kind: JobKind
    outcome: Outcome
    fire: datetime | None
    started: datetime
    seconds: float
    detail: str = ""
    rows: int = 0
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "kind": self.kind,
            "outcome": self.outcome,
            "fire": self.fire.isoformat() if self.fire else None,
            "started": self.started.isoformat(),
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
            "rows": self.rows,
            "attempts": self.attempts,
        }

    def __str__(self) -> str:
        fire = f" (fire {self.fire:%Y-%m-%d %H:%M}Z)" if self.fire else ""
        return f"{self.job:32} {self.outcome:9} {self.seconds:8.2f} s{fire}  {self.detail}"


@dataclass
class JobRunner:
    """Runs the jobs of ``catalogue`` against ``lake``.

    Args:
        catalogue: the jobs.
        lake: the lake (and, through its catalog, the ledger of leases and runs).
        registry: Prometheus registry for job, ingest, gate, backup and freshness metrics.
        clock: the current UTC time (inject a simulated one in tests).
        owner: this process's lease identity (``host:pid:random`` by default).
        executors: replace how a kind of job runs (``{"pipeline": fn}``); the defaults run the real thing.
        notifier: posts freshness breaches and recoveries (``hmco.monitoring.notify.WebhookNotifier``).
        gate: ``False`` turns the quality gate off for every ingestion job (loudly), as ``--no-gate``.
        stop: set to interrupt retry waits (``serve`` on SIGTERM).
        wait: how a retry waits (``stop.wait`` by default).
    """

    catalogue: Catalogue
    lake: Lake
    registry: Any = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    owner: str = field(default_factory=default_owner)
    executors: Mapping[str, Executor] = field(default_factory=dict)
    notifier: WebhookNotifier | None = None
    gate: bool | None = None
    clickhouse: Any = None
    stop: threading.Event = field(default_factory=threading.Event)
    wait: Callable[[float], object] | None = None

    def __post_init__(self) -> None:
        if self.registry is None:  # one registry for everything serve exposes, the real-time runner's too
            from prometheus_client import REGISTRY

            self.registry = REGISTRY
        self.metrics = metrics_for(self.registry)
        self.ledger = self.lake.state.jobs
        self._pipelines: dict[str, Pipeline] = {}
        self._realtime: RealtimeRunner | None = None
        self._rt_iso: dict[str, str] = {}
        self._build_lock = threading.Lock()
        self._run_locks = {job.name: threading.Lock() for job in self.catalogue}
        if self.gate is False:
            log.warning("the quality gate is OFF for every scheduled ingestion job (--no-gate)")

    # deciding ------------------------------------------------------------------------------------
    def due(self, job: Job, now: datetime | None = None, *, last: JobRun | None = None) -> datetime | None:
        """The newest fire of ``job`` in (last handled fire, now], or None when nothing is due.

        A job never seen before: ingestion and the freshness watch are due at once (they catch up from
        their watermarks); upkeep and backups start counting from now (the first sight is recorded).
        """
        now = as_utc(now or self.clock())
        since = (last or self.ledger.last_run(job.name)).last_fire
        if since is None:
            if job.kind in ("maintenance", "backup"):
                self.ledger.record(job.name, last_fire=now, detail="first seen; waiting for the next fire")
                return None
            since = now - job.cadence
        if job.cron.next_fire(since) > now:  # the common case, without walking the fires
            return None
        newest = None
        for newest in job.cron.fire_times(since, now):  # noqa: B007 - the newest one is wanted
            pass
        return newest

    def run_due(self, now: datetime | None = None, *, only: Sequence[str] | None = None) -> list[JobResult]:
        """Run every job due at ``now`` once (missed fires coalesce into one run), in catalogue order."""
        now = as_utc(now or self.clock())
        jobs = [self.catalogue.get(n) for n in only] if only else list(self.catalogue)
        runs = self.ledger.last_runs([j.name for j in jobs])
        results = []
        for job in jobs:
            if self.stop.is_set():
                break
            fire = self.due(job, now, last=runs[job.name])
            if fire is not None:
                results.append(self.run(job, fire=fire, now=now))
        return results

    # running -------------------------------------------------------------------------------------
    def run(self, job: Job | str, *, fire: datetime | None = None, now: datetime | None = None) -> JobResult:
        """Run ``job`` once under its lease; ``fire`` is the scheduled time it answers (None: by hand)."""
        job = self.catalogue.get(job) if isinstance(job, str) else job
        now = as_utc(now or self.clock())
        started = time.perf_counter()
        ttl = job.timeout + LEASE_GRACE
        with self._run_locks[job.name]:
            lease = self.ledger.acquire(job.name, self.owner, ttl=ttl, now=now)
            if isinstance(lease, LeaseHeld):
                detail = f"already running: lease held by {lease.owner} until {lease.expires_at:%H:%M:%S}Z"
                log.info("%s skipped: %s", job.name, detail)
                self.metrics.record_job(job.name, job.kind, "skipped", 0.0, at=now)
                return JobResult(job.name, job.kind, "skipped", fire, now, 0.0, detail)
            if not self.ledger.start(job.name, fire, now):
                self.ledger.release(lease)
                assert fire is not None
                detail = f"fire {fire:%Y-%m-%d %H:%M}Z was already handled"
                self.metrics.record_job(job.name, job.kind, "skipped", 0.0, at=now)
                return JobResult(job.name, job.kind, "skipped", fire, now, 0.0, detail)
            try:
                with _Renewal(self, lease, ttl):
                    outcome, rows, detail, attempts = self._attempts(job, now)
            except BaseException:
                self.ledger.release(lease)
                raise
            seconds = time.perf_counter() - started
            ended = now + timedelta(seconds=seconds)
            values: dict[str, Any] = {"finished_at": ended, "outcome": outcome, "detail": detail[:2000]}
            # A run by hand answers the schedule's newest fire too, so serve does not repeat it at once. A run
            # cut short by a shutdown answers nothing: the next start runs it again (from its watermark).
            answered = fire or job.cron.last_fire(now, within=job.cadence)
            if answered is not None and not self.stop.is_set():
                values["last_fire"] = answered
            if outcome == "succeeded":
                values["last_success"] = ended
            self.ledger.finish(lease, **values)
        self.metrics.record_job(job.name, job.kind, outcome, seconds, at=ended)
        if seconds > job.timeout.total_seconds():
            log.warning("%s ran %.0f s, past its %s timeout", job.name, seconds, job.timeout)
        result = JobResult(job.name, job.kind, outcome, fire, now, seconds, detail, rows, attempts)
        (log.info if result.ok else log.error)("%s", result)
        return result

    def _attempts(self, job: Job, now: datetime) -> tuple[Outcome, int, str, int]:
        execute = self.executors.get(job.kind) or self._default_executor(job.kind)
        attempt = 0
        while True:
            attempt += 1
            try:
                rows, detail = execute(job, now)
                return "succeeded", rows, detail, attempt
            except Exception as exc:
                detail = f"{type(exc).__name__}: {exc}"
                if attempt > job.retries or not is_transient(exc) or self.stop.is_set():
                    return "failed", 0, detail, attempt
                log.warning(
                    "%s attempt %d failed (%s); retrying in %s", job.name, attempt, detail, job.retry_delay
                )
                (self.wait or self.stop.wait)(job.retry_delay.total_seconds())

    # the real executors --------------------------------------------------------------------------
    def _default_executor(self, kind: str) -> Executor:
        executors: dict[str, Executor] = {
            "pipeline": self._run_pipeline,
            "realtime": self._run_realtime,
            "maintenance": self._run_maintenance,
            "backup": self._run_backup,
            "freshness": self._run_freshness,
        }
        if kind not in executors:
            raise ConfigError(f"no executor for job kind {kind!r}")
        return executors[kind]

    def pipeline(self, job: Job) -> Pipeline:
        """The job's pipeline, built once from its spec."""
        from hmco.compose.spec import build_pipeline

        assert job.spec is not None
        with self._build_lock:
            if job.name not in self._pipelines:
                self._pipelines[job.name] = build_pipeline(
                    job.spec,
                    lake=self.lake,
                    gate=False if self.gate is False else None,
                    registry=self.registry,
                )
            return self._pipelines[job.name]

    def _run_pipeline(self, job: Job, now: datetime) -> tuple[int, str]:
        assert job.spec is not None
        pipeline = self.pipeline(job)
        start = job.spec.start
        report = pipeline.run_since_watermark(start=_start_of(start), now=now, stop=self.stop)
        if not report.ok:
            failed = [w for w in report.windows if w.status == "failed"]
            raise _JobFailed(
                f"{len(failed)} window(s) failed; first: {failed[0].error}", cause=failed[0].exception
            )
        done = [w for w in report.windows if w.status in ("ok", "empty")]
        left = (
            f"; stopped with {report.interrupted} window(s) left for the next run"
            if report.interrupted
            else ""
        )
        return (
            report.rows,
            f"{len(done)} window(s), {report.rows:,} rows, watermark {pipeline.watermark}{left}",
        )

    @property
    def realtime(self) -> RealtimeRunner:
        """One real-time runner polling every real-time job's ISO into ClickHouse and the lake."""
        with self._build_lock:
            if self._realtime is None:
                self._realtime = self._build_realtime()
            return self._realtime

    def _build_realtime(self) -> RealtimeRunner:
        from hmco.compose.realtime import RealtimeRunner
        from hmco.compose.spec import build_source
        from hmco.sinks.clickhouse import ClickHouseSink

        jobs = self.catalogue.of_kind("realtime")
        if not jobs:
            raise ConfigError("the catalogue has no real-time jobs")
        sources = {}
        for job in jobs:
            assert job.spec is not None
            assert job.iso is not None
            self._rt_iso[job.name] = job.iso
            sources[job.iso] = build_source(job.spec, self.lake.settings)
        from hmco.clickhouse import ensure_schema, layout_from_settings

        layout = layout_from_settings(self.lake.settings)
        client = self._clickhouse_unlocked()
        ensure_schema(client, layout)
        sink = ClickHouseSink(client, layout)
        return RealtimeRunner(
            sources,
            sink,
            lake=self.lake,
            lake_copy=True,
            gate=False if self.gate is False else None,
            clock=self.clock,
            registry=self.registry,
        )

    def _run_realtime(self, job: Job, now: datetime) -> tuple[int, str]:
        runner = self.realtime
        iso = self._rt_iso[job.name]
        reports = runner.run_once(now, force=True, only=[iso])
        failed = [r for r in reports if not r.ok]
        if failed:
            raise _JobFailed(f"{iso}: {failed[0].error}")
        rows = sum(r.rows for r in reports)
        newest = reports[0].newest if reports else None
        return rows, f"{iso}: {rows:,} rows, newest interval {newest}"

    def _run_maintenance(self, job: Job, now: datetime) -> tuple[int, str]:
        from hmco.maintenance import maintain

        assert job.action is not None
        report = maintain(self.lake, actions=[job.action], now=now, registry=self.registry)  # type: ignore[list-item]
        if report.exit_code:
            failed = [a for a in report.actions if not a.ok]
            raise _JobFailed(f"{len(failed)} action(s) failed; first: {failed[0].table}: {failed[0].error}")
        return 0, f"{len(report.actions)} table action(s)"

    def _run_backup(self, job: Job, now: datetime) -> tuple[int, str]:
        from hmco.maintenance.backups import take_backup

        assert job.action is not None
        store, _, kind = job.action.partition(":")
        records, _ = take_backup(
            self.lake,
            store,  # type: ignore[arg-type]
            kind=(kind or "full"),  # type: ignore[arg-type]
            clickhouse=self.clickhouse_client() if store == "clickhouse" else None,
        )
        self.refresh_backup_ages(now)
        return 0, ", ".join(f"{r.store} {r.kind} {r.id}" for r in records)

    def refresh_backup_ages(self, now: datetime | None = None) -> None:
        """Set the backup-age gauges of every store the catalogue backs up, from the backup records."""
        from hmco.maintenance.backup_records import BackupCatalog

        now = as_utc(now or self.clock())
        stores = sorted({(j.action or "").partition(":")[0] for j in self.catalogue.of_kind("backup")})
        for status in BackupCatalog(self.lake).status(stores, now=now):
            newest = status.newest.restore_point if status.newest is not None else None
            self.metrics.record_backup(status.store, newest, now=now)

    def _run_freshness(self, job: Job, now: datetime) -> tuple[int, str]:
        from hmco.quality.freshness import catalogue_freshness

        watched = self.catalogue.watch
        rt = any(j.kind == "realtime" for j in watched)
        report = catalogue_freshness(
            self.lake, watched, now=now, clickhouse=self.clickhouse_client if rt else None
        )
        report.record(self.registry)
        if self.notifier is not None:
            self.notifier.check(report.statuses, raise_on_failure=False)
        try:
            self.refresh_backup_ages(now)
        except HmcoError as exc:  # no backup location yet is an age of "none", not a failed watch
            log.warning("backup ages unavailable: %s", exc)
        stale = [s.dataset for s in report.statuses if not s.ok]
        return 0, f"{len(report.statuses)} checked, {len(stale)} not fresh" + (
            f": {', '.join(sorted(set(stale)))}" if stale else ""
        )

    def clickhouse_client(self) -> Any:
        """The one ClickHouse client of this runner (given, or connected from the settings on first use)."""
        with self._build_lock:
            return self._clickhouse_unlocked()

    def _clickhouse_unlocked(self) -> Any:
        if self.clickhouse is None:
            from hmco.clickhouse import connect_clickhouse

            self.clickhouse = connect_clickhouse(self.lake.settings)
        return self.clickhouse


class _JobFailed(HmcoError):
    """A job ran and reported a failure (a failed window, upkeep action or poll); transient when its cause is."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.transient = cause is not None and is_transient(cause)


class _Renewal:
    """Renews a lease every third of its TTL while a job runs, so a long run keeps it."""

    def __init__(self, runner: JobRunner, lease: Lease, ttl: timedelta) -> None:
        self.runner, self.lease, self.ttl = runner, lease, ttl
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{lease.job}", daemon=True)

    def __enter__(self) -> _Renewal:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(self.ttl.total_seconds() / 3):
            renewed = self.runner.ledger.renew(self.lease, ttl=self.ttl, now=self.runner.clock())
            if renewed is None:
                log.error("%s lost its lease while running", self.lease.job)
                return


def _start_of(value: Any) -> datetime | None:
    from datetime import date

    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None
