"""The native engine judges every batch as Great Expectations does, and GX stays for its documents.

For every registered dataset's default suite (plus ``mostly`` and per-hour/day variants), a corpus of
good and bad batches is checked twice: by the default gate (``engine="hmco"``) and by the all-GX gate
(``engine="great_expectations"``). Every outcome must agree: success, severity, unexpected count, the
unexpected sample (as a set) and the details GX reports (element/missing counts, percent, observed value).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import hmco
from hmco.config import Settings
from hmco.errors import QualityGateFailed, SpecError
from hmco.quality import (
    CheckContext,
    Expectation,
    ExpectationGate,
    GateResult,
    Suite,
    build_gate,
    default_suite,
    register_kind,
)
from hmco.quality.checks import check_continuity
from hmco.quality.kinds import get_kind
from hmco.quality.scan import BatchScan
from hmco.schemas import DATASETS, RT_LMP, Dataset, conform
from hmco.sources.synthetic import SyntheticISO, synthetic_lmp
from hmco.windows import Window

START = datetime(2026, 11, 26, tzinfo=UTC)
SERIES = 4

# --- a good batch of any dataset, derived from its schema ---------------------------------------------


def _step(ds: Dataset) -> timedelta:
    return ds.frequency or timedelta(days=1)


def window_of(ds: Dataset) -> Window:
    """Six steps of the dataset's cadence (an hour of 5-minute data, six days of daily data …)."""
    return Window(START, START + 6 * _step(ds))


def good_batch(ds: Dataset) -> pa.Table:
    """Every series at every step of the window; values inside ranges and allowed sets; keys unique."""
    step, window = _step(ds), window_of(ds)
    steps = 6 if ds.time_column in ds.primary_key else 1
    n = SERIES * steps
    series = np.tile(np.arange(SERIES), steps)
    at = np.repeat(np.arange(steps), SERIES)
    ts = [window.start + int(k) * step for k in at]
    columns: dict[str, Any] = {}
    for f in ds.schema:
        name, typ = f.name, f.type
        if name == ds.time_column:
            columns[name] = ts
        elif name == "interval_end":
            columns[name] = [t + step for t in ts]
        elif name in ds.allowed_values:
            allowed = ds.allowed_values[name]
            columns[name] = [allowed[int(s) % len(allowed)] for s in series]
        elif pa.types.is_string(typ):
            columns[name] = [f"{name.upper()}_{int(s):02d}" for s in series]
        elif pa.types.is_floating(typ):
            lo, hi = ds.value_ranges.get(name, (None, None))
            mid = ((lo or 0.0) + (hi or 100.0)) / 2 if lo is not None or hi is not None else 1.0
            columns[name] = [mid + 0.25 * int(s) for s in series]
        elif pa.types.is_integer(typ):
            columns[name] = [2022] * n
        elif pa.types.is_date(typ):
            columns[name] = [date(2026, 11, 1)] * n
        elif pa.types.is_timestamp(typ):
            columns[name] = ts
        else:  # pragma: no cover - a new schema type: teach this generator
            raise AssertionError(f"{ds.name}.{name}: no generator for {typ}")
    return conform(pa.table({f.name: pa.array(columns[f.name], f.type) for f in ds.schema}), ds)


# --- defects, each a pure function of a good batch ----------------------------------------------------


def _replace(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), pa.field(name, values.type), values)


def set_values(table: pa.Table, name: str, rows: list[int], value: Any) -> pa.Table:
    values = table.column(name).to_pylist()
    for r in rows:
        if r < len(values):
            values[r] = value
    return _replace(table, name, pa.array(values, table.schema.field(name).type))


def _required(ds: Dataset) -> list[str]:
    return [f.name for f in ds.schema if not f.nullable]


def _float_columns(ds: Dataset) -> list[str]:
    return [f.name for f in ds.schema if pa.types.is_floating(f.type)]


Defect = Callable[[pa.Table, Dataset], pa.Table]


