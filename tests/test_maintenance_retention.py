"""Tier retention: exactly the rows past a tier's horizon leave its Iceberg tables and their files leave
storage; archived payloads past raw's 30 days leave the archive; object expiry never reaches a bucket
that holds Iceberg tables.

Counts and rows are read back with DuckDB (``iceberg_scan`` over the current metadata), not only with
pyiceberg. ``now=`` places each horizon: no test waits.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.errors import ConfigError, LakeStateError, SinkError
from hmco.lake import TIERS, Lake
from hmco.maintenance.retention import (
    INCOMPLETE_GRACE,
    apply_raw_lifecycle,
    apply_retention,
    retention_horizon,
    sweep_raw,
)
from hmco.query.lake import LakeSQL
from hmco.sinks.raw import RawArchive
from hmco.sources.base import RawPayload
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window
from tests.support.servers import S3_KEY, S3_SECRET, SeaweedFS

NODES = 3
ROWS_PER_DAY = NODES * 288
DAYS = Window.of("2024-03-01", "2024-03-09")
#: Mid-day, so one day's partition straddles the horizon and is rewritten, not dropped.
HORIZON = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)
CURATED_NOW = HORIZON + TIERS["curated"].retention
STAGED_NOW = HORIZON + TIERS["staged"].retention


def _write_days(lake: Lake) -> Pipeline:
    """rt_lmp for 8 days, one window (one commit, one file per day) a day, in curated and in staged."""
    for tier in ("staged", "curated"):  # the staged copy is a second pipeline publishing at that tier
        pipe = Pipeline(
            SyntheticISO(nodes=NODES, settings=lake.settings, chunk="1d"),
            lake=lake,
            name=f"rt-{tier}" if tier == "staged" else "rt",
            window_step=timedelta(days=1),
            publish_tier=tier,
        )
        pipe.run(DAYS)
    return pipe


def _per_day(lake: Lake, tier: str = "curated") -> dict[str, int]:
    with LakeSQL(lake) as duck:
        got = duck.sql(f"SELECT date(ts) AS day, count(*) AS n FROM hub_{tier}.rt_lmp GROUP BY 1 ORDER BY 1")
    return {str(r["day"]): r["n"] for r in got.to_pylist()}


def _rows_from(lake: Lake, start: datetime, tier: str = "curated") -> pa.Table:
    with LakeSQL(lake) as duck:
        return duck.sql(
            f"SELECT * FROM hub_{tier}.rt_lmp WHERE ts >= from_iso8601_timestamp('{start.isoformat()}') "
            "ORDER BY iso, node, ts"
        )


def _exists(lake: Lake, location: str) -> bool:
    fs, path = lake.filesystem(location)
    return fs.get_file_info(path).type == pafs.FileType.File


EVERY_DAY = {f"2024-03-0{d}": ROWS_PER_DAY for d in range(1, 9)}


# --- Iceberg tiers --------------------------------------------------------------------------------


def test_retention_deletes_exactly_the_rows_past_the_horizon(lake: Lake) -> None:
    _write_days(lake)
    assert _per_day(lake) == EVERY_DAY
    newer = _rows_from(lake, HORIZON)

    report = apply_retention(lake, "rt_lmp", "curated", now=CURATED_NOW)

    assert report.ok, report.error
    assert report.details[0]["horizon"] == HORIZON.isoformat()
    kept = {day: n for day, n in EVERY_DAY.items() if day > "2024-03-04"} | {"2024-03-04": ROWS_PER_DAY // 2}
    assert _per_day(lake) == kept
    assert report.rows_deleted == 3 * ROWS_PER_DAY + ROWS_PER_DAY // 2
    assert _rows_from(lake, HORIZON).equals(newer)  # every newer row, value for value
    with LakeSQL(lake) as duck:
        oldest = duck.sql("SELECT min(ts) AS t FROM hub_curated.rt_lmp").column("t")[0].as_py()
    assert oldest == HORIZON


def test_retention_frees_the_storage_of_the_deleted_rows(lake: Lake) -> None:
    _write_days(lake)
    tbl = lake.table("rt_lmp")
    files = tbl.inspect.files().select(["file_path", "file_size_in_bytes", "partition"]).to_pylist()
    horizon_day = HORIZON.date()
    holding_old = [f["file_path"] for f in files if f["partition"]["ts_day"] <= horizon_day]
    only_new = [f["file_path"] for f in files if f["partition"]["ts_day"] > horizon_day]
    assert len(holding_old) == 4 and len(only_new) == 4
    assert all(_exists(lake, p) for p in holding_old)

    report = apply_retention(lake, "rt_lmp", "curated", now=CURATED_NOW)

    assert [p for p in holding_old if _exists(lake, p)] == []
    assert all(_exists(lake, p) for p in only_new)
    assert report.removed_files >= len(holding_old)
    old_bytes = sum(f["file_size_in_bytes"] for f in files if f["file_path"] in holding_old)
    assert report.removed_bytes >= old_bytes
    assert report.files_before == 8 and report.files_after == 5  # 4 new days + the rewritten half day
    assert report.snapshots_after == 1 < report.snapshots_before


def test_each_tier_keeps_its_own_retention(lake: Lake) -> None:
    _write_days(lake)
    curated_snapshot = lake.table("rt_lmp").current_snapshot()

    staged = apply_retention(lake, "rt_lmp", "staged", now=STAGED_NOW)
    curated = apply_retention(lake, "rt_lmp", "curated", now=STAGED_NOW)

    assert retention_horizon("staged", STAGED_NOW) == HORIZON
    assert staged.rows_deleted == 3 * ROWS_PER_DAY + ROWS_PER_DAY // 2
    assert min(_per_day(lake, "staged")) == "2024-03-04"
    # One year is well inside curated's five: nothing deleted, not even an empty commit.
    assert curated.rows_deleted == 0 and curated.removed_files == 0
    assert _per_day(lake, "curated") == EVERY_DAY
    assert lake.table("rt_lmp").current_snapshot() == curated_snapshot


def test_retention_keeps_the_pipeline_state(lake: Lake) -> None:
    pipe = _write_days(lake)
    windows, mark = lake.committed_windows("rt_lmp", "rt"), lake.watermark("rt_lmp", "rt")
    assert windows == [(DAYS.start, DAYS.end)] and mark == DAYS.end

    apply_retention(lake, "rt_lmp", "curated", now=CURATED_NOW)

    assert lake.committed_windows("rt_lmp", "rt") == windows
    assert lake.watermark("rt_lmp", "rt") == mark == pipe.watermark
    # The next window still commits on top of the retained table.
    pipe.run(Window(DAYS.end, DAYS.end + timedelta(days=1)))
    assert _per_day(lake)["2024-03-09"] == ROWS_PER_DAY
    assert lake.watermark("rt_lmp", "rt") == DAYS.end + timedelta(days=1)


def test_dry_run_reports_the_rows_and_changes_nothing(lake: Lake) -> None:
    _write_days(lake)
    before = lake.table("rt_lmp").current_snapshot()

    dry = apply_retention(lake, "rt_lmp", "curated", now=CURATED_NOW, dry_run=True)

    assert dry.dry_run and dry.rows_deleted == 3 * ROWS_PER_DAY + ROWS_PER_DAY // 2
    assert dry.details[0]["files_touched"] == 4
    assert lake.table("rt_lmp").current_snapshot() == before
    assert _per_day(lake) == EVERY_DAY


def test_raw_tier_and_unknown_tables_are_refused(lake: Lake) -> None:
    with pytest.raises(ConfigError, match="sweep_raw"):
        apply_retention(lake, "rt_lmp", "raw")
    with pytest.raises(ConfigError, match="does not exist"):
        apply_retention(lake, "rt_lmp", "ml")


# --- raw tier -------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _archive(lake: Lake, ages_days: dict[str, float], now: datetime = NOW) -> dict[str, str]:
    """One payload per name, fetched ``age`` days before ``now``; returns name -> key."""
    archive = RawArchive(lake)
    keys = {}
    for name, age in ages_days.items():
        payload = RawPayload(
            source="demo",
            dataset="rt_lmp",
            body=f"payload {name} ".encode() * 500,
            url=f"https://x/{name}",
            fetched_at=now - timedelta(days=age),
        )
        keys[name] = archive.put(payload).key
    return keys


def _objects(archive: RawArchive, key: str) -> tuple[bool, bool]:
    """Whether the body and the sidecar of ``key`` exist."""
    infos = archive.fs.get_file_info([f"{archive.base}/{key}.zst", f"{archive.base}/{key}.json"])
    body, sidecar = (i.type == pafs.FileType.File for i in infos)
    return body, sidecar


AGES = {"ancient": 400, "old": 31, "edge-old": 30.01, "edge-new": 29.99, "new": 1}


def test_raw_sweep_removes_exactly_the_payloads_past_30_days(lake: Lake) -> None:
    keys = _archive(lake, AGES)
    archive = RawArchive(lake)

    report = sweep_raw(lake, now=NOW)

    gone, kept = ["ancient", "old", "edge-old"], ["edge-new", "new"]
    assert [_objects(archive, keys[n]) for n in gone] == [(False, False)] * 3
    assert sorted(archive.keys()) == sorted(keys[n] for n in kept)
    for name in kept:  # still replayable, byte for byte
        assert archive.get(keys[name]).body == f"payload {name} ".encode() * 500
    assert (report.files_before, report.files_after, report.removed_files) == (5, 2, 6)
    assert sorted(d["key"] for d in report.details) == sorted(keys[n] for n in gone)


def test_raw_sweep_dry_run_lists_payloads_with_sizes(lake: Lake) -> None:
    keys = _archive(lake, AGES)
    archive = RawArchive(lake)

    dry = sweep_raw(lake, now=NOW, dry_run=True)

    assert dry.dry_run and sorted(d["key"] for d in dry.details) == sorted(
        keys[n] for n in ("ancient", "old", "edge-old")
    )
    assert all(d["bytes"] > 0 for d in dry.details) and dry.removed_bytes == sum(
        d["bytes"] for d in dry.details
    )
    assert sorted(archive.keys()) == sorted(keys.values())  # nothing deleted


class Killed(Exception):
    pass


def test_killed_raw_sweep_never_leaves_a_sidecar_without_its_body(lake: Lake) -> None:
    # The objects are written now, so "now" is placed two days ahead: the leftover is past its grace.
    now = datetime.now(UTC) + INCOMPLETE_GRACE * 2
    keys = _archive(lake, {"old": 40, "new": 1}, now=now)
    archive = RawArchive(lake)

    def kill_after_first(path: str) -> None:
        raise Killed(path)

    with pytest.raises(Killed) as killed:
        sweep_raw(lake, now=now, on_delete=kill_after_first)

    assert str(killed.value).endswith(".json")  # the sidecar went first
    assert _objects(archive, keys["old"]) == (True, False)
    # Readers see only complete payloads: nothing to trip on.
    assert archive.keys() == [keys["new"]]
    assert [p.url for p in archive.payloads()] == ["https://x/new"]

    again = sweep_raw(lake, now=now)

    assert _objects(archive, keys["old"]) == (False, False)
    assert [(d["key"], d["incomplete"]) for d in again.details] == [(keys["old"], "body")]
    assert archive.get(keys["new"]).url == "https://x/new"


def test_raw_sweep_leaves_a_body_being_archived_alone(lake: Lake) -> None:
    archive = RawArchive(lake)
    in_flight = "demo/rt_lmp/ff/" + "f" * 64  # its body is written, its sidecar not yet
    archive.fs.create_dir(f"{archive.base}/demo/rt_lmp/ff", recursive=True)
    with archive.fs.open_output_stream(f"{archive.base}/{in_flight}.zst") as out:
        out.write(b"in flight")

    swept = sweep_raw(lake)

    assert swept.details == [] and _objects(archive, in_flight) == (True, False)


def test_raw_sweep_removes_a_sidecar_whose_body_is_gone(lake: Lake) -> None:
    keys = _archive(lake, {"broken": 2, "new": 1})
    archive = RawArchive(lake)
    archive.fs.delete_file(f"{archive.base}/{keys['broken']}.zst")  # what a put racing a sweep can leave
    with pytest.raises(SinkError):
        list(archive.payloads())  # readers trip on it

    swept = sweep_raw(lake, now=NOW)

    assert [(d["key"], d["incomplete"]) for d in swept.details] == [(keys["broken"], "sidecar")]
    assert [p.url for p in archive.payloads()] == ["https://x/new"]
    assert archive.put(RawPayload(source="demo", dataset="rt_lmp", body=b"payload broken " * 500)).stored


# --- lifecycle rules and the guard ----------------------------------------------------------------


def test_lifecycle_rules_are_rendered_for_the_raw_bucket_only(lake: Lake) -> None:
    rules = lake.lifecycle_rules()
    assert list(rules) == [lake.bucket("raw")]
    (rule,) = rules[lake.bucket("raw")]["Rules"]
    assert rule["Expiration"] == {"Days": TIERS["raw"].retention.days}
    prefix = lake.settings.storage_prefix
    assert rule["Filter"] == {"Prefix": f"{prefix}/payloads/" if prefix else "payloads/"}


def test_object_expiry_is_refused_on_the_iceberg_tiers_buckets(lake: Lake) -> None:
    for name in ("staged", "curated", "ml"):
        with pytest.raises(LakeStateError, match=f"Iceberg tables of the {name} tier"):
            lake.apply_lifecycle_rules(lake.bucket(name))


@pytest.fixture
def s3_lake(cluster_settings: Settings, seaweed: SeaweedFS) -> Iterator[tuple[Lake, object]]:
    """A lake on SeaweedFS and an S3 client; this lake's lifecycle rules are taken off again afterwards."""
    import botocore.session
    from botocore.config import Config

    lake = Lake(cluster_settings)
    lake.create_tiers()
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=seaweed.endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        config=Config(s3={"addressing_style": "path"}),
    )
    yield lake, client
    ours = {r["ID"] for rules in lake.lifecycle_rules().values() for r in rules["Rules"]}
    for t in TIERS:
        others = [r for r in _rules(client, lake.bucket(t)) if r["ID"] not in ours]
        if others:
            client.put_bucket_lifecycle_configuration(  # type: ignore[attr-defined]
                Bucket=lake.bucket(t), LifecycleConfiguration={"Rules": others}
            )
        else:
            client.delete_bucket_lifecycle(Bucket=lake.bucket(t))  # type: ignore[attr-defined]


