"""``hmco serve``'s own cost (CPU and RSS of the process, idle and polling three ISOs) and breach-to-alert time.

    HMCO_BENCH_SERVE=1 .venv/bin/pytest benchmarks/bench_serve.py --benchmark-only -p no:cacheprovider -s
    HMCO_BENCH_SERVE_IDLE_S=30 HMCO_BENCH_SERVE_MINUTES=6 HMCO_BENCH_SERVE_BREACHES=2 ...   # quicker

Every figure is taken from a real ``hmco serve`` *subprocess* (the installed ``hmco`` entry point) with its
own temporary ``HMCO_HOME`` (local profile: SQLite catalog, file warehouse, chdb under the home) and no
network but loopback. CPU is ``utime + stime`` of ``/proc/<pid>/stat`` (all threads of the process;
``serve`` has no child processes), memory is ``VmRSS`` (sampled every second) and ``VmHWM`` (the kernel's
peak) of ``/proc/<pid>/status``. CPU % is of one core.

* ``test_serve_idle``: nothing is due during the measured span. ``upkeep`` runs the catalogue's weekly
  upkeep and backup jobs only (they wait for their next fire, Sunday or a daily hour: the run checks that
  none falls in the span); ``upkeep+watch`` adds the 1-minute ``freshness-watch``, which fires every
  minute, reads the catalog and the backup records. Start-up and ``HMCO_BENCH_SERVE_SETTLE_S`` (20 s) are not measured; the span is
  ``HMCO_BENCH_SERVE_IDLE_S`` (120 s).
* ``test_serve_polling``: ``--job caiso-rt-lmp --job miso-rt-lmp --job spp-rt-lmp`` with spec overrides
  pointing ``source.base_url`` at loopback replay servers (one per ISO, as the real hosts are distinct:
  hmco paces requests per host, process-wide, and CAISO's 5 s rule would otherwise pace all three ISOs),
  whose feeds come from ``bench_realtime.py``
  (imported, same wire formats and node counts, ``HMCO_BENCH_RT_*_NODES``; CAISO ``nodes: ALL``). The
  feeds follow the real clock: the interval ending at E appears on every feed at wall time E (an ISO
  that publishes at once); ``serve`` (real clock, cron ``*/5``, each client's publication lag of 3-5 min)
  asks for it at the first poll after E + lag. The start is placed 10-90 s after a 5-minute boundary
  so the catch-up poll asks for exactly the interval built for it. Measured: whole 5-minute cadences
  from 15 s before the first cron poll (``HMCO_BENCH_SERVE_MINUTES``, 11: two cadences), one poll
  cycle of the three ISOs each; the start-up (launch → catch-up polls done) is reported apart. Rows and
  lag come from ``/metrics`` (``hmco_rt_rows_written_total``, ``hmco_rt_lag_seconds``). MISO's Rolling
  document holds the whole market day so far (EST), so its size depends on the hour of the run; a poll
  made after midnight EST for the day before gets it from the ``Previous`` feed, as the client asks.
* ``test_breach_to_alert``: a synthetic pipeline (``synthetic_iso``, 10 nodes, yearly cron so it never
  fires again) is ingested once with ``serve --once``; then, for each of ``HMCO_BENCH_SERVE_BREACHES``
  (5) breaches, its ``sla`` is set so that newest data end + sla + lag falls at a chosen instant B
  30-90 s ahead (B's second in the minute spread evenly over the breaches), the alert state file is
  removed (each breach is new), and ``serve --pipeline synth-alert --job synth-alert --job freshness-watch``
  (a catalogue of that one pipeline, of which those two jobs run) starts with
  ``HMCO_ALERTS__WEBHOOK_URL`` at the loopback receiver (``tests/support/webhook.py``). The latency is
  the receiver's arrival time minus B; it splits into the wait for the watch's next minute fire
  (``F - B``, F = the first whole minute after B) and fire-to-arrival (APScheduler wake-up, the lake
  freshness check, the POST), cross-checked with ``serve``'s JSON log (``posted breach alert``) and the
  watch's own run time. (The watch checks every ingestion job of the catalogue, whichever jobs ``--job``
  runs: without ``--pipeline`` it would also report the shipped pipelines' missing tables.)

Opt-in (about 27 minutes of wall clock): ``HMCO_BENCH_SERVE=1``. Nothing about timing is asserted; the tests assert that the polls wrote every ISO's rows, that idle
``serve`` ran nothing, and that every alert arrived naming the dataset and the job.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from benchmarks.bench_realtime import FEEDS, NODES, Clock, Feed, MisoFeed, Route
from prometheus_client.parser import text_string_to_metric_families
from tests.support.replay import ReplayServer
from tests.support.webhook import WebhookReceiver

from hmco.config import Settings
from hmco.lake import Lake
from hmco.schedule import default_catalogue
from hmco.sources.miso import feed_day, market_day

pytestmark = pytest.mark.skipif(
    os.environ.get("HMCO_BENCH_SERVE", "") != "1", reason="~27 min of wall clock: set HMCO_BENCH_SERVE=1"
)

HMCO = str(Path(sys.executable).with_name("hmco"))
IDLE_S = float(os.environ.get("HMCO_BENCH_SERVE_IDLE_S", "120"))
SETTLE_S = float(os.environ.get("HMCO_BENCH_SERVE_SETTLE_S", "20"))
MINUTES = float(os.environ.get("HMCO_BENCH_SERVE_MINUTES", "11"))
BREACHES = int(os.environ.get("HMCO_BENCH_SERVE_BREACHES", "5"))
CADENCE = 300.0
TICK = os.sysconf("SC_CLK_TCK")
RT_JOBS = {"CAISO": "caiso-rt-lmp", "MISO": "miso-rt-lmp", "SPP": "spp-rt-lmp"}
ALERT_JOB = "synth-alert"


# --- the process and its /proc figures ------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float  # wall time (time.time())
    cpu_s: float  # utime + stime
    rss_mb: float
    hwm_mb: float


def sample(pid: int) -> Sample:
    """CPU seconds and memory of process ``pid`` now."""
    at = time.time()
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; utime, stime are fields 14, 15
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    kb = {k: int(status[k].split()[0]) for k in ("VmRSS", "VmHWM")}
    return Sample(at, cpu, kb["VmRSS"] / 1024, kb["VmHWM"] / 1024)


class Serve:
    """``hmco serve`` as a subprocess; its output lines are kept with their arrival times, and a thread
    samples its CPU and memory every second."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.launched = time.time()
        self.p = subprocess.Popen(
            [HMCO, "--log-level", "INFO", "--log-json", "serve", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[tuple[float, str]] = []
        self.stderr: list[tuple[float, str]] = []
        self.samples: list[Sample] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._read, args=(self.p.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.p.stderr, self.stderr), daemon=True),
            threading.Thread(target=self._sample, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, stream: Any, into: list[tuple[float, str]]) -> None:
        for line in stream:
            with self._cond:
                into.append((time.time(), line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            try:
                s = sample(self.p.pid)
            except (FileNotFoundError, ProcessLookupError, KeyError, ValueError):
                return
            with self._cond:
                self.samples.append(s)

    def wait_for(
        self, pattern: str, timeout: float = 180.0, *, after: int = 0
    ) -> tuple[float, re.Match[str]]:
        """The first stdout line (from index ``after``) matching ``pattern``, with its arrival time."""
        regex = re.compile(pattern)

        def found() -> tuple[float, re.Match[str]] | None:
            for at, line in self.stdout[after:]:
                if m := regex.search(line):
                    return at, m
            return None

        with self._cond:
            self._cond.wait_for(lambda: found() is not None or self.p.poll() is not None, timeout)
            hit = found()
        assert hit is not None, f"{pattern!r} never appeared:\n{self.output}"
        return hit

    def logs(self) -> list[tuple[float, dict[str, Any]]]:
        """serve's JSON log lines (stderr)."""
        out = []
        for at, line in list(self.stderr):
            try:
                out.append((at, json.loads(line)))
            except json.JSONDecodeError:
                continue
        return out

    @property
    def output(self) -> str:
        lines = sorted(self.stdout + self.stderr)
        return "\n".join(line for _, line in lines[-60:])

    def stop(self) -> int:
        self.p.send_signal(signal.SIGTERM)
        try:
            code = self.p.wait(120)
        except subprocess.TimeoutExpired:
            self.p.kill()
            code = self.p.wait(30)
        self._stop.set()
        for t in self._threads:
            t.join(10)
        return code


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMCO_")}
    env.update(
        HMCO_HOME=str(home),
        HMCO_CLICKHOUSE__PATH=str(home / "clickhouse"),
        GX_ANALYTICS_ENABLED="false",
        NO_PROXY="127.0.0.1,localhost",
        **extra,
    )
    return env


def _metrics(url: str) -> dict[str, dict[str, float]]:
    """``{sample name: {iso: value}}`` of the real-time samples of serve's /metrics."""
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for s in family.samples:
            if s.name.startswith("hmco_rt_"):
                out.setdefault(s.name, {})[s.labels.get("iso", "")] = s.value
    return out


def _span(samples: list[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.at <= end]


def _wait_until(instant: float) -> None:
    while (left := instant - time.time()) > 0:
        time.sleep(min(left, 1.0))


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _report(benchmark: Any, info: dict[str, Any]) -> None:
    benchmark.extra_info.update(info)
    print(f"\n[{benchmark.name}] " + json.dumps(info, indent=1, default=str))


# --- idle ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(2 * (SETTLE_S + IDLE_S) + 300)
@pytest.mark.parametrize("watch", [False, True], ids=["upkeep", "upkeep+watch"])
def test_serve_idle(benchmark: Any, tmp_path: Path, watch: bool) -> None:
    """CPU % and RSS of a serve process with nothing due (and, with ``watch``, the 1-minute watch)."""
    benchmark.group = "serve overhead"
    catalogue = default_catalogue()
    jobs = [j.name for j in catalogue.of_kind("maintenance", "backup")]
    if watch:
        jobs.append("freshness-watch")
    now = datetime.now(UTC)
    horizon = now + timedelta(seconds=SETTLE_S + IDLE_S + 120)
    due_in_span = [
        n for n in jobs if n != "freshness-watch" and catalogue.get(n).cron.next_fire(now) < horizon
    ]
    load_before = _loadavg()
    proc = Serve([*(a for n in jobs for a in ("--job", n)), "--metrics-port", "0"], _env(tmp_path / "hmco"))
    try:
        ready, _ = proc.wait_for(r"metrics at (http://\S+)")
        start_cpu = sample(proc.p.pid)
        time.sleep(SETTLE_S)

        def measure() -> tuple[Sample, Sample]:
            first = sample(proc.p.pid)
            time.sleep(IDLE_S)
            return first, sample(proc.p.pid)

        first, last = benchmark.pedantic(measure, rounds=1, iterations=1)
        span = _span(proc.samples, first.at, last.at)
        runs = [line for at, line in proc.stdout if first.at <= at <= last.at and "freshness-watch" in line]
    finally:
        code = proc.stop()
    assert code == 0, proc.output
    cpu_s = last.cpu_s - first.cpu_s
    ran = [line for _, line in proc.stdout if re.match(r"^(iceberg-|backup-)\S+\s+(succeeded|failed)", line)]
    assert not ran, ran  # idle: no upkeep or backup job ran
    _report(
        benchmark,
        {
            "scenario": "upkeep+backup jobs" + (" + freshness-watch" if watch else ""),
            "jobs": jobs,
            "jobs_due_in_span": due_in_span,
            "startup_s": round(ready - proc.launched, 2),
            "startup_cpu_s": round(start_cpu.cpu_s, 2),
            "span_s": round(last.at - first.at, 1),
            "cpu_s": round(cpu_s, 3),
            "cpu_pct_of_one_core": round(100 * cpu_s / (last.at - first.at), 3),
            "rss_mb_start": round(first.rss_mb, 1),
            "rss_mb_end": round(last.rss_mb, 1),
            "rss_mb_max_sampled": round(max(s.rss_mb for s in span), 1) if span else None,
            "vmhwm_mb": round(last.hwm_mb, 1),
            "watch_runs_in_span": len(runs),
            "loadavg_before": load_before,
            "loadavg_after": _loadavg(),
        },
    )


# --- polling three ISOs ---------------------------------------------------------------------------


class DayRollingMisoFeed(MisoFeed):
    """``MisoFeed`` across MISO's midnight (EST): Rolling restarts with the new market day, and a poll made
    after midnight for an interval of the day before gets it from ``Previous`` (as the client asks)."""

    PREVIOUS = "/api/MarketPricing/GetRealTimeFiveMinExPost/Previous"

    def _routes(self, first: datetime, end: datetime) -> list[Route]:
        day = feed_day(end - timedelta(minutes=5))
        if self.day_end is not None and feed_day(self.day_end - timedelta(minutes=5)) != day:
            self.chunks, self.day_end = [], None  # a new market day: Rolling starts again
        routes = super()._routes(first, end)
        if day != market_day(self.clock.now):  # the poll (at clock.now) is on the next market day
            return [(self.PREVIOUS, routes[0][1], {}, False)]
        return routes


@dataclass
class Publisher:
    """Makes each interval appear on every feed when it ends (real clock), for the poll that will ask."""

    feeds: dict[str, Feed]
    clock: Clock
    published: list[tuple[float, datetime, dict[str, float]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def publish_for(self, poll_at: datetime) -> datetime:
        """Build (the ISO's work) and serve what a poll at ``poll_at`` asks for; returns the interval end."""
        self.clock.now = poll_at
        ends = {iso: f.latest_end() for iso, f in self.feeds.items()}
        assert len(set(ends.values())) == 1, ends
        mb = {}
        for iso, feed in self.feeds.items():
            feed.appear(feed.build(ends[iso]))
            mb[iso] = round(feed.last_bytes / 1e6, 2)
        end = next(iter(ends.values()))
        self.published.append((time.time(), end, mb))
        return end

    def run(self, first_poll: datetime) -> None:
        poll = first_poll
        while not self.stop.is_set():
            end = self.feeds["CAISO"].source.latest_window(poll).end
            while not self.stop.is_set() and time.time() < end.timestamp() + 0.5:
                self.stop.wait(min(1.0, end.timestamp() + 0.5 - time.time()))
            if self.stop.is_set():
                return
            self.publish_for(poll)
            poll += timedelta(seconds=CADENCE)


@pytest.fixture
def replays() -> Iterator[dict[str, ReplayServer]]:
    """One loopback server per ISO."""
    servers = {iso: ReplayServer() for iso in FEEDS}
    for server in servers.values():
        server.__enter__()
    yield servers
    for server in servers.values():
        server.__exit__()


@pytest.mark.timeout(MINUTES * 60 + 1200)
def test_serve_polling(benchmark: Any, tmp_path: Path, replays: dict[str, ReplayServer]) -> None:
    """CPU and RSS of serve polling CAISO, MISO and SPP every 5 minutes (real clock, loopback feeds)."""
    benchmark.group = "serve overhead"
    cadences = max(1, int(MINUTES * 60 // CADENCE))
    # Start 10-90 s after a 5-minute boundary: the catch-up poll then asks for the interval built for it.
    phase = time.time() % CADENCE
    if not 10 <= phase <= 90:
        time.sleep((CADENCE - phase + 10) % CADENCE)
    launch = datetime.now(UTC)
    boundary = datetime.fromtimestamp(launch.timestamp() // CADENCE * CADENCE, UTC)
    first_poll = boundary + timedelta(seconds=CADENCE)

    settings = Settings.load(home=tmp_path / "feeds")
    clock = Clock(launch)
    feeds: dict[str, Feed] = {
        iso: (DayRollingMisoFeed if iso == "MISO" else FEEDS[iso])(replays[iso], settings, clock)
        for iso in FEEDS
    }
    publisher = Publisher(feeds, clock)
    startup_end = publisher.publish_for(launch + timedelta(seconds=20))  # the catch-up poll's interval
    specs = tmp_path / "specs"
    specs.mkdir()
    urls = {"CAISO": "/oasisapi", "MISO": "/api", "SPP": "/file-browser-api"}
    for iso, job in RT_JOBS.items():
        source: dict[str, Any] = {"base_url": replays[iso].url + urls[iso]}
        if iso == "CAISO":
            source["params"] = {"nodes": "ALL"}
        (specs / f"{job}.yaml").write_text(yaml.safe_dump({"name": job, "source": source}))
    thread = threading.Thread(target=publisher.run, args=(first_poll,), daemon=True)
    thread.start()

    load_before = _loadavg()
    args = [
        "--specs",
        str(specs),
        *(a for j in RT_JOBS.values() for a in ("--job", j)),
        "--metrics-port",
        "0",
    ]
    proc = Serve(args, _env(tmp_path / "hmco"))
    try:
        ready, m = proc.wait_for(r"metrics at (http://\S+)")
        url = m.group(1)
        for job in RT_JOBS.values():
            _, done = proc.wait_for(rf"^{job}\s+(succeeded|failed)", timeout=240)
            assert done.group(1) == "succeeded", proc.output
        startup_done = time.time()
        startup = sample(proc.p.pid)
        metrics_startup = _metrics(url)
        print(
            f"\ncatch-up polls done {time.time() - proc.launched:.1f} s after launch; measuring from "
            f"{datetime.fromtimestamp(first_poll.timestamp() - 15, UTC):%H:%M:%S}Z",
            flush=True,
        )
        span_start = first_poll.timestamp() - 15
        span_end = span_start + cadences * CADENCE
        _wait_until(span_start)

        def measure() -> tuple[Sample, Sample, dict[str, dict[str, float]], dict[str, dict[str, float]]]:
            first = sample(proc.p.pid)
            before = _metrics(url)
            _wait_until(span_end)
            # the last poll of the span finished? (it starts 15 s before the span ends, at the latest)
            for job in RT_JOBS.values():
                proc.wait_for(rf"^{job}\s+(succeeded|failed).*fire .*{_hhmm(span_end - 15)}Z", timeout=240)
            last = sample(proc.p.pid)
            return first, last, before, _metrics(url)

        first, last, before, after = benchmark.pedantic(measure, rounds=1, iterations=1)
        results = [(at, line) for at, line in proc.stdout if re.match(r"^(caiso|miso|spp)-rt-lmp\s", line)]
    finally:
        publisher.stop.set()
        code = proc.stop()
        thread.join(10)
    assert code == 0, proc.output
    failed = [line for _, line in results if " failed " in line or "skipped" in line]
    assert not failed, failed
    written = after["hmco_rt_rows_written_total"]
    rows_in_span = {
        iso: int(written[iso] - before.get("hmco_rt_rows_written_total", {}).get(iso, 0)) for iso in RT_JOBS
    }
    assert rows_in_span == {iso: NODES[iso] * cadences for iso in RT_JOBS}, (rows_in_span, results)

    span = _span(proc.samples, first.at, last.at)
    wall = last.at - first.at
    cpu = last.cpu_s - first.cpu_s
    per_cadence = []
    for k in range(cadences):
        window = _span(proc.samples, span_start + k * CADENCE, span_start + (k + 1) * CADENCE)
        if len(window) >= 2:
            per_cadence.append(round(window[-1].cpu_s - window[0].cpu_s, 2))
    poll_seconds = {
        iso: [float(line.split()[2]) for at, line in results if line.startswith(job) and at > startup_done]
        for iso, job in RT_JOBS.items()
    }
    _report(
        benchmark,
        {
            "scenario": "caiso-rt-lmp + miso-rt-lmp + spp-rt-lmp, cron */5, gate on, lake copy on",
            "nodes": dict(NODES),
            "launch_utc": launch.isoformat(timespec="seconds"),
            "startup_interval_end": startup_end.isoformat(),
            "startup_s_to_metrics": round(ready - proc.launched, 2),
            "startup_s_to_catchup_polls_done": round(startup_done - proc.launched, 2),
            "startup_cpu_s": round(startup.cpu_s, 2),
            "startup_rss_mb": round(startup.rss_mb, 1),
            "startup_rows": {
                k: int(v) for k, v in metrics_startup.get("hmco_rt_rows_written_total", {}).items()
            },
            "cadences": cadences,
            "span_s": round(wall, 1),
            "cpu_s": round(cpu, 2),
            "cpu_pct_of_one_core": round(100 * cpu / wall, 2),
            "cpu_s_per_poll_cycle": round(cpu / cadences, 2),
            "cpu_s_per_cadence_sampled": per_cadence,
            "poll_job_seconds": poll_seconds,
            "rss_mb_span_start": round(first.rss_mb, 1),
            "rss_mb_span_end": round(last.rss_mb, 1),
            "rss_mb_median_sampled": round(statistics.median(s.rss_mb for s in span), 1) if span else None,
            "rss_mb_max_sampled": round(max(s.rss_mb for s in span), 1) if span else None,
            "vmhwm_mb": round(last.hwm_mb, 1),
            "rows_written_in_span": rows_in_span,
            "rows_written_total": {k: int(v) for k, v in written.items()},
            "rt_lag_seconds_at_end": after.get("hmco_rt_lag_seconds", {}),
            "payload_mb_last_publication": publisher.published[-1][2] if publisher.published else None,
            "publications": [
                (round(at - span_start, 1), end.isoformat()) for at, end, _ in publisher.published
            ],
            "loadavg_before": load_before,
            "loadavg_after": _loadavg(),
        },
    )


def _hhmm(instant: float) -> str:
    """``HH:MM`` of the newest 5-minute boundary at or before ``instant`` (a cron fire, UTC)."""
    return datetime.fromtimestamp(instant // CADENCE * CADENCE, UTC).strftime("%H:%M")


# --- breach to alert ------------------------------------------------------------------------------


class TimedList(list[dict[str, Any]]):
    """The receiver's ``received``: each delivered body with its arrival time."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: dict[str, Any]) -> None:
        self.times.append(time.time())
        super().append(item)


def _alert_spec(specs: Path, start: datetime, sla_s: float | None) -> None:
    spec: dict[str, Any] = {
        "name": ALERT_JOB,
        "source": {"type": "synthetic_iso", "params": {"nodes": 10, "iso": "SYNTH"}},
        "schedule": "0 0 1 1 *",  # yearly: after the --once run it never fires during the benchmark
        "window": "1h",
        "start": start.isoformat(),
    }
    if sla_s is not None:
        spec["sla"] = round(sla_s, 3)
    (specs / f"{ALERT_JOB}.yaml").write_text(yaml.safe_dump(spec))


@pytest.mark.timeout(BREACHES * 240 + 600)
def test_breach_to_alert(benchmark: Any, tmp_path: Path) -> None:
    """From the instant a dataset's SLA expires to the webhook receiving serve's breach alert."""
    benchmark.group = "serve breach-to-alert"
    from hmco.quality.freshness import lake_freshness
    from hmco.schemas import get_dataset

    home, specs = tmp_path / "hmco", tmp_path / "specs"
    specs.mkdir()
    now = datetime.now(UTC)  # the synthetic source serves 6-hour windows: start one window before the last
    start = now.replace(hour=now.hour // 6 * 6, minute=0, second=0, microsecond=0) - timedelta(hours=12)
    _alert_spec(specs, start, None)
    once = subprocess.run(
        [HMCO, "serve", "--once", "--json", "--job", ALERT_JOB, "--specs", str(specs)],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert once.returncode == 0, once.stdout + once.stderr
    [ingested] = json.loads(once.stdout)
    assert ingested["outcome"] == "succeeded" and ingested["rows"] > 0, ingested
    status = lake_freshness(Lake(Settings.load(home=home)), get_dataset("rt_lmp"))
    assert status.current_to is not None
    current_to = status.current_to.timestamp()
    lag_s = default_catalogue(specs).only([ALERT_JOB]).get(ALERT_JOB).lag.total_seconds()

    load_before = _loadavg()
    rounds: list[dict[str, Any]] = []
    with WebhookReceiver() as receiver:
        received = TimedList()
        receiver.received = received

        def one_breach(i: int) -> None:
            state = home / "alerts" / "freshness-state.json"
            state.unlink(missing_ok=True)  # every breach is a new one
            # B: ≥ 30 s ahead, at second (i + 0.5) * 60 / BREACHES of its minute
            phase = (i + 0.5) * 60 / BREACHES
            earliest = time.time() + 30
            breach = math.floor(earliest / 60) * 60 + phase
            if breach < earliest:
                breach += 60
            _alert_spec(specs, start, breach - current_to - lag_s)
            seen = len(received)
            env = _env(home, HMCO_ALERTS__WEBHOOK_URL=receiver.url)
            proc = Serve(
                [
                    "--specs",
                    str(specs),
                    "--pipeline",
                    ALERT_JOB,
                    "--job",
                    ALERT_JOB,
                    "--job",
                    "freshness-watch",
                    "--metrics-port",
                    "0",
                ],
                env,
            )
            try:
                ready, _ = proc.wait_for(r"metrics at (http://\S+)")
                deadline = breach + 150
                while len(received) == seen and time.time() < deadline and proc.p.poll() is None:
                    time.sleep(0.005)
                assert len(received) > seen, f"no alert within 150 s of the breach:\n{proc.output}"
                arrived, body = received.times[seen], received[seen]
                time.sleep(1.0)  # let the run's result line and the log line come out
            finally:
                proc.stop()
            assert "rt_lmp" in body["text"] and ALERT_JOB in json.dumps(body), body
            assert "Freshness breach" in body["text"], body
            fire = math.ceil(breach / 60) * 60
            posted = [at_ts for at_ts, rec in _log_times(proc) if rec.startswith("posted breach alert")]
            watch = [line for at, line in proc.stdout if line.startswith("freshness-watch") and at >= fire]
            rounds.append(
                {
                    "breach_at": datetime.fromtimestamp(breach, UTC).isoformat(timespec="milliseconds"),
                    "sla_s": round(breach - current_to - lag_s, 3),
                    "serve_ready_s_before_breach": round(breach - ready, 1),
                    "latency_s": round(arrived - breach, 3),
                    "wait_for_fire_s": round(fire - breach, 3),
                    "fire_to_arrival_s": round(arrived - fire, 3),
                    "fire_to_post_logged_s": round(posted[0] - fire, 3) if posted else None,
                    "watch_run_s": float(watch[0].split()[2]) if watch else None,
                }
            )

        def all_breaches() -> None:
            for i in range(BREACHES):
                one_breach(i)

        benchmark.pedantic(all_breaches, rounds=1, iterations=1)
    latencies = [r["latency_s"] for r in rounds]
    fire_to_arrival = [r["fire_to_arrival_s"] for r in rounds]
    _report(
        benchmark,
        {
            "breaches": len(rounds),
            "latency_s_median": round(statistics.median(latencies), 3),
            "latency_s_max": round(max(latencies), 3),
            "latency_s_min": round(min(latencies), 3),
            "fire_to_arrival_s_median": round(statistics.median(fire_to_arrival), 3),
            "fire_to_arrival_s_max": round(max(fire_to_arrival), 3),
            "rounds": rounds,
            "data_current_to": datetime.fromtimestamp(current_to, UTC).isoformat(),
            "lag_s": lag_s,
            "loadavg_before": load_before,
            "loadavg_after": _loadavg(),
        },
    )


def _log_times(proc: Serve) -> list[tuple[float, str]]:
    """(log record time, message) of serve's JSON log lines."""
    return [
        (datetime.fromisoformat(rec["ts"]).timestamp(), str(rec.get("msg", ""))) for _, rec in proc.logs()
    ]
