"""The data-file writer: partition slices of grouped and interleaved batches, field ids, locations, cleanup."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hmco.config import Settings
from hmco.errors import SchemaError, SinkError
from hmco.lake import Lake
from hmco.sinks.datafiles import partition_slices, partition_values, split_by_partition, write_data_files
from hmco.sources.synthetic import synthetic_lmp
from hmco.windows import Window

DAY0 = Window.day("2026-11-01")


@pytest.fixture
def local(settings: Settings) -> Lake:
    lake = Lake(settings)
    lake.create_tiers()
    return lake


def day(i: int) -> Window:
    return Window.day((DAY0.start + timedelta(days=i)).date().isoformat())


def grouped(days: int = 3, isos: tuple[str, ...] = ("CAISO", "SPP"), nodes: int = 4) -> pa.Table:
    """``days`` x ``isos`` partitions, each one contiguous run (ISO by ISO, day by day)."""
    return pa.concat_tables(
        [synthetic_lmp(day(d), nodes + d, iso=iso, seed=k) for k, iso in enumerate(isos) for d in range(days)]
    )


def shuffled(table: pa.Table, seed: int = 3) -> pa.Table:
    return table.take(pa.array(np.random.default_rng(seed).permutation(table.num_rows)))


def partition_of(rows: pa.Table) -> tuple[str, str]:
    """The (day, iso) of a slice, asserting it holds one partition."""
    days = pc.unique(pc.strftime(rows.column("ts"), "%Y-%m-%d")).to_pylist()
    isos = pc.unique(rows.column("iso")).to_pylist()
    assert len(days) == len(isos) == 1, (days, isos)
    return days[0], isos[0]


def rows_where(table: pa.Table, part: tuple[str, str]) -> pa.Table:
    """The batch's rows of one partition, in batch order (what a slice must equal)."""
    mask = pc.and_(
        pc.equal(pc.strftime(table.column("ts"), "%Y-%m-%d"), part[0]), pc.equal(table["iso"], part[1])
    )
    return table.filter(mask)


def local_path(uri: str) -> Path:
    return Path(urlparse(uri).path)


def data_files(tbl_location: str) -> list[Path]:
    return sorted(p for p in (local_path(tbl_location) / "data").rglob("*") if p.is_file())


# --- splitting --------------------------------------------------------------------------------------


def test_grouped_batch_gives_one_slice_per_partition_in_batch_order(local: Lake) -> None:
    tbl = local.table("rt_lmp")
    batch = grouped()
    slices = split_by_partition(tbl, batch)
    parts = [partition_of(s) for s in slices]
    assert parts == [(day(d).start.date().isoformat(), iso) for iso in ("CAISO", "SPP") for d in range(3)]
    for part, rows in zip(parts, slices, strict=True):
        assert rows.equals(rows_where(batch, part))


def test_grouped_batch_is_sliced_without_copying(local: Lake) -> None:
    tbl = local.table("rt_lmp")
    batch = grouped().combine_chunks()
    start = batch.column("lmp").chunks[0].buffers()[1].address
    end = start + batch.column("lmp").chunks[0].buffers()[1].size
    for piece in partition_slices(tbl, batch):
        assert piece.indices is None
        for chunk in piece.rows.column("lmp").chunks:
            assert start <= chunk.buffers()[1].address < end  # a view into the batch, not a copy


def test_interleaved_batch_gives_the_same_partitions_row_for_row(local: Lake) -> None:
    tbl = local.table("rt_lmp")
    batch = grouped()
    mixed = shuffled(batch)
    from_grouped = {partition_of(s): s for s in split_by_partition(tbl, batch)}
    from_mixed = {partition_of(s): s for s in split_by_partition(tbl, mixed)}
    assert from_mixed.keys() == from_grouped.keys()
    key = [("node", "ascending"), ("ts", "ascending")]
    for part, rows in from_mixed.items():
        assert rows.equals(rows_where(mixed, part))  # the mixed batch's own order within a partition
        assert rows.sort_by(key).equals(from_grouped[part].sort_by(key))  # the same rows as grouped


