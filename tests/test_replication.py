"""Lake replication to a DR site on real engines: two SeaweedFS endpoints (primary and DR), the primary's
catalog on PostgreSQL, a SQLite catalog at the DR site, DuckDB's ``iceberg_scan`` as independent reader.

``python -m tests.test_replication crash <data|metadata> <n>`` (both lakes' settings as JSON on stdin)
runs a replication in its own process and SIGKILLs it after its n-th copied object of that phase.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.errors import ConfigError
from hmco.lake import TIERS, Lake
from hmco.maintenance.backup_records import BackupCatalog
from hmco.maintenance.catalog_backup import export_metadata, read_metadata_export
from hmco.maintenance.replication import (
    ReplicatedObject,
    read_manifest,
    register_dr_tables,
    replicate,
)
from hmco.query.lake import LakeSQL
from hmco.sinks.raw import RawArchive
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window
from tests.support.servers import SeaweedFS, dr_settings

WINDOWS = [Window.of(f"2026-11-26T{h:02d}:00", f"2026-11-26T{h + 1:02d}:00") for h in range(6)]
NODES = 3
KEY = ["iso", "market", "node", "ts"]
TABLES = ("hub_curated.rt_lmp", "hub_staged.rt_lmp")


def _run(lake: Lake, *windows: Window) -> None:
    """Fill curated, and staged through a second pipeline publishing at that tier (two tables to replicate)."""
    source = SyntheticISO(nodes=NODES, settings=lake.settings)
    curated = Pipeline(source, lake=lake, name="rt")
    staged = Pipeline(source, lake=lake, name="rt-staged", publish_tier="staged")
    for window in windows:
        assert curated.run(window).ok and staged.run(window).ok


@pytest.fixture
def primary(cluster_settings: Settings) -> Lake:
    lake = Lake(cluster_settings)
    lake.create_tiers()
    _run(lake, WINDOWS[0], WINDOWS[1])
    return lake


@pytest.fixture
def dr(primary: Lake, seaweed_dr: SeaweedFS, tmp_path: Path) -> Lake:
    return Lake(dr_settings(primary.settings, seaweed_dr, tmp_path / "dr"))


def _objects(fs: pafs.FileSystem, lake: Lake) -> dict[str, int]:
    """``bucket/key`` → size of every object under the lake's tier roots, listed on ``fs``."""
    found: dict[str, int] = {}
    for name in TIERS:
        root = lake.storage_location(name).removeprefix("s3://")
        for info in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
            if info.type == pafs.FileType.File:
                found[info.path] = int(info.size or 0)
    return found


def _primary_objects(lake: Lake) -> dict[str, int]:
    fs, _ = lake.filesystem("s3://")
    return _objects(fs, lake)


def _rows(table: object, snapshot_id: int | None = None) -> list[dict[str, object]]:
    scan = table.scan(snapshot_id=snapshot_id) if snapshot_id else table.scan()  # type: ignore[attr-defined]
    rows = scan.to_arrow().select([*KEY, "lmp"])
    return rows.sort_by([(c, "ascending") for c in KEY]).to_pylist()


def _duck_rows(lake: Lake, table: str) -> list[dict[str, object]]:
    """Rows read by DuckDB's ``iceberg_scan`` at the lake's S3 endpoint (not pyiceberg)."""
    order = ", ".join(KEY)
    with LakeSQL(lake) as sql:
        return sql.sql(f"SELECT {order}, lmp FROM {table} ORDER BY {order}", dialect="duckdb").to_pylist()


# --- full and incremental -------------------------------------------------------------------------------


