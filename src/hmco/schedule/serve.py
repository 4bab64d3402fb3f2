"""``hmco serve``: the embedded scheduler for one machine — every catalogue job, the real-time poller and
Prometheus ``/metrics``, in one long-running process.

APScheduler's background scheduler wakes each job on its cron trigger (one APScheduler job per catalogue
job, ``max_instances=1``, missed fires coalesced); the :class:`~hmco.schedule.runner.JobRunner` then
runs it under its lease in the catalog, so a second ``serve`` (or a cron ``--once``) never runs the same
job at the same time. On start every job missed while the process was down runs once, and pipelines
catch up from their watermarks. SIGTERM stops taking new fires, lets running jobs finish, and exits.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hmco._logging import get_logger
from hmco.monitoring.metrics import metrics_for
from hmco.schedule.runner import JobResult, JobRunner
from hmco.windows import as_utc

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

__all__ = ["DEFAULT_METRICS_PORT", "Serve"]

log = get_logger("hmco.schedule")

#: Where ``/metrics`` is served unless told otherwise (loopback only by default).
DEFAULT_METRICS_PORT = 9477
HEARTBEAT = timedelta(seconds=15)


@dataclass
class Serve:
    """Runs ``runner``'s catalogue on its schedule and serves its metrics.

    Args:
        runner: runs each job (lease, retries, ledger, metrics).
        metrics_port: port of the Prometheus ``/metrics`` server (0: any free port; None: no server).
        metrics_addr: address it binds (``0.0.0.0`` to be scraped from another host).
        max_workers: jobs that may run at the same time (each job still runs one at a time).
    """

    runner: JobRunner
    metrics_port: int | None = DEFAULT_METRICS_PORT
    metrics_addr: str = "127.0.0.1"
    max_workers: int = 4
    on_result: Callable[[JobResult], None] | None = None
    scheduler: BackgroundScheduler | None = field(default=None, init=False)
    _http: Any = field(default=None, init=False, repr=False)

    @property
    def stop_event(self) -> threading.Event:
        return self.runner.stop

    @property
    def metrics_url(self) -> str | None:
        if self._http is None:
            return None
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}/metrics"

    # --once ----------------------------------------------------------------------------------------
    def once(self, now: datetime | None = None, *, only: Sequence[str] | None = None) -> list[JobResult]:
        """Run everything due at ``now`` and return (``hmco serve --once``, for cron or Kubernetes jobs)."""
        results = self.runner.run_due(now, only=only)
        for result in results:
            self._report(result)
        return results

    # long-running ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Serve metrics, catch up what was missed, and start firing every job on its trigger."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        metrics = metrics_for(self.runner.registry)
        if self.metrics_port is not None:
            self._start_metrics_server()
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(self.max_workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        now = as_utc(self.runner.clock())
        for job in self.runner.catalogue:
            scheduler.add_job(
                self._fire, trigger=job.cron.trigger(), args=[job.name], id=job.name, name=job.name
            )
            # Catch-up: whatever fell due while the process was down runs once, right away.
            if self.runner.due(job, now) is not None:
                scheduler.add_job(
                    self._fire, args=[job.name], id=f"{job.name}@start", name=f"{job.name} catch-up"
                )
        scheduler.add_job(self._heartbeat, IntervalTrigger(seconds=HEARTBEAT.total_seconds()), id="heartbeat")
        scheduler.start()
        self.scheduler = scheduler
        metrics.serve_up.set(1)
        self._heartbeat()
        log.info(
            "serving %d job(s); metrics at %s", len(self.runner.catalogue), self.metrics_url or "(no server)"
        )

    def run_forever(self, *, install_signals: bool = True) -> None:
        """:meth:`start`, then block until SIGTERM/SIGINT (or :attr:`stop_event`), then :meth:`shutdown`."""
        if install_signals:
            self.install_signal_handlers()
        self.start()
        self.stop_event.wait()
        self.shutdown()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT set :attr:`stop_event` (running jobs finish first). Main thread only."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop firing, let running jobs finish (``wait``), and stop the metrics server."""
        self.stop_event.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        metrics_for(self.runner.registry).serve_up.set(0)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        log.info("serve stopped")

    def next_fires(self) -> dict[str, datetime]:
        """When APScheduler will next fire each job (its own computation, for checks and ``status``)."""
        assert self.scheduler is not None, "start() first"
        return {
            j.id: j.next_run_time
            for j in self.scheduler.get_jobs()
            if j.id in self.runner.catalogue and j.next_run_time is not None
        }

    # internals -------------------------------------------------------------------------------------
    def _fire(self, name: str) -> None:
        if self.stop_event.is_set():
            return
        job = self.runner.catalogue.get(name)
        try:
            now = as_utc(self.runner.clock())
            fire = self.runner.due(job, now)
            if fire is None:
                return
            self._report(self.runner.run(job, fire=fire, now=now))
        except Exception:  # a job must never take the scheduler down; the error is logged and counted
            log.exception("%s crashed", name)

    def _report(self, result: JobResult) -> None:
        if self.on_result is not None:
            self.on_result(result)

    def _heartbeat(self) -> None:
        metrics_for(self.runner.registry).serve_heartbeat.set(as_utc(self.runner.clock()).timestamp())

    def _on_signal(self, signum: int, frame: object) -> None:
        log.info("signal %s: finishing running jobs, then stopping", signum)
        self.stop_event.set()

    def _start_metrics_server(self) -> None:
        from prometheus_client import REGISTRY, start_http_server

        registry = self.runner.registry if self.runner.registry is not None else REGISTRY
        assert self.metrics_port is not None
        server, _thread = start_http_server(self.metrics_port, addr=self.metrics_addr, registry=registry)
        self._http = server
