"""The ``checks:`` section of a UIS spec: overrides applied on top of a dataset's default suite.

.. code-block:: yaml

    checks:
      lmp: {min: -500, max: 3000}             # shorthand for ranges.lmp
      ranges:
        lmp: {min: -500, max: 3000}           # bounds for range.lmp (null removes it)
        congestion: {min: -1000, severity: warn}
      allowed:
        iso: [CAISO]                          # or {values: [...], severity: warn}
      row_count: {min: 100, per: hour}        # per window (default), hour or day
      continuity: {edges: true}               # or false to switch it off
      recency: {max_lag: 30m, severity: warn} # newest interval end >= window end - max_lag (default SLA);
                                              # true turns it on, false (or enabled: false) off
      severity: {in_set.market: warn}         # change the severity of any expectation by name
      disable: [range.lmp]                    # drop expectations by name
      expectations:                           # add (or replace, by name) full expectations
        - {name: lmp_not_flat, kind: between, column: lmp, params: {min: -1999}, severity: warn}
      sample_size: 20
      engine: hmco                            # or great_expectations: every GX kind judged by GX
      documents: on_failure                   # attach GX's result document: on_failure, always, never

Order of application: defaults → ranges/allowed/row_count/continuity/recency → expectations → severity
→ disable.
``build_gate(dataset, checks)`` turns it into a :class:`~hmco.quality.expectation_gate.ExpectationGate`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hmco.errors import SpecError
from hmco.quality.expectation_gate import Documents, ExpectationGate, GateEngine
from hmco.quality.suites import (
    END_COLUMN,
    Expectation,
    Severity,
    Suite,
    continuity_expectation,
    default_suite,
    recency_expectation,
)
from hmco.schemas import Dataset, get_dataset
from hmco.windows import parse_duration

__all__ = [
    "AllowedCheck",
    "ContinuityCheck",
    "QualitySpec",
    "RangeCheck",
    "RecencyCheck",
    "RowCountCheck",
    "build_gate",
    "build_suite",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeCheck(_Strict):
    """Bounds of a numeric column (either may be omitted)."""

    min: float | None = None
    max: float | None = None
    mostly: float | None = Field(None, ge=0.0, le=1.0)
    severity: Severity | None = None

    @model_validator(mode="after")
    def _bounds(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("give min and/or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class AllowedCheck(_Strict):
    """The set of values a column may take."""

    values: list[str] = Field(min_length=1)
    mostly: float | None = Field(None, ge=0.0, le=1.0)
    severity: Severity | None = None


class RowCountCheck(_Strict):
    """Row-count bounds per window (or per hour/day of the window)."""

    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)
    per: str = "window"
    severity: Severity | None = None

    @field_validator("per")
    @classmethod
    def _per(cls, value: str) -> str:
        if value not in ("window", "hour", "day"):
            raise ValueError("must be window, hour or day")
        return value


class ContinuityCheck(_Strict):
    """Gap/duplicate check of interval series; ``edges`` also requires each series to span the window."""

    enabled: bool = True
    frequency: str | float | None = Field(None, description="step, e.g. 5m; default the dataset's")
    edges: bool = False
    severity: Severity | None = None

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: str | float | None) -> str | float | None:
        if value is not None and parse_duration(value) <= timedelta(0):
            raise ValueError("must be positive")
        return value


class RecencyCheck(_Strict):
    """The batch must reach ``window.end - max_lag`` (its newest interval end); ``max_lag`` defaults to the SLA."""

    enabled: bool = True
    max_lag: str | float | None = Field(
        None, description="allowed shortfall, e.g. 30m; default the dataset's SLA"
    )
    severity: Severity | None = None

    @field_validator("max_lag")
    @classmethod
    def _max_lag(cls, value: str | float | None) -> str | float | None:
        if value is not None and parse_duration(value) < timedelta(0):
            raise ValueError("must not be negative")
        return value


class QualitySpec(_Strict):
    """Overrides of the default suite, as written under ``checks:`` in a UIS YAML spec."""

    ranges: dict[str, RangeCheck | None] = Field(default_factory=dict)
    allowed: dict[str, AllowedCheck | list[str] | None] = Field(default_factory=dict)
    row_count: RowCountCheck | None = None
    continuity: ContinuityCheck | bool | None = None
    recency: RecencyCheck | bool | None = None
    severity: dict[str, Severity] = Field(default_factory=dict)
    disable: list[str] = Field(default_factory=list)
    expectations: list[Expectation] = Field(default_factory=list)
    sample_size: int = Field(20, ge=1, le=1000)
    engine: GateEngine = "hmco"
    documents: Documents = "on_failure"

    @model_validator(mode="before")
    @classmethod
    def _column_shorthand(cls, data: Any) -> Any:
        """``lmp: {min: -500, max: 3000}`` at the top level means ``ranges: {lmp: {...}}``."""
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        shorthand = {
            k: v
            for k, v in data.items()
            if k not in known and isinstance(v, dict) and v and set(v) <= set(RangeCheck.model_fields)
        }
        if not shorthand:
            return data
        rest = {k: v for k, v in data.items() if k not in shorthand}
        ranges = dict(rest.get("ranges") or {})
        clash = sorted(set(ranges) & set(shorthand))
        if clash:
            raise ValueError(f"column(s) {clash} given both at the top level and under ranges")
        return {**rest, "ranges": {**ranges, **shorthand}}


def build_suite(dataset: Dataset | str, checks: QualitySpec | dict[str, Any] | None = None) -> Suite:
    """The dataset's default suite with ``checks`` applied; unknown columns/names raise :class:`SpecError`."""
    ds = get_dataset(dataset)
    spec = _validate(checks)
    suite = default_suite(ds)
    problems: list[str] = []
    columns = set(ds.schema.names)

    changes: list[Expectation] = []
    drops: list[str] = []
    for col, rng in spec.ranges.items():
        name = f"range.{col}"
        if col not in columns:
            problems.append(f"checks.ranges.{col}: {ds.name} has no column {col!r}")
        elif rng is None:
            drops.append(name)
        else:
            prior = suite.get(name) if name in suite else None
            params: dict[str, Any] = {
                "min": rng.min,
                "max": rng.max,
                **({"mostly": rng.mostly} if rng.mostly is not None else {}),
            }
            severity = rng.severity or (prior.severity if prior else "error")
            changes.append(
                Expectation(name=name, kind="between", column=col, params=params, severity=severity)
            )
    for col, allowed in spec.allowed.items():
        name = f"in_set.{col}"
        if col not in columns:
            problems.append(f"checks.allowed.{col}: {ds.name} has no column {col!r}")
        elif allowed is None:
            drops.append(name)
        else:
            check = allowed if isinstance(allowed, AllowedCheck) else AllowedCheck(values=allowed)
            params = {
                "values": check.values,
                **({"mostly": check.mostly} if check.mostly is not None else {}),
            }
            changes.append(
                Expectation(
                    name=name, kind="in_set", column=col, params=params, severity=check.severity or "error"
                )
            )
    if spec.row_count is not None:
        rc = spec.row_count
        changes.append(
            Expectation(
                name="row_count",
                kind="row_count",
                params={"min": rc.min, "max": rc.max, "per": rc.per},
                severity=rc.severity or suite.get("row_count").severity,
            )
        )
    cont = spec.continuity
    if cont is False or (isinstance(cont, ContinuityCheck) and not cont.enabled):
        if "continuity" in suite:
            drops.append("continuity")
    elif cont is True or isinstance(cont, ContinuityCheck):
        cont = cont if isinstance(cont, ContinuityCheck) else ContinuityCheck()
        if ds.series_key and (cont.frequency or ds.frequency):
            freq = parse_duration(cont.frequency) if cont.frequency is not None else None
            prior_sev = suite.get("continuity").severity if "continuity" in suite else "error"
            changes.append(
                continuity_expectation(
                    ds, frequency=freq, edges=cont.edges, severity=cont.severity or prior_sev
                )
            )
        else:
            problems.append(
                f"checks.continuity: {ds.name} has no series key/frequency (set continuity.frequency)"
            )

    rec = spec.recency
    if rec is False or (isinstance(rec, RecencyCheck) and not rec.enabled):
        if "recency" in suite:
            drops.append("recency")
    elif rec is True or isinstance(rec, RecencyCheck):
        rec = rec if isinstance(rec, RecencyCheck) else RecencyCheck()
        if END_COLUMN in columns or ds.frequency is not None:
            lag = parse_duration(rec.max_lag) if rec.max_lag is not None else None
            prior_sev = suite.get("recency").severity if "recency" in suite else "error"
            changes.append(recency_expectation(ds, max_lag=lag, severity=rec.severity or prior_sev))
        else:
            problems.append(f"checks.recency: {ds.name} has no interval_end column or frequency")

    suite = suite.with_expectations(*changes, *spec.expectations)
    for exp in spec.expectations:
        unknown = [c for c in exp.key_columns if c not in columns]
        if unknown:
            problems.append(f"checks.expectations.{exp.name}: {ds.name} has no column(s) {unknown}")
    for name, severity in spec.severity.items():
        if name not in suite:
            problems.append(f"checks.severity.{name}: no such expectation; known: {suite.names}")
        else:
            suite = suite.with_expectations(suite.get(name).with_severity(severity))
    for name in [*drops, *spec.disable]:
        if name not in suite and name not in drops:
            problems.append(f"checks.disable: no expectation {name!r}; known: {suite.names}")
        elif name in suite:
            suite = suite.without(name)
    if problems:
        raise SpecError(f"invalid quality checks for {ds.name}: " + "; ".join(problems), errors=problems)
    return suite


def build_gate(
    dataset: Dataset | str,
    checks: QualitySpec | dict[str, Any] | None = None,
    *,
    engine: GateEngine | None = None,
    documents: Documents | None = None,
) -> ExpectationGate:
    """The gate running ``dataset``'s default suite with the ``checks`` overrides.

    ``engine`` and ``documents`` (see :class:`ExpectationGate`) override the spec's; by default every
    built-in kind is judged natively and GX writes the result document of a failing batch.
    """
    spec = _validate(checks)
    return ExpectationGate(
        build_suite(dataset, spec),
        sample_size=spec.sample_size,
        engine=engine or spec.engine,
        documents=documents or spec.documents,
    )


def _validate(checks: QualitySpec | dict[str, Any] | None) -> QualitySpec:
    if isinstance(checks, QualitySpec):
        return checks
    try:
        return QualitySpec.model_validate(checks or {})
    except ValidationError as exc:
        errors = [f"checks.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SpecError("invalid quality checks: " + "; ".join(errors), errors=errors) from exc
