"""ClickHouse backups on the real engine (chdb) to a real S3 server (SeaweedFS): full, incremental,
restores, damaged backups, retention, secrets; the cluster SQL as golden text checked by ClickHouse's parser."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from pydantic import SecretStr

from hmco.clickhouse import ROLLUPS, ClickHouseLayout, connect_clickhouse, ensure_schema, refresh_rollups
from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance.backup_records import BackupCatalog, BackupRecord
from hmco.maintenance.clickhouse_backup import (
    BackupFailed,
    BackupUnusable,
    ClickHouseBackups,
    FileBackupTarget,
    RestoreFailed,
    RestoreTargetNotEmpty,
    S3BackupTarget,
    backup_target,
    render_backup,
    render_count,
    render_drop,
    render_exists,
    render_restore,
    render_truncate,
    s3_credentials_config,
)
from hmco.schemas import TS
from hmco.windows import Window
from tests.support.chdb import chdb_home, chdb_settings, lmp_rows, unique_database
from tests.support.servers import S3_KEY, S3_SECRET, SeaweedFS

# Data old enough that the refreshable rollups (last 2 days) never touch it, young enough for the TTL;
# DAY0 and DAY1 are 50 days apart, so always in different monthly partitions: rows added on DAY1 go to
# new parts and never merge with the parts a full backup of DAY0 holds.
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAY0 = TODAY - timedelta(days=60)
DAY1 = TODAY - timedelta(days=10)
NODES = [f"N{i:03d}" for i in range(100)]
BUCKET = "hmco-backups"


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def s3_lake(seaweed: SeaweedFS, tmp_path) -> Lake:  # type: ignore[no-untyped-def]
    """A lake whose backups live in SeaweedFS (``s3://hmco-backups/<fresh prefix>``)."""
    fs = seaweed.filesystem()
    if fs.get_file_info(BUCKET).type == pafs.FileType.NotFound:
        fs.create_dir(BUCKET)
    return Lake(
        Settings.load(
            home=tmp_path / "hmco",
            storage_prefix=f"bk-{uuid.uuid4().hex[:10]}",
            s3={"endpoint": seaweed.endpoint, "access_key_id": S3_KEY, "secret_access_key": S3_SECRET},
        )
    )


@pytest.fixture
def store() -> tuple[object, ClickHouseLayout]:
    db = unique_database("bk")
    client = connect_clickhouse(chdb_settings(db))
    layout = ClickHouseLayout.of("rt_lmp", database=db)
    ensure_schema(client, layout)
    return client, layout


@pytest.fixture
def backups(store, s3_lake: Lake) -> ClickHouseBackups:  # type: ignore[no-untyped-def]
    client, layout = store
    return ClickHouseBackups.for_lake(client, layout, s3_lake)


def load(backups: ClickHouseBackups, start: datetime, intervals: int, nodes: list[str] = NODES) -> None:
    """Rows of ``intervals`` 5-minute intervals from ``start`` for ``nodes``, and their exact rollups.

    Prices are random, so the parts' sizes grow with the rows as real prices do (not compressed away).
    """
    client, layout = backups.client, backups.layout
    table = lmp_rows(start, intervals, nodes)
    prices = np.random.default_rng(int(start.timestamp())).normal(40.0, 15.0, table.num_rows)
    client.insert_arrow(
        layout.store, table.set_column(table.schema.get_field_index("lmp"), "lmp", pa.array(prices))
    )
    refresh_rollups(client, layout, Window(start, start + timedelta(minutes=5 * intervals)))


def contents(client, layout: ClickHouseLayout) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    """Every deduplicated row of the store and of each rollup, in key order."""
    out = {"rows": client.query(f"SELECT * FROM {layout.view} ORDER BY iso, node, market, ts").result_rows}
    for r in ROLLUPS:
        out[r.name] = client.query(
            f"SELECT * FROM {layout.rollup_view(r)} ORDER BY iso, node, market, {r.bucket}"
        ).result_rows
    return out


def objects(seaweed: SeaweedFS, record: BackupRecord) -> dict[str, int]:
    """The backup's objects as SeaweedFS lists them (independent of hmco's own listing)."""
    path = record.location.removeprefix("s3://")
    infos = seaweed.filesystem().get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return {i.path[len(path) + 1 :]: i.size for i in infos if i.type == pafs.FileType.File}


def fresh_layout() -> ClickHouseLayout:
    return ClickHouseLayout.of("rt_lmp", database=unique_database("restored"))


def tables_in(client, database: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        r[0]
        for r in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
            parameters={"db": database},
        ).result_rows
    ]


