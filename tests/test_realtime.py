"""The real-time runner end to end: SPP's real client over loopback HTTP -> ClickHouse (chdb), fake clock."""

from __future__ import annotations

import math
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.compose.realtime import RealtimeRunner, install_stop_signals
from hmco.config import Settings
from hmco.lake import Lake
from hmco.schemas import Dataset
from hmco.sinks.base import WriteResult
from hmco.sinks.clickhouse import ClickHouseSink
from hmco.sinks.raw import RawArchive
from hmco.sources.http import HttpOptions
from hmco.sources.spp import SPP, interval_file_path
from hmco.windows import Window
from tests.support.chdb import chdb_settings, unique_database
from tests.support.replay import ReplayServer, Reply

DOWNLOAD = "/file-browser-api/download/rtbm-lmp-by-location"
NODES = ("SPPNORTH_HUB", "SPPSOUTH_HUB")
HEADER = "Interval,GMTIntervalEnd,Settlement Location,Pnode,LMP,MLC,MCC,MEC,BAA\n"


def spp_csv(end: datetime, price: float) -> bytes:
    """One RTBM-LMP-SL interval file as SPP publishes it (GMT end + local Central time)."""
    local = end.astimezone(SPP_CENTRAL)
    rows = [
        f"{local:%m/%d/%Y %H:%M:%S},{end:%m/%d/%Y %H:%M:%S},{node},{node[:10]},"
        f"{price + i:.4f},-0.1000,0.5000,{price + i + 0.4 - 0.5:.4f},SPP\n"
        for i, node in enumerate(NODES)
    ]
    return (HEADER + "".join(rows)).encode()


from hmco.sources.spp import CENTRAL as SPP_CENTRAL  # noqa: E402


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingSink:
    name = "recording"

    def __init__(self) -> None:
        self.batches: list[tuple[str, Window, int]] = []

    def write(
        self,
        table: pa.Table,
        *,
        dataset: Dataset,
        window: Window,
        batch_id: str,
        scope: object = None,
        fingerprint: str | None = None,
    ) -> WriteResult:
        self.batches.append((batch_id, window, table.num_rows))
        return WriteResult(self.name, "memory", table.num_rows)


def publish(replay: ReplayServer, first_end: datetime, last_end: datetime, price: float = 20.0) -> None:
    """Serve SPP interval files for every interval end in [first_end, last_end]."""
    end = first_end
    while end <= last_end:
        replay.add(
            DOWNLOAD,
            Reply(200, spp_csv(end, price), content_type="text/csv"),
            match={"path": interval_file_path(end)},
        )
        end += timedelta(minutes=5)


@pytest.fixture
def layout() -> ClickHouseLayout:
    lay = ClickHouseLayout.of("rt_lmp", database=unique_database("rt"))
    ensure_schema(connect_clickhouse(chdb_settings()), lay)
    return lay


@pytest.fixture
def sink(layout: ClickHouseLayout) -> ClickHouseSink:
    return ClickHouseSink(connect_clickhouse(chdb_settings()), layout)


def spp(replay: ReplayServer, **kwargs: Any) -> SPP:
    return SPP(
        settings=chdb_settings(),
        base_url=replay.url + "/file-browser-api",
        http=HttpOptions(min_interval=0.0, sleep=lambda s: None, clock=lambda: 0.0),
        **kwargs,
    )


def counts(sink: ClickHouseSink) -> tuple[int, int, int]:
    """(rows stored, rows seen through the FINAL view, distinct intervals)."""
    c, lay = sink.client, sink.layout
    raw = c.query(f"SELECT count() FROM {lay.store}").result_rows[0][0]
    final = c.query(f"SELECT count(), uniqExact(ts) FROM {lay.view}").result_rows[0]
    return raw, final[0], final[1]


T = datetime(2026, 11, 27, 11, 3, tzinfo=UTC)  # SPP's latest window at T is [10:55, 11:00)


def test_first_poll_fetches_initial_lookback(replay: ReplayServer, sink: ClickHouseSink) -> None:
    publish(replay, datetime(2026, 11, 27, 10, 5, tzinfo=UTC), datetime(2026, 11, 27, 11, 0, tzinfo=UTC))
    runner = RealtimeRunner([spp(replay)], sink, clock=FakeClock(T), initial_lookback=timedelta(hours=1))
    (report,) = runner.run_once()
    assert (report.iso, report.rows, report.payloads, report.error) == ("SPP", 24, 12, None)
    assert report.windows == [
        Window(datetime(2026, 11, 27, 10, tzinfo=UTC), datetime(2026, 11, 27, 11, tzinfo=UTC))
    ]
    assert counts(sink) == (24, 24, 12)


