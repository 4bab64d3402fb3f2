"""Quality gates that fail closed: expectation suites per dataset (native or Great Expectations), freshness.

``default_suite(dataset)`` derives expectations from the canonical schema; ``build_gate(dataset, checks)``
applies a UIS spec's ``checks:`` overrides and returns an :class:`ExpectationGate` for the pipeline.
What each expectation ``kind`` means is registered in :mod:`hmco.quality.kinds`: a new kind is one
function plus one :func:`register_kind`. The built-in kinds run natively on Arrow; Great Expectations
is imported only for a kind without a native implementation, for the result document of a failing batch,
or when a gate is built with ``engine="great_expectations"``.
"""

from __future__ import annotations

from hmco.quality.expectation_gate import ExpectationGate
from hmco.quality.freshness import (
    FreshnessReport,
    FreshnessStatus,
    catalogue_freshness,
    check_freshness,
    lake_freshness,
)
from hmco.quality.gate import ExpectationOutcome, Gate, GateResult
from hmco.quality.kinds import CheckContext, ExpectationKind, get_kind, register_kind, registered_kinds
from hmco.quality.spec import QualitySpec, build_gate, build_suite
from hmco.quality.suites import Expectation, Suite, default_suite

__all__ = [
    "CheckContext",
    "Expectation",
    "ExpectationGate",
    "ExpectationKind",
    "ExpectationOutcome",
    "FreshnessReport",
    "FreshnessStatus",
    "Gate",
    "GateResult",
    "QualitySpec",
    "Suite",
    "build_gate",
    "build_suite",
    "catalogue_freshness",
    "check_freshness",
    "default_suite",
    "get_kind",
    "lake_freshness",
    "register_kind",
    "registered_kinds",
]
