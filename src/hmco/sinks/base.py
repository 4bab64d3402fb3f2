"""The sink interface: where a validated batch goes after the gate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from hmco.schemas import Dataset
from hmco.windows import Window

__all__ = ["Scope", "Sink", "WriteResult"]

#: Which slice of a dataset a write owns, e.g. ``{"iso": ["CAISO"]}``; empty or None = the whole dataset.
Scope = Mapping[str, Sequence[Any]]


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
    """Writes one window's batch idempotently: writing the same window twice leaves one copy.

    ``scope`` bounds what a window write may replace: a sink that replaces whole windows (Iceberg)
    replaces only the rows of ``window`` inside ``scope``; a sink that upserts by key (ClickHouse)
    never removes rows and may ignore it. ``fingerprint`` is a digest of the raw payloads the batch
    was parsed from (the window processor passes it): equal fingerprints mean equal batches, so a sink
    may use it as a deduplication token instead of hashing the batch again.
    """

    name: str

    def write(
        self,
        table: pa.Table,
        *,
        dataset: Dataset,
        window: Window,
        batch_id: str,
        scope: Scope | None = None,
        fingerprint: str | None = None,
    ) -> WriteResult: ...
