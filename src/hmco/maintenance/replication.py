"""Lake replication to a DR site: an incremental, verified copy of the tier buckets to a second S3 endpoint.

::

    from hmco.maintenance.replication import register_dr_tables, replicate

    dr = Lake(Settings.load(profile_file="dr.yaml"))   # same bucket names, the DR endpoint, a DR catalog
    report = replicate(lake, dr)                         # every few minutes from the scheduler (RPO 30 min)
    register_dr_tables(dr)                               # at failover, or after each run for a warm standby

**What is copied.** Every object under the lake's tier roots (``s3://hmco-raw/<prefix>`` …: the
Iceberg tables' data files, manifests and metadata, and the raw payload archive), plus any table the
catalog places outside them, goes to the same bucket and key at the DR endpoint. Iceberg metadata holds
absolute ``s3://bucket/key`` paths, so with the same bucket names the replicated tables are valid at the
DR site as they are: a catalog whose FileIO points at the DR endpoint reads them.

**Incremental.** An object is copied when the DR site lacks it or holds it with another size. An object
the DR site holds with the same size is skipped when the DR manifest (below) vouches for it, and checked
by content hash otherwise (what a crashed run copied but could not record).

**Verified.** Each object is copied with pyarrow's own transfer (:func:`pyarrow.fs.copy_files` between
the two S3 filesystems; pyarrow does the multipart upload), then its source and its copy are read back
and their SHA-256 compared (S3 ETags are no content hash for multipart uploads). A mismatch is copied
once more, then fails the run.

**Metadata last.** The run lists the tables' ``*.metadata.json`` files *before* it lists everything
else, copies every other object first, and only when all of them are verified copies the metadata files
(per table the newest first). A metadata file at the DR site therefore only ever references files already
there: a run that dies at any point leaves every table at the DR site readable at some committed
snapshot, and the next run completes the copy.

**Records.** A run writes a manifest of what is at the DR site (every object's size and SHA-256, the
primary catalog's tables and namespaces) to ``<DR backup location>/replication/manifest.json`` and,
when every object was copied and verified, a :class:`~hmco.maintenance.backup_records.BackupRecord`
(store ``lake``, kind ``replication``, restore point = the moment the metadata was listed) in the
primary's backup catalog.

**At the DR site.** :func:`register_dr_tables` registers each table from the newest metadata file
present there (or from the metadata locations of a catalog metadata export) in the DR lake's catalog.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hmco._logging import get_logger
from hmco.errors import (
    ConfigError,
    ReplicationError,
)
from hmco.lake.tiers import TIERS
from hmco.maintenance.backup_records import BackupCatalog, BackupRecord, new_backup_id
from hmco.maintenance.catalog_backup import CatalogExport, ImportMethod, ImportReport, import_metadata
from hmco.windows import as_utc

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from pyiceberg.catalog import Catalog

    from hmco.lake import Lake

__all__ = [
    "MANIFEST_FORMAT",
    "STORE",
    "DRManifest",
    "ReplicatedObject",
    "ReplicationError",
    "ReplicationReport",
    "read_manifest",
    "register_dr_tables",
    "replicate",
]

log = get_logger("hmco.maintenance.replication")

#: The store name of replication runs in the :class:`BackupCatalog`.
STORE = "lake"
MANIFEST_FORMAT = "hmco-replication-manifest/1"
MANIFEST_NAME = "replication/manifest.json"

_CHUNK = 8 * 1024 * 1024
_VERSIONED = re.compile(r"^(\d+)-[^/]*\.metadata\.json$")  # 00003-<uuid>.metadata.json (pyiceberg, Java)
_V_FILE = re.compile(r"^v(\d+)\.metadata\.json$")  # v3.metadata.json (Hadoop tables, some REST servers)


@dataclass(frozen=True)
class ReplicatedObject:
    """One object the run put (or found) at the DR site, verified by size and SHA-256.

    Attributes:
        path: ``bucket/key``.
        action: ``copied`` (this run copied it) or ``verified`` (it was there, unrecorded, and identical).
        metadata: an Iceberg ``*.metadata.json`` file (copied in the last phase).
    """

    path: str
    size: int
    sha256: str
    action: str
    metadata: bool


@dataclass
class ReplicationReport:
    """What one :func:`replicate` run did."""

    id: str
    restore_point: datetime
    started: datetime
    finished: datetime | None = None
    copied: int = 0
    metadata_copied: int = 0
    verified: int = 0
    skipped: int = 0
    bytes_copied: int = 0
    objects: int = 0
    bytes_total: int = 0
    tables: dict[str, str] = field(default_factory=dict)
    manifest: str = ""
    record: BackupRecord | None = None
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return ((self.finished or datetime.now(UTC)) - self.started).total_seconds()

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        mb = self.bytes_copied / 1e6
        return (
            f"replication {self.id}: {self.copied} copied ({self.metadata_copied} metadata, {mb:.1f} MB), "
            f"{self.verified} verified in place, {self.skipped} skipped; {self.objects} objects "
            f"({self.bytes_total / 1e6:.1f} MB) at the DR site; {self.seconds:.1f}s"
            + (f"; {len(self.failed)} FAILED" if self.failed else "")
        )


@dataclass(frozen=True)
class DRManifest:
    """What is at the DR site: every replicated object, and the primary catalog as of the last run."""

    run: str
    restore_point: datetime
    finished: datetime
    source: str
    objects: dict[str, dict[str, Any]]
    catalog: CatalogExport | None

    def to_json(self) -> bytes:
        doc = {
            "format": MANIFEST_FORMAT,
            "run": self.run,
            "restore_point": self.restore_point.isoformat(),
            "finished": self.finished.isoformat(),
            "source": self.source,
            "catalog": json.loads(self.catalog.to_json()) if self.catalog else None,
            "objects": self.objects,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> DRManifest:
        doc = json.loads(data)
        if doc.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not an hmco replication manifest (format {doc.get('format')!r})")
        catalog = doc.get("catalog")
        return cls(
            run=doc["run"],
            restore_point=as_utc(doc["restore_point"]),
            finished=as_utc(doc["finished"]),
            source=doc.get("source", ""),
            objects=dict(doc["objects"]),
            catalog=CatalogExport.from_json(json.dumps(catalog)) if catalog else None,
        )


# --- replicate -----------------------------------------------------------------------------------


def replicate(
    primary: Lake,
    dr: Lake,
    *,
    include_backups: bool = False,
    workers: int = 8,
    chunk_size: int = _CHUNK,
    backups: BackupCatalog | None = None,
    on_copied: Callable[[ReplicatedObject], None] | None = None,
) -> ReplicationReport:
    """Copy what the DR site lacks of the primary lake, verified, metadata last; record the run.

    Args:
        primary: the lake to replicate (on S3).
        dr: the DR site: a lake with the same bucket names and storage prefix on the DR endpoint.
        include_backups: also replicate the primary's backups location (dumps, exports, records).
        workers: objects copied and verified in parallel (data phase; metadata goes one by one).
        chunk_size: the transfer's read size (pyarrow ``copy_files``).
        backups: where the run's record goes (the primary's :class:`BackupCatalog` by default).
        on_copied: called after each object is copied (or found) and verified — progress, and the
            tests' hook to kill a run part-way.

    Raises:
        ConfigError: either lake is not on S3, the bucket names differ, or both are one endpoint.
        ReplicationError: objects could not be copied or verified (named); nothing of a table's
            metadata was copied then, and no record was written. Run again to complete.
    """
    _check_sites(primary, dr)
    started = datetime.now(UTC)
    run_id = new_backup_id(STORE, "replication", started)
    src_fs, _ = primary.filesystem("s3://")
    dst_fs, _ = dr.filesystem("s3://")
    catalog = CatalogExport.of(primary.catalog, catalog_type=primary.settings.catalog.type, at=started)
    roots = _roots(primary, catalog, include_backups)
    # Metadata first, then the rest: a metadata file listed here only references files written before
    # it, which the second listing sees; so copying it last never puts the DR site ahead of its data.
    restore_point = datetime.now(UTC)
    pointers = {p: i for p, i in _listing(src_fs, roots).items() if _is_metadata(p)}
    data = {p: i for p, i in _listing(src_fs, roots).items() if not _is_metadata(p)}
    at_dr = {p: i.size for p, i in _listing(dst_fs, roots).items()}
    manifest_uri = f"{dr.backup_location()}/{MANIFEST_NAME}"
    previous = read_manifest(dr)
    known: dict[str, dict[str, Any]] = dict(previous.objects) if previous else {}
    report = ReplicationReport(run_id, restore_point, started, manifest=manifest_uri)
    for bucket in sorted({r.split("/", 1)[0] for r in roots}):
        dst_fs.create_dir(bucket, recursive=False)
    log.info(
        "replication %s: %d objects and %d metadata files under %d roots",
        run_id,
        len(data),
        len(pointers),
        len(roots),
    )

    copier = _Copier(src_fs, dst_fs, chunk_size, at_dr, known, report, on_copied)
    copier.run(sorted(data.items()), metadata=False, workers=workers)
    if not report.failed:
        for _table, files in sorted(_by_table(pointers).items()):
            copier.run(files, metadata=True, workers=1)  # newest first: the table's head moves once
    report.finished = datetime.now(UTC)
    # What is at the DR site: what it listed (and the manifest vouched for), and what this run put there.
    present = {p: known[p] for p in sorted(known) if p in at_dr or p in copier.done}
    report.objects = len(present)
    report.bytes_total = sum(int(o["size"]) for o in present.values())
    report.tables = {".".join(i): loc for i, loc in catalog.tables.items()}
    manifest = DRManifest(
        run_id, restore_point, report.finished, primary.settings.s3.endpoint or "", present, catalog
    )
    body = manifest.to_json()
    _write_verified(dr, manifest_uri, body)
    if report.failed:
        listed = "; ".join(f"{p}: {why}" for p, why in sorted(report.failed.items())[:10])
        raise ReplicationError(
            f"replication {run_id} could not copy {len(report.failed)} object(s) ({listed}); the DR site keeps "
            "its previous metadata (every table there is still readable); run again to complete",
            run=run_id,
        )
    record = BackupRecord(
        id=run_id,
        store=STORE,
        kind="replication",
        location=manifest_uri,
        restore_point=restore_point,
        started=started,
        finished=report.finished,
        size=report.bytes_total,
        checksum="sha256:" + hashlib.sha256(body).hexdigest(),
        details={
            "dr_endpoint": dr.settings.s3.endpoint or "",
            "copied": report.copied,
            "metadata_copied": report.metadata_copied,
            "verified": report.verified,
            "skipped": report.skipped,
            "bytes_copied": report.bytes_copied,
            "objects": report.objects,
            "tables": len(report.tables),
            "roots": [f"s3://{r}" for r in roots],
        },
    )
    report.record = (backups or BackupCatalog(primary)).add(record)
    log.info("%s", report)
    return report


class _Copier:
    """Copies and verifies objects, updating the run's report and the DR site's object list."""

    def __init__(
        self,
        src: pafs.FileSystem,
        dst: pafs.FileSystem,
        chunk_size: int,
        at_dr: Mapping[str, int],
        known: dict[str, dict[str, Any]],
        report: ReplicationReport,
        on_copied: Callable[[ReplicatedObject], None] | None,
    ) -> None:
        self.src, self.dst, self.chunk_size = src, dst, chunk_size
        self.at_dr, self.known, self.report, self.on_copied = at_dr, known, report, on_copied
        self.done: set[str] = set()

    def run(self, objects: Iterable[tuple[str, pafs.FileInfo]], *, metadata: bool, workers: int) -> None:
        todo = []
        for path, info in objects:
            size = int(info.size or 0)
            recorded = self.known.get(path)
            if self.at_dr.get(path) == size and recorded is not None and int(recorded["size"]) == size:
                self.report.skipped += 1
            else:
                todo.append((path, size))
        if workers <= 1:
            for path, size in todo:
                self._done(path, *self._guarded(path, size, metadata))
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hmco-replicate") as pool:
            futures = {pool.submit(self._guarded, path, size, metadata): path for path, size in todo}
            for future in as_completed(futures):
                self._done(futures[future], *future.result())

    def _guarded(self, path: str, size: int, metadata: bool) -> tuple[ReplicatedObject | None, str | None]:
        try:
            return self._one(path, size, metadata), None
        except Exception as exc:
            text = str(exc).strip()
            return None, (text.splitlines()[0] if text else type(exc).__name__)

    def _one(self, path: str, size: int, metadata: bool) -> ReplicatedObject:
        import pyarrow.fs as pafs

        if self.at_dr.get(path) == size:  # there but unrecorded (a crashed run): compare the content
            source = _sha256(self.src, path)
            if _sha256(self.dst, path) == source:
                return self._tell(ReplicatedObject(path, source[0], source[1], "verified", metadata))
        for attempt in (1, 2):
            pafs.copy_files(
                path,
                path,
                source_filesystem=self.src,
                destination_filesystem=self.dst,
                chunk_size=self.chunk_size,
                use_threads=False,
            )
            source, copy = _sha256(self.src, path), _sha256(self.dst, path)
            if source == copy:
                return self._tell(ReplicatedObject(path, source[0], source[1], "copied", metadata))
            log.warning("the copy of %s differs from its source (attempt %d)", path, attempt)
        raise ReplicationError(f"the copy of {path} differs from its source after two attempts")

    def _tell(self, obj: ReplicatedObject) -> ReplicatedObject:
        if self.on_copied is not None:
            self.on_copied(obj)
        return obj

    def _done(self, path: str, obj: ReplicatedObject | None, error: str | None) -> None:
        if obj is None:
            self.report.failed[path] = error or "failed"
            return
        self.known[path] = {"size": obj.size, "sha256": obj.sha256}
        self.done.add(path)
        if obj.action == "verified":
            self.report.verified += 1
            return
        self.report.copied += 1
        self.report.bytes_copied += obj.size
        if obj.metadata:
            self.report.metadata_copied += 1


# --- at the DR site ------------------------------------------------------------------------------


def read_manifest(dr: Lake) -> DRManifest | None:
    """The DR site's manifest (None before the first run)."""
    fs, path = dr.filesystem(f"{dr.backup_location()}/{MANIFEST_NAME}")
    try:
        with fs.open_input_stream(path, compression=None) as f:
            return DRManifest.from_json(f.read())
    except FileNotFoundError:
        return None


