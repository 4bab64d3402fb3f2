"""Tier retention: rows past a tier's retention leave its Iceberg tables, old payloads leave the raw tier.

Retention periods are data (:data:`hmco.lake.tiers.TIERS`); the *horizon* of a tier is ``now`` minus
its retention, and data whose time lies before the horizon goes:

- **staged, curated, ml** hold Iceberg tables. :func:`apply_retention` deletes the rows whose time
  column lies before the horizon in one Iceberg commit (files wholly past it are dropped from the
  metadata without being read, files straddling it are rewritten with their newer rows only), then
  expires every snapshot older than that commit, so the files that held the deleted rows leave
  storage (:func:`hmco.maintenance.expire.expire_snapshots`). Time travel to before the retention
  commit ends there: those snapshots would read the deleted rows. Rows at or after the horizon are
  never touched.
- **raw** holds payload objects. :func:`sweep_raw` deletes the payloads fetched before the horizon,
  on local files and on S3 alike: the guaranteed mechanism. Where the raw bucket is on S3,
  :func:`apply_raw_lifecycle` also puts an ``Expiration`` rule on it, which a store may enforce on
  its own (SeaweedFS 4.x stores the rule; it acts only where its lifecycle worker runs, or for new
  writes once the bucket's TTL fast path is switched on).

Object expiry is never put on a bucket that holds Iceberg tables: an age rule would delete data and
metadata files that live snapshots still read (:meth:`hmco.lake.Lake.apply_lifecycle_rules` refuses).
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hmco._logging import get_logger
from hmco.errors import ConfigError
from hmco.lake import Lake
from hmco.lake.tiers import TIERS
from hmco.lake.tiers import tier as get_tier
from hmco.maintenance.expire import expire_snapshots
from hmco.maintenance.files import IO_WORKERS, finish_report, start_report, table_name
from hmco.maintenance.report import ActionReport
from hmco.schemas import Dataset
from hmco.sinks.raw import RawArchive
from hmco.windows import as_utc

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

__all__ = [
    "INCOMPLETE_GRACE",
    "TABLE_TIERS",
    "apply_raw_lifecycle",
    "apply_retention",
    "retention_horizon",
    "sweep_raw",
]

log = get_logger("hmco.maintenance")

#: How old a payload body without its sidecar must be before a sweep removes it: younger, it may be
#: a put in progress (the archive writes the body, then the sidecar).
INCOMPLETE_GRACE = timedelta(days=1)

#: The tiers whose data lives in Iceberg tables (every tier but raw, which holds payload objects).
TABLE_TIERS: tuple[str, ...] = tuple(name for name in TIERS if name != "raw")


def retention_horizon(tier: str, now: datetime | None = None) -> datetime:
    """The instant before which a tier's data is past its retention: ``now`` minus the tier's retention."""
    return as_utc(now or datetime.now(UTC)) - get_tier(tier).retention


# --- Iceberg tiers --------------------------------------------------------------------------------


def apply_retention(
    lake: Lake,
    dataset: Dataset | str,
    tier: str,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    expire: bool = True,
    max_attempts: int = 3,
) -> ActionReport:
    """Delete the rows of ``dataset``'s table in ``tier`` older than the tier's retention, then expire.

    The rows go in one Iceberg commit on the main branch, filtered on the dataset's time column
    (``time_column < now - retention``): files wholly before the horizon leave the metadata unread,
    files straddling it are rewritten. Then every snapshot older than that commit is expired (branch
    and tag heads excepted, as always) and the files only they referenced are deleted.

    Args:
        lake: the lake.
        dataset: the dataset (name or :class:`~hmco.schemas.Dataset`).
        tier: ``staged``, ``curated`` or ``ml``.
        now: the current time (default: the clock); places the horizon.
        dry_run: report the rows and files past the horizon; change nothing.
        expire: expire the older snapshots afterwards so storage is freed (default). ``False`` leaves
            that to the weekly expiry; the deleted rows' files stay until then.
        max_attempts: commits tried when concurrent writers move the table meanwhile.

    Returns:
        The report: ``rows_deleted``, the files and bytes the expiry removed from storage, and
        ``details`` (the horizon; files dropped and rewritten; expired snapshots; refs still holding
        snapshots from before the horizon, whose files stay).

    Raises:
        ConfigError: the raw tier (use :func:`sweep_raw`), an unknown dataset or a table that does not exist.
    """
    from pyiceberg.exceptions import (
        CommitFailedException,
        CommitStateUnknownException,
        NoSuchTableError,
        ValidationException,
    )

    t = get_tier(tier)
    if t.name not in TABLE_TIERS:
        raise ConfigError(
            f"the {t.name} tier holds payload objects, not tables: sweep it with sweep_raw(lake)"
        )
    ds = lake.check_dataset(dataset)
    try:
        tbl = lake.table(ds, t.name, create=False)
    except NoSuchTableError:
        raise ConfigError(f"table {lake.identifier(ds, t.name)} does not exist in the lake") from None
    horizon = retention_horizon(t.name, now)
    row_filter = _before(tbl, ds.time_column, horizon)
    tbl.refresh()
    report, started = start_report(tbl, "retention", dry_run=dry_run)
    facts: dict[str, Any] = {
        "tier": t.name,
        "retention_days": t.retention.days,
        "column": ds.time_column,
        "horizon": horizon.isoformat(),
    }
    report.details.append(facts)

    if dry_run:
        scan = tbl.scan(row_filter=row_filter)
        facts["files_touched"] = sum(1 for _ in scan.plan_files())
        report.rows_deleted = scan.count() if facts["files_touched"] else 0
        return finish_report(report, None, started)

    mine: list[Snapshot] = []
    for attempt in range(1, max_attempts + 1):
        base = tbl.refresh().metadata.current_snapshot_id
        if not any(True for _ in tbl.scan(row_filter=row_filter).plan_files()):
            break  # nothing past the horizon: no commit, no expiry
        try:
            with warnings.catch_warnings(), tbl.transaction() as tx:
                warnings.filterwarnings("ignore", message="Delete operation did not match any records")
                tx.delete(row_filter)
        except (CommitFailedException, ValidationException) as exc:
            log.warning("retention on %s lost to a concurrent commit (%s)", table_name(tbl), exc)
            if attempt == max_attempts:
                report.error = f"concurrent commits kept moving the table ({attempt} attempts): {exc}"
                return finish_report(report, tbl, started)
            continue
        except CommitStateUnknownException as exc:
            report.error = f"the retention commit may or may not have landed; re-run: {exc}"
            return finish_report(report, tbl, started)
        mine = _new_snapshots(tbl, base)  # tbl holds the metadata its own commit produced
        break

    deleted = sum(_summary_int(s, "deleted-records") for s in mine)
    kept = sum(_summary_int(s, "added-records") for s in mine)
    report.rows_deleted = deleted - kept
    facts["data_files_removed"] = sum(_summary_int(s, "deleted-data-files") for s in mine)
    facts["data_files_rewritten"] = sum(_summary_int(s, "added-data-files") for s in mine)
    log.info(
        "retention %s on %s: %d row(s) before %s deleted",
        t.name,
        table_name(tbl),
        report.rows_deleted,
        horizon,
    )
    if mine and expire:
        # Every snapshot up to this commit may go: the ones before it read the deleted rows.
        cutoff_ms = max(s.timestamp_ms for s in mine) + 1
        expired = expire_snapshots(
            tbl, older_than=datetime.fromtimestamp(cutoff_ms / 1000, UTC), retain_last=1
        )
        report.removed_files = expired.removed_files
        report.removed_bytes = expired.removed_bytes
        facts["expired_snapshots"] = [d["snapshot_id"] for d in expired.details]
        if expired.error:
            report.error = f"rows deleted, but the expiry that frees their files failed: {expired.error}"
        facts["held_by_refs"] = _refs_before(tbl.refresh(), cutoff_ms)
    return finish_report(report, tbl, started)


def _before(tbl: Table, column: str, horizon: datetime) -> BooleanExpression:
    """``column < horizon`` as a pyiceberg expression, with a literal of the column's own type."""
    from pyiceberg.expressions import LessThan
    from pyiceberg.types import DateType, TimestampType

    kind = tbl.schema().find_field(column).field_type
    literal: str
    if isinstance(kind, DateType):
        literal = horizon.date().isoformat()  # the horizon's own day stays whole
    elif isinstance(kind, TimestampType):
        literal = horizon.replace(tzinfo=None).isoformat()  # naive timestamps hold UTC in hmco
    else:
        literal = horizon.isoformat()
    return LessThan(term=column, literal=literal)  # type: ignore[call-arg]


