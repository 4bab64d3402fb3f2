"""Expectation kinds come from one registry: a new kind is one function plus one registration.

The two kinds below are registered here, as a user would, and then used like the built-in ones: in a
UIS ``checks:`` section through ``build_gate``, or in a :class:`Suite` given to an ``ExpectationGate``,
on real rt_lmp batches.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import ValidationError

from hmco.errors import SpecError
from hmco.quality import (
    CheckContext,
    Expectation,
    ExpectationGate,
    ExpectationOutcome,
    Suite,
    build_gate,
    register_kind,
    registered_kinds,
)
from hmco.schemas import RT_LMP
from hmco.sources.synthetic import synthetic_lmp
from hmco.windows import Window

WINDOW = Window(datetime(2026, 11, 26, 0, tzinfo=UTC), datetime(2026, 11, 26, 1, tzinfo=UTC))


# --- the custom kinds: each is one function and one registration ---------------------------------


def _needs_start_and_end(exp: Expectation) -> None:
    if len(exp.columns) != 2:
        raise ValueError(f"expectation {exp.name!r} needs columns: [start, end]")


@register_kind("ends_after_start", engine="arrow", validate=_needs_start_and_end)
def ends_after_start(table: pa.Table, exp: Expectation, ctx: CheckContext) -> ExpectationOutcome:
    """Every row's interval ends after it starts (an Arrow check)."""
    start, end = exp.columns
    bad = table.filter(pc.less_equal(table.column(end), table.column(start)))
    sample = [
        f"{r[start].isoformat()} -> {r[end].isoformat()}" for r in bad.slice(0, ctx.sample_size).to_pylist()
    ]
    return exp.outcome(bad.num_rows == 0, unexpected_count=bad.num_rows, unexpected_sample=sample)


def _needs_regex(exp: Expectation) -> None:
    if not exp.column or not isinstance(exp.params.get("regex"), str):
        raise ValueError(f"expectation {exp.name!r} needs 'column' and params.regex")


@register_kind("matches_regex", engine="great_expectations", validate=_needs_regex)
def matches_regex(gxe: ModuleType, exp: Expectation) -> Any:
    """Every value of the column matches params.regex (a Great Expectations expectation)."""
    return gxe.ExpectColumnValuesToMatchRegex(column=exp.column, regex=exp.params["regex"])


ORDERED = {"name": "interval.ordered", "kind": "ends_after_start", "columns": ["ts", "interval_end"]}
NODE_NAMES = {
    "name": "node.pattern",
    "kind": "matches_regex",
    "column": "node",
    "params": {"regex": r"^[A-Z0-9_]+$"},
}


@pytest.fixture
def batch() -> pa.Table:
    return synthetic_lmp(WINDOW, 4, iso="CAISO")


def _set(table: pa.Table, name: str, row: int, value: object) -> pa.Table:
    values = table.column(name).to_pylist()
    values[row] = value
    return table.set_column(
        table.schema.get_field_index(name), name, pa.array(values, table.schema.field(name).type)
    )


# --- the registry -----------------------------------------------------------------------------------


