"""Cost of the quality gate per 1M rt_lmp rows: validation alone, its parts, and end to end with publish.

The batch is ``synthetic_lmp`` for one day × 3,472 nodes (999,936 rows, ~94 MB of Arrow). Measured:

- ``gate``: ``ExpectationGate.check`` with the full default rt_lmp suite (14 expectations: column set,
  Arrow types, 6 not-nulls, compound-unique primary key, LMP range, 2 in-sets, row count, continuity),
  after GX is imported and the suite compiled (both once per process).
- baselines in the same run: the Arrow→pandas conversion alone; the continuity check alone (Arrow/polars);
  the reference's 4-expectation GX ``ValidationDefinition.run`` on an already-converted frame
  (lakehouse.md §3.1 measured 0.74 s on its machine).
- ``pipeline``: the same day through ``hmco.Pipeline`` (raw archive → staged → gate → curated Iceberg,
  four 6-hour windows), with the gate and without it; the difference is the gate's share end to end.

Run: ``.venv/bin/pytest benchmarks/bench_quality.py -p no:cacheprovider --benchmark-only``
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import hmco
from hmco.config import Settings
from hmco.quality import CheckContext, ExpectationGate, build_gate, default_suite
from hmco.quality.checks import check_continuity
from hmco.schemas import RT_LMP
from hmco.sources.synthetic import SyntheticISO, synthetic_lmp
from hmco.windows import Window

DAY = Window(datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))
NODES = 3472  # x 288 intervals = 999,936 rows
ROUNDS = 3


@pytest.fixture(scope="module")
def batch() -> pa.Table:
    return synthetic_lmp(DAY, NODES, iso="CAISO")


@pytest.fixture(scope="module")
def gate(batch: pa.Table) -> ExpectationGate:
    g = build_gate("rt_lmp")
    assert g.check(batch, RT_LMP, DAY).passed  # import GX + compile the suite outside the timing
    return g


def _info(benchmark: Any, table: pa.Table) -> None:
    mean = benchmark.stats.stats.mean
    benchmark.extra_info["rows"] = table.num_rows
    benchmark.extra_info["rows_per_s"] = round(table.num_rows / mean)
    benchmark.extra_info["mb_per_s"] = round(table.nbytes / 1e6 / mean, 1)


def test_gate_1m_rows(benchmark: Any, gate: ExpectationGate, batch: pa.Table) -> None:
    result = benchmark.pedantic(gate.check, args=(batch, RT_LMP, DAY), rounds=ROUNDS, iterations=1)
    assert result.passed and len(result.outcomes) == len(default_suite("rt_lmp"))
    _info(benchmark, batch)
    benchmark.extra_info["parts_seconds_last_round"] = result.meta["seconds"]


def test_baseline_arrow_to_pandas_1m_rows(benchmark: Any, batch: pa.Table) -> None:
    frame = benchmark.pedantic(lambda: batch.to_pandas(split_blocks=True), rounds=ROUNDS, iterations=1)
    assert len(frame) == batch.num_rows
    _info(benchmark, batch)


def test_baseline_continuity_alone_1m_rows(benchmark: Any, batch: pa.Table) -> None:
    exp = default_suite("rt_lmp").get("continuity")
    outcome = benchmark.pedantic(
        check_continuity, args=(batch, exp, CheckContext(window=DAY)), rounds=ROUNDS, iterations=1
    )
    assert outcome.success and outcome.details["series_checked"] == NODES
    _info(benchmark, batch)


def test_baseline_reference_gx_four_expectations_1m_rows(
    benchmark: Any, gate: ExpectationGate, batch: pa.Table
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
    frame = batch.to_pandas(split_blocks=True)
    result = benchmark.pedantic(
        lambda: vd.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY"),
        rounds=ROUNDS,
        iterations=1,
    )
    assert result.success
    _info(benchmark, batch)


def _pipeline(home: Path, gate: ExpectationGate | bool) -> hmco.Pipeline:
    settings = Settings.load(home=home)
    source = SyntheticISO(settings=settings, nodes=NODES, iso="CAISO")
    return hmco.Pipeline(source, lake=hmco.Lake(settings), name="bench-quality", gate=gate)


@pytest.mark.parametrize("with_gate", [True, False], ids=["gate", "no_gate"])
def test_pipeline_publish_1m_rows(
    benchmark: Any, gate: ExpectationGate, batch: pa.Table, tmp_path: Path, with_gate: bool
) -> None:
    pipeline = _pipeline(tmp_path / "home", gate if with_gate else False)  # False: the ungated baseline
    report = benchmark.pedantic(pipeline.run, args=(DAY,), rounds=2, iterations=1)
    assert report.ok and report.rows == batch.num_rows
    _info(benchmark, batch)
