"""ClickHouse backups to S3 (or a directory the engine shares): full, incremental, verified restores.

::

    from hmco.maintenance.clickhouse_backup import ClickHouseBackups

    backups = ClickHouseBackups.for_lake(client, layout, lake)   # S3 target on S3, File target locally
    backups.full()                                  # weekly: BACKUP TABLE … TO S3(…)
    backups.incremental()                           # daily: SETTINGS base_backup = <newest full>
    backups.restore(into=ClickHouseLayout.of("rt_lmp", database="restored"))   # whole store
    backups.restore_table("rt_lmp_store", as_table="rt_lmp_store_check")       # one table
    backups.prune(keep_fulls=4)                     # 4 weekly fulls with their incrementals

**What is backed up.** The layout's data tables: the row store and the two rollup stores (the
``_local`` tables on a cluster, :meth:`~hmco.clickhouse.ddl.ClickHouseLayout.row_tables`). Views, the
Distributed tables and the refreshable rollup views hold no data and are schema as code: a whole-store
restore re-creates them with :func:`~hmco.clickhouse.setup.ensure_schema`, which also upgrades tables
restored from an older schema. Backing up tables (not ``DATABASE``) keeps other objects of the database
out of the store's backups and lets a restore land in another database.

**Records.** Each backup is recorded (:class:`~hmco.maintenance.backup_records.BackupRecord`, store
``clickhouse``) only after ClickHouse reported ``BACKUP_CREATED``: size is the bytes of the backup's own
objects (an incremental's objects only), checksum a SHA-256 over its ``.backup`` metadata file (which
holds ClickHouse's checksum of every file) and its object listing (names and sizes), restore point the
moment the backup started. A restore verifies the backup and its base chain against their records first,
so a missing, truncated or partial backup is a :class:`BackupUnusable` naming it before any table is
touched; ClickHouse's own checks during ``RESTORE`` (sizes, checksums) surface as :class:`RestoreFailed`,
and whatever the failed restore created is dropped again: never a silent partial restore.

**Targets.** :class:`S3BackupTarget` renders ``S3('<endpoint>/<bucket>/<key>', '<key id>', '<secret>')``,
or ``S3('<url>')`` without credentials, which makes ClickHouse take them from its server config's
``<s3>`` section (:func:`s3_credentials_config`). :class:`FileBackupTarget` renders ``File('<dir>')``
for an engine sharing the SDK's filesystem (chdb, the local profile); the server must allow the
directory (``<backups><allowed_path>``, :func:`chdb_backup_config`).

**Cluster.** With ``layout.cluster`` set every statement carries ``ON CLUSTER <cluster>`` (replicated
tables are backed up once per shard); see the ``render_*`` functions.

**Secrets.** The SQL that carries a secret is never logged nor put in an exception; what is logged uses
``[HIDDEN]`` in its place, ClickHouse's error messages are redacted, and errors are raised outside the
``except`` block, so the driver's exception (which may quote the SQL) is not chained to them.

Errors (all :class:`~hmco.errors.TerminalError`)::

    BackupError                     a ClickHouse backup or restore could not be done (names the backup)
    ├── BackupFailed                BACKUP did not complete; nothing was recorded
    ├── BackupUnusable              the backup is missing, partial or differs from its record
    ├── RestoreFailed               RESTORE failed in ClickHouse; what it created was removed
    └── RestoreTargetNotEmpty       a target table holds rows and ``force`` was not given
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from hmco._logging import get_logger
from hmco.clickhouse.ddl import ROLLUPS, ClickHouseLayout, quote_identifier
from hmco.errors import (
    BackupError,
    BackupFailed,
    BackupUnusable,
    ConfigError,
    LakeStateError,
    RestoreFailed,
    RestoreTargetNotEmpty,
)
from hmco.maintenance.backup_records import KEEP_WEEKLY_FULLS, BackupCatalog, BackupRecord, new_backup_id
from hmco.redaction import REDACTED, redact_text, register_secret

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from clickhouse_connect.driver.client import Client

    from hmco.lake import Lake

__all__ = [
    "STORE",
    "BackupError",
    "BackupFailed",
    "BackupTarget",
    "BackupUnusable",
    "ClickHouseBackups",
    "FileBackupTarget",
    "RestoreFailed",
    "RestoreReport",
    "RestoreTargetNotEmpty",
    "S3BackupTarget",
    "backup_table_names",
    "backup_target",
    "chdb_backup_config",
    "render_backup",
    "render_count",
    "render_drop",
    "render_exists",
    "render_restore",
    "render_truncate",
    "s3_credentials_config",
]

log = get_logger("hmco.maintenance.clickhouse_backup")

#: The store name of ClickHouse backups in the :class:`BackupCatalog`.
STORE = "clickhouse"
#: How an engine expression shows a secret in logs (ClickHouse's own word in ``system.backups``).
HIDDEN = "[HIDDEN]"

_RUNNING = {"CREATING_BACKUP", "RESTORING"}
_METADATA = ".backup"


# --- errors --------------------------------------------------------------------------------------


# --- targets -------------------------------------------------------------------------------------


class BackupTarget(Protocol):
    """Where backups go: renders the engine expression ClickHouse writes to and lists what it wrote."""

    kind: ClassVar[str]

    def location(self, backup_id: str) -> str:
        """The URI of one backup (``s3://bucket/key`` or ``file:///dir``), as recorded."""
        ...

    def engine(self, location: str, *, display: bool = False) -> str:
        """``S3(…)``/``File(…)`` for ``location``; ``display`` hides the secret (for logs)."""
        ...

    def filesystem(self, location: str) -> tuple[pafs.FileSystem, str]:
        """A filesystem and path to list, read and delete the objects of ``location``."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Values to scrub from any message (credentials the engine expression carries)."""
        ...


@dataclass(frozen=True)
class S3BackupTarget:
    """Backups as objects under ``s3://<bucket>/<prefix>/<backup id>/``.

    Args:
        bucket: the backups bucket (``hmco-backups``).
        prefix: key prefix inside it (``<storage prefix>/clickhouse``).
        endpoint: the S3 endpoint as ClickHouse (and the SDK) reach it, e.g. ``http://minio:9000``;
            None means AWS (``https://<bucket>.s3.<region>.amazonaws.com``).
        access_key_id / secret_access_key: put in the SQL; when omitted ClickHouse uses the credentials
            of its server config for the endpoint (:func:`s3_credentials_config`).
        region: the bucket's region (AWS URLs, and the SDK's listing client).
        path_style: ``<endpoint>/<bucket>/<key>`` (MinIO) rather than ``<bucket>.<endpoint host>/<key>``.
    """

    bucket: str
    prefix: str = "clickhouse"
    endpoint: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    region: str = "us-east-1"
    path_style: bool = True
    kind: ClassVar[str] = "s3"

    def __post_init__(self) -> None:
        if self.secret_access_key is not None:
            register_secret(self.secret_access_key.get_secret_value())
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigError(
                "an S3 backup target needs both access_key_id and secret_access_key, or neither"
            )

    @classmethod
    def from_lake(cls, lake: Lake, prefix: str = "clickhouse") -> S3BackupTarget:
        """The lake's backups bucket (:meth:`~hmco.lake.Lake.backup_location`) with its S3 settings."""
        location = lake.backup_location()
        if not location.startswith("s3://"):
            raise ConfigError(f"the lake keeps its backups at {location}, not on S3; use FileBackupTarget")
        bucket, _, key = location[len("s3://") :].partition("/")
        s3 = lake.settings.s3
        return cls(
            bucket=bucket,
            prefix="/".join(p for p in (key.strip("/"), prefix.strip("/")) if p),
            endpoint=s3.endpoint,
            access_key_id=s3.access_key_id,
            secret_access_key=s3.secret_access_key,
            region=s3.region,
            path_style=s3.path_style,
        )

    def location(self, backup_id: str) -> str:
        key = "/".join(p for p in (self.prefix.strip("/"), backup_id) if p)
        return f"s3://{self.bucket}/{key}"

    def _key(self, location: str) -> str:
        bucket, _, key = location.removeprefix("s3://").partition("/")
        if not location.startswith("s3://") or bucket != self.bucket or not key:
            raise ConfigError(f"backup location {location} is not in this target's bucket s3://{self.bucket}")
        return key

    def url(self, location: str) -> str:
        """The HTTP(S) URL ClickHouse reads and writes ``location`` at."""
        key = self._key(location)
        if not self.endpoint:
            return f"https://{self.bucket}.s3.{self.region}.amazonaws.com/{key}"
        endpoint = self.endpoint.rstrip("/")
        if self.path_style:
            return f"{endpoint}/{self.bucket}/{key}"
        scheme, _, host = endpoint.partition("://")
        return f"{scheme}://{self.bucket}.{host}/{key}"

    def engine(self, location: str, *, display: bool = False) -> str:
        args = [_literal(self.url(location))]
        if self.access_key_id is not None and self.secret_access_key is not None:
            secret = HIDDEN if display else self.secret_access_key.get_secret_value()
            args += [_literal(self.access_key_id.get_secret_value()), _literal(secret)]
        return f"S3({', '.join(args)})"

    @cached_property
    def _fs(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs

        scheme, endpoint = "https", None
        if self.endpoint:
            scheme, _, endpoint = self.endpoint.rstrip("/").rpartition("://")
            scheme = scheme or "https"
        return pafs.S3FileSystem(
            access_key=self.access_key_id.get_secret_value() if self.access_key_id else None,
            secret_key=self.secret_access_key.get_secret_value() if self.secret_access_key else None,
            region=self.region,
            endpoint_override=endpoint,
            scheme=scheme,
            force_virtual_addressing=not self.path_style,
        )

    def filesystem(self, location: str) -> tuple[pafs.FileSystem, str]:
        return self._fs, f"{self.bucket}/{self._key(location)}"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s.get_secret_value() for s in (self.access_key_id, self.secret_access_key) if s)


@dataclass(frozen=True)
class FileBackupTarget:
    """Backups as directories under ``root`` on a filesystem the ClickHouse engine shares (chdb).

    ``root`` must be inside the engine's ``<backups><allowed_path>`` (:func:`chdb_backup_config`).
    """

    root: Path
    kind: ClassVar[str] = "file"

    @classmethod
    def from_lake(cls, lake: Lake, prefix: str = "clickhouse") -> FileBackupTarget:
        """``<HMCO_HOME>/backups/clickhouse`` of a local lake."""
        location = lake.backup_location()
        if not location.startswith("file://"):
            raise ConfigError(f"the lake keeps its backups at {location}, not locally; use S3BackupTarget")
        return cls(_path(location) / prefix)

    def location(self, backup_id: str) -> str:
        return (Path(self.root).resolve() / backup_id).as_uri()

    def engine(self, location: str, *, display: bool = False) -> str:
        return f"File({_literal(str(_path(location)))})"

    def filesystem(self, location: str) -> tuple[pafs.FileSystem, str]:
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem(), str(_path(location))

    def secrets(self) -> tuple[str, ...]:
        return ()


def backup_target(lake: Lake, prefix: str = "clickhouse") -> BackupTarget:
    """The lake's backup target: its backups bucket on S3, ``<HMCO_HOME>/backups`` locally."""
    if lake.backup_location().startswith("s3://"):
        return S3BackupTarget.from_lake(lake, prefix)
    return FileBackupTarget.from_lake(lake, prefix)


def _path(location: str) -> Path:
    if location.startswith("file://"):
        return Path(unquote(urlsplit(location).path))
    return Path(location)


# --- rendering (pure) ----------------------------------------------------------------------------


def backup_table_names(layout: ClickHouseLayout) -> list[str]:
    """Unqualified names of the tables a backup holds: the row store and the rollup stores (local tables)."""
    suffix = "local" if layout.cluster else "store"
    return [layout.local_name, *(f"{layout.name}_{r.name}_{suffix}" for r in ROLLUPS)]


def render_backup(
    layout: ClickHouseLayout,
    destination: str,
    *,
    base: str | None = None,
    tables: Sequence[str] | None = None,
    asynchronous: bool = False,
) -> str:
    """``BACKUP TABLE … [ON CLUSTER c] TO <destination> [SETTINGS base_backup = <base>] [ASYNC]``.

    ``destination``/``base`` are engine expressions (:meth:`BackupTarget.engine`); ``tables`` defaults
    to :func:`backup_table_names`.
    """
    names = list(tables) if tables is not None else backup_table_names(layout)
    sql = f"BACKUP {', '.join(f'TABLE {layout.qualified(n)}' for n in names)}{_on_cluster(layout)} TO {destination}"
    if base is not None:
        sql += f" SETTINGS base_backup = {base}"
    return sql + (" ASYNC" if asynchronous else "")


def render_restore(
    layout: ClickHouseLayout,
    source: str,
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    asynchronous: bool = False,
) -> str:
    """``RESTORE TABLE <in backup> AS <target>, … [ON CLUSTER c] FROM <source> [ASYNC]``.

    ``pairs`` are qualified (name in the backup, target) pairs; the default restores every backed-up
    table of ``layout`` under its own name.
    """
    if pairs is None:
        pairs = [(layout.qualified(n), layout.qualified(n)) for n in backup_table_names(layout)]
    items = ", ".join(f"TABLE {src}" if src == dst else f"TABLE {src} AS {dst}" for src, dst in pairs)
    return f"RESTORE {items}{_on_cluster(layout)} FROM {source}" + (" ASYNC" if asynchronous else "")


def render_exists(layout: ClickHouseLayout, table: str) -> str:
    """How many replicas have ``<layout.database>.<table>`` (every replica's ``system.tables`` on a cluster)."""
    tables = f"clusterAllReplicas({_on(layout)}, system.tables)" if layout.cluster else "system.tables"
    return (
        f"SELECT count() FROM {tables} WHERE database = {_literal(layout.database)} "
        f"AND name = {_literal(table)}"
    )


def render_count(layout: ClickHouseLayout, table: str) -> str:
    """Rows of ``table`` (summed over every replica on a cluster: only zero versus non-zero matters)."""
    qualified = layout.qualified(table)
    source = f"clusterAllReplicas({_on(layout)}, {qualified})" if layout.cluster else qualified
    return f"SELECT count() FROM {source}"


def render_truncate(layout: ClickHouseLayout, table: str) -> str:
    return f"TRUNCATE TABLE IF EXISTS {layout.qualified(table)}{_on_cluster(layout)} SYNC"


def render_drop(layout: ClickHouseLayout, table: str) -> str:
    return f"DROP TABLE IF EXISTS {layout.qualified(table)}{_on_cluster(layout)} SYNC"


def _on(layout: ClickHouseLayout) -> str:
    return quote_identifier(layout.cluster or "")


def _on_cluster(layout: ClickHouseLayout) -> str:
    return f" ON CLUSTER {_on(layout)}" if layout.cluster else ""


def _literal(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def chdb_backup_config(allowed_path: Path) -> str:
    """A chdb/ClickHouse config file (XML) allowing ``BACKUP … TO File(…)`` under ``allowed_path``.

    Pass it when the engine is first opened (``chdb_options={"config-file": path}``); chdb reads its
    config once per process.
    """
    path = str(Path(allowed_path).resolve()).rstrip("/") + "/"
    return f"<clickhouse>\n  <backups>\n    <allowed_path>{_xml(path)}</allowed_path>\n  </backups>\n</clickhouse>\n"


def s3_credentials_config(target: S3BackupTarget, name: str = "hmco_backups") -> str:
    """The ``<s3>`` server-config section giving ClickHouse the target's credentials for its URL prefix.

    With it deployed, a target without credentials renders ``S3('<url>')`` and no secret travels in SQL.
    The text holds the secret: write it to the server's config directory, never to a log.
    """
    if target.access_key_id is None or target.secret_access_key is None:
        raise ConfigError("the S3 backup target has no credentials to put in a server config")
    endpoint = target.url(target.location("x")).rsplit("/", 1)[0] + "/"
    return (
        f"<clickhouse>\n  <s3>\n    <{name}>\n"
        f"      <endpoint>{_xml(endpoint)}</endpoint>\n"
        f"      <access_key_id>{_xml(target.access_key_id.get_secret_value())}</access_key_id>\n"
        f"      <secret_access_key>{_xml(target.secret_access_key.get_secret_value())}</secret_access_key>\n"
        f"    </{name}>\n  </s3>\n</clickhouse>\n"
    )


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- backups and restores ------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did.

    Attributes:
        backup_id: the backup restored; chain: it and the bases it read, newest first.
        rows: rows of each target table afterwards (qualified names).
        replaced: targets whose rows a forced restore removed first.
    """

    backup_id: str
    chain: list[str]
    rows: dict[str, int]
    started: datetime
    finished: datetime
    replaced: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()


class ClickHouseBackups:
    """Full and incremental backups of one ClickHouse store, their restores and their retention.

    Args:
        client: a clickhouse-connect client (server, cluster or chdb); names are always qualified.
        layout: the store's layout (database, dataset, cluster).
        catalog: where records are kept (:class:`BackupCatalog` of the lake).
        target: where the backups' objects go (:class:`S3BackupTarget`, :class:`FileBackupTarget`).
        asynchronous: run ``BACKUP``/``RESTORE`` with ``ASYNC`` and poll ``system.backups`` every
            ``poll_every`` seconds (for stores whose backup outlasts an HTTP request's timeout).
        clock: the current time (tests).
    """

    def __init__(
        self,
        client: Client,
        layout: ClickHouseLayout,
        catalog: BackupCatalog,
        target: BackupTarget,
        *,
        asynchronous: bool = False,
        poll_every: float = 2.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.layout = layout
        self.catalog = catalog
        self.target = target
        self.asynchronous = asynchronous
        self.poll_every = poll_every
        self._now = clock or (lambda: datetime.now(UTC))

    @classmethod
    def for_lake(
        cls, client: Client, layout: ClickHouseLayout, lake: Lake, **kwargs: Any
    ) -> ClickHouseBackups:
        """Backups recorded in ``lake``'s backup location, stored at :func:`backup_target` of the lake."""
        return cls(client, layout, BackupCatalog(lake), backup_target(lake), **kwargs)

    # --- records ---------------------------------------------------------------------------------

    def records(self) -> list[BackupRecord]:
        """Records of this store's backups (same database and dataset), oldest first."""
        return [
            r
            for r in self.catalog.records(STORE)
            if r.details.get("database") == self.layout.database
            and r.details.get("dataset") == self.layout.name
        ]

    def latest(self, kind: Literal["full", "incremental"] | None = None) -> BackupRecord | None:
        """The newest backup (of ``kind``) of this store, or None."""
        found = [r for r in self.records() if kind is None or r.kind == kind]
        return found[-1] if found else None

    def record(self, backup_id: str) -> BackupRecord:
        """The record of ``backup_id``.

        Raises:
            BackupUnusable: there is no such record (never taken, failed, or pruned).
        """
        try:
            return self.catalog.get(backup_id)
        except LakeStateError:
            pass
        raise BackupUnusable(
            f"ClickHouse backup {backup_id} is missing: no record of it in {self.catalog.location}/records "
            "(never completed, or pruned)",
            backup=backup_id,
        )

    # --- taking backups --------------------------------------------------------------------------

    def full(self) -> BackupRecord:
        """Back up every data table of the store; recorded once ClickHouse reports ``BACKUP_CREATED``."""
        return self._take("full", None)

    def incremental(self, base: str | None = None) -> BackupRecord:
        """Back up what changed since ``base`` (a backup id; default the newest full backup).

        Only parts absent from the base are stored. The base (and its own base) is verified first.

        Raises:
            BackupUnusable: no full backup to base on, or the base is missing or damaged.
        """
        if base is None:
            newest = self.latest("full")
            if newest is None:
                raise BackupUnusable(
                    f"no full ClickHouse backup of {self.layout.database} to base an incremental on; "
                    "take a full backup first",
                    database=self.layout.database,
                )
            base = newest.id
        base_record = self.record(base)
        self.verify(base_record.id)
        return self._take("incremental", base_record)

    def _take(self, kind: Literal["full", "incremental"], base: BackupRecord | None) -> BackupRecord:
        started = self._now()
        backup_id = new_backup_id(STORE, kind, started)
        location = self.target.location(backup_id)
        names = backup_table_names(self.layout)
        sql = render_backup(
            self.layout,
            self.target.engine(location),
            base=self.target.engine(base.location) if base else None,
            tables=names,
            asynchronous=self.asynchronous,
        )
        shown = self._display(location, base)
        log.info("ClickHouse %s backup %s of %s to %s", kind, backup_id, self.layout.database, shown)
        operation, error = self._run(sql, "BACKUP_CREATED")
        if error is not None:
            self._discard(location)
            raise BackupFailed(
                f"ClickHouse {kind} backup {backup_id} of {self.layout.database} to {shown} failed, nothing "
                f"was recorded: {error}",
                backup=backup_id,
            )
        finished = self._now()
        objects, size, checksum = self._measure(location)
        if _METADATA not in objects:
            raise BackupFailed(
                f"ClickHouse reported backup {backup_id} as created but {shown} has no {_METADATA} "
                "metadata; nothing was recorded",
                backup=backup_id,
            )
        record = BackupRecord(
            id=backup_id,
            store=STORE,
            kind=kind,
            location=location,
            restore_point=started,
            started=started,
            finished=finished,
            size=size,
            checksum=checksum,
            base=base.id if base else None,
            details={
                "database": self.layout.database,
                "dataset": self.layout.name,
                "cluster": self.layout.cluster,
                "tables": names,
                "target": self.target.kind,
                "objects": len(objects),
                "clickhouse_backup_id": operation,
            },
        )
        self.catalog.add(record)
        log.info("ClickHouse backup %s recorded: %d bytes in %d objects", backup_id, size, len(objects))
        return record

    def _display(self, location: str, base: BackupRecord | None) -> str:
        shown = self.target.engine(location, display=True)
        return f"{shown} (base {base.id})" if base else shown

    # --- verifying -------------------------------------------------------------------------------

    def verify(self, backup_id: str) -> list[BackupRecord]:
        """Check a backup and the bases it builds on against their records; returns that chain, newest first.

        Lists each backup's objects and compares their total size and checksum (``.backup`` metadata and
        the names and sizes of all objects) with the record; names the objects that are missing or whose
        size differs from what the metadata says.

        Raises:
            BackupUnusable: naming the backup that is missing, partial or changed.
        """
        chain: list[BackupRecord] = []
        record = self.record(backup_id)
        while True:
            self._check(record, backup_id)
            chain.append(record)
            if record.base is None:
                return chain
            if record.base in {r.id for r in chain}:
                raise BackupUnusable(
                    f"ClickHouse backup {backup_id} has a cycle in its bases", backup=backup_id
                )
            record = self._base(record.base, backup_id)

    def _base(self, base_id: str, of: str) -> BackupRecord:
        try:
            return self.catalog.get(base_id)
        except LakeStateError:
            pass
        raise BackupUnusable(
            f"ClickHouse backup {of} builds on {base_id}, whose record is missing (pruned or never taken)",
            backup=of,
        )

    def _check(self, record: BackupRecord, asked: str) -> None:
        via = "" if record.id == asked else f" (the base of {asked})"
        where = self.target.engine(record.location, display=True)
        objects, size, checksum = self._measure(record.location)
        if not objects:
            raise BackupUnusable(
                f"ClickHouse backup {record.id}{via} is missing: no objects at {where}", backup=record.id
            )
        if _METADATA not in objects:
            raise BackupUnusable(
                f"ClickHouse backup {record.id}{via} is partial: its {_METADATA} metadata is missing at {where}",
                backup=record.id,
            )
        if (size, checksum) != (record.size, record.checksum):
            problems = _diagnose(self._read(record.location, _METADATA), objects)
            raise BackupUnusable(
                f"ClickHouse backup {record.id}{via} at {where} is corrupt: "
                f"{'; '.join(problems) or 'its objects differ from the record'} "
                f"({len(objects)} objects, {size} bytes now; recorded {record.details.get('objects', '?')} "
                f"objects, {record.size} bytes)",
                backup=record.id,
            )

    def _measure(self, location: str) -> tuple[dict[str, int], int, str]:
        """Objects of a backup (relative name -> size), their total size, and the checksum of the record."""
        import pyarrow.fs as pafs

        fs, path = self.target.filesystem(location)
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        objects = {
            info.path[len(path) :].lstrip("/"): int(info.size or 0)
            for info in infos
            if info.type == pafs.FileType.File
        }
        digest = hashlib.sha256()
        if _METADATA in objects:
            digest.update(self._read(location, _METADATA))
        for name in sorted(objects):
            digest.update(f"\n{name}\t{objects[name]}".encode())
        return objects, sum(objects.values()), f"sha256:{digest.hexdigest()}"

    def _read(self, location: str, name: str) -> bytes:
        fs, path = self.target.filesystem(location)
        with fs.open_input_stream(f"{path}/{name}") as f:
            return bytes(f.read())

    def _discard(self, location: str) -> None:
        """Remove what a failed backup left (best effort: the store may be what failed)."""
        try:
            self._remove_objects(location)
        except OSError as exc:
            shown = self.target.engine(location, display=True)
            log.warning(
                "could not remove what the failed backup left at %s: %s", shown, self._clean(str(exc))
            )

    def _remove_objects(self, location: str) -> None:
        """Delete a backup's objects (a failed backup's leftovers, a pruned backup); absent is fine."""
        import pyarrow.fs as pafs

        fs, path = self.target.filesystem(location)
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            fs.delete_dir(path)

    # --- restoring -------------------------------------------------------------------------------

    def restore(
        self,
        backup_id: str | None = None,
        *,
        into: ClickHouseLayout | None = None,
        force: bool = False,
        verify: bool = True,
        ensure_schema: bool = True,
    ) -> RestoreReport:
        """Restore the whole store from a backup (default: the newest) into ``into`` (default: this store).

        The target's data tables must be absent or empty unless ``force`` (their rows are then removed
        first). Afterwards :func:`~hmco.clickhouse.setup.ensure_schema` re-creates the views, Distributed
        tables and rollup refreshes (``ensure_schema=False`` skips that).

        Raises:
            BackupUnusable: the backup or a base is missing, partial or changed (nothing was touched).
            RestoreTargetNotEmpty: a target table holds rows and ``force`` is False (nothing was touched).
            RestoreFailed: ClickHouse's RESTORE failed; the tables it created were removed again.
        """
        record = self._chosen(backup_id)
        target = into or self.layout
        source = self._source_layout(record)
        pairs = [(n, n) for n in record.details.get("tables", backup_table_names(source))]
        report = self._restore(record, source, target, pairs, force=force, verify=verify)
        if ensure_schema:
            from hmco.clickhouse.setup import ensure_schema as apply_schema

            apply_schema(self.client, target)
        return report

    def restore_table(
        self,
        table: str,
        backup_id: str | None = None,
        *,
        as_table: str | None = None,
        force: bool = False,
        verify: bool = True,
    ) -> RestoreReport:
        """Restore one table of a backup, under its own name or as ``as_table`` (``name`` or ``db.name``).

        Raises:
            BackupError: ``table`` is not in the backup; otherwise as :meth:`restore`.
        """
        record = self._chosen(backup_id)
        source = self._source_layout(record)
        name = table.rsplit(".", 1)[-1]
        held = list(record.details.get("tables", []))
        if name not in held or ("." in table and table.rsplit(".", 1)[0] != source.database):
            raise BackupError(
                f"ClickHouse backup {record.id} holds no table {table} (it holds {', '.join(held)} of "
                f"{source.database})",
                backup=record.id,
            )
        target = self.layout
        new_name = name
        if as_table:
            db, _, new_name = as_table.rpartition(".")
            if db:
                target = dataclasses.replace(self.layout, database=db)
        return self._restore(record, source, target, [(name, new_name)], force=force, verify=verify)

    def _chosen(self, backup_id: str | None) -> BackupRecord:
        if backup_id is not None:
            return self.record(backup_id)
        newest = self.latest()
        if newest is None:
            raise BackupUnusable(
                f"no ClickHouse backup of {self.layout.database} in {self.catalog.location}/records",
                database=self.layout.database,
            )
        return newest

    def _source_layout(self, record: BackupRecord) -> ClickHouseLayout:
        """The layout the backup was taken of (its database), for the names inside the backup."""
        return dataclasses.replace(
            self.layout, database=str(record.details.get("database", self.layout.database))
        )

    def _restore(
        self,
        record: BackupRecord,
        source: ClickHouseLayout,
        target: ClickHouseLayout,
        pairs: list[tuple[str, str]],
        *,
        force: bool,
        verify: bool,
    ) -> RestoreReport:
        started = self._now()
        chain = self.verify(record.id) if verify else [record]
        before = {dst: self._rows(target, dst) for _, dst in pairs}
        occupied = {t: n for t, n in before.items() if n}
        if occupied and not force:
            listed = ", ".join(f"{target.qualified(t)} ({n} rows)" for t, n in occupied.items())
            raise RestoreTargetNotEmpty(
                f"restore of ClickHouse backup {record.id} refused: {listed} not empty; restore into an "
                "empty store, or pass force=True to replace their rows",
                backup=record.id,
            )
        for table in occupied:
            log.warning("restore of %s replaces the rows of %s (force)", record.id, target.qualified(table))
            self.client.command(render_truncate(target, table))
        self.client.command(target.create_database())
        location = self.target.engine(record.location, display=True)
        qualified = [(source.qualified(s), target.qualified(d)) for s, d in pairs]
        sql = render_restore(
            target, self.target.engine(record.location), pairs=qualified, asynchronous=self.asynchronous
        )
        log.info(
            "restoring ClickHouse backup %s (%s) from %s into %s",
            record.id,
            " <- ".join(r.id for r in chain),
            location,
            ", ".join(d for _, d in qualified),
        )
        _, error = self._run(sql, "RESTORED")
        if error is not None:
            undone = self._undo(target, before)
            raise RestoreFailed(
                f"restore of ClickHouse backup {record.id} from {location} failed; {undone}: {error}",
                backup=record.id,
            )
        rows = {target.qualified(d): self._rows(target, d) or 0 for _, d in pairs}
        return RestoreReport(
            record.id,
            [r.id for r in chain],
            rows,
            started,
            self._now(),
            [target.qualified(t) for t in occupied],
        )

    def _rows(self, layout: ClickHouseLayout, table: str) -> int | None:
        """Rows of ``layout.database.table``; None when the table does not exist."""
        if not int(self.client.query(render_exists(layout, table)).result_rows[0][0]):
            return None
        return int(self.client.query(render_count(layout, table)).result_rows[0][0])

    def _undo(self, target: ClickHouseLayout, before: dict[str, int | None]) -> str:
        """Return targets to their state before a failed restore: drop created tables, empty the others."""
        try:
            for table, rows in before.items():
                if rows is None:
                    self.client.command(render_drop(target, table))
                else:
                    self.client.command(render_truncate(target, table))
        except Exception as exc:
            return f"removing what it restored failed too ({type(exc).__name__}); check {', '.join(before)}"
        return f"what it restored was removed ({', '.join(target.qualified(t) for t in before)} as before, empty)"

    # --- retention -------------------------------------------------------------------------------

    def prune(self, keep_fulls: int = KEEP_WEEKLY_FULLS) -> list[BackupRecord]:
        """Delete the backups past retention (older fulls and the backups based on them), then their records.

        Retention is the catalog's (:meth:`BackupCatalog.prunable` of store ``clickhouse``): one ClickHouse
        store per backup location. Newest first, so an incremental never outlives its base; a prune interrupted midway leaves records
        whose objects are gone, which :meth:`verify` reports and the next prune finishes.
        """
        doomed = self.catalog.prunable(STORE, keep_fulls=keep_fulls)
        for record in sorted(doomed, key=lambda r: (r.restore_point, r.id), reverse=True):
            self._remove_objects(record.location)
            self.catalog.forget(record)
            log.info("pruned ClickHouse %s backup %s (%d bytes)", record.kind, record.id, record.size)
        return doomed

    # --- running BACKUP/RESTORE ------------------------------------------------------------------

    def _run(self, sql: str, done: str) -> tuple[str | None, str | None]:
        """Run a BACKUP/RESTORE statement; returns (ClickHouse's operation id, error or None).

        The error is redacted and never chained to the driver's exception (whose text may quote ``sql``).
        """
        operation: str | None = None
        status: str | None = None
        error: str | None = None
        try:
            rows = self.client.query(sql).result_rows
            if rows:
                operation, status = str(rows[0][0]), str(rows[0][1])
            while operation is not None and status in _RUNNING:
                time.sleep(self.poll_every)  # an ASYNC operation: poll its status in system.backups
                status, error = self._status(operation)
        except Exception as exc:
            error = str(exc)
        if error is None and status != done:
            error = f"ClickHouse reported {status or 'no status'} for operation {operation or '?'}"
        return operation, None if error is None else self._clean(error)

    def _status(self, operation: str) -> tuple[str | None, str | None]:
        rows = self.client.query(
            "SELECT status, error FROM system.backups WHERE id = {id:String}", parameters={"id": operation}
        ).result_rows
        if not rows:
            return None, f"operation {operation} vanished from system.backups"
        status, error = str(rows[0][0]), str(rows[0][1])
        return status, (error or None)

    def _clean(self, message: str) -> str:
        """ClickHouse's message without its stack trace, with every secret masked."""
        message = message.split(", Stack trace", 1)[0].split("\nStack trace", 1)[0].strip()
        for secret in self.target.secrets():
            if len(secret) >= 4:
                message = message.replace(secret, REDACTED)
        return redact_text(message)


def _diagnose(metadata: bytes, objects: dict[str, int]) -> list[str]:
    """What differs between a backup's ``.backup`` metadata and its objects (missing or resized files)."""
    try:
        root = ET.fromstring(metadata)
    except ET.ParseError:
        return [f"its {_METADATA} metadata is unreadable"]
    missing: list[str] = []
    resized: list[str] = []
    for entry in root.iterfind("contents/file"):
        if (entry.findtext("use_base") or "").lower() == "true":
            continue
        size = int(entry.findtext("size") or 0)
        base_size = int(entry.findtext("base_size") or 0)
        stored = entry.findtext("data_file") or entry.findtext("name") or ""
        if size - base_size <= 0:
            continue
        if stored not in objects:
            missing.append(stored)
        elif not base_size and objects[stored] != size:
            resized.append(f"{stored} ({objects[stored]} of {size} bytes)")
    problems = []
    if missing:
        problems.append(
            f"missing {', '.join(sorted(set(missing))[:5])}" + (" …" if len(set(missing)) > 5 else "")
        )
    if resized:
        problems.append(f"changed size {', '.join(resized[:5])}" + (" …" if len(resized) > 5 else ""))
    return problems