def _new_snapshots(tbl: Table, base: int | None) -> list[Snapshot]:
    """The snapshots of main's lineage after ``base``: what the commit just made."""
    out = []
    snapshot = tbl.current_snapshot()
    while snapshot is not None and snapshot.snapshot_id != base:
        out.append(snapshot)
        parent = snapshot.parent_snapshot_id
        snapshot = tbl.snapshot_by_id(parent) if parent is not None else None
    return out


def _summary_int(snapshot: Snapshot, key: str) -> int:
    summary = snapshot.summary
    value = summary.additional_properties.get(key) if summary is not None else None
    return int(value) if value else 0


def _refs_before(tbl: Table, cutoff_ms: int) -> list[dict[str, Any]]:
    """Branches and tags (other than main) whose head predates the cutoff: their files stay."""
    held = []
    for name, ref in tbl.metadata.refs.items():
        snapshot = tbl.snapshot_by_id(ref.snapshot_id)
        if name != "main" and snapshot is not None and snapshot.timestamp_ms < cutoff_ms:
            held.append({"ref": name, "snapshot_id": ref.snapshot_id})
    return held


# --- raw tier -------------------------------------------------------------------------------------


def apply_raw_lifecycle(lake: Lake) -> dict[str, Any] | None:
    """Put the raw tier's ``Expiration`` rule on its bucket where the lake is on S3; return what was put.

    Returns None on a local lake (no bucket: :func:`sweep_raw` is the mechanism there). The rule
    covers the payload archive only and is refused if the raw bucket holds Iceberg tables (see
    :meth:`hmco.lake.Lake.apply_lifecycle_rules`). Keep running :func:`sweep_raw`: a store may
    accept the rule without enforcing it.
    """
    if lake.is_local:
        return None
    return lake.apply_lifecycle_rules()


