"""``hmco backup run|status``, ``hmco restore`` and ``hmco dr drill`` through ``hmco.cli.main``: the embedded
lake (SQLite catalog) and chdb, backups recorded under ``HMCO_HOME/backups``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from hmco.cli import main
from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance.backup_records import BackupCatalog, BackupRecord
from tests.support.chdb import chdb_dir, chdb_home, lmp_rows, unique_database

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    """A local profile whose HMCO_HOME the chdb engine may back up into, and a fresh chdb database."""
    home = chdb_home() / unique_database("cli")
    path = tmp_path / "profile.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "home": str(home),
                "clickhouse": {
                    "interface": "chdb",
                    "path": str(chdb_dir() / "data"),
                    "database": unique_database("clibk"),
                },
            }
        )
    )
    return path


def _lake(profile: Path) -> Lake:
    return Lake(Settings.load(profile_file=profile))


def _record(lake: Lake, store: str, at: datetime) -> BackupRecord:
    return BackupCatalog(lake).add(
        BackupRecord(f"{store}-full-{at:%H%M%S}", store, "full", "file:///x", at, at, at, 1, "sha256:0")
    )


def _status(profile: Path, now: datetime, *extra: str) -> int:
    return main(["--profile", str(profile), "backup", "status", "--now", now.isoformat(), *extra])


def test_status_is_green_within_the_rpo_and_red_past_it(
    profile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = _lake(profile)
    for store in ("clickhouse", "catalog", "lake"):
        _record(lake, store, T0)
    _record(lake, "catalog", T0 - timedelta(hours=5))  # older ones do not count: the newest does

    metrics = tmp_path / "backup.prom"
    assert _status(profile, T0 + timedelta(minutes=29), "--metrics", str(metrics)) == 0
    out = capsys.readouterr().out
    assert out.count(" ok") == 3 and "RED" not in out
    text = metrics.read_text()
    assert 'hmco_backup_age_seconds{store="catalog"} 1740.0' in text
    assert 'hmco_backup_ok{store="lake"} 1.0' in text

    assert _status(profile, T0 + timedelta(minutes=31), "--metrics", str(metrics)) == 1
    out = capsys.readouterr().out
    assert out.count("RED") == 3
    text = metrics.read_text()
    assert 'hmco_backup_ok{store="clickhouse"} 0.0' in text
    assert 'hmco_backup_age_seconds{store="clickhouse"} 1860.0' in text


def test_status_is_red_for_the_one_stale_store_and_for_a_store_never_backed_up(
    profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = _lake(profile)
    _record(lake, "clickhouse", T0)
    _record(lake, "catalog", T0 - timedelta(minutes=45))
    assert _status(profile, T0 + timedelta(minutes=1), "--store", "clickhouse") == 0
    assert _status(profile, T0 + timedelta(minutes=1), "--store", "clickhouse", "--store", "catalog") == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out if line.rstrip().endswith("RED")] == ["catalog"]
    assert _status(profile, T0 + timedelta(minutes=1)) == 1  # lake: no backup at all
    assert "NO BACKUP" in capsys.readouterr().out
    # a tighter RPO turns the fresh one red too
    assert _status(profile, T0 + timedelta(minutes=1), "--store", "clickhouse", "--rpo-minutes", "0.5") == 1


def test_backup_run_catalog_then_restore_refuses_the_live_catalog_and_restores_a_new_file(
    profile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = _lake(profile)
    lake.create_tiers()
    assert main(["--profile", str(profile), "backup", "run", "catalog"]) == 0
    out = capsys.readouterr().out
    records = BackupCatalog(lake).records("catalog")
    assert sorted(r.kind for r in records) == ["dump", "metadata-export"]
    assert all(r.id in out for r in records)
    assert main(["--profile", str(profile), "backup", "status", "--store", "catalog"]) == 0
    dump = next(r for r in records if r.kind == "dump")

    assert main(["--profile", str(profile), "restore", "catalog", "--backup", dump.id]) == 1
    assert "CatalogRestoreTargetNotEmpty" in capsys.readouterr().err
    target = tmp_path / "restored.db"
    args = ["--profile", str(profile), "restore", "catalog", "--backup", dump.id, "--target", str(target)]
    assert main(args) == 0
    assert target.stat().st_size > 0
    with sqlite3.connect(target) as con:
        namespaces = {r[0] for r in con.execute("SELECT namespace FROM iceberg_namespace_properties")}
    con.close()
    assert namespaces == {".".join(ns) for ns in lake.catalog.list_namespaces()}

    assert main(["--profile", str(profile), "restore", "catalog", "--backup", "catalog-dump-nope"]) == 1
    assert "catalog-dump-nope" in capsys.readouterr().err


def test_backup_run_clickhouse_and_restore_it(profile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.load(profile_file=profile)
    client = connect_clickhouse(settings)
    layout = ClickHouseLayout.of("rt_lmp", database=settings.clickhouse.database)
    ensure_schema(client, layout)
    client.insert_arrow(layout.store, lmp_rows(T0, 12, ["A", "B"]))

    assert main(["--profile", str(profile), "backup", "run", "clickhouse"]) == 0
    record = BackupCatalog(_lake(profile)).latest("clickhouse")
    assert record is not None and record.kind == "full" and record.id in capsys.readouterr().out
    assert main(["--profile", str(profile), "backup", "run", "clickhouse", "--kind", "incremental"]) == 0
    incremental = BackupCatalog(_lake(profile)).latest("clickhouse")
    assert incremental is not None and incremental.base == record.id

    # the live store holds rows: refused unless forced
    assert main(["--profile", str(profile), "restore", "clickhouse", "--backup", record.id]) == 1
    assert "RestoreTargetNotEmpty" in capsys.readouterr().err
    other = unique_database("clirs")
    args = ["--profile", str(profile), "restore", "clickhouse", "--backup", record.id, "--database", other]
    assert main(args) == 0
    assert client.query(f"SELECT count() FROM {other}.rt_lmp_store").result_rows[0][0] == 24


def test_backup_run_all_without_a_dr_site_skips_the_lake(
    profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _lake(profile).create_tiers()
    settings = Settings.load(profile_file=profile)
    ensure_schema(
        connect_clickhouse(settings), ClickHouseLayout.of("rt_lmp", database=settings.clickhouse.database)
    )
    assert main(["--profile", str(profile), "backup", "run", "all"]) == 0
    assert "lake        skipped: no DR site configured" in capsys.readouterr().err
    assert {r.store for r in BackupCatalog(_lake(profile)).records()} == {"catalog", "clickhouse"}
    assert main(["--profile", str(profile), "backup", "run", "lake"]) == 2  # asked for: a usage error


def test_dr_drill_needs_confirmation(profile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--profile", str(profile), "dr", "drill", "--dr-endpoint", "http://127.0.0.1:1"]) == 2
    assert "--yes" in capsys.readouterr().err