def test_the_nine_built_in_kinds_are_registered_first() -> None:
    assert registered_kinds()[:9] == (
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


def test_unknown_kind_is_rejected_listing_the_registered_kinds() -> None:
    with pytest.raises(ValidationError) as info:
        Expectation(name="x", kind="monotone", column="lmp")
    (error,) = info.value.errors()
    assert error["loc"] == ("kind",)
    assert "unknown expectation kind 'monotone'" in error["msg"]
    assert "registered kinds: columns, types, not_null" in error["msg"]
    assert "ends_after_start" in error["msg"] and "matches_regex" in error["msg"]


def test_unknown_kind_in_uis_checks_is_a_spec_error_naming_the_field() -> None:
    with pytest.raises(SpecError) as info:
        build_gate("rt_lmp", {"expectations": [{**ORDERED, "kind": "monotone"}]})
    assert info.value.errors[0].startswith("checks.expectations.0.kind:")
    assert "registered kinds:" in info.value.errors[0]


def test_a_kind_name_can_be_registered_only_once() -> None:
    with pytest.raises(ValueError, match="'between' is already registered"):
        register_kind("between", engine="arrow")(ends_after_start)


def test_the_kinds_own_validation_runs_when_the_expectation_is_built() -> None:
    with pytest.raises(ValidationError, match=r"needs columns: \[start, end\]"):
        Expectation(name="interval.ordered", kind="ends_after_start", columns=("ts",))
    with pytest.raises(SpecError, match=r"needs 'column' and params\.regex"):
        build_gate("rt_lmp", {"expectations": [{**NODE_NAMES, "params": {}}]})


# --- a custom Arrow kind ------------------------------------------------------------------------------


def test_custom_arrow_kind_passes_a_good_batch(batch: pa.Table) -> None:
    result = build_gate("rt_lmp", {"expectations": [ORDERED]}).check(batch, RT_LMP, WINDOW)
    assert result.passed
    outcome = next(o for o in result.outcomes if o.name == "interval.ordered")
    assert outcome.success
    assert outcome.details == {"kind": "ends_after_start"}


def test_custom_arrow_kind_fails_a_bad_batch_by_name_with_its_sample(batch: pa.Table) -> None:
    backwards = _set(batch, "interval_end", 5, datetime(2026, 11, 25, 23, 55, tzinfo=UTC))
    result = build_gate("rt_lmp", {"expectations": [ORDERED]}).check(backwards, RT_LMP, WINDOW)
    assert [o.name for o in result.failed] == ["interval.ordered"]
    (outcome,) = result.failed
    assert outcome.unexpected_count == 1
    assert outcome.unexpected_sample == ["2026-11-26T00:05:00+00:00 -> 2026-11-25T23:55:00+00:00"]
    assert result.to_dict()["failed"] == ["interval.ordered"]


def test_custom_kind_takes_its_severity_from_the_expectation(batch: pa.Table) -> None:
    backwards = _set(batch, "interval_end", 0, datetime(2026, 11, 25, 23, 55, tzinfo=UTC))
    gate = build_gate("rt_lmp", {"expectations": [ORDERED], "severity": {"interval.ordered": "warn"}})
    result = gate.check(backwards, RT_LMP, WINDOW)
    assert result.passed
    assert [(o.name, o.severity) for o in result.warnings] == [("interval.ordered", "warn")]


def test_custom_kind_on_a_missing_column_fails_naming_the_column(batch: pa.Table) -> None:
    suite = Suite("rt_lmp", (Expectation.model_validate(ORDERED),))
    result = ExpectationGate(suite).check(batch.drop_columns(["interval_end"]), RT_LMP, WINDOW)
    (outcome,) = result.failed
    assert outcome.name == "interval.ordered"
    assert outcome.details["error"] == "column(s) ['interval_end'] missing from the batch"


# --- a custom Great Expectations kind ---------------------------------------------------------------


def test_custom_gx_kind_passes_a_good_batch(batch: pa.Table) -> None:
    suite = Suite("rt_lmp", (Expectation.model_validate(NODE_NAMES),))
    result = ExpectationGate(suite).check(batch, RT_LMP, WINDOW)
    assert result.passed
    (outcome,) = result.outcomes
    assert (outcome.name, outcome.success) == ("node.pattern", True)
    assert outcome.details["gx_type"] == "expect_column_values_to_match_regex"


def test_custom_gx_kind_fails_a_bad_batch_by_name_with_its_sample(batch: pa.Table) -> None:
    renamed = _set(batch, "node", 2, "caiso hub 2")
    result = build_gate("rt_lmp", {"expectations": [NODE_NAMES, ORDERED]}).check(renamed, RT_LMP, WINDOW)
    assert [o.name for o in result.failed] == ["node.pattern"]
    (outcome,) = result.failed
    assert outcome.column == "node"
    assert outcome.unexpected_count == 1
    assert outcome.unexpected_sample == ["caiso hub 2"]
    assert outcome.details["kind"] == "matches_regex"
