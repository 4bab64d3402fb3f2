"""Remove files under a table's location that nothing references: what crashed writers and failed
commits left behind.

Order and age are what make this safe (as in Iceberg's own ``DeleteOrphanFiles``): storage is listed
*first*, then the table is re-read and everything it references computed, and only unreferenced files
older than a safety horizon (default 3 days) go. A writer that has written its files but not yet
committed them is protected by the horizon; one that commits after the listing is read in the
reference set. Deleting is idempotent, so a sweep killed half-way is simply run again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from hmco._logging import get_logger
from hmco.errors import LakeStateError
from hmco.maintenance.files import (
    PROTECTED_NAMES,
    StoredFile,
    check_location,
    delete_files,
    finish_report,
    list_files,
    normalize_path,
    referenced_files,
    start_report,
    table_name,
)
from hmco.maintenance.report import ActionReport

if TYPE_CHECKING:
    from pyiceberg.table import Table

__all__ = ["DEFAULT_ORPHAN_HORIZON", "find_orphan_files", "remove_orphan_files"]

log = get_logger("hmco.maintenance")

DEFAULT_ORPHAN_HORIZON = timedelta(days=3)


def find_orphan_files(
    tbl: Table, *, older_than: timedelta = DEFAULT_ORPHAN_HORIZON, now: datetime | None = None
) -> list[StoredFile]:
    """The files under the table's location that no snapshot or metadata references, older than the horizon.

    Raises:
        LakeStateError: the location is a root or a bare bucket, or none of the files the table
            references under its location shows up in the listing (paths would not compare, so
            every file would look orphaned).
    """
    location = check_location(tbl)
    horizon = (now or datetime.now(UTC)) - older_than
    stored = list_files(tbl, location)  # list first, then read what is referenced
    referenced = referenced_files(tbl.refresh())
    root = normalize_path(location).rstrip("/") + "/"
    expected = {p for p in referenced if p.startswith(root)}
    listed = {f.path for f in stored}
    if expected and not expected & listed:
        raise LakeStateError(
            f"refusing to sweep {table_name(tbl)}: none of the {len(expected)} file(s) it references under "
            f"{location} is in the listing of that location"
        )
    return sorted(
        (
            f
            for f in stored
            if f.path not in referenced
            and f.modified < horizon
            and f.path.rsplit("/", 1)[-1] not in PROTECTED_NAMES
        ),
        key=lambda f: f.path,
    )


def remove_orphan_files(
    tbl: Table,
    *,
    older_than: timedelta = DEFAULT_ORPHAN_HORIZON,
    dry_run: bool = False,
    now: datetime | None = None,
    on_delete: Callable[[str], None] | None = None,
) -> ActionReport:
    """Delete the table's orphan files (see :func:`find_orphan_files`); a dry run only lists them.

    Args:
        tbl: the table.
        older_than: the safety horizon: younger unreferenced files may belong to a commit in flight.
        dry_run: list the orphans in the report, delete nothing.
        now: the current time (default: the clock), for a reproducible horizon.
        on_delete: called with each location after it is deleted (progress reporting, tests).

    Returns:
        The report, with one ``details`` item per orphan: ``{"path", "bytes", "modified"}``, and
        ``removed_files``/``removed_bytes`` (what was, or in a dry run would be, removed).
    """
    report, started = start_report(tbl, "remove_orphan_files", dry_run=dry_run)
    orphans = find_orphan_files(tbl, older_than=older_than, now=now)
    report.details = [
        {"path": f.location, "bytes": f.size, "modified": f.modified.isoformat()} for f in orphans
    ]
    report.removed_files = len(orphans)
    report.removed_bytes = sum(f.size for f in orphans)
    if not dry_run and orphans:
        delete_files(tbl, [f.location for f in orphans], on_delete=on_delete)
        log.info(
            "removed %d orphan file(s) (%d bytes) of %s", len(orphans), report.removed_bytes, table_name(tbl)
        )
    return finish_report(report, None, started)
