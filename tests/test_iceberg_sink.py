"""The Iceberg sink: a window replaced atomically, never duplicated; watermarks in the commit; evolution."""

from __future__ import annotations

import json
import multiprocessing as mp
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hmco.config import Settings
from hmco.errors import IncompatibleSchemaChange
from hmco.lake import Lake
from hmco.schemas import get_dataset
from hmco.sinks.iceberg import IcebergSink
from hmco.sources.synthetic import synthetic_lmp
from hmco.windows import Window

RT = get_dataset("rt_lmp")
DAY = Window.day("2026-11-26")


def _rows(lake: Lake, dataset: str = "rt_lmp", tier: str | None = None) -> pa.Table:
    return lake.table(dataset, tier).scan().to_arrow()


def test_rerun_of_window_replaces_rows(lake: Lake) -> None:
    batch = synthetic_lmp(DAY, nodes=50)
    sink = IcebergSink(lake, pipeline="p")
    sink.write(batch, dataset=RT, window=DAY, batch_id="b1")
    sink.write(batch, dataset=RT, window=DAY, batch_id="b2")
    out = _rows(lake)
    assert out.num_rows == batch.num_rows == 50 * 288
    assert out.group_by(["node", "ts"]).aggregate([]).num_rows == out.num_rows  # no duplicate key


def test_revised_window_replaces_old_values(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="p")
    first = synthetic_lmp(DAY, nodes=10)
    sink.write(first, dataset=RT, window=DAY, batch_id="b1")
    hour = Window(DAY.start, DAY.start + timedelta(hours=1))
    revised = synthetic_lmp(hour, nodes=10)
    revised = revised.set_column(revised.schema.get_field_index("lmp"), "lmp", pc.add(revised["lmp"], 100.0))
    sink.write(revised, dataset=RT, window=hour, batch_id="b2")
    out = _rows(lake)
    assert out.num_rows == first.num_rows
    in_hour = out.filter(pc.less(out["ts"], pa.scalar(hour.end, out["ts"].type)))
    assert in_hour.num_rows == 10 * 12
    assert pc.sum(in_hour["lmp"]).as_py() == pytest.approx(pc.sum(revised["lmp"]).as_py())


def test_rerun_only_replaces_its_own_scope(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="p")
    caiso = synthetic_lmp(DAY, nodes=5, iso="CAISO")
    spp = synthetic_lmp(DAY, nodes=7, iso="SPP")
    sink.write(caiso, dataset=RT, window=DAY, batch_id="c1", scope={"iso": ["CAISO"]})
    sink.write(spp, dataset=RT, window=DAY, batch_id="s1", scope={"iso": ["SPP"]})
    sink.write(caiso, dataset=RT, window=DAY, batch_id="c2", scope={"iso": ["CAISO"]})
    counts = dict(
        zip(*_rows(lake).group_by("iso").aggregate([("ts", "count")]).to_pydict().values(), strict=True)
    )
    assert counts == {"CAISO": 5 * 288, "SPP": 7 * 288}


def test_commit_carries_watermark_and_batch_id(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="caiso-rt")
    sink.write(synthetic_lmp(DAY, nodes=3), dataset=RT, window=DAY, batch_id="batch-42")
    tbl = lake.table("rt_lmp")
    summary = tbl.current_snapshot().summary.additional_properties
    assert summary["hmco.batch-id"] == "batch-42"
    assert summary["hmco.watermark"] == DAY.end.isoformat()
    assert summary["hmco.pipeline"] == "caiso-rt"
    assert lake.watermark("rt_lmp", "caiso-rt") == DAY.end


def test_rerunning_an_old_window_never_moves_the_watermark_back(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="p")
    later = Window.day("2026-11-27")
    sink.write(synthetic_lmp(later, nodes=2), dataset=RT, window=later, batch_id="b1")
    sink.write(synthetic_lmp(DAY, nodes=2), dataset=RT, window=DAY, batch_id="b2")
    assert lake.watermark("rt_lmp", "p") == later.end


def test_new_nullable_column_evolves_the_schema_by_name(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="p")
    base = synthetic_lmp(DAY, nodes=2)
    sink.write(base, dataset=RT, window=DAY, batch_id="b1")
    nxt = Window.day("2026-11-27")
    drifted = synthetic_lmp(nxt, nodes=2).append_column("baa", pa.array(["SPP"] * (2 * 288)))
    sink.write(drifted, dataset=RT, window=nxt, batch_id="b2")
    out = _rows(lake)
    assert "baa" in out.column_names
    assert out.filter(pc.is_null(out["baa"])).num_rows == base.num_rows  # old rows read as null
    assert out.filter(pc.equal(out["baa"], "SPP")).num_rows == 2 * 288


def test_incompatible_type_change_is_a_clear_error(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="p")
    sink.write(synthetic_lmp(DAY, nodes=2), dataset=RT, window=DAY, batch_id="b1")
    bad = synthetic_lmp(DAY, nodes=2)
    bad = bad.set_column(bad.schema.get_field_index("lmp"), "lmp", pc.cast(bad["lmp"], pa.string()))
    with pytest.raises(IncompatibleSchemaChange, match=r"column 'lmp' is double .* batch has string"):
        sink.write(bad, dataset=RT, window=DAY, batch_id="b2")
    assert _rows(lake).num_rows == 2 * 288  # nothing half-written


