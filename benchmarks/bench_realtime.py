"""Interval-to-queryable on the real-time path, quality gate on and off, for CAISO, MISO and SPP.

    .venv/bin/pytest benchmarks/bench_realtime.py --benchmark-only -p no:cacheprovider
    HMCO_BENCH_RT_ROUNDS=3 .venv/bin/pytest benchmarks/bench_realtime.py --benchmark-only ...   # quick

Each ISO's real client reads its feed in the wire format from the loopback replay server
(``tests/support/replay.py``); the real :class:`~hmco.compose.realtime.RealtimeRunner` polls it with its
default gate (the Great Expectations ``rt_lmp`` suite) or with ``gate=False``, archives every payload
in a temporary local lake and writes ClickHouse (chdb, in process). One round: a new 5-minute interval
appears on the feed (the route is added) → ``runner.run_once(now, force=True)`` → ``SELECT count() FROM
rt_lmp WHERE iso = … AND interval_end = …`` (the deduplicated view) returns the full node count. The
round's wall time is the latency. Payloads are built before the round (untimed: that is the ISO's work).

Feeds (node counts are this file's choice; the reference gives no node counts, see README):

* CAISO: OASIS ``SingleZip`` PRC_INTVL_LMP v3, ``grp_type=ALL``: one zipped long-form CSV per request,
  5 rows (LMP, MCE, MCC, MCL, MGHG) per node; the request is exactly the runner's window.
* MISO: the public ``GetRealTimeFiveMinExPost/Rolling`` JSON, which holds *every* interval of the
  market day so far: the runner downloads and parses 28–30 MB to get one new interval (reference §6.1:
  Rolling ~16–38 MB, Previous ~47 MB, i.e. ~2,500 CPNODEs at ~64 bytes a row).
* SPP: one ``RTBM-LMP-SL`` interval CSV (post-2026 header with ``BAA``) per interval.

Time is a fixed fake clock (2026-11-27 from 20:03 UTC, 15:03 EST: MISO's Rolling feed then holds ~180
intervals) that moves 5 minutes per round; HTTP pacing sleeps are no-ops. Not timed: building the
sources, GX's import and suite compile, the first poll on the empty table and one steady-state round.
``extra_info`` holds the median and max latency (and every round's), rows per interval, payload bytes
per poll, the median time of the gate's own ``check`` (the runner's gate, wrapped only to time it) and
the 600 s SLA. Nothing about timing is asserted; every round asserts that the interval's rows are all
visible. ``test_interval_to_queryable`` runs one ISO per runner; ``test_interval_to_queryable_all_isos``
one runner polling all three (as deployed). Knobs: ``HMCO_BENCH_RT_ROUNDS`` (10),
``HMCO_BENCH_RT_{CAISO,MISO,SPP}_NODES`` (1,500, 2,500, 1,000).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.payloads.caiso import build_fixtures as oasis  # conftest.py puts the repo on sys.path
from tests.support.chdb import chdb_settings, unique_database
from tests.support.replay import ReplayServer, Reply

from hmco.clickhouse import ClickHouseLayout, connect_clickhouse, ensure_schema
from hmco.compose.realtime import RealtimeRunner
from hmco.config import Settings
from hmco.lake import Lake
from hmco.sinks.clickhouse import ClickHouseSink
from hmco.sources.base import Source
from hmco.sources.caiso import CAISO
from hmco.sources.http import HttpOptions
from hmco.sources.miso import EST, MISO, feed_day
from hmco.sources.spp import CENTRAL, SPP, interval_file_path
from hmco.windows import Window

ROUNDS = int(os.environ.get("HMCO_BENCH_RT_ROUNDS", "10"))
NODES = {
    "CAISO": int(os.environ.get("HMCO_BENCH_RT_CAISO_NODES", "1500")),
    "MISO": int(os.environ.get("HMCO_BENCH_RT_MISO_NODES", "2500")),
    "SPP": int(os.environ.get("HMCO_BENCH_RT_SPP_NODES", "1000")),
}
ISOS = tuple(NODES)
SLA_S = 600
STEP = timedelta(minutes=5)
T0 = datetime(2026, 11, 27, 20, 3, tzinfo=UTC)  # 15:03 EST, 14:03 CST, 12:03 PST
HTTP = HttpOptions(min_interval=0.0, sleep=lambda s: None, clock=lambda: 0.0)

Route = tuple[str, Reply, dict[str, str], bool]  # path, reply, query match, repeat_last


class Clock:
    """The runner's and MISO's "now": fixed, moved only by the benchmark."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Feed:
    """One ISO's loopback feed and the real client reading it."""

    iso: str
    source: Source

    def __init__(self, replay: ReplayServer, settings: Settings, clock: Clock) -> None:
        self.replay, self.clock = replay, clock
        self.nodes = NODES[self.iso]
        self.rng = np.random.default_rng(sum(map(ord, self.iso)))
        self.served_to: datetime | None = None  # end of the newest interval on the feed
        self.last_bytes = 0

    def latest_end(self) -> datetime:
        return self.source.latest_window(self.clock.now).end

    def build(self, end: datetime) -> list[Route]:
        """Payloads making every interval up to ``end`` available (untimed: the ISO's work)."""
        first = self.source.latest_window(self.clock.now).start if self.served_to is None else self.served_to
        routes = self._routes(first, end)
        self.served_to = end
        self.last_bytes = sum(len(r[1].body) for r in routes)
        return routes

    def appear(self, routes: list[Route]) -> None:
        for path, reply, match, repeat_last in routes:
            self.replay.add(path, reply, match=match, repeat_last=repeat_last)

    def _routes(self, first: datetime, end: datetime) -> list[Route]:
        raise NotImplementedError

    def _prices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(energy, congestion, loss) per node for one interval."""
        energy = float(self.rng.normal(32.0, 6.0))
        congestion = np.round(self.rng.normal(0.0, 4.0, self.nodes), 4)
        loss = np.round(self.rng.normal(0.0, 0.8, self.nodes), 4)
        return np.full(self.nodes, round(energy, 4)), congestion, loss


class CaisoFeed(Feed):
    """OASIS ``SingleZip`` answers, one per request the client makes (``grp_type=ALL``)."""

    iso = "CAISO"
    PATH = "/oasisapi/SingleZip"

    def __init__(self, replay: ReplayServer, settings: Settings, clock: Clock) -> None:
        super().__init__(replay, settings, clock)
        hubs = ["TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "TH_ZP26_GEN-APND", "DLAP_PGAE-APND", "DLAP_SCE-APND"]
        rest = [f"NODE{i:05d}_7_N001" if i % 3 else f"GEN{i:05d}_7_B1-APND" for i in range(self.nodes)]
        self.names = (hubs + rest)[: self.nodes]
        self.caiso = CAISO(settings=settings, base_url=replay.url + "/oasisapi", http=HTTP, nodes="ALL")
        self.source = self.caiso

    def _routes(self, first: datetime, end: datetime) -> list[Route]:
        routes: list[Route] = []
        for chunk, params in self.caiso.requests_for(Window(first, end)):
            starts = oasis.five_minute_starts(chunk.start, chunk.end)
            prices = {i: self._prices() for i in range(len(starts))}

            def value_of(n: int, i: int, prices: Any = prices) -> dict[str, float]:
                energy, congestion, loss = (float(a[n]) for a in prices[i])
                return {"LMP": round(energy + congestion + loss, 5), "MCE": energy, "MCC": congestion,
                        "MCL": loss, "MGHG": 0.0}  # fmt: skip

            rows = oasis.long_rows(
                starts, STEP, self.names, market_run_id="RTM", grp_type="ALL", value_of=value_of
            )
            name = f"{chunk.start:%Y%m%d}_{chunk.end:%Y%m%d}_PRC_INTVL_LMP_RTM_{chunk.end:%Y%m%d_%H_%M}_03_v3.csv"
            body = oasis.zip_bytes({name: oasis.to_csv(rows, oasis.INTVL_HEADER)})
            reply = Reply(200, body, content_type="application/x-zip-compressed")
            routes.append((self.PATH, reply, dict(params), True))
        return routes


class MisoFeed(Feed):
    """The ``Rolling`` feed: the whole market day so far, re-served (grown) at every new interval."""

    iso = "MISO"
    PATH = "/api/MarketPricing/GetRealTimeFiveMinExPost/Rolling"
    HUBS = ("ARKANSAS.HUB", "ILLINOIS.HUB", "INDIANA.HUB", "LOUISIANA.HUB", "MICHIGAN.HUB", "MINN.HUB",
            "MS.HUB", "TEXAS.HUB")  # fmt: skip

    def __init__(self, replay: ReplayServer, settings: Settings, clock: Clock) -> None:
        super().__init__(replay, settings, clock)
        areas = ("AECI", "ALTW", "AMIL", "CONS", "DECO", "EES", "MEC", "NSP", "OTP", "WEC")
        rest = [f"{areas[i % len(areas)]}.NODE{i:05d}" for i in range(self.nodes)]
        self.names = (list(self.HUBS) + rest)[: self.nodes]
        self.chunks: list[bytes] = []  # one compact JSON row block per interval of the market day
        self.day_end: datetime | None = None
        self.source = MISO(settings=settings, base_url=replay.url + "/api", http=HTTP, now=clock)

    def _routes(self, first: datetime, end: datetime) -> list[Route]:
        if self.day_end is None:  # the feed starts at the market day's first interval
            day = feed_day(first)
            self.day_end = datetime(day.year, day.month, day.day, tzinfo=EST).astimezone(UTC) - STEP
        while self.day_end < end:  # INTERVAL is the interval END, naive EST
            stamp = f"{(self.day_end + STEP).astimezone(EST):%Y-%m-%dT%H:%M:%S}"
            energy, congestion, loss = self._prices()
            lmp = energy + congestion + loss
            self.chunks.append(
                ",".join(
                    f'["{stamp}","{n}","{p:.2f}","{ml:.2f}","{mc:.2f}"]'
                    for n, p, ml, mc in zip(self.names, lmp, loss, congestion, strict=True)
                ).encode()
            )
            self.day_end += STEP
        body = b'{"headers":["INTERVAL","CPNODE","LMP","MLC","MCC"],"data":[' + b",".join(self.chunks) + b"]}"
        # served once: the next interval's (grown) document replaces it
        return [(self.PATH, Reply(200, body), {}, False)]


class SppFeed(Feed):
    """One RTBM-LMP-SL CSV per interval, at its file-browser path."""

    iso = "SPP"
    PATH = "/file-browser-api/download/rtbm-lmp-by-location"
    HEADER = "Interval,GMTIntervalEnd,Settlement Location,Pnode,LMP,MLC,MCC,MEC,BAA\n"

    def __init__(self, replay: ReplayServer, settings: Settings, clock: Clock) -> None:
        super().__init__(replay, settings, clock)
        hubs = ["SPPNORTH_HUB", "SPPSOUTH_HUB", "AECI", "ERCOTE", "MISO"]
        rest = [f"SL{i:04d}_{'LD' if i % 4 else 'UNIT1'}" for i in range(self.nodes)]
        self.names = (hubs + rest)[: self.nodes]
        self.baa = ["SWPW" if i % 5 == 4 else "SPP" for i in range(self.nodes)]
        self.source = SPP(settings=settings, base_url=replay.url + "/file-browser-api", http=HTTP)

    def _routes(self, first: datetime, end: datetime) -> list[Route]:
        routes: list[Route] = []
        interval_end = first + STEP
        while interval_end <= end:
            when = f"{interval_end.astimezone(CENTRAL):%m/%d/%Y %H:%M:%S},{interval_end:%m/%d/%Y %H:%M:%S}"
            mec, mcc, mlc = self._prices()
            lines = [
                f"{when},{n},{n[:10]},{e + c + lo:.4f},{lo:.4f},{c:.4f},{e:.4f},{b}\n"
                for n, e, c, lo, b in zip(self.names, mec, mcc, mlc, self.baa, strict=True)
            ]
            reply = Reply(200, (self.HEADER + "".join(lines)).encode(), content_type="text/csv")
            routes.append((self.PATH, reply, {"path": interval_file_path(interval_end)}, True))
            interval_end += STEP
        return routes


FEEDS: dict[str, type[Feed]] = {"CAISO": CaisoFeed, "MISO": MisoFeed, "SPP": SppFeed}


class TimedGate:
    """The runner's own gate, unchanged, with the wall time of each ``check`` recorded (its share of a round)."""

    def __init__(self, inner: Any, seconds: list[float]) -> None:
        self.inner, self.seconds = inner, seconds
        self.suite = inner.suite

    def check(self, table: Any, dataset: Any, window: Window) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.check(table, dataset, window)
        finally:
            self.seconds.append(time.perf_counter() - started)


