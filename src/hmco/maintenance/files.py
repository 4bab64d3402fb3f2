"""Which files an Iceberg table references, and which files its location holds: the base of upkeep.

Expiry deletes what only expired snapshots referenced, orphan removal deletes what nothing
references, and every action reports :class:`TableStats` before and after. Paths are compared
normalised (:func:`normalize_path`): ``file:///x`` and ``/x`` are one file, and so are
``s3://bucket/key`` and ``bucket/key`` (what a listing of an object store returns).

Files are listed with a pyarrow filesystem built from the table's own FileIO properties, and deleted
through ``tbl.io``, so the same code runs on local files and on S3.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, TypeVar

from hmco.errors import LakeStateError
from hmco.maintenance.report import ActionReport

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import ManifestFile
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

__all__ = [
    "FileKind",
    "FileRef",
    "StoredFile",
    "TableStats",
    "check_location",
    "delete_files",
    "finish_report",
    "list_files",
    "map_io",
    "metadata_files",
    "normalize_path",
    "referenced_files",
    "snapshot_files",
    "start_report",
    "table_name",
    "table_stats",
]

FileKind = Literal["metadata", "manifest-list", "manifest", "data", "delete", "statistics"]

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Threads for manifest reads and deletes (object stores are latency-bound, not CPU-bound).
IO_WORKERS = 8

#: Files a table's location may hold that no snapshot or metadata log names, yet must never be removed.
PROTECTED_NAMES = frozenset({"version-hint.text"})


@dataclass(frozen=True)
class FileRef:
    """A file some snapshot or the table metadata references: where it is, what it is, its size if known."""

    location: str
    kind: FileKind
    size: int | None = None


@dataclass(frozen=True)
class StoredFile:
    """An object found under a table's location: normalised ``path``, ``location`` for ``tbl.io``, size, mtime."""

    path: str
    location: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class TableStats:
    """A table's shape: the current snapshot's live data files and manifests, and its history's size.

    ``metadata_bytes`` is the size of the current metadata file (it grows with every snapshot kept).
    """

    data_files: int
    data_bytes: int
    records: int
    delete_files: int
    manifests: int
    manifest_bytes: int
    snapshots: int
    metadata_bytes: int


def table_name(tbl: Table) -> str:
    """``namespace.table`` of a pyiceberg table."""
    return ".".join(tbl.name())


