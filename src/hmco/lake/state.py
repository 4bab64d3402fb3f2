"""The lake's own state, with one owner: watermarks, committed windows, batch ids, gate results, quarantine.

Every key hmco keeps beside the data is defined here and read or written only through this module:

===============================  =====================  ================================================
key                              where                  what
===============================  =====================  ================================================
``hmco.pipeline``                snapshot summary       the pipeline that committed the snapshot
``hmco.window``                  snapshot summary       ``start/end`` of the window it replaced
``hmco.batch-id``                snapshot summary       the batch (also in the data files' names)
``hmco.watermark``               snapshot summary       the pipeline's watermark after this commit
``hmco.watermark.<pipeline>``    table property         the pipeline's watermark (see below)
``hmco.committed.<pipeline>``    table property         every window the pipeline committed, merged
``_quality/<dataset>/…json``     beside staged          each gate result
``_quarantine/<dataset>/…``      beside staged          each batch that must not be published
``hmco_job_leases``              catalog database       who runs each scheduled job now (see ledger)
``hmco_job_runs``                catalog database       each job's newest handled fire and last outcome
===============================  =====================  ================================================

State rides in the same Iceberg commit as the data, so the two never disagree. *Committed windows*
are exact: resume trusts them alone, and they survive snapshot expiry because they live in a table
property (merged into intervals, so the property stays small). The *watermark* only moves through
contiguous committed time: it is the end of the run of committed windows it lies in, so it never
passes a window that was not committed, whichever of several parallel writers commits first. The
first commit of a pipeline anchors it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hmco._logging import get_logger
from hmco.windows import Window, as_utc

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

    from hmco.lake import Lake
    from hmco.lake.ledger import JobLedger
    from hmco.schemas import Dataset

__all__ = [
    "COMMITTED_PREFIX",
    "QUALITY_DIR",
    "QUARANTINE_DIR",
    "SUMMARY_BATCH_ID",
    "SUMMARY_PIPELINE",
    "SUMMARY_WATERMARK",
    "SUMMARY_WINDOW",
    "WATERMARK_PREFIX",
    "LakeState",
    "WindowCommit",
    "merge_windows",
    "window_commit",
]

log = get_logger("hmco.state")

SUMMARY_PIPELINE = "hmco.pipeline"
SUMMARY_WINDOW = "hmco.window"
SUMMARY_BATCH_ID = "hmco.batch-id"
SUMMARY_WATERMARK = "hmco.watermark"
WATERMARK_PREFIX = "hmco.watermark."
COMMITTED_PREFIX = "hmco.committed."
QUALITY_DIR = "_quality"
QUARANTINE_DIR = "_quarantine"

Interval = tuple[datetime, datetime]


def merge_windows(windows: Iterable[Interval | Window]) -> list[Interval]:
    """Sorted, non-overlapping intervals covering ``windows`` (touching intervals are joined)."""
    spans = sorted((w.start, w.end) if isinstance(w, Window) else (w[0], w[1]) for w in windows)
    merged: list[Interval] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def covered(merged: list[Interval], window: Window) -> bool:
    """Whether ``window`` lies wholly inside one of the ``merged`` intervals."""
    return any(start <= window.start and window.end <= end for start, end in merged)


def _run_end(merged: list[Interval], instant: datetime) -> datetime | None:
    """End of the merged interval that contains or ends at ``instant``."""
    for start, end in merged:
        if start <= instant <= end:
            return end
    return None


@dataclass(frozen=True)
class WindowCommit:
    """What one window commit records: snapshot-summary entries and table properties to set."""

    summary: dict[str, str]
    properties: dict[str, str]
    watermark: datetime | None = None


def window_commit(tbl: Table, *, window: Window, batch_id: str, pipeline: str | None = None) -> WindowCommit:
    """The state a commit of ``window`` carries, computed from ``tbl`` as last refreshed.

    With a ``pipeline`` the window joins the pipeline's committed windows and the watermark advances
    through contiguous committed time; without one only the batch id and window are recorded.
    """
    summary = {SUMMARY_BATCH_ID: batch_id, SUMMARY_WINDOW: _window_text(window)}
    if not pipeline:
        return WindowCommit(summary, {})
    summary[SUMMARY_PIPELINE] = pipeline
    merged = merge_windows([*_committed(tbl, pipeline), (window.start, window.end)])
    props = {COMMITTED_PREFIX + pipeline: _intervals_text(merged)}
    current = _watermark(tbl, pipeline)
    anchor = current if current is not None else window.end
    mark = _run_end(merged, anchor)
    if mark is not None and (current is None or mark > current):
        props[WATERMARK_PREFIX + pipeline] = mark.isoformat()
        summary[SUMMARY_WATERMARK] = mark.isoformat()
    return WindowCommit(summary, props, mark if mark is not None else current)


class LakeState:
    """Reads and writes hmco's state in a :class:`~hmco.lake.Lake` (use ``lake.state``)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._jobs: JobLedger | None = None

    # --- scheduled jobs ------------------------------------------------------------------------
    @property
    def jobs(self) -> JobLedger:
        """Leases and last runs of scheduled jobs (:class:`~hmco.lake.ledger.JobLedger`), in the catalog."""
        if self._jobs is None:
            from hmco.lake.ledger import JobLedger

            self._jobs = JobLedger.for_lake(self.lake)
        return self._jobs

    # --- pipelines' progress -------------------------------------------------------------------
    def watermark(self, dataset: Dataset | str, pipeline: str, tier: str | None = None) -> datetime | None:
        """The end of the contiguous committed run the pipeline's watermark lies in (None: nothing yet)."""
        tbl = self._table(dataset, tier)
        return _watermark(tbl, pipeline) if tbl is not None else None

    def committed_windows(
        self, dataset: Dataset | str, pipeline: str, tier: str | None = None
    ) -> list[Interval]:
        """Every span of time the pipeline committed to the table, as merged ``(start, end)`` intervals."""
        tbl = self._table(dataset, tier)
        return _committed(tbl, pipeline) if tbl is not None else []

    def is_committed(self, committed: list[Interval], window: Window) -> bool:
        """Whether ``window`` is inside the committed intervals (as returned by :meth:`committed_windows`)."""
        return covered(committed, window)

    def record_window(
        self, dataset: Dataset | str, pipeline: str, tier: str | None, window: Window, batch_id: str
    ) -> datetime | None:
        """Record a window that committed no data (an empty window) in a property-only commit.

        Returns the pipeline's watermark afterwards. Retries on concurrent commits.
        """
        from pyiceberg.exceptions import CommitFailedException
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

        tbl = self.lake.table(dataset, tier)
        for attempt in Retrying(
            stop=stop_after_attempt(10),
            wait=wait_random_exponential(multiplier=0.05, max=2.0),
            retry=retry_if_exception_type(CommitFailedException),
            reraise=True,
        ):
            with attempt:
                tbl.refresh()
                commit = window_commit(tbl, window=window, batch_id=batch_id, pipeline=pipeline)
                if commit.properties != {k: tbl.properties.get(k) for k in commit.properties}:
                    with tbl.transaction() as tx:
                        tx.set_properties(commit.properties)
        return commit.watermark

    # --- freshness -----------------------------------------------------------------------------
    @staticmethod
    def newest_watermark(tbl: Any) -> datetime | None:
        """The ``hmco.watermark`` of the newest snapshot in the current lineage that carries one.

        Snapshots without it (maintenance: compaction, expiry) are skipped by walking to the parent.
        """
        snap = tbl.current_snapshot()
        while snap is not None:
            summary = snap.summary
            value = summary.additional_properties.get(SUMMARY_WATERMARK) if summary is not None else None
            if value:
                return parse_instant(value)
            snap = (
                tbl.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id is not None else None
            )
        return None

    # --- gate results and quarantine -------------------------------------------------------------
    def store_gate_result(
        self, dataset: Dataset, window: Window, batch_id: str, result: Mapping[str, Any]
    ) -> str:
        """Write a gate's JSON result beside staged: ``_quality/<dataset>/<window>_<batch>.json``."""
        path = self._side_path(QUALITY_DIR, dataset, window, batch_id, "json")
        fs, local = self.lake.filesystem(path)
        with fs.open_output_stream(local) as out:
            out.write(json.dumps(dict(result), default=str, indent=2).encode())
        return path

    def quarantine(self, dataset: Dataset, window: Window, batch_id: str, batch: pa.Table) -> str:
        """Keep a batch that must not be published, byte-exact as Arrow saw it, for inspection."""
        import pyarrow.parquet as pq

        path = self._side_path(QUARANTINE_DIR, dataset, window, batch_id, "parquet")
        fs, local = self.lake.filesystem(path)
        pq.write_table(batch, local, filesystem=fs, compression="zstd")
        log.warning("%s: window %s quarantined to %s", dataset.name, window, path)
        return path

    def quarantined(self, dataset: Dataset | str) -> list[str]:
        """Paths of the quarantined batches of a dataset, oldest window first."""
        return self._side_files(QUARANTINE_DIR, dataset, ".parquet")

    def gate_results(self, dataset: Dataset | str) -> list[str]:
        """Paths of the stored gate results of a dataset, oldest window first."""
        return self._side_files(QUALITY_DIR, dataset, ".json")

    # --- helpers ---------------------------------------------------------------------------------
    def _table(self, dataset: Dataset | str, tier: str | None) -> Table | None:
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return self.lake.table(dataset, tier, create=False)
        except NoSuchTableError:
            return None

    def _side_root(self, folder: str, dataset: Dataset | str) -> str:
        name = dataset if isinstance(dataset, str) else dataset.name
        return f"{self.lake.storage_location('staged').rstrip('/')}/{folder}/{name}"

    def _side_path(self, folder: str, dataset: Dataset, window: Window, batch_id: str, ext: str) -> str:
        root = self._side_root(folder, dataset)
        fs, base = self.lake.filesystem(root)
        fs.create_dir(base, recursive=True)
        return f"{root}/{window.start.strftime('%Y%m%dT%H%M%SZ')}_{batch_id}.{ext}"

    def _side_files(self, folder: str, dataset: Dataset | str, ext: str) -> list[str]:
        import pyarrow.fs as pafs

        root = self._side_root(folder, dataset)
        fs, base = self.lake.filesystem(root)
        infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        names = sorted(
            i.base_name for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(ext)
        )
        return [f"{root}/{n}" for n in names]