def register_dr_tables(
    dr: Lake,
    *,
    catalog: Catalog | None = None,
    export: CatalogExport | None = None,
    newest: bool = True,
    method: ImportMethod = "auto",
    replace: bool = True,
) -> ImportReport:
    """Register the replicated tables in a catalog at the DR site (``dr.catalog`` by default).

    The tables are those of the DR manifest, of ``export`` (a catalog metadata export), and any found
    by the lake's layout (``<tier root>/<dataset>/metadata/``) — so tables are found even before a first
    run finished. Each is registered from the newest ``*.metadata.json`` present at the DR site, or with
    ``newest=False`` from exactly the export's metadata location. Metadata is replicated last, so
    whatever is there is readable. Already registered tables are re-pointed (``replace``).

    Raises:
        ReplicationError: ``newest=False`` and a metadata file of the export is not at the DR site.
    """
    fs, _ = dr.filesystem("s3://")
    manifest = read_manifest(dr)
    locations: dict[tuple[str, ...], str] = _layout_tables(dr, fs)
    namespaces: dict[tuple[str, ...], dict[str, str]] = {}
    for source in (manifest.catalog if manifest else None, export):
        if source is not None:
            namespaces.update(source.namespaces)
            locations.update({i: _table_location(loc) for i, loc in source.tables.items()})
    chosen: dict[tuple[str, ...], str] = {}
    if export is not None and not newest:
        missing = [loc for loc in export.tables.values() if not _exists(fs, loc)]
        if missing:
            raise ReplicationError(f"not at the DR site yet: {', '.join(sorted(missing)[:5])}")
        chosen = dict(export.tables)
    else:
        for ident, location in sorted(locations.items()):
            head = _newest_metadata(fs, location)
            if head is None:
                log.info("%s: no metadata at the DR site yet (%s)", ".".join(ident), location)
                continue
            chosen[ident] = head
    for ident in chosen:
        namespaces.setdefault(ident[:-1], _tier_properties(dr, ident[:-1]))
    replicated = CatalogExport(datetime.now(UTC), "replicated", namespaces, chosen)
    return import_metadata(replicated, catalog or dr.catalog, method=method, replace=replace)


