"""Expectation kinds: what each ``Expectation.kind`` means, kept in one registry.

A kind is one function plus one registration. The function says how the kind runs, on one of two
engines:

* ``engine="arrow"``: ``check(table, exp, ctx) -> ExpectationOutcome`` judges the batch directly on
  Arrow (``ctx`` is a :class:`CheckContext`: the window, the sample size and the batch's shared
  :class:`~hmco.quality.scan.BatchScan`);
* ``engine="great_expectations"``: ``factory(gxe, exp)`` returns a Great Expectations 1.x expectation
  built from ``gxe`` (the ``great_expectations.expectations`` module, passed in so that GX is imported
  only when it runs). It is compiled once per suite and must not depend on the window.

A GX kind may also give ``native=`` an Arrow check with the same verdicts: the default gate
(``engine="hmco"``) then runs it natively and calls GX only for kinds without one, and for the result
document of a failing batch. The built-in GX kinds all have one (:mod:`hmco.quality.native`).

The registration holds the rest: ``validate(exp)`` (raise ``ValueError``; it runs whenever an
:class:`~hmco.quality.suites.Expectation` of the kind is built, so a bad spec fails when loaded) and
``reads(exp)`` (columns read beyond ``column``/``columns``). Before a kind runs, the gate fails it,
naming them, when any column it reads is missing from the batch.

.. code-block:: python

    from hmco.quality import register_kind

    def _needs_column(exp):
        if not exp.column:
            raise ValueError(f"expectation {exp.name!r} needs 'column'")

    @register_kind("positive", engine="arrow", validate=_needs_column)
    def positive(table: pa.Table, exp: Expectation, ctx: CheckContext) -> ExpectationOutcome:
        bad = table.filter(pc.less_equal(table.column(exp.column), 0)).column(exp.column)
        sample = bad.slice(0, ctx.sample_size).to_pylist()
        return exp.outcome(len(bad) == 0, unexpected_count=len(bad), unexpected_sample=sample)

    Expectation(name="positive.lmp", kind="positive", column="lmp")  # usable in any suite or UIS spec

The nine built-in kinds are registered the same way at the bottom of this module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from hmco.quality import native as _native
from hmco.quality.checks import check_continuity, check_recency, check_types
from hmco.windows import Window, parse_duration

if TYPE_CHECKING:
    import pyarrow as pa

    from hmco.quality.gate import ExpectationOutcome
    from hmco.quality.scan import BatchScan
    from hmco.quality.suites import Expectation

__all__ = [
    "ArrowCheck",
    "CheckContext",
    "Engine",
    "ExpectationKind",
    "GXFactory",
    "get_kind",
    "gx_parameter",
    "gx_parameter_name",
    "register_kind",
    "registered_kinds",
]

Engine = Literal["arrow", "great_expectations"]
ArrowCheck = Callable[["pa.Table", "Expectation", "CheckContext"], "ExpectationOutcome"]
GXFactory = Callable[[ModuleType, "Expectation"], Any]
F = TypeVar("F", bound=Callable[..., Any])

_ENGINES: tuple[Engine, ...] = ("arrow", "great_expectations")
_lock = threading.Lock()
_registry: dict[str, ExpectationKind] = {}


@dataclass(frozen=True)
class CheckContext:
    """What an Arrow check knows besides the batch: the window, how much to sample, the shared scan.

    ``scan`` is the gate's :class:`~hmco.quality.scan.BatchScan` of the batch being checked (missing
    counts, codes, duplicate groups computed once for all expectations); ``None`` outside a gate.
    """

    window: Window | None = None
    sample_size: int = 20
    scan: BatchScan | None = None


@dataclass(frozen=True)
class ExpectationKind:
    """One registered kind: how it runs and how its expectations are validated.

    Attributes:
        name: the value of ``Expectation.kind``.
        engine: ``"arrow"`` (``check`` is set) or ``"great_expectations"`` (``factory`` is set, and
            ``check`` too when the kind has a native implementation).
        check: the native (Arrow) check, ``(table, exp, ctx) -> ExpectationOutcome``: the registered
            function of an Arrow kind, or ``native=`` of a GX kind.
        factory: the GX expectation factory, ``(gxe, exp) -> gx expectation``.
        validate: raises ``ValueError`` for an expectation of this kind with bad or missing parameters.
        reads: columns an expectation reads beyond its ``column``/``columns`` (e.g. a time column).
        require_columns: the gate fails the expectation when a column it reads is missing; ``False``
            when the check handles absent columns itself (``recency`` falls back to ``ts + frequency``).
        whole_batch: GX sees every column of the batch, not only those read (the column-set check).
        parameters: for GX kinds whose factory refers to :func:`gx_parameter`\\ s: their values for a
            window, computed per batch (``row_count`` per hour scales with the window).
        sample: reads the unexpected sample from GX's result dict (default ``partial_unexpected_list``).
    """

    name: str
    engine: Engine
    check: ArrowCheck | None = None
    factory: GXFactory | None = None
    validate: Callable[[Expectation], None] | None = None
    reads: Callable[[Expectation], Iterable[str]] | None = None
    require_columns: bool = True
    whole_batch: bool = False
    parameters: Callable[[Expectation, Window | None], dict[str, Any]] | None = None
    sample: Callable[[Mapping[str, Any]], list[Any]] | None = None

    @property
    def native(self) -> bool:
        """Whether hmco evaluates the kind itself (an Arrow kind, or a GX kind with ``native=``)."""
        return self.check is not None


def register_kind(
    name: str,
    *,
    engine: Engine,
    native: ArrowCheck | None = None,
    validate: Callable[[Expectation], None] | None = None,
    reads: Callable[[Expectation], Iterable[str]] | None = None,
    require_columns: bool = True,
    whole_batch: bool = False,
    parameters: Callable[[Expectation, Window | None], dict[str, Any]] | None = None,
    sample: Callable[[Mapping[str, Any]], list[Any]] | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as expectation kind ``name`` (see :class:`ExpectationKind`).

    ``native``: for a GX kind, an Arrow check giving the same verdicts, which the default gate runs
    instead of GX.

    Raises:
        ValueError: ``name`` is already registered, the engine is unknown, or GX-only options are
            given to an Arrow kind.
    """
    if engine not in _ENGINES:
        raise ValueError(f"kind {name!r}: engine must be one of {list(_ENGINES)}, not {engine!r}")
    if engine == "arrow" and (whole_batch or parameters or sample or native):
        raise ValueError(f"kind {name!r}: native, whole_batch, parameters and sample apply to GX kinds only")

    def register(fn: F) -> F:
        kind = ExpectationKind(
            name=name,
            engine=engine,
            check=fn if engine == "arrow" else native,
            factory=fn if engine == "great_expectations" else None,
            validate=validate,
            reads=reads,
            require_columns=require_columns,
            whole_batch=whole_batch,
            parameters=parameters,
            sample=sample,
        )
        with _lock:
            if name in _registry:
                raise ValueError(f"expectation kind {name!r} is already registered")
            _registry[name] = kind
        return fn

    return register


