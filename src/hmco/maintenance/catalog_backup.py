"""Catalog backups: PostgreSQL dumps, SQLite online backups, and a metadata export any catalog imports.

::

    from hmco.maintenance import catalog_backup as cb

    dump = cb.backup_catalog(lake)                    # pg_dump -Fc (sql) or sqlite3's backup API (sqlite)
    cb.restore_catalog_dump(lake, dump.id, "postgresql+psycopg2://etl@db:5432/iceberg_restored")
    export = cb.export_metadata(lake)                 # every table's metadata location, any catalog
    cb.import_metadata(cb.read_metadata_export(lake, export.id), fresh_catalog)   # re-register them all

**Dumps.** On PostgreSQL, ``pg_dump --format=custom`` of the catalog database is streamed from the
tool's stdout into the backups location (``lake.backup_location()``: the backups bucket, or
``HMCO_HOME/backups``) through a pyarrow output stream, hashed on the way; no temporary file. A restore
streams the object into ``pg_restore --single-transaction`` and refuses a target database that already
holds relations unless ``force`` is given (then ``--clean --if-exists``). On SQLite, sqlite3's online
backup API copies the live catalog into a temporary file that is then stored the same way; a restore
writes a new catalog file (a verified temporary file renamed into place).

**Metadata export.** Any catalog (sqlite, sql, rest): a JSON document of every namespace (with its
properties) and every table's current ``metadata_location``. :func:`import_metadata` re-registers each
table in a fresh catalog of any kind. Where a catalog's ``register_table`` does not serve the registered
file — SeaweedFS's REST catalog (4.48) stores the pointer but answers with an empty schema for metadata
written through S3, and confines tables to its own table bucket — ``method="replay"`` (the default for
REST catalogs) re-creates the table at the same location and commits the same snapshots (same ids, same
manifests and data files). Either way every imported table is checked against its metadata file.

**Records.** Each backup writes a :class:`~hmco.maintenance.backup_records.BackupRecord` (store
``catalog``, kind ``dump`` or ``metadata-export``, size and ``sha256:`` of the stored bytes, restore
point = start time) only after the stored object was read back and its checksum matched. A restore
checks the object against its record first (missing, truncated or altered: :class:`CatalogBackupUnusable`
naming the backup) before it touches the target: never a silent partial restore.

**Secrets.** A database password reaches ``pg_dump``/``pg_restore`` through ``PGPASSWORD`` in the child's
environment, never its command line; tool output and driver errors are redacted before they are logged or
raised.

Errors (all :class:`~hmco.errors.TerminalError`)::

    CatalogBackupError                a catalog backup or restore could not be done (names the backup)
    ├── CatalogBackupFailed           taking the backup failed; nothing was recorded
    ├── CatalogBackupUnusable         the backup is missing, truncated or differs from its record
    ├── CatalogRestoreFailed          pg_restore / an import failed (the tool's reason, redacted)
    └── CatalogRestoreTargetNotEmpty  the target database, file or table exists; pass force/replace
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import SecretStr

from hmco._logging import get_logger
from hmco.errors import (
    BackupError,
    BackupFailed,
    BackupUnusable,
    ConfigError,
    RestoreFailed,
    RestoreTargetNotEmpty,
)
from hmco.maintenance.backup_records import BackupCatalog, BackupRecord, new_backup_id
from hmco.redaction import redact_text, redact_url, register_secret
from hmco.windows import as_utc

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata

    from hmco.lake import Lake

__all__ = [
    "EXPORT_FORMAT",
    "PG_DUMP_FORMAT",
    "SQLITE_FORMAT",
    "STORE",
    "CatalogBackupError",
    "CatalogBackupFailed",
    "CatalogBackupUnusable",
    "CatalogExport",
    "CatalogRestoreFailed",
    "CatalogRestoreReport",
    "CatalogRestoreTargetNotEmpty",
    "ImportMethod",
    "ImportReport",
    "backup_catalog",
    "backup_postgres",
    "backup_sqlite",
    "export_metadata",
    "import_metadata",
    "read_metadata_export",
    "restore_catalog_dump",
    "restore_postgres",
    "restore_sqlite",
    "verify_backup",
]

log = get_logger("hmco.maintenance.catalog_backup")

#: The store name of catalog backups in the :class:`BackupCatalog`.
STORE = "catalog"
#: ``details["format"]`` of each kind of catalog backup.
PG_DUMP_FORMAT = "pg_dump-custom"
SQLITE_FORMAT = "sqlite-backup"
EXPORT_FORMAT = "hmco-catalog-export/1"

_CHUNK = 8 * 1024 * 1024
_PG_MAGIC = b"PGDMP"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_MAGIC = {PG_DUMP_FORMAT: _PG_MAGIC, SQLITE_FORMAT: _SQLITE_MAGIC}

ImportMethod = Literal["auto", "register", "replay"]


# --- errors --------------------------------------------------------------------------------------


class CatalogBackupError(BackupError):
    """A catalog backup or restore could not be done; the message names the backup."""


class CatalogBackupFailed(CatalogBackupError, BackupFailed):
    """Taking the backup failed (the tool's reason, redacted); nothing was recorded."""


class CatalogBackupUnusable(CatalogBackupError, BackupUnusable):
    """The backup's object is missing, truncated, or its bytes differ from its record."""


class CatalogRestoreFailed(CatalogBackupError, RestoreFailed):
    """``pg_restore`` or an import failed; the message carries the reason (redacted)."""


class CatalogRestoreTargetNotEmpty(CatalogBackupError, RestoreTargetNotEmpty):
    """The restore target (database, catalog file or table) already holds something; pass force/replace."""


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogRestoreReport:
    """What a dump restore did: which backup went where, how many Iceberg tables the result knows."""

    backup: BackupRecord
    target: str
    tables: int
    seconds: float

    def __str__(self) -> str:
        return f"restored {self.backup.id} into {self.target}: {self.tables} tables in {self.seconds:.2f}s"


@dataclass
class ImportReport:
    """What :func:`import_metadata` did, per table (dotted identifiers).

    Attributes:
        tables: identifier → the metadata location the target catalog serves for it now.
        registered: tables registered from their metadata file (``register_table``).
        replayed: tables re-created at their location with the same snapshots committed.
        unchanged: tables the target already served at the exported metadata location.
        namespaces_created: namespaces the import created.
    """

    tables: dict[str, str] = field(default_factory=dict)
    registered: list[str] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    namespaces_created: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CatalogExport:
    """Every namespace (with properties) and every table's current metadata location of one catalog."""

    FORMAT: ClassVar[str] = EXPORT_FORMAT

    exported_at: datetime
    catalog_type: str
    namespaces: dict[tuple[str, ...], dict[str, str]]
    tables: dict[tuple[str, ...], str]

    @classmethod
    def of(cls, catalog: Catalog, *, catalog_type: str = "", at: datetime | None = None) -> CatalogExport:
        """Read ``catalog``: its namespaces (recursively), their properties, each table's metadata location."""
        namespaces: dict[tuple[str, ...], dict[str, str]] = {}
        tables: dict[tuple[str, ...], str] = {}
        for ns in _all_namespaces(catalog):
            props = dict(catalog.load_namespace_properties(ns))
            props.pop("exists", None)  # SqlCatalog's marker row, not a property anyone set
            namespaces[ns] = props
            for ident in catalog.list_tables(ns):
                location = catalog.load_table(ident).metadata_location
                if location:
                    tables[tuple(ident)] = location
        return cls(as_utc(at or datetime.now(UTC)), catalog_type, namespaces, tables)

    def to_json(self) -> bytes:
        doc = {
            "format": self.FORMAT,
            "exported_at": self.exported_at.isoformat(),
            "catalog_type": self.catalog_type,
            "namespaces": [
                {"namespace": list(ns), "properties": props} for ns, props in sorted(self.namespaces.items())
            ],
            "tables": [
                {"identifier": list(ident), "metadata_location": loc}
                for ident, loc in sorted(self.tables.items())
            ],
        }
        return json.dumps(doc, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> CatalogExport:
        doc = json.loads(data)
        if doc.get("format") != cls.FORMAT:
            raise ValueError(f"not an hmco catalog export (format {doc.get('format')!r})")
        return cls(
            exported_at=as_utc(doc["exported_at"]),
            catalog_type=doc.get("catalog_type", ""),
            namespaces={tuple(n["namespace"]): dict(n["properties"]) for n in doc["namespaces"]},
            tables={tuple(t["identifier"]): t["metadata_location"] for t in doc["tables"]},
        )


# --- taking backups ------------------------------------------------------------------------------


def backup_catalog(lake: Lake, *, backups: BackupCatalog | None = None) -> BackupRecord:
    """Dump the lake's catalog database: ``pg_dump`` for ``sql``, the online backup API for ``sqlite``.

    Raises:
        ConfigError: a REST catalog (it has no database here: use :func:`export_metadata`).
    """
    kind = lake.settings.catalog.type
    if kind == "sql":
        return backup_postgres(lake, backups=backups)
    if kind == "sqlite":
        return backup_sqlite(lake, backups=backups)
    raise ConfigError(
        "a REST catalog keeps its database on its server: back it up with export_metadata(lake), "
        "which records every table's metadata location"
    )


def backup_postgres(
    lake: Lake, *, backups: BackupCatalog | None = None, bindir: str | Path | None = None
) -> BackupRecord:
    """``pg_dump --format=custom`` of the catalog database, streamed into the backups location.

    Raises:
        ConfigError: the catalog is not on PostgreSQL, or ``pg_dump`` is not installed.
        CatalogBackupFailed: ``pg_dump`` failed, or the stored dump did not read back identical.
    """
    cfg = lake.settings.catalog
    if cfg.type != "sql":
        raise ConfigError(f"backup_postgres needs a sql catalog on PostgreSQL, not {cfg.type!r}")
    target = _PgConnection.parse(cfg.uri or "", cfg.password)
    backups = backups or BackupCatalog(lake)
    started = datetime.now(UTC)
    backup_id = new_backup_id(STORE, "dump", started)
    uri, fs, path = _object(backups, f"{backup_id}.dump")
    cmd = [_pg_tool("pg_dump", bindir), "--format=custom", "--no-password", *target.args()]
    log.info("catalog dump %s: pg_dump of %s into %s", backup_id, target, uri)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=target.env())
        assert proc.stdout is not None
        try:
            size, digest = _write_stream(fs, path, _chunks(proc.stdout))
        except BaseException:
            proc.kill()
            proc.wait()
            _delete_quietly(fs, path)
            raise
        code = proc.wait()
        if code != 0:
            _delete_quietly(fs, path)
            raise CatalogBackupFailed(
                f"pg_dump of {target} failed (exit {code}): {_tool_error(err)}", backup=backup_id
            )
    _verify_written(fs, path, uri, size, digest, backup_id, magic=_PG_MAGIC)
    details = {
        "format": PG_DUMP_FORMAT,
        "catalog": "sql",
        "database": target.database,
        "server": target.server,
    }
    return _record(backups, backup_id, "dump", uri, started, size, digest, details)


def backup_sqlite(lake: Lake, *, backups: BackupCatalog | None = None) -> BackupRecord:
    """Copy the live SQLite catalog with sqlite3's online backup API and store the copy.

    Raises:
        ConfigError: the catalog is not SQLite.
        CatalogBackupFailed: the catalog file is missing, or the stored copy did not read back identical.
    """
    source = _sqlite_path(lake)
    backups = backups or BackupCatalog(lake)
    started = datetime.now(UTC)
    backup_id = new_backup_id(STORE, "dump", started)
    if not source.is_file():
        raise CatalogBackupFailed(f"the SQLite catalog {source} does not exist", backup=backup_id)
    uri, fs, path = _object(backups, f"{backup_id}.sqlite")
    with tempfile.TemporaryDirectory(prefix="hmco-catalog-") as tmp:
        copy = Path(tmp) / "catalog.db"
        src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
        except sqlite3.Error as exc:
            raise CatalogBackupFailed(f"sqlite backup of {source} failed: {exc}", backup=backup_id) from exc
        finally:
            dst.close()
            src.close()
        with copy.open("rb") as f:
            size, digest = _write_stream(fs, path, _chunks(f))
    _verify_written(fs, path, uri, size, digest, backup_id, magic=_SQLITE_MAGIC)
    details = {"format": SQLITE_FORMAT, "catalog": "sqlite", "source": str(source)}
    return _record(backups, backup_id, "dump", uri, started, size, digest, details)


def export_metadata(
    lake: Lake, *, backups: BackupCatalog | None = None, catalog: Catalog | None = None
) -> BackupRecord:
    """Store a :class:`CatalogExport` of the lake's catalog (any kind) as JSON in the backups location."""
    backups = backups or BackupCatalog(lake)
    started = datetime.now(UTC)
    backup_id = new_backup_id(STORE, "metadata-export", started)
    export = CatalogExport.of(catalog or lake.catalog, catalog_type=lake.settings.catalog.type, at=started)
    uri, fs, path = _object(backups, f"{backup_id}.json")
    size, digest = _write_stream(fs, path, [export.to_json()])
    _verify_written(fs, path, uri, size, digest, backup_id, magic=b"{")
    details = {
        "format": EXPORT_FORMAT,
        "catalog": export.catalog_type,
        "tables": len(export.tables),
        "namespaces": len(export.namespaces),
    }
    return _record(backups, backup_id, "metadata-export", uri, started, size, digest, details)


# --- restores ------------------------------------------------------------------------------------


def verify_backup(lake: Lake, backup: BackupRecord | str) -> BackupRecord:
    """Check a catalog backup's object against its record (present, same size, same sha256).

    Raises:
        CatalogBackupUnusable: naming the backup and its object.
    """
    record = _lookup(lake, backup)
    fs, path = lake.filesystem(record.location)
    magic = _MAGIC.get(str(record.details.get("format")), b"{" if record.kind == "metadata-export" else b"")
    size, digest, head = _hash_object(fs, path, record, magic_len=len(magic))
    if size != record.size:
        what = "truncated" if size < record.size else "longer than recorded"
        raise CatalogBackupUnusable(
            f"backup {record.id} is {what}: {record.location} holds {size} of {record.size} bytes",
            backup=record.id,
        )
    if f"sha256:{digest}" != record.checksum:
        raise CatalogBackupUnusable(
            f"backup {record.id} is corrupt: the sha256 of {record.location} differs from its record",
            backup=record.id,
        )
    if magic and not head.startswith(magic):
        raise CatalogBackupUnusable(
            f"backup {record.id} at {record.location} is not a {record.details.get('format')} file",
            backup=record.id,
        )
    return record


def restore_catalog_dump(
    lake: Lake,
    backup: BackupRecord | str,
    target: str | Path,
    *,
    password: SecretStr | str | None = None,
    force: bool = False,
) -> CatalogRestoreReport:
    """Restore a dump into ``target``: a PostgreSQL URL for a pg_dump, a file path for a SQLite backup."""
    record = _lookup(lake, backup)
    fmt = record.details.get("format")
    if fmt == PG_DUMP_FORMAT:
        return restore_postgres(lake, record, str(target), password=password, force=force)
    if fmt == SQLITE_FORMAT:
        return restore_sqlite(lake, record, target, force=force)
    raise ConfigError(f"backup {record.id} is a {record.kind} ({fmt}), not a catalog dump")


def restore_postgres(
    lake: Lake,
    backup: BackupRecord | str,
    target_uri: str,
    *,
    password: SecretStr | str | None = None,
    force: bool = False,
    bindir: str | Path | None = None,
) -> CatalogRestoreReport:
    """``pg_restore`` a catalog dump into the empty database ``target_uri`` (a SQLAlchemy URL).

    The dump is verified against its record first. The restore runs in one transaction: it lands whole
    or not at all.

    Raises:
        CatalogBackupUnusable: the dump is missing, truncated or altered (nothing was touched).
        CatalogRestoreTargetNotEmpty: the target database holds relations and ``force`` is False.
        CatalogRestoreFailed: ``pg_restore`` failed (its reason, redacted); the target is unchanged.
    """
    started = time.perf_counter()
    record = verify_backup(lake, backup)
    if record.details.get("format") != PG_DUMP_FORMAT:
        raise ConfigError(f"backup {record.id} is not a pg_dump ({record.details.get('format')})")
    target = _PgConnection.parse(target_uri, password)
    existing = target.relations()
    if existing and not force:
        raise CatalogRestoreTargetNotEmpty(
            f"refusing to restore {record.id} into {target}: the database is not empty "
            f"({', '.join(existing[:5])}{' …' if len(existing) > 5 else ''}); pass force=True to replace it",
            backup=record.id,
        )
    cmd = [
        _pg_tool("pg_restore", bindir),
        "--no-password",
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        *(["--clean", "--if-exists"] if existing else []),
        *target.args(),
    ]
    fs, path = lake.filesystem(record.location)
    log.info("restoring catalog dump %s into %s", record.id, target)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=err, env=target.env())
        assert proc.stdin is not None
        try:
            with fs.open_input_stream(path, compression=None) as src:
                for chunk in _chunks(src):
                    proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # pg_restore stopped reading: its exit code and stderr say why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.wait()
        if code != 0:
            raise CatalogRestoreFailed(
                f"pg_restore of {record.id} into {target} failed (exit {code}): {_tool_error(err)}",
                backup=record.id,
            )
    tables = target.count_iceberg_tables()
    report = CatalogRestoreReport(record, str(target), tables, time.perf_counter() - started)
    log.info("%s", report)
    return report


