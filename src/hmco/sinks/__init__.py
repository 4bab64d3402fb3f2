"""Sinks: where batches go. A registry names them, so specs pick sinks by name.

Adding a sink is one module plus one registration::

    @register_sink("parquet")
    def _parquet(ctx: SinkContext) -> Sink:
        return ParquetSink(ctx.lake, ctx.dataset)

``iceberg`` is the lake tier the window processor publishes to; every other named sink is written
after the gate passes, before the publish commit (see :mod:`hmco.compose.processor`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hmco.errors import ConfigError
from hmco.sinks.base import Scope, Sink, WriteResult

if TYPE_CHECKING:
    from hmco.config import Settings
    from hmco.lake import Lake
    from hmco.schemas import Dataset

__all__ = ["SINKS", "Scope", "Sink", "SinkContext", "WriteResult", "build_sink", "register_sink"]


@dataclass(frozen=True)
class SinkContext:
    """What a sink factory may use: the settings, the lake, the dataset, the pipeline and its tier."""

    settings: Settings
    lake: Lake
    dataset: Dataset
    pipeline: str
    tier: str


SinkFactory = Callable[[SinkContext], Sink]
SINKS: dict[str, SinkFactory] = {}


def register_sink(name: str) -> Callable[[SinkFactory], SinkFactory]:
    """Decorator: make a sink factory available to specs under ``name``."""

    def register(factory: SinkFactory) -> SinkFactory:
        SINKS[name] = factory
        return factory

    return register


def build_sink(name: str, ctx: SinkContext) -> Sink:
    """The sink registered as ``name``, built for ``ctx``."""
    try:
        factory = SINKS[name]
    except KeyError:
        raise ConfigError(f"unknown sink {name!r}; known: {', '.join(sorted(SINKS))}") from None
    return factory(ctx)


@register_sink("iceberg")
def _iceberg(ctx: SinkContext) -> Sink:
    from hmco.sinks.iceberg import IcebergSink

    return IcebergSink(ctx.lake, ctx.tier, pipeline=ctx.pipeline)


@register_sink("clickhouse")
def _clickhouse(ctx: SinkContext) -> Sink:
    from hmco.sinks.clickhouse import ClickHouseSink

    return ClickHouseSink.from_settings(ctx.settings, ctx.dataset.name)