def parse_instant(value: str) -> datetime:
    """A stored instant: ISO 8601, or epoch microseconds (Iceberg's own timestamp unit)."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(text))
    return as_utc(text)


def _window_text(window: Window) -> str:
    return f"{window.start.isoformat()}/{window.end.isoformat()}"


def _intervals_text(merged: list[Interval]) -> str:
    return json.dumps([[s.isoformat(), e.isoformat()] for s, e in merged], separators=(",", ":"))


def _watermark(tbl: Table, pipeline: str) -> datetime | None:
    value = tbl.properties.get(WATERMARK_PREFIX + pipeline)
    return parse_instant(value) if value else None


def _committed(tbl: Table, pipeline: str) -> list[Interval]:
    """The pipeline's committed intervals: the table property, or (tables older than it) main's lineage.

    Only main's ancestors count: a snapshot on an audit branch (write–audit–publish) carries the same
    summary keys before its gate has passed, and an abandoned one was never committed.
    """
    from pyiceberg.table.snapshots import ancestors_of

    text = tbl.properties.get(COMMITTED_PREFIX + pipeline)
    if text:
        return [(parse_instant(s), parse_instant(e)) for s, e in json.loads(text)]
    spans: list[Interval] = []
    for snap in ancestors_of(tbl.current_snapshot(), tbl.metadata):
        props = snap.summary.additional_properties if snap.summary else {}
        window = props.get(SUMMARY_WINDOW, "")
        if props.get(SUMMARY_PIPELINE) == pipeline and "/" in window:
            start, end = window.split("/", 1)
            spans.append((parse_instant(start), parse_instant(end)))
    return merge_windows(spans)
