"""The real-time runner takes the one gated path: a bad ISO batch reaches neither ClickHouse nor curated.

SPP's real client reads interval files from the loopback replay server; a synthetic ISO runs beside it.
The ClickHouse store is chdb; the lake is a temporary embedded one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.compose.realtime import RealtimeRunner
from hmco.config import Settings
from hmco.lake import Lake
from hmco.sinks.clickhouse import ClickHouseSink
from hmco.sources.spp import interval_file_path
from hmco.sources.synthetic import SyntheticISO
from tests.support.chdb import chdb_settings, unique_database
from tests.support.replay import ReplayServer, Reply
from tests.test_realtime import DOWNLOAD, HEADER, NODES, SPP_CENTRAL, FakeClock, publish, spp, spp_csv

T = datetime(2026, 11, 27, 11, 3, tzinfo=UTC)  # SPP's latest window at T is [10:55, 11:00)
BAD_END = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)


def bad_spp_csv(end: datetime) -> bytes:
    """An SPP interval file whose first node's LMP is far out of range and whose second row repeats."""
    local = end.astimezone(SPP_CENTRAL)
    when = f"{local:%m/%d/%Y %H:%M:%S},{end:%m/%d/%Y %H:%M:%S}"
    rows = [
        f"{when},{NODES[0]},{NODES[0][:10]},50000.0000,-0.1000,0.5000,49999.6000,SPP\n",
        f"{when},{NODES[1]},{NODES[1][:10]},21.0000,-0.1000,0.5000,20.6000,SPP\n",
        f"{when},{NODES[1]},{NODES[1][:10]},22.0000,-0.1000,0.5000,21.6000,SPP\n",
    ]
    return (HEADER + "".join(rows)).encode()


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    settings = Settings.load(home=tmp_path / "hmco")
    lake = Lake(settings)
    lake.create_tiers()
    return lake


@pytest.fixture
def sink() -> ClickHouseSink:
    layout = ClickHouseLayout.of("rt_lmp", database=unique_database("rtgate"))
    client = connect_clickhouse(chdb_settings())
    ensure_schema(client, layout)
    return ClickHouseSink(client, layout)


def _stored(sink: ClickHouseSink) -> dict[str, int]:
    rows = sink.client.query(f"SELECT iso, count() FROM {sink.layout.store} GROUP BY iso").result_rows
    return {str(iso): int(n) for iso, n in rows}


def _serve_with_one_bad_interval(replay: ReplayServer, *, corrected: bool = False) -> None:
    """SPP's feed for 10:05-11:00 where the 10:30 file is bad (the first route matching a path wins);
    with ``corrected`` SPP re-publishes that file, fixed, after the first download."""
    bad = Reply(200, bad_spp_csv(BAD_END), content_type="text/csv")
    fixed = [Reply(200, spp_csv(BAD_END, 20.0), content_type="text/csv")] if corrected else []
    replay.add(DOWNLOAD, bad, *fixed, match={"path": interval_file_path(BAD_END)})
    publish(replay, datetime(2026, 11, 27, 10, 5, tzinfo=UTC), datetime(2026, 11, 27, 11, 0, tzinfo=UTC))


def test_a_bad_iso_batch_reaches_neither_clickhouse_nor_curated(
    replay: ReplayServer, sink: ClickHouseSink, lake: Lake
) -> None:
    _serve_with_one_bad_interval(replay)
    synth = SyntheticISO(nodes=3, settings=lake.settings, chunk="5m")
    synth.window_step = timedelta(minutes=5)  # polled like an ISO: one 5-minute interval per window
    runner = RealtimeRunner(
        {"SPP": spp(replay), "SYNTH": synth},
        sink,
        lake=lake,
        lake_copy=True,
        clock=FakeClock(T),
        initial_lookback=timedelta(hours=1),
    )
    reports = {r.iso: r for r in runner.run_once()}

    spp_report = reports["SPP"]
    assert spp_report.error is not None
    assert {"range.lmp", "unique.primary_key"} <= set(spp_report.failed_expectations)
    # Nothing of the failed window reached ClickHouse or curated; the other ISO kept flowing.
    stored = _stored(sink)
    assert "SPP" not in stored
    assert stored["SYNTH"] == 3 * 12
    curated = lake.table("rt_lmp").scan().to_arrow()
    assert set(curated.column("iso").to_pylist()) == {"SYNTH"}
    # The bad batch is quarantined, byte-exact as the gate saw it, and counted.
    kept = pq.read_table(spp_report.quarantine.removeprefix("file://"))
    assert kept.num_rows == 11 * 2 + 3 and max(kept.column("lmp").to_pylist()) == 50000.0
    assert runner.registry.get_sample_value("hmco_rt_gate_failures_total", {"iso": "SPP"}) == 1.0
    assert runner.registry.get_sample_value("hmco_rt_gate_failures_total", {"iso": "SYNTH"}) is None
    # ... and visible in the lag: SPP has nothing stored, SYNTH is current.
    lag = runner.lag()
    assert lag["SPP"] == float("inf") and lag["SYNTH"] < 10 * 60


