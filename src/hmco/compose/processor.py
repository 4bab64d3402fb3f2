"""The one window processor: every batch, batch or real-time, takes this path and no other.

    fetch → archive → parse → transforms → conform → stage → gate → publish → extra sinks

:class:`WindowProcessor` does one window. :class:`~hmco.compose.pipeline.Pipeline` (windows, backfill,
resume) and :class:`~hmco.compose.realtime.RealtimeRunner` (cadences, lag, catch-up) both call it, and so
does anything later (schedulers, replays). It fails closed: without an explicit gate it runs the
dataset's default suite, a batch that fails the gate or cannot be stored reaches no sink and is
quarantined, and only ``gate=False`` turns the gate off, with a warning on every run.

Write–audit–publish without writing twice: the batch's data files are written once and committed to an
audit branch of the publish table (:meth:`IcebergSink.stage`) while the gate judges the batch; then the
extra sinks (e.g. ClickHouse) are written, and last main is fast-forwarded to the audited snapshot in one
commit that also carries the pipeline's state (committed window, watermark). Readers of main see nothing
before that commit; a batch that fails the gate has its branch dropped and is quarantined, and a failed
extra sink leaves the window uncommitted, so it is redone.

:meth:`WindowProcessor.collect` (fetch → … → conform) and :meth:`WindowProcessor.publish` (stage →
gate → publish) are separate so a pipeline can collect window n+1 while window n is published.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from hmco._logging import get_logger
from hmco.errors import HmcoError, NoData, PayloadError, QualityGateFailed, SchemaError
from hmco.lake import Lake
from hmco.monitoring.metrics import metrics_for
from hmco.payload import RawPayload
from hmco.quality.gate import Gate, GateResult
from hmco.schemas import Dataset, conform, get_dataset
from hmco.sinks.base import Sink, WriteResult
from hmco.sinks.iceberg import IcebergSink, StagedBatch, batch_scope
from hmco.sinks.raw import RawArchive
from hmco.sources.base import Source
from hmco.transforms.rows import dedupe_latest
from hmco.windows import Window, rows_in_window

__all__ = ["Collected", "GateChoice", "Transform", "WindowOutcome", "WindowProcessor", "resolve_gate"]

log = get_logger("hmco.processor")

Transform = Callable[[pa.Table], pa.Table]
Status = Literal["ok", "empty", "skipped", "failed"]
#: ``None``/``True``: the dataset's default suite; a :class:`Gate`: that gate; ``False``: no gate (loud).
GateChoice = Gate | bool | None

#: The column that orders revisions of the same row (see :meth:`RawPayload.version_time`).
VERSION_COLUMN = "published_at"


def resolve_gate(gate: GateChoice, dataset: Dataset) -> Gate | None:
    """The gate a processor runs: fail closed unless ``gate`` is exactly ``False``."""
    if gate is False:
        return None
    if gate is None or gate is True:
        from hmco.quality.spec import build_gate

        return build_gate(dataset)
    return gate


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
    quarantine: str | None = None
    newest_end: datetime | None = None
    #: Seconds per stage: ``collect`` (fetch, archive, parse, conform), ``gate``, ``stage`` (data files +
    #: audit branch, overlapping the gate), ``sinks``, ``publish``.
    timings: dict[str, float] = field(default_factory=dict)
    gate_result: GateResult | None = field(default=None, repr=False, compare=False)
    exception: HmcoError | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("gate_result", None)
        d.pop("exception", None)
        d["window"] = [self.window.start.isoformat(), self.window.end.isoformat()]
        d["newest_end"] = self.newest_end.isoformat() if self.newest_end else None
        return d


@dataclass
class Collected:
    """One window fetched, archived, parsed and conformed (leniently), ready for :meth:`WindowProcessor.publish`.

    ``table`` is None when collecting failed: ``outcome`` then says why.
    """

    outcome: WindowOutcome
    table: pa.Table | None = None
    started: float = 0.0
    fingerprint: str | None = None


class WindowProcessor:
    """Takes one window of one source through the whole path (see the module docstring).

    Args:
        source: where the data comes from.
        lake: the lake (raw archive, staged, quarantine, curated).
        name: the pipeline's name; its state (committed windows, watermark) is recorded under it.
        transforms: vectorized ``pa.Table -> pa.Table`` functions applied after parsing.
        gate: the quality gate (default: the dataset's default suite; ``False`` turns it off, loudly).
        sinks: sinks written after the gate passes and before the publish commit (e.g. ClickHouse).
        publish_tier: where validated data is committed (``curated`` unless the dataset says otherwise).
        publish: commit to ``publish_tier`` (off for a real-time store without a lake copy).
        stage: write–audit–publish: commit each batch to an audit branch of the publish table while the
            gate runs, then fast-forward main to it (off: the gate runs first, then one direct commit).
        archive: keep raw payloads in the raw tier (a :class:`RawArchive`, ``True`` for the lake's, or off).
        no_data: what a source's :class:`~hmco.errors.NoData` means: a failed window, or an empty one
            (real-time polling, where a missing file is simply not published yet).
        registry: the Prometheus registry gate verdicts, ingested rows/bytes and quarantines are counted
            in (default: prometheus_client's global one, which ``hmco serve`` exposes).
    """

    def __init__(
        self,
        source: Source,
        *,
        lake: Lake,
        name: str,
        transforms: Sequence[Transform] = (),
        gate: GateChoice = None,
        sinks: Sequence[Sink] = (),
        publish_tier: str | None = None,
        publish: bool = True,
        stage: bool = True,
        archive: bool | RawArchive = True,
        no_data: Literal["fail", "empty"] = "fail",
        registry: Any = None,
    ) -> None:
        self.source = source
        self.metrics = metrics_for(registry)
        self.dataset: Dataset = get_dataset(source.dataset.name)
        self.lake = lake
        self.name = name
        self.transforms = list(transforms)
        self.gate = resolve_gate(gate, self.dataset)
        self.sinks = list(sinks)
        self.publish_tier = publish_tier or self.dataset.tier
        self.curated = IcebergSink(lake, self.publish_tier, pipeline=name) if publish else None
        self.stage = stage and publish
        self._writer: ThreadPoolExecutor | None = None
        self.archive: RawArchive | None = RawArchive(lake) if archive is True else (archive or None)
        self.no_data = no_data
        self._last_version: datetime | None = None

    @property
    def gated(self) -> bool:
        return self.gate is not None

    def warn_if_ungated(self) -> None:
        """Say loudly that this run publishes without a quality gate (called once per run)."""
        if self.gate is None:
            log.warning(
                "%s: the quality gate is OFF (gate=False): batches are published without validation",
                self.name,
            )

    def process(self, window: Window, *, batch_id: str | None = None) -> WindowOutcome:
        """Fetch, archive, parse, transform, stage, gate and publish one window. Never raises for data."""
        return self.publish(self.collect(window, batch_id=batch_id))

    def collect(self, window: Window, *, batch_id: str | None = None) -> Collected:
        """Fetch, archive, parse, transform and conform (leniently) one window. Never raises for data."""
        started = time.perf_counter()
        outcome = WindowOutcome(window, "ok", batch_id=batch_id or uuid.uuid4().hex[:16])
        collected = Collected(outcome, started=started)
        try:
            collected.table, collected.fingerprint = self._collect(window, outcome)
        except HmcoError as exc:
            self._failed(outcome, exc)
        outcome.timings["collect"] = time.perf_counter() - started
        return collected

    def publish(self, collected: Collected) -> WindowOutcome:
        """Stage, gate and publish a collected window (or record it empty). Never raises for data."""
        outcome, table, window = collected.outcome, collected.table, collected.outcome.window
        try:
            if table is None:
                pass  # collecting failed: the outcome says why
            elif table.num_rows == 0:
                outcome.rows, outcome.bytes = 0, 0
                outcome.status = "empty"
                # An empty window deletes nothing (a source outage must not erase data).
                log.warning("%s: window %s returned no rows; nothing replaced", self.name, window)
                if self.curated is not None:
                    self.lake.state.record_window(
                        self.dataset, self.name, self.publish_tier, window, outcome.batch_id
                    )
            else:
                outcome.rows, outcome.bytes = table.num_rows, table.nbytes  # published rows replace this
                collected.table = None  # this frame holds the batch now: it is freed as soon as it is done
                self._stage_gate_publish(table, collected.fingerprint, window, outcome)
                del table
                self.metrics.record_ingest(self.name, self.dataset.name, outcome.rows, outcome.bytes)
                log.info(
                    "%s: window %s published: %d rows (batch %s)",
                    self.name,
                    window,
                    outcome.rows,
                    outcome.batch_id,
                )
        except QualityGateFailed as exc:
            outcome.status = "failed"
            outcome.error = str(exc)
            outcome.failed_expectations = list(exc.failed)
            outcome.gate_result = exc.result
            outcome.exception = exc
        except HmcoError as exc:
            self._failed(outcome, exc)
        if outcome.quarantine is not None:
            self.metrics.record_quarantine(self.name, self.dataset.name)
        outcome.seconds = time.perf_counter() - collected.started
        return outcome

    def _failed(self, outcome: WindowOutcome, exc: HmcoError) -> None:
        outcome.status = "failed"
        outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.exception = exc
        log.error("%s window %s failed: %s", self.name, outcome.window, outcome.error)

    def close(self) -> None:
        """Stop the background writer thread (idempotent; a new one starts on the next staged window)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    # --- fetch → archive → parse → transforms → conform ---------------------------------------------
    def _collect(self, window: Window, outcome: WindowOutcome) -> tuple[pa.Table, str | None]:
        tables: list[pa.Table] = []
        digests: list[str] = []
        last_key: str | None = None
        try:
            for payload in self.source.fetch(window):
                last_key = self._archive(payload, outcome)
                if self.archive is not None:  # the sha256 was computed by the archive already: free here
                    digests.append(f"{payload.sha256}@{payload.version_time().isoformat()}")
                tables.append(self._parse(payload, last_key))
                del payload  # the body is archived and parsed: do not keep it through the next fetch
        except NoData:
            if self.no_data == "fail":
                raise
            tables = []
        except HmcoError as exc:  # e.g. a paginated source judging a page it already yielded
            if last_key is not None:
                exc.context.setdefault("last_archived_key", last_key)
            raise
        table = _concat(tables, self.dataset)
        del tables
        for transform in self.transforms:
            table = transform(table)
        # Lenient: cast what can be cast, but keep nulls, odd types and duplicates for the gate to name.
        table = conform(table, self.dataset, strict=False)
        inside = rows_in_window(table, window, self.dataset.time_column, keep_null=True)
        outcome.dropped_outside_window = table.num_rows - inside.num_rows
        fingerprint = None
        if digests and len(digests) == outcome.payloads:
            text = "\n".join([self.name, window.start.isoformat(), window.end.isoformat(), *digests])
            fingerprint = hashlib.sha256(text.encode()).hexdigest()[:32]
        return inside, fingerprint

    def _archive(self, payload: RawPayload, outcome: WindowOutcome) -> str | None:
        outcome.payloads += 1
        outcome.payload_bytes += payload.size
        if self.archive is None:
            return None
        archived = self.archive.put(payload)
        outcome.archived += int(archived.stored)
        return archived.key

    def _parse(self, payload: RawPayload, key: str | None) -> pa.Table:
        try:
            table = self.source.parse(payload)
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
        return self._stamp_version(table, payload)

    def _stamp_version(self, table: pa.Table, payload: RawPayload) -> pa.Table:
        """Fill ``published_at`` where the dataset has it: the source's own time, else the fetch time.

        Fetch times are made strictly increasing per processor, so two payloads fetched in the same
        microsecond still order; the value travels with the rows into every sink (ClickHouse's version).
        """
        if VERSION_COLUMN not in self.dataset.schema.names:
            return table
        stamp = payload.version_time()
        if payload.published_at is None:
            if self._last_version is not None and stamp <= self._last_version:
                stamp = self._last_version + timedelta(microseconds=1)
            self._last_version = stamp
        typ = self.dataset.schema.field(VERSION_COLUMN).type
        fill = pa.scalar(stamp, typ)
        if VERSION_COLUMN in table.column_names:
            column = table.column(VERSION_COLUMN)
            if column.null_count == 0:
                return table
            filled = pc.coalesce(column.cast(typ), fill)
            return table.set_column(table.schema.get_field_index(VERSION_COLUMN), VERSION_COLUMN, filled)
        return table.append_column(pa.field(VERSION_COLUMN, typ), pa.repeat(fill, table.num_rows))

    # --- stage → gate → extra sinks → publish ----------------------------------------------------------
    def _scope(self, table: pa.Table) -> dict[str, list[Any]]:
        """The source's own slice, narrowed by the batch's identity-partition values."""
        return {**batch_scope(self.dataset, table), **self.source.scope()}

    def _stage_gate_publish(
        self, batch: pa.Table, fingerprint: str | None, window: Window, outcome: WindowOutcome
    ) -> None:
        """Write–audit–publish: audit branch ← batch while gate(batch) runs; sinks; main ← audited snapshot.

        The gate sees the batch as parsed (conformed leniently): duplicates, nulls and bad types exactly
        as the source sent them. A batch that fails the gate, or that cannot be stored in its canonical
        schema, is quarantined, reaches no sink, and its audit branch and files are dropped. Rows are
        de-duplicated (latest revision wins) unless the gate proved the primary key unique.
        """
        ds, bid = self.dataset, outcome.batch_id
        try:
            table: pa.Table | None = conform(batch, ds)
            schema_error: SchemaError | None = None
        except SchemaError as exc:
            table, schema_error = None, exc
        scope = self._scope(table) if table is not None else dict(self.source.scope())
        timings = outcome.timings
        staging: Future[StagedBatch] | None = None
        staged: StagedBatch | None = None
        published = False
        try:
            if table is not None and self.gate is not None and self.stage and self.curated is not None:
                staging = self._background(self.curated.stage, table, ds, window, bid, scope)
            unique = False
            if self.gate is not None:
                t0 = time.perf_counter()
                result = self._check(batch, window, outcome)
                timings["gate"] = time.perf_counter() - t0
                unique = _proves_unique(self.gate, result, ds)
            if table is None:
                assert schema_error is not None
                outcome.quarantine = self.lake.state.quarantine(ds, window, bid, batch)
                schema_error.context["quarantine"] = outcome.quarantine
                raise schema_error
            del batch
            t0 = time.perf_counter()
            if staging is not None:
                staged = staging.result()
                timings["stage"] = staged.seconds
                timings["stage_wait"] = time.perf_counter() - t0
            if not unique:
                deduped = dedupe_latest(table, ds.primary_key)
                if deduped is not table and staged is not None:  # rare: duplicates allowed through (warn)
                    assert self.curated is not None
                    self.curated.abandon(staged)
                    staged = self.curated.stage(deduped, dataset=ds, window=window, batch_id=bid, scope=scope)
                table = deduped
            outcome.rows, outcome.bytes = table.num_rows, table.nbytes
            outcome.newest_end = _newest_end(table, ds)
            t0 = time.perf_counter()
            for sink in self.sinks:
                outcome.writes.append(
                    sink.write(
                        table,
                        dataset=ds,
                        window=window,
                        batch_id=bid,
                        scope=scope,
                        fingerprint=fingerprint,
                    )
                )
            timings["sinks"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            if self.curated is not None:
                if staged is not None:
                    outcome.writes.append(self.curated.publish(staged))
                else:
                    outcome.writes.append(
                        self.curated.write(table, dataset=ds, window=window, batch_id=bid, scope=scope)
                    )
            published = True
            timings["publish"] = time.perf_counter() - t0
        finally:
            if not published:
                self._abandon(staging, staged)

    def _background(
        self,
        stage: Callable[..., StagedBatch],
        table: pa.Table,
        ds: Dataset,
        window: Window,
        bid: str,
        scope: Any,
    ) -> Future[StagedBatch]:
        """Write the data files and the audit branch on the writer thread (Parquet encoding releases the GIL)."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hmco-stage-{self.name}")
        return self._writer.submit(stage, table, dataset=ds, window=window, batch_id=bid, scope=scope)

    def _abandon(self, staging: Future[StagedBatch] | None, staged: StagedBatch | None) -> None:
        """Drop an audit branch that will not be published (gate failed, schema error, sink failed)."""
        if staged is None and staging is not None:
            try:
                staged = staging.result()
            except Exception as exc:  # staging itself failed: the sink discarded its files
                log.debug("%s: staging failed too: %s", self.name, exc)
                return
        if staged is not None and self.curated is not None:
            self.curated.abandon(staged)

    def _check(self, batch: pa.Table, window: Window, outcome: WindowOutcome) -> GateResult:
        assert self.gate is not None
        ds, bid = self.dataset, outcome.batch_id
        result = self.gate.check(batch, ds, window)
        self.lake.state.store_gate_result(
            ds, window, bid, {**result.to_dict(), "pipeline": self.name, "batch_id": bid}
        )
        self.metrics.record_gate(result)
        outcome.warnings = [o.name for o in result.warnings]
        outcome.gate_result = result
        if result.passed:
            return result
        names = [o.name for o in result.failed]
        outcome.quarantine = self.lake.state.quarantine(ds, window, bid, batch)
        raise QualityGateFailed(
            f"{ds.name} window {window} failed {len(names)} expectation(s): {', '.join(names)}; "
            f"nothing was published, the batch is kept in {outcome.quarantine} (batch {bid})",
            failed=names,
            result=result,
        )

    def __repr__(self) -> str:
        return f"WindowProcessor({self.name!r}, source={self.source!r}, gated={self.gated})"


def _proves_unique(gate: Gate, result: GateResult, dataset: Dataset) -> bool:
    """Whether the gate found no duplicate on (a subset of) the primary key: de-duplicating finds nothing.

    Only a gate that shows its suite can prove it; a ``unique`` expectation passing under ``mostly`` with
    duplicates does not.
    """
    suite_for = getattr(gate, "suite_for", None)
    if suite_for is None:
        return False
    keys = set(dataset.primary_key)
    checks = {e.name for e in suite_for(dataset) if e.kind == "unique" and set(e.key_columns) <= keys}
    return any(o.name in checks and o.success and o.unexpected_count == 0 for o in result.outcomes)


def _newest_end(table: pa.Table, dataset: Dataset) -> datetime | None:
    """The newest interval end in a batch (``interval_end`` if present, else ``ts`` + frequency)."""
    if table.num_rows == 0:
        return None
    if "interval_end" in table.column_names:
        newest = pc.max(table.column("interval_end")).as_py()
        return newest if isinstance(newest, datetime) else None
    newest = pc.max(table.column(dataset.time_column)).as_py()
    if not isinstance(newest, datetime):
        return None
    return newest + (dataset.frequency or timedelta(0))


def _concat(tables: list[pa.Table], dataset: Dataset) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return dataset.schema.empty_table()
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")
