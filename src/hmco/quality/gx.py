"""Run expectations on Great Expectations 1.x: the ``great_expectations`` engine and GX's result documents.

GX is imported on first use (it takes seconds and loads scipy), into one process-wide *ephemeral*
context with analytics and progress bars off. Each set of expectations is compiled once into a GX suite
+ validation definition and cached by its fingerprint, so a batch costs one Arrow→pandas conversion and
one ``ValidationDefinition.run``. :func:`validate` returns hmco outcomes and GX's own result document;
:class:`~hmco.quality.expectation_gate.ExpectationGate` decides when GX runs (every batch with
``engine="great_expectations"``; otherwise only for kinds without a native implementation and for the
document of a failing batch).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hmco._dependencies import import_optional
from hmco.quality.checks import json_safe
from hmco.quality.gate import ExpectationOutcome
from hmco.quality.kinds import get_kind
from hmco.quality.suites import Expectation, Suite
from hmco.windows import Window

__all__ = ["GXRun", "missing_result", "validate"]


@dataclass
class _Compiled:
    """A suite compiled into GX objects, reused for every batch."""

    validation: Any
    gx_names: dict[str, Expectation]
    parameterized: list[Expectation]


class _GXRuntime:
    """The process-wide ephemeral GX context and the compiled suites, keyed by fingerprint."""

    _lock = threading.RLock()
    _instance: _GXRuntime | None = None

    def __init__(self) -> None:
        gx = import_optional("great_expectations")
        base = import_optional("great_expectations.data_context.types.base")
        self.gx = gx
        self.gxe = import_optional("great_expectations.expectations")
        self.context = gx.get_context(mode="ephemeral")
        self.context.enable_analytics(False)
        self.context.variables.progress_bars = base.ProgressBarsConfig(globally=False)
        self.datasource = self.context.data_sources.add_pandas("hmco")
        self.compiled: dict[str, _Compiled] = {}

    @classmethod
    def get(cls) -> _GXRuntime:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def compile(self, suite: Suite, expectations: list[Expectation]) -> _Compiled:
        key = suite.fingerprint
        with self._lock:
            if key in self.compiled:
                return self.compiled[key]
            name = f"{suite.dataset}-{key}"
            asset = self.datasource.add_dataframe_asset(name)
            batch_def = asset.add_batch_definition_whole_dataframe("batch")
            gx_suite = self.context.suites.add(self.gx.ExpectationSuite(name=name))
            for exp in expectations:
                gx_suite.add_expectation(self._to_gx(exp))
            vd = self.context.validation_definitions.add(
                self.gx.ValidationDefinition(name=name, data=batch_def, suite=gx_suite)
            )
            parameterized = [e for e in expectations if get_kind(e.kind).parameters is not None]
            compiled = _Compiled(vd, {e.name: e for e in expectations}, parameterized)
            self.compiled[key] = compiled
            return compiled

    def _to_gx(self, exp: Expectation) -> Any:
        """Build the GX expectation of ``exp`` with its kind's factory, tagged with the hmco name."""
        factory = get_kind(exp.kind).factory
        if factory is None:
            raise ValueError(
                f"expectation {exp.name!r}: kind {exp.kind!r} does not run in Great Expectations"
            )
        gx_exp = factory(self.gxe, exp)
        gx_exp.meta = {**(gx_exp.meta or {}), "hmco_name": exp.name}
        return gx_exp

    def run(self, compiled: _Compiled, frame: Any, parameters: dict[str, Any], sample_size: int) -> Any:
        with self._lock:  # GX contexts are not thread-safe
            result = compiled.validation.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=parameters or None,
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": sample_size},
            )
            # ValidationDefinition.run also keeps every result in the context's in-memory store; hmco
            # stores results itself (GateResult JSON), so drop them or a long-running process grows per batch.
            store = self.context.validation_results_store
            for key in store.list_keys():
                store.remove_key(key)
            return result


@dataclass(frozen=True)
class GXRun:
    """One Great Expectations validation of a batch: hmco outcomes, GX's own result document, timings."""

    outcomes: dict[str, ExpectationOutcome]
    document: dict[str, Any]
    seconds: dict[str, float]


