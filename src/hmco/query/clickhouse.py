"""Queries against the real-time store, results as Arrow tables or polars frames.

Readers query the deduplicating views (``rt_lmp``, ``rt_lmp_hourly``, ``rt_lmp_daily``), so plain SQL such
as the platform's seed query gives each interval once, with its latest revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from hmco.schemas import TS

if TYPE_CHECKING:
    import polars as pl
    from clickhouse_connect.driver.client import Client

__all__ = ["SEED_QUERY", "rt_query", "rt_query_polars", "top_nodes_last_hour"]

#: The platform overview's RT query, exactly as written there (ClickHouse dialect).
SEED_QUERY = (
    "SELECT iso, node, avg(lmp) as avg_lmp FROM rt_lmp WHERE ts >= now() - INTERVAL 1 HOUR "
    "GROUP BY iso, node ORDER BY avg_lmp DESC LIMIT 10"
)


def rt_query(
    client: Client,
    sql: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Run ``sql`` (``{name:Type}`` placeholders bound from ``parameters``) and return an Arrow table.

    Unqualified tables resolve in the client's database (``settings.clickhouse.database``). Timestamps
    come back as hmco's ``timestamp[us, UTC]``.
    """
    table = client.query_arrow(
        sql, parameters=dict(parameters or {}), settings=dict(settings or {}) or None, use_strings=True
    )
    return _normalize_times(table)


def rt_query_polars(
    client: Client, sql: str, parameters: Mapping[str, Any] | None = None, **kwargs: Any
) -> pl.DataFrame:
    """:func:`rt_query` as a polars DataFrame (zero-copy from Arrow)."""
    import polars as pl

    frame = pl.from_arrow(rt_query(client, sql, parameters, **kwargs))
    assert isinstance(frame, pl.DataFrame)
    return frame


def top_nodes_last_hour(client: Client) -> pa.Table:
    """The seed query: the 10 nodes with the highest average LMP over the last hour."""
    return rt_query(client, SEED_QUERY)


def _normalize_times(table: pa.Table) -> pa.Table:
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type != TS:
            table = table.set_column(i, pa.field(field.name, TS, field.nullable), table.column(i).cast(TS))
    return table
