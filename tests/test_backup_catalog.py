"""Catalog backups on real engines: pg_dump/pg_restore against PostgreSQL with the dumps in SeaweedFS,
sqlite3's online backup API, and a metadata export re-registered in fresh SQLite and REST catalogs."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance import catalog_backup as cb
from hmco.maintenance.backup_records import BackupCatalog
from hmco.query.lake import LakeSQL
from hmco.schemas import get_dataset
from hmco.sinks.iceberg import IcebergSink
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window
from tests.support.servers import S3_KEY, S3_SECRET, Postgres, SeaweedFS, _wait

HOURS = Window.of("2026-11-26T00:00", "2026-11-26T03:00")
LATER = Window.of("2026-11-26T03:00", "2026-11-26T04:00")
NODES = 4
KEY = ["iso", "market", "node", "ts"]
CURATED = "hub_curated.rt_lmp"


def _filled(settings: Settings, window: Window = HOURS) -> Lake:
    lake = Lake(settings)
    lake.create_tiers()
    report = Pipeline(SyntheticISO(nodes=NODES, settings=settings), lake=lake, name="rt").run(window)
    assert report.ok
    # A second table in another namespace (the staged tier), so backups cover more than one.
    rows = lake.table("rt_lmp").scan().to_arrow()
    IcebergSink(lake, "staged").write(rows, dataset=get_dataset("rt_lmp"), window=window, batch_id="staged")
    return lake


def _rows(table: object) -> list[dict[str, object]]:
    """A table's rows read by pyiceberg, in key order."""
    rows = table.scan().to_arrow().select([*KEY, "lmp"])  # type: ignore[attr-defined]
    return rows.sort_by([(c, "ascending") for c in KEY]).to_pylist()


def _duck_rows(lake: Lake) -> list[dict[str, object]]:
    """The curated table's rows read by DuckDB's iceberg_scan (not pyiceberg), in key order."""
    with LakeSQL(lake) as sql:
        order = ", ".join(KEY)
        return sql.sql(f"SELECT {order}, lmp FROM {CURATED} ORDER BY {order}", dialect="duckdb").to_pylist()


def _stored(lake: Lake, location: str) -> bytes:
    fs, path = lake.filesystem(location)
    with fs.open_input_stream(path, compression=None) as f:
        return bytes(f.read())


def _overwrite(lake: Lake, location: str, data: bytes) -> None:
    fs, path = lake.filesystem(location)
    with fs.open_output_stream(path, compression=None) as f:
        f.write(data)


def _pg_settings(settings: Settings, uri: str) -> Settings:
    return settings.model_copy(update={"catalog": settings.catalog.model_copy(update={"uri": uri})})


# --- PostgreSQL: pg_dump -Fc into the backups bucket, pg_restore into an empty database ------------------


def test_pg_dump_is_stored_in_the_backups_bucket_and_recorded_after_verification(
    cluster_settings: Settings,
) -> None:
    lake = _filled(cluster_settings)
    record = cb.backup_catalog(lake)

    assert (record.store, record.kind) == ("catalog", "dump")
    assert record.location.startswith(f"{lake.backup_location()}/catalog/") and record.location.endswith(
        ".dump"
    )
    data = _stored(lake, record.location)
    assert data.startswith(b"PGDMP")  # pg_dump's custom format
    assert record.size == len(data)
    assert record.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
    assert record.started == record.restore_point <= record.finished
    assert BackupCatalog(lake).latest("catalog") == record


def test_pg_restore_into_an_empty_database_gives_back_every_table_and_accepts_appends(
    cluster_settings: Settings, postgres: Postgres
) -> None:
    lake = _filled(cluster_settings)
    before = _rows(lake.table("rt_lmp"))
    record = cb.backup_catalog(lake)

    target = postgres.create_database(f"restored_{os.getpid()}_{record.id[-8:]}")
    report = cb.restore_catalog_dump(lake, record.id, target)

    assert report.tables == len(lake.catalog.list_tables("hub_curated")) + len(
        lake.catalog.list_tables("hub_staged")
    )
    restored = Lake(_pg_settings(cluster_settings, target))
    assert _rows(restored.catalog.load_table(CURATED)) == before
    Pipeline(SyntheticISO(nodes=NODES, settings=restored.settings), lake=restored, name="rt").run(LATER)
    assert restored.catalog.load_table(CURATED).scan().to_arrow().num_rows == len(before) + NODES * 12


