"""The DR drill: back up, write more, destroy, restore, verify — and measure the RPO and the RTO.

::

    from hmco.maintenance.drill import run_drill

    report = run_drill(lake, dr_lake, client, layout)   # hmco dr drill
    print(report)                                        # measured RPO / RTO against 30 min / 2 h
    sys.exit(report.exit_code)

The steps, each on the real stores:

1. **Back up.** The state of the lake (every Iceberg table: rows and per-partition content checksums) and
   of the ClickHouse store (its deduplicated view and rollups: rows and per-partition checksums, all
   columns but a rollup's ``computed_at``, the time it was computed) and the
   answers of the seed's two queries are captured, then the backups are taken and recorded: the catalog
   dump (``pg_dump`` or SQLite's online backup) and metadata export, a full ClickHouse backup, and a
   replication of the lake (with the backups location) to the DR site. The restore point is the oldest
   of their restore points: nothing is written between the capture and the last backup.
2. **Write more.** A pipeline window goes into the lake and its rows into ClickHouse: the data the
   restore point lacks. The drill checks that these writes changed the captured state (else the
   verification could not tell a restore from doing nothing).
3. **Destroy.** The catalog database is dropped (the SQLite catalog file deleted), the ClickHouse
   database dropped, and one tier's objects (``curated`` by default) deleted at the primary site.
4. **Restore** (the RTO clock starts): an empty catalog database receives the dump, ClickHouse restores
   its backup into the empty store, the tier's objects are copied back from the DR site and checked
   against the DR manifest (size and SHA-256).
5. **Verify** (the RTO clock stops when this passes): the lake's and ClickHouse's state equals the one
   captured at the restore point, the catalog serves the metadata locations of the export, and the seed's
   EIA query (DuckDB over the lake) and RT query (on ClickHouse) return the same answers.

The measured RPO is the time between the restore point and the destruction (what a restore from these
backups loses); the RTO the seconds from the start of the restore until verified.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hmco._logging import get_logger
from hmco.errors import ConfigError, TerminalError
from hmco.maintenance.backup_records import DEFAULT_RPO, BackupCatalog, BackupRecord
from hmco.maintenance.compaction import Checksum, content_checksum
from hmco.windows import Window, floor_time

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs
    from clickhouse_connect.driver.client import Client

    from hmco.clickhouse.ddl import ClickHouseLayout
    from hmco.lake import Lake

__all__ = [
    "DEFAULT_RTO",
    "DrillCheck",
    "DrillError",
    "DrillReport",
    "StoreState",
    "TableState",
    "TierRestoreError",
    "TierRestoreReport",
    "capture_state",
    "compare_states",
    "drop_catalog",
    "lake_tables",
    "restore_tier",
    "run_drill",
    "sqlite_catalog_file",
]

log = get_logger("hmco.maintenance.drill")

#: The platform's recovery time objective.
DEFAULT_RTO = timedelta(hours=2)


class DrillError(TerminalError):
    """The drill could not run one of its steps (the message names it)."""


class TierRestoreError(DrillError):
    """A tier's objects could not be restored from the DR site: missing there, or not copied identical."""


# --- state ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableState:
    """Rows of one table and the content checksum of each of its partitions."""

    rows: int
    partitions: dict[str, Checksum]


@dataclass(frozen=True)
class StoreState:
    """What the drill compares: the lake's tables, ClickHouse's views, the seed queries' answers."""

    lake: dict[str, TableState]
    clickhouse: dict[str, TableState]
    eia: list[tuple[Any, ...]]
    rt: list[tuple[Any, ...]]
    metadata: dict[str, str] = field(default_factory=dict)  # table -> metadata location