def get_kind(name: str) -> ExpectationKind:
    """The registered kind ``name``; ``ValueError`` listing the registered kinds if there is none."""
    kind = _registry.get(name)
    if kind is None:
        raise ValueError(
            f"unknown expectation kind {name!r}; registered kinds: {', '.join(registered_kinds())}"
        )
    return kind


def registered_kinds() -> tuple[str, ...]:
    """The names of every registered kind, in registration order."""
    return tuple(_registry)


def gx_parameter_name(exp: Expectation, key: str) -> str:
    """The name of the GX suite parameter ``key`` of ``exp`` (unique per expectation name)."""
    return "hmco_" + "".join(ch if ch.isalnum() else "_" for ch in exp.name) + f"_{key}"


def gx_parameter(exp: Expectation, key: str) -> dict[str, str]:
    """A reference to a value given per batch (see ``parameters`` of :func:`register_kind`)."""
    return {"$PARAMETER": gx_parameter_name(exp, key)}


# --- the built-in kinds ----------------------------------------------------------------------------


def _needs_column(exp: Expectation) -> None:
    if not exp.column:
        raise ValueError(f"expectation {exp.name!r} of kind {exp.kind!r} needs 'column'")


def _needs_list(exp: Expectation, param: str) -> None:
    if not isinstance(exp.params.get(param), list | tuple):
        raise ValueError(f"expectation {exp.name!r} of kind {exp.kind!r} needs params.{param} (a list)")


def _mostly(exp: Expectation) -> dict[str, float]:
    mostly = exp.params.get("mostly")
    return {"mostly": float(mostly)} if mostly is not None else {}


def _validate_columns(exp: Expectation) -> None:
    _needs_list(exp, "columns")


def _column_set_sample(result: Mapping[str, Any]) -> list[Any]:
    """The columns GX found missing or unexpected, as ``missing: x`` / ``unexpected: y``."""
    if "details" not in result:
        return list(result.get("partial_unexpected_list") or [])
    mismatch = result["details"].get("mismatched", {})
    return [f"missing: {c}" for c in mismatch.get("missing", [])] + [
        f"unexpected: {c}" for c in mismatch.get("unexpected", [])
    ]


@register_kind(
    "columns",
    engine="great_expectations",
    native=_native.columns,
    validate=_validate_columns,
    whole_batch=True,
    sample=_column_set_sample,
)
def _columns(gxe: ModuleType, exp: Expectation) -> Any:
    """Every listed column is present (``exact``: and no other)."""
    return gxe.ExpectTableColumnsToMatchSet(
        column_set=list(exp.params["columns"]), exact_match=bool(exp.params.get("exact", False))
    )