def test_catch_up_after_outage_fills_every_interval_once(replay: ReplayServer, sink: ClickHouseSink) -> None:
    publish(replay, datetime(2026, 11, 27, 10, 5, tzinfo=UTC), datetime(2026, 11, 27, 13, 0, tzinfo=UTC))
    clock = FakeClock(T)
    runner = RealtimeRunner([spp(replay)], sink, clock=clock, initial_lookback=timedelta(hours=1))
    runner.run_once()
    clock.now = T + timedelta(hours=2)  # 2-hour outage: 24 intervals missed
    (report,) = runner.run_once()
    assert report.rows == 48
    assert report.windows == [
        Window(datetime(2026, 11, 27, 11, tzinfo=UTC), datetime(2026, 11, 27, 13, tzinfo=UTC))
    ]
    assert counts(sink) == (72, 72, 36)
    assert runner.lag() == {"SPP": 180.0}


def test_repeated_and_overlapping_polls_do_not_duplicate(replay: ReplayServer, sink: ClickHouseSink) -> None:
    publish(replay, datetime(2026, 11, 27, 10, 5, tzinfo=UTC), datetime(2026, 11, 27, 11, 0, tzinfo=UTC))
    runner = RealtimeRunner(
        [spp(replay)],
        sink,
        clock=FakeClock(T),
        initial_lookback=timedelta(hours=1),
        overlap=timedelta(minutes=15),
    )
    runner.run_once()
    (again,) = runner.run_once(force=True)
    assert (again.rows, again.payloads) == (6, 3)  # the overlap was re-fetched (a new, smaller batch) ...
    assert counts(sink)[1:] == (24, 12)  # ... and readers see every interval once
    sink.client.command(f"OPTIMIZE TABLE {sink.layout.store} FINAL")
    assert counts(sink) == (24, 24, 12)  # merges collapse the re-fetched copies


def test_unpublished_interval_is_fetched_on_a_later_poll(replay: ReplayServer, sink: ClickHouseSink) -> None:
    publish(replay, datetime(2026, 11, 27, 10, 5, tzinfo=UTC), datetime(2026, 11, 27, 10, 50, tzinfo=UTC))
    clock = FakeClock(T)
    runner = RealtimeRunner([spp(replay)], sink, clock=clock, initial_lookback=timedelta(hours=1))
    (first,) = runner.run_once()
    assert first.rows == 20
    assert runner.lag() == {"SPP": 13 * 60.0}
    publish(replay, datetime(2026, 11, 27, 10, 55, tzinfo=UTC), datetime(2026, 11, 27, 11, 5, tzinfo=UTC))
    clock.advance(300)
    (second,) = runner.run_once()
    assert second.windows == [
        Window(datetime(2026, 11, 27, 10, 50, tzinfo=UTC), datetime(2026, 11, 27, 11, 5, tzinfo=UTC))
    ]
    assert (second.rows, second.payloads) == (6, 3)
    assert counts(sink) == (26, 26, 13)


def test_lag_is_exported_as_prometheus_gauge(replay: ReplayServer, sink: ClickHouseSink) -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    publish(replay, datetime(2026, 11, 27, 10, 5, tzinfo=UTC), datetime(2026, 11, 27, 11, 0, tzinfo=UTC))
    runner = RealtimeRunner(
        [spp(replay)], sink, clock=FakeClock(T), registry=registry, initial_lookback=timedelta(hours=1)
    )
    runner.run_once()
    assert registry.get_sample_value("hmco_rt_lag_seconds", {"iso": "SPP"}) == 180.0
    assert registry.get_sample_value("hmco_rt_rows_written_total", {"iso": "SPP"}) == 24.0


def test_lag_is_infinite_for_an_iso_without_data(replay: ReplayServer, sink: ClickHouseSink) -> None:
    runner = RealtimeRunner([spp(replay)], sink, clock=FakeClock(T))
    assert runner.lag() == {"SPP": math.inf}


def test_failing_iso_is_reported_and_others_still_written(replay: ReplayServer, sink: ClickHouseSink) -> None:
    publish(replay, datetime(2026, 11, 27, 10, 5, tzinfo=UTC), datetime(2026, 11, 27, 11, 0, tzinfo=UTC))
    replay.add("/broken/download/rtbm-lmp-by-location", Reply(503, b"down"))
    broken = SPP(
        settings=chdb_settings(),
        base_url=replay.url + "/broken",
        http=HttpOptions(min_interval=0.0, max_attempts=2, sleep=lambda s: None, clock=lambda: 0.0),
    )
    runner = RealtimeRunner(
        {"SPP": spp(replay), "MISO": broken}, sink, clock=FakeClock(T), initial_lookback=timedelta(hours=1)
    )
    reports = {r.iso: r for r in runner.run_once()}
    assert reports["SPP"].rows == 24
    assert reports["MISO"].error is not None and reports["MISO"].error.startswith("SourceUnavailable")
    assert reports["MISO"].rows == 0
    assert runner.registry.get_sample_value("hmco_rt_poll_errors_total", {"iso": "MISO"}) == 1.0


