"""The record of every backup, kept beside the backups themselves, and what it says about the RPO.

Each backup — a ClickHouse full or incremental, a catalog dump, a metadata export, a replication run —
writes one :class:`BackupRecord` as JSON under ``<backup location>/records/<store>/<id>.json`` (the
backups bucket on S3, ``HMCO_HOME/backups`` locally). A record is written only after its backup is
complete and verified, so a record's presence means "restorable". :class:`BackupCatalog` lists them,
answers "what is the newest restorable point of each store" against the platform's RPO (30 minutes),
and prunes by the retention rule (4 weekly fulls with their incrementals).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hmco.errors import LakeStateError
from hmco.windows import as_utc, format_duration

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from hmco.lake import Lake

__all__ = [
    "DEFAULT_RPO",
    "KEEP_WEEKLY_FULLS",
    "BackupCatalog",
    "BackupRecord",
    "StoreStatus",
    "new_backup_id",
]

#: The platform's recovery point objective: no store may be more than this behind its newest backup.
DEFAULT_RPO = timedelta(minutes=30)
#: Retention: the newest 4 weekly full backups of a store, with every incremental based on them.
KEEP_WEEKLY_FULLS = 4


def new_backup_id(store: str, kind: str, at: datetime | None = None) -> str:
    """``<store>-<kind>-<UTC time>-<random>``: sortable by time within a store and kind, unique."""
    when = as_utc(at or datetime.now(UTC))
    return f"{store}-{kind}-{when:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class BackupRecord:
    """One complete backup.

    Attributes:
        id: unique, sortable id (:func:`new_backup_id`).
        store: what was backed up: ``clickhouse``, ``catalog`` or ``lake`` (the replicated tiers).
        kind: ``full``, ``incremental``, ``dump``, ``metadata-export`` or ``replication``.
        location: where the backup's bytes are (an ``s3://`` or ``file://`` URI, or a path).
        restore_point: the instant whose state a restore gives back (for the RPO).
        started / finished: when taking the backup began and ended.
        size: bytes of the backup as stored; checksum: ``sha256:<hex>`` of its bytes or manifest.
        base: for an incremental, the id of the backup it builds on.
        details: store-specific facts (tables covered, objects copied, format …).
    """

    id: str
    store: str
    kind: str
    location: str
    restore_point: datetime
    started: datetime
    finished: datetime
    size: int
    checksum: str
    base: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        doc = asdict(self)
        for key in ("restore_point", "started", "finished"):
            doc[key] = getattr(self, key).isoformat()
        return json.dumps(doc, sort_keys=True, indent=2, default=str)

    @classmethod
    def from_json(cls, text: str | bytes) -> BackupRecord:
        doc = json.loads(text)
        for key in ("restore_point", "started", "finished"):
            doc[key] = as_utc(doc[key])
        return cls(**doc)


@dataclass(frozen=True)
class StoreStatus:
    """The newest restorable point of one store against the RPO."""

    store: str
    newest: BackupRecord | None
    checked_at: datetime
    rpo: timedelta

    @property
    def age(self) -> timedelta | None:
        return None if self.newest is None else max(self.checked_at - self.newest.restore_point, timedelta(0))

    @property
    def ok(self) -> bool:
        age = self.age
        return age is not None and age <= self.rpo

    def __str__(self) -> str:
        if self.newest is None:
            return f"{self.store:11} NO BACKUP                                   RPO {format_duration(self.rpo)}  RED"
        state = "ok" if self.ok else "RED"
        age = self.age or timedelta(0)
        return (
            f"{self.store:11} {self.newest.kind:15} {self.newest.restore_point:%Y-%m-%d %H:%M:%S}Z  "
            f"age {format_duration(age):>8}  RPO {format_duration(self.rpo)}  {state}"
        )


class BackupCatalog:
    """The records of a lake's backups (``<lake.backup_location()>/records``)."""

    def __init__(self, lake: Lake, location: str | None = None) -> None:
        self.lake = lake
        self.location = (location or lake.backup_location()).rstrip("/")
        self.fs, self.base = lake.filesystem(f"{self.location}/records")

    def add(self, record: BackupRecord) -> BackupRecord:
        """Store a record (after its backup is complete); written atomically where the store allows."""
        folder = f"{self.base}/{record.store}"
        self.fs.create_dir(folder, recursive=True)
        tmp = f"{folder}/.{record.id}.json.tmp"
        with self.fs.open_output_stream(tmp) as out:
            out.write(record.to_json().encode())
        self.fs.move(tmp, f"{folder}/{record.id}.json")
        return record

    def records(self, store: str | None = None) -> list[BackupRecord]:
        """Every record (of one store), oldest restore point first."""
        import pyarrow.fs as pafs

        base = f"{self.base}/{store}" if store else self.base
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        found = []
        for info in infos:
            if (
                info.type == pafs.FileType.File
                and info.base_name.endswith(".json")
                and not info.base_name.startswith(".")
            ):
                with self.fs.open_input_stream(info.path) as f:
                    found.append(BackupRecord.from_json(f.read()))
        return sorted(found, key=lambda r: (r.restore_point, r.id))

    def get(self, backup_id: str) -> BackupRecord:
        """The record of ``backup_id``; a :class:`~hmco.errors.LakeStateError` names it when missing."""
        for record in self.records():
            if record.id == backup_id:
                return record
        raise LakeStateError(f"no backup record {backup_id!r} in {self.location}/records")

    def latest(self, store: str, kinds: Iterable[str] | None = None) -> BackupRecord | None:
        """The newest record of ``store`` (of one of ``kinds``), or None."""
        wanted = set(kinds) if kinds is not None else None
        matching = [r for r in self.records(store) if wanted is None or r.kind in wanted]
        return matching[-1] if matching else None

    def status(
        self, stores: Iterable[str], *, now: datetime | None = None, rpo: timedelta = DEFAULT_RPO
    ) -> list[StoreStatus]:
        """The newest restorable point of each store against the RPO."""
        checked = as_utc(now or datetime.now(UTC))
        return [StoreStatus(s, self.latest(s), checked, rpo) for s in stores]

    def prunable(self, store: str, *, keep_fulls: int = KEEP_WEEKLY_FULLS) -> list[BackupRecord]:
        """Records past retention: fulls older than the newest ``keep_fulls``, and backups based on them."""
        records = self.records(store)
        fulls = [r for r in records if r.kind == "full"]
        if len(fulls) <= keep_fulls:
            return []
        dropped = {r.id for r in fulls[:-keep_fulls]}
        changed = True
        while changed:  # incrementals chain: drop everything whose base is dropped
            changed = False
            for r in records:
                if r.id not in dropped and r.base in dropped:
                    dropped.add(r.id)
                    changed = True
        return [r for r in records if r.id in dropped]

    def forget(self, record: BackupRecord) -> None:
        """Delete a record (its backup's bytes are the caller's to delete first)."""
        self.fs.delete_file(f"{self.base}/{record.store}/{record.id}.json")

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """The filesystem and base path of the backup location (for storing backup bytes beside records)."""
        return self.lake.filesystem(self.location)
