"""What monitoring and the freshness checks know of a scheduled job: its shape, not its class.

Monitoring and quality sit below :mod:`hmco.schedule`, so they take its :class:`~hmco.schedule.Job` and
:class:`~hmco.schedule.Catalogue` through these protocols instead of importing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

__all__ = ["CatalogueJob", "JobCatalogue"]


class CatalogueJob(Protocol):
    """One job of the catalogue (:class:`hmco.schedule.catalogue.Job` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def dataset(self) -> str | None: ...
    @property
    def sla(self) -> timedelta | None: ...
    @property
    def lag(self) -> timedelta: ...
    @property
    def action(self) -> str | None: ...
    @property
    def runbook(self) -> str: ...
    @property
    def spec(self) -> Any: ...
    @property
    def cadence(self) -> timedelta: ...
    @property
    def iso(self) -> str | None: ...
    @property
    def timeout(self) -> timedelta: ...


@runtime_checkable
class JobCatalogue(Protocol):
    """Anything holding the ingestion jobs of a catalogue (:class:`hmco.schedule.catalogue.Catalogue`)."""

    @property
    def ingestion(self) -> Sequence[CatalogueJob]: ...