def _rules(client: object, bucket: str) -> list[dict[str, object]]:
    from botocore.exceptions import ClientError

    try:
        return list(client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])  # type: ignore[attr-defined]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        return []


def test_raw_lifecycle_rule_is_stored_on_the_raw_bucket(s3_lake: tuple[Lake, object]) -> None:
    lake, client = s3_lake
    bucket = lake.bucket("raw")
    other_env = {
        "ID": "another-environment",
        "Status": "Enabled",
        "Filter": {"Prefix": "elsewhere/"},
        "Expiration": {"Days": 7},
    }
    client.put_bucket_lifecycle_configuration(  # type: ignore[attr-defined]
        Bucket=bucket, LifecycleConfiguration={"Rules": [other_env]}
    )

    put = apply_raw_lifecycle(lake)
    apply_raw_lifecycle(lake)  # idempotent: the rule is replaced, not doubled

    assert put == lake.lifecycle_rules()[bucket]
    stored = {r["ID"]: r for r in _rules(client, bucket)}
    (ours,) = put["Rules"]
    assert set(stored) == {ours["ID"], "another-environment"}  # the other environment's rule is kept
    assert stored[ours["ID"]]["Expiration"] == {"Days": 30}
    assert stored[ours["ID"]]["Filter"] == {"Prefix": f"{lake.settings.storage_prefix}/payloads/"}
    for name in ("staged", "curated", "ml"):
        assert not [r for r in _rules(client, lake.bucket(name)) if r["ID"] == ours["ID"]]


