"""The real-time store (ClickHouse): client factory, schema as code, exact rollups.

``connect_clickhouse(settings)`` gives a clickhouse-connect ``Client`` (HTTP server/cluster or in-process
chdb); ``ensure_schema(client, layout_from_settings(settings))`` creates ``rt_lmp`` and its rollups.
"""

from __future__ import annotations

from hmco.clickhouse.client import close_chdb, connect_clickhouse
from hmco.clickhouse.ddl import ROLLUPS, ClickHouseLayout, Rollup, column_type, render_schema
from hmco.clickhouse.setup import (
    ensure_schema,
    layout_from_settings,
    newest_intervals,
    refresh_rollups,
    set_retention,
    upgrade_statements,
)

__all__ = [
    "ROLLUPS",
    "ClickHouseLayout",
    "Rollup",
    "close_chdb",
    "column_type",
    "connect_clickhouse",
    "ensure_schema",
    "layout_from_settings",
    "newest_intervals",
    "refresh_rollups",
    "render_schema",
    "set_retention",
    "upgrade_statements",
]
