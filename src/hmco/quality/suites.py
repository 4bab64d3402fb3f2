"""Expectation suites as data: what a batch of each dataset must look like before it is published.

A :class:`Suite` is an ordered list of :class:`Expectation` specs (name, kind, column(s), params,
severity). Suites are plain data, not Great Expectations objects, so a UIS YAML ``checks:`` section can
add, override or remove expectations (see :mod:`hmco.quality.spec`) and any engine can run them
(hmco's native one by default, :mod:`hmco.quality.gx` on Great Expectations 1.x). What a ``kind``
means is registered in :mod:`hmco.quality.kinds`: nine are built in, and a new one is one function
plus one registration.

``default_suite(dataset)`` derives a suite from the canonical :class:`~hmco.schemas.Dataset`:

========================  ===========  ============================================================
name                      kind         what it checks
========================  ===========  ============================================================
``schema.columns``        columns      every canonical column is present (extra columns allowed)
``schema.types``          types        every canonical column has its canonical Arrow type
``not_null.<col>``        not_null     required columns (the primary key and other non-nullables)
``unique.primary_key``    unique       the (compound) primary key has no duplicates
``range.<col>``           between      ``dataset.value_ranges`` (LMP bounds, non-negative generation …)
``in_set.<col>``          in_set       ``dataset.allowed_values``
``row_count``             row_count    at least one row per window (warn)
``continuity``            continuity   interval data: no gaps or duplicates per series in the window
``recency``               recency      interval data: the newest interval end reaches
                                       ``window.end - max_lag`` (``max_lag`` = the dataset's SLA)
========================  ===========  ============================================================

``recency`` judges the batch against its *window*, never the wall clock: a backfill of an old window
passes when complete, while a feed that keeps serving old intervals (a stale cache) or stops short of the
window fails. It is on (error) for interval datasets of hourly or finer cadence, warn-only for irregular
``noaa_observations``, off otherwise. An empty batch passes it vacuously: that is ``row_count``'s business.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hmco.quality.gate import ExpectationOutcome
from hmco.quality.kinds import get_kind
from hmco.schemas import Dataset, get_dataset

__all__ = [
    "END_COLUMN",
    "Expectation",
    "Severity",
    "Suite",
    "continuity_expectation",
    "default_suite",
    "recency_expectation",
]

Severity = Literal["error", "warn"]

# Interval data coarser than this is checked for continuity only when a spec asks: daily series skip
# weekends and holidays (FRED, EIA spot prices) and local-midnight days drift across DST in UTC.
CONTINUITY_MAX_FREQUENCY = timedelta(hours=1)
# Datasets whose timestamps are irregular by nature: continuity and recency are recorded, never blocking.
_CONTINUITY_WARN_ONLY = frozenset({"noaa_observations"})
# The column holding each row's interval end, where a dataset has one (else ``ts + frequency``).
END_COLUMN = "interval_end"


class Expectation(BaseModel):
    """One expectation: a named, engine-neutral rule about a batch.

    ``kind`` is any registered kind (:func:`~hmco.quality.kinds.register_kind`); the kind validates
    ``params`` when the expectation is built. ``params`` of the built-in kinds: ``columns`` {columns,
    exact}; ``types`` {types: {column: arrow type}}; ``not_null`` {mostly}; ``unique`` (uses ``columns``);
    ``between`` {min, max, mostly, strict_min, strict_max}; ``in_set`` {values, mostly}; ``row_count``
    {min, max, per: window|hour|day}; ``continuity`` (``columns`` = series key) {time_column, frequency
    (seconds or "5m"), edges}; ``recency`` {time_column, frequency, end_column, max_lag} (``end_column``
    or ``frequency`` required).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    kind: str
    column: str | None = None
    columns: tuple[str, ...] = ()
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = "error"

    @field_validator("kind")
    @classmethod
    def _registered(cls, value: str) -> str:
        get_kind(value)
        return value

    @model_validator(mode="after")
    def _check_params(self) -> Expectation:
        validate = get_kind(self.kind).validate
        if validate is not None:
            validate(self)
        mostly = self.params.get("mostly")
        if mostly is not None and not 0.0 <= float(mostly) <= 1.0:
            raise ValueError(f"expectation {self.name!r}: params.mostly must be between 0 and 1")
        return self

    @property
    def key_columns(self) -> tuple[str, ...]:
        """Columns the rule reads (for projecting the batch before validation)."""
        reads = get_kind(self.kind).reads
        extra = tuple(reads(self)) if reads is not None else ()
        return (*((self.column,) if self.column else ()), *self.columns, *extra)

    def outcome(
        self,
        success: bool,
        *,
        column: str | None = None,
        unexpected_count: int = 0,
        unexpected_sample: Sequence[Any] = (),
        details: Mapping[str, Any] | None = None,
    ) -> ExpectationOutcome:
        """This expectation's verdict on a batch, named and graded as it says (``details`` gets its kind)."""
        return ExpectationOutcome(
            name=self.name,
            success=success,
            severity=self.severity,
            column=column if column is not None else self.column,
            unexpected_count=unexpected_count,
            unexpected_sample=list(unexpected_sample),
            details={"kind": self.kind, **(details or {})},
        )

    def with_severity(self, severity: Severity) -> Expectation:
        return self.model_copy(update={"severity": severity})