def restore_sqlite(
    lake: Lake, backup: BackupRecord | str, target: str | Path, *, force: bool = False
) -> CatalogRestoreReport:
    """Restore a SQLite catalog backup into a new catalog file ``target``.

    Raises:
        CatalogBackupUnusable: the backup is missing, truncated or altered (nothing was written).
        CatalogRestoreTargetNotEmpty: ``target`` is a database holding tables and ``force`` is False.
        CatalogRestoreFailed: the restored file fails SQLite's integrity check.
    """
    started = time.perf_counter()
    record = verify_backup(lake, backup)
    if record.details.get("format") != SQLITE_FORMAT:
        raise ConfigError(
            f"backup {record.id} is not a SQLite catalog backup ({record.details.get('format')})"
        )
    dest = Path(target).expanduser().resolve()
    existing = _sqlite_tables(dest)
    if existing and not force:
        raise CatalogRestoreTargetNotEmpty(
            f"refusing to restore {record.id} over {dest}: it holds tables ({', '.join(existing[:5])}); "
            "pass force=True to replace it",
            backup=record.id,
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{record.id}.restoring")
    fs, path = lake.filesystem(record.location)
    try:
        digest = hashlib.sha256()
        with fs.open_input_stream(path, compression=None) as src, partial.open("wb") as out:
            for chunk in _chunks(src):
                digest.update(chunk)
                out.write(chunk)
        if f"sha256:{digest.hexdigest()}" != record.checksum:  # changed since verify_backup read it
            raise CatalogBackupUnusable(
                f"backup {record.id} changed while it was restored from {record.location}", backup=record.id
            )
        with sqlite3.connect(partial) as con:
            check = con.execute("PRAGMA integrity_check").fetchone()
        con.close()
        if not check or check[0] != "ok":
            raise CatalogRestoreFailed(
                f"the restored SQLite catalog from {record.id} fails its integrity check: {check}",
                backup=record.id,
            )
        for suffix in ("-wal", "-shm", "-journal"):  # a replaced database's side files belong to it
            Path(f"{dest}{suffix}").unlink(missing_ok=True)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    report = CatalogRestoreReport(
        record, str(dest), _count_iceberg_tables(dest), time.perf_counter() - started
    )
    log.info("%s", report)
    return report


def read_metadata_export(lake: Lake, backup: BackupRecord | str) -> CatalogExport:
    """Read (and verify against its record) a stored metadata export."""
    record = verify_backup(lake, backup)
    if record.kind != "metadata-export":
        raise ConfigError(f"backup {record.id} is a {record.kind}, not a metadata export")
    fs, path = lake.filesystem(record.location)
    with fs.open_input_stream(path, compression=None) as f:
        data = f.read()
    try:
        return CatalogExport.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise CatalogBackupUnusable(
            f"backup {record.id} at {record.location} is not a readable catalog export: {exc}",
            backup=record.id,
        ) from None


def import_metadata(
    export: CatalogExport,
    catalog: Catalog,
    *,
    method: ImportMethod = "auto",
    replace: bool = False,
    tables: Iterable[str] | None = None,
) -> ImportReport:
    """Re-register every table of ``export`` (or only ``tables``, dotted names) in ``catalog``.

    Namespaces are created with their exported properties where missing. Each table is then
    registered from its metadata file (``method="register"``, the default for SQL catalogs), or
    re-created at its location with the same schema, partitioning, properties and snapshots committed
    (``method="replay"``, the default for REST catalogs, whose servers may not serve a registered file
    faithfully). Every imported table is checked against its metadata file: same current snapshot,
    same snapshots, same schema.

    Args:
        replace: a table the target already has at another metadata location is dropped (catalog
            entry only, never its files; SQL catalogs only) and imported again.

    Raises:
        CatalogRestoreTargetNotEmpty: a table exists at another location and ``replace`` is False.
        CatalogRestoreFailed: naming every table that could not be imported (the others were).
        CatalogBackupUnusable: a metadata file of the export is missing.
    """
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    wanted = set(tables) if tables is not None else None
    chosen = {i: loc for i, loc in export.tables.items() if wanted is None or ".".join(i) in wanted}
    # First every check, then any change: an unusable export or a conflicting table changes nothing.
    plans = [_plan_table(catalog, ident, loc, replace=replace) for ident, loc in sorted(chosen.items())]
    report = ImportReport()
    needed = dict(export.namespaces)
    for ident in chosen:
        needed.setdefault(ident[:-1], {})
    for ns, props in sorted(needed.items()):
        try:
            catalog.create_namespace(ns, properties=props)
            report.namespaces_created.append(".".join(ns))
        except NamespaceAlreadyExistsError:
            pass
    failures: dict[str, str] = {}
    for plan in plans:
        try:
            outcome, served = _import_table(catalog, plan, method=method)
        except Exception as exc:
            text = str(exc).strip()
            failures[plan.name] = redact_text(text.splitlines()[0] if text else repr(exc))
            continue
        report.tables[plan.name] = served
        getattr(report, outcome).append(plan.name)
    if failures:
        listed = "; ".join(f"{k}: {v}" for k, v in sorted(failures.items()))
        raise CatalogRestoreFailed(
            f"{len(failures)} of {len(chosen)} tables could not be imported ({listed}); "
            f"imported: {', '.join(sorted(report.tables)) or 'none'}"
        )
    log.info(
        "imported %d tables (%d registered, %d replayed, %d unchanged)",
        len(report.tables),
        len(report.registered),
        len(report.replayed),
        len(report.unchanged),
    )
    return report


# --- import internals ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _TablePlan:
    ident: tuple[str, ...]
    location: str
    source: TableMetadata
    existing: Table | None

    @property
    def name(self) -> str:
        return ".".join(self.ident)


def _plan_table(catalog: Catalog, ident: tuple[str, ...], location: str, *, replace: bool) -> _TablePlan:
    """Read a table's metadata file and what the target has under its name; refuse a conflict."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    name = ".".join(ident)
    source = _read_metadata(catalog, name, location)
    try:
        existing: Table | None = catalog.load_table(ident)
    except (NoSuchTableError, NoSuchNamespaceError):
        existing = None
    if existing is not None and not _same(existing, location, source):
        if not replace:
            raise CatalogRestoreTargetNotEmpty(
                f"{name} already exists in the target catalog (at {existing.metadata_location}); "
                "pass replace=True to re-point it"
            )
        if _is_rest(catalog):
            raise ConfigError(
                f"{name} exists in the REST catalog: replacing would drop it, and a REST server may purge "
                "its files on drop; drop it yourself if that is safe, then import again"
            )
    return _TablePlan(ident, location, source, existing)


def _same(table: Table, location: str, source: TableMetadata) -> bool:
    return table.metadata_location == location or _faithful(table.metadata, source) is None


def _import_table(catalog: Catalog, plan: _TablePlan, *, method: ImportMethod) -> tuple[str, str]:
    """Import one table; returns (``registered`` | ``replayed`` | ``unchanged``, served metadata location)."""
    if plan.existing is not None:
        if _same(plan.existing, plan.location, plan.source):
            return "unchanged", plan.existing.metadata_location
        catalog.drop_table(plan.ident)  # replace=True on a SQL catalog: its row only; the files stay
    resolved = method if method != "auto" else ("replay" if _is_rest(catalog) else "register")
    if resolved == "register":
        catalog.register_table(plan.ident, plan.location)
        outcome = "registered"
    elif resolved == "replay":
        _replay(catalog, plan.ident, plan.source)
        outcome = "replayed"
    else:
        raise ConfigError(f"unknown import method {method!r}; use 'auto', 'register' or 'replay'")
    table = catalog.load_table(plan.ident)
    problem = _faithful(table.metadata, plan.source)
    if problem is not None:
        hint = " (the catalog did not take the registered file: import with method='replay')"
        raise CatalogRestoreFailed(
            f"{plan.name} was {outcome} but the catalog serves other metadata than {plan.location}: {problem}"
            + (hint if outcome == "registered" else "")
        )
    return outcome, table.metadata_location


def _replay(catalog: Catalog, ident: tuple[str, ...], source: TableMetadata) -> Table:
    """Create the table at its location from ``source`` and commit its snapshots and refs (same ids)."""
    from pyiceberg.table.update import (
        AddPartitionSpecUpdate,
        AddSchemaUpdate,
        AddSnapshotUpdate,
        AssertTableUUID,
        SetCurrentSchemaUpdate,
        SetDefaultSpecUpdate,
        SetSnapshotRefUpdate,
        TableUpdate,
    )

    schemas = sorted(source.schemas, key=lambda s: s.schema_id)
    specs = sorted(source.partition_specs, key=lambda s: s.spec_id)
    table = catalog.create_table(
        ident,
        schema=schemas[0],
        location=source.location,
        partition_spec=specs[0],
        sort_order=source.sort_order_by_id(source.default_sort_order_id) or _unsorted(),
        properties=dict(source.properties),
    )
    updates: list[TableUpdate] = []
    for schema in schemas[1:]:
        updates.append(AddSchemaUpdate(schema_=schema))
    if len(schemas) > 1:
        updates.append(SetCurrentSchemaUpdate(schema_id=source.current_schema_id))
    for spec in specs[1:]:
        updates.append(AddPartitionSpecUpdate(spec=spec))
    if len(specs) > 1:
        updates.append(SetDefaultSpecUpdate(spec_id=source.default_spec_id))
    for snapshot in sorted(source.snapshots, key=lambda s: (s.sequence_number or 0, s.timestamp_ms)):
        updates.append(AddSnapshotUpdate(snapshot=snapshot))
    for ref_name, ref in sorted(source.refs.items(), key=lambda kv: kv[0] == "main"):
        updates.append(
            SetSnapshotRefUpdate(
                ref_name=ref_name,
                type=ref.snapshot_ref_type,
                snapshot_id=ref.snapshot_id,
                max_ref_age_ms=ref.max_ref_age_ms,
                max_snapshot_age_ms=ref.max_snapshot_age_ms,
                min_snapshots_to_keep=ref.min_snapshots_to_keep,
            )
        )
    if updates:
        catalog.commit_table(table, (AssertTableUUID(uuid=table.metadata.table_uuid),), tuple(updates))
    return table


def _unsorted() -> Any:
    from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

    return UNSORTED_SORT_ORDER


def _faithful(served: TableMetadata, source: TableMetadata) -> str | None:
    """None when ``served`` gives the same data as ``source``; else what differs."""
    if served.current_snapshot_id != source.current_snapshot_id:
        return f"current snapshot {served.current_snapshot_id} instead of {source.current_snapshot_id}"
    missing = {s.snapshot_id for s in source.snapshots} - {s.snapshot_id for s in served.snapshots}
    if missing:
        return f"{len(missing)} snapshot(s) missing"
    if served.schema().as_struct() != source.schema().as_struct():
        return "a different current schema"
    served_schemas = {s.schema_id: s.as_struct() for s in served.schemas}
    for schema in source.schemas:
        if served_schemas.get(schema.schema_id) != schema.as_struct():
            return f"schema {schema.schema_id} differs"
    if served.spec().fields != source.spec().fields:
        return "a different partition spec"
    return None


def _read_metadata(catalog: Catalog, name: str, location: str) -> TableMetadata:
    from pyiceberg.io import load_file_io
    from pyiceberg.serializers import FromInputFile

    io = load_file_io(dict(catalog.properties), location)
    try:
        return FromInputFile.table_metadata(io.new_input(location))
    except FileNotFoundError:
        raise CatalogBackupUnusable(f"the metadata file of {name} is missing: {location}") from None


def _is_rest(catalog: Catalog) -> bool:
    from pyiceberg.catalog.rest import RestCatalog

    return isinstance(catalog, RestCatalog)


def _all_namespaces(catalog: Catalog) -> list[tuple[str, ...]]:
    """Every namespace, nested ones included (parents first)."""
    found: list[tuple[str, ...]] = []
    queue: list[tuple[str, ...]] = [tuple(ns) for ns in catalog.list_namespaces()]
    seen: set[tuple[str, ...]] = set()
    while queue:
        ns = queue.pop(0)
        if ns in seen:
            continue
        seen.add(ns)
        found.append(ns)
        try:
            children = [tuple(c) for c in catalog.list_namespaces(ns)]
        except Exception:  # a catalog without nested namespaces may refuse the call
            children = []
        queue.extend(c for c in children if len(c) > len(ns) and c[: len(ns)] == ns)
    return found


# --- storage helpers -----------------------------------------------------------------------------


def _object(backups: BackupCatalog, name: str) -> tuple[str, pafs.FileSystem, str]:
    """URI, filesystem and path of a new backup object under ``<backup location>/catalog/``."""
    fs, base = backups.filesystem()
    folder = f"{base.rstrip('/')}/{STORE}"
    fs.create_dir(folder, recursive=True)
    return f"{backups.location}/{STORE}/{name}", fs, f"{folder}/{name}"


def _chunks(stream: IO[bytes] | Any) -> Iterator[bytes]:
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return
        yield bytes(chunk)


def _write_stream(fs: pafs.FileSystem, path: str, chunks: Iterable[bytes]) -> tuple[int, str]:
    """Write ``chunks`` to ``path`` (pyarrow's output stream does the multipart upload); (size, sha256)."""
    digest = hashlib.sha256()
    size = 0
    with fs.open_output_stream(path, compression=None) as out:
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _hash_object(
    fs: pafs.FileSystem, path: str, record: BackupRecord | None = None, *, magic_len: int = 0
) -> tuple[int, str, bytes]:
    """(size, sha256 hex, first bytes) of a stored object; a missing one is :class:`CatalogBackupUnusable`."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        with fs.open_input_stream(path, compression=None) as f:
            for chunk in _chunks(f):
                if len(head) < magic_len:
                    head += chunk[: magic_len - len(head)]
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        if record is None:
            raise
        raise CatalogBackupUnusable(
            f"backup {record.id} is missing: nothing at {record.location}", backup=record.id
        ) from None
    return size, digest.hexdigest(), head


def _verify_written(
    fs: pafs.FileSystem, path: str, uri: str, size: int, digest: str, backup_id: str, *, magic: bytes
) -> None:
    """Read a just-written backup back; a difference deletes it and fails the backup."""
    try:
        got_size, got_digest, head = _hash_object(fs, path, magic_len=len(magic))
    except FileNotFoundError:
        got_size, got_digest, head = -1, "", b""
    problem = None
    if (got_size, got_digest) != (size, digest):
        problem = f"read back {got_size} bytes with another checksum than the {size} bytes written"
    elif magic and not head.startswith(magic):
        problem = "its header is not the expected format's"
    if problem:
        _delete_quietly(fs, path)
        raise CatalogBackupFailed(f"backup {backup_id} at {uri} did not verify: {problem}", backup=backup_id)


def _record(
    backups: BackupCatalog,
    backup_id: str,
    kind: str,
    uri: str,
    started: datetime,
    size: int,
    digest: str,
    details: Mapping[str, Any],
) -> BackupRecord:
    record = BackupRecord(
        id=backup_id,
        store=STORE,
        kind=kind,
        location=uri,
        restore_point=started,
        started=started,
        finished=datetime.now(UTC),
        size=size,
        checksum=f"sha256:{digest}",
        details=dict(details),
    )
    backups.add(record)
    log.info("catalog %s %s: %d bytes at %s", kind, backup_id, size, uri)
    return record


def _lookup(lake: Lake, backup: BackupRecord | str) -> BackupRecord:
    return backup if isinstance(backup, BackupRecord) else BackupCatalog(lake).get(backup)


def _delete_quietly(fs: pafs.FileSystem, path: str) -> None:
    with contextlib.suppress(OSError):
        fs.delete_file(path)


def _tool_error(err: IO[bytes]) -> str:
    err.seek(0)
    text = err.read().decode(errors="replace").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return redact_text(" | ".join(lines[-5:])) or "no message"


# --- PostgreSQL ----------------------------------------------------------------------------------


def _pg_tool(name: str, bindir: str | Path | None = None) -> str:
    """The newest installed PostgreSQL client tool ``name`` (a dump needs a client >= the server)."""
    if bindir is not None:
        candidate = Path(bindir) / name
        if candidate.is_file():
            return str(candidate)
        raise ConfigError(f"{name} not found in {bindir}")
    versioned = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    found = versioned[-1] if versioned else shutil.which(name)
    if not found:
        raise ConfigError(
            f"{name} is not installed: install PostgreSQL's client tools "
            "(Debian: apt-get install postgresql-client; `make test` installs them)"
        )
    return found


@dataclass(frozen=True)
class _PgConnection:
    """libpq connection parameters from a SQLAlchemy URL; the password only ever goes to PGPASSWORD."""

    url: str
    host: str | None
    port: int | None
    user: str | None
    database: str
    password: str | None
    sslmode: str | None

    @classmethod
    def parse(cls, uri: str, password: SecretStr | str | None = None) -> _PgConnection:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(uri)
        except ArgumentError:
            raise ConfigError(f"not a database URL: {redact_url(uri)}") from None
        if not url.drivername.startswith("postgresql"):
            raise ConfigError(f"not a PostgreSQL URL: {redact_url(uri)}")
        if not url.database:
            raise ConfigError(f"the URL names no database: {redact_url(uri)}")
        secret = password.get_secret_value() if isinstance(password, SecretStr) else password
        secret = secret or url.password
        if secret:
            register_secret(str(secret))
        query = dict(url.query)
        host = url.host or (str(query["host"]) if "host" in query else None)
        sslmode = str(query["sslmode"]) if "sslmode" in query else None
        return cls(uri, host, url.port, url.username, url.database, str(secret) if secret else None, sslmode)

    @property
    def server(self) -> str:
        return f"{self.host or 'localhost'}:{self.port or 5432}"

    def __str__(self) -> str:
        return f"postgresql://{self.user + '@' if self.user else ''}{self.server}/{self.database}"

    def args(self) -> list[str]:
        out: list[str] = []
        if self.host:
            out += ["--host", self.host]
        if self.port:
            out += ["--port", str(self.port)]
        if self.user:
            out += ["--username", self.user]
        return [*out, "--dbname", self.database]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("PGCONNECT_TIMEOUT", "15")
        if self.password:
            env["PGPASSWORD"] = self.password
        if self.sslmode:
            env["PGSSLMODE"] = self.sslmode
        return env

    def _query(self, run: Callable[[Any], Any]) -> Any:
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url

        url = make_url(self.url)
        if self.password:
            url = url.set(password=self.password)
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                return run(conn)
        except sa.exc.SQLAlchemyError as exc:
            cause: Any = getattr(exc, "orig", None) or exc
            message = str(cause).strip().splitlines()
            raise CatalogRestoreFailed(
                f"cannot query {self}: {redact_text(message[0] if message else type(exc).__name__)}"
            ) from None
        finally:
            engine.dispose()

    def relations(self) -> list[str]:
        """The user relations (tables, views, sequences …) of the database, schema-qualified."""
        import sqlalchemy as sa

        sql = sa.text(
            "SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r','p','v','m','S','f') "
            "AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
            "ORDER BY 1"
        )
        return [str(r[0]) for r in self._query(lambda conn: conn.execute(sql).fetchall())]

    def count_iceberg_tables(self) -> int:
        import sqlalchemy as sa

        def count(conn: Any) -> int:
            exists = conn.execute(sa.text("SELECT to_regclass('iceberg_tables')")).scalar()
            return int(conn.execute(sa.text("SELECT count(*) FROM iceberg_tables")).scalar()) if exists else 0

        return int(self._query(count))


# --- SQLite --------------------------------------------------------------------------------------


def _sqlite_path(lake: Lake) -> Path:
    from sqlalchemy.engine import make_url

    from hmco.catalog import catalog_properties

    if lake.settings.catalog.type != "sqlite":
        raise ConfigError(f"backup_sqlite needs the sqlite catalog, not {lake.settings.catalog.type!r}")
    database = make_url(catalog_properties(lake.settings)["uri"]).database
    if not database or database == ":memory:":
        raise ConfigError("the SQLite catalog is in memory: there is no file to back up")
    return Path(database).expanduser().resolve()


def _sqlite_tables(path: Path) -> list[str]:
    """The tables of an existing SQLite database file (empty for a missing or zero-byte file)."""
    if not path.is_file() or path.stat().st_size == 0:
        return []
    con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
    except sqlite3.DatabaseError:
        return [f"<{path.name} is not a SQLite database>"]
    finally:
        con.close()


def _count_iceberg_tables(path: Path) -> int:
    con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM iceberg_tables").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        con.close()
