"""Expectation suites as data: what a batch of each dataset must look like before it is published.

A :class:`Suite` is an ordered list of :class:`Expectation` specs (name, kind, column(s), params,
severity). Suites are plain data, not Great Expectations objects, so a UIS YAML ``checks:`` section can
add, override or remove expectations (see :mod:`hmco.quality.spec`) and any engine can run them
(:mod:`hmco.quality.gx` runs them on Great Expectations 1.x).

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
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hmco.schemas import Dataset, get_dataset

__all__ = [
    "KINDS",
    "Expectation",
    "Kind",
    "Severity",
    "Suite",
    "default_suite",
    "parse_duration",
    "recency_expectation",
]

Kind = Literal[
    "columns", "types", "not_null", "unique", "between", "in_set", "row_count", "continuity", "recency"
]
Severity = Literal["error", "warn"]
KINDS: tuple[str, ...] = (
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

# Interval data coarser than this is checked for continuity only when a spec asks: daily series skip
# weekends and holidays (FRED, EIA spot prices) and local-midnight days drift across DST in UTC.
CONTINUITY_MAX_FREQUENCY = timedelta(hours=1)
# Datasets whose timestamps are irregular by nature: continuity and recency are recorded, never blocking.
_CONTINUITY_WARN_ONLY = frozenset({"noaa_observations"})
# The column holding each row's interval end, where a dataset has one (else ``ts + frequency``).
END_COLUMN = "interval_end"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|min|h|d|w)?\s*$")
_UNIT_SECONDS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}


def parse_duration(value: str | float | int | timedelta) -> timedelta:
    """Read ``"5m"``, ``"1h"``, ``"30s"``, ``"1d"``, a number of seconds or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration (examples: 30s, 5m, 1h, 1d)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"])


class Expectation(BaseModel):
    """One expectation: a named, engine-neutral rule about a batch.

    ``params`` by kind: ``columns`` {columns, exact}; ``types`` {types: {column: arrow type}};
    ``not_null`` {mostly}; ``unique`` (uses ``columns``); ``between`` {min, max, mostly, strict_min,
    strict_max}; ``in_set`` {values, mostly}; ``row_count`` {min, max, per: window|hour|day};
    ``continuity`` (``columns`` = series key) {time_column, frequency (seconds or "5m"), edges};
    ``recency`` {time_column, frequency, end_column, max_lag} (``end_column`` or ``frequency`` required).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    kind: Kind
    column: str | None = None
    columns: tuple[str, ...] = ()
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = "error"

    @model_validator(mode="after")
    def _check_kind(self) -> Expectation:
        p = self.params
        if self.kind in ("not_null", "between", "in_set") and not self.column:
            raise ValueError(f"expectation {self.name!r} of kind {self.kind!r} needs 'column'")
        if self.kind == "unique" and not (self.columns or self.column):
            raise ValueError(f"expectation {self.name!r} of kind 'unique' needs 'columns' (or 'column')")
        if self.kind == "between" and p.get("min") is None and p.get("max") is None:
            raise ValueError(
                f"expectation {self.name!r} of kind 'between' needs params.min and/or params.max"
            )
        if self.kind == "in_set" and not isinstance(p.get("values"), list | tuple):
            raise ValueError(f"expectation {self.name!r} of kind 'in_set' needs params.values (a list)")
        if self.kind == "columns" and not isinstance(p.get("columns"), list | tuple):
            raise ValueError(f"expectation {self.name!r} of kind 'columns' needs params.columns (a list)")
        if self.kind == "types" and not isinstance(p.get("types"), dict):
            raise ValueError(
                f"expectation {self.name!r} of kind 'types' needs params.types ({{column: type}})"
            )
        if self.kind == "row_count" and p.get("per", "window") not in ("window", "hour", "day"):
            raise ValueError(f"expectation {self.name!r}: params.per must be window, hour or day")
        if self.kind == "continuity":
            if not p.get("frequency"):
                raise ValueError(f"expectation {self.name!r} of kind 'continuity' needs params.frequency")
            parse_duration(p["frequency"])
        if self.kind == "recency":
            if not (p.get("end_column") or p.get("frequency")):
                raise ValueError(
                    f"expectation {self.name!r} of kind 'recency' needs params.end_column or params.frequency"
                )
            if p.get("frequency"):
                parse_duration(p["frequency"])
            if parse_duration(p.get("max_lag", 0)) < timedelta(0):
                raise ValueError(f"expectation {self.name!r}: params.max_lag must not be negative")
        mostly = p.get("mostly")
        if mostly is not None and not 0.0 <= float(mostly) <= 1.0:
            raise ValueError(f"expectation {self.name!r}: params.mostly must be between 0 and 1")
        return self

    @property
    def key_columns(self) -> tuple[str, ...]:
        """Columns the rule reads (for projecting the batch before validation)."""
        cols = (*((self.column,) if self.column else ()), *self.columns)
        if self.kind == "continuity":
            cols = (*cols, str(self.params.get("time_column", "ts")))
        if self.kind == "recency":
            cols = (*cols, str(self.params.get("end_column") or self.params.get("time_column", "ts")))
        return cols

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