@dataclass(frozen=True)
class Suite:
    """An ordered set of expectations for one dataset; names are unique."""

    dataset: str
    expectations: tuple[Expectation, ...] = ()

    def __post_init__(self) -> None:
        names = [e.name for e in self.expectations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"suite for {self.dataset}: duplicate expectation name(s) {dupes}")

    def __iter__(self) -> Iterator[Expectation]:
        return iter(self.expectations)

    def __len__(self) -> int:
        return len(self.expectations)

    def __contains__(self, name: object) -> bool:
        return any(e.name == name for e in self.expectations)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.expectations]

    def get(self, name: str) -> Expectation:
        for e in self.expectations:
            if e.name == name:
                return e
        raise KeyError(f"suite for {self.dataset} has no expectation {name!r}; it has {self.names}")

    def with_expectations(self, *expectations: Expectation) -> Suite:
        """Add expectations, replacing any with the same name in place."""
        new = {e.name: e for e in expectations}
        kept = [new.pop(e.name, e) for e in self.expectations]
        return Suite(self.dataset, (*kept, *new.values()))

    def without(self, *names: str) -> Suite:
        """Drop the named expectations (``KeyError`` for a name the suite does not have)."""
        for n in names:
            self.get(n)
        return Suite(self.dataset, tuple(e for e in self.expectations if e.name not in names))

    def select(self, kinds: Iterable[str]) -> list[Expectation]:
        wanted = set(kinds)
        return [e for e in self.expectations if e.kind in wanted]

    @property
    def fingerprint(self) -> str:
        """A stable hash of the suite's content (engines cache compiled suites by it)."""
        doc = [e.model_dump(mode="json") for e in self.expectations]
        blob = json.dumps({"dataset": self.dataset, "expectations": doc}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "expectations": [e.model_dump(mode="json") for e in self.expectations],
        }


def default_suite(dataset: Dataset | str) -> Suite:
    """Derive the default suite of a dataset from its schema, keys, ranges, allowed values and cadence."""
    ds = get_dataset(dataset)
    exps: list[Expectation] = [
        Expectation(
            name="schema.columns", kind="columns", params={"columns": list(ds.schema.names), "exact": False}
        ),
        Expectation(
            name="schema.types", kind="types", params={"types": {f.name: str(f.type) for f in ds.schema}}
        ),
    ]
    exps += [
        Expectation(name=f"not_null.{f.name}", kind="not_null", column=f.name)
        for f in ds.schema
        if not f.nullable
    ]
    exps.append(Expectation(name="unique.primary_key", kind="unique", columns=ds.primary_key))
    for col, (lo, hi) in ds.value_ranges.items():
        exps.append(
            Expectation(name=f"range.{col}", kind="between", column=col, params={"min": lo, "max": hi})
        )
    for col, values in ds.allowed_values.items():
        exps.append(
            Expectation(name=f"in_set.{col}", kind="in_set", column=col, params={"values": list(values)})
        )
    exps.append(
        Expectation(name="row_count", kind="row_count", params={"min": 1, "per": "window"}, severity="warn")
    )
    if ds.frequency is not None and ds.series_key and ds.frequency <= CONTINUITY_MAX_FREQUENCY:
        exps.append(
            continuity_expectation(ds, severity="warn" if ds.name in _CONTINUITY_WARN_ONLY else "error")
        )
    if ds.frequency is not None and ds.frequency <= CONTINUITY_MAX_FREQUENCY:
        exps.append(recency_expectation(ds, severity="warn" if ds.name in _CONTINUITY_WARN_ONLY else "error"))
    return Suite(ds.name, tuple(exps))


def recency_expectation(
    ds: Dataset, *, max_lag: timedelta | None = None, severity: Severity = "error"
) -> Expectation:
    """The ``recency`` rule: the batch's newest interval end is at least ``window.end - max_lag``.

    ``max_lag`` defaults to the dataset's SLA. The interval end is read from ``interval_end`` where the
    dataset has that column, else computed as ``ts + frequency``.
    """
    end_column = END_COLUMN if END_COLUMN in ds.schema.names else None
    if end_column is None and ds.frequency is None:
        raise ValueError(f"dataset {ds.name} has no interval_end column or frequency: recency needs one")
    lag = ds.sla if max_lag is None else max_lag
    params: dict[str, Any] = {"time_column": ds.time_column, "max_lag": lag.total_seconds()}
    if ds.frequency is not None:
        params["frequency"] = ds.frequency.total_seconds()
    if end_column is not None:
        params["end_column"] = end_column
    return Expectation(name="recency", kind="recency", params=params, severity=severity)


def continuity_expectation(
    ds: Dataset,
    *,
    frequency: timedelta | None = None,
    edges: bool = False,
    severity: Severity = "error",
) -> Expectation:
    """The ``continuity`` rule of an interval dataset: one row per series and step, no gaps."""
    freq = frequency or ds.frequency
    if freq is None or not ds.series_key:
        raise ValueError(f"dataset {ds.name} has no frequency/series key: continuity needs both")
    return Expectation(
        name="continuity",
        kind="continuity",
        columns=ds.series_key,
        params={"time_column": ds.time_column, "frequency": freq.total_seconds(), "edges": edges},
        severity=severity,
    )
