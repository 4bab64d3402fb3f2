"""What a user runs: the default pipeline (archive → parse → audit branch ‖ gate → curated), many windows.

Every benchmark loads the same 2,016,000 canonical ``rt_lmp`` rows (``synthetic_lmp``: 1,750 nodes × 288
intervals × 4 days, 150 MB of Arrow) through ``Pipeline.run`` over 16 six-hour windows (the synthetic
ISO's own ``window_step``), and the ceiling writes the same rows with one ``pq.write_table`` (zstd).
Payloads are prepared before each timed round as the synthetic ISO sends them (hourly zstd-free lz4
Arrow IPC), so what is timed is the pipeline, not data generation. Variants in the same run:

* ``default``: the pipeline as shipped: raw archive, the default quality gate, write–audit–publish;
* ``gate_off``: ``gate=False`` (loud), archive and audit branch kept;
* ``stripped``: no archive, no audit branch, no gate: one direct commit per window;
* ``serial``: the default pipeline without collecting window n+1 while n is published;
* ``one_window``: the default pipeline, all 2M rows in one window (the old benchmark's shape);
* ``synthetic_source``: the default pipeline on :class:`SyntheticISO`, which generates its rows inside
  ``fetch`` (the independent harness's shape: generation is timed too).

Also: the default pipeline on PostgreSQL + SeaweedFS, and peak RSS against window size (each in a fresh
process: ``VmHWM`` minus the RSS after warm-up, against the window's Arrow size).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hmco.compose.pipeline import Pipeline
from hmco.config import Settings
from hmco.lake import Lake
from hmco.payload import RawPayload
from hmco.quality import build_gate
from hmco.schemas import conform
from hmco.sources.base import Source
from hmco.sources.synthetic import ARROW_STREAM, SyntheticISO, synthetic_lmp
from hmco.windows import Window

NODES = 1_750
DAYS = 4
STEP = timedelta(hours=6)
ROUNDS = 3
START = datetime(2026, 11, 2, tzinfo=UTC)


def span(round_no: int) -> Window:
    """Round ``round_no`` loads its own four days (a new range each round: nothing is skipped)."""
    start = START + timedelta(days=DAYS * round_no)
    return Window(start, start + timedelta(days=DAYS))


@pytest.fixture(scope="module")
def rows() -> pa.Table:
    return synthetic_lmp(span(0), NODES, iso="CAISO")


class PreparedPayloads(Source):
    """Serves hourly lz4 Arrow IPC payloads prepared before the timed round (as SyntheticISO sends them)."""

    name: ClassVar[str] = "bench_prepared"
    datasets: ClassVar[tuple[str, ...]] = ("rt_lmp",)
    window_step: timedelta = STEP

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings=settings)
        self.payloads: dict[datetime, RawPayload] = {}

    def scope(self) -> dict[str, list[str]]:
        return {"iso": ["CAISO"]}

    def prepare(self, table: pa.Table, window: Window) -> None:
        self.payloads = {}
        ts = table.column("ts")
        for page, part in enumerate(window.split(timedelta(hours=1))):
            mask = pc.and_(
                pc.greater_equal(ts, pa.scalar(part.start, ts.type)),
                pc.less(ts, pa.scalar(part.end, ts.type)),
            )
            sink = pa.BufferOutputStream()
            rows = table.filter(mask)
            with pa.ipc.new_stream(sink, rows.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as w:
                w.write_table(rows)
            body = sink.getvalue().to_pybytes()
            self.payloads[part.start] = RawPayload(
                self.name, "rt_lmp", body, content_type=ARROW_STREAM, window=part, page=page
            )

    def fetch(self, window: Window) -> Iterator[RawPayload]:
        for part in window.split(timedelta(hours=1)):
            yield self.payloads[part.start]

    def parse(self, payload: RawPayload) -> pa.Table:
        return conform(pa.ipc.open_stream(payload.body).read_all(), self.dataset)


def shifted(table: pa.Table, days: int) -> pa.Table:
    delta = pa.scalar(timedelta(days=days), pa.duration("us"))
    for name in ("ts", "interval_end"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pc.add(table.column(name), delta))
    return table


def report(benchmark: Any, table: pa.Table, **extra: Any) -> None:
    stats = benchmark.stats.stats
    median = stats.median
    benchmark.extra_info.update(
        rows=table.num_rows,
        arrow_mb=round(table.nbytes / 1e6, 1),
        rows_per_s=round(table.num_rows / median),
        mb_per_s=round(table.nbytes / 1e6 / median, 1),
        load=Path("/proc/loadavg").read_text().split()[:3],
        **extra,
    )


@pytest.fixture(scope="module")
def warm_gate(rows: pa.Table) -> Any:
    gate = build_gate("rt_lmp", None)
    first = Window(START, START + STEP)
    gate.check(rows.slice(0, NODES * 72), "rt_lmp", first)  # imports and compiles outside the timing
    return gate


def _run_pipeline(
    benchmark: Any, settings: Settings, rows: pa.Table, gate: Any, *, synthetic: bool = False, **options: Any
) -> Pipeline:
    lake = Lake(settings)
    lake.create_tiers()
    source: Source = (
        SyntheticISO(settings=settings, nodes=NODES, iso="CAISO") if synthetic else PreparedPayloads(settings)
    )
    pipeline = Pipeline(source, lake=lake, name="bench-pipeline", gate=gate, progress=False, **options)
    rounds = iter(range(1, 100))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        i = next(rounds)
        window = span(i)
        if isinstance(source, PreparedPayloads):
            source.prepare(shifted(rows, DAYS * i), window)
        return (window,), {}

    def run(window: Window) -> None:
        result = pipeline.run(window)
        assert result.ok and result.rows == rows.num_rows, str(result)

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    assert lake.scan("rt_lmp").to_arrow().num_rows == rows.num_rows * ROUNDS
    assert pipeline.watermark == span(ROUNDS).end
    return pipeline


def test_ceiling_parquet(benchmark: Any, rows: pa.Table, tmp_path: Path) -> None:
    """One ``pq.write_table`` (zstd) of the same 2M rows: the ceiling every pipeline figure is held to."""
    benchmark.pedantic(
        lambda: pq.write_table(rows, tmp_path / "ceiling.parquet", compression="zstd"),
        rounds=ROUNDS,
        iterations=1,
    )
    report(benchmark, rows)


@pytest.mark.parametrize(
    "variant", ["default", "gate_off", "stripped", "serial", "one_window", "synthetic_source"]
)
def test_pipeline_local(benchmark: Any, rows: pa.Table, tmp_path: Path, warm_gate: Any, variant: str) -> None:
    settings = Settings.load(home=tmp_path / "hmco")
    variants: dict[str, dict[str, Any]] = {
        "default": {},
        "gate_off": {"gate": False},
        "stripped": {"gate": False, "archive": False, "stage": False},
        "serial": {"prefetch": False},
        "one_window": {"window_step": timedelta(days=DAYS)},
        "synthetic_source": {"synthetic": True},
    }
    options = dict(variants[variant])
    gate = options.pop("gate", warm_gate)
    _run_pipeline(benchmark, settings, rows, gate, **options)
    step = options.get("window_step", STEP)
    report(benchmark, rows, variant=variant, windows=int(timedelta(days=DAYS) / step), gate=gate is not False)


def test_pipeline_postgres_seaweedfs(
    benchmark: Any, rows: pa.Table, cluster_settings: Settings, warm_gate: Any
) -> None:
    """The default pipeline with its catalog on PostgreSQL and its warehouse and archive on SeaweedFS S3."""
    _run_pipeline(benchmark, cluster_settings, rows, warm_gate)
    report(benchmark, rows, variant="default", windows=int(timedelta(days=DAYS) / STEP), gate=True)


_RSS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from hmco.compose.pipeline import Pipeline
    from hmco.config import Settings
    from hmco.lake import Lake
    from hmco.sources.synthetic import SyntheticISO, synthetic_lmp
    from hmco.windows import Window

    nodes, hours, home, prefetch = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"

    def rss(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    settings = Settings.load(home=home)
    lake = Lake(settings)
    lake.create_tiers()
    step = timedelta(hours=hours)
    source = SyntheticISO(settings=settings, nodes=nodes, iso="CAISO", chunk="1h")
    pipeline = Pipeline(source, lake=lake, name="rss", window_step=step, progress=False, prefetch=prefetch)
    start = datetime(2026, 11, 2, tzinfo=UTC)
    pipeline.run(Window(start, start + timedelta(hours=1)))   # warm-up: imports, gate, tables
    window_bytes = synthetic_lmp(Window(start, start + step), nodes, iso="CAISO").nbytes
    base = rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    run_start = start + timedelta(days=1)
    report = pipeline.run(Window(run_start, run_start + 4 * step))
    assert report.ok, str(report)
    print(json.dumps({"window_bytes": window_bytes, "base": base, "peak": rss("VmHWM"), "rows": report.rows}))
    """
)