# --- full and incremental backups ---------------------------------------------------------------


@pytest.mark.s3
def test_full_backup_restores_identical_rows_and_rollups_into_an_empty_database(
    backups: ClickHouseBackups, seaweed: SeaweedFS
) -> None:
    load(backups, DAY0, 288)
    before = contents(backups.client, backups.layout)

    record = backups.full()

    assert (record.store, record.kind, record.base) == ("clickhouse", "full", None)
    assert record.restore_point == record.started <= record.finished
    stored = objects(seaweed, record)
    assert ".backup" in stored
    assert record.size == sum(stored.values())
    assert record.details["objects"] == len(stored)
    assert record.checksum.startswith("sha256:")
    assert record.details["tables"] == ["rt_lmp_store", "rt_lmp_hourly_store", "rt_lmp_daily_store"]
    assert BackupCatalog(backups.catalog.lake).get(record.id) == record  # recorded beside the backup

    into = fresh_layout()
    report = backups.restore(record.id, into=into)

    assert contents(backups.client, into) == before
    assert len(before["rows"]) == 288 * len(NODES)
    assert report.rows[into.store] == 288 * len(NODES)
    assert report.chain == [record.id]
    assert tables_in(backups.client, into.database) == tables_in(backups.client, backups.layout.database)


@pytest.mark.s3
def test_incremental_carries_only_the_new_parts(backups: ClickHouseBackups, seaweed: SeaweedFS) -> None:
    load(backups, DAY0, 288)
    full = backups.full()
    load(backups, DAY1, 12)  # 12 intervals more, in a new monthly partition
    incremental = backups.incremental()
    second_full = backups.full()

    assert incremental.kind == "incremental"
    assert incremental.base == full.id

    # Exactly the parts the first full lacks: the second full's data objects minus the first's ...
    def data(record: BackupRecord) -> set[tuple[str, int]]:
        return {(n, size) for n, size in objects(seaweed, record).items() if n != ".backup"}

    assert data(incremental) == data(second_full) - data(full)
    assert data(incremental)
    # ... a fraction of a full's bytes (12 of 300 intervals, plus per-part files and metadata)
    assert incremental.size * 5 < second_full.size
    old_partition = f"/{DAY0:%Y%m}_"
    new_partition = f"/{DAY1:%Y%m}_"
    assert not any(old_partition in name for name in objects(seaweed, incremental))
    assert any(new_partition in name for name in objects(seaweed, incremental))
    assert any(old_partition in name for name in objects(seaweed, second_full))


@pytest.mark.s3
def test_restore_of_an_incremental_gives_the_full_plus_what_changed(backups: ClickHouseBackups) -> None:
    load(backups, DAY0, 48)
    full = backups.full()
    load(backups, DAY1, 12)
    backups.client.insert_arrow(  # a revision of DAY0 rows: newer published_at wins in FINAL
        backups.layout.store,
        lmp_rows(DAY0, 2, NODES[:3], price=99.0).append_column("published_at", pa.array([DAY1] * 6, TS)),
    )
    expected = contents(backups.client, backups.layout)
    incremental = backups.incremental()

    into = fresh_layout()
    report = backups.restore(incremental.id, into=into)

    assert report.chain == [incremental.id, full.id]
    assert contents(backups.client, into) == expected
    assert len(expected["rows"]) == 60 * len(NODES)


@pytest.mark.s3
def test_restore_without_an_id_takes_the_newest_backup(backups: ClickHouseBackups) -> None:
    load(backups, DAY0, 12)
    backups.full()
    load(backups, DAY1, 12)
    newest = backups.incremental()
    into = fresh_layout()
    assert backups.restore(into=into).backup_id == newest.id
    assert contents(backups.client, into) == contents(backups.client, backups.layout)


@pytest.mark.s3
def test_whole_store_restores_in_place_after_its_tables_were_dropped(backups: ClickHouseBackups) -> None:
    load(backups, DAY0, 24)
    before = contents(backups.client, backups.layout)
    record = backups.full()
    for name in record.details["tables"]:
        backups.client.command(f"DROP TABLE {backups.layout.qualified(name)} SYNC")

    backups.restore(record.id)

    assert contents(backups.client, backups.layout) == before


