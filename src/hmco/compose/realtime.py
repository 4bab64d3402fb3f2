"""The real-time path: poll each ISO at its cadence, write new intervals to ClickHouse, report lag.

Every window goes through the one :class:`~hmco.compose.processor.WindowProcessor`, exactly like a batch
pipeline's: archive → parse → conform → gate → ClickHouse (and, with ``lake_copy``, audit branch ‖ gate →
curated). Only rows of a batch that passed the gate reach ClickHouse; a failing ISO batch is
quarantined, counted (``hmco_rt_gate_failures``), shows in that ISO's lag, and the other ISOs keep
flowing. The gate is the dataset's default suite unless one is given; ``gate=False`` turns it off, loudly.

The runner keeps no state of its own: where each ISO stands is the newest ``interval_end`` stored in
ClickHouse, so a process started after an outage (or a scheduler calling :meth:`RealtimeRunner.run_once`
every five minutes) fetches from there to the source's latest window, in ``window_step`` chunks, and the
gap closes by itself. Writes are idempotent (see :mod:`hmco.sinks.clickhouse`), so overlapping polls never
duplicate rows. Time comes from an injectable clock, so tests need no sleeps.

Usage::

    runner = RealtimeRunner([CAISO(), MISO(), SPP()], ClickHouseSink.from_settings(settings), lake=Lake(settings))
    stop = threading.Event(); install_stop_signals(stop)
    runner.run_forever(stop)
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hmco._logging import get_logger
from hmco.clickhouse.setup import newest_intervals
from hmco.compose.processor import GateChoice, Transform, WindowOutcome, WindowProcessor
from hmco.errors import ConfigError
from hmco.lake import Lake
from hmco.sinks.base import Sink
from hmco.sinks.clickhouse import ClickHouseSink
from hmco.sinks.raw import RawArchive
from hmco.sources.base import Source
from hmco.windows import Window, as_utc

__all__ = ["PollReport", "RealtimeRunner", "install_stop_signals"]

log = get_logger("hmco.realtime")


@dataclass
class PollReport:
    """What one poll of one ISO did."""

    iso: str
    windows: list[Window] = field(default_factory=list)
    rows: int = 0
    payloads: int = 0
    newest: datetime | None = None
    skipped_empty: list[Window] = field(default_factory=list)
    error: str | None = None
    failed_expectations: list[str] = field(default_factory=list)
    quarantine: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class RealtimeRunner:
    """Polls ISO sources and writes their new, gated intervals to ClickHouse (and optionally the lake).

    Args:
        sources: the sources, or a mapping ``{iso: source}`` when the ISO code is not ``source.name.upper()``.
        sink: the ClickHouse sink; its table is also where the runner finds each ISO's newest interval.
        lake: the lake holding the raw archive, gate results and quarantine (``Lake(settings)`` of the
            first source if omitted).
        lake_copy: also publish each window to the lake (audit branch ‖ gate → curated), as pipeline
            ``rt-<iso>``.
        gate: the quality gate (default: the dataset's default suite; ``False`` turns it off, loudly).
        transforms: vectorized transforms applied after parsing, as in a pipeline.
        sinks: extra sinks written after ClickHouse, before the lake copy's commit.
        archive: keep raw payloads in the lake's raw tier (a :class:`RawArchive`, ``True`` or ``False``).
        clock: returns the current UTC time (inject a fake one in tests).
        registry: a ``prometheus_client.CollectorRegistry`` for the metrics (a private one by default).
        poll_every: cadence per ISO (default the dataset's frequency, 5 minutes for ``rt_lmp``).
        max_gap: how far back catch-up reaches after an outage, and how far back ClickHouse is searched.
        initial_lookback: on an empty table, fetch this far back (default: only the latest window).
        max_publication_delay: an empty window younger than this stops the catch-up (it may still
            be published); an older one is skipped.
        overlap: re-fetch this much before the newest stored interval on every poll, to pick up late
            files and revisions (idempotent: unchanged rows are dropped at insert).
    """

    def __init__(
        self,
        sources: Sequence[Source] | Mapping[str, Source],
        sink: ClickHouseSink,
        *,
        lake: Lake | None = None,
        lake_copy: bool = False,
        gate: GateChoice = None,
        transforms: Sequence[Transform] = (),
        sinks: Iterable[Sink] = (),
        archive: bool | RawArchive = True,
        clock: Callable[[], datetime] | None = None,
        registry: Any = None,
        poll_every: timedelta | Mapping[str, timedelta] | None = None,
        max_gap: timedelta = timedelta(days=7),
        initial_lookback: timedelta | None = None,
        max_publication_delay: timedelta = timedelta(minutes=30),
        overlap: timedelta = timedelta(0),
    ) -> None:
        if isinstance(sources, Mapping):
            self.sources = dict(sources)
        else:
            self.sources = {getattr(s, "iso", None) or s.name.upper(): s for s in sources}
        self.sink = sink
        self.lake = lake or Lake(next(iter(self.sources.values())).settings)
        archive = RawArchive(self.lake) if archive is True else archive
        self.processors = {
            iso: WindowProcessor(
                source,
                lake=self.lake,
                name=f"rt-{iso.lower()}",
                transforms=transforms,
                gate=gate,
                sinks=[sink, *sinks],
                publish=lake_copy,
                stage=lake_copy,
                archive=archive,
                no_data="empty",
                registry=registry,
            )
            for iso, source in self.sources.items()
        }
        self.clock = clock or (lambda: datetime.now(UTC))
        self.max_gap = max_gap
        self.initial_lookback = initial_lookback
        self.max_publication_delay = max_publication_delay
        self.overlap = overlap
        self._cadence = {iso: self._cadence_of(iso, src, poll_every) for iso, src in self.sources.items()}
        self._next_due: dict[str, datetime] = {}
        self._newest: dict[str, datetime] | None = None
        self._lock = threading.Lock()
        self._init_metrics(registry)

    # public ----------------------------------------------------------------------------------------
    def run_once(
        self, now: datetime | None = None, *, force: bool = False, only: Iterable[str] | None = None
    ) -> list[PollReport]:
        """Poll every ISO that is due at ``now`` (all of them with ``force``; just ``only`` when given, as a
        scheduler firing one ISO's job does); never raises for one ISO."""
        now = as_utc(now or self.clock())
        chosen = set(only) if only is not None else None
        if chosen is not None and not chosen <= set(self.sources):
            raise ConfigError(
                f"no source for ISO(s) {sorted(chosen - set(self.sources))}; polling {list(self.sources)}"
            )
        due = [
            iso
            for iso in self.sources
            if (chosen is None or iso in chosen) and (force or self._next_due.get(iso, now) <= now)
        ]
        if not due:
            return []
        try:
            with self._lock:
                newest = self._refresh_newest(now)
        except Exception as exc:  # the store is unreachable: report, and retry at the next cadence
            return self._store_unavailable(due, now, exc)
        reports = []
        for iso in due:
            self.processors[iso].warn_if_ungated()
            report = self._poll(iso, self.sources[iso], now, newest.get(iso))
            self._next_due[iso] = now + self._cadence[iso]
            reports.append(report)
        self._publish_lag(now)
        return reports

    def lag(self, now: datetime | None = None) -> dict[str, float]:
        """Seconds from each ISO's newest stored interval end to ``now`` (``inf`` when it has none)."""
        now = as_utc(now or self.clock())
        with self._lock:
            newest = self._newest if self._newest is not None else self._refresh_newest(now)
        return {
            iso: (now - newest[iso]).total_seconds() if iso in newest else math.inf for iso in self.sources
        }

    def next_due(self) -> datetime:
        """When the next poll is due (now, for ISOs never polled)."""
        now = as_utc(self.clock())
        return min((self._next_due.get(iso, now) for iso in self.sources), default=now)

    def run_forever(self, stop: threading.Event, *, wait: Callable[[float], object] | None = None) -> None:
        """Poll until ``stop`` is set; ``wait(seconds)`` sleeps between polls (``stop.wait`` by default)."""
        wait = wait or stop.wait
        log.info("real-time runner started for %s", ", ".join(self.sources))
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # a poll must never kill the loop; each ISO's error is already reported
                log.exception("real-time poll failed")
            if stop.is_set():
                break
            wait(max(0.0, (self.next_due() - as_utc(self.clock())).total_seconds()))
        log.info("real-time runner stopped")

    # polling -------------------------------------------------------------------------------------
    def _poll(self, iso: str, source: Source, now: datetime, newest: datetime | None) -> PollReport:
        report = PollReport(iso, newest=newest)
        latest = source.latest_window(now)
        if newest is None:
            start = latest.end - self.initial_lookback if self.initial_lookback else latest.start
        else:
            start = max(newest - self.overlap, now - self.max_gap)
            if newest < now - self.max_gap:
                log.warning(
                    "%s: newest interval %s is older than max_gap; catching up from %s", iso, newest, start
                )
        if start >= latest.end:
            return report
        for window in Window(start, latest.end).split(source.window_step):
            outcome = self._process_window(iso, window)
            report.payloads += outcome.payloads
            if outcome.status == "failed":
                self._m_errors.labels(iso=iso).inc()
                if outcome.failed_expectations or outcome.quarantine:
                    self._m_gate_failures.labels(iso=iso).inc()
                report.error = outcome.error
                report.failed_expectations = outcome.failed_expectations
                report.quarantine = outcome.quarantine
                log.warning("%s: window %s failed, will retry next poll: %s", iso, window, report.error)
                break
            if outcome.status == "empty":
                if now - window.end < self.max_publication_delay:
                    break  # not published yet: retry from here next poll
                report.skipped_empty.append(window)
                log.warning("%s: no data for %s; skipping it", iso, window)
                continue
            report.windows.append(window)
            report.rows += outcome.rows
            self._m_rows.labels(iso=iso).inc(outcome.rows)
            end = outcome.newest_end
            if end is not None and (report.newest is None or end > report.newest):
                report.newest = end
                with self._lock:
                    assert self._newest is not None
                    self._newest[iso] = max(end, self._newest.get(iso, end))
        self._m_polled.labels(iso=iso).set(now.timestamp())
        return report

    def _process_window(self, iso: str, window: Window) -> WindowOutcome:
        """One window of one ISO through the window processor; a re-poll re-uses the batch id."""
        batch_id = f"{iso}:{window.start:%Y%m%dT%H%M%S}-{window.end:%Y%m%dT%H%M%S}"
        try:
            return self.processors[iso].process(window, batch_id=batch_id)
        except Exception as exc:  # a bug outside hmco's typed errors must not stop the other ISOs
            log.exception("%s: window %s failed unexpectedly", iso, window)
            return WindowOutcome(window, "failed", batch_id=batch_id, error=f"{type(exc).__name__}: {exc}")

    def _store_unavailable(self, due: list[str], now: datetime, exc: Exception) -> list[PollReport]:
        error = f"{type(exc).__name__}: {exc}"
        log.error("real-time store unreachable; polls of %s retried next cadence: %s", ", ".join(due), error)
        reports = []
        for iso in due:
            self._m_errors.labels(iso=iso).inc()
            self._next_due[iso] = now + self._cadence[iso]
            reports.append(PollReport(iso, error=error))
        if self._newest is not None:  # the last known positions: the lag keeps growing while it is down
            self._publish_lag(now)
        return reports

    # state and metrics -----------------------------------------------------------------------------
    def _refresh_newest(self, now: datetime) -> dict[str, datetime]:
        client, layout = self.sink.client, self.sink.layout
        found = newest_intervals(client, layout, now - self.max_gap)
        missing = [iso for iso in self.sources if iso not in found]
        if missing:  # behind by more than max_gap (or empty): look further back so catch-up still starts
            found.update(newest_intervals(client, layout, None, isos=missing))
        self._newest = {iso: found[iso] for iso in self.sources if iso in found}
        return dict(self._newest)

    def _publish_lag(self, now: datetime) -> None:
        for iso, seconds in self.lag(now).items():
            self._m_lag.labels(iso=iso).set(seconds)

    def _cadence_of(
        self, iso: str, source: Source, poll_every: timedelta | Mapping[str, timedelta] | None
    ) -> timedelta:
        if isinstance(poll_every, Mapping):
            if iso in poll_every:
                return poll_every[iso]
        elif poll_every is not None:
            return poll_every
        return source.dataset.frequency or source.window_step

    def _init_metrics(self, registry: Any) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = registry if registry is not None else CollectorRegistry()
        self._m_lag = Gauge(
            "hmco_rt_lag_seconds",
            "Now minus the newest stored interval end, per ISO",
            ["iso"],
            registry=self.registry,
        )
        self._m_rows = Counter(
            "hmco_rt_rows_written",
            "Rows written to the real-time store, per ISO",
            ["iso"],
            registry=self.registry,
        )
        self._m_errors = Counter(
            "hmco_rt_poll_errors",
            "Failed windows (fetch, parse or write), per ISO",
            ["iso"],
            registry=self.registry,
        )
        self._m_gate_failures = Counter(
            "hmco_rt_gate_failures",
            "Batches stopped by the quality gate (or unstorable) and quarantined, per ISO",
            ["iso"],
            registry=self.registry,
        )
        self._m_polled = Gauge(
            "hmco_rt_last_poll_timestamp_seconds",
            "When each ISO was last polled",
            ["iso"],
            registry=self.registry,
        )


def install_stop_signals(
    stop: threading.Event, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """Set ``stop`` on SIGTERM/SIGINT so :meth:`RealtimeRunner.run_forever` finishes its poll and returns.

    Must be called from the main thread (a Python rule for signal handlers).
    """

    def handler(signum: int, frame: object) -> None:
        log.info("signal %s received; stopping after the current poll", signum)
        stop.set()

    for sig in signals:
        signal.signal(sig, handler)
