"""The lake: four tiers with buckets, namespaces and retention; tables built from canonical schemas."""

from __future__ import annotations

from datetime import timedelta

from hmco.config import Settings
from hmco.lake import TIERS, Lake
from hmco.schemas import get_dataset


def test_tiers_carry_the_platform_retention() -> None:
    assert {t.name: (t.bucket, t.namespace, t.retention) for t in TIERS.values()} == {
        "raw": ("hmco-raw", "hub_raw", timedelta(days=30)),
        "staged": ("hmco-staged", "hub_staged", timedelta(days=365)),
        "curated": ("hmco-curated", "hub_curated", timedelta(days=5 * 365)),
        "ml": ("hmco-ml", "hub_ml", timedelta(days=365)),
    }


def test_create_tiers_creates_namespaces_once(lake: Lake) -> None:
    assert lake.create_tiers() == []  # the fixture already created them: a second call changes nothing
    namespaces = {ns[0] for ns in lake.catalog.list_namespaces()}
    assert {"hub_raw", "hub_staged", "hub_curated", "hub_ml"} <= namespaces
    props = lake.catalog.load_namespace_properties("hub_curated")
    assert props["hmco.retention-days"] == "1825"
    assert props["location"] == lake.tier_location("curated")
    assert "hmco-curated" in props["location"]


def test_tier_buckets_exist_on_s3(cluster_settings: Settings) -> None:
    import pyarrow.fs as pafs

    lake = Lake(cluster_settings)
    lake.create_tiers()
    infos = lake._s3fs.get_file_info([lake.bucket(t) for t in TIERS])
    assert all(i.type == pafs.FileType.Directory for i in infos)
    assert lake.bucket("raw") == "hmco-raw"
    # Environments (here: tests) share the buckets under their own key prefix.
    prefix = cluster_settings.storage_prefix
    assert lake.tier_location("curated") == f"s3://hmco-curated/{prefix}"
    assert lake.table("rt_lmp").location() == f"s3://hmco-curated/{prefix}/rt_lmp"
    assert lake.lifecycle_rules()["hmco-raw"]["Rules"][0]["Filter"] == {"Prefix": f"{prefix}/payloads/"}


def test_lifecycle_rules_expire_only_the_raw_archive_after_its_retention(lake: Lake) -> None:
    """Object expiry only for raw payloads: the other tiers hold Iceberg tables (their retention runs
    inside Iceberg, hmco.maintenance.retention), whose live files can be of any age."""
    rules = lake.lifecycle_rules()
    assert list(rules) == [lake.bucket("raw")]
    assert rules[lake.bucket("raw")]["Rules"][0]["Expiration"] == {"Days": 30}


def test_table_is_created_from_the_canonical_schema(lake: Lake) -> None:
    tbl = lake.table("rt_lmp")
    ds = get_dataset("rt_lmp")
    assert tbl.name() == ("hub_curated", "rt_lmp")
    schema = tbl.schema()
    assert [f.name for f in schema.fields] == ds.schema.names
    assert {schema.find_field(i).name for i in schema.identifier_field_ids} == set(ds.primary_key)
    assert [(f.name, str(f.transform)) for f in tbl.spec().fields] == [("ts_day", "day"), ("iso", "identity")]
    assert [schema.find_field(f.source_id).name for f in tbl.sort_order().fields] == ["iso", "node", "ts"]
    assert tbl.properties["write.metadata.delete-after-commit.enabled"] == "true"
    assert str(schema.find_field("ts").field_type) == "timestamptz"
    assert "hmco-curated" in tbl.location()


def test_same_dataset_gets_one_table_per_tier(lake: Lake) -> None:
    assert lake.table("eia_daily_fuel", "staged").name() == ("hub_staged", "eia_daily_fuel")
    assert lake.table("eia_daily_fuel").name() == ("hub_curated", "eia_daily_fuel")
    assert (
        lake.table("eia_daily_fuel").metadata.table_uuid == lake.table("eia_daily_fuel").metadata.table_uuid
    )