def _by_partition(table: pa.Table, keys: list[pa.Array]) -> TableState:
    import polars as pl
    import pyarrow as pa

    if not keys:
        return TableState(table.num_rows, {"": content_checksum(table)} if table.num_rows else {})
    parts = [pa.array(k).cast(pa.string()).fill_null("null") for k in keys]
    key = parts[0]
    for extra in parts[1:]:
        key = pa.compute.binary_join_element_wise(key, extra, "/")
    frame = pl.from_arrow(table.append_column("__partition", key))
    assert isinstance(frame, pl.DataFrame)
    found: dict[str, Checksum] = {}
    for (name,), part in frame.partition_by("__partition", as_dict=True).items():
        found[str(name)] = content_checksum(part.drop("__partition").to_arrow())
    return TableState(table.num_rows, found)


def _iceberg_state(tbl: Any) -> TableState:
    data = tbl.scan().to_arrow()
    schema = tbl.schema()
    keys = []
    for pf in tbl.spec().fields:
        source = schema.find_field(pf.source_id)
        keys.append(pf.transform.pyarrow_transform(source.field_type)(data.column(source.name)))
    return _by_partition(data, keys)


def lake_tables(lake: Lake) -> list[str]:
    """Dotted names of every table the lake's catalog serves (every namespace)."""
    catalog = lake.catalog
    names: list[str] = []
    for ns in catalog.list_namespaces():
        names += [".".join(ident) for ident in catalog.list_tables(ns)]
    return sorted(names)


def _seed_rt(layout: ClickHouseLayout) -> str:
    from hmco.query.clickhouse import SEED_QUERY

    return SEED_QUERY.replace("FROM rt_lmp", f"FROM {layout.view}")


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return sorted(zip(*cols, strict=True), key=repr) if cols else []


def capture_state(lake: Lake, client: Client, layout: ClickHouseLayout) -> StoreState:
    """Rows, per-partition checksums and the seed queries' answers of the lake and the ClickHouse store."""
    from hmco.clickhouse.ddl import ROLLUPS
    from hmco.demo import EIA_QUERY
    from hmco.query.lake import LakeSQL

    tables: dict[str, TableState] = {}
    metadata: dict[str, str] = {}
    names = lake_tables(lake)
    for name in names:
        tbl = lake.catalog.load_table(name)
        tables[name] = _iceberg_state(tbl)
        metadata[name] = str(tbl.metadata_location)
    eia: list[tuple[Any, ...]] = []
    if "hub_curated.eia_daily_fuel" in names:
        with LakeSQL(lake) as sql:
            eia = _rows(sql.sql(EIA_QUERY))
    store: dict[str, TableState] = {}
    views = [(layout.view, layout.time_column)] + [(layout.rollup_view(r), r.bucket) for r in ROLLUPS]
    for view, time_column in views:
        data = client.query_arrow(
            f"SELECT toString(toYYYYMM(`{time_column}`)) AS __month, * FROM {view}", use_strings=True
        )
        month = data.column("__month")
        # a rollup's computed_at is when it was (re)computed, not data: a restored store recomputes it
        drop = [c for c in ("__month", "computed_at") if c in data.column_names]
        store[view] = _by_partition(data.drop_columns(drop), [month])
    rt = _rows(client.query_arrow(_seed_rt(layout), use_strings=True))
    return StoreState(tables, store, eia, rt, metadata)


def compare_states(expected: StoreState, actual: StoreState) -> list[str]:
    """What differs between two states (empty when equal), one line per table, partition or query."""
    problems: list[str] = []
    for kind, want, got in (
        ("lake table", expected.lake, actual.lake),
        ("ClickHouse", expected.clickhouse, actual.clickhouse),
    ):
        for name in sorted(set(want) | set(got)):
            a, b = want.get(name), got.get(name)
            if a is None or b is None:
                problems.append(
                    f"{kind} {name}: {'missing' if b is None else 'not there at the restore point'}"
                )
                continue
            if a.rows != b.rows:
                problems.append(f"{kind} {name}: {b.rows} rows, {a.rows} at the restore point")
            for part in sorted(set(a.partitions) | set(b.partitions)):
                if a.partitions.get(part) != b.partitions.get(part):
                    problems.append(f"{kind} {name} partition {part}: content differs")
    if expected.eia != actual.eia:
        problems.append("the seed EIA query answers differently")
    if expected.rt != actual.rt:
        problems.append("the seed RT query (ClickHouse) answers differently")
    return problems