def test_once_the_iso_sends_good_data_the_window_flows(
    replay: ReplayServer, sink: ClickHouseSink, lake: Lake
) -> None:
    _serve_with_one_bad_interval(replay, corrected=True)
    clock = FakeClock(T)
    runner = RealtimeRunner([spp(replay)], sink, lake=lake, clock=clock, initial_lookback=timedelta(hours=1))
    (first,) = runner.run_once()
    assert first.error is not None and _stored(sink) == {}
    clock.advance(300)
    (second,) = runner.run_once()
    assert second.error is None and second.rows > 0
    top = sink.client.query(f"SELECT max(lmp), count() - uniqExact(node, ts) FROM {sink.layout.view}")
    assert top.result_rows[0][0] < 1000 and top.result_rows[0][1] == 0


def test_turning_the_gate_off_is_explicit_and_loud(
    replay: ReplayServer, sink: ClickHouseSink, lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    _serve_with_one_bad_interval(replay)
    runner = RealtimeRunner(
        [spp(replay)], sink, lake=lake, gate=False, clock=FakeClock(T), initial_lookback=timedelta(hours=1)
    )
    with caplog.at_level("WARNING", logger="hmco"):
        (report,) = runner.run_once()
    assert report.error is None
    assert any("quality gate is OFF" in r.getMessage() for r in caplog.records)


# --- two runners, one interval: the newer publication wins -------------------------------------------------


def _serve_revision(replay: ReplayServer, prefix: str, price: float, published: datetime) -> None:
    """SPP's 10:05-11:00 interval files under ``/<prefix>``, stamped with a ``Last-Modified`` header."""
    stamp = published.strftime("%a, %d %b %Y %H:%M:%S GMT")
    end = datetime(2026, 11, 27, 10, 5, tzinfo=UTC)
    while end <= datetime(2026, 11, 27, 11, 0, tzinfo=UTC):
        replay.add(
            f"/{prefix}/download/rtbm-lmp-by-location",
            Reply(200, spp_csv(end, price), headers={"Last-Modified": stamp}, content_type="text/csv"),
            match={"path": interval_file_path(end)},
        )
        end += timedelta(minutes=5)


@pytest.mark.parametrize("first", ["older", "newer"])
def test_two_runners_sending_the_same_interval_resolve_to_the_newer_publication(
    replay: ReplayServer, sink: ClickHouseSink, lake: Lake, first: str
) -> None:
    from hmco.sources.http import HttpOptions
    from hmco.sources.spp import SPP
    from tests.test_clickhouse_revisions import assert_rollups_exact

    _serve_revision(replay, "older", 20.0, datetime(2026, 11, 27, 11, 1, tzinfo=UTC))
    _serve_revision(replay, "newer", 35.0, datetime(2026, 11, 27, 11, 2, tzinfo=UTC))
    http = HttpOptions(min_interval=0.0, sleep=lambda s: None, clock=lambda: 0.0)
    runners = {
        name: RealtimeRunner(
            [SPP(settings=chdb_settings(), base_url=f"{replay.url}/{name}", http=http)],
            sink,
            lake=lake,
            clock=FakeClock(T),
            initial_lookback=timedelta(hours=1),
            overlap=timedelta(hours=1),  # each poll re-reads the last hour: revisions are picked up
        )
        for name in ("older", "newer")
    }
    order = ["older", "newer"] if first == "older" else ["newer", "older"]
    for name in order:
        (report,) = runners[name].run_once()
        assert report.error is None and report.rows == 24
    rows = sink.client.query(
        f"SELECT min(lmp), max(published_at), count() FROM {sink.layout.view}"
    ).result_rows
    low, published, count = rows[0]
    assert low == 35.0  # every row is the newer revision, whichever runner wrote last
    assert published.replace(tzinfo=UTC) == datetime(2026, 11, 27, 11, 2, tzinfo=UTC)
    assert count == 24
    assert_rollups_exact(sink.client, sink.layout)