def test_runs_of_one_partition_are_joined_in_batch_order(local: Lake) -> None:
    tbl = local.table("rt_lmp")
    first, other, again = (
        synthetic_lmp(day(0), 3, iso=iso, seed=s) for iso, s in [("CAISO", 1), ("SPP", 2), ("CAISO", 3)]
    )
    batch = pa.concat_tables([first, other, again])
    slices = partition_slices(tbl, batch)
    assert [partition_of(s.table()) for s in slices] == [("2026-11-01", "CAISO"), ("2026-11-01", "SPP")]
    assert slices[0].table().equals(pa.concat_tables([first, again]))
    assert all(s.indices is None for s in slices)  # joined from slices, not gathered


def test_day_codes_match_pyiceberg_transform_before_and_after_the_epoch(local: Lake) -> None:
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import TimestamptzType

    tbl = local.table("rt_lmp")
    micros = np.array([-86_400_000_001, -86_400_000_000, -1, 0, 1, 86_399_999_999, 1_795_000_000_000_000])
    ts = pa.array(micros, pa.timestamp("us", tz="UTC"))
    batch = synthetic_lmp(day(0), 1).slice(0, len(micros))
    batch = batch.set_column(batch.schema.get_field_index("ts"), batch.schema.field("ts"), ts)
    days, _iso = partition_values(tbl, batch)
    assert days.to_pylist() == DayTransform().pyarrow_transform(TimestamptzType())(ts).to_pylist()
    assert days.to_pylist()[:4] == [-2, -1, -1, 0]