def test_full_then_incremental_replication_copies_only_new_objects(
    primary: Lake, dr: Lake, seaweed_dr: SeaweedFS
) -> None:
    first = _primary_objects(primary)
    metadata = [p for p in first if p.endswith(".metadata.json")]

    full = replicate(primary, dr)

    assert (full.copied, full.skipped, full.verified) == (len(first), 0, 0)
    assert full.metadata_copied == len(metadata) > 0
    assert full.bytes_copied == sum(first.values())
    assert _objects(seaweed_dr.filesystem(), dr) == first
    assert any("/payloads/" in p for p in first)  # the raw archive travels too
    assert full.record is not None and BackupCatalog(primary).latest("lake") == full.record
    assert full.record.details["copied"] == len(first) and full.record.size == sum(first.values())
    manifest = read_manifest(dr)
    assert manifest is not None and {p: o["size"] for p, o in manifest.objects.items()} == first

    _run(primary, WINDOWS[2])
    now = _primary_objects(primary)
    new = {p: s for p, s in now.items() if first.get(p) != s}
    assert new  # data files, manifests and metadata of the new commits, and new payloads

    incremental = replicate(primary, dr)

    assert (incremental.copied, incremental.skipped) == (len(new), len(now) - len(new))
    assert incremental.verified == 0
    assert incremental.bytes_copied == sum(new.values())
    assert incremental.metadata_copied == len([p for p in new if p.endswith(".metadata.json")])
    assert _objects(seaweed_dr.filesystem(), dr) == now
    again = replicate(primary, dr)
    assert (again.copied, again.skipped) == (0, len(now))


def test_dr_tables_are_queryable_with_identical_rows(primary: Lake, dr: Lake) -> None:
    expected = {t: _rows(primary.catalog.load_table(t)) for t in TABLES}
    heads = {t: primary.catalog.load_table(t).metadata_location for t in TABLES}
    payloads = RawArchive(primary).keys()
    replicate(primary, dr)
    # Nothing of the primary's tier objects is needed any more: every read below is the DR site's.
    fs, _ = primary.filesystem("s3://")
    for name in TIERS:
        fs.delete_dir_contents(primary.storage_location(name).removeprefix("s3://"), missing_dir_ok=True)

    report = register_dr_tables(dr)

    assert sorted(report.registered) == sorted(TABLES)
    for table in TABLES:
        assert report.tables[table] == heads[table]
        assert _rows(dr.catalog.load_table(table)) == expected[table]
        assert _duck_rows(dr, table) == expected[table]
    assert RawArchive(dr).keys() == payloads


def test_warm_standby_follows_each_replication(primary: Lake, dr: Lake) -> None:
    replicate(primary, dr)
    register_dr_tables(dr)
    _run(primary, WINDOWS[2])
    replicate(primary, dr)

    report = register_dr_tables(dr)  # re-points the DR catalog at the newer metadata

    assert sorted(report.registered) == sorted(TABLES)
    for table in TABLES:
        assert _duck_rows(dr, table) == _rows(primary.catalog.load_table(table))


def test_dr_tables_at_the_last_metadata_export_replicated_with_the_backups(primary: Lake, dr: Lake) -> None:
    exported = export_metadata(primary)
    at_export = {t: _rows(primary.catalog.load_table(t)) for t in TABLES}
    _run(primary, WINDOWS[2])  # newer data is replicated too, but the export pins the older metadata
    replicate(primary, dr, include_backups=True)

    record = BackupCatalog(dr).latest("catalog", kinds=["metadata-export"])  # read at the DR endpoint
    assert record == exported
    export = read_metadata_export(dr, record)
    report = register_dr_tables(dr, export=export, newest=False)

    assert report.tables == {".".join(i): loc for i, loc in export.tables.items()}
    for table in TABLES:
        assert _duck_rows(dr, table) == at_export[table] != _rows(primary.catalog.load_table(table))


def test_an_unrecorded_object_at_the_dr_site_is_checked_by_content(
    primary: Lake, dr: Lake, seaweed_dr: SeaweedFS
) -> None:
    objects = _primary_objects(primary)
    victim = next(p for p in sorted(objects) if p.endswith(".parquet"))
    fs, _ = primary.filesystem("s3://")
    with fs.open_input_stream(victim, compression=None) as f:
        original = f.read()
    dr_fs = seaweed_dr.filesystem()
    dr_fs.create_dir(victim.split("/", 1)[0])
    with dr_fs.open_output_stream(victim, compression=None) as out:  # same key, same size, other bytes
        out.write(bytes(b ^ 0xFF for b in original))

    report = replicate(primary, dr)

    assert (report.copied, report.verified) == (len(objects), 0)
    with dr_fs.open_input_stream(victim, compression=None) as f:
        assert f.read() == original


