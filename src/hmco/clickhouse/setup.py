"""Apply the real-time schema to a server, keep its retention, and recompute exact rollups.

``ensure_schema`` is a migration that can run on every start: every statement is ``IF NOT EXISTS`` and
the TTL is only altered when ``retention_days`` differs from what the table has.
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

__all__ = ["ensure_schema", "layout_from_settings", "newest_intervals", "refresh_rollups", "set_retention"]


def layout_from_settings(settings: Settings, dataset: str = "rt_lmp") -> ClickHouseLayout:
    """The layout ``settings.clickhouse`` describes (database, cluster, retention)."""
    ch = settings.clickhouse
    return ClickHouseLayout.of(
        dataset, database=ch.database, cluster=ch.cluster, retention_days=ch.retention_days
    )


def ensure_schema(client: Client, layout: ClickHouseLayout) -> list[str]:
    """Create what is missing and align the retention; returns the statements that were run."""
    ran: list[str] = []
    for stmt in layout.render():
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


def _current_retention(client: Client, layout: ClickHouseLayout) -> int | None:
    db, table = layout.local.replace("`", "").split(".", 1)
    rows = client.query(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": db, "t": table},
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