def validate(
    dataset: str, expectations: list[Expectation], table: pa.Table, window: Window | None, sample_size: int
) -> GXRun:
    """Run ``expectations`` (GX kinds, columns present) on ``table`` in one GX validation.

    The set is compiled once per content (cached by fingerprint). Unexpected samples are the rows GX
    names (``partial_unexpected_index_list``) read back from Arrow, so they look the same whichever
    engine judged. ``document`` is GX's JSON result (``ExpectationSuiteValidationResult``), strict JSON.
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    runtime = _GXRuntime.get()
    compiled = runtime.compile(Suite(dataset, tuple(expectations)), expectations)
    seconds["gx_compile"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    frame = _to_pandas(table, expectations)
    seconds["to_pandas"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    params = _parameters(compiled.parameterized, window)
    result = runtime.run(compiled, frame, params, sample_size)
    seconds["gx_run"] = time.perf_counter() - t0

    outcomes: dict[str, ExpectationOutcome] = {}
    for res in result.results:
        name = (res.expectation_config.meta or {}).get("hmco_name")
        exp = compiled.gx_names.get(name) if name else None
        if exp is not None:
            outcomes[exp.name] = _outcome(exp, res, sample_size, table)
    for exp in expectations:  # an expectation GX dropped from its results did not pass
        outcomes.setdefault(exp.name, missing_result(exp))
    return GXRun(outcomes, json_safe(result.to_json_dict()), seconds)


def _to_pandas(table: pa.Table, expectations: list[Expectation]) -> Any:
    """Convert only what GX needs: the columns the expectations read, or all for a whole-batch kind.

    Default pandas dtypes are used on purpose: measured, GX on ``pd.ArrowDtype`` columns is ~10x
    slower than on numpy/``str`` columns, which outweighs the cheaper conversion.
    """
    if any(get_kind(e.kind).whole_batch for e in expectations):
        cols = table.column_names
    else:
        wanted = {c for e in expectations for c in e.key_columns}
        cols = [c for c in table.column_names if c in wanted]
    return table.select(cols).to_pandas(split_blocks=True)


def _parameters(expectations: list[Expectation], window: Window | None) -> dict[str, Any]:
    """The values of the suite parameters of this batch (e.g. row-count bounds scaled to the window)."""
    out: dict[str, Any] = {}
    for exp in expectations:
        parameters = get_kind(exp.kind).parameters
        if parameters is not None:
            out.update(parameters(exp, window))
    return out


def _sample(exp: Expectation, result: dict[str, Any], table: pa.Table) -> list[Any]:
    """The unexpected values GX reports, read from the Arrow rows it names (pandas would show NaN/NaT)."""
    listed = list(result.get("partial_unexpected_list") or [])
    rows = result.get("partial_unexpected_index_list")
    if not listed or not isinstance(rows, list) or len(rows) != len(listed):
        return listed
    if not all(isinstance(r, int) and 0 <= r < table.num_rows for r in rows):
        return listed
    if isinstance(listed[0], dict):
        columns = [c for c in listed[0] if c in table.column_names]
        return table.select(columns).take(pa.array(rows, pa.int64())).to_pylist()
    if exp.column is not None and exp.column in table.column_names:
        return table.column(exp.column).take(pa.array(rows, pa.int64())).to_pylist()
    return listed


def missing_result(exp: Expectation) -> ExpectationOutcome:
    return ExpectationOutcome(
        name=exp.name,
        success=False,
        severity=exp.severity,
        column=exp.column,
        details={"error": "Great Expectations returned no result for this expectation", "kind": exp.kind},
    )


def _outcome(exp: Expectation, res: Any, sample_size: int, table: pa.Table) -> ExpectationOutcome:
    """Translate one GX ``ExpectationValidationResult`` into an hmco outcome."""
    result = dict(res.result or {})
    details: dict[str, Any] = {
        "kind": exp.kind,
        "engine": "great_expectations",
        "gx_type": res.expectation_config.type,
    }
    info = res.exception_info or {}
    errors = [
        v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("raised_exception")
    ]
    if info.get("raised_exception"):
        errors.append(info.get("exception_message"))
    if errors:
        details["error"] = "; ".join(str(e) for e in errors if e)
    for key in ("observed_value", "unexpected_percent", "missing_count", "element_count", "details"):
        if key in result:
            details[key] = json_safe(result[key])
    read_sample = get_kind(exp.kind).sample
    sample = read_sample(result) if read_sample is not None else _sample(exp, result, table)
    unexpected = result.get("unexpected_count")
    return ExpectationOutcome(
        name=exp.name,
        success=bool(res.success) and not errors,
        severity=exp.severity,
        column=exp.column,
        unexpected_count=int(unexpected if unexpected is not None else len(sample)),
        unexpected_sample=json_safe(list(sample)[:sample_size]),
        details=details,
    )