def test_evolution_can_be_refused(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="p", evolve=False)
    drifted = synthetic_lmp(DAY, nodes=1).append_column("surprise", pa.array([1] * 288))
    with pytest.raises(IncompatibleSchemaChange, match="schema evolution is off"):
        sink.write(drifted, dataset=RT, window=DAY, batch_id="b1")


def _writer(settings_json: str, day: str, iso: str, rounds: int, barrier: mp.synchronize.Barrier) -> None:
    settings = Settings.model_validate_json(settings_json)
    lake = Lake(settings)
    sink = IcebergSink(lake, pipeline=f"writer-{iso}")
    barrier.wait()
    for r in range(rounds):
        first = Window.day(day)
        window = Window(first.start + timedelta(days=r), first.end + timedelta(days=r))
        sink.write(
            synthetic_lmp(window, nodes=4, iso=iso),
            dataset=RT,
            window=window,
            batch_id=f"{iso}-{r}",
            scope={"iso": [iso]},
        )


def _settings_json(settings: Settings) -> str:
    """Settings for a child process, secrets included (test plumbing between two processes, not a log)."""
    data = settings.model_dump(mode="json")
    for key in ("access_key_id", "secret_access_key"):
        value = getattr(settings.s3, key)
        data["s3"][key] = value.get_secret_value() if value else None
    return json.dumps(data)


def test_concurrent_writers_from_two_processes_lose_nothing(lake: Lake) -> None:
    lake.table("rt_lmp")  # created up front; both writers then race on commits
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    rounds = 4
    procs = [
        ctx.Process(target=_writer, args=(_settings_json(lake.settings), "2026-11-20", iso, rounds, barrier))
        for iso in ("CAISO", "SPP")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0]
    out = _rows(lake)
    assert out.num_rows == 2 * rounds * 4 * 288
    assert out.group_by(["iso", "node", "ts"]).aggregate([]).num_rows == out.num_rows


def test_batch_spanning_many_partitions_writes_one_file_per_partition(lake: Lake) -> None:
    three_days = Window.of("2026-11-20", "2026-11-23")
    batch = pa.concat_tables([synthetic_lmp(three_days, nodes=3, iso=iso) for iso in ("CAISO", "SPP")])
    IcebergSink(lake, pipeline="p").write(
        batch, dataset=RT, window=three_days, batch_id="b", scope={"iso": ["CAISO", "SPP"]}
    )
    tbl = lake.table("rt_lmp")
    files = tbl.inspect.data_files()
    assert files.num_rows == 6  # 3 days × 2 ISOs
    partitions = {(p["ts_day"], p["iso"]) for p in files.column("partition").to_pylist()}
    assert len(partitions) == 6
    one_day = tbl.scan(
        row_filter="ts >= '2026-11-21T00:00:00+00:00' and ts < '2026-11-22T00:00:00+00:00' and iso = 'SPP'"
    )
    assert len(one_day.plan_files()) == 1 and one_day.to_arrow().num_rows == 3 * 288


def test_data_files_carry_iceberg_field_ids(lake: Lake) -> None:
    import pyarrow.parquet as pq

    IcebergSink(lake).write(synthetic_lmp(DAY, nodes=2), dataset=RT, window=DAY, batch_id="b")
    tbl = lake.table("rt_lmp")
    path = tbl.inspect.data_files().column("file_path")[0].as_py()
    with tbl.io.new_input(path).open() as f:
        schema = pq.read_schema(f)
    ids = {f.name: int(f.metadata[b"PARQUET:field_id"]) for f in schema}
    assert ids == {f.name: f.field_id for f in tbl.schema().fields}


def test_without_a_scope_a_batch_only_replaces_its_own_isos(lake: Lake) -> None:
    sink = IcebergSink(lake, pipeline="realtime")  # as the real-time runner uses it: no explicit scope
    sink.write(synthetic_lmp(DAY, nodes=2, iso="CAISO"), dataset=RT, window=DAY, batch_id="c")
    sink.write(synthetic_lmp(DAY, nodes=3, iso="SPP"), dataset=RT, window=DAY, batch_id="s")
    grouped = _rows(lake).group_by("iso").aggregate([("ts", "count")]).to_pydict()
    assert dict(zip(grouped["iso"], grouped["ts_count"], strict=True)) == {"CAISO": 2 * 288, "SPP": 3 * 288}


def test_a_commit_the_catalog_refuses_leaves_no_data_files_and_a_typed_error(settings: Settings) -> None:
    import sqlalchemy.exc
    from pyiceberg.catalog.sql import SqlCatalog

    from hmco.catalog import catalog_properties
    from hmco.errors import SinkError

    class LockedCatalog(SqlCatalog):
        """A real SQLite catalog whose database is locked at commit time (another writer holds it)."""

        def commit_table(self, table, requirements, updates):  # type: ignore[no-untyped-def]
            raise sqlalchemy.exc.OperationalError(
                "UPDATE iceberg_tables", {}, Exception("database is locked")
            )

    lake = Lake(settings, catalog=LockedCatalog("hmco", **catalog_properties(settings)))
    lake.create_tiers()
    data_dir = lake.table("rt_lmp").location().removeprefix("file://") + "/data"
    with pytest.raises(SinkError, match="database is locked"):
        IcebergSink(lake, max_attempts=2).write(
            synthetic_lmp(DAY, nodes=5), dataset=RT, window=DAY, batch_id="b1"
        )
    import pathlib

    assert list(pathlib.Path(data_dir).rglob("*.parquet")) == []
