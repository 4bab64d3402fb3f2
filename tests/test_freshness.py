"""Freshness against the SLAs, read from real tables: pyiceberg on a SQLite catalog, and chdb."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse
from hmco.quality.freshness import (
    FreshnessReport,
    check_freshness,
    clickhouse_freshness,
    iceberg_freshness,
    newest_in_iceberg,
)
from hmco.schemas import TS, conform, get_dataset
from hmco.windows import Window
from tests.support.chdb import chdb_settings, unique_database

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def catalog(tmp_path: Path):
    from pyiceberg.catalog.sql import SqlCatalog

    cat = SqlCatalog(
        "fresh", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=f"file://{tmp_path}/warehouse"
    )
    cat.create_namespace("hub_curated")
    return cat


def _noaa(*hours: int) -> pa.Table:
    """noaa_observations rows for station KSUA at the given hours of 2026-11-26 (UTC)."""
    ts = [datetime(2026, 11, 26, h, tzinfo=UTC) for h in hours]
    return conform(
        pa.table({"ts": pa.array(ts, TS), "station": ["KSUA"] * len(ts), "temperature_c": [21.5] * len(ts)}),
        "noaa_observations",
    )


def _table(catalog, rows: pa.Table, properties: dict[str, str] | None = None):
    tbl = catalog.create_table(
        "hub_curated.noaa_observations", schema=rows.schema, properties=properties or {}
    )
    if rows.num_rows:
        tbl.append(rows)
    return tbl


def test_iceberg_table_with_last_hour_is_fresh(catalog) -> None:
    tbl = _table(catalog, _noaa(9, 10, 11))
    status = iceberg_freshness(tbl, "noaa_observations", now=NOW)
    assert status.newest == datetime(2026, 11, 26, 11, tzinfo=UTC)
    assert status.current_to == NOW  # the 11:00 observation hour ends at 12:00
    assert status.age == timedelta(0)
    assert status.sla == timedelta(minutes=20)
    assert status.status == "fresh"
    assert status.origin == "iceberg:data-stats"
    assert status.target == "hub_curated.noaa_observations"


def test_iceberg_table_an_hour_behind_is_stale(catalog) -> None:
    status = iceberg_freshness(_table(catalog, _noaa(9, 10)), "noaa_observations", now=NOW)
    assert status.age == timedelta(hours=1)
    assert status.status == "stale"


def test_publication_lag_extends_the_sla(catalog) -> None:
    tbl = _table(catalog, _noaa(9, 10))
    assert iceberg_freshness(tbl, "noaa_observations", now=NOW, lag=timedelta(minutes=40)).status == "fresh"


def test_newest_is_scanned_when_files_carry_no_statistics(catalog) -> None:
    tbl = _table(catalog, _noaa(8, 11, 10), {"write.metadata.metrics.default": "none"})
    assert newest_in_iceberg(tbl) == (datetime(2026, 11, 26, 11, tzinfo=UTC), "data-scan")


def test_watermark_property_is_used_when_preferred_and_found_past_maintenance_snapshots(catalog) -> None:
    tbl = _table(catalog, pa.table({"ts": pa.array([], TS)}))
    tbl.append(_noaa(9).select(["ts"]), snapshot_properties={"hmco.watermark": "2026-11-26T11:50:00+00:00"})
    tbl.append(_noaa(10).select(["ts"]))  # a later commit without a watermark (e.g. compaction)
    assert newest_in_iceberg(tbl, prefer="watermark") == (
        datetime(2026, 11, 26, 11, 50, tzinfo=UTC),
        "watermark",
    )
    status = iceberg_freshness(tbl, "noaa_observations", now=NOW, prefer="watermark")
    assert status.current_to == datetime(2026, 11, 26, 11, 50, tzinfo=UTC)  # a watermark is already an end
    assert status.age == timedelta(minutes=10)
    assert status.status == "fresh"


def test_table_without_rows_is_empty(catalog) -> None:
    status = iceberg_freshness(_table(catalog, _noaa()), "noaa_observations", now=NOW)
    assert status.newest is None and status.age is None
    assert status.status == "empty"


def test_report_prints_a_table_and_exits_1_when_anything_is_stale() -> None:
    report = FreshnessReport.of(
        [
            check_freshness(
                "eia_daily_fuel", datetime(2026, 11, 25, tzinfo=UTC), now=NOW, is_end=True, target="a"
            ),
            check_freshness(
                "eia_daily_fuel", datetime(2026, 11, 26, 11, 45, tzinfo=UTC), now=NOW, is_end=True
            ),
            check_freshness("census_acs", None, now=NOW),
        ]
    )
    assert [s.status for s in report.statuses] == ["stale", "fresh", "empty"]
    assert report.exit_code == 1
    assert str(report).splitlines() == [
        "dataset         target  newest                age     sla     status",
        "eia_daily_fuel  a       2026-11-25 00:00:00Z  1.5d    30m00s  stale",
        "eia_daily_fuel          2026-11-26 11:45:00Z  15m00s  30m00s  fresh",
        "census_acs              -                     -       1.0d    empty",
    ]
    table = report.to_arrow()
    assert table.column("status").to_pylist() == ["stale", "fresh", "empty"]
    assert table.column("age_seconds").to_pylist() == [129600.0, 900.0, None]
    assert table.column("sla_seconds").to_pylist() == [1800.0, 1800.0, 86400.0]


def test_report_of_fresh_datasets_exits_0() -> None:
    fresh = check_freshness("rt_lmp", datetime(2026, 11, 26, 11, 50, tzinfo=UTC), now=NOW)
    assert fresh.age == timedelta(minutes=5)
    assert FreshnessReport.of([fresh]).exit_code == 0


def test_report_sets_prometheus_gauges() -> None:
    registry = CollectorRegistry()
    FreshnessReport.of(
        [
            check_freshness("rt_lmp", datetime(2026, 11, 26, 11, 30, tzinfo=UTC), now=NOW, target="CAISO"),
            check_freshness("rt_lmp", None, now=NOW, target="SPP"),
        ]
    ).record(registry)
    caiso = {"dataset": "rt_lmp", "target": "CAISO"}
    assert registry.get_sample_value("hmco_freshness_age_seconds", caiso) == 1500.0
    assert registry.get_sample_value("hmco_freshness_ok", caiso) == 0.0
    assert registry.get_sample_value("hmco_freshness_sla_seconds", caiso) == 600.0
    assert (
        registry.get_sample_value("hmco_freshness_newest_timestamp_seconds", caiso)
        == datetime(2026, 11, 26, 11, 30, tzinfo=UTC).timestamp()
    )
    assert registry.get_sample_value("hmco_freshness_ok", {"dataset": "rt_lmp", "target": "SPP"}) == 0.0


@pytest.fixture
def clickhouse():
    from hmco.clickhouse import ensure_schema, layout_from_settings

    settings = chdb_settings(unique_database("fresh"))
    client = connect_clickhouse(settings)
    ensure_schema(client, layout_from_settings(settings))
    _layouts[id(client)] = layout_from_settings(settings)
    return client


_layouts: dict[int, ClickHouseLayout] = {}  # the layout of each fixture client (its database)


def _insert(client, iso: str, *times: datetime, minutes: int = 5) -> None:
    from hmco.sinks.clickhouse import ClickHouseSink

    step = timedelta(minutes=minutes)
    rows = pa.table(
        {
            "ts": pa.array(times, TS),
            "interval_end": pa.array([t + step for t in times], TS),
            "iso": [iso] * len(times),
            "market": ["RT5" if minutes == 5 else "RT15"] * len(times),
            "node": ["N1"] * len(times),
            "lmp": [30.0] * len(times),
        }
    )
    window = Window(min(times), max(times) + step)
    ClickHouseSink(client, _layouts[id(client)]).write(
        rows, dataset=get_dataset("rt_lmp"), window=window, batch_id=f"{iso}-{minutes}"
    )


def test_clickhouse_rt_lmp_freshness_per_iso(clickhouse) -> None:
    _insert(
        clickhouse,
        "CAISO",
        datetime(2026, 11, 26, 11, 50, tzinfo=UTC),
        datetime(2026, 11, 26, 11, 45, tzinfo=UTC),
    )
    _insert(clickhouse, "MISO", datetime(2026, 11, 26, 11, 30, tzinfo=UTC))
    caiso = clickhouse_freshness(clickhouse, "rt_lmp", iso="CAISO", now=NOW)
    miso = clickhouse_freshness(clickhouse, "rt_lmp", iso="MISO", now=NOW)
    spp = clickhouse_freshness(clickhouse, "rt_lmp", iso="SPP", now=NOW)
    assert (caiso.newest, caiso.age, caiso.status) == (
        datetime(2026, 11, 26, 11, 55, tzinfo=UTC),  # the newest interval's end
        timedelta(minutes=5),
        "fresh",
    )
    assert (miso.age, miso.status) == (timedelta(minutes=25), "stale")
    assert (spp.newest, spp.status) == (None, "empty")
    assert caiso.target == "rt_lmp iso=CAISO"
    assert FreshnessReport.of([caiso, miso, spp]).exit_code == 1


def test_clickhouse_freshness_reads_each_rows_own_interval_end(clickhouse) -> None:
    _insert(clickhouse, "SPP", datetime(2026, 11, 26, 11, 45, tzinfo=UTC), minutes=15)  # a 15-minute row
    spp = clickhouse_freshness(clickhouse, "rt_lmp", iso="SPP", now=NOW)
    assert (spp.newest, spp.age, spp.status) == (
        datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
        timedelta(0),
        "fresh",
    )


def test_clickhouse_identifiers_are_validated(clickhouse) -> None:
    from hmco.errors import ConfigError

    with pytest.raises(ConfigError, match="identifier"):
        clickhouse_freshness(clickhouse, "rt_lmp", table="rt_lmp; DROP TABLE rt_lmp", now=NOW)
