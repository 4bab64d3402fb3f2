"""Queries against the real-time store, results as Arrow tables or polars frames.

Readers query the deduplicating views (``rt_lmp``, ``rt_lmp_hourly``, ``rt_lmp_daily``), so plain SQL such
as the platform's seed query gives each interval once, with its latest revision. :func:`rt_lmp_rows`
filters by ISO, node and time without building SQL from values: the table name is checked against the
identifier grammar, ISO codes against theirs, and every value is a bound ``{name:Type}`` parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from hmco.errors import ConfigError
from hmco.names import check_iso, check_qualified
from hmco.schemas import TS
from hmco.windows import as_utc

if TYPE_CHECKING:
    import polars as pl
    from clickhouse_connect.driver.client import Client

__all__ = ["SEED_QUERY", "rt_lmp_rows", "rt_query", "rt_query_polars", "top_nodes_last_hour"]

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


def rt_lmp_rows(
    client: Client,
    *,
    isos: Iterable[str] | None = None,
    nodes: Iterable[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    table: str = "rt_lmp",
    limit: int | None = None,
) -> pa.Table:
    """Rows of ``table`` (default the ``rt_lmp`` view) for some ISOs and nodes in ``[start, end)``.

    Values never become SQL text: ISO codes, node names, times and the limit are bound parameters.

    Raises:
        ConfigError: ``table`` is not ``name`` or ``database.name``, an ISO is not an ISO code, or
            ``limit`` is not a positive whole number.
    """
    sql = f"SELECT * FROM {check_qualified(table, 'table')}"
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if isos is not None:
        params["isos"] = [check_iso(iso, "isos") for iso in _listed(isos, "isos")]
        clauses.append("iso IN {isos:Array(String)}")
    if nodes is not None:
        params["nodes"] = _listed(nodes, "nodes")
        clauses.append("node IN {nodes:Array(String)}")
    for key, op, when in (("start", ">=", start), ("end", "<", end)):
        if when is not None:  # bound as UTC text: the server's time zone never shifts it
            params[key] = as_utc(when).replace(tzinfo=None).isoformat(sep=" ")
            clauses.append(f"ts {op} toDateTime64({{{key}:String}}, 6, 'UTC')")
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY ts, iso, node"
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"limit must be a positive whole number, not {limit!r}", field="limit")
        params["limit"] = limit
        sql += " LIMIT {limit:UInt64}"
    return rt_query(client, sql, params)


def _listed(values: Iterable[str], what: str) -> list[str]:
    """A filter's values as a list of strings (a bare string is one value, not its characters)."""
    items = [values] if isinstance(values, str) else list(values)
    bad = [v for v in items if not isinstance(v, str)]
    if bad:
        raise ConfigError(f"{what} must be strings, not {bad[:3]!r}", field=what)
    return items


def _normalize_times(table: pa.Table) -> pa.Table:
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type != TS:
            table = table.set_column(i, pa.field(field.name, TS, field.nullable), table.column(i).cast(TS))
    return table