@pytest.mark.s3
def test_asynchronous_backup_and_restore_poll_until_done(store, s3_lake: Lake) -> None:  # type: ignore[no-untyped-def]
    client, layout = store
    backups = ClickHouseBackups.for_lake(client, layout, s3_lake, asynchronous=True, poll_every=0.05)
    load(backups, DAY0, 24)
    record = backups.full()
    into = fresh_layout()
    backups.restore(record.id, into=into)
    assert contents(client, into) == contents(client, layout)


def test_local_lake_backs_up_to_a_directory_the_engine_shares(store) -> None:  # type: ignore[no-untyped-def]
    client, layout = store
    lake = Lake(Settings.load(home=chdb_home() / uuid.uuid4().hex[:10]))
    backups = ClickHouseBackups.for_lake(client, layout, lake)
    assert isinstance(backups.target, FileBackupTarget)
    load(backups, DAY0, 24)

    record = backups.full()

    assert record.location.startswith(lake.backup_location() + "/clickhouse/")
    assert (lake.settings.home_dir / "backups" / "clickhouse" / record.id / ".backup").is_file()
    into = fresh_layout()
    backups.restore(record.id, into=into)
    assert contents(client, into) == contents(client, layout)


# --- one table, non-empty targets ---------------------------------------------------------------


@pytest.mark.s3
def test_restore_one_table_under_another_name(backups: ClickHouseBackups) -> None:
    load(backups, DAY0, 24)
    record = backups.full()
    store = backups.layout.store
    original = backups.client.query(f"SELECT * FROM {store} FINAL ORDER BY iso, node, ts").result_rows

    report = backups.restore_table("rt_lmp_store", record.id, as_table="rt_lmp_store_check")

    check = backups.layout.qualified("rt_lmp_store_check")
    assert report.rows == {check: len(original)}
    assert backups.client.query(f"SELECT * FROM {check} FINAL ORDER BY iso, node, ts").result_rows == original


@pytest.mark.s3
def test_restore_one_table_into_its_own_name_when_absent(backups: ClickHouseBackups) -> None:
    load(backups, DAY0, 24)
    record = backups.full()
    daily = ROLLUPS[1]
    before = contents(backups.client, backups.layout)
    backups.client.command(f"DROP TABLE {backups.layout.rollup_store(daily)} SYNC")

    backups.restore_table("rt_lmp_daily_store", record.id)

    assert contents(backups.client, backups.layout) == before


@pytest.mark.s3
def test_restore_refuses_a_non_empty_target_without_force(backups: ClickHouseBackups) -> None:
    load(backups, DAY0, 24)
    record = backups.full()
    rows = 24 * len(NODES)

    with pytest.raises(RestoreTargetNotEmpty) as info:
        backups.restore(record.id)

    assert record.id in str(info.value)
    assert f"{backups.layout.store} ({rows} rows)" in str(info.value)
    count = f"SELECT count() FROM {backups.layout.store}"
    assert backups.client.query(count).result_rows == [(rows,)]  # untouched

    copy = f"{backups.layout.database}.rt_lmp_store_x"
    backups.restore_table("rt_lmp_store", record.id, as_table=copy)  # absent: restored
    with pytest.raises(RestoreTargetNotEmpty, match=f"{copy} \\({rows} rows\\)"):
        backups.restore_table("rt_lmp_store", record.id, as_table=copy)  # now holds rows: refused


@pytest.mark.s3
def test_forced_restore_replaces_the_targets_rows_with_the_backups(backups: ClickHouseBackups) -> None:
    load(backups, DAY0, 24)
    record = backups.full()
    at_backup = contents(backups.client, backups.layout)
    load(backups, DAY1, 12)  # written after the backup: a forced restore goes back to the backup's rows

    report = backups.restore(record.id, force=True)

    assert contents(backups.client, backups.layout) == at_backup
    assert sorted(report.replaced) == sorted(backups.layout.row_tables())


# --- missing, partial and damaged backups -------------------------------------------------------