def test_the_dr_site_must_share_bucket_names_and_not_the_endpoint(
    cluster_settings: Settings, seaweed_dr: SeaweedFS, tmp_path: Path
) -> None:
    primary = Lake(cluster_settings)
    other_prefix = dr_settings(cluster_settings, seaweed_dr, tmp_path / "a").model_copy(
        update={"storage_prefix": "elsewhere"}
    )
    with pytest.raises(ConfigError, match="bucket names and storage prefix"):
        replicate(primary, Lake(other_prefix))
    with pytest.raises(ConfigError, match="another S3 endpoint"):
        replicate(primary, Lake(cluster_settings.model_copy(update={"home": tmp_path / "b"})))


# --- a crash in the middle ------------------------------------------------------------------------------


def _settings_json(settings: Settings) -> dict[str, object]:
    """Settings for a child process, S3 keys included (test plumbing on loopback, passed on stdin)."""
    data = settings.model_dump(mode="json")
    for key in ("access_key_id", "secret_access_key"):
        value = getattr(settings.s3, key)
        data["s3"][key] = value.get_secret_value() if value else None
    return data


def _replicate_and_die(primary: Lake, dr: Lake, phase: str, kill_after: int) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.test_replication", "crash", phase, str(kill_after)],
        input=json.dumps({"primary": _settings_json(primary.settings), "dr": _settings_json(dr.settings)}),
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=240,
        check=False,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-3000:]


def _dr_view(dr: Lake, home: Path) -> Lake:
    """A fresh DR catalog, registered from whatever is at the DR site now."""
    view = Lake(dr.settings.model_copy(update={"home": home}))
    register_dr_tables(view)
    return view


@pytest.mark.parametrize(
    ("phase", "kill_at"),
    [("data", 2), ("data", -1), ("metadata", 1)],
    ids=["early-in-data", "last-data-object-missing", "first-metadata-copied"],
)
def test_crash_mid_replication_leaves_the_dr_site_consistent_and_a_rerun_completes(
    primary: Lake, dr: Lake, tmp_path: Path, phase: str, kill_at: int
) -> None:
    replicate(primary, dr)
    replicated = {t: _rows(primary.catalog.load_table(t)) for t in TABLES}
    before = _primary_objects(primary)
    _run(primary, *WINDOWS[2:5])
    new = {p: s for p, s in _primary_objects(primary).items() if before.get(p) != s}
    new_metadata = [p for p in new if p.endswith(".metadata.json")]
    new_data = len(new) - len(new_metadata)
    kill_after = kill_at if kill_at > 0 else new_data + kill_at  # -1: every data object but one
    assert new_data > kill_after and (phase == "data" or len(new_metadata) > kill_after)

    _replicate_and_die(primary, dr, phase, kill_after)

    # Every table registered from what is at the DR site reads, with the rows of the snapshot it is at.
    view = _dr_view(dr, tmp_path / "after-crash")
    moved = []
    for table in TABLES:
        at_dr = view.catalog.load_table(table)
        assert _duck_rows(view, table) == _rows(
            primary.catalog.load_table(table), at_dr.metadata.current_snapshot_id
        )
        if _rows(at_dr) != replicated[table]:
            moved.append(table)
    assert len(moved) == (0 if phase == "data" else kill_after)  # only metadata moves a table forward

    rerun = replicate(primary, dr)

    copied_before_crash = kill_after if phase == "data" else len(new) - len(new_metadata) + kill_after
    assert rerun.verified == copied_before_crash  # copied by the dead run, verified by content
    assert rerun.copied == len(new) - copied_before_crash
    view = _dr_view(dr, tmp_path / "after-rerun")
    for table in TABLES:
        assert _duck_rows(view, table) == _rows(primary.catalog.load_table(table))


def _crash(phase: str, kill_after: int) -> None:
    sites = json.loads(sys.stdin.read())
    primary = Lake(Settings.model_validate(sites["primary"]))
    dr = Lake(Settings.model_validate(sites["dr"]))
    seen = 0

    def die_after(obj: ReplicatedObject) -> None:
        nonlocal seen
        if obj.metadata == (phase == "metadata"):
            seen += 1
            if seen >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    replicate(primary, dr, workers=1, on_copied=die_after)
    raise SystemExit("the replication finished without being killed")


if __name__ == "__main__":
    command, phase_arg, count = sys.argv[1:]
    if command != "crash":
        raise SystemExit(f"unknown command {command}")
    _crash(phase_arg, int(count))
