"""The publish gate interface: the pipeline asks a gate about a batch before it reaches curated.

A gate returns a :class:`GateResult`. Error-level failures block publishing (the pipeline raises
:class:`~hmco.errors.QualityGateFailed` and quarantines the batch); warn-level failures are
recorded in the run report and the stored result, and the batch is published.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from hmco.schemas import Dataset
from hmco.windows import Window

__all__ = ["ExpectationOutcome", "Gate", "GateResult"]


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict on a batch."""

    name: str
    success: bool
    severity: str = "error"  # "error" blocks publishing, "warn" only records
    column: str | None = None
    unexpected_count: int = 0
    unexpected_sample: list[Any] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    """What a gate concluded about one batch.

    ``engine`` says who judged: ``"hmco"`` (native), ``"great_expectations"`` or
    ``"hmco+great_expectations"`` (both ran: a GX-only kind, or GX's result document of a failing batch,
    which ``meta["great_expectations"]`` then holds). ``meta["seconds"]`` times the gate's parts.
    """

    dataset: str
    outcomes: list[ExpectationOutcome]
    row_count: int
    window: tuple[str, str] | None = None
    engine: str = "hmco"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        """Error-level failures: these block publishing."""
        return [o for o in self.outcomes if not o.success and o.severity == "error"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "error"]

    @property
    def passed(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "window": list(self.window) if self.window else None,
            "engine": self.engine,
            "row_count": self.row_count,
            "success": self.passed,
            "failed": [o.name for o in self.failed],
            "warnings": [o.name for o in self.warnings],
            "outcomes": [asdict(o) for o in self.outcomes],
            "meta": self.meta,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str, indent=2)


@runtime_checkable
class Gate(Protocol):
    """Anything that can judge a batch of a dataset for a window."""

    def check(self, table: pa.Table, dataset: Dataset, window: Window) -> GateResult: ...