def truncate_largest(seaweed: SeaweedFS, record: BackupRecord) -> str:
    """Cut the largest data object of a backup to half its length; returns its name."""
    stored = objects(seaweed, record)
    name = max((n for n in stored if n != ".backup"), key=lambda n: stored[n])
    path = f"{record.location.removeprefix('s3://')}/{name}"
    fs = seaweed.filesystem()
    with fs.open_input_stream(path) as f:
        data = f.read()
    with fs.open_output_stream(path) as out:
        out.write(data[: len(data) // 2])
    return name


@pytest.mark.s3
def test_truncated_object_is_refused_before_restoring_naming_backup_and_object(
    backups: ClickHouseBackups, seaweed: SeaweedFS
) -> None:
    load(backups, DAY0, 96)
    record = backups.full()
    name = truncate_largest(seaweed, record)
    into = fresh_layout()

    with pytest.raises(BackupUnusable) as info:
        backups.restore(record.id, into=into)

    message = str(info.value)
    assert f"ClickHouse backup {record.id}" in message
    assert "corrupt" in message
    assert name in message
    assert tables_in(backups.client, into.database) == []  # nothing was restored


@pytest.mark.s3
def test_truncated_object_found_by_clickhouse_fails_the_restore_and_leaves_nothing(
    backups: ClickHouseBackups, seaweed: SeaweedFS
) -> None:
    load(backups, DAY0, 96)
    record = backups.full()
    truncate_largest(seaweed, record)
    into = fresh_layout()

    with pytest.raises(RestoreFailed) as info:
        backups.restore(record.id, into=into, verify=False)  # ClickHouse's own checks catch it

    assert record.id in str(info.value)
    assert "bytes long" in str(info.value)  # ClickHouse's reason, without its stack trace
    assert "Stack trace" not in str(info.value)
    assert tables_in(backups.client, into.database) == []  # no silent partial restore


@pytest.mark.s3
def test_backup_without_objects_is_missing(backups: ClickHouseBackups, seaweed: SeaweedFS) -> None:
    load(backups, DAY0, 12)
    record = backups.full()
    seaweed.filesystem().delete_dir(record.location.removeprefix("s3://"))

    with pytest.raises(BackupUnusable, match=f"backup {record.id} is missing: no objects"):
        backups.restore(record.id, into=fresh_layout())


@pytest.mark.s3
def test_backup_without_its_metadata_is_partial(backups: ClickHouseBackups, seaweed: SeaweedFS) -> None:
    load(backups, DAY0, 12)
    record = backups.full()
    seaweed.filesystem().delete_file(f"{record.location.removeprefix('s3://')}/.backup")

    with pytest.raises(BackupUnusable, match=f"backup {record.id} is partial"):
        backups.restore(record.id, into=fresh_layout())


@pytest.mark.s3
def test_unknown_backup_id_is_named(backups: ClickHouseBackups) -> None:
    with pytest.raises(BackupUnusable, match="clickhouse-full-nope is missing: no record"):
        backups.restore("clickhouse-full-nope", into=fresh_layout())


@pytest.mark.s3
def test_incremental_whose_base_is_damaged_is_unusable(
    backups: ClickHouseBackups, seaweed: SeaweedFS
) -> None:
    load(backups, DAY0, 96)
    full = backups.full()
    load(backups, DAY1, 12)
    incremental = backups.incremental()
    truncate_largest(seaweed, full)
    into = fresh_layout()

    with pytest.raises(BackupUnusable) as info:
        backups.restore(incremental.id, into=into)

    assert f"backup {full.id} (the base of {incremental.id})" in str(info.value)
    assert tables_in(backups.client, into.database) == []
    with pytest.raises(BackupUnusable, match=full.id):  # nor is a new incremental based on it taken
        backups.incremental()


@pytest.mark.s3
def test_incremental_needs_a_full_backup(backups: ClickHouseBackups) -> None:
    with pytest.raises(BackupUnusable, match="take a full backup first"):
        backups.incremental()


# --- secrets ------------------------------------------------------------------------------------

WRONG_SECRET = "not-the-secret-Zq8w"


@pytest.mark.s3
def test_failed_backup_names_it_records_nothing_and_leaks_no_secret(
    store, s3_lake: Lake, seaweed: SeaweedFS, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    client, layout = store
    good = S3BackupTarget.from_lake(s3_lake)
    wrong = S3BackupTarget(
        good.bucket, good.prefix, seaweed.endpoint, SecretStr(S3_KEY), SecretStr(WRONG_SECRET)
    )
    backups = ClickHouseBackups(client, layout, BackupCatalog(s3_lake), wrong)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(BackupFailed) as info:
        backups.full()

    message = str(info.value)
    assert "clickhouse-full-" in message and "failed, nothing was recorded" in message
    assert "ACCESS_DENIED" in message or "403" in message  # ClickHouse's reason is kept
    assert WRONG_SECRET not in message
    assert info.value.__cause__ is None and info.value.__context__ is None  # driver error not chained
    assert backups.records() == []
    assert WRONG_SECRET not in caplog.text
    assert f"'{S3_KEY}', '[HIDDEN]')" in caplog.text  # the engine is logged with the secret hidden


@pytest.mark.s3
def test_successful_backup_logs_no_secret(
    backups: ClickHouseBackups, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    load(backups, DAY0, 12)
    record = backups.full()
    backups.restore(record.id, into=fresh_layout())
    assert "[HIDDEN]" in caplog.text
    assert S3_SECRET not in caplog.text
    assert S3_SECRET not in record.to_json()


def test_s3_target_repr_and_display_hide_the_secret() -> None:
    target = S3BackupTarget("b", "p", "http://minio:9000", SecretStr("AKIA-test"), SecretStr("s3cr3t-value"))
    assert "s3cr3t-value" not in repr(target)
    assert (
        target.engine("s3://b/p/x", display=True) == "S3('http://minio:9000/b/p/x', 'AKIA-test', '[HIDDEN]')"
    )
    assert target.engine("s3://b/p/x") == "S3('http://minio:9000/b/p/x', 'AKIA-test', 's3cr3t-value')"


def test_s3_target_without_credentials_leaves_them_to_the_server_config() -> None:
    keyless = S3BackupTarget("hmco-backups", "clickhouse", "http://minio:9000")
    assert (
        keyless.engine("s3://hmco-backups/clickhouse/b1")
        == "S3('http://minio:9000/hmco-backups/clickhouse/b1')"
    )
    keyed = S3BackupTarget(
        "hmco-backups", "clickhouse", "http://minio:9000", SecretStr("AK"), SecretStr("SK12")
    )
    assert s3_credentials_config(keyed) == (
        "<clickhouse>\n  <s3>\n    <hmco_backups>\n"
        "      <endpoint>http://minio:9000/hmco-backups/clickhouse/</endpoint>\n"
        "      <access_key_id>AK</access_key_id>\n"
        "      <secret_access_key>SK12</secret_access_key>\n"
        "    </hmco_backups>\n  </s3>\n</clickhouse>\n"
    )


def test_s3_target_urls_path_style_virtual_hosted_and_aws() -> None:
    loc = "s3://hmco-backups/env/clickhouse/b1"
    assert S3BackupTarget("hmco-backups", endpoint="http://minio:9000").url(loc) == (
        "http://minio:9000/hmco-backups/env/clickhouse/b1"
    )
    assert S3BackupTarget("hmco-backups", endpoint="https://s3.example", path_style=False).url(loc) == (
        "https://hmco-backups.s3.example/env/clickhouse/b1"
    )
    assert S3BackupTarget("hmco-backups", region="eu-west-1").url(loc) == (
        "https://hmco-backups.s3.eu-west-1.amazonaws.com/env/clickhouse/b1"
    )


def test_lake_chooses_s3_or_directory_target(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s3 = Lake(Settings.load(home=tmp_path, storage_prefix="prod", s3={"endpoint": "http://minio:9000"}))
    target = backup_target(s3)
    assert isinstance(target, S3BackupTarget)
    assert target.location("b1") == "s3://hmco-backups/prod/clickhouse/b1"
    local = backup_target(Lake(Settings.load(home=tmp_path)))
    assert isinstance(local, FileBackupTarget)
    assert local.engine(local.location("b1")) == f"File('{tmp_path.resolve()}/backups/clickhouse/b1')"


# A chdb engine of its own (a subprocess: chdb reads its config once per process) whose config file holds
# the S3 credentials, so the SQL carries none; the SDK lists the objects with its own (environment) keys.
KEYLESS = """
import json, sys
from pathlib import Path
from pydantic import SecretStr
from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance.backup_records import BackupCatalog
from hmco.maintenance.clickhouse_backup import ClickHouseBackups, S3BackupTarget, s3_credentials_config

args = json.load(sys.stdin)
root = Path(args["root"])
keyed = S3BackupTarget(args["bucket"], args["prefix"], args["endpoint"], SecretStr(args["key"]), SecretStr(args["secret"]))
(root / "config.xml").write_text(s3_credentials_config(keyed))
settings = Settings.load(home=root / "home", clickhouse={"path": root / "data", "database": "keyless"})
client = connect_clickhouse(settings, chdb_options={"config-file": str(root / "config.xml")})
layout = ClickHouseLayout.of("rt_lmp", database="keyless")
ensure_schema(client, layout)
client.command(f"INSERT INTO {layout.store} (ts, interval_end, iso, market, node, lmp) VALUES "
               "('2026-01-05 00:00:00', '2026-01-05 00:05:00', 'CAISO', 'RT5', 'N1', 12.5)")
sent = []
query = client.query
client.query = lambda sql, *a, **k: (sent.append(sql), query(sql, *a, **k))[1]
keyless = S3BackupTarget(args["bucket"], args["prefix"], args["endpoint"])
backups = ClickHouseBackups(client, layout, BackupCatalog(Lake(settings)), keyless)
record = backups.full()
into = ClickHouseLayout.of("rt_lmp", database="keyless_restored")
backups.restore(record.id, into=into)
rows = client.query(f"SELECT node, lmp FROM {into.view}").result_rows
print(json.dumps({"engine": keyless.engine(record.location), "sent": sent, "rows": rows, "size": record.size}))
"""


@pytest.mark.s3
def test_credentials_from_the_server_config_keep_secrets_out_of_sql(seaweed: SeaweedFS, tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = {
        "root": str(tmp_path),
        "bucket": BUCKET,
        "prefix": f"keyless-{uuid.uuid4().hex[:8]}/clickhouse",
        "endpoint": seaweed.endpoint,
        "key": S3_KEY,
        "secret": S3_SECRET,
    }
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    fs = seaweed.filesystem()
    if fs.get_file_info(BUCKET).type == pafs.FileType.NotFound:
        fs.create_dir(BUCKET)
    done = subprocess.run(
        [sys.executable, "-c", KEYLESS],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["rows"] == [["N1", 12.5]]
    assert result["engine"].startswith(f"S3('{seaweed.endpoint}/{BUCKET}/{args['prefix']}/clickhouse-full-")
    assert result["engine"].endswith("')") and S3_KEY not in result["engine"]
    backup_sql = [q for q in result["sent"] if q.startswith(("BACKUP", "RESTORE"))]
    assert len(backup_sql) == 2
    assert not any(S3_SECRET in q or S3_KEY in q for q in result["sent"])
    assert result["size"] > 0


# --- retention ----------------------------------------------------------------------------------


@pytest.mark.s3
def test_prune_deletes_the_fifth_oldest_full_with_its_incrementals(
    backups: ClickHouseBackups, seaweed: SeaweedFS
) -> None:
    taken: list[tuple[BackupRecord, BackupRecord]] = []
    for week in range(5):
        load(backups, DAY0 + timedelta(days=week), 2, NODES[:2])
        full = backups.full()
        load(backups, DAY1 + timedelta(days=week), 2, NODES[:2])
        taken.append((full, backups.incremental()))
    oldest = taken[0]

    pruned = backups.prune(keep_fulls=4)

    assert sorted(r.id for r in pruned) == sorted(r.id for r in oldest)
    for record in oldest:
        assert objects(seaweed, record) == {}
        with pytest.raises(BackupUnusable, match="no record"):
            backups.record(record.id)
    kept = [r for pair in taken[1:] for r in pair]
    assert [r.id for r in backups.records()] == [r.id for r in kept]
    for record in kept:
        assert backups.verify(record.id)[0] == record
    assert backups.prune(keep_fulls=4) == []


# --- rendering: single node and ON CLUSTER (golden text + ClickHouse's parser) ------------------

CLUSTER = ClickHouseLayout.of("rt_lmp", database="lmp", cluster="hmco_cluster")
SINGLE = ClickHouseLayout.of("rt_lmp", database="lmp")
TARGET = S3BackupTarget(
    "hmco-backups", "clickhouse", "http://minio:9000", SecretStr("AKIA-test"), SecretStr("s3cr3t-test")
)
B1 = TARGET.engine("s3://hmco-backups/clickhouse/b1")
B0 = TARGET.engine("s3://hmco-backups/clickhouse/b0")
S3_B1 = "S3('http://minio:9000/hmco-backups/clickhouse/b1', 'AKIA-test', 's3cr3t-test')"
S3_B0 = "S3('http://minio:9000/hmco-backups/clickhouse/b0', 'AKIA-test', 's3cr3t-test')"
LOCALS = "TABLE lmp.rt_lmp_local, TABLE lmp.rt_lmp_hourly_local, TABLE lmp.rt_lmp_daily_local"

GOLDEN = {
    "full": (
        render_backup(CLUSTER, B1),
        f"BACKUP {LOCALS} ON CLUSTER hmco_cluster TO {S3_B1}",
    ),
    "incremental": (
        render_backup(CLUSTER, B1, base=B0, asynchronous=True),
        f"BACKUP {LOCALS} ON CLUSTER hmco_cluster TO {S3_B1} SETTINGS base_backup = {S3_B0} ASYNC",
    ),
    "restore": (
        render_restore(CLUSTER, B1),
        f"RESTORE {LOCALS} ON CLUSTER hmco_cluster FROM {S3_B1}",
    ),
    "restore into another database": (
        render_restore(
            CLUSTER,
            B1,
            pairs=[
                ("lmp.rt_lmp_local", "dr.rt_lmp_local"),
                ("lmp.rt_lmp_daily_local", "dr.rt_lmp_daily_local"),
            ],
        ),
        "RESTORE TABLE lmp.rt_lmp_local AS dr.rt_lmp_local, TABLE lmp.rt_lmp_daily_local AS "
        f"dr.rt_lmp_daily_local ON CLUSTER hmco_cluster FROM {S3_B1}",
    ),
    "restore one table": (
        render_restore(CLUSTER, B1, pairs=[("lmp.rt_lmp_local", "lmp.rt_lmp_local_check")]),
        f"RESTORE TABLE lmp.rt_lmp_local AS lmp.rt_lmp_local_check ON CLUSTER hmco_cluster FROM {S3_B1}",
    ),
    "exists": (
        render_exists(CLUSTER, "rt_lmp_local"),
        "SELECT count() FROM clusterAllReplicas(hmco_cluster, system.tables) WHERE database = 'lmp' "
        "AND name = 'rt_lmp_local'",
    ),
    "count": (
        render_count(CLUSTER, "rt_lmp_local"),
        "SELECT count() FROM clusterAllReplicas(hmco_cluster, lmp.rt_lmp_local)",
    ),
    "truncate": (
        render_truncate(CLUSTER, "rt_lmp_local"),
        "TRUNCATE TABLE IF EXISTS lmp.rt_lmp_local ON CLUSTER hmco_cluster SYNC",
    ),
    "drop": (
        render_drop(CLUSTER, "rt_lmp_local"),
        "DROP TABLE IF EXISTS lmp.rt_lmp_local ON CLUSTER hmco_cluster SYNC",
    ),
    "single-node full": (
        render_backup(SINGLE, B1),
        "BACKUP TABLE lmp.rt_lmp_store, TABLE lmp.rt_lmp_hourly_store, TABLE lmp.rt_lmp_daily_store "
        f"TO {S3_B1}",
    ),
    "single-node count": (render_count(SINGLE, "rt_lmp_store"), "SELECT count() FROM lmp.rt_lmp_store"),
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_rendered_sql_matches_golden_text(name: str) -> None:
    rendered, golden = GOLDEN[name]
    assert rendered == golden


@pytest.mark.parametrize("name", list(GOLDEN))
def test_rendered_sql_parses_in_clickhouse(name: str) -> None:
    client = connect_clickhouse(chdb_settings())
    ast = client.query(f"EXPLAIN AST {GOLDEN[name][0]}").result_rows
    assert ast  # a syntax error raises


def test_parse_check_rejects_broken_sql() -> None:
    client = connect_clickhouse(chdb_settings())
    with pytest.raises(Exception, match="Syntax error"):
        client.query("EXPLAIN AST " + GOLDEN["full"][0].replace(" TO S3(", " TOO S3("))


def test_cluster_backup_covers_the_local_tables_never_the_distributed_ones() -> None:
    sql = render_backup(CLUSTER, B1)
    assert "rt_lmp_store" not in sql
    assert list(CLUSTER.row_tables()) == [t.removeprefix("TABLE ") for t in LOCALS.split(", ")]