@pytest.fixture
def store() -> Iterator[ClickHouseSink]:
    client = connect_clickhouse(chdb_settings())
    layout = ClickHouseLayout.of("rt_lmp", database=unique_database("benchrt"))
    ensure_schema(client, layout)
    yield ClickHouseSink(client, layout)
    client.command(f"DROP DATABASE IF EXISTS {layout.database} SYNC")


def _visible(sink: ClickHouseSink, iso: str, end: datetime) -> int:
    return int(
        sink.client.query(
            f"SELECT count() FROM {sink.layout.view} WHERE iso = {{iso:String}} "
            f"AND interval_end = {{e:DateTime64(6, 'UTC')}}",
            parameters={"iso": iso, "e": end.astimezone(UTC).replace(tzinfo=None)},
        ).result_rows[0][0]
    )


def _measure(benchmark: Any, isos: tuple[str, ...], gate: bool, sink: ClickHouseSink, lake: Lake) -> None:
    clock = Clock(T0 - STEP)  # next_interval() moves it to T0 for the first poll
    latencies: list[float] = []
    gate_seconds: dict[str, list[float]] = {iso: [] for iso in isos}
    with ReplayServer() as replay:
        feeds = {iso: FEEDS[iso](replay, lake.settings, clock) for iso in isos}
        runner = RealtimeRunner(
            [f.source for f in feeds.values()],
            sink,
            lake=lake,
            clock=clock,
            **({} if gate else {"gate": False}),  # gate on = the runner's default: the dataset's suite
        )
        suite = None
        for iso, processor in runner.processors.items():
            assert processor.gated == gate
            if processor.gate is not None:
                suite = processor.gate.suite
                processor.gate = TimedGate(processor.gate, gate_seconds[iso])

        def next_interval() -> tuple[tuple[Any, ...], dict[str, Any]]:
            """Untimed: the clock moves to the next interval and each ISO prepares its payload."""
            clock.now += STEP
            ends = {iso: f.latest_end() for iso, f in feeds.items()}
            return (ends, {iso: f.build(ends[iso]) for iso, f in feeds.items()}), {}

        def interval_to_queryable(ends: dict[str, datetime], routes: dict[str, list[Route]]) -> None:
            appeared = time.perf_counter()
            for iso, feed in feeds.items():
                feed.appear(routes[iso])
            reports = runner.run_once(clock.now, force=True)
            visible = {iso: _visible(sink, iso, end) for iso, end in ends.items()}
            latencies.append(time.perf_counter() - appeared)
            assert [(r.iso, r.error) for r in reports] == [(iso, None) for iso in isos], reports
            assert visible == {iso: NODES[iso] for iso in isos}, (visible, ends)

        # Warm-up, not timed: GX import + suite compile (in the runner's constructor and first check),
        # the first poll of an empty table (CAISO reads its 30-minute lookback), one steady-state round.
        for _ in range(2):
            args, _kw = next_interval()
            interval_to_queryable(*args)
        latencies.clear()
        for seconds in gate_seconds.values():
            seconds.clear()
        benchmark.pedantic(interval_to_queryable, setup=next_interval, rounds=ROUNDS, iterations=1)

    benchmark.extra_info.update(
        isos="+".join(isos),
        gate="default rt_lmp suite" if gate else "off",
        gate_expectations=len(suite) if suite is not None else 0,
        rows_per_interval=sum(NODES[iso] for iso in isos),
        nodes={iso: NODES[iso] for iso in isos},
        payload_mb_per_poll={iso: round(f.last_bytes / 1e6, 2) for iso, f in feeds.items()},
        rounds=len(latencies),
        latency_s_median=round(statistics.median(latencies), 4),
        latency_s_max=round(max(latencies), 4),
        latency_s_min=round(min(latencies), 4),
        latencies_s=[round(x, 3) for x in latencies],
        gate_check_s_median={iso: round(statistics.median(s), 4) for iso, s in gate_seconds.items() if s},
        sla_s=SLA_S,
    )


@pytest.mark.parametrize("gate", [True, False], ids=["gate", "no_gate"])
@pytest.mark.parametrize("iso", ISOS)
def test_interval_to_queryable(
    benchmark: Any, iso: str, gate: bool, store: ClickHouseSink, tmp_path: Path
) -> None:
    """One ISO per runner: the latency of that ISO's new interval alone."""
    benchmark.group = "rt interval-to-queryable"
    _measure(benchmark, (iso,), gate, store, Lake(Settings.load(home=tmp_path / "hmco")))


@pytest.mark.parametrize("gate", [True, False], ids=["gate", "no_gate"])
def test_interval_to_queryable_all_isos(
    benchmark: Any, gate: bool, store: ClickHouseSink, tmp_path: Path
) -> None:
    """One runner polling the three ISOs, as deployed: a new interval on every feed, one poll, until all
    three are visible (the ISOs are polled one after the other, so this is the last one's latency)."""
    benchmark.group = "rt interval-to-queryable"
    _measure(benchmark, ISOS, gate, store, Lake(Settings.load(home=tmp_path / "hmco")))