# --- helpers -------------------------------------------------------------------------------------


def _check_sites(primary: Lake, dr: Lake) -> None:
    for name, lake in (("primary", primary), ("DR", dr)):
        if lake.is_local:
            raise ConfigError(f"the {name} lake is on local files: replication copies between S3 endpoints")
    if (primary.settings.s3.endpoint or "") == (dr.settings.s3.endpoint or ""):
        raise ConfigError("the DR site must be another S3 endpoint than the primary's")
    differs = [t for t in TIERS if primary.storage_location(t) != dr.storage_location(t)]
    if differs or primary.backup_location() != dr.backup_location():
        raise ConfigError(
            "the DR lake must use the primary's bucket names and storage prefix (Iceberg metadata holds "
            f"absolute s3:// paths); they differ for {', '.join(differs) or 'the backups location'}"
        )


def _roots(primary: Lake, catalog: CatalogExport, include_backups: bool) -> list[str]:
    """``bucket[/prefix]`` roots to replicate: the tiers, tables outside them, optionally the backups."""
    wanted = {primary.storage_location(t) for t in TIERS}
    for location in catalog.tables.values():
        table = _table_location(location)
        if table.startswith("s3://") and not any(table.startswith(f"{w.rstrip('/')}/") for w in wanted):
            wanted.add(table)
    if include_backups:
        wanted.add(primary.backup_location())
    roots = sorted(w.removeprefix("s3://").rstrip("/") for w in wanted)
    return [r for r in roots if not any(r != o and r.startswith(f"{o}/") for o in roots)]


