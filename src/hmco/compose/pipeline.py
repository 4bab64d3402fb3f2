"""The pipeline: windows, backfills and catch-ups over the one window processor.

One window is the unit of work and of atomicity; :class:`~hmco.compose.processor.WindowProcessor` takes
each through fetch → archive → parse → transforms → audit branch ‖ gate → sinks → curated. While window n
is staged, gated and published, window n+1 is fetched and parsed on a collector thread (at most two
windows in flight); publishes stay in window order, so watermarks advance as before. The pipeline
chooses which windows to run: with ``resume`` it skips exactly the windows the lake's state records as
committed, so a backfill interrupted by a crash — or run by several processes at once — resumes with
no gap and no duplicate.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hmco._logging import get_logger
from hmco.compose.processor import (
    Collected,
    GateChoice,
    Status,
    Transform,
    WindowOutcome,
    WindowProcessor,
)
from hmco.errors import HmcoError, PipelineError, QualityGateFailed
from hmco.lake import Lake
from hmco.schemas import Dataset
from hmco.sinks.base import Sink
from hmco.sinks.raw import RawArchive
from hmco.sources.base import Source
from hmco.windows import Window, as_utc

__all__ = ["Pipeline", "RunReport", "Status", "Transform", "WindowOutcome"]

log = get_logger("hmco.pipeline")


@dataclass
class RunReport:
    """A run's outcome per window, with totals; ``str(report)`` is a short human summary."""

    pipeline: str
    dataset: str
    started: datetime
    windows: list[WindowOutcome] = field(default_factory=list)
    finished: datetime | None = None
    gated: bool = True
    #: Windows not started because the run was asked to stop (``stop`` set: SIGTERM to ``hmco serve``).
    interrupted: int = 0
    #: Wall-clock seconds of the run (windows overlap, so their own seconds add up to more).
    elapsed: float | None = None

    @property
    def rows(self) -> int:
        return sum(w.rows for w in self.windows)

    @property
    def bytes(self) -> int:
        return sum(w.bytes for w in self.windows)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds of the run (the sum of the windows' seconds before it has finished)."""
        return self.elapsed if self.elapsed is not None else sum(w.seconds for w in self.windows)

    @property
    def ok(self) -> bool:
        return all(w.status != "failed" for w in self.windows)

    def count(self, status: Status) -> int:
        return sum(1 for w in self.windows if w.status == status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "dataset": self.dataset,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
            "gated": self.gated,
            "interrupted": self.interrupted,
            "windows": [w.to_dict() for w in self.windows],
        }

    def __str__(self) -> str:
        rate = self.rows / self.seconds if self.seconds else 0.0
        parts = [f"{self.count(s)} {s}" for s in ("ok", "empty", "skipped", "failed") if self.count(s)]
        lines = [
            f"{self.pipeline} → {self.dataset}: {len(self.windows)} window(s) ({', '.join(parts) or 'none'}), "
            f"{self.rows:,} rows, {self.bytes / 1e6:,.1f} MB in {self.seconds:.2f}s ({rate:,.0f} rows/s)"
        ]
        if not self.gated:
            lines.append("  WARNING: the quality gate was OFF for this run")
        for w in self.windows:
            if w.status == "failed":
                lines.append(f"  FAILED {w.window}: {w.error}")
            elif w.warnings:
                lines.append(f"  warn   {w.window}: {', '.join(w.warnings)}")
        return "\n".join(lines)


class Pipeline:
    """Composes a source, transforms, a quality gate and sinks; runs windows, backfills and catch-ups.

    Args:
        source: where the data comes from.
        lake: the lake (raw archive, curated and its audit branches, gate results); ``Lake()`` if omitted.
        name: the pipeline's name; its state (committed windows, watermark) is stored under it.
        transforms: vectorized ``pa.Table -> pa.Table`` functions applied after parsing.
        gate: the quality gate. By default the dataset's default suite runs (fail closed); pass a
            gate of your own, or ``False`` to publish without validation (every run then warns).
        sinks: extra sinks after the gate, before the curated commit (e.g. ClickHouse).
        publish_tier: where validated data goes (``curated`` unless the dataset says otherwise).
        stage: write–audit–publish: write each batch once to an audit branch while the gate runs, then
            fast-forward curated to it. On by default.
        archive: keep raw payloads in the raw tier (on by default).
        window_step: how a long window is split; defaults to the source's ``window_step``.
        progress: show a progress bar for multi-window runs (auto: only on a terminal).
        prefetch: collect (fetch, archive, parse) the next window while the current one is published.
    """

    def __init__(
        self,
        source: Source,
        *,
        lake: Lake | None = None,
        name: str | None = None,
        transforms: Sequence[Transform] = (),
        gate: GateChoice = None,
        sinks: Sequence[Sink] = (),
        publish_tier: str | None = None,
        stage: bool = True,
        archive: bool | RawArchive = True,
        window_step: timedelta | None = None,
        progress: bool | None = None,
        registry: Any = None,
        prefetch: bool = True,
    ) -> None:
        self.lake = lake or Lake(source.settings)
        self.processor = WindowProcessor(
            source,
            lake=self.lake,
            name=name or f"{source.name}-{source.dataset.name}",
            transforms=transforms,
            gate=gate,
            sinks=sinks,
            publish_tier=publish_tier,
            stage=stage,
            archive=archive,
            registry=registry,
        )
        self.window_step = window_step or source.window_step
        self.progress = progress
        self.prefetch = prefetch

    @property
    def source(self) -> Source:
        return self.processor.source

    @property
    def dataset(self) -> Dataset:
        return self.processor.dataset

    @property
    def name(self) -> str:
        return self.processor.name

    @property
    def publish_tier(self) -> str:
        return self.processor.publish_tier

    @property
    def gate(self) -> Any:
        return self.processor.gate

    # --- public runs -----------------------------------------------------------------------------

    @property
    def watermark(self) -> datetime | None:
        """End of the contiguous run of committed windows the pipeline's progress has reached."""
        return self.lake.state.watermark(self.dataset, self.name, self.publish_tier)

    def run(
        self,
        window: Window,
        *,
        resume: bool = False,
        stop_on_error: bool = True,
        stop: threading.Event | None = None,
    ) -> RunReport:
        """Process ``window`` split into ``window_step`` chunks, each committed atomically.

        With ``resume=True`` exactly the chunks the lake's state records as committed by this pipeline
        are skipped; everything else runs, including a window a killed process left behind. When
        ``stop`` is set the window being processed finishes and the rest are left (``interrupted``) for
        the next run, which resumes from the watermark.

        Raises:
            QualityGateFailed: a window failed error-level expectations (``.report`` has the run).
            PipelineError: a window failed for another reason (``.report`` has the run).
        """
        windows = list(window.split(self.window_step))
        report = RunReport(self.name, self.dataset.name, datetime.now(UTC), gated=self.processor.gated)
        began = time.perf_counter()
        self.processor.warn_if_ungated()
        state = self.lake.state
        done = state.committed_windows(self.dataset, self.name, self.publish_tier) if resume else []
        bar = self._progress(len(windows))
        todo = [not (resume and state.is_committed(done, w)) for w in windows]
        collector = ThreadPoolExecutor(1, "hmco-collect") if self.prefetch and sum(todo) > 1 else None
        ahead: dict[int, Future[Collected]] = {}

        def collect(i: int) -> Collected:
            """Window i collected (ahead, or now); then window i+1 starts collecting while i publishes."""
            future = ahead.pop(i, None)
            collected = future.result() if future is not None else self.processor.collect(windows[i])
            nxt = next((j for j in range(i + 1, len(windows)) if todo[j]), None)
            healthy = collected.table is not None and (stop is None or not stop.is_set())
            if collector is not None and nxt is not None and healthy:
                ahead[nxt] = collector.submit(self.processor.collect, windows[nxt])
            return collected

        try:
            for i, w in enumerate(windows):
                if stop is not None and stop.is_set():
                    report.interrupted = len(windows) - i
                    log.info(
                        "%s: stopping; %d window(s) left for the next run", self.name, report.interrupted
                    )
                    break
                if todo[i]:
                    report.windows.append(self.processor.publish(collect(i)))
                else:
                    report.windows.append(WindowOutcome(w, "skipped"))
                if bar:
                    bar.set_postfix_str(f"{report.rows:,} rows")
                    bar.update(1)
                if report.windows[-1].status == "failed" and stop_on_error:
                    break
        finally:
            if collector is not None:
                collector.shutdown(wait=True, cancel_futures=True)  # a window collected ahead is dropped
            self.processor.close()
            if bar:
                bar.close()
        report.finished = datetime.now(UTC)
        report.elapsed = time.perf_counter() - began
        self._raise_if_failed(report)
        return report

    def run_window(self, window: Window) -> WindowOutcome:
        """Process one window (no splitting, no resume); never raises for data."""
        self.processor.warn_if_ungated()
        return self.processor.process(window)

    def backfill(self, start: datetime | str, end: datetime | str, *, resume: bool = True) -> RunReport:
        """Load ``[start, end)`` window by window, skipping the windows already committed."""
        return self.run(Window.of(start, end), resume=resume)

    def run_since_watermark(
        self,
        *,
        start: datetime | str | None = None,
        now: datetime | None = None,
        stop: threading.Event | None = None,
    ) -> RunReport:
        """Catch up from the watermark (or ``start``) to the newest complete window the source serves."""
        latest = self.source.latest_window(now)
        begin = self.watermark or (as_utc(start) if start else latest.start)
        report = RunReport(self.name, self.dataset.name, datetime.now(UTC), gated=self.processor.gated)
        if begin >= latest.end:
            report.finished = datetime.now(UTC)
            return report
        return self.run(Window(begin, latest.end), resume=True, stop=stop)

    # --- helpers ---------------------------------------------------------------------------------

    def _progress(self, total: int) -> Any:
        show = self.progress if self.progress is not None else (total > 1 and sys.stderr.isatty())
        if not show:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=self.name, unit="window", file=sys.stderr)

    def _raise_if_failed(self, report: RunReport) -> None:
        failed = [w for w in report.windows if w.status == "failed"]
        if not failed:
            return
        first = failed[0]
        if first.failed_expectations:
            exc: HmcoError = QualityGateFailed(
                first.error or "quality gate failed",
                failed=first.failed_expectations,
                result=first.gate_result,
            )
        else:
            exc = PipelineError(f"{self.name}: window {first.window} failed: {first.error}", report=report)
        exc.report = report  # type: ignore[attr-defined]
        raise exc

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, source={self.source!r}, dataset={self.dataset.name!r})"
