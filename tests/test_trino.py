"""A real Trino server (Maven Central tarball, Java 24+) reads the Iceberg tables hmco writes.

Catalog on PostgreSQL (Trino's JDBC catalog over pyiceberg's SqlCatalog tables), data on SeaweedFS S3.
The seed's EIA query runs verbatim on Trino and on the embedded engine (DuckDB via ``LakeSQL``): same
answer. The server starts once per session (``tests/support/trino_fixtures.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.demo import EIA_QUERY
from hmco.errors import ConfigError
from hmco.query.lake import LakeSQL
from hmco.query.trino import TrinoSQL, arrow_type
from hmco.sources.synthetic import SyntheticEIADailyFuel, SyntheticISO
from hmco.windows import Window, floor_time
from tests.support.trino_fixtures import TrinoLake

NODES = 12
ISOS = ("CAISO", "MISO")


@dataclass
class Written:
    stack: TrinoLake
    today: datetime
    eia_rows: int
    rt_rows: int


@pytest.fixture(scope="module")
def written(trino_lake: TrinoLake) -> Written:
    """eia_daily_fuel for the 10 days before today and rt_lmp (2 ISOs × 2 days) written through hmco."""
    lake, settings = trino_lake.lake, trino_lake.settings
    today = floor_time(datetime.now(UTC), timedelta(days=1))
    eia = Pipeline(
        SyntheticEIADailyFuel(settings=settings), lake=lake, name="trino-eia", window_step=timedelta(days=10)
    ).run(Window(today - timedelta(days=10), today))
    rt_rows = 0
    for iso in ISOS:
        report = Pipeline(
            SyntheticISO(nodes=NODES, iso=iso, settings=settings, chunk="1d"),
            lake=lake,
            name=f"trino-rt-{iso.lower()}",
            window_step=timedelta(days=2),
        ).run(Window(today - timedelta(days=2), today))
        rt_rows += report.rows
    return Written(trino_lake, today, eia.rows, rt_rows)


def _sorted(table: pa.Table, keys: list[str]) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in keys])


def test_seed_eia_query_on_trino_equals_the_embedded_engine(written: Written) -> None:
    assert written.eia_rows > 0
    with TrinoSQL(written.stack.settings) as trino:
        on_trino = _sorted(trino.sql(EIA_QUERY), ["region", "series"])
    with LakeSQL(written.stack.lake) as duck:
        on_duckdb = _sorted(duck.sql(EIA_QUERY), ["region", "series"])

    assert on_trino.column_names == ["region", "series", "avg_value"]
    assert on_trino.schema.field("avg_value").type == pa.float64()
    assert on_trino.num_rows == on_duckdb.num_rows > 0
    assert (
        on_trino.select(["region", "series"]).to_pylist()
        == on_duckdb.select(["region", "series"]).to_pylist()
    )
    diff = pc.max(pc.abs(pc.subtract(on_trino["avg_value"], pc.cast(on_duckdb["avg_value"], pa.float64()))))
    assert diff.as_py() < 1e-9


def test_rt_lmp_partition_filter_counts_match_pyiceberg(written: Written) -> None:
    day = written.today - timedelta(days=1)
    query = f"""
        SELECT iso, date(ts) AS day, count(*) AS n
        FROM hub_curated.rt_lmp
        WHERE ts >= from_iso8601_timestamp('{day.isoformat()}') AND ts < from_iso8601_timestamp('{written.today.isoformat()}')
          AND iso = 'CAISO'
        GROUP BY 1, 2
    """
    with TrinoSQL(written.stack.settings) as trino:
        on_trino = trino.sql(query)
        total = trino.sql("SELECT count(*) AS n FROM iceberg.hub_curated.rt_lmp").column("n")[0].as_py()

    scanned = written.stack.lake.scan(
        "rt_lmp",
        row_filter=f"ts >= '{day.isoformat()}' AND ts < '{written.today.isoformat()}' AND iso = 'CAISO'",
    ).to_arrow()
    assert on_trino.to_pylist() == [{"iso": "CAISO", "day": day.date(), "n": scanned.num_rows}]
    assert scanned.num_rows == NODES * 288
    assert total == written.rt_rows == written.stack.lake.scan("rt_lmp").to_arrow().num_rows


def test_results_carry_arrow_types_for_timestamps_doubles_and_varchars(written: Written) -> None:
    with TrinoSQL(written.stack.settings) as trino:
        got = trino.sql(
            "SELECT ts, node, lmp FROM hub_curated.rt_lmp WHERE iso = 'MISO' ORDER BY ts, node LIMIT 3"
        )
    expected = _sorted(
        written.stack.lake.scan("rt_lmp", row_filter="iso = 'MISO'").to_arrow().select(["ts", "node", "lmp"]),
        ["ts", "node"],
    ).slice(0, 3)

    assert got.schema == pa.schema(
        [("ts", pa.timestamp("us", tz="UTC")), ("node", pa.string()), ("lmp", pa.float64())]
    )
    assert got.to_pylist() == expected.to_pylist()
    assert got.column("ts")[0].as_py() == written.today - timedelta(days=2)


def test_empty_result_keeps_names_and_types(written: Written) -> None:
    with TrinoSQL(written.stack.settings) as trino:
        got = trino.sql("SELECT node, lmp, ts FROM hub_curated.rt_lmp WHERE iso = 'NOWHERE'")
    assert got.num_rows == 0
    assert got.schema == pa.schema(
        [("node", pa.string()), ("lmp", pa.float64()), ("ts", pa.timestamp("us", tz="UTC"))]
    )


def test_password_over_plain_http_is_refused_before_connecting() -> None:
    settings = Settings.load(trino={"port": 1, "password": "fake-trino-pass", "http_scheme": "http"})
    with TrinoSQL(settings) as trino, pytest.raises(ConfigError, match="only over HTTPS") as caught:
        trino.sql("SELECT 1")
    assert "fake-trino-pass" not in str(caught.value)


@pytest.mark.parametrize(
    ("trino_type", "arrow"),
    [
        ("timestamp(6) with time zone", pa.timestamp("us", tz="UTC")),
        ("timestamp(3)", pa.timestamp("us")),
        ("varchar(12)", pa.string()),
        ("double", pa.float64()),
        ("bigint", pa.int64()),
        ("date", pa.date32()),
        ("decimal(10, 2)", pa.decimal128(10, 2)),
        ("array(varchar)", None),
    ],
)
def test_trino_type_names_map_to_arrow_types(trino_type: str, arrow: pa.DataType | None) -> None:
    assert arrow_type(trino_type) == arrow