def test_payloads_archived_and_extra_sinks_written(
    replay: ReplayServer, sink: ClickHouseSink, tmp_path: Path
) -> None:
    publish(replay, datetime(2026, 11, 27, 10, 35, tzinfo=UTC), datetime(2026, 11, 27, 11, 0, tzinfo=UTC))
    lake = Lake(Settings.load(home=tmp_path / "hmco"))
    archive, extra = RawArchive(lake), RecordingSink()
    runner = RealtimeRunner(
        [spp(replay)],
        sink,
        lake=lake,
        sinks=[extra],
        archive=archive,
        clock=FakeClock(T),
        initial_lookback=timedelta(minutes=30),
    )
    runner.run_once()
    archived = sorted(archive.describe(k)["meta"]["path"] for k in archive.keys("spp"))
    assert archived == [
        interval_file_path(datetime(2026, 11, 27, 10, 35, tzinfo=UTC) + timedelta(minutes=5 * i))
        for i in range(6)
    ]
    assert extra.batches == [
        (
            "SPP:20261127T103000-20261127T110000",
            Window(datetime(2026, 11, 27, 10, 30, tzinfo=UTC), datetime(2026, 11, 27, 11, tzinfo=UTC)),
            12,
        )
    ]


def test_run_forever_polls_at_cadence_until_stopped(replay: ReplayServer, sink: ClickHouseSink) -> None:
    publish(replay, datetime(2026, 11, 27, 10, 5, tzinfo=UTC), datetime(2026, 11, 27, 11, 30, tzinfo=UTC))
    clock = FakeClock(T)
    stop = threading.Event()
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)
        if len(waits) == 3:
            stop.set()

    runner = RealtimeRunner([spp(replay)], sink, clock=clock, initial_lookback=timedelta(hours=1))
    runner.run_forever(stop, wait=wait)
    assert waits == [300.0, 300.0, 300.0]
    assert counts(sink)[2] == 14  # polls at 11:03, 11:08, 11:13 (then stopped): intervals 10:00 .. 11:05
    assert runner.lag() == {"SPP": 480.0}  # the clock stands at 11:18; newest interval ends 11:10


def test_sigterm_sets_the_stop_event() -> None:
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        install_stop_signals(stop)
        signal.raise_signal(signal.SIGTERM)
        assert stop.is_set()
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def test_outage_longer_than_max_gap_catches_up_the_last_max_gap(
    replay: ReplayServer, sink: ClickHouseSink
) -> None:
    publish(replay, datetime(2026, 11, 27, 6, 5, tzinfo=UTC), datetime(2026, 11, 27, 11, 0, tzinfo=UTC))
    clock = FakeClock(datetime(2026, 11, 27, 7, 3, tzinfo=UTC))
    runner = RealtimeRunner(
        [spp(replay)],
        sink,
        clock=clock,
        initial_lookback=timedelta(hours=1),
        max_gap=timedelta(hours=2, minutes=3),
    )
    (first,) = runner.run_once()
    assert first.newest == datetime(2026, 11, 27, 7, tzinfo=UTC)
    clock.now = T  # 4 hours later: the newest stored interval is older than max_gap
    (report,) = runner.run_once()
    assert report.newest is not None and report.error is None
    assert report.windows == [
        Window(datetime(2026, 11, 27, 9, tzinfo=UTC), datetime(2026, 11, 27, 11, tzinfo=UTC))
    ]
    assert report.rows == 48
    assert runner.lag() == {"SPP": 180.0}


def test_unreachable_store_is_reported_and_retried_at_cadence_not_in_a_tight_loop(
    replay: ReplayServer,
) -> None:
    gone = ClickHouseLayout.of("rt_lmp", database=unique_database("gone"))  # never created
    sink = ClickHouseSink(connect_clickhouse(chdb_settings()), gone)
    clock = FakeClock(T)
    runner = RealtimeRunner([spp(replay)], sink, clock=clock)
    (report,) = runner.run_once()
    assert report.iso == "SPP" and report.rows == 0
    assert report.error is not None and report.error.startswith("DatabaseError")
    assert runner.registry.get_sample_value("hmco_rt_poll_errors_total", {"iso": "SPP"}) == 1.0
    stop = threading.Event()
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)
        if len(waits) == 3:
            stop.set()

    runner.run_forever(stop, wait=wait)
    assert waits == [300.0, 300.0, 300.0]
    assert replay.requests == []