# --- destroying and restoring --------------------------------------------------------------------


def _pg_admin(lake: Lake) -> tuple[Any, str]:
    """An AUTOCOMMIT engine on the catalog server's ``postgres`` database, and the catalog's database."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    cfg = lake.settings.catalog
    url = make_url(cfg.uri or "")
    if cfg.password is not None:
        url = url.set(password=cfg.password.get_secret_value())
    if not url.database:
        raise ConfigError("the catalog URI names no database")
    return sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT"), url.database


def _release(lake: Lake) -> None:
    """Close the lake's catalog connections (pooled ones would hold a dropped database open)."""
    engine = getattr(lake.catalog, "engine", None)
    if engine is not None:
        engine.dispose()


def drop_catalog(lake: Lake) -> str:
    """Destroy the lake's catalog: ``DROP DATABASE`` on PostgreSQL, delete the file on SQLite. Returns what."""
    import sqlalchemy as sa

    _release(lake)
    kind = lake.settings.catalog.type
    if kind == "sql":
        admin, database = _pg_admin(lake)
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        finally:
            admin.dispose()
        return f"dropped database {database}"
    if kind == "sqlite":
        path = sqlite_catalog_file(lake)
        for suffix in ("", "-wal", "-shm", "-journal"):
            (path.with_name(path.name + suffix)).unlink(missing_ok=True)
        return f"deleted {path}"
    raise ConfigError("a REST catalog's database is on its server: the drill cannot drop it")


def sqlite_catalog_file(lake: Lake) -> Path:
    """The file of the lake's SQLite catalog."""
    from sqlalchemy.engine import make_url

    from hmco.catalog import catalog_properties

    database = make_url(catalog_properties(lake.settings)["uri"]).database
    if not database or database == ":memory:":
        raise ConfigError("the SQLite catalog is in memory")
    return Path(database).expanduser().resolve()


def _restore_catalog(lake: Lake, dump: BackupRecord) -> str:
    """Restore ``dump`` into an empty catalog (a new, empty database on PostgreSQL)."""
    import sqlalchemy as sa

    from hmco.maintenance.catalog_backup import restore_catalog_dump

    cfg = lake.settings.catalog
    if cfg.type == "sql":
        admin, database = _pg_admin(lake)
        try:
            with admin.connect() as conn:
                exists = conn.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}
                ).first()
                if exists is None:
                    conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        finally:
            admin.dispose()
        report = restore_catalog_dump(lake, dump, cfg.uri or "", password=cfg.password)
    else:
        report = restore_catalog_dump(lake, dump, sqlite_catalog_file(lake))
    _release(lake)
    return str(report)


@dataclass(frozen=True)
class TierRestoreReport:
    tier: str
    objects: int
    bytes: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"restored tier {self.tier} from the DR site: {self.objects} objects, "
            f"{self.bytes / 1e6:.1f} MB verified in {self.seconds:.2f}s"
        )


def _listing(fs: pafs.FileSystem, root: str) -> dict[str, int]:
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return {i.path: int(i.size or 0) for i in infos if i.type == pafs.FileType.File}