def _listing(fs: pafs.FileSystem, roots: Iterable[str]) -> dict[str, pafs.FileInfo]:
    import pyarrow.fs as pafs

    found: dict[str, pafs.FileInfo] = {}
    for root in roots:
        try:
            infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        except FileNotFoundError:
            continue
        for info in infos:
            if info.type == pafs.FileType.File:
                found[info.path] = info
    return found


def _is_metadata(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".metadata.json") or name == "version-hint.text"


def _version(name: str) -> int:
    m = _VERSIONED.match(name) or _V_FILE.match(name)
    return int(m.group(1)) if m else -1


def _by_table(pointers: Mapping[str, pafs.FileInfo]) -> dict[str, list[tuple[str, pafs.FileInfo]]]:
    """Metadata files per table folder, newest first (version, then modification time)."""
    tables: dict[str, list[tuple[str, pafs.FileInfo]]] = {}
    for path, info in pointers.items():
        tables.setdefault(path.rsplit("/", 1)[0], []).append((path, info))
    for files in tables.values():
        files.sort(key=lambda f: (_version(f[0].rsplit("/", 1)[-1]), f[1].mtime_ns or 0), reverse=True)
    return tables


def _sha256(fs: pafs.FileSystem, path: str) -> tuple[int, str]:
    """(size, SHA-256 hex) of an object's stored bytes (``compression=None``: pyarrow would otherwise
    decompress ``.zst``/``.gz`` payloads by their extension)."""
    digest = hashlib.sha256()
    size = 0
    with fs.open_input_stream(path, compression=None) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _write_verified(lake: Lake, uri: str, body: bytes) -> None:
    fs, path = lake.filesystem(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path, compression=None) as out:
        out.write(body)
    with fs.open_input_stream(path, compression=None) as f:
        if hashlib.sha256(f.read()).digest() != hashlib.sha256(body).digest():
            raise ReplicationError(f"the DR manifest {uri} did not read back as written")