def _validate_types(exp: Expectation) -> None:
    if not isinstance(exp.params.get("types"), dict):
        raise ValueError(f"expectation {exp.name!r} of kind 'types' needs params.types ({{column: type}})")


register_kind("types", engine="arrow", validate=_validate_types)(check_types)


@register_kind("not_null", engine="great_expectations", native=_native.not_null, validate=_needs_column)
def _not_null(gxe: ModuleType, exp: Expectation) -> Any:
    return gxe.ExpectColumnValuesToNotBeNull(column=exp.column, **_mostly(exp))


def _validate_unique(exp: Expectation) -> None:
    if not (exp.columns or exp.column):
        raise ValueError(f"expectation {exp.name!r} of kind 'unique' needs 'columns' (or 'column')")


@register_kind("unique", engine="great_expectations", native=_native.unique, validate=_validate_unique)
def _unique(gxe: ModuleType, exp: Expectation) -> Any:
    cols = list(exp.columns or (exp.column,))
    if len(cols) == 1:
        return gxe.ExpectColumnValuesToBeUnique(column=cols[0], **_mostly(exp))
    return gxe.ExpectCompoundColumnsToBeUnique(column_list=cols, **_mostly(exp))


def _validate_between(exp: Expectation) -> None:
    _needs_column(exp)
    if exp.params.get("min") is None and exp.params.get("max") is None:
        raise ValueError(f"expectation {exp.name!r} of kind 'between' needs params.min and/or params.max")


@register_kind("between", engine="great_expectations", native=_native.between, validate=_validate_between)
def _between(gxe: ModuleType, exp: Expectation) -> Any:
    p = exp.params
    return gxe.ExpectColumnValuesToBeBetween(
        column=exp.column,
        min_value=p.get("min"),
        max_value=p.get("max"),
        strict_min=bool(p.get("strict_min", False)),
        strict_max=bool(p.get("strict_max", False)),
        **_mostly(exp),
    )


def _validate_in_set(exp: Expectation) -> None:
    _needs_column(exp)
    _needs_list(exp, "values")


@register_kind("in_set", engine="great_expectations", native=_native.in_set, validate=_validate_in_set)
def _in_set(gxe: ModuleType, exp: Expectation) -> Any:
    return gxe.ExpectColumnValuesToBeInSet(
        column=exp.column, value_set=list(exp.params["values"]), **_mostly(exp)
    )


def _validate_row_count(exp: Expectation) -> None:
    if exp.params.get("per", "window") not in ("window", "hour", "day"):
        raise ValueError(f"expectation {exp.name!r}: params.per must be window, hour or day")


def _row_count_bounds(exp: Expectation, window: Window | None) -> dict[str, Any]:
    """The GX suite parameters of a per hour/day ``row_count``: its limits for this window."""
    if exp.params.get("per", "window") == "window":
        return {}
    limits = dict(zip(("min", "max"), _native.row_count_limits(exp, window), strict=True))
    return {gx_parameter_name(exp, f"{k}_value"): v for k, v in limits.items() if v is not None}


@register_kind(
    "row_count",
    engine="great_expectations",
    native=_native.row_count,
    validate=_validate_row_count,
    parameters=_row_count_bounds,
)
def _row_count(gxe: ModuleType, exp: Expectation) -> Any:
    bounds: dict[str, Any] = {"min_value": exp.params.get("min"), "max_value": exp.params.get("max")}
    if exp.params.get("per", "window") != "window":  # scaled by the window's length per batch
        bounds = {k: gx_parameter(exp, k) for k, v in bounds.items() if v is not None}
    return gxe.ExpectTableRowCountToBeBetween(**bounds)


def _validate_continuity(exp: Expectation) -> None:
    if not exp.params.get("frequency"):
        raise ValueError(f"expectation {exp.name!r} of kind 'continuity' needs params.frequency")
    parse_duration(exp.params["frequency"])


def _continuity_reads(exp: Expectation) -> tuple[str, ...]:
    return (str(exp.params.get("time_column", "ts")),)


register_kind("continuity", engine="arrow", validate=_validate_continuity, reads=_continuity_reads)(
    check_continuity
)


def _validate_recency(exp: Expectation) -> None:
    p = exp.params
    if not (p.get("end_column") or p.get("frequency")):
        raise ValueError(
            f"expectation {exp.name!r} of kind 'recency' needs params.end_column or params.frequency"
        )
    if p.get("frequency"):
        parse_duration(p["frequency"])
    if parse_duration(p.get("max_lag", 0)) < timedelta(0):
        raise ValueError(f"expectation {exp.name!r}: params.max_lag must not be negative")


def _recency_reads(exp: Expectation) -> tuple[str, ...]:
    return (str(exp.params.get("end_column") or exp.params.get("time_column", "ts")),)


register_kind(
    "recency", engine="arrow", validate=_validate_recency, reads=_recency_reads, require_columns=False
)(check_recency)
