"""The pipeline: source → raw archive → parse → transforms → staged → quality gate → curated (+ sinks).

One window is the unit of work and of atomicity. For each window the pipeline fetches the source's
payloads, archives every one to the raw tier *before* parsing, parses and transforms them into the
dataset's canonical schema, writes the batch to the staged tier, asks the gate, and only if the gate
passes publishes it to curated and the other sinks (write–audit–publish). The curated commit carries
the pipeline's watermark, so a backfill interrupted by a crash resumes exactly after the last
committed window: no gap, no duplicate.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from hmco._logging import get_logger
from hmco.errors import HmcoError, PayloadError, PipelineError, QualityGateFailed, SchemaError
from hmco.lake import Lake
from hmco.monitoring.metrics import metrics_for
from hmco.quality.gate import Gate, GateResult
from hmco.schemas import Dataset, conform, get_dataset
from hmco.sinks.base import Sink, WriteResult
from hmco.sinks.iceberg import IcebergSink, batch_scope
from hmco.sinks.raw import RawArchive
from hmco.sources.base import Source
from hmco.transforms.rows import dedupe_latest
from hmco.windows import Window, as_utc

__all__ = ["Pipeline", "RunReport", "Transform", "WindowOutcome"]

log = get_logger("hmco.pipeline")

Transform = Callable[[pa.Table], pa.Table]
Status = Literal["ok", "empty", "skipped", "failed"]


@dataclass
class WindowOutcome:
    """What happened to one window."""

    window: Window
    status: Status
    batch_id: str = ""
    rows: int = 0
    bytes: int = 0
    payloads: int = 0
    payload_bytes: int = 0
    archived: int = 0
    dropped_outside_window: int = 0
    seconds: float = 0.0
    error: str | None = None
    failed_expectations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    writes: list[WriteResult] = field(default_factory=list)
    gate_result: GateResult | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("gate_result", None)
        d["window"] = [self.window.start.isoformat(), self.window.end.isoformat()]
        return d


@dataclass
class RunReport:
    """A run's outcome per window, with totals; ``str(report)`` is a short human summary."""

    pipeline: str
    dataset: str
    started: datetime
    windows: list[WindowOutcome] = field(default_factory=list)
    finished: datetime | None = None

    @property
    def rows(self) -> int:
        return sum(w.rows for w in self.windows)

    @property
    def bytes(self) -> int:
        return sum(w.bytes for w in self.windows)

    @property
    def seconds(self) -> float:
        return sum(w.seconds for w in self.windows)

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
            "windows": [w.to_dict() for w in self.windows],
        }

    def __str__(self) -> str:
        rate = self.rows / self.seconds if self.seconds else 0.0
        parts = [f"{self.count(s)} {s}" for s in ("ok", "empty", "skipped", "failed") if self.count(s)]
        lines = [
            f"{self.pipeline} → {self.dataset}: {len(self.windows)} window(s) ({', '.join(parts) or 'none'}), "
            f"{self.rows:,} rows, {self.bytes / 1e6:,.1f} MB in {self.seconds:.2f}s ({rate:,.0f} rows/s)"
        ]
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
        lake: the lake (archive, staged and curated tiers); ``Lake()`` if omitted.
        name: the pipeline's name; its watermark is stored under it.
        transforms: vectorized ``pa.Table -> pa.Table`` functions applied after parsing.
        gate: the quality gate; ``None`` publishes without validation (not recommended for curated).
        sinks: extra sinks after curated (e.g. ClickHouse for real-time data).
        publish_tier: where validated data goes (``curated`` unless the dataset says otherwise).
        stage: write to the staged tier before the gate (write–audit–publish). On by default.
        archive: keep raw payloads in the raw tier (on by default).
        window_step: how a long window is split; defaults to the source's ``window_step``.
        progress: show a progress bar for multi-window runs (auto: only on a terminal).
    """

    def __init__(
        self,
        source: Source,
        *,
        lake: Lake | None = None,
        name: str | None = None,
        transforms: Sequence[Transform] = (),
        gate: Gate | None = None,
        sinks: Sequence[Sink] = (),
        publish_tier: str | None = None,
        stage: bool = True,
        archive: bool | RawArchive = True,
        window_step: timedelta | None = None,
        progress: bool | None = None,
    ) -> None:
        self.source = source
        self.dataset: Dataset = get_dataset(source.dataset.name)
        self.lake = lake or Lake(source.settings)
        self.name = name or f"{source.name}-{self.dataset.name}"
        self.transforms = list(transforms)
        self.gate = gate
        self.publish_tier = publish_tier or self.dataset.tier
        self.curated = IcebergSink(self.lake, self.publish_tier, pipeline=self.name)
        self.staged = IcebergSink(self.lake, "staged", pipeline=self.name) if stage else None
        self.sinks = list(sinks)
        if archive is True:
            self.archive: RawArchive | None = RawArchive(self.lake)
        else:
            self.archive = archive or None
        self.window_step = window_step or source.window_step
        self.progress = progress

    # --- public runs -----------------------------------------------------------------------------

    @property
    def watermark(self) -> datetime | None:
        """End of the last window this pipeline committed to the publish tier."""
        return self.lake.watermark(self.dataset, self.name, self.publish_tier)

    def run(self, window: Window, *, resume: bool = False, stop_on_error: bool = True) -> RunReport:
        """Process ``window`` split into ``window_step`` chunks, each committed atomically.

        With ``resume=True`` chunks this pipeline already committed are skipped: those recorded in the
        table's snapshot log, and — for crash recovery of this very range — those ending at or before a
        watermark that lies inside it. Older history outside the watermark is loaded, not skipped.

        Raises:
            QualityGateFailed: a window failed error-level expectations (``.report`` has the run).
            PipelineError: a window failed for another reason (``.report`` has the run).
        """
        windows = list(window.split(self.window_step))
        report = RunReport(self.name, self.dataset.name, datetime.now(UTC))
        mark = self.watermark if resume else None
        if mark is not None and not window.start < mark <= window.end:
            mark = None  # the watermark says nothing about a range it does not fall in
        done = self.lake.committed_windows(self.dataset, self.name, self.publish_tier) if resume else set()
        bar = self._progress(len(windows))
        try:
            for w in windows:
                if (mark is not None and w.end <= mark) or (w.start, w.end) in done:
                    if (w.start, w.end) in done and report.count("failed") == 0:
                        self._advance_watermark(w.end)  # a filled gap lets the mark catch up
                    report.windows.append(WindowOutcome(w, "skipped"))
                    bar.update(1) if bar else None
                    continue
                # After a failure the watermark must not move past the failed window, or a resume would skip it.
                outcome = self.run_window(w, advance_watermark=report.count("failed") == 0)
                report.windows.append(outcome)
                if bar:
                    bar.set_postfix_str(f"{report.rows:,} rows")
                    bar.update(1)
                if outcome.status == "failed" and stop_on_error:
                    break
        finally:
            if bar:
                bar.close()
        report.finished = datetime.now(UTC)
        self._raise_if_failed(report)
        return report

    def backfill(self, start: datetime | str, end: datetime | str, *, resume: bool = True) -> RunReport:
        """Load ``[start, end)`` window by window, resuming after the last committed window."""
        return self.run(Window.of(start, end), resume=resume)

    def run_since_watermark(
        self, *, start: datetime | str | None = None, now: datetime | None = None
    ) -> RunReport:
        """Catch up from the watermark (or ``start``) to the newest complete window the source serves."""
        latest = self.source.latest_window(now)
        begin = self.watermark or (as_utc(start) if start else latest.start)
        report = RunReport(self.name, self.dataset.name, datetime.now(UTC))
        if begin >= latest.end:
            report.finished = datetime.now(UTC)
            return report
        return self.run(Window(begin, latest.end))

    # --- one window --------------------------------------------------------------------------------

    def run_window(self, window: Window, *, advance_watermark: bool = True) -> WindowOutcome:
        """Fetch, archive, parse, transform, stage, gate and publish one window. Never raises for data."""
        started = time.perf_counter()
        outcome = WindowOutcome(window, "ok", batch_id=uuid.uuid4().hex[:16])
        try:
            table = self._collect(window, outcome)
            outcome.rows, outcome.bytes = table.num_rows, table.nbytes  # published rows replace this
            if table.num_rows == 0:
                outcome.status = "empty"
                # An empty window deletes nothing (a source outage must not erase data).
                log.warning("%s: window %s returned no rows; nothing replaced", self.name, window)
                if advance_watermark:
                    self._advance_watermark(window.end)
            else:
                self._stage_gate_publish(table, window, outcome, advance_watermark)
        except QualityGateFailed as exc:
            outcome.status = "failed"
            outcome.error = str(exc)
            outcome.failed_expectations = list(exc.failed)
            outcome.gate_result = exc.result
        except HmcoError as exc:
            outcome.status = "failed"
            outcome.error = f"{type(exc).__name__}: {exc}"
            log.error("%s window %s failed: %s", self.name, window, outcome.error)
        outcome.seconds = time.perf_counter() - started
        return outcome

    def _collect(self, window: Window, outcome: WindowOutcome) -> pa.Table:
        tables: list[pa.Table] = []
        for payload in self.source.fetch(window):
            outcome.payloads += 1
            outcome.payload_bytes += payload.size
            key = None
            if self.archive is not None:
                archived = self.archive.put(payload)
                outcome.archived += int(archived.stored)
                key = archived.key
            try:
                tables.append(self.source.parse(payload))
            except HmcoError as exc:
                exc.context.setdefault("archived_key", key)
                raise
            except Exception as exc:  # a parser bug must still name the payload it choked on
                raise PayloadError(
                    f"{self.source.name} parser failed on a {payload.size:,}-byte payload: {type(exc).__name__}: {exc}; "
                    "the raw payload is archived and can be replayed after a fix",
                    archived_key=key,
                    sha256=payload.sha256,
                ) from exc
        table = _concat(tables, self.dataset)
        for transform in self.transforms:
            table = transform(table)
        # Lenient: cast what can be cast, but keep nulls, odd types and duplicates for the gate to name.
        table = conform(table, self.dataset, strict=False)
        inside = _inside_window(table, window, self.dataset.time_column)
        outcome.dropped_outside_window = table.num_rows - inside.num_rows
        return inside

    def _scope(self, table: pa.Table) -> dict[str, list[Any]]:
        """The source's own slice, narrowed by the batch's identity-partition values."""
        return {**batch_scope(self.dataset, table), **self.source.scope()}

    def _stage_gate_publish(
        self, batch: pa.Table, window: Window, outcome: WindowOutcome, advance: bool
    ) -> None:
        """Write–audit–publish: staged ← batch, gate(batch), curated ← de-duplicated batch.

        ``batch`` is as parsed (conformed leniently): the gate sees duplicates, nulls and bad types
        exactly as the source sent them. A batch that fails the gate, or that cannot be stored in its
        canonical schema, is also written to a quarantine file and nothing is published.
        """
        ds, bid = self.dataset, outcome.batch_id
        try:
            table: pa.Table | None = conform(batch, ds)
            schema_error: SchemaError | None = None
        except SchemaError as exc:
            table, schema_error = None, exc
        scope = self._scope(table) if table is not None else dict(self.source.scope())
        if table is not None and self.staged is not None:
            outcome.writes.append(
                self.staged.write(table, dataset=ds, window=window, batch_id=bid, scope=scope)
            )
        if self.gate is not None:
            result = self.gate.check(batch, ds, window)
            self._store_gate_result(result, window, bid)
            metrics_for().record_gate(result)
            outcome.warnings = [o.name for o in result.warnings]
            if not result.passed:
                names = [o.name for o in result.failed]
                kept = self._quarantine(batch, window, bid)
                if table is not None and self.staged is not None:
                    kept = f"staged and {kept}"
                raise QualityGateFailed(
                    f"{ds.name} window {window} failed {len(names)} expectation(s): {', '.join(names)}; "
                    f"nothing was published, the batch is kept in {kept} (batch {bid})",
                    failed=names,
                    result=result,
                )
        if table is None:
            assert schema_error is not None
            schema_error.context["quarantine"] = self._quarantine(batch, window, bid)
            raise schema_error
        table = dedupe_latest(table, ds.primary_key)
        outcome.rows, outcome.bytes = table.num_rows, table.nbytes
        # The other sinks (idempotent, e.g. ClickHouse) go first: the curated commit carries the
        # watermark, so it must be the last step, or a failed sink write would be skipped on resume.
        for sink in self.sinks:
            outcome.writes.append(
                sink.write(table, dataset=ds, window=window, batch_id=bid, watermark=window.end)
            )
        outcome.writes.append(
            self.curated.write(
                table,
                dataset=ds,
                window=window,
                batch_id=bid,
                watermark=window.end if advance else None,
                scope=scope,
            )
        )

    def _quarantine(self, batch: pa.Table, window: Window, batch_id: str) -> str:
        """Keep a batch that must not be published, byte-exact as Arrow saw it, for inspection."""
        import pyarrow.parquet as pq

        path = self._side_path("_quarantine", window, batch_id, "parquet")
        fs, local = self.lake.filesystem(path)
        pq.write_table(batch, local, filesystem=fs, compression="zstd")
        log.warning("%s: window %s quarantined to %s", self.name, window, path)
        return path

    def _side_path(self, folder: str, window: Window, batch_id: str, ext: str) -> str:
        root = f"{self.lake.storage_location('staged').rstrip('/')}/{folder}/{self.dataset.name}"
        fs, base = self.lake.filesystem(root)
        fs.create_dir(base, recursive=True)
        return f"{root}/{window.start.strftime('%Y%m%dT%H%M%SZ')}_{batch_id}.{ext}"

    def _advance_watermark(self, end: datetime) -> None:
        """Move the watermark forward to ``end`` without touching data (a property-only commit)."""
        from hmco.lake import WATERMARK_PREFIX

        tbl = self.lake.table(self.dataset, self.publish_tier)
        current = tbl.properties.get(WATERMARK_PREFIX + self.name)
        if current is None or datetime.fromisoformat(current) < end:
            with tbl.transaction() as tx:
                tx.set_properties({WATERMARK_PREFIX + self.name: end.isoformat()})

    def _store_gate_result(self, result: GateResult, window: Window, batch_id: str) -> str:
        """Write the gate's JSON result beside the staged data: ``_quality/<dataset>/<window>_<batch>.json``."""
        path = self._side_path("_quality", window, batch_id, "json")
        fs, local = self.lake.filesystem(path)
        doc = {**result.to_dict(), "pipeline": self.name, "batch_id": batch_id}
        with fs.open_output_stream(local) as out:
            out.write(json.dumps(doc, default=str, indent=2).encode())
        return path

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


def _inside_window(table: pa.Table, window: Window, column: str) -> pa.Table:
    """Rows in the window; rows whose time is null or unreadable stay, for the gate to name them."""
    if table.num_rows == 0 or column not in table.column_names:
        return table
    if not pa.types.is_timestamp(table.schema.field(column).type):
        return table
    ts = table.column(column)
    start, end = pa.scalar(window.start, type=ts.type), pa.scalar(window.end, type=ts.type)
    inside = pc.and_(pc.greater_equal(ts, start), pc.less(ts, end))
    return table.filter(pc.fill_null(inside, True))


def _concat(tables: Iterable[pa.Table], dataset: Dataset) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return dataset.schema.empty_table()
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")