def normalize_path(location: str) -> str:
    """A location as a listing returns it: an absolute path for local files, ``bucket/key`` for object stores."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    return PyArrowFileIO.parse_location(location)[2]


def _scheme(location: str) -> str:
    from pyiceberg.io.pyarrow import PyArrowFileIO

    return PyArrowFileIO.parse_location(location)[0]


# --- reachability ---------------------------------------------------------------------------------


def snapshot_files(tbl: Table, snapshot_ids: Iterable[int] | None = None) -> dict[str, FileRef]:
    """Every file the given snapshots (default: all the metadata holds, every branch and tag) need to be read.

    That is each snapshot's manifest list, its manifests, and the data and delete files its manifests
    list as live (added or existing; an entry marked deleted is a file that snapshot no longer reads).
    Keys are normalised paths. Each manifest is read once, however many snapshots share it.
    """
    metadata = tbl.metadata
    wanted = None if snapshot_ids is None else set(snapshot_ids)
    snapshots = [s for s in metadata.snapshots if wanted is None or s.snapshot_id in wanted]
    refs: dict[str, FileRef] = {}
    manifests: dict[str, ManifestFile] = {}
    for snapshot_manifests, snapshot in zip(_manifest_lists(tbl, snapshots), snapshots, strict=True):
        refs[normalize_path(snapshot.manifest_list)] = FileRef(snapshot.manifest_list, "manifest-list")
        for manifest in snapshot_manifests:
            manifests.setdefault(manifest.manifest_path, manifest)
    for manifest in manifests.values():
        refs[normalize_path(manifest.manifest_path)] = FileRef(
            manifest.manifest_path, "manifest", manifest.manifest_length
        )
    for entries in map_io(
        lambda m: m.fetch_manifest_entry(tbl.io, discard_deleted=True), list(manifests.values())
    ):
        for entry in entries:
            data_file = entry.data_file
            kind: FileKind = "data" if int(data_file.content) == 0 else "delete"
            refs.setdefault(
                normalize_path(data_file.file_path),
                FileRef(data_file.file_path, kind, data_file.file_size_in_bytes),
            )
    return refs


def _manifest_lists(tbl: Table, snapshots: list[Snapshot]) -> list[list[ManifestFile]]:
    return map_io(lambda s: s.manifests(tbl.io), snapshots)


def map_io(fn: Callable[[_T], _R], items: list[_T]) -> list[_R]:
    """``[fn(i) for i in items]`` on up to :data:`IO_WORKERS` threads (manifest reads, deletes)."""
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(IO_WORKERS, len(items))) as pool:
        return list(pool.map(fn, items))


def metadata_files(tbl: Table) -> dict[str, FileRef]:
    """The current metadata file, the ones its metadata log names, and the statistics files it lists."""
    refs: dict[str, FileRef] = {}
    if tbl.metadata_location:
        refs[normalize_path(tbl.metadata_location)] = FileRef(tbl.metadata_location, "metadata")
    for entry in tbl.metadata.metadata_log:
        refs[normalize_path(entry.metadata_file)] = FileRef(entry.metadata_file, "metadata")
    for stats in [*tbl.metadata.statistics, *tbl.metadata.partition_statistics]:
        refs[normalize_path(stats.statistics_path)] = FileRef(
            stats.statistics_path, "statistics", stats.file_size_in_bytes
        )
    return refs


def referenced_files(tbl: Table) -> set[str]:
    """Normalised paths of every file the table still references, through any snapshot or its metadata.

    Manifest lists, manifests, data and delete files of every snapshot (all branches and tags, and
    snapshots no ref reaches that the metadata still holds), statistics and partition-statistics files,
    the current metadata file and those in the metadata log. Anything else under the table's
    location is an orphan.
    """
    return set(snapshot_files(tbl)) | set(metadata_files(tbl))


# --- storage --------------------------------------------------------------------------------------


def _filesystem(tbl: Table, location: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem for ``location``, configured from the table's FileIO properties."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    io: FileIO = tbl.io
    arrow_io = io if isinstance(io, PyArrowFileIO) else PyArrowFileIO(dict(io.properties))
    scheme, netloc, path = PyArrowFileIO.parse_location(location, arrow_io.properties)
    return arrow_io.fs_by_scheme(scheme, netloc), path


def list_files(tbl: Table, location: str | None = None) -> list[StoredFile]:
    """Every object under the table's location (or ``location``), with its size and modification time.

    Works on local files and object stores alike; objects the listing returns without a modification
    time get the current time (so an age guard treats them as new, never as old).
    """
    import pyarrow.fs as pafs

    root = (location or tbl.location()).rstrip("/")
    scheme = _scheme(root)
    fs, base = _filesystem(tbl, root)
    base = base.rstrip("/")
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    now_ns = time.time_ns()
    found = []
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.startswith(base + "/"):
            continue
        path = info.path
        found.append(
            StoredFile(
                path=path,
                location=path if scheme == "file" else f"{scheme}://{path}",
                size=int(info.size or 0),
                modified=datetime.fromtimestamp((info.mtime_ns or now_ns) / 1e9, UTC),
            )
        )
    return found


def delete_files(
    tbl: Table, locations: Iterable[str], *, on_delete: Callable[[str], None] | None = None
) -> list[str]:
    """Delete files through ``tbl.io``; a file already gone counts as deleted (so a re-run is harmless).

    Returns the locations deleted. ``on_delete`` is called after each deletion (progress, tests).
    """

    def delete(location: str) -> str:
        with contextlib.suppress(FileNotFoundError):
            tbl.io.delete(location)
        if on_delete is not None:
            on_delete(location)
        return location

    return map_io(delete, list(locations))


# --- stats and reports ----------------------------------------------------------------------------


def table_stats(tbl: Table) -> TableStats:
    """Live data files, bytes and rows of the current snapshot, its manifests, the snapshot count and
    the size of the current metadata file."""
    snapshot = tbl.current_snapshot()
    data_files = data_bytes = records = delete_files_ = 0
    manifests: list[ManifestFile] = snapshot.manifests(tbl.io) if snapshot else []
    for entries in map_io(lambda m: m.fetch_manifest_entry(tbl.io, discard_deleted=True), manifests):
        for entry in entries:
            if int(entry.data_file.content) == 0:
                data_files += 1
                data_bytes += entry.data_file.file_size_in_bytes
                records += entry.data_file.record_count
            else:
                delete_files_ += 1
    metadata_bytes = 0
    if tbl.metadata_location:
        with contextlib.suppress(OSError):
            metadata_bytes = len(tbl.io.new_input(tbl.metadata_location))
    return TableStats(
        data_files=data_files,
        data_bytes=data_bytes,
        records=records,
        delete_files=delete_files_,
        manifests=len(manifests),
        manifest_bytes=sum(m.manifest_length for m in manifests),
        snapshots=len(tbl.metadata.snapshots),
        metadata_bytes=metadata_bytes,
    )


def start_report(tbl: Table, action: str, *, dry_run: bool = False) -> tuple[ActionReport, float]:
    """An :class:`ActionReport` with the table's stats as "before", and the start time for :func:`finish_report`."""
    started = time.perf_counter()
    stats = table_stats(tbl)
    report = ActionReport(
        action=action,
        table=table_name(tbl),
        dry_run=dry_run,
        files_before=stats.data_files,
        bytes_before=stats.data_bytes,
        manifests_before=stats.manifests,
        snapshots_before=stats.snapshots,
    )
    return report, started


def finish_report(
    report: ActionReport, tbl: Table | None, started: float, *, after: TableStats | None = None
) -> ActionReport:
    """Fill the "after" side (from ``after``, else from ``tbl`` refreshed; unchanged when both are None)
    and the seconds taken."""
    if after is None and tbl is not None:
        after = table_stats(tbl.refresh())
    if after is not None:
        report.files_after = after.data_files
        report.bytes_after = after.data_bytes
        report.manifests_after = after.manifests
        report.snapshots_after = after.snapshots
    else:
        report.files_after = report.files_before
        report.bytes_after = report.bytes_before
        report.manifests_after = report.manifests_before
        report.snapshots_after = report.snapshots_before
    report.seconds = time.perf_counter() - started
    return report


def check_location(tbl: Table) -> str:
    """The table's location, refusing a filesystem root or a bare bucket (a sweep there would take
    every other table's files for orphans)."""
    location = tbl.location().rstrip("/")
    depth = len([p for p in normalize_path(location).split("/") if p])
    if depth <= (0 if _scheme(location) == "file" else 1):  # "/" or "bucket"
        raise LakeStateError(
            f"refusing to sweep {table_name(tbl)}: its location {location} is a root, not a table's own folder"
        )
    return location
