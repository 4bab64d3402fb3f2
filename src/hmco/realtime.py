"""The real-time path: poll each ISO at its cadence, write new intervals to ClickHouse, report lag.

The runner keeps no state of its own: where each ISO stands is the newest ``interval_end`` stored in
ClickHouse, so a process started after an outage (or a scheduler calling :meth:`RealtimeRunner.run_once`
every five minutes) fetches from there to the source's latest window, in ``window_step`` chunks, and the
gap closes by itself. Writes are idempotent (see :mod:`hmco.sinks.clickhouse`), so overlapping polls never
duplicate rows. Time comes from an injectable clock, so tests need no sleeps.

Usage::

    runner = RealtimeRunner([CAISO(), MISO(), SPP()], ClickHouseSink.from_settings(settings))
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
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from hmco._logging import get_logger
from hmco.clickhouse.setup import newest_intervals
from hmco.errors import HmcoError, NoData
from hmco.sinks.base import Sink
from hmco.sinks.clickhouse import ClickHouseSink
from hmco.sources.base import RawPayload, Source
from hmco.windows import Window, as_utc

__all__ = ["PayloadArchive", "PollReport", "RealtimeRunner", "install_stop_signals"]

log = get_logger("hmco.realtime")


class PayloadArchive(Protocol):
    """Anything with ``put(payload)``: the raw tier archive (``hmco.sinks.raw.RawArchive``)."""

    def put(self, payload: RawPayload) -> Any: ...


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

    @property
    def ok(self) -> bool:
        return self.error is None


class RealtimeRunner:
    """Polls ISO sources and writes their new intervals to ClickHouse (and optional extra sinks).

    Args:
        sources: the sources, or a mapping ``{iso: source}`` when the ISO code is not ``source.name.upper()``.
        sink: the ClickHouse sink; its table is also where the runner finds each ISO's newest interval.
        sinks: extra sinks (e.g. the lake's Iceberg sink) written after ClickHouse; a failure there is
            reported but does not hold back the real-time store.
        archive: where raw payloads go before parsing (``put(payload)``).
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
        sinks: Iterable[Sink] = (),
        archive: PayloadArchive | None = None,
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
        self.sinks = list(sinks)
        self.archive = archive
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
    def run_once(self, now: datetime | None = None, *, force: bool = False) -> list[PollReport]:
        """Poll every ISO that is due at ``now`` (all of them with ``force``); never raises for one ISO."""
        now = as_utc(now or self.clock())
        due = [iso for iso in self.sources if force or self._next_due.get(iso, now) <= now]
        if not due:
            return []
        try:
            with self._lock:
                newest = self._refresh_newest(now)
        except Exception as exc:  # the store is unreachable: report, and retry at the next cadence
            return self._store_unavailable(due, now, exc)
        reports = []
        for iso in due:
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
            try:
                rows, payloads = self._process_window(iso, source, window)
            except Exception as exc:
                self._m_errors.labels(iso=iso).inc()
                report.error = f"{type(exc).__name__}: {exc}"
                level = log.warning if isinstance(exc, HmcoError) else log.error
                level("%s: window %s failed, will retry next poll: %s", iso, window, report.error)
                break
            report.payloads += payloads
            if rows is None:
                if now - window.end < self.max_publication_delay:
                    break  # not published yet: retry from here next poll
                report.skipped_empty.append(window)
                log.warning("%s: no data for %s; skipping it", iso, window)
                continue
            report.windows.append(window)
            report.rows += rows.num_rows
            self._m_rows.labels(iso=iso).inc(rows.num_rows)
            end = pc.max(rows.column("interval_end")).as_py()
            if end is not None and (report.newest is None or end > report.newest):
                report.newest = end
                with self._lock:
                    assert self._newest is not None
                    self._newest[iso] = max(end, self._newest.get(iso, end))
        self._m_polled.labels(iso=iso).set(now.timestamp())
        return report

    def _process_window(self, iso: str, source: Source, window: Window) -> tuple[pa.Table | None, int]:
        tables = []
        count = 0
        try:
            for payload in source.fetch(window):
                count += 1
                if self.archive is not None:
                    self.archive.put(payload)
                tables.append(source.parse(payload))
        except NoData:
            pass
        dataset = source.dataset
        table = (
            _within(pa.concat_tables(tables, promote_options="permissive"), dataset.time_column, window)
            if tables
            else None
        )
        if table is None or table.num_rows == 0:
            return None, count
        batch_id = f"{iso}:{window.start:%Y%m%dT%H%M%S}-{window.end:%Y%m%dT%H%M%S}"
        self.sink.write(table, dataset=dataset, window=window, batch_id=batch_id, watermark=window.end)
        for extra in self.sinks:
            try:
                extra.write(table, dataset=dataset, window=window, batch_id=batch_id, watermark=window.end)
            except Exception as exc:  # the RT store has the rows; the lake catches up from its own watermark
                self._m_errors.labels(iso=iso).inc()
                log.error("%s: sink %s failed for %s: %s", iso, getattr(extra, "name", extra), window, exc)
        return table, count

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
        self._m_polled = Gauge(
            "hmco_rt_last_poll_timestamp_seconds",
            "When each ISO was last polled",
            ["iso"],
            registry=self.registry,
        )


def _within(table: pa.Table, column: str, window: Window) -> pa.Table:
    """Rows whose ``column`` lies in the window (a source may return a whole file around it)."""
    ts = table.column(column)
    start = pa.scalar(window.start, ts.type)
    end = pa.scalar(window.end, ts.type)
    return table.filter(pc.and_(pc.greater_equal(ts, start), pc.less(ts, end)))


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