@pytest.mark.parametrize("prefetch", [True, False], ids=["prefetch", "serial"])
@pytest.mark.parametrize("window_rows", [252_000, 504_000, 1_008_000, 2_016_000])
def test_peak_rss_against_window_size(
    benchmark: Any, tmp_path: Path, window_rows: int, prefetch: bool
) -> None:
    """Peak RSS above the warmed-up process while the default pipeline runs four 6-hour windows."""
    result: dict[str, Any] = {}
    nodes = window_rows // 72

    def run() -> None:
        args = [str(nodes), "6", str(tmp_path / "hmco"), "1" if prefetch else "0"]
        out = subprocess.run(
            [sys.executable, "-c", _RSS_SCRIPT, *args], check=True, capture_output=True, text=True
        )
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(run, rounds=1, iterations=1)
    growth = result["peak"] - result["base"]
    benchmark.extra_info.update(
        window_rows=window_rows,
        window_arrow_mb=round(result["window_bytes"] / 1e6, 1),
        base_rss_mb=round(result["base"] / 1e6),
        peak_rss_mb=round(result["peak"] / 1e6),
        growth_mb=round(growth / 1e6),
        growth_over_window=round(growth / result["window_bytes"], 2),
        prefetch=prefetch,
        load=Path("/proc/loadavg").read_text().split()[:3],
    )
