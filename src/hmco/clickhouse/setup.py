"""Apply the real-time schema to a server, keep its retention, and recompute exact rollups.

``ensure_schema`` is a migration that can run on every start: every statement is ``IF NOT EXISTS``, the
TTL is only altered when ``retention_days`` differs from what the table has, and a store created before
``version`` came from the data (``DEFAULT`` = the server's insert time) is upgraded once: the missing
canonical columns (``published_at``) are added, ``version`` is re-defaulted to ``published_at`` in
microseconds (metadata only: stored rows keep their versions) and the view is re-created with the new
column. A second run finds nothing to do and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from hmco.clickhouse.ddl import ROLLUPS, ClickHouseLayout
from hmco.config import Settings
from hmco.windows import Window, floor_time

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = [
    "ensure_schema",
    "layout_from_settings",
    "newest_intervals",
    "refresh_rollups",
    "set_retention",
    "upgrade_statements",
]


def layout_from_settings(settings: Settings, dataset: str = "rt_lmp") -> ClickHouseLayout:
    """The layout ``settings.clickhouse`` describes (database, cluster, retention)."""
    ch = settings.clickhouse
    return ClickHouseLayout.of(
        dataset, database=ch.database, cluster=ch.cluster, retention_days=ch.retention_days
    )


def ensure_schema(client: Client, layout: ClickHouseLayout) -> list[str]:
    """Create what is missing, upgrade an older store, align the retention; returns the statements run.

    A store created before ``version`` came from ``published_at`` is upgraded in place (see
    :func:`upgrade_statements`); once current, a run executes only the idempotent ``IF NOT EXISTS`` DDL.
    """
    statements = layout.render()
    at = statements.index(layout.create_view())
    ran: list[str] = []
    # Row tables first, then what an older store lacks, then the view and rollups: creating the view
    # (even IF NOT EXISTS) analyses its SELECT, which names columns only the upgrade adds.
    for stmt in [*statements[:at], *upgrade_statements(client, layout), *statements[at:]]:
        client.command(stmt)
        ran.append(stmt)
    if _current_retention(client, layout) != layout.retention_days:
        ran += set_retention(client, layout)
    return ran


def set_retention(client: Client, layout: ClickHouseLayout) -> list[str]:
    """``ALTER TABLE … MODIFY TTL`` on the row and rollup tables; existing parts are re-evaluated."""
    stmts = layout.modify_ttl()
    for stmt in stmts:
        client.command(stmt)
    return stmts


def upgrade_statements(client: Client, layout: ClickHouseLayout) -> list[str]:
    """What an existing store lacks of ``layout`` (columns, the derived ``version``, the view's columns).

    Inspects ``system.columns`` of the local table, the Distributed table (on a cluster) and the view, and
    returns the needed subset of :meth:`ClickHouseLayout.upgrade` (plus any other nullable canonical column
    missing from the tables), in order: add columns, re-default ``version``, re-create an existing view
    whose columns differ. Tables that do not exist yet are left to :meth:`ClickHouseLayout.render`.
    """
    schema = layout.dataset.schema
    tables = {layout.local: layout.local_name}
    if layout.cluster:
        tables[layout.store] = layout.store_name
    expected = layout.version_expression()
    adds: list[str] = []
    modifies: list[str] = []
    for qualified, name in tables.items():
        columns = _columns(client, layout.database, name)
        if not columns:
            continue
        adds += [layout.add_column(qualified, c) for c in schema.names if c not in columns]
        kind, expr = columns.get("version", ("", ""))
        if kind != "DEFAULT" or _normal(expr) != _normal(expected):
            modifies.append(layout.modify_version(qualified))
    view = list(_columns(client, layout.database, layout.name))
    wanted = [c.strip("`") for c in layout.view_columns()]
    replace = [layout.create_view(replace=True)] if view and view != wanted else []
    return [*adds, *modifies, *replace]


def _columns(client: Client, database: str, table: str) -> dict[str, tuple[str, str]]:
    """``{name: (default_kind, default_expression)}`` of ``database.table`` in column order."""
    rows = client.query(
        "SELECT name, default_kind, default_expression FROM system.columns "
        "WHERE database = {db:String} AND table = {t:String} ORDER BY position",
        parameters={"db": database, "t": table},
    ).result_rows
    return {str(name): (str(kind), str(expr)) for name, kind, expr in rows}


def _normal(expression: str) -> str:
    return "".join(expression.replace("`", "").split())


def _current_retention(client: Client, layout: ClickHouseLayout) -> int | None:
    rows = client.query(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": layout.database, "t": layout.local_name},
    ).result_rows
    if not rows:
        return None
    text = str(rows[0][0])
    marker = "toIntervalDay("
    at = text.find(marker)
    if at < 0:
        return None
    return int(text[at + len(marker) : text.index(")", at)])


def refresh_rollups(
    client: Client, layout: ClickHouseLayout, window: Window, isos: Iterable[str] = ()
) -> None:
    """Recompute the hourly and daily rollups of every bucket ``window`` touches, from FINAL rows.

    Each recomputed row replaces the previous one (rollup RMT on ``computed_at``), so the rollups equal a
    GROUP BY over the deduplicated rows however often an interval was re-delivered or revised.
    """
    isos = sorted(set(isos))
    for rollup in ROLLUPS:
        step = timedelta(seconds=rollup.align_seconds)
        start = floor_time(window.start, step)
        end = floor_time(window.end, step)
        if end < window.end:
            end += step
        ts = layout.time_column
        where = f"{ts} >= {{start:DateTime64(6, 'UTC')}} AND {ts} < {{end:DateTime64(6, 'UTC')}}"
        params: dict[str, object] = {"start": _naive(start), "end": _naive(end)}
        if isos:
            where += " AND iso IN {isos:Array(String)}"
            params["isos"] = isos
        sql = f"INSERT INTO {layout.rollup_store(rollup)}\n" + layout.rollup_select(
            rollup, layout.store, where
        )
        client.command(sql, parameters=params)


def newest_intervals(
    client: Client, layout: ClickHouseLayout, since: datetime | None, isos: Iterable[str] | None = None
) -> dict[str, datetime]:
    """Newest interval end per ISO among rows with ``ts >= since`` (partition-pruned; raw rows, no FINAL).

    ``since=None`` searches all rows (of ``isos`` only, when given: the ORDER BY prefix prunes the rest).
    Revisions never move an interval's end, so the raw maximum equals the deduplicated one.
    """
    clauses: list[str] = []
    params: dict[str, object] = {}
    if since is not None:
        clauses.append(f"{layout.time_column} >= {{since:DateTime64(6, 'UTC')}}")
        params["since"] = _naive(since)
    if isos is not None:
        clauses.append("iso IN {isos:Array(String)}")
        params["isos"] = sorted(set(isos))
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    sql = f"SELECT iso, max(interval_end) FROM {layout.store} {where}GROUP BY iso"
    table = client.query_arrow(sql, parameters=params)
    isos = table.column(0).to_pylist()
    ends = table.column(1).to_pylist()
    return {str(i): _aware(e) for i, e in zip(isos, ends, strict=True)}


def _naive(value: datetime) -> datetime:
    """UTC wall time without tzinfo: how clickhouse-connect binds a DateTime64(…, 'UTC') parameter exactly."""
    return value.astimezone(UTC).replace(tzinfo=None)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
