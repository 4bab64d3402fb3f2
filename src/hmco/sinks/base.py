"""The sink interface: where a validated batch goes after the gate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from hmco.schemas import Dataset
from hmco.windows import Window

__all__ = ["Sink", "WriteResult"]


@dataclass(frozen=True)
class WriteResult:
    """What a sink did with one batch."""

    sink: str
    target: str
    rows: int
    bytes: int = 0
    seconds: float = 0.0
    snapshot_id: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Sink(Protocol):
    """Writes one window's batch idempotently: writing the same window twice leaves one copy."""

    name: str

    def write(
        self,
        table: pa.Table,
        *,
        dataset: Dataset,
        window: Window,
        batch_id: str,
        watermark: datetime | None = None,
    ) -> WriteResult: ...