def test_object_expiry_is_refused_on_a_raw_bucket_holding_a_table(s3_lake: tuple[Lake, object]) -> None:
    lake, client = s3_lake
    lake.table("eia_daily_fuel", "raw")  # an Iceberg table in hub_raw lives in the raw bucket

    with pytest.raises(LakeStateError, match=r"holds Iceberg data \(table hub_raw.eia_daily_fuel"):
        apply_raw_lifecycle(lake)
    (ours,) = lake.lifecycle_rules()[lake.bucket("raw")]["Rules"]
    assert ours["ID"] not in {r["ID"] for r in _rules(client, lake.bucket("raw"))}


def test_object_expiry_refusal_puts_nothing_on_iceberg_buckets(s3_lake: tuple[Lake, object]) -> None:
    lake, client = s3_lake
    before = {t: _rules(client, lake.bucket(t)) for t in ("staged", "curated", "ml")}
    for name in before:
        with pytest.raises(LakeStateError, match="live snapshots still reference"):
            lake.apply_lifecycle_rules(lake.bucket(name))
    assert {t: _rules(client, lake.bucket(t)) for t in before} == before


def test_local_lake_gets_no_lifecycle_rule_and_relies_on_the_sweep(settings: Settings) -> None:
    lake = Lake(settings)
    lake.create_tiers()
    assert apply_raw_lifecycle(lake) is None
    with pytest.raises(ConfigError, match="sweep"):
        lake.apply_lifecycle_rules()
