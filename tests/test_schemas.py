"""Canonical schemas: one declaration per dataset, UTC times, keys, and conforming batches by name."""

from __future__ import annotations

import pyarrow as pa
import pytest

from hmco.errors import SchemaError
from hmco.schemas import DATASETS, TS, conform, get_dataset

SEED_COLUMNS = {
    "rt_lmp": {"ts", "interval_end", "iso", "node", "market", "lmp", "energy", "congestion", "loss"},
    "eia_daily_fuel": {"ts", "region", "series", "value", "units"},
}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_has_utc_ts_and_non_null_primary_key(name: str) -> None:
    ds = DATASETS[name]
    assert ds.schema.field(ds.time_column).type == TS
    assert ds.primary_key and all(not ds.schema.field(c).nullable for c in ds.primary_key)
    assert ds.identifier.startswith("hub_")


@pytest.mark.parametrize(("name", "columns"), sorted(SEED_COLUMNS.items()))
def test_seed_query_columns_exist(name: str, columns: set[str]) -> None:
    assert columns <= set(get_dataset(name).schema.names)


def test_conform_reorders_casts_and_fills_missing_nullable_columns() -> None:
    batch = pa.table(
        {
            "value": pa.array(["12.5", "7"]).cast(pa.float32()),
            "series": ["NG", "SUN"],
            "region": ["CISO", "CISO"],
            "timezone": ["Pacific", "Pacific"],
            "ts": pa.array([0, 86_400_000_000], pa.timestamp("us", tz="UTC")),
        }
    )
    out = conform(batch, "eia_daily_fuel")
    assert (
        out.schema.names[: len(get_dataset("eia_daily_fuel").schema)]
        == get_dataset("eia_daily_fuel").schema.names
    )
    assert out.column("value").type == pa.float64()
    assert out.column("units").null_count == 2


def test_conform_rejects_missing_required_column_by_name() -> None:
    with pytest.raises(SchemaError, match="required column 'region' is missing"):
        conform(pa.table({"ts": pa.array([0], TS), "series": ["NG"], "timezone": ["x"]}), "eia_daily_fuel")


def test_conform_rejects_nulls_in_required_columns() -> None:
    batch = pa.table(
        {
            "ts": pa.array([0], TS),
            "region": pa.array([None], pa.string()),
            "series": ["NG"],
            "timezone": ["x"],
        }
    )
    with pytest.raises(SchemaError, match="'region' has 1 null"):
        conform(batch, "eia_daily_fuel")


def test_conform_rejects_impossible_casts() -> None:
    batch = pa.table(
        {"ts": pa.array([0], TS), "region": ["CISO"], "series": ["NG"], "timezone": ["x"], "value": ["abc"]}
    )
    with pytest.raises(SchemaError, match="column 'value'"):
        conform(batch, "eia_daily_fuel")


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(SchemaError, match="rt_lmp"):
        get_dataset("rt_lpm")