def test_pg_restore_refuses_a_database_that_is_not_empty(cluster_settings: Settings) -> None:
    lake = _filled(cluster_settings)
    record = cb.backup_catalog(lake)
    Pipeline(SyntheticISO(nodes=NODES, settings=cluster_settings), lake=lake, name="rt").run(LATER)
    current = lake.catalog.load_table(CURATED).metadata_location

    with pytest.raises(cb.CatalogRestoreTargetNotEmpty, match=r"not empty \(.*iceberg_tables") as info:
        cb.restore_catalog_dump(lake, record, cluster_settings.catalog.uri or "")

    assert record.id in str(info.value)
    assert Lake(cluster_settings).catalog.load_table(CURATED).metadata_location == current  # untouched


def test_forced_pg_restore_replaces_a_non_empty_database(cluster_settings: Settings) -> None:
    lake = _filled(cluster_settings)
    at_backup = lake.catalog.load_table(CURATED).metadata_location
    record = cb.backup_catalog(lake)
    Pipeline(SyntheticISO(nodes=NODES, settings=cluster_settings), lake=lake, name="rt").run(LATER)

    cb.restore_catalog_dump(lake, record, cluster_settings.catalog.uri or "", force=True)

    assert Lake(cluster_settings).catalog.load_table(CURATED).metadata_location == at_backup


