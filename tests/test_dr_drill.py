"""The DR drill end to end on real engines: the catalog on PostgreSQL, the lake on SeaweedFS (primary), the
DR site on a second SeaweedFS, the real-time store on chdb. Backups, more writes, destruction, restore and
verification, with the measured RPO and RTO held against the platform's targets."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema, refresh_rollups
from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance.backup_records import DEFAULT_RPO, BackupCatalog
from hmco.maintenance.compaction import Checksum
from hmco.maintenance.drill import (
    DEFAULT_RTO,
    TierRestoreError,
    capture_state,
    compare_states,
    restore_tier,
    run_drill,
)
from hmco.maintenance.replication import replicate
from hmco.sources.synthetic import SyntheticEIADailyFuel, SyntheticISO
from hmco.windows import Window, floor_time
from tests.support.chdb import chdb_settings, lmp_rows, unique_database
from tests.support.servers import S3_KEY, S3_SECRET, SeaweedFS, dr_settings

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

NOW = datetime.now(UTC)
NODES = [f"N{i:03d}" for i in range(5)]


@pytest.fixture
def primary(cluster_settings: Settings) -> Lake:
    """A lake with an hour of rt_lmp on each of two days and ten days of EIA daily fuel (the seed EIA query)."""
    lake = Lake(cluster_settings)
    lake.create_tiers()
    start = floor_time(NOW, timedelta(hours=1)) - timedelta(days=2)
    rt = Pipeline(SyntheticISO(nodes=3, settings=cluster_settings), lake=lake, name="rt")
    for d in range(2):  # two days: two partitions of each rt_lmp table
        assert rt.run(Window(start - timedelta(days=d), start - timedelta(days=d) + timedelta(hours=1))).ok
    today = floor_time(NOW, timedelta(days=1))
    eia = Pipeline(
        SyntheticEIADailyFuel(settings=cluster_settings),
        lake=lake,
        name="eia",
        window_step=timedelta(days=10),
    )
    assert eia.run(Window(today - timedelta(days=10), today)).ok
    return lake


@pytest.fixture
def dr(primary: Lake, seaweed_dr: SeaweedFS, tmp_path: Path) -> Lake:
    return Lake(dr_settings(primary.settings, seaweed_dr, tmp_path / "dr"))


@pytest.fixture
def store() -> tuple[object, ClickHouseLayout]:
    """A chdb store holding the last hour of 5 nodes (the seed RT query's window)."""
    db = unique_database("drill")
    client = connect_clickhouse(chdb_settings(db))
    layout = ClickHouseLayout.of("rt_lmp", database=db)
    ensure_schema(client, layout)
    start = floor_time(NOW, timedelta(minutes=5)) - timedelta(minutes=50)
    table = lmp_rows(start, 10, NODES)
    prices = np.random.default_rng(7).normal(40.0, 15.0, table.num_rows)
    client.insert_arrow(
        layout.store, table.set_column(table.schema.get_field_index("lmp"), "lmp", pa.array(prices))
    )
    refresh_rollups(client, layout, Window(start, start + timedelta(minutes=50)))
    return client, layout


def test_drill_restores_the_state_of_the_restore_point_within_rpo_and_rto(
    primary: Lake, dr: Lake, store: tuple[object, ClickHouseLayout], postgres: object
) -> None:
    client, layout = store
    at_restore_point = capture_state(primary, client, layout)  # type: ignore[arg-type]
    assert at_restore_point.eia and at_restore_point.rt
    assert "hub_curated.rt_lmp" in at_restore_point.lake
    assert all(len(s.partitions) > 1 for n, s in at_restore_point.lake.items() if n.endswith("rt_lmp"))
    said: list[str] = []

    report = run_drill(primary, dr, client, layout, say=said.append)  # type: ignore[arg-type]
    print(report)

    assert report.ok and report.exit_code == 0, str(report)
    assert all(c.ok for c in report.checks)
    # written after the restore point, and gone after the restore: the measured RPO's data
    assert report.lost["lake rt_lmp"] > 0 and report.lost["clickhouse rt_lmp"] > 0
    assert timedelta(0) < report.rpo <= DEFAULT_RPO
    assert timedelta(0) < report.rto <= DEFAULT_RTO
    assert report.restore_point <= report.destroyed_at <= report.restore_started <= report.verified_at
    assert {r.store for r in report.backups} == {"catalog", "clickhouse", "lake"}
    assert "RPO measured" in str(report) and "RTO measured" in str(report)
    # independently of the drill: the stores now hold exactly what they held at the restore point
    after = capture_state(Lake(primary.settings), client, layout)  # type: ignore[arg-type]
    assert compare_states(at_restore_point, after) == []
    assert after == dataclasses.replace(at_restore_point, metadata=after.metadata)
    assert after.metadata == at_restore_point.metadata
    # the curated tier's objects came back from the DR site
    fs, _ = primary.filesystem("s3://")
    root = primary.storage_location("curated").removeprefix("s3://")
    assert fs.get_file_info(pafs.FileSelector(root, recursive=True))


def test_compare_states_names_every_difference(primary: Lake, store: tuple[object, ClickHouseLayout]) -> None:
    client, layout = store
    state = capture_state(primary, client, layout)  # type: ignore[arg-type]
    assert compare_states(state, state) == []
    name = "hub_curated.rt_lmp"
    table = state.lake[name]
    part = next(iter(table.partitions))
    changed = dict(table.partitions)
    changed[part] = Checksum(changed[part].rows, changed[part].value ^ 1)
    other = dataclasses.replace(
        state,
        lake={**state.lake, name: dataclasses.replace(table, partitions=changed)},
        rt=state.rt[:-1],
    )
    problems = compare_states(state, other)
    assert f"lake table {name} partition {part}: content differs" in problems
    assert "the seed RT query (ClickHouse) answers differently" in problems
    assert len(problems) == 2


def test_tier_restore_refuses_a_non_empty_tier_and_names_a_partial_replication(
    primary: Lake, dr: Lake, seaweed_dr: SeaweedFS
) -> None:
    replicate(primary, dr, backups=BackupCatalog(primary))
    with pytest.raises(TierRestoreError, match="refusing to restore tier curated"):
        restore_tier(primary, dr, "curated")
    # a replicated object lost at the DR site: the restore names it instead of restoring part of the tier
    root = primary.storage_location("curated").removeprefix("s3://")
    dr_fs = seaweed_dr.filesystem()
    victim = sorted(
        i.path
        for i in dr_fs.get_file_info(pafs.FileSelector(root, recursive=True))
        if i.path.endswith(".parquet")
    )[0]
    dr_fs.delete_file(victim)
    fs, _ = primary.filesystem("s3://")
    fs.delete_dir_contents(root)
    with pytest.raises(TierRestoreError, match="partial") as info:
        restore_tier(primary, dr, "curated")
    assert victim in str(info.value)


def test_hmco_dr_drill_runs_end_to_end_from_the_command_line(
    primary: Lake,
    seaweed_dr: SeaweedFS,
    store: tuple[object, ClickHouseLayout],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same drill as a scheduler runs it: a profile file, ``hmco dr drill --yes --json``, an exit code."""
    import json

    import yaml

    from hmco.cli import main
    from tests.support.chdb import chdb_dir

    _, layout = store
    s = primary.settings
    profile = tmp_path / "drill.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "profile": "cluster",
                "home": str(s.home_dir),
                "storage_prefix": s.storage_prefix,
                "catalog": {"type": "sql", "uri": s.catalog.uri},
                "s3": {"endpoint": s.s3.endpoint, "access_key_id": S3_KEY, "secret_access_key": S3_SECRET},
                "clickhouse": {
                    "interface": "chdb",
                    "path": str(chdb_dir() / "data"),
                    "database": layout.database,
                },
            }
        )
    )
    code = main(
        ["--profile", str(profile), "dr", "drill", "--yes", "--json", "--dr-endpoint", seaweed_dr.endpoint]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["ok"] is True
    rpo, rto = report["rpo_seconds"], report["rto_seconds"]
    assert 0 < rpo <= DEFAULT_RPO.total_seconds() and 0 < rto <= DEFAULT_RTO.total_seconds()