def nulls_in_every_required_column(t: pa.Table, ds: Dataset) -> pa.Table:
    for i, name in enumerate(_required(ds)):
        t = set_values(t, name, [i % t.num_rows, (i + 5) % t.num_rows], None)
    return t


def null_in_one_key_column(t: pa.Table, ds: Dataset) -> pa.Table:
    return set_values(t, ds.primary_key[-1], [1, 2], None)


def duplicated_rows(t: pa.Table, ds: Dataset) -> pa.Table:
    return pa.concat_tables([t, t.slice(1, 2), t.slice(1, 1)])


def duplicates_with_a_null_key_value(t: pa.Table, ds: Dataset) -> pa.Table:
    """Two rows equal but for a null in the same key column: duplicates for GX (nulls equal)."""
    doubled = pa.concat_tables([t, t.slice(0, 1)])
    return set_values(doubled, ds.primary_key[0], [0, doubled.num_rows - 1], None)


def rows_with_every_key_value_null(t: pa.Table, ds: Dataset) -> pa.Table:
    """Rows whose whole key is null are ignored by the compound-unique check (not duplicates)."""
    doubled = pa.concat_tables([t, t.slice(0, 1)])
    for name in ds.primary_key:
        doubled = set_values(doubled, name, [0, doubled.num_rows - 1], None)
    return doubled


def out_of_range(t: pa.Table, ds: Dataset) -> pa.Table:
    for name, (lo, hi) in ds.value_ranges.items():
        if hi is not None:
            t = set_values(t, name, [0, 3], hi + 1)
        if lo is not None:
            t = set_values(t, name, [2], lo - 1)
        t = set_values(t, name, [5], None)
    return t


def nan_in_floats(t: pa.Table, ds: Dataset) -> pa.Table:
    """NaN is missing for GX (pandas): not_null fails on it, between ignores it."""
    for name in _float_columns(ds):
        t = set_values(t, name, [1, 4], math.nan)
    return t


def not_in_set(t: pa.Table, ds: Dataset) -> pa.Table:
    for name in ds.allowed_values:
        t = set_values(t, name, [0, 2, 7], "BOGUS")
        t = set_values(t, name, [3], "")
    return t


def missing_key_column(t: pa.Table, ds: Dataset) -> pa.Table:
    return t.drop_columns([ds.primary_key[-1]])


def missing_optional_column_and_an_extra_one(t: pa.Table, ds: Dataset) -> pa.Table:
    optional = [f.name for f in ds.schema if f.nullable]
    t = t.drop_columns(optional[:1])
    return t.append_column("source_file", pa.array(["x.zip"] * t.num_rows))


def floats_as_strings(t: pa.Table, ds: Dataset) -> pa.Table:
    for name in _float_columns(ds):
        t = _replace(t, name, pc.cast(t.column(name), pa.string()).combine_chunks())
    return t


def times_as_strings(t: pa.Table, ds: Dataset) -> pa.Table:
    return _replace(t, ds.time_column, pc.cast(t.column(ds.time_column), pa.string()).combine_chunks())


def a_gap(t: pa.Table, ds: Dataset) -> pa.Table:
    return t.filter(pc.invert(pc.equal(pa.array(np.arange(t.num_rows)), SERIES + 1)))


def empty(t: pa.Table, ds: Dataset) -> pa.Table:
    return t.slice(0, 0)