def sweep_raw(
    lake: Lake,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    archive: RawArchive | None = None,
    on_delete: Callable[[str], None] | None = None,
) -> ActionReport:
    """Delete the archived payloads fetched before the raw tier's horizon, on local files or S3.

    A payload is its ``.zst`` body and its ``.json`` sidecar, whose presence marks it complete (the
    archive writes the body first, and readers list payloads by their sidecars). The sweep deletes
    the sidecar first, then the body, so a sweep killed half-way leaves at worst a body without
    sidecar: invisible to readers, rewritten by a later put of the same bytes, and removed by the
    next sweep once older than :data:`INCOMPLETE_GRACE` (a younger one may be a put in progress).
    A sidecar whose body is missing (a put of the same bytes raced a sweep) would make readers
    fail; it is removed whatever its age, so the payload reads as absent and can be archived again.

    Args:
        lake: the lake.
        now: the current time (default: the clock); places the horizon.
        dry_run: list what would go, with sizes; delete nothing.
        archive: the archive to sweep (default: the lake's, under ``payloads``).
        on_delete: called with each object's path after it is deleted (progress, tests).

    Returns:
        The report: ``files``/``bytes`` are the payloads readers list (sidecars) before and after;
        ``removed_*`` count the objects deleted (sidecars and bodies); ``details`` has one item per
        payload: its key, bytes, and ``fetched_at``, or ``incomplete`` ("body" or "sidecar" alone).
    """
    import pyarrow.fs as pafs

    started = time.perf_counter()
    archive = archive or RawArchive(lake)
    clock = as_utc(now or datetime.now(UTC))
    horizon = retention_horizon("raw", clock)
    fs, base = archive.fs, archive.base.rstrip("/")
    listing = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    stored = {info.path: info for info in listing if info.type == pafs.FileType.File}

    def size(path: str) -> int:
        return int(stored[path].size or 0) if path in stored else 0

    sidecars = {p[len(base) + 1 : -len(".json")]: p for p in stored if p.endswith(".json")}
    bodies = {p[len(base) + 1 : -len(".zst")]: p for p in stored if p.endswith(".zst")}
    complete = sorted(k for k in sidecars if k in bodies)
    with ThreadPoolExecutor(max_workers=IO_WORKERS) as pool:
        read = pool.map(lambda k: _fetched_at(fs, sidecars[k]) or _mtime(stored[sidecars[k]]), complete)
        fetched = dict(zip(complete, read, strict=True))

    # (key, objects in deletion order, facts); the sidecar always goes before its body.
    doomed: list[tuple[str, list[str], dict[str, Any]]] = [
        (k, [sidecars[k], bodies[k]], {"fetched_at": fetched[k].isoformat()})
        for k in complete
        if fetched[k] < horizon
    ]
    doomed += [(k, [p], {"incomplete": "sidecar"}) for k, p in sidecars.items() if k not in bodies]
    doomed += [
        (k, [p], {"incomplete": "body"})
        for k, p in bodies.items()
        if k not in sidecars and _mtime(stored[p]) < clock - INCOMPLETE_GRACE
    ]

    total = sum(size(p) + size(bodies.get(k, "")) for k, p in sidecars.items())
    report = ActionReport(
        action="raw_sweep",
        table=archive.root,
        dry_run=dry_run,
        files_before=len(sidecars),
        bytes_before=total,
    )
    for k, objects, facts in sorted(doomed, key=lambda d: d[0]):
        item = {"key": k, "bytes": sum(size(o) for o in objects), **facts}
        report.details.append(item)
        if not dry_run:
            for obj in objects:
                _delete(fs, obj)
                if on_delete is not None:
                    on_delete(obj)
        report.removed_files += len(objects)
        report.removed_bytes += item["bytes"]
    listed_gone = [d for d in doomed if d[1][0].endswith(".json")]
    report.files_after = report.files_before - len(listed_gone)
    report.bytes_after = total - sum(size(o) for _, objects, _ in listed_gone for o in objects)
    report.seconds = time.perf_counter() - started
    log.info(
        "raw sweep of %s: %d payload(s) fetched before %s %s (%d objects, %d bytes)",
        archive.root,
        sum(1 for d in doomed if "fetched_at" in d[2]),
        horizon.isoformat(),
        "would go" if dry_run else "deleted",
        report.removed_files,
        report.removed_bytes,
    )
    return report


def _fetched_at(fs: pafs.FileSystem, path: str) -> datetime | None:
    """A payload's fetch time from its sidecar (None if unreadable or absent: the caller falls back)."""
    try:
        with fs.open_input_stream(path) as f:
            value = json.loads(f.read()).get("fetched_at")
        return as_utc(value) if value else None
    except (OSError, ValueError):
        return None


def _mtime(info: pafs.FileInfo) -> datetime:
    """When an object was written; one without a time counts as new (never swept on a guess)."""
    return datetime.fromtimestamp(info.mtime_ns / 1e9, UTC) if info.mtime_ns else datetime.now(UTC)


def _delete(fs: pafs.FileSystem, path: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # already gone: a concurrent or earlier sweep
        fs.delete_file(path)
