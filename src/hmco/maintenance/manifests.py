"""Rewrite a table's many small manifests into few, so that scan planning stays fast.

Every window commit adds a manifest; a real-time table soon has hundreds, and planning a scan opens
each one. pyiceberg 0.12 has no rewrite-manifests action (``commit.manifest-merge.enabled`` merges only
at append time, by size, once a minimum count is reached), so this module builds one on pyiceberg's
own snapshot producer: the live entries of the current snapshot's small data manifests, per partition
spec, are sorted by partition (so each new manifest covers a narrow partition range and still prunes)
and written into manifests of about ``target_manifest_size`` as EXISTING entries that keep each
file's snapshot id and data/file sequence numbers. They are committed as one ``replace`` snapshot:
the same data files, the same rows, fewer manifests. Delete manifests are kept as they are.

The commit asserts main's head, so a concurrent commit makes it fail cleanly; it is then re-planned
on the new head (a rewrite never changes data, so there is nothing else to validate). Afterwards the
new snapshot is checked against its parent: the same data files and the same row count.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from hmco._logging import get_logger
from hmco.maintenance.files import finish_report, map_io, start_report, table_name
from hmco.maintenance.report import ActionReport

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import ManifestEntry, ManifestFile
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.snapshots import Snapshot

__all__ = ["TARGET_MANIFEST_SIZE", "ManifestPlan", "plan_manifest_rewrite", "rewrite_manifests"]

log = get_logger("hmco.maintenance")

#: Iceberg's default ``commit.manifest.target-size-bytes``.
TARGET_MANIFEST_SIZE = 8 * 1024 * 1024


class ManifestPlan:
    """Which data manifests of a snapshot to merge (per partition spec) and which to keep as they are."""

    def __init__(self, groups: dict[int, list[ManifestFile]], kept: list[ManifestFile], target: int) -> None:
        self.groups = groups
        self.kept = kept
        self.target = target

    @property
    def replaced(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def estimated_manifests(self) -> int:
        """How many manifests the snapshot will have after the rewrite (an estimate from sizes)."""
        merged = sum(
            max(1, math.ceil(sum(m.manifest_length for m in group) / self.target))
            for group in self.groups.values()
        )
        return len(self.kept) + merged

    def __bool__(self) -> bool:
        return bool(self.groups)


def plan_manifest_rewrite(manifests: Sequence[ManifestFile], target_manifest_size: int) -> ManifestPlan:
    """Merge a spec's manifests smaller than the target when merging them lowers their count.

    Manifests already at the target size, delete manifests, and a spec whose small manifests would not
    get fewer are kept; so a second run right after a rewrite has nothing to do.
    """
    from pyiceberg.manifest import ManifestContent

    kept: list[ManifestFile] = []
    by_spec: dict[int, list[ManifestFile]] = defaultdict(list)
    for manifest in manifests:
        if manifest.content == ManifestContent.DATA and manifest.manifest_length < target_manifest_size:
            by_spec[manifest.partition_spec_id].append(manifest)
        else:
            kept.append(manifest)
    groups: dict[int, list[ManifestFile]] = {}
    for spec_id, small in by_spec.items():
        needed = max(1, math.ceil(sum(m.manifest_length for m in small) / target_manifest_size))
        if len(small) > needed:
            groups[spec_id] = small
        else:
            kept.extend(small)
    return ManifestPlan(groups, kept, target_manifest_size)


def rewrite_manifests(
    tbl: Table,
    *,
    target_manifest_size: int = TARGET_MANIFEST_SIZE,
    dry_run: bool = False,
    max_attempts: int = 3,
) -> ActionReport:
    """Merge the current snapshot's small manifests into few, in one ``replace`` snapshot.

    Args:
        tbl: the table (refreshed before planning).
        target_manifest_size: bytes a merged manifest aims at (Iceberg's default is 8 MiB).
        dry_run: plan and report the manifests before and (estimated) after; commit nothing.
        max_attempts: plans and commits tried while concurrent commits keep moving main.

    Returns:
        The report: manifests before and after, and one ``details`` item per partition spec merged
        (``spec_id``, ``manifests_replaced``, ``manifests_created``, ``entries``). A commit that keeps
        losing to concurrent writers, or a rewritten snapshot whose data files or row count differ
        from its parent's, is reported in ``error``.
    """
    from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException

    if target_manifest_size <= 0:
        raise ValueError("target_manifest_size must be positive")
    tbl.refresh()
    report, started = start_report(tbl, "rewrite_manifests", dry_run=dry_run)
    for attempt in range(1, max_attempts + 1):
        snapshot = tbl.current_snapshot()
        if snapshot is None:
            return finish_report(report, None, started)
        plan = plan_manifest_rewrite(snapshot.manifests(tbl.io), target_manifest_size)
        if not plan:
            return finish_report(report, None, started)
        if dry_run:
            finish_report(report, None, started)
            report.manifests_after = plan.estimated_manifests()
            report.details = [
                {"spec_id": spec_id, "manifests_replaced": len(group)}
                for spec_id, group in plan.groups.items()
            ]
            return report
        try:
            tx = tbl.transaction()
            producer = _producer_class()(tx, tbl.io, target_manifest_size)
            producer.commit()
            tx.commit_transaction()
        except CommitFailedException as exc:
            log.warning("rewriting manifests of %s lost to a concurrent commit (%s)", table_name(tbl), exc)
            if attempt == max_attempts:
                report.error = f"concurrent commits kept moving the table ({attempt} attempts): {exc}"
                return finish_report(report, tbl, started)
            tbl.refresh()
            continue
        except CommitStateUnknownException as exc:
            report.error = (
                f"the manifest rewrite may or may not have landed; check the table and re-run: {exc}"
            )
            return finish_report(report, tbl, started)
        report.details = producer.details
        problem = _verify(tbl, producer.snapshot_id)
        if problem:
            report.error = problem
        break
    return finish_report(report, tbl, started)


def _verify(tbl: Table, snapshot_id: int) -> str | None:
    """Compare the rewritten snapshot with its parent: the same data files and the same rows."""
    snapshot = tbl.metadata.snapshot_by_id(snapshot_id)
    if snapshot is None or snapshot.parent_snapshot_id is None:
        return f"the rewritten snapshot {snapshot_id} is missing from {table_name(tbl)}"
    parent = tbl.metadata.snapshot_by_id(snapshot.parent_snapshot_id)
    if parent is None:
        return f"the parent of the rewritten snapshot {snapshot_id} is missing from {table_name(tbl)}"
    before, after = _live_files(tbl, parent), _live_files(tbl, snapshot)
    if before != after:
        return (
            f"manifest rewrite changed the data files of {table_name(tbl)}: "
            f"{len(before - after)} missing, {len(after - before)} new"
        )
    return None


def _live_files(tbl: Table, snapshot: Snapshot) -> set[tuple[str, int]]:
    entries = map_io(
        lambda m: m.fetch_manifest_entry(tbl.io, discard_deleted=True), snapshot.manifests(tbl.io)
    )
    return {(e.data_file.file_path, e.data_file.record_count) for es in entries for e in es}


def _partition_key(entry: ManifestEntry) -> tuple[Any, ...]:
    """A sort key of an entry's partition tuple (nulls last), then its path."""
    partition = entry.data_file.partition
    values = tuple((1, 0) if partition[i] is None else (0, partition[i]) for i in range(len(partition)))
    return (*values, entry.data_file.file_path)


@cache
def _producer_class() -> type[Any]:
    """The rewrite-manifests snapshot producer, defined on first use so that importing this module
    does not import pyiceberg."""
    from pyiceberg.manifest import ManifestEntryStatus
    from pyiceberg.table.refs import MAIN_BRANCH
    from pyiceberg.table.snapshots import Operation, Summary
    from pyiceberg.table.update.snapshot import _SnapshotProducer
    from pyiceberg.typedef import EMPTY_DICT

    class _RewriteManifests(_SnapshotProducer["_RewriteManifests"]):
        """A ``replace`` snapshot with the branch head's data files, re-packed into fewer manifests.

        ``_existing_manifests`` re-plans from the branch head on every attempt (pyiceberg's own retry
        loop, when a table allows it, resets the parent and calls it again); nothing is added or
        deleted, so the summary carries the parent's totals.
        """

        def __init__(
            self,
            transaction: Transaction,
            io: FileIO,
            target_size: int,
            branch: str = MAIN_BRANCH,
            snapshot_properties: dict[str, str] = EMPTY_DICT,
        ) -> None:
            super().__init__(
                Operation.REPLACE, transaction, io, snapshot_properties=snapshot_properties, branch=branch
            )
            self._target_size = target_size
            self.details: list[dict[str, Any]] = []
            self._counts = {"created": 0, "kept": 0, "replaced": 0, "entries": 0}

        def _validate_concurrency(self) -> None:
            """Nothing to validate: every attempt re-reads the new head, and a rewrite changes no data."""

        def _deleted_entries(self) -> list[ManifestEntry]:
            return []

        def _existing_manifests(self) -> list[ManifestFile]:
            if self._parent_snapshot_id is None:
                return []
            head = self._transaction.table_metadata.snapshot_by_id(self._parent_snapshot_id)
            if head is None:
                raise ValueError(f"Snapshot could not be found: {self._parent_snapshot_id}")
            plan = plan_manifest_rewrite(head.manifests(self._io), self._target_size)
            created: list[ManifestFile] = []
            self.details = []
            entries_total = 0
            for spec_id, group in plan.groups.items():
                new = self._merge(spec_id, group)
                created.extend(new)
                entries = sum(m.existing_files_count or 0 for m in new)
                entries_total += entries
                self.details.append(
                    {
                        "spec_id": spec_id,
                        "manifests_replaced": len(group),
                        "manifests_created": len(new),
                        "entries": entries,
                    }
                )
            self._counts = {
                "created": len(created),
                "kept": len(plan.kept),
                "replaced": plan.replaced,
                "entries": entries_total,
            }
            return created + plan.kept

        def _merge(self, spec_id: int, group: list[ManifestFile]) -> list[ManifestFile]:
            """The live entries of ``group``, sorted by partition, in manifests of about the target size."""
            read = map_io(lambda m: m.fetch_manifest_entry(self._io, discard_deleted=False), group)
            every = [e for es in read for e in es]
            live = sorted((e for e in every if e.status != ManifestEntryStatus.DELETED), key=_partition_key)
            if not live:
                return []
            entry_bytes = sum(m.manifest_length for m in group) / max(len(every), 1)
            per_manifest = max(1, int(self._target_size // max(entry_bytes, 1.0)))
            out = []
            for start in range(0, len(live), per_manifest):
                with self.new_manifest_writer(self.spec(spec_id)) as writer:
                    for entry in live[start : start + per_manifest]:
                        writer.existing(entry)  # keeps snapshot id and data/file sequence numbers
                out.append(writer.to_manifest_file())
            return out

        def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
            parent = (
                self._transaction.table_metadata.snapshot_by_id(self._parent_snapshot_id)
                if self._parent_snapshot_id is not None
                else None
            )
            totals = {
                k: v
                for k, v in (
                    parent.summary.additional_properties if parent and parent.summary else {}
                ).items()
                if k.startswith("total-")
            }
            return Summary(
                operation=Operation.REPLACE,
                **totals,
                **{
                    "manifests-created": str(self._counts["created"]),
                    "manifests-kept": str(self._counts["kept"]),
                    "manifests-replaced": str(self._counts["replaced"]),
                    "entries-processed": str(self._counts["entries"]),
                },
                **snapshot_properties,
            )

    return _RewriteManifests
