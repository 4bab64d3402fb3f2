"""Run an hmco :class:`~hmco.quality.suites.Suite` on Great Expectations 1.x: the publish gate.

:class:`ExpectationGate` implements :class:`~hmco.quality.gate.Gate`. GX is imported on first use
(it takes seconds and loads scipy), into one process-wide *ephemeral* context with analytics and
progress bars off. Each suite is compiled once into a GX suite + validation definition and cached by
the suite's fingerprint, so a batch costs one Arrow→pandas conversion and one ``ValidationDefinition.run``.

Routing follows each expectation's registered kind (:mod:`hmco.quality.kinds`): GX kinds (``columns``,
``not_null``, ``unique``, ``between``, ``in_set``, ``row_count``) run in that one GX validation; Arrow
kinds (``types``: Arrow types, which pandas dtypes cannot express; ``continuity`` and ``recency``: no GX
builtin, and recency needs the window) run vectorized on the batch. Every outcome lands in one
:class:`GateResult`, in suite order. An expectation whose columns are missing from the batch, or that
GX cannot evaluate, counts as failed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hmco._dependencies import import_optional
from hmco.quality.checks import json_safe, missing_columns_outcome
from hmco.quality.gate import ExpectationOutcome, GateResult
from hmco.quality.kinds import CheckContext, get_kind
from hmco.quality.suites import Expectation, Suite, default_suite
from hmco.schemas import Dataset, get_dataset
from hmco.windows import Window

__all__ = ["ExpectationGate"]

_GX = "great_expectations"


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


class ExpectationGate:
    """A :class:`~hmco.quality.gate.Gate` running a suite on Great Expectations (plus Arrow checks).

    Args:
        suite: the expectations; ``None`` means ``default_suite(dataset)`` of each checked dataset.
        sample_size: how many unexpected values to keep per failing expectation.
    """

    engine = "great_expectations"

    def __init__(self, suite: Suite | None = None, *, sample_size: int = 20) -> None:
        self.suite = suite
        self.sample_size = sample_size

    def __repr__(self) -> str:
        name = self.suite.dataset if self.suite else "default"
        return f"ExpectationGate({name}, {len(self.suite) if self.suite else 'default'} expectations)"

    def suite_for(self, dataset: Dataset | str) -> Suite:
        ds = get_dataset(dataset)
        if self.suite is None:
            return default_suite(ds)
        if self.suite.dataset != ds.name:
            raise ValueError(f"gate suite is for {self.suite.dataset!r}, asked to check {ds.name!r}")
        return self.suite

    def check(self, table: pa.Table, dataset: Dataset | str, window: Window | None = None) -> GateResult:
        """Validate one batch; error-level failures make ``result.passed`` false."""
        ds = get_dataset(dataset)
        suite = self.suite_for(ds)
        timings: dict[str, float] = {}
        outcomes: dict[str, ExpectationOutcome] = {}
        present = set(table.column_names)

        t0 = time.perf_counter()
        ctx = CheckContext(window=window, sample_size=self.sample_size)
        runnable: list[Expectation] = []
        for exp in suite:
            kind = get_kind(exp.kind)
            absent = [c for c in exp.key_columns if c not in present] if kind.require_columns else []
            if absent:  # GX would only say "metric error", an Arrow check would raise: name the column
                outcomes[exp.name] = missing_columns_outcome(exp, absent)
            elif kind.check is not None:
                outcomes[exp.name] = kind.check(table, exp, ctx)
            else:
                runnable.append(exp)
        timings["arrow"] = time.perf_counter() - t0
        if runnable:
            outcomes.update(self._run_gx(suite, runnable, table, window, timings))

        ordered = [outcomes[e.name] for e in suite if e.name in outcomes]
        timings["total"] = time.perf_counter() - t0
        return GateResult(
            dataset=ds.name,
            outcomes=ordered,
            row_count=table.num_rows,
            window=(window.start.isoformat(), window.end.isoformat()) if window else None,
            engine=self.engine,
            meta={"suite": suite.fingerprint, "seconds": {k: round(v, 4) for k, v in timings.items()}},
        )

    def _run_gx(
        self,
        suite: Suite,
        runnable: list[Expectation],
        table: pa.Table,
        window: Window | None,
        timings: dict[str, float],
    ) -> dict[str, ExpectationOutcome]:
        t0 = time.perf_counter()
        runtime = _GXRuntime.get()
        # Compile the suite's runnable part (a suite minus expectations on missing columns is its own key).
        gx_part = [e for e in suite if get_kind(e.kind).engine == _GX]
        sub = suite if len(runnable) == len(gx_part) else Suite(suite.dataset, tuple(runnable))
        compiled = runtime.compile(sub, runnable)
        timings["gx_compile"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        frame = _to_pandas(table, runnable)
        timings["to_pandas"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        params = _parameters(compiled.parameterized, window)
        result = runtime.run(compiled, frame, params, self.sample_size)
        timings["gx_run"] = time.perf_counter() - t0

        outcomes: dict[str, ExpectationOutcome] = {}
        for res in result.results:
            name = (res.expectation_config.meta or {}).get("hmco_name")
            exp = compiled.gx_names.get(name) if name else None
            if exp is not None:
                outcomes[exp.name] = _outcome(exp, res, self.sample_size)
        for exp in runnable:  # an expectation GX dropped from its results did not pass
            outcomes.setdefault(exp.name, missing_result(exp))
        return outcomes


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


def missing_result(exp: Expectation) -> ExpectationOutcome:
    return ExpectationOutcome(
        name=exp.name,
        success=False,
        severity=exp.severity,
        column=exp.column,
        details={"error": "Great Expectations returned no result for this expectation", "kind": exp.kind},
    )


def _outcome(exp: Expectation, res: Any, sample_size: int) -> ExpectationOutcome:
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
    sample = read_sample(result) if read_sample is not None else (result.get("partial_unexpected_list") or [])
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
