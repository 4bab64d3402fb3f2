"""hmco — the Python SDK of the HMCo energy-market lakehouse.

Compose **sources → transforms → quality gate → sinks** into pipelines that land data in the
Iceberg lake (raw, staged, curated, ml tiers) and the ClickHouse real-time store::

    import hmco
    lake = hmco.Lake()                                # local profile: no servers needed
    source = hmco.sources.SyntheticISO(nodes=500)
    report = hmco.Pipeline(source, lake=lake).run(hmco.Window.day("2026-11-26"))

Analysts get a data frame in one call, read through the lake (:mod:`hmco.frames`)::

    prices = hmco.lmp("CAISO", "2026-11-01", nodes=["TH_NP15_GEN-APND"])   # a Pacific market day

Every batch, batch or real-time, goes through one :class:`WindowProcessor` and its quality gate: a
pipeline or runner built without a gate runs its dataset's default suite (fail closed); ``gate=False``
turns the gate off, and every such run says so in a warning. Heavy engines (Great Expectations, chdb,
DuckDB, Trino) load on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from hmco import errors
from hmco.errors import (
    CommitConflict,
    ConfigError,
    HmcoError,
    LakeStateError,
    PayloadError,
    PipelineError,
    QualityError,
    QualityGateFailed,
    RateLimited,
    SinkError,
    SourceError,
    SourceUnavailable,
    SpecError,
    TerminalError,
    TransientError,
)
from hmco.windows import Window, market_window

if TYPE_CHECKING:
    from hmco import sources
    from hmco.clickhouse import connect_clickhouse
    from hmco.compose.pipeline import Pipeline, RunReport
    from hmco.compose.realtime import RealtimeRunner
    from hmco.compose.spec import PipelineSpec, build_pipeline, load_spec
    from hmco.config import Settings
    from hmco.cron import Cron
    from hmco.frames import census, eia, fred, lmp, noaa, nodes
    from hmco.lake import Lake, Tier
    from hmco.monitoring.alerts import alert_rules
    from hmco.monitoring.dashboard import dashboard
    from hmco.monitoring.notify import WebhookNotifier
    from hmco.payload import RawPayload
    from hmco.query.lake import LakeSQL
    from hmco.schedule import Catalogue, Job, JobResult, JobRunner, Serve, default_catalogue
    from hmco.schemas import DATASETS, Dataset, get_dataset
    from hmco.sinks.clickhouse import ClickHouseSink
    from hmco.sinks.iceberg import IcebergSink
    from hmco.sinks.raw import RawArchive
    from hmco.sources.base import Source

try:
    __version__ = version("hmco")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_LAZY = {
    "Settings": "hmco.config",
    "RawPayload": "hmco.payload",
    "DATASETS": "hmco.schemas",
    "Dataset": "hmco.schemas",
    "get_dataset": "hmco.schemas",
    "Source": "hmco.sources.base",
    "Lake": "hmco.lake",
    "Tier": "hmco.lake",
    "TIERS": "hmco.lake",
    "LakeState": "hmco.lake",
    "WindowOutcome": "hmco.compose.processor",
    "WindowProcessor": "hmco.compose.processor",
    "Pipeline": "hmco.compose.pipeline",
    "RunReport": "hmco.compose.pipeline",
    "IcebergSink": "hmco.sinks.iceberg",
    "RawArchive": "hmco.sinks.raw",
    "PipelineSpec": "hmco.compose.spec",
    "load_spec": "hmco.compose.spec",
    "build_pipeline": "hmco.compose.spec",
    "configure_logging": "hmco._logging",
    "LakeSQL": "hmco.query.lake",
    "ClickHouseSink": "hmco.sinks.clickhouse",
    "RealtimeRunner": "hmco.compose.realtime",
    "connect_clickhouse": "hmco.clickhouse",
    "Catalogue": "hmco.schedule",
    "Job": "hmco.schedule",
    "JobRunner": "hmco.schedule",
    "JobResult": "hmco.schedule",
    "Serve": "hmco.schedule",
    "default_catalogue": "hmco.schedule",
    "Cron": "hmco.cron",
    "WebhookNotifier": "hmco.monitoring.notify",
    "alert_rules": "hmco.monitoring.alerts",
    "dashboard": "hmco.monitoring.dashboard",
    "lmp": "hmco.frames",
    "nodes": "hmco.frames",
    "eia": "hmco.frames",
    "fred": "hmco.frames",
    "noaa": "hmco.frames",
    "census": "hmco.frames",
}

__all__ = [
    "DATASETS",
    "TIERS",
    "Catalogue",
    "ClickHouseSink",
    "CommitConflict",
    "ConfigError",
    "Cron",
    "Dataset",
    "HmcoError",
    "IcebergSink",
    "Job",
    "JobResult",
    "JobRunner",
    "Lake",
    "LakeSQL",
    "LakeState",
    "LakeStateError",
    "PayloadError",
    "Pipeline",
    "PipelineError",
    "PipelineSpec",
    "QualityError",
    "QualityGateFailed",
    "RateLimited",
    "RawArchive",
    "RawPayload",
    "RealtimeRunner",
    "RunReport",
    "Serve",
    "Settings",
    "SinkError",
    "Source",
    "SourceError",
    "SourceUnavailable",
    "SpecError",
    "TerminalError",
    "Tier",
    "TransientError",
    "WebhookNotifier",
    "Window",
    "WindowOutcome",
    "WindowProcessor",
    "__version__",
    "alert_rules",
    "build_pipeline",
    "census",
    "configure_logging",
    "connect_clickhouse",
    "dashboard",
    "default_catalogue",
    "eia",
    "errors",
    "fred",
    "get_dataset",
    "lmp",
    "load_spec",
    "market_window",
    "noaa",
    "nodes",
    "sources",
]


def __getattr__(name: str) -> Any:
    if name == "sources":
        import importlib

        return importlib.import_module("hmco.sources")
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hmco' has no attribute {name!r}")