def duplicates_across_chunks(t: pa.Table, ds: Dataset) -> pa.Table:
    """Good rows in three chunks, the last repeating two rows of the first."""
    third = max(1, t.num_rows // 3)
    return pa.concat_tables([t.slice(0, third), t.slice(third, third), t.slice(2 * third), t.slice(0, 2)])


def dictionary_typed_keys(t: pa.Table, ds: Dataset) -> pa.Table:
    """String keys as dictionaries: a type drift, but their values are judged as strings."""
    for name in ds.primary_key:
        if pa.types.is_string(t.schema.field(name).type):
            t = _replace(t, name, pc.dictionary_encode(t.column(name).combine_chunks()))
    return t


DEFECTS: dict[str, Defect] = {
    "good": lambda t, ds: t,
    "nulls_in_every_required_column": nulls_in_every_required_column,
    "null_in_one_key_column": null_in_one_key_column,
    "duplicated_rows": duplicated_rows,
    "duplicates_with_a_null_key_value": duplicates_with_a_null_key_value,
    "rows_with_every_key_value_null": rows_with_every_key_value_null,
    "out_of_range": out_of_range,
    "nan_in_floats": nan_in_floats,
    "not_in_set": not_in_set,
    "missing_key_column": missing_key_column,
    "missing_optional_column_and_an_extra_one": missing_optional_column_and_an_extra_one,
    "floats_as_strings": floats_as_strings,
    "times_as_strings": times_as_strings,
    "a_gap": a_gap,
    "empty": empty,
    "duplicates_across_chunks": duplicates_across_chunks,
    "dictionary_typed_keys": dictionary_typed_keys,
}


def suite_of(ds: Dataset) -> Suite:
    """The dataset's default suite plus variants of each GX kind: ``mostly``, strict bounds, per hour/day
    row counts, a single-column unique, an exact column set (one GX run checks them all)."""
    floats = _float_columns(ds)
    strings = [f.name for f in ds.schema if pa.types.is_string(f.type) and f.name not in ds.allowed_values]
    key = ds.primary_key
    extra = [
        Expectation(
            name="row_count.per_day", kind="row_count", params={"min": 5, "max": 10_000, "per": "day"}
        ),
        Expectation(name="row_count.per_hour", kind="row_count", params={"min": 1, "max": 3, "per": "hour"}),
        Expectation(name="in_set.nope", kind="in_set", column=strings[0], params={"values": ["NOPE"]}),
        Expectation(name="unique.first_key", kind="unique", column=key[0], params={"mostly": 0.3}),
        Expectation(name="unique.key.mostly", kind="unique", columns=key, params={"mostly": 0.8}),
        Expectation(name="not_null.first_key.mostly", kind="not_null", column=key[0], params={"mostly": 0.9}),
        Expectation(name="columns.exact", kind="columns", params={"columns": ds.schema.names, "exact": True}),
        Expectation(
            name="between.strict",
            kind="between",
            column=floats[0] if floats else ds.time_column,
            params={"min": 1.0, "max": 1e9, "strict_min": True, "strict_max": True},
        ),
    ]
    if floats:
        extra.append(
            Expectation(
                name="between.mostly",
                kind="between",
                column=floats[0],
                params={"min": 0.5, "max": 60.0, "mostly": 0.7},
            )
        )
    if ds.allowed_values:
        name, values = next(iter(ds.allowed_values.items()))
        extra.append(
            Expectation(
                name="in_set.mostly",
                kind="in_set",
                column=name,
                params={"values": list(values), "mostly": 0.75},
            )
        )
    return default_suite(ds).with_expectations(*extra)


def _sample_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def assert_same_outcomes(native: GateResult, gx: GateResult) -> None:
    assert [o.name for o in native.outcomes] == [o.name for o in gx.outcomes]
    for mine, theirs in zip(native.outcomes, gx.outcomes, strict=True):
        where = f"{mine.name}: native {mine} vs GX {theirs}"
        assert (mine.success, mine.severity, mine.column) == (
            theirs.success,
            theirs.severity,
            theirs.column,
        ), where
        assert mine.unexpected_count == theirs.unexpected_count, where
        assert {_sample_key(v) for v in mine.unexpected_sample} == {
            _sample_key(v) for v in theirs.unexpected_sample
        }, where
        assert len(mine.unexpected_sample) == len(theirs.unexpected_sample), where
        assert ("error" in mine.details) == ("error" in theirs.details), where
        for key in ("observed_value", "element_count", "missing_count", "unexpected_percent", "details"):
            if key in theirs.details:
                mine_value, theirs_value = mine.details.get(key, "absent"), theirs.details[key]
                if isinstance(theirs_value, float):
                    assert mine_value == pytest.approx(theirs_value), where
                else:
                    assert mine_value == theirs_value, where
    assert native.passed == gx.passed


CASES = [pytest.param(name, defect, id=f"{name}-{defect}") for name in sorted(DATASETS) for defect in DEFECTS]


@pytest.mark.parametrize(("dataset", "defect"), CASES)
def test_native_outcomes_equal_great_expectations_outcomes(dataset: str, defect: str) -> None:
    ds = DATASETS[dataset]
    suite = suite_of(ds)
    batch = DEFECTS[defect](good_batch(ds), ds)
    window = window_of(ds)
    native = ExpectationGate(suite, engine="hmco", documents="never").check(batch, ds, window)
    gx = ExpectationGate(suite, engine="great_expectations", documents="never").check(batch, ds, window)
    assert native.engine == "hmco" and gx.engine == "great_expectations"
    assert_same_outcomes(native, gx)
    if defect == "good":
        defaults = set(default_suite(ds).names)
        assert not [o.name for o in native.outcomes if o.name in defaults and not o.success]


def test_the_corpus_fails_each_bad_batch_by_the_expectation_it_targets() -> None:
    """The corpus is not vacuous: on rt_lmp each defect is caught by the expectation meant for it."""
    ds = RT_LMP
    gate = ExpectationGate(default_suite(ds), documents="never")
    failed = {
        d: {o.name for o in gate.check(f(good_batch(ds), ds), ds, window_of(ds)).failed}
        for d, f in DEFECTS.items()
    }
    assert failed["good"] == set() and failed["dictionary_typed_keys"] == {"schema.types"}
    assert failed["duplicates_across_chunks"] == {"unique.primary_key", "continuity"}
    assert {"not_null.ts", "not_null.node", "not_null.lmp"} <= failed["nulls_in_every_required_column"]
    assert "unique.primary_key" in failed["duplicated_rows"]
    assert "unique.primary_key" in failed["duplicates_with_a_null_key_value"]
    assert "unique.primary_key" not in failed["rows_with_every_key_value_null"]
    assert "range.lmp" in failed["out_of_range"]
    assert "not_null.lmp" in failed["nan_in_floats"] and "range.lmp" not in failed["nan_in_floats"]
    assert {"in_set.iso", "in_set.market"} <= failed["not_in_set"]
    assert {"schema.columns", "not_null.ts", "unique.primary_key"} <= failed["missing_key_column"]
    assert {"schema.types", "range.lmp"} <= failed["floats_as_strings"]
    assert failed["a_gap"] == {"continuity"}


# --- GX stays for its documents -----------------------------------------------------------------------

WINDOW = Window(datetime(2026, 11, 26, 0, tzinfo=UTC), datetime(2026, 11, 26, 1, tzinfo=UTC))


@pytest.fixture
def batch() -> pa.Table:
    return synthetic_lmp(WINDOW, 6, iso="CAISO")


def test_a_failing_batch_carries_the_great_expectations_result_document(batch: pa.Table) -> None:
    bad = set_values(batch, "lmp", [4], 99_999.0)
    result = build_gate("rt_lmp").check(bad, RT_LMP, WINDOW)
    assert not result.passed and result.engine == "hmco+great_expectations"
    doc = result.meta["great_expectations"]
    assert doc["success"] is False
    by_name = {r["expectation_config"]["meta"]["hmco_name"]: r for r in doc["results"]}
    assert by_name["range.lmp"]["success"] is False
    assert by_name["range.lmp"]["result"]["partial_unexpected_list"] == [99_999.0]
    assert set(by_name) == {
        e.name for e in default_suite("rt_lmp") if e.kind not in ("types", "continuity", "recency")
    }
    assert "engines_disagree" not in result.meta
    json.loads(result.to_json(), parse_constant=lambda c: pytest.fail(c))  # strict JSON


def test_a_passing_batch_gets_no_document_unless_always(batch: pa.Table) -> None:
    assert "great_expectations" not in build_gate("rt_lmp").check(batch, RT_LMP, WINDOW).meta
    always = build_gate("rt_lmp", documents="always").check(batch, RT_LMP, WINDOW)
    assert always.passed and always.engine == "hmco+great_expectations"
    assert always.meta["great_expectations"]["success"] is True


def test_documents_never_leaves_a_failing_batch_to_the_native_verdict(batch: pa.Table) -> None:
    result = build_gate("rt_lmp", {"documents": "never"}).check(
        set_values(batch, "node", [0], None), RT_LMP, WINDOW
    )
    assert [o.name for o in result.failed] == ["not_null.node"]
    assert result.engine == "hmco"
    assert "great_expectations" not in result.meta


def test_a_warning_alone_does_not_ask_for_a_document(batch: pa.Table) -> None:
    gate = build_gate("rt_lmp", {"ranges": {"lmp": {"max": 1, "severity": "warn"}}})
    result = gate.check(batch, RT_LMP, WINDOW)
    assert result.passed and result.warnings
    assert result.engine == "hmco"


def test_the_stored_result_of_a_quarantined_batch_carries_the_document(settings: Settings) -> None:
    def spike(table: pa.Table) -> pa.Table:
        return set_values(table, "lmp", [0], 99_999.0)

    source = SyntheticISO(settings=settings, nodes=3, iso="CAISO")
    pipeline = hmco.Pipeline(source, lake=hmco.Lake(settings), name="doc-test", transforms=[spike])
    with pytest.raises(QualityGateFailed):
        pipeline.run(WINDOW)
    (path,) = (Path(settings.home_dir) / "warehouse").rglob("_quality/rt_lmp/*.json")
    stored = json.loads(path.read_text())
    assert stored["failed"] == ["range.lmp"]
    assert stored["engine"] == "hmco+great_expectations"
    gx_doc = stored["meta"]["great_expectations"]
    range_lmp = next(
        r for r in gx_doc["results"] if r["expectation_config"]["meta"]["hmco_name"] == "range.lmp"
    )
    assert range_lmp["success"] is False and range_lmp["result"]["unexpected_count"] == 1


_NO_GX = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from hmco.quality import build_gate
    from hmco.schemas import RT_LMP
    from hmco.sources.synthetic import synthetic_lmp
    from hmco.windows import Window

    window = Window(datetime(2026, 11, 26, 0, tzinfo=UTC), datetime(2026, 11, 26, 1, tzinfo=UTC))
    batch = synthetic_lmp(window, 5, iso="CAISO")
    if sys.argv[1] == "bad":
        batch = batch.set_column(batch.schema.get_field_index("iso"), "iso", [["ERCOT"] * batch.num_rows])
    result = build_gate("rt_lmp", documents=sys.argv[2]).check(batch, RT_LMP, window)
    print(result.passed, result.engine, "great_expectations" in sys.modules)
    """
)


def _run_without_gx(kind: str, documents: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _NO_GX, kind, documents], capture_output=True, text=True, check=True
    ).stdout
    return out.split()


def test_a_passing_default_gate_check_never_imports_great_expectations() -> None:
    assert _run_without_gx("good", "on_failure") == ["True", "hmco", "False"]


def test_documents_never_fails_a_batch_without_importing_great_expectations() -> None:
    assert _run_without_gx("bad", "never") == ["False", "hmco", "False"]


# --- routing by kind ----------------------------------------------------------------------------------


@register_kind("native_test_length", engine="great_expectations", validate=None)
def _length_between(gxe: ModuleType, exp: Expectation) -> Any:
    """A GX-only kind (no ``native=``): the default gate routes it to GX."""
    return gxe.ExpectColumnValueLengthsToBeBetween(column=exp.column, max_value=exp.params["max"])


def _native_positive(table: pa.Table, exp: Expectation, ctx: CheckContext) -> Any:
    assert exp.column is not None
    bad = pc.less_equal(table.column(exp.column), 0)
    count = int(pc.sum(bad).as_py() or 0)
    return exp.outcome(count == 0, unexpected_count=count, details={"engine": "hmco"})


@register_kind("native_test_positive", engine="great_expectations", native=_native_positive)
def _positive(gxe: ModuleType, exp: Expectation) -> Any:
    return gxe.ExpectColumnValuesToBeBetween(column=exp.column, min_value=0, strict_min=True)


def test_every_built_in_kind_has_a_native_implementation() -> None:
    builtin = (
        "columns",
        "types",
        "not_null",
        "unique",
        "between",
        "in_set",
        "row_count",
        "continuity",
        "recency",
    )
    assert [k for k in builtin if not get_kind(k).native] == []
    assert [k for k in builtin if get_kind(k).engine == "great_expectations"] == [
        "columns",
        "not_null",
        "unique",
        "between",
        "in_set",
        "row_count",
    ]  # these six keep their GX factory: the all-GX engine and the result documents use it


def test_a_gx_only_kind_runs_on_gx_and_the_rest_natively(batch: pa.Table) -> None:
    node = Expectation(name="node.short", kind="native_test_length", column="node", params={"max": 8})
    result = ExpectationGate(default_suite("rt_lmp").with_expectations(node)).check(batch, RT_LMP, WINDOW)
    assert result.engine == "hmco+great_expectations"
    outcome = next(o for o in result.outcomes if o.name == "node.short")
    assert not outcome.success and outcome.details["gx_type"] == "expect_column_value_lengths_to_be_between"
    assert outcome.unexpected_count == batch.num_rows
    assert next(o for o in result.outcomes if o.name == "range.lmp").details["engine"] == "hmco"
    assert result.meta["great_expectations"]["success"] is False  # failing: the document covers all GX kinds


def test_a_gx_kind_with_a_native_implementation_runs_natively_by_default(batch: pa.Table) -> None:
    exp = Expectation(name="energy.positive", kind="native_test_positive", column="energy")
    suite = Suite("rt_lmp", (exp,))
    native = ExpectationGate(suite).check(batch, RT_LMP, WINDOW)
    gx = ExpectationGate(suite, engine="great_expectations").check(batch, RT_LMP, WINDOW)
    assert native.outcomes[0].details["engine"] == "hmco"
    assert gx.outcomes[0].details["engine"] == "great_expectations"
    assert native.outcomes[0].success == gx.outcomes[0].success


def _native_always_passes(table: pa.Table, exp: Expectation, ctx: CheckContext) -> Any:
    return exp.outcome(True)


@register_kind("native_test_lenient", engine="great_expectations", native=_native_always_passes)
def _lenient(gxe: ModuleType, exp: Expectation) -> Any:
    return gxe.ExpectColumnValuesToBeBetween(column=exp.column, max_value=0)


def test_a_native_implementation_that_disagrees_with_gx_is_flagged_in_the_document_run(
    batch: pa.Table,
) -> None:
    exp = Expectation(name="lmp.nonpositive", kind="native_test_lenient", column="lmp")
    result = ExpectationGate(Suite("rt_lmp", (exp,)), documents="always").check(batch, RT_LMP, WINDOW)
    assert result.passed  # the native verdict stands ...
    assert result.meta["engines_disagree"] == ["lmp.nonpositive"]  # ... but the disagreement is on record


def test_an_arrow_kind_cannot_take_a_native_implementation() -> None:
    with pytest.raises(ValueError, match="GX kinds only"):
        register_kind("native_test_bad", engine="arrow", native=_native_positive)(_native_positive)


@pytest.mark.parametrize(("option", "value"), [("engine", "spark"), ("documents", "sometimes")])
def test_unknown_engine_or_document_policy_is_rejected(option: str, value: str) -> None:
    with pytest.raises(ValueError, match=option):
        ExpectationGate(**{option: value})  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=f"checks.{option}"):
        build_gate("rt_lmp", {option: value})


def test_uis_checks_choose_the_engine_and_a_keyword_overrides_them() -> None:
    assert build_gate("rt_lmp", {"engine": "great_expectations"}).engine == "great_expectations"
    gate = build_gate("rt_lmp", {"engine": "great_expectations", "documents": "always"}, engine="hmco")
    assert (gate.engine, gate.documents) == ("hmco", "always")


def test_a_native_gx_kind_that_cannot_evaluate_fails_closed_naming_the_problem(batch: pa.Table) -> None:
    exp = Expectation(name="node.range", kind="between", column="node", params={"min": 0})
    outcome = (
        ExpectationGate(Suite("rt_lmp", (exp,)), documents="never").check(batch, RT_LMP, WINDOW).outcomes[0]
    )
    assert not outcome.success
    assert "node" in outcome.details["error"] and "string" in outcome.details["error"]


# --- continuity on the shared scan -------------------------------------------------------------------


def test_continuity_far_off_timestamp_counts_its_whole_span_as_missing(batch: pa.Table) -> None:
    """A stray timestamp years back anchors its series' grid there (the sorted fallback, no huge bitmap)."""
    node = batch.column("node")[0].as_py()
    stray = set_values(batch, "ts", [0], datetime(2006, 11, 26, tzinfo=UTC))
    exp = default_suite("rt_lmp").get("continuity")
    outcome = check_continuity(stray, exp, CheckContext(window=WINDOW))
    span = (WINDOW.start + timedelta(minutes=55) - datetime(2006, 11, 26, tzinfo=UTC)) // timedelta(minutes=5)
    assert outcome.details["missing_intervals"] == span + 1 - 12
    (series,) = outcome.unexpected_sample
    assert series["node"] == node and series["first"] == "2006-11-26T00:00:00+00:00"
    assert series["missing_ts"][0] == "2006-11-26T00:05:00+00:00"


def test_continuity_samples_a_series_with_a_null_key_by_its_real_gaps(batch: pa.Table) -> None:
    node = batch.column("node")[0].as_py()
    rows = [i for i, v in enumerate(batch.column("node").to_pylist()) if v == node]
    nameless = set_values(batch, "node", rows, None).filter(
        pa.array([i != rows[3] for i in range(batch.num_rows)])
    )
    exp = default_suite("rt_lmp").get("continuity")
    (series,) = check_continuity(nameless, exp, CheckContext(window=WINDOW)).unexpected_sample
    assert series["node"] is None and series["missing"] == 1
    assert series["missing_ts"] == ["2026-11-26T00:15:00+00:00"]  # the one step dropped, nothing else


def test_continuity_with_duplicates_and_off_grid_rows_in_many_chunks(batch: pa.Table) -> None:
    shifted = set_values(batch, "ts", [7], datetime(2026, 11, 26, 0, 2, tzinfo=UTC))
    chunked = pa.concat_tables([shifted.slice(0, 30), shifted.slice(30), shifted.slice(10, 3)])
    exp = default_suite("rt_lmp").get("continuity")
    outcome = check_continuity(chunked, exp, CheckContext(window=WINDOW))
    assert (outcome.details["duplicate_rows"], outcome.details["off_grid_rows"]) == (3, 1)
    assert outcome.details["missing_intervals"] == 1
    assert outcome.details["series_failing"] == 4  # three duplicated series, one shifted (index 7, 10..12)


def test_the_gate_shares_one_scan_between_unique_in_set_and_continuity(batch: pa.Table) -> None:
    scan = BatchScan(batch)
    ctx = CheckContext(window=WINDOW, scan=scan)
    suite = default_suite("rt_lmp")
    for name in ("unique.primary_key", "in_set.iso", "continuity"):
        exp = suite.get(name)
        check = get_kind(exp.kind).check
        assert check is not None and check(batch, exp, ctx).success
    assert set(scan._codes) == {"iso", "market", "node", "ts"}  # each column hashed once, then reused
