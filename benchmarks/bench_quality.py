"""Cost of the quality gate on 1M and 2M rt_lmp rows: the native default gate against the all-GX gate.

The batches are ``synthetic_lmp`` for one day × 3,472 nodes (999,936 rows, ~109 MB of Arrow) and × 6,944
nodes (1,999,872 rows). Measured in the same run:

- ``gate_native``: ``build_gate("rt_lmp").check`` — the default gate (``engine="hmco"``), the full default
  suite (15 expectations) judged on Arrow with one shared scan; a passing batch does not touch GX.
- ``gate_all_gx``: the same suite with ``engine="great_expectations"`` (the gate before native kinds:
  six GX kinds in one GX validation on a pandas copy, plus the Arrow type/continuity/recency checks),
  after GX is imported and the suite compiled (both once per process, outside the timing).
- ``gate_native_failing``: a batch with one LMP out of range; the native verdict plus GX's result
  document (``documents="on_failure"``), what a quarantined batch costs.
- continuity alone: the shared-scan implementation against the polars ``group_by`` it replaced (kept
  below as a baseline, verbatim in its logic).
- baselines: the Arrow→pandas conversion alone; the reference's 4-expectation GX
  ``ValidationDefinition.run`` on an already-converted frame (lakehouse.md §3.1: 0.74 s on its machine).
- ``pipeline``: the 1M-row day through ``hmco.Pipeline`` (raw archive → staged → gate → curated Iceberg,
  four 6-hour windows), with the default gate and without it; the difference is the gate's share.

``extra_info``: rows, Arrow MB, median seconds, rows/s and MB/s of the median round, and for gate runs the
gate's own timing parts of the last round. Run:
``.venv/bin/pytest benchmarks/bench_quality.py -p no:cacheprovider --benchmark-only``
(``HMCO_BENCH_QUALITY_ROUNDS`` sets the rounds, default 5).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import hmco
from hmco.config import Settings
from hmco.quality import CheckContext, Expectation, ExpectationGate, build_gate, default_suite
from hmco.quality.checks import check_continuity
from hmco.schemas import RT_LMP
from hmco.sources.synthetic import SyntheticISO, synthetic_lmp
from hmco.windows import Window, parse_duration

DAY = Window(datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))
NODES = {"1m": 3472, "2m": 6944}  # x 288 intervals = 999,936 / 1,999,872 rows
ROUNDS = int(os.environ.get("HMCO_BENCH_QUALITY_ROUNDS", "5"))


@pytest.fixture(scope="module", params=list(NODES))
def batch(request: pytest.FixtureRequest) -> pa.Table:
    return synthetic_lmp(DAY, NODES[request.param], iso="CAISO")


@pytest.fixture(scope="module")
def batch_1m() -> pa.Table:
    return synthetic_lmp(DAY, NODES["1m"], iso="CAISO")


@pytest.fixture(scope="module")
def native_gate() -> ExpectationGate:
    return build_gate("rt_lmp")


@pytest.fixture(scope="module")
def gx_gate() -> ExpectationGate:
    g = build_gate("rt_lmp", engine="great_expectations")
    hour = Window(DAY.start, DAY.start + timedelta(hours=1))
    assert g.check(synthetic_lmp(hour, 10, iso="CAISO"), RT_LMP, hour).passed  # import GX, compile: untimed
    return g


def report(benchmark: Any, table: pa.Table, **extra: Any) -> None:
    """rows/s and MB/s (Arrow bytes) of the median round into extra_info."""
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "rows": table.num_rows,
            "arrow_mb": round(table.nbytes / 1e6, 1),
            "median_s": round(median, 4),
            "rows_per_s": round(table.num_rows / median),
            "mb_per_s": round(table.nbytes / 1e6 / median, 1),
            "cores": pa.cpu_count(),
            **extra,
        }
    )


# --- the gate alone -----------------------------------------------------------------------------------


def test_gate_native(benchmark: Any, native_gate: ExpectationGate, batch: pa.Table) -> None:
    result = benchmark.pedantic(native_gate.check, args=(batch, RT_LMP, DAY), rounds=ROUNDS, iterations=1)
    assert result.passed and result.engine == "hmco"
    assert len(result.outcomes) == len(default_suite("rt_lmp"))
    report(benchmark, batch, parts_seconds_last_round=result.meta["seconds"])


def test_gate_all_gx(benchmark: Any, gx_gate: ExpectationGate, batch: pa.Table) -> None:
    result = benchmark.pedantic(gx_gate.check, args=(batch, RT_LMP, DAY), rounds=ROUNDS, iterations=1)
    assert result.passed and result.engine == "great_expectations"
    report(benchmark, batch, parts_seconds_last_round=result.meta["seconds"])


def test_gate_native_failing_with_gx_document(
    benchmark: Any, native_gate: ExpectationGate, gx_gate: ExpectationGate, batch_1m: pa.Table
) -> None:
    lmp = batch_1m.column("lmp").to_numpy().copy()
    lmp[12_345] = 99_999.0
    bad = batch_1m.set_column(batch_1m.schema.get_field_index("lmp"), "lmp", pa.array(lmp))
    result = benchmark.pedantic(native_gate.check, args=(bad, RT_LMP, DAY), rounds=ROUNDS, iterations=1)
    assert [o.name for o in result.failed] == ["range.lmp"]
    assert result.engine == "hmco+great_expectations" and "great_expectations" in result.meta
    report(benchmark, bad, parts_seconds_last_round=result.meta["seconds"])


# --- continuity: shared scan vs the polars group_by it replaced ---------------------------------------


def test_continuity_native(benchmark: Any, batch: pa.Table) -> None:
    exp = default_suite("rt_lmp").get("continuity")
    outcome = benchmark.pedantic(
        check_continuity, args=(batch, exp, CheckContext(window=DAY)), rounds=ROUNDS, iterations=1
    )
    assert outcome.success and outcome.details["series_checked"] == batch.num_rows // 288
    report(benchmark, batch)


def test_continuity_polars_group_by_baseline(benchmark: Any, batch: pa.Table) -> None:
    exp = default_suite("rt_lmp").get("continuity")
    counts = benchmark.pedantic(_continuity_polars, args=(batch, exp, DAY), rounds=ROUNDS, iterations=1)
    native = check_continuity(batch, exp, CheckContext(window=DAY))
    assert counts == (native.details["series_checked"], 0, 0, 0)  # same verdict as the native check
    report(benchmark, batch)


def _continuity_polars(table: pa.Table, exp: Expectation, window: Window) -> tuple[int, int, int, int]:
    """The previous ``check_continuity`` (one polars ``group_by`` with ``n_unique``), without its sampling."""
    import polars as pl

    tcol, keys = str(exp.params.get("time_column", "ts")), list(exp.columns)
    step = int(parse_duration(exp.params["frequency"]) / timedelta(microseconds=1))
    df = pl.from_arrow(table.select([*keys, tcol]))
    assert isinstance(df, pl.DataFrame)
    df = df.filter(pl.col(tcol).is_not_null()).with_columns(_t=pl.col(tcol).dt.epoch("us"))
    t = pl.col("_t")
    on_grid = ((t - t.min()) % step) == 0
    agg = df.group_by(keys).agg(
        rows=pl.len(),
        distinct=t.n_unique(),
        on_grid=t.filter(on_grid).n_unique(),
        expected=((t.max() - t.min()) // step + 1),
    )
    agg = agg.with_columns(
        missing=(pl.col("expected") - pl.col("on_grid")).clip(lower_bound=0),
        duplicates=pl.col("rows") - pl.col("distinct"),
        off_grid=pl.col("distinct") - pl.col("on_grid"),
    )
    totals = agg.select(pl.col("missing").sum(), pl.col("duplicates").sum(), pl.col("off_grid").sum()).row(0)
    return (agg.height, *(int(x or 0) for x in totals))  # type: ignore[return-value]


# --- baselines ----------------------------------------------------------------------------------------


def test_baseline_arrow_to_pandas(benchmark: Any, batch_1m: pa.Table) -> None:
    frame = benchmark.pedantic(lambda: batch_1m.to_pandas(split_blocks=True), rounds=ROUNDS, iterations=1)
    assert len(frame) == batch_1m.num_rows
    report(benchmark, batch_1m)


def test_baseline_reference_gx_four_expectations(
    benchmark: Any, gx_gate: ExpectationGate, batch_1m: pa.Table
) -> None:
    """The reference's shape: not-null, between (mostly), in-set, compound unique on a pandas frame."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    from hmco.quality.gx import _GXRuntime

    ctx = _GXRuntime.get().context
    bd = (
        ctx.data_sources.add_pandas("bench")
        .add_dataframe_asset("lmp")
        .add_batch_definition_whole_dataframe("w")
    )
    suite = ctx.suites.add(gx.ExpectationSuite(name="bench-4"))
    for exp in (
        gxe.ExpectColumnValuesToNotBeNull(column="lmp"),
        gxe.ExpectColumnValuesToBeBetween(column="lmp", min_value=-2000, max_value=5000, mostly=0.999),
        gxe.ExpectColumnValuesToBeInSet(column="iso", value_set=["CAISO", "MISO", "SPP"]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["iso", "market", "node", "ts"]),
    ):
        suite.add_expectation(exp)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="bench-4", data=bd, suite=suite))
    frame = batch_1m.to_pandas(split_blocks=True)
    result = benchmark.pedantic(
        lambda: vd.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY"),
        rounds=ROUNDS,
        iterations=1,
    )
    assert result.success
    report(benchmark, batch_1m)


# --- end to end ---------------------------------------------------------------------------------------


def _pipeline(home: Path, gate: ExpectationGate | bool) -> hmco.Pipeline:
    settings = Settings.load(home=home)
    source = SyntheticISO(settings=settings, nodes=NODES["1m"], iso="CAISO")
    return hmco.Pipeline(source, lake=hmco.Lake(settings), name="bench-quality", gate=gate)


@pytest.mark.parametrize("with_gate", [True, False], ids=["gate", "no_gate"])
def test_pipeline_publish_1m_rows(
    benchmark: Any, native_gate: ExpectationGate, batch_1m: pa.Table, tmp_path: Path, with_gate: bool
) -> None:
    pipeline = _pipeline(tmp_path / "home", native_gate if with_gate else False)  # False: ungated baseline
    report_ = benchmark.pedantic(pipeline.run, args=(DAY,), rounds=2, iterations=1)
    assert report_.ok and report_.rows == batch_1m.num_rows
    report(benchmark, batch_1m)
