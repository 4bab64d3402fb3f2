"""The publish gate: run a :class:`~hmco.quality.suites.Suite` on a batch and say whether it may be published.

:class:`ExpectationGate` implements :class:`~hmco.quality.gate.Gate`. By default (``engine="hmco"``)
every expectation whose kind has a native implementation is judged on Arrow, sharing one
:class:`~hmco.quality.scan.BatchScan` of the batch; only kinds without one (a user's GX-only kind) run
on Great Expectations. GX is kept for what only it adds: its validation result document, attached to
``GateResult.meta["great_expectations"]`` for failing batches (``documents="on_failure"``, so what is
stored with a quarantined batch carries it), for every batch (``"always"``) or never; and the all-GX
path of old (``engine="great_expectations"``). A passing batch on the default suite never imports GX.

An expectation whose columns are missing from the batch fails naming them; a native evaluation of a GX
kind that raises fails like GX's would (its exception recorded), so the gate always fails closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, get_args

import pyarrow as pa

from hmco.quality.checks import missing_columns_outcome
from hmco.quality.gate import ExpectationOutcome, GateResult
from hmco.quality.kinds import CheckContext, get_kind
from hmco.quality.scan import BatchScan
from hmco.quality.suites import Expectation, Suite, default_suite
from hmco.schemas import Dataset, get_dataset
from hmco.windows import Window

if TYPE_CHECKING:
    from hmco.quality.gx import GXRun

__all__ = ["Documents", "ExpectationGate", "GateEngine"]

log = logging.getLogger(__name__)

GateEngine = Literal["hmco", "great_expectations"]
Documents = Literal["on_failure", "always", "never"]
_GX = "great_expectations"


class ExpectationGate:
    """A :class:`~hmco.quality.gate.Gate` running a suite natively, with GX where it adds something.

    Args:
        suite: the expectations; ``None`` means ``default_suite(dataset)`` of each checked dataset.
        sample_size: how many unexpected values to keep per failing expectation.
        engine: ``"hmco"`` (native where a kind has it) or ``"great_expectations"`` (every GX kind on GX).
        documents: when to attach GX's result document to ``GateResult.meta["great_expectations"]``:
            ``"on_failure"`` (a batch with an error-level failure; GX runs once more on it),
            ``"always"`` (GX runs on every batch) or ``"never"``.
    """

    def __init__(
        self,
        suite: Suite | None = None,
        *,
        sample_size: int = 20,
        engine: GateEngine = "hmco",
        documents: Documents = "on_failure",
    ) -> None:
        if engine not in get_args(GateEngine):
            raise ValueError(f"engine must be one of {list(get_args(GateEngine))}, not {engine!r}")
        if documents not in get_args(Documents):
            raise ValueError(f"documents must be one of {list(get_args(Documents))}, not {documents!r}")
        self.suite = suite
        self.sample_size = sample_size
        self.engine: GateEngine = engine
        self.documents: Documents = documents

    def __repr__(self) -> str:
        name = self.suite.dataset if self.suite else "default"
        size = len(self.suite) if self.suite else "default"
        options = f"engine={self.engine!r}, documents={self.documents!r}"
        return f"ExpectationGate({name}, {size} expectations, {options})"

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
        ctx = CheckContext(window=window, sample_size=self.sample_size, scan=BatchScan(table))
        on_gx: list[Expectation] = []  # judged by GX
        gx_capable: list[Expectation] = []  # what a GX document covers
        for exp in suite:
            kind = get_kind(exp.kind)
            absent = [c for c in exp.key_columns if c not in present] if kind.require_columns else []
            if absent:  # GX would only say "metric error", an Arrow check would raise: name the column
                outcomes[exp.name] = missing_columns_outcome(exp, absent)
                continue
            if kind.factory is not None:
                gx_capable.append(exp)
            if kind.check is not None and (self.engine == "hmco" or kind.factory is None):
                outcomes[exp.name] = _native(kind.engine, kind.check, table, exp, ctx)
            else:
                on_gx.append(exp)
        timings["native"] = time.perf_counter() - t0

        engines = {"hmco"} if not on_gx or len(on_gx) < len(suite) else set()
        meta: dict[str, Any] = {"suite": suite.fingerprint}
        run: GXRun | None = None
        if on_gx:
            run = self._gx(suite.dataset, on_gx, table, window, timings)
            outcomes.update(run.outcomes)
            engines.add(_GX)
        if self._wants_document(outcomes.values()) and gx_capable:
            if run is None or len(on_gx) < len(gx_capable):
                run = self._document(suite.dataset, gx_capable, table, window, timings, meta)
            if run is not None:
                engines.add(_GX)
                meta[_GX] = run.document
                _record_disagreements(outcomes, run.outcomes, meta)

        ordered = [outcomes[e.name] for e in suite if e.name in outcomes]
        timings["total"] = time.perf_counter() - t0
        meta["seconds"] = {k: round(v, 4) for k, v in timings.items()}
        return GateResult(
            dataset=ds.name,
            outcomes=ordered,
            row_count=table.num_rows,
            window=(window.start.isoformat(), window.end.isoformat()) if window else None,
            engine=_GX if self.engine == _GX else "+".join(e for e in ("hmco", _GX) if e in engines),
            meta=meta,
        )

    def _wants_document(self, outcomes: Iterable[ExpectationOutcome]) -> bool:
        if self.documents == "never":
            return False
        return self.documents == "always" or any(not o.success and o.severity == "error" for o in outcomes)

    def _gx(
        self,
        dataset: str,
        expectations: list[Expectation],
        table: pa.Table,
        window: Window | None,
        timings: dict[str, float],
    ) -> GXRun:
        from hmco.quality import gx

        run = gx.validate(dataset, expectations, table, window, self.sample_size)
        for key, value in run.seconds.items():
            timings[key] = timings.get(key, 0.0) + value
        return run

    def _document(
        self,
        dataset: str,
        expectations: list[Expectation],
        table: pa.Table,
        window: Window | None,
        timings: dict[str, float],
        meta: dict[str, Any],
    ) -> GXRun | None:
        """GX's result document on this batch; a GX that cannot run leaves the verdict as it was, noted."""
        try:
            return self._gx(dataset, expectations, table, window, timings)
        except Exception as exc:  # the document is evidence, not the verdict: never let it change one
            log.warning("%s: no Great Expectations result document for this batch: %s", dataset, exc)
            meta[f"{_GX}_error"] = f"{type(exc).__name__}: {exc}"
            return None


def _native(
    engine: str, check: Any, table: pa.Table, exp: Expectation, ctx: CheckContext
) -> ExpectationOutcome:
    """Run a native check; for a GX kind an exception fails the expectation (GX's ``catch_exceptions``)."""
    if engine != _GX:
        return check(table, exp, ctx)
    try:
        return check(table, exp, ctx)
    except Exception as exc:
        log.debug("expectation %s could not be evaluated", exp.name, exc_info=True)
        return ExpectationOutcome(
            name=exp.name,
            success=False,
            severity=exp.severity,
            column=exp.column,
            details={"kind": exp.kind, "engine": "hmco", "error": f"{type(exc).__name__}: {exc}"},
        )


def _record_disagreements(
    native: dict[str, ExpectationOutcome], gx: dict[str, ExpectationOutcome], meta: dict[str, Any]
) -> None:
    """Note (and log) expectations the engines judge differently: they must not, so it is worth a look."""
    differ = sorted(n for n, o in gx.items() if n in native and native[n].success != o.success)
    if differ:
        meta["engines_disagree"] = differ
        log.warning("hmco and Great Expectations disagree on %s", ", ".join(differ))
