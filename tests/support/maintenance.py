"""Tables for the maintenance tests, built the way hmco builds them, and an independent reader.

- :func:`write_polls` makes a real-time-shaped table: N polls, each one window commit through
  :class:`~hmco.sinks.iceberg.IcebergSink`, so N small data files, N manifests and N snapshots.
- :func:`crash_files` leaves what a crashed writer leaves: Parquet files in the table's data folder
  that no commit registered.
- :func:`duck_rows` / :func:`duck_count` read the table with DuckDB's ``iceberg_scan`` (not pyiceberg).
- ``python -m tests.support.maintenance sweep-and-die <kill_after> <now>`` (settings JSON on stdin)
  runs an orphan sweep in its own process and SIGKILLs itself after ``kill_after`` deletions.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa

from hmco.config import Settings
from hmco.lake import Lake
from hmco.query.lake import LakeSQL
from hmco.schemas import get_dataset
from hmco.sinks.datafiles import write_data_files
from hmco.sinks.iceberg import IcebergSink
from hmco.sources.synthetic import synthetic_lmp
from hmco.windows import Window

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

RT = get_dataset("rt_lmp")
START = Window.day("2026-11-26").start
POLL = timedelta(minutes=5)
NODES = 2
TABLE = "hub_curated.rt_lmp"
KEY = "iso, market, node, ts"


def poll_window(i: int, *, step: timedelta = POLL, start: datetime = START) -> Window:
    """The i-th poll's window."""
    return Window(start + i * step, start + (i + 1) * step)


def write_polls(
    lake: Lake,
    polls: int | list[int],
    *,
    nodes: int = NODES,
    step: timedelta = POLL,
    pipeline: str = "rt",
    batch: str = "poll",
) -> list[Window]:
    """Write poll windows (``range(polls)`` or the given indices), one commit each: one small file each."""
    sink = IcebergSink(lake, pipeline=pipeline)
    windows = []
    for i in range(polls) if isinstance(polls, int) else polls:
        window = poll_window(i, step=step)
        sink.write(synthetic_lmp(window, nodes=nodes), dataset=RT, window=window, batch_id=f"{batch}-{i}")
        windows.append(window)
    return windows


def crash_files(tbl: Table, count: int, *, nodes: int = NODES) -> list[str]:
    """Data files a writer wrote and never committed (it crashed before ``add_files``)."""
    paths: list[str] = []
    for i in range(count):
        rows = synthetic_lmp(poll_window(10_000 + i), nodes=nodes)
        paths.extend(write_data_files(tbl, rows, f"crash-{i}"))
    return paths


def head(tbl: Table) -> Snapshot:
    """The current snapshot (the tests' tables always have one)."""
    snapshot = tbl.current_snapshot()
    assert snapshot is not None
    return snapshot


def snapshot_ids(tbl: Table) -> list[int]:
    return [s.snapshot_id for s in tbl.metadata.snapshots]


def exists(tbl: Table, location: str) -> bool:
    return tbl.io.new_input(location).exists()


def size(tbl: Table, location: str) -> int:
    return len(tbl.io.new_input(location))


def scan_rows(tbl: Table, snapshot_id: int | None = None) -> pa.Table:
    """Rows of a snapshot read by pyiceberg, sorted by the primary key."""
    rows = tbl.scan(snapshot_id=snapshot_id).to_arrow().select(["iso", "market", "node", "ts", "lmp"])
    return rows.sort_by([(c, "ascending") for c in ("iso", "market", "node", "ts")])


def duck_rows(lake: Lake, snapshot_id: int | None = None, *, sql: LakeSQL | None = None) -> pa.Table:
    """Rows read by DuckDB's ``iceberg_scan`` (current snapshot, or ``snapshot_id``), sorted by the key.

    Pass an open ``sql`` to read several snapshots over one DuckDB connection.
    """
    if sql is None:
        with LakeSQL(lake) as own:
            return duck_rows(lake, snapshot_id, sql=own)
    if snapshot_id is None:
        return sql.sql(f"SELECT {KEY}, lmp FROM {TABLE} ORDER BY {KEY}", dialect="duckdb")
    location = lake.table("rt_lmp").metadata_location
    return sql.con.execute(
        f"SELECT {KEY}, lmp FROM iceberg_scan(?, snapshot_from_id => ?) ORDER BY {KEY}",
        [location, snapshot_id],
    ).fetch_arrow_table()


def duck_count(lake: Lake) -> int:
    with LakeSQL(lake) as sql:
        return int(sql.sql(f"SELECT count(*) AS n FROM {TABLE}", dialect="duckdb").column("n")[0].as_py())


def settings_json(settings: Settings) -> str:
    """Settings for a child process, secrets included (test plumbing on loopback, passed on stdin)."""
    data = settings.model_dump(mode="json")
    for key in ("access_key_id", "secret_access_key"):
        value = getattr(settings.s3, key)
        data["s3"][key] = value.get_secret_value() if value else None
    return json.dumps(data)


def sweep_and_die(settings: Settings, kill_after: int, now: datetime) -> None:
    """Remove the rt_lmp table's orphans and SIGKILL this process after ``kill_after`` deletions."""
    from hmco.maintenance.orphans import remove_orphan_files

    deleted: list[str] = []

    def on_delete(location: str) -> None:
        deleted.append(location)
        if len(deleted) >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    remove_orphan_files(Lake(settings).table("rt_lmp"), now=now, on_delete=on_delete)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command != "sweep-and-die":
        raise SystemExit(f"unknown command {command}")
    sweep_and_die(
        Settings.model_validate_json(sys.stdin.read()),
        int(args[0]),
        datetime.fromisoformat(args[1]).astimezone(UTC),
    )