def _custom_table(lake: Lake):  # type: ignore[no-untyped-def]
    """A table partitioned by hour of a zoneless timestamp and by a nullable identity column."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import HourTransform, IdentityTransform
    from pyiceberg.types import DoubleType, NestedField, StringType, TimestampType

    schema = Schema(
        NestedField(1, "ts", TimestampType(), required=True),
        NestedField(2, "region", StringType(), required=False),
        NestedField(3, "value", DoubleType(), required=False),
    )
    spec = PartitionSpec(
        PartitionField(1, 1000, HourTransform(), "ts_hour"),
        PartitionField(2, 1001, IdentityTransform(), "region"),
    )
    return lake.catalog.create_table("hub_curated.custom", schema=schema, partition_spec=spec)


def test_hour_codes_match_pyiceberg_transform_before_and_after_the_epoch(local: Lake) -> None:
    from pyiceberg.transforms import HourTransform
    from pyiceberg.types import TimestampType

    tbl = _custom_table(local)
    micros = np.array([-3_600_000_001, -3_600_000_000, -1, 0, 3_599_999_999, 1_795_000_000_000_000])
    ts = pa.array(micros, pa.timestamp("us"))
    hours, _region = partition_values(tbl, pa.table({"ts": ts, "region": ["a"] * len(micros)}))
    assert hours.to_pylist() == HourTransform().pyarrow_transform(TimestampType())(ts).to_pylist()
    assert hours.to_pylist()[:4] == [-2, -1, -1, 0]


def test_nulls_of_an_identity_partition_are_one_partition(local: Lake) -> None:
    tbl = _custom_table(local)
    start = datetime(1969, 12, 31, 22)
    ts = [start + timedelta(minutes=20 * i) for i in range(12)]  # 4 hours, two before the epoch
    regions = ["a", None, None, "a", "b", None] * 2
    batch = pa.table({"ts": pa.array(ts, pa.timestamp("us")), "region": regions, "value": np.arange(12.0)})
    for table in (batch, shuffled(batch)):
        got = {}
        for piece in split_by_partition(tbl, table):
            hours = pc.unique(pc.floor_temporal(piece["ts"], unit="hour")).to_pylist()
            region = pc.unique(piece["region"]).to_pylist()
            assert len(hours) == len(region) == 1
            got[(hours[0], region[0])] = sorted(piece["value"].to_pylist())
        want: dict[tuple[datetime, str | None], list[float]] = {}
        for i, (t, r) in enumerate(zip(ts, regions, strict=True)):
            want.setdefault((t.replace(minute=0), r), []).append(float(i))
        assert got == want


@pytest.mark.parametrize(
    ("fields", "distinct"),
    [(2, 50), (2, 400), (5, 6000)],
    ids=["16-bit key", "64-bit key", "lexsort"],  # the product of the fields' cardinalities picks the sort
)
def test_interleaved_batch_is_split_exactly_whatever_the_key_width(
    local: Lake, fields: int, distinct: int
) -> None:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import LongType, NestedField

    names = [f"k{j}" for j in range(fields)]
    schema = Schema(
        *[NestedField(j + 1, name, LongType(), required=True) for j, name in enumerate(names)],
        NestedField(fields + 1, "row", LongType(), required=True),
    )
    spec = PartitionSpec(
        *[PartitionField(j + 1, 1000 + j, IdentityTransform(), name) for j, name in enumerate(names)]
    )
    tbl = local.catalog.create_table("hub_curated.keys", schema=schema, partition_spec=spec)
    rng = np.random.default_rng(fields)
    rows = 6000
    keys = [rng.permutation(np.arange(rows) % distinct) for _ in names]
    batch = pa.table({**dict(zip(names, keys, strict=True)), "row": np.arange(rows)})

    want: dict[tuple[int, ...], list[int]] = {}  # first-seen partition order, batch order inside
    for i, key in enumerate(zip(*(k.tolist() for k in keys), strict=True)):
        want.setdefault(key, []).append(i)
    pieces = split_by_partition(tbl, batch)
    assert [p.column("row").to_pylist() for p in pieces] == list(want.values())


def test_unpartitioned_table_gets_even_files_under_data(local: Lake) -> None:
    from pyiceberg.schema import Schema
    from pyiceberg.types import DoubleType, NestedField

    tbl = local.catalog.create_table("hub_curated.flat", schema=Schema(NestedField(1, "v", DoubleType())))
    paths = write_data_files(tbl, pa.table({"v": np.arange(2500.0)}), "b1", max_rows=1000)
    assert [pq.read_metadata(local_path(p)).num_rows for p in paths] == [833, 833, 834]
    assert {p.rsplit("/", 1)[0] for p in paths} == {tbl.location_provider().data_path}


# --- writing ----------------------------------------------------------------------------------------


def test_files_carry_field_ids_and_register_with_add_files(lake: Lake) -> None:
    tbl = lake.table("rt_lmp")
    batch = grouped(days=2)
    paths = write_data_files(tbl, batch, "b1")
    ids = {f.name: f.field_id for f in tbl.schema().fields}
    for path in paths:
        with tbl.io.new_input(path).open() as f:
            schema = pq.read_schema(f)
        assert {f.name: int(f.metadata[b"PARQUET:field_id"]) for f in schema} == ids
    tbl.add_files(paths)
    out = tbl.scan().to_arrow()
    key = [("iso", "ascending"), ("node", "ascending"), ("ts", "ascending")]
    assert out.sort_by(key).select(batch.column_names).cast(batch.schema).equals(batch.sort_by(key))
    partitions = tbl.inspect.files().column("partition").to_pylist()
    assert Counter(p["iso"] for p in partitions) == {"CAISO": 2, "SPP": 2}


@pytest.mark.parametrize("object_storage", [False, True], ids=["default", "object_storage"])
def test_file_locations_follow_the_location_provider(local: Lake, object_storage: bool) -> None:
    tbl = local.table("rt_lmp")
    if object_storage:
        with tbl.transaction() as tx:
            tx.set_properties({"write.object-storage.enabled": "true"})
    paths = write_data_files(tbl, grouped(days=2), "b1")
    provider = tbl.location_provider()
    assert len(paths) == 4
    for path in paths:
        ts_day, iso = partition_of(pq.read_table(local_path(path)))
        name = path.rsplit("/", 1)[1]
        assert name.startswith("b1-") and name.endswith(".parquet")
        assert path == provider.new_data_location(f"ts_day={ts_day}/iso={iso}/{name}")


def test_files_per_partition_are_bounded_and_even(local: Lake) -> None:
    tbl = local.table("rt_lmp")
    batch = grouped(days=2, isos=("CAISO",), nodes=10)  # 10 * 288 and 11 * 288 rows
    paths = write_data_files(tbl, batch, "b1", max_rows=1000)
    sizes = sorted(pq.read_metadata(local_path(p)).num_rows for p in paths)
    assert len(paths) == 3 + 4  # ceil(2880 / 1000) + ceil(3168 / 1000)
    assert sizes == [792] * 4 + [960] * 3


def test_files_use_the_table_codec_row_groups_and_dictionaries_where_values_repeat(local: Lake) -> None:
    tbl = local.table("rt_lmp")
    with tbl.transaction() as tx:
        tx.set_properties({"write.parquet.row-group-limit": "500", "write.parquet.compression-level": "3"})
    (path,) = write_data_files(tbl, synthetic_lmp(day(0), 5, iso="CAISO"), "b1")
    meta = pq.read_metadata(local_path(path))
    assert meta.num_row_groups == 3 and meta.row_group(0).num_rows == 500  # 1440 rows
    columns = {
        meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
        for i in range(meta.num_columns)
    }
    assert {c.compression for c in columns.values()} == {"ZSTD"}
    assert "RLE_DICTIONARY" in columns["node"].encodings  # 5 distinct values
    assert "RLE_DICTIONARY" not in columns["lmp"].encodings  # nearly unique doubles


def test_empty_batch_writes_nothing(local: Lake) -> None:
    tbl = local.table("rt_lmp")
    assert write_data_files(tbl, synthetic_lmp(day(0), 2).slice(0, 0), "b1") == []
    assert data_files(tbl.location()) == []


# --- failures ---------------------------------------------------------------------------------------


def test_a_failed_write_deletes_every_file_the_call_wrote(local: Lake) -> None:
    tbl = local.table("rt_lmp")
    batch = pa.concat_tables(
        [synthetic_lmp(day(d), nodes, iso="CAISO") for d, nodes in [(0, 30), (1, 20), (2, 2)]]
    )
    # The smallest partition is written last; its directory is a file, so creating it fails for real.
    blocker = local_path(tbl.location()) / "data" / "ts_day=2026-11-03"
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"not a directory")
    with pytest.raises(SinkError, match="ts_day=2026-11-03"):
        write_data_files(tbl, batch, "b1")
    assert data_files(tbl.location()) == [blocker]
    blocker.unlink()
    assert len(write_data_files(tbl, batch, "b2")) == 3  # the same call writes once the path is free


def test_a_value_that_cannot_be_cast_is_a_schema_error_and_writes_nothing(local: Lake) -> None:
    tbl = local.table("rt_lmp")
    batch = synthetic_lmp(day(0), 2)
    i = batch.schema.get_field_index("lmp")
    batch = batch.set_column(i, "lmp", pa.array(["12.5", "n/a"] * (batch.num_rows // 2)))
    with pytest.raises(SchemaError, match="'lmp'"):
        write_data_files(tbl, batch, "b1")
    assert data_files(tbl.location()) == []


def test_a_null_in_a_required_column_is_a_schema_error_and_writes_nothing(local: Lake) -> None:
    tbl = local.table("rt_lmp")
    batch = synthetic_lmp(day(0), 2)
    i = batch.schema.get_field_index("node")
    nodes = batch.column("node").to_pylist()
    nodes[-1] = None
    batch = batch.set_column(i, pa.field("node", pa.string()), pa.array(nodes))
    with pytest.raises(SchemaError, match=r"'node'.*1 null"):
        write_data_files(tbl, batch, "b1")
    assert data_files(tbl.location()) == []
