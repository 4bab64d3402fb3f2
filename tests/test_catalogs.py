"""Catalog backends: SQLite (embedded), PostgreSQL (SQL catalog) and SeaweedFS's Iceberg REST catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmco.catalog import catalog_properties, load_catalog
from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.errors import ConfigError
from hmco.lake import Lake
from hmco.query.lake import LakeSQL
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window
from tests.support.servers import S3_KEY, S3_SECRET, SeaweedFS, _wait

HOURS = Window.of("2026-11-26T00:00", "2026-11-26T03:00")


def test_embedded_catalog_lives_under_hmco_home(settings: Settings) -> None:
    props = catalog_properties(settings)
    assert props["uri"] == f"sqlite:///{settings.home_dir / 'catalog.db'}"
    assert props["warehouse"] == (settings.home_dir / "warehouse").as_uri()
    assert "s3.endpoint" not in props


def test_postgres_password_is_injected_but_never_shown(tmp_path: Path) -> None:
    settings = Settings.load(
        profile="cluster",
        home=tmp_path,
        catalog={
            "type": "sql",
            "uri": "postgresql+psycopg2://etl@127.0.0.1:1/iceberg",
            "password": "pg-Secret-771",
        },
        s3={"endpoint": "http://127.0.0.1:1"},
    )
    assert "pg-Secret-771" in catalog_properties(settings)["uri"]  # what the driver needs
    with pytest.raises(ConfigError) as info:
        load_catalog(settings)  # nothing listens on port 1
    assert "pg-Secret-771" not in str(info.value)
    assert "cannot open the sql Iceberg catalog" in str(info.value)


def test_postgres_catalog_round_trip(cluster_settings: Settings) -> None:
    lake = Lake(cluster_settings)
    lake.create_tiers()
    Pipeline(SyntheticISO(nodes=10, settings=cluster_settings), lake=lake, name="rt").run(HOURS)
    assert (
        load_catalog(cluster_settings).load_table("hub_curated.rt_lmp").scan().to_arrow().num_rows == 10 * 36
    )
    assert lake.table("rt_lmp").location().startswith(f"s3://{lake.bucket('curated')}/")


def test_rest_catalog_round_trip(seaweed: SeaweedFS, tmp_path: Path) -> None:
    _wait(seaweed.rest_ready, "SeaweedFS Iceberg REST catalog")
    settings = Settings.load(
        profile="cluster",
        home=tmp_path,
        storage_prefix="rest",
        catalog={
            "type": "rest",
            "uri": seaweed.rest_uri,
            "credential": f"{S3_KEY}:{S3_SECRET}",
            "warehouse": f"s3://{seaweed.table_bucket}/",
        },
        s3={"endpoint": seaweed.endpoint, "access_key_id": S3_KEY, "secret_access_key": S3_SECRET},
    )
    lake = Lake(settings)
    lake.create_tiers()
    report = Pipeline(SyntheticISO(nodes=12, settings=settings), lake=lake, name="rt-rest").run(HOURS)
    assert report.ok and report.rows == 12 * 36
    with LakeSQL(lake) as sql:
        n = sql.sql("SELECT count(*) AS n FROM hub_curated.rt_lmp").column("n")[0].as_py()
    assert n == 12 * 36
    assert lake.watermark("rt_lmp", "rt-rest") == HOURS.end