def _sha256(fs: pafs.FileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open_input_stream(path, compression=None) as f:
        while chunk := f.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def restore_tier(primary: Lake, dr: Lake, tier: str, *, force: bool = False) -> TierRestoreReport:
    """Copy a tier's objects back from the DR site, as its manifest lists them, and verify each one.

    Raises:
        TierRestoreError: no replication at the DR site, the tier has no replicated objects, the
            primary's tier is not empty (and ``force`` is False), or an object did not copy identical
            (size or SHA-256 differ from the DR manifest) — naming them.
    """
    import pyarrow.fs as pafs

    from hmco.maintenance.replication import read_manifest

    started = time.perf_counter()
    manifest = read_manifest(dr)
    if manifest is None:
        raise TierRestoreError(f"no replication manifest at the DR site ({dr.backup_location()})")
    root = primary.storage_location(tier).removeprefix("s3://").rstrip("/")
    wanted = {p: o for p, o in manifest.objects.items() if p.startswith(f"{root}/")}
    if not wanted:
        raise TierRestoreError(
            f"the DR site's manifest {manifest.run} holds no object of tier {tier} ({root})"
        )
    src, _ = dr.filesystem("s3://")
    dst, _ = primary.filesystem("s3://")
    present = _listing(dst, root)
    if present and not force:
        raise TierRestoreError(
            f"refusing to restore tier {tier}: s3://{root} holds {len(present)} objects; pass force=True"
        )
    at_dr = _listing(src, root)
    absent = sorted(p for p in wanted if p not in at_dr)
    if absent:
        raise TierRestoreError(
            f"replication {manifest.run} is partial: {len(absent)} object(s) of tier {tier} missing at the "
            f"DR site ({', '.join(absent[:5])})"
        )
    dst.create_dir(root.split("/", 1)[0], recursive=False)
    for path in sorted(wanted):  # pyarrow's own transfer (multipart where large)
        pafs.copy_files(path, path, source_filesystem=src, destination_filesystem=dst, use_threads=True)
    copied = _listing(dst, root)
    bad = [
        p
        for p, o in sorted(wanted.items())
        if copied.get(p) != int(o["size"]) or _sha256(dst, p) != str(o["sha256"])
    ]
    if bad:
        raise TierRestoreError(
            f"tier {tier}: {len(bad)} object(s) differ from the DR manifest {manifest.run} after the copy "
            f"({', '.join(bad[:5])})"
        )
    size = sum(int(o["size"]) for o in wanted.values())
    return TierRestoreReport(tier, len(wanted), size, time.perf_counter() - started)


# --- the drill -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillCheck:
    name: str
    ok: bool
    detail: str = ""

    def __str__(self) -> str:
        return f"  [{'ok' if self.ok else 'FAIL'}] {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass
class DrillReport:
    """What a drill did and measured; ``exit_code`` is 0 only when every check and both targets pass."""

    started: datetime
    restore_point: datetime
    destroyed_at: datetime
    restore_started: datetime
    verified_at: datetime
    rpo_target: timedelta
    rto_target: timedelta
    backups: list[BackupRecord] = field(default_factory=list)
    checks: list[DrillCheck] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    lost: dict[str, int] = field(default_factory=dict)  # rows written after the restore point
    notes: list[str] = field(default_factory=list)

    @property
    def rpo(self) -> timedelta:
        """Measured: the data between the restore point and the destruction (what the restore lacks)."""
        return self.destroyed_at - self.restore_point

    @property
    def rto(self) -> timedelta:
        """Measured: from the start of the restore until the restored state was verified."""
        return self.verified_at - self.restore_started

    @property
    def rpo_ok(self) -> bool:
        return self.rpo <= self.rpo_target

    @property
    def rto_ok(self) -> bool:
        return self.rto <= self.rto_target

    @property
    def ok(self) -> bool:
        return self.rpo_ok and self.rto_ok and all(c.ok for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "restore_point": self.restore_point.isoformat(),
            "destroyed_at": self.destroyed_at.isoformat(),
            "rpo_seconds": self.rpo.total_seconds(),
            "rpo_target_seconds": self.rpo_target.total_seconds(),
            "rto_seconds": self.rto.total_seconds(),
            "rto_target_seconds": self.rto_target.total_seconds(),
            "backups": [r.id for r in self.backups],
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "steps": self.steps,
            "lost": self.lost,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def __str__(self) -> str:
        lines = [f"DR drill {'PASSED' if self.ok else 'FAILED'} (started {self.started:%Y-%m-%d %H:%M:%S}Z)"]
        lines.append(
            f"  RPO measured {self.rpo.total_seconds() / 60:.2f} min (restore point "
            f"{self.restore_point:%H:%M:%S}Z, destroyed {self.destroyed_at:%H:%M:%S}Z) "
            f"target ≤ {self.rpo_target.total_seconds() / 60:.0f} min  {'ok' if self.rpo_ok else 'MISSED'}"
        )
        lines.append(
            f"  RTO measured {self.rto.total_seconds():.1f} s (restore start to verified) "
            f"target ≤ {self.rto_target.total_seconds():.0f} s  {'ok' if self.rto_ok else 'MISSED'}"
        )
        if self.lost:
            lines.append(
                "  lost by design (written after the restore point): "
                + ", ".join(f"{k} {v} rows" for k, v in sorted(self.lost.items()))
            )
        lines.append("  backups: " + ", ".join(r.id for r in self.backups))
        lines.append("  steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.steps.items()))
        lines += [str(c) for c in self.checks]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _default_write(primary: Lake, client: Client, layout: ClickHouseLayout, window: Window) -> dict[str, int]:
    """One synthetic rt_lmp window through the pipeline into the lake, and its rows into ClickHouse."""
    from hmco.compose.pipeline import Pipeline
    from hmco.schemas import get_dataset
    from hmco.sinks.clickhouse import ClickHouseSink
    from hmco.sources.synthetic import SyntheticISO

    report = Pipeline(SyntheticISO(nodes=3, settings=primary.settings), lake=primary, name="dr-drill").run(
        window
    )
    if not report.ok:
        raise DrillError(f"the drill's write after the restore point failed: {report}")
    rows = primary.scan(
        "rt_lmp",
        row_filter=f"ts >= '{window.start.isoformat()}' AND ts < '{window.end.isoformat()}'",
    ).to_arrow()
    written = ClickHouseSink(client, layout).write(
        rows, dataset=get_dataset("rt_lmp"), window=window, batch_id="dr-drill"
    )
    return {"lake rt_lmp": rows.num_rows, "clickhouse rt_lmp": written.rows}


WriteAfter = Callable[["Lake", "Client", "ClickHouseLayout", Window], Mapping[str, int]]


def run_drill(
    primary: Lake,
    dr: Lake,
    clickhouse_client: Client,
    layout: ClickHouseLayout,
    *,
    tier: str = "curated",
    window: Window | None = None,
    write_after: WriteAfter | None = None,
    rpo_target: timedelta = DEFAULT_RPO,
    rto_target: timedelta = DEFAULT_RTO,
    now: Callable[[], datetime] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> DrillReport:
    """Run the drill (module docstring) on these stores — it DESTROYS and restores them.

    Args:
        primary: the lake (on S3, catalog on PostgreSQL or SQLite).
        dr: the DR site (same buckets on another S3 endpoint; :func:`~hmco.maintenance.replication.replicate`).
        clickhouse_client / layout: the real-time store.
        tier: the tier whose objects are deleted and restored from the DR site.
        window: the window written after the restore point (default: the last hour, in 5-minute steps).
        write_after: what writes after the restore point (default: a synthetic rt_lmp pipeline window into
            the lake and its rows into ClickHouse); returns rows written per target.
        rpo_target / rto_target: the objectives the measured figures are held against.

    Raises:
        DrillError (and the backup modules' errors): a step could not run; the message names it.
    """
    from hmco.lake import Lake
    from hmco.maintenance.catalog_backup import backup_catalog, export_metadata, read_metadata_export
    from hmco.maintenance.clickhouse_backup import ClickHouseBackups, backup_target
    from hmco.maintenance.replication import replicate

    clock = now or (lambda: datetime.now(UTC))
    if primary.is_local:
        raise ConfigError("the drill restores a tier from the DR site: the primary lake must be on S3")
    started = clock()
    steps: dict[str, float] = {}
    checks: list[DrillCheck] = []

    def step(name: str, t0: float) -> None:
        steps[name] = time.perf_counter() - t0
        say(f"• {name}: {steps[name]:.1f}s")

    # 1. state at the restore point, then the backups (nothing writes in between)
    t0 = time.perf_counter()
    before = capture_state(primary, clickhouse_client, layout)
    catalog = BackupCatalog(primary)
    dump = backup_catalog(primary, backups=catalog)
    export = export_metadata(primary, backups=catalog)
    ch_backups = ClickHouseBackups(clickhouse_client, layout, catalog, backup_target(primary))
    ch_full = ch_backups.full()
    replication = replicate(primary, dr, include_backups=True, backups=catalog)
    if replication.record is None:  # pragma: no cover - replicate raises when it cannot record
        raise DrillError("the replication to the DR site recorded nothing")
    records = [dump, export, ch_full, replication.record]
    restore_point = min(r.restore_point for r in records)
    step("backups", t0)

    # 2. write more: the data the restore point lacks
    t0 = time.perf_counter()
    end = floor_time(clock(), timedelta(minutes=5))
    chosen = window or Window(end - timedelta(hours=1), end)
    lost = dict((write_after or _default_write)(primary, clickhouse_client, layout, chosen))
    after = capture_state(primary, clickhouse_client, layout)
    changed = compare_states(before, after)
    checks.append(
        DrillCheck(
            "the writes after the restore point changed the state",
            bool(changed),
            f"{len(changed)} difference(s)"
            if changed
            else "nothing changed: the verification would prove nothing",
        )
    )
    step("write after restore point", t0)

    # 3. destroy
    t0 = time.perf_counter()
    destroyed_at = clock()
    what = [drop_catalog(primary)]
    clickhouse_client.command(f"DROP DATABASE IF EXISTS `{layout.database}` SYNC")
    what.append(f"dropped ClickHouse database {layout.database}")
    fs, _ = primary.filesystem("s3://")
    root = primary.storage_location(tier).removeprefix("s3://").rstrip("/")
    fs.delete_dir_contents(root, missing_dir_ok=True)
    what.append(f"deleted the objects of s3://{root}")
    say("• destroyed: " + "; ".join(what))
    step("destroy", t0)

    # 4. restore (the RTO clock runs from here until verified)
    restore_started = clock()
    t0 = time.perf_counter()
    say("• " + _restore_catalog(primary, dump))
    restored = ch_backups.restore(ch_full.id)
    say(f"• restored ClickHouse backup {restored.backup_id}: {restored.rows}")
    say("• " + str(restore_tier(primary, dr, tier)))
    step("restore", t0)

    # 5. verify, on fresh connections
    t0 = time.perf_counter()
    fresh = Lake(primary.settings)
    now_state = capture_state(fresh, clickhouse_client, layout)
    problems = compare_states(before, now_state)
    checks.append(
        DrillCheck(
            "restored state equals the restore point (rows, partition checksums, seed queries)",
            not problems,
            "; ".join(problems[:10])
            or f"{len(now_state.lake)} lake tables, {len(now_state.clickhouse)} ClickHouse views",
        )
    )
    exported = read_metadata_export(primary, export)
    served = {".".join(i): loc for i, loc in exported.tables.items()}
    checks.append(
        DrillCheck(
            "the restored catalog serves the metadata export's locations",
            served == now_state.metadata,
            f"{len(served)} tables",
        )
    )
    checks.append(DrillCheck("the seed EIA query answers", bool(before.eia), f"{len(before.eia)} rows"))
    checks.append(DrillCheck("the seed RT query answers", bool(before.rt), f"{len(before.rt)} rows"))
    verified_at = clock()
    step("verify", t0)
    _release(primary)

    report = DrillReport(
        started=started,
        restore_point=restore_point,
        destroyed_at=destroyed_at,
        restore_started=restore_started,
        verified_at=verified_at,
        rpo_target=rpo_target,
        rto_target=rto_target,
        backups=records,
        checks=checks,
        steps=steps,
        lost=lost,
    )
    log.info(
        "DR drill: RPO %.1fs, RTO %.1fs, ok %s",
        report.rpo.total_seconds(),
        report.rto.total_seconds(),
        report.ok,
    )
    return report
