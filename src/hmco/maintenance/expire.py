"""Expire old snapshots, then delete the files only they referenced.

pyiceberg's ``tbl.maintenance.expire_snapshots()`` only edits metadata: it drops snapshots (skipping
branch and tag heads) and deletes no file. This module chooses what to expire (older than a cutoff,
keeping the newest ``retain_last`` of main's lineage and every ref head), commits the expiry through
that pyiceberg API, and then deletes exactly the files the expired snapshots referenced that the
table, re-read after the commit, no longer references. A file still referenced is never deleted,
and a run killed half-way leaves only unreferenced files, which :mod:`.orphans` sweeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from hmco._logging import get_logger
from hmco.maintenance.files import (
    FileRef,
    delete_files,
    finish_report,
    list_files,
    metadata_files,
    normalize_path,
    referenced_files,
    snapshot_files,
    start_report,
    table_name,
)
from hmco.maintenance.report import ActionReport

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata

__all__ = ["drop_stale_audit_branches", "expire_snapshots", "snapshots_to_expire"]

log = get_logger("hmco.maintenance")

#: Deletion order: the files a crash would leave behind are unreferenced whatever the order; data first
#: frees the most space soonest.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ORDER = {"data": 0, "delete": 1, "manifest": 2, "manifest-list": 3, "statistics": 4, "metadata": 5}


def snapshots_to_expire(metadata: TableMetadata, *, cutoff_ms: int, retain_last: int) -> list[int]:
    """Ids of the snapshots older than ``cutoff_ms`` that no rule protects.

    Protected: the current snapshot, every branch and tag head, the newest ``retain_last`` snapshots of
    main's lineage (or the branch's own ``min-snapshots-to-keep`` if larger), and for any other branch
    its ``min-snapshots-to-keep`` newest ancestors.
    """
    from pyiceberg.table.refs import MAIN_BRANCH, SnapshotRefType
    from pyiceberg.table.snapshots import ancestors_of

    protected: set[int] = {ref.snapshot_id for ref in metadata.refs.values()}
    if metadata.current_snapshot_id is not None:
        protected.add(metadata.current_snapshot_id)
    for name, ref in metadata.refs.items():
        if ref.snapshot_ref_type != SnapshotRefType.BRANCH:
            continue
        keep = ref.min_snapshots_to_keep or 1
        if name == MAIN_BRANCH:
            keep = max(keep, retain_last)
        head = metadata.snapshot_by_id(ref.snapshot_id)
        for i, snapshot in enumerate(ancestors_of(head, metadata)):
            if i >= keep:
                break
            protected.add(snapshot.snapshot_id)
    return [
        s.snapshot_id
        for s in metadata.snapshots
        if s.timestamp_ms < cutoff_ms and s.snapshot_id not in protected
    ]


def expire_snapshots(
    tbl: Table,
    *,
    older_than: timedelta | datetime,
    retain_last: int = 5,
    dry_run: bool = False,
    now: datetime | None = None,
    max_attempts: int = 3,
) -> ActionReport:
    """Expire snapshots older than ``older_than`` (an age, or a point in time) and delete their files.

    Args:
        tbl: the table (refreshed before planning).
        older_than: snapshots committed before ``now - older_than`` (or before this datetime) may go.
        retain_last: the newest snapshots of main's lineage always kept, whatever their age (>= 1).
        dry_run: plan and report what would be expired and deleted; change nothing.
        now: the current time (default: the clock), for a reproducible cutoff.
        max_attempts: commits tried when a concurrent commit moves the table meanwhile.

    Returns:
        The report: snapshots before and after, files and bytes deleted, and one ``details`` item per
        expired snapshot (``snapshot_id``, ``timestamp``, ``operation``). A commit that keeps losing
        to concurrent writers is reported in ``error``, with nothing deleted.
    """
    from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException

    if retain_last < 1:
        raise ValueError("retain_last must be at least 1: the current snapshot is never expired")
    cutoff = older_than if isinstance(older_than, datetime) else (now or datetime.now(UTC)) - older_than
    if cutoff.tzinfo is None:
        cutoff = cutoff.replace(tzinfo=UTC)
    cutoff_ms = (cutoff - _EPOCH) // timedelta(milliseconds=1)

    tbl.refresh()
    if not dry_run:
        drop_stale_audit_branches(tbl, cutoff_ms)
    report, started = start_report(tbl, "expire_snapshots", dry_run=dry_run)
    for attempt in range(1, max_attempts + 1):
        ids = snapshots_to_expire(tbl.metadata, cutoff_ms=cutoff_ms, retain_last=retain_last)
        if not ids:
            return finish_report(report, None, started)
        report.details = _describe(tbl.metadata, ids)
        expired = _expired_files(tbl, ids)
        if dry_run:
            kept = set(snapshot_files(tbl, _others(tbl.metadata, ids))) | set(metadata_files(tbl))
            doomed = _existing(tbl, {p: r for p, r in expired.items() if p not in kept})
            report.removed_files = len(doomed)
            report.removed_bytes = sum(size for _, size in doomed.values())
            finish_report(report, None, started)
            report.snapshots_after = report.snapshots_before - len(ids)
            return report
        try:
            tbl.maintenance.expire_snapshots().by_ids(ids).commit()
        except CommitFailedException as exc:
            log.warning("expiring snapshots of %s lost to a concurrent commit (%s)", table_name(tbl), exc)
            if attempt == max_attempts:
                report.details = []
                report.error = f"concurrent commits kept moving the table ({attempt} attempts): {exc}"
                return finish_report(report, tbl, started)
            tbl.refresh()
            continue
        except CommitStateUnknownException as exc:
            report.error = f"the expiry commit may or may not have landed; nothing deleted, re-run: {exc}"
            return finish_report(report, tbl, started)
        break
    # Re-read what the table references now, after the commit: concurrent commits included.
    still_referenced = referenced_files(tbl.refresh())
    doomed = _existing(tbl, {p: r for p, r in expired.items() if p not in still_referenced})
    ordered = sorted(doomed.values(), key=lambda item: _ORDER[item[0].kind])
    delete_files(tbl, [ref.location for ref, _ in ordered])
    report.removed_files = len(doomed)
    report.removed_bytes = sum(size for _, size in doomed.values())
    log.info(
        "expired %d snapshot(s) of %s, deleted %d file(s) (%d bytes)",
        len(ids),
        table_name(tbl),
        report.removed_files,
        report.removed_bytes,
    )
    return finish_report(report, tbl, started)


def drop_stale_audit_branches(tbl: Table, cutoff_ms: int) -> list[str]:
    """Drop audit branches (write–audit–publish) whose snapshot is older than the cutoff.

    A writer killed between staging and publishing leaves its ``hmco-audit-<batch>`` branch behind; the
    branch pins its snapshot and files, so upkeep drops it once it is older than the expiry horizon.
    """
    from hmco.sinks.iceberg import audit_branches

    stale = []
    for name in audit_branches(tbl):
        snapshot = tbl.metadata.snapshot_by_name(name)
        if snapshot is None or snapshot.timestamp_ms < cutoff_ms:
            stale.append(name)
    if stale:
        refs = tbl.manage_snapshots()
        for name in stale:
            refs.remove_branch(name)
        refs.commit()
        tbl.refresh()
        log.info("dropped %d stale audit branch(es) of %s: %s", len(stale), table_name(tbl), stale)
    return stale


def _others(metadata: TableMetadata, ids: list[int]) -> list[int]:
    gone = set(ids)
    return [s.snapshot_id for s in metadata.snapshots if s.snapshot_id not in gone]


def _expired_files(tbl: Table, ids: list[int]) -> dict[str, FileRef]:
    """Files the expiring snapshots reference, and their statistics files."""
    files = snapshot_files(tbl, ids)
    gone = set(ids)
    for stats in [*tbl.metadata.statistics, *tbl.metadata.partition_statistics]:
        if stats.snapshot_id in gone:
            files[normalize_path(stats.statistics_path)] = FileRef(
                stats.statistics_path, "statistics", stats.file_size_in_bytes
            )
    return files


def _existing(tbl: Table, refs: dict[str, FileRef]) -> dict[str, tuple[FileRef, int]]:
    """The referenced files that exist, with their sizes: one listing of the table's location, and a
    lookup for any file that lives elsewhere (``add_files`` can register files anywhere)."""
    if not refs:
        return {}
    stored = {f.path: f.size for f in list_files(tbl)}
    out: dict[str, tuple[FileRef, int]] = {}
    for path, ref in refs.items():
        if path in stored:
            out[path] = (ref, stored[path])
        elif not path.startswith(normalize_path(tbl.location()).rstrip("/") + "/"):
            try:
                out[path] = (ref, len(tbl.io.new_input(ref.location)))
            except (FileNotFoundError, OSError):
                continue  # already gone
    return out


def _describe(metadata: TableMetadata, ids: list[int]) -> list[dict[str, object]]:
    gone = set(ids)
    return [
        {
            "snapshot_id": s.snapshot_id,
            "timestamp": datetime.fromtimestamp(s.timestamp_ms / 1000, UTC).isoformat(),
            "operation": s.summary.operation.value if s.summary else None,
        }
        for s in metadata.snapshots
        if s.snapshot_id in gone
    ]