def test_truncated_dump_is_a_clear_error_naming_it_and_restores_nothing(
    cluster_settings: Settings, postgres: Postgres
) -> None:
    lake = _filled(cluster_settings)
    record = cb.backup_catalog(lake)
    data = _stored(lake, record.location)
    _overwrite(lake, record.location, data[: len(data) // 2])
    target = postgres.create_database(f"trunc_{os.getpid()}_{record.id[-8:]}")

    with pytest.raises(cb.CatalogBackupUnusable, match="truncated") as info:
        cb.restore_catalog_dump(lake, record.id, target)

    message = str(info.value)
    assert record.id in message and record.location in message
    assert f"{len(data) // 2} of {len(data)} bytes" in message
    assert cb._PgConnection.parse(target).relations() == []  # nothing was restored


def test_altered_or_missing_dump_is_a_clear_error_naming_it(cluster_settings: Settings) -> None:
    lake = _filled(cluster_settings)
    record = cb.backup_catalog(lake)
    data = bytearray(_stored(lake, record.location))
    data[-10] ^= 0xFF
    _overwrite(lake, record.location, bytes(data))
    with pytest.raises(cb.CatalogBackupUnusable, match=f"backup {record.id} is corrupt"):
        cb.verify_backup(lake, record)

    fs, path = lake.filesystem(record.location)
    fs.delete_file(path)
    with pytest.raises(cb.CatalogBackupUnusable, match=f"backup {record.id} is missing"):
        cb.restore_catalog_dump(lake, record, cluster_settings.catalog.uri or "")


def test_pg_password_reaches_the_tools_through_the_environment_only(
    cluster_settings: Settings, postgres: Postgres, tmp_path: Path
) -> None:
    secret = "Pg-Secret-4471"
    settings = cluster_settings.model_copy(
        update={"catalog": cluster_settings.catalog.model_copy(update={"password": SecretStr(secret)})}
    )
    lake = _filled(settings)
    real = shutil.which("pg_dump")
    assert real is not None
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "pg_dump"  # records what the tool was given, then runs the real pg_dump
    wrapper.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{bindir}/argv"\n'
        f'printf "%s" "$PGPASSWORD" > "{bindir}/pgpassword"\n'
        f'exec "{real}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)

    record = cb.backup_postgres(lake, bindir=bindir)

    assert (bindir / "pgpassword").read_text() == secret
    argv = (bindir / "argv").read_text()
    assert secret not in argv and "--dbname" in argv
    assert secret not in record.to_json()
    missing = f"postgresql+psycopg2://postgres:{secret}@127.0.0.1:{postgres.port}/no_such_db"
    with pytest.raises(cb.CatalogRestoreFailed) as info:
        cb.restore_catalog_dump(lake, record, missing)
    assert "no_such_db" in str(info.value) and secret not in str(info.value)


# --- SQLite: sqlite3's online backup API ---------------------------------------------------------------


def test_sqlite_online_backup_round_trip(settings: Settings, tmp_path: Path) -> None:
    lake = _filled(settings)
    before = _rows(lake.table("rt_lmp"))
    lake.catalog.load_table(CURATED)  # the catalog stays open and in use while it is backed up

    record = cb.backup_catalog(lake)

    assert record.details["format"] == cb.SQLITE_FORMAT
    assert record.location.startswith(lake.backup_location())
    data = _stored(lake, record.location)
    assert (
        data.startswith(b"SQLite format 3\x00")
        and record.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
    )
    home = tmp_path / "restored"
    report = cb.restore_catalog_dump(lake, record, home / "catalog.db")
    assert report.tables == len(lake.catalog.list_tables("hub_curated")) + len(
        lake.catalog.list_tables("hub_staged")
    )
    restored = Lake(Settings.load(home=home))
    assert _rows(restored.catalog.load_table(CURATED)) == before
    assert _duck_rows(restored) == before

    with pytest.raises(cb.CatalogRestoreTargetNotEmpty, match="iceberg_tables"):
        cb.restore_catalog_dump(lake, record, home / "catalog.db")


def test_truncated_sqlite_backup_leaves_no_catalog_file(settings: Settings, tmp_path: Path) -> None:
    lake = _filled(settings)
    record = cb.backup_sqlite(lake)
    data = _stored(lake, record.location)
    _overwrite(lake, record.location, data[:4096])

    with pytest.raises(cb.CatalogBackupUnusable, match=f"backup {record.id} is truncated"):
        cb.restore_catalog_dump(lake, record, tmp_path / "new" / "catalog.db")
    assert not (tmp_path / "new" / "catalog.db").exists()


# --- metadata export: any catalog → register_table in a fresh catalog of any kind -----------------------


def test_metadata_export_lists_every_table_and_namespace(cluster_settings: Settings) -> None:
    lake = _filled(cluster_settings)
    record = cb.export_metadata(lake)

    export = cb.read_metadata_export(lake, record.id)
    assert record.kind == "metadata-export" and record.details["tables"] == len(export.tables)
    assert export.tables[("hub_curated", "rt_lmp")] == lake.catalog.load_table(CURATED).metadata_location
    assert (
        export.tables[("hub_staged", "rt_lmp")]
        == lake.catalog.load_table("hub_staged.rt_lmp").metadata_location
    )
    assert export.namespaces[("hub_curated",)]["location"] == lake.tier_location("curated")
    assert "exists" not in export.namespaces[("hub_curated",)]
    assert record.checksum == "sha256:" + hashlib.sha256(_stored(lake, record.location)).hexdigest()


def test_metadata_export_imports_into_a_fresh_sqlite_catalog(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    lake = _filled(cluster_settings)
    before = _rows(lake.table("rt_lmp"))
    export = cb.read_metadata_export(lake, cb.export_metadata(lake).id)
    fresh = Lake(Settings.load(home=tmp_path / "fresh", s3=cluster_settings.s3.model_dump()))

    report = cb.import_metadata(export, fresh.catalog)

    assert sorted(report.registered) == ["hub_curated.rt_lmp", "hub_staged.rt_lmp"]
    assert report.tables[CURATED] == export.tables[("hub_curated", "rt_lmp")]
    assert set(report.namespaces_created) >= {"hub_curated", "hub_staged"}
    assert fresh.catalog.load_namespace_properties("hub_curated")["location"] == lake.tier_location("curated")
    assert _rows(fresh.catalog.load_table(CURATED)) == before
    assert _duck_rows(fresh) == before
    # The same import again changes nothing; a table at another location is never silently replaced.
    assert sorted(cb.import_metadata(export, fresh.catalog).unchanged) == sorted(report.registered)
    Pipeline(SyntheticISO(nodes=NODES, settings=fresh.settings), lake=fresh, name="rt").run(LATER)
    with pytest.raises(cb.CatalogRestoreTargetNotEmpty, match=r"hub_curated\.rt_lmp already exists"):
        cb.import_metadata(export, fresh.catalog)
    replaced = cb.import_metadata(export, fresh.catalog, replace=True)  # the run rewrote the curated table
    assert replaced.registered == ["hub_curated.rt_lmp"]
    assert "hub_staged.rt_lmp" in replaced.unchanged
    assert _rows(fresh.catalog.load_table(CURATED)) == before


def test_import_names_a_missing_metadata_file_and_changes_nothing(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    lake = _filled(cluster_settings)
    export = cb.CatalogExport.of(lake.catalog)
    gone = export.tables[("hub_staged", "rt_lmp")].replace(".metadata.json", "-gone.metadata.json")
    broken = cb.CatalogExport(
        export.exported_at, "sql", export.namespaces, {**export.tables, ("hub_staged", "rt_lmp"): gone}
    )
    fresh = Lake(Settings.load(home=tmp_path / "fresh", s3=cluster_settings.s3.model_dump()))

    with pytest.raises(cb.CatalogBackupUnusable, match=f"hub_staged.rt_lmp is missing: {gone}"):
        cb.import_metadata(broken, fresh.catalog)
    assert fresh.catalog.list_namespaces() == []


def test_metadata_export_imports_into_the_rest_catalog(
    seaweed_dr: SeaweedFS, postgres: Postgres, tmp_path: Path
) -> None:
    """SQL catalog on PostgreSQL → export → SeaweedFS's Iceberg REST catalog, on the same object store."""
    _wait(seaweed_dr.rest_ready, "SeaweedFS Iceberg REST catalog")
    s3 = {"endpoint": seaweed_dr.endpoint, "access_key_id": S3_KEY, "secret_access_key": S3_SECRET}
    sql_settings = Settings.load(
        profile="cluster",
        home=tmp_path / "sql",
        storage_prefix=f"rest-import-{os.getpid()}",
        catalog={"type": "sql", "uri": postgres.create_database(f"rest_import_{os.getpid()}")},
        s3=s3,
    )
    lake = _filled(sql_settings)
    before = _rows(lake.table("rt_lmp"))
    snapshots = [s.snapshot_id for s in lake.table("rt_lmp").metadata.snapshots]
    export = cb.read_metadata_export(lake, cb.export_metadata(lake).id)
    rest_settings = Settings.load(
        profile="cluster",
        home=tmp_path / "rest",
        storage_prefix=sql_settings.storage_prefix,
        catalog={
            "type": "rest",
            "uri": seaweed_dr.rest_uri,
            "credential": f"{S3_KEY}:{S3_SECRET}",
            "warehouse": "s3://hmco-curated/",  # the REST catalog's table bucket holding the curated tier
        },
        s3=s3,
    )
    rest = Lake(rest_settings)

    report = cb.import_metadata(export, rest.catalog, tables=[CURATED])

    assert report.replayed == [CURATED]
    table = rest.catalog.load_table(CURATED)
    assert [s.snapshot_id for s in table.metadata.snapshots] == snapshots
    assert table.location() == lake.table("rt_lmp").location()
    assert _rows(table) == before
    assert _duck_rows(rest) == before
    assert cb.import_metadata(export, rest.catalog, tables=[CURATED]).unchanged == [CURATED]