def _table_location(metadata_location: str) -> str:
    return metadata_location.rsplit("/metadata/", 1)[0]


def _exists(fs: pafs.FileSystem, uri: str) -> bool:
    import pyarrow.fs as pafs

    return bool(fs.get_file_info(uri.removeprefix("s3://")).type == pafs.FileType.File)


def _newest_metadata(fs: pafs.FileSystem, table_location: str) -> str | None:
    import pyarrow.fs as pafs

    folder = f"{table_location.removeprefix('s3://').rstrip('/')}/metadata"
    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    found = [
        (_version(i.base_name), i.mtime_ns or 0, i.path)
        for i in infos
        if i.type == pafs.FileType.File
        and i.base_name.endswith(".metadata.json")
        and _version(i.base_name) >= 0
    ]
    return f"s3://{max(found)[2]}" if found else None


def _layout_tables(dr: Lake, fs: pafs.FileSystem) -> dict[tuple[str, ...], str]:
    """Tables by hmco's layout at the DR site: ``<tier root>/<dataset>/metadata/`` → ``(namespace, dataset)``."""
    import pyarrow.fs as pafs

    found: dict[tuple[str, ...], str] = {}
    for name, tier in TIERS.items():
        root = dr.storage_location(name).removeprefix("s3://").rstrip("/")
        for entry in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
            if entry.type != pafs.FileType.Directory:
                continue
            listing = fs.get_file_info(pafs.FileSelector(f"{entry.path}/metadata", allow_not_found=True))
            if any(i.base_name.endswith(".metadata.json") for i in listing):
                found[(tier.namespace, entry.base_name)] = f"s3://{entry.path}"
    return found


def _tier_properties(dr: Lake, namespace: tuple[str, ...]) -> dict[str, str]:
    for name, tier in TIERS.items():
        if (tier.namespace,) == namespace:
            return {"hmco.tier": name, "location": dr.storage_location(name)}
    return {}
