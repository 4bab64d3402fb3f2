"""ClickHouse sink: canonical Arrow batches into ``<dataset>_store``, exactly once, then exact rollups.

Exactly once comes from three layers: each insert carries an ``insert_deduplication_token`` naming its slice
of the batch (:mod:`hmco.clickhouse.dedup`: the batch id, the processor's payload fingerprint or else a fast
digest of the rows as the caller gave them, and the slice), so a retried or re-sent identical chunk is
dropped by the server (``non_replicated_deduplication_window`` on a single node, the replicated log on a
cluster); the table is a ReplacingMergeTree keyed on the dataset's primary key and versioned by the row's
``published_at`` (so a chunk re-sent outside the window replaces a row with itself or loses to a newer
revision, and a revision replaces instead of adding); and readers query the ``FINAL`` view. Transient
failures (connection drops, TOO_MANY_PARTS, timeouts, Keeper hiccups) are retried with tenacity; re-running
a failed write converges to one copy of every row.

Chunks travel by the fastest route the client has (:mod:`hmco.clickhouse.inserts`): on in-process chdb,
chdb's ``Python()`` table function reads the Arrow chunk in place; to a server, clickhouse-connect's
``insert_arrow``.

Versions: the window processor fills ``published_at`` on every row. Rows that reach this sink without it
(a direct ``write``/``load_rt_lmp`` of a table lacking the column, or with nulls) are stamped with the
sink's own clock, strictly increasing per sink, just before the insert; the deduplication token is still
derived from the rows as given, so an identical retry stays a duplicate. The server never picks a
version: ``version`` defaults to ``published_at`` in microseconds (:mod:`hmco.clickhouse.ddl`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from hmco._dependencies import import_optional
from hmco._logging import get_logger
from hmco.clickhouse.ddl import ClickHouseLayout
from hmco.clickhouse.dedup import content_digest, fingerprint_basis, insert_settings, insert_token
from hmco.clickhouse.inserts import ArrowInsert, arrow_insert
from hmco.clickhouse.setup import refresh_rollups
from hmco.errors import HmcoError, SinkError, SinkUnavailable
from hmco.schemas import Dataset, conform
from hmco.sinks.base import Scope, WriteResult
from hmco.windows import Window

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from hmco.config import Settings

__all__ = ["DEFAULT_BATCH_ROWS", "TRANSIENT_CODES", "ClickHouseSink", "is_transient", "load_rt_lmp"]

log = get_logger("hmco.sinks.clickhouse")

DEFAULT_BATCH_ROWS = 500_000

#: ClickHouse server error codes worth retrying: timeouts, network, too many parts/queries,
#: memory pressure, read-only replica, Keeper and replica availability.
TRANSIENT_CODES = frozenset(
    {159, 160, 202, 203, 209, 210, 241, 242, 252, 285, 319, 425, 439, 999, 1000, 3, 23, 24, 32, 33}
)
_CODE = re.compile(r"Code: (\d+)")


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same insert may succeed (connection trouble or a transient server code)."""
    if isinstance(exc, HmcoError):
        return exc.transient
    errors = import_optional("clickhouse_connect.driver.exceptions")
    if isinstance(exc, errors.OperationalError):
        return True
    if isinstance(exc, errors.DatabaseError):
        m = _CODE.search(str(exc))
        return m is not None and int(m.group(1)) in TRANSIENT_CODES
    return isinstance(exc, (ConnectionError, TimeoutError))


class ClickHouseSink:
    """Writes canonical batches of one real-time dataset (default ``rt_lmp``) into ClickHouse.

    Args:
        client: a clickhouse-connect client (``hmco.clickhouse.connect_clickhouse(settings)``).
        layout: the tables to write (``ClickHouseLayout.of("rt_lmp", database=..., cluster=...)``).
        batch_rows: rows per INSERT (one part per partition each; keep inserts large and few).
        rollups: recompute the touched hourly/daily rollup buckets after each write.
        max_attempts, backoff, sleep: retry policy for transient errors (``sleep`` injectable for tests).
        clock: the writer's clock (aware UTC ``datetime``), stamped into ``published_at`` of rows that
            arrive without one; stamps are made strictly increasing per sink (injectable for tests).
        route: how chunks reach the server: ``auto`` (``python`` on in-process chdb, else ``arrow``),
            ``python`` (chdb's ``Python()`` table function) or ``arrow`` (clickhouse-connect ``insert_arrow``).

    Raises:
        ConfigError: an unknown ``route``, or ``python`` with a client that is not in-process chdb.
    """

    name = "clickhouse"

    def __init__(
        self,
        client: Client,
        layout: ClickHouseLayout | None = None,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        rollups: bool = True,
        max_attempts: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        route: str = "auto",
    ) -> None:
        if batch_rows <= 0:
            raise ValueError("batch_rows must be positive")
        self.client = client
        self.layout = layout or ClickHouseLayout.of("rt_lmp")
        self.batch_rows = batch_rows
        self.rollups = rollups
        self.clock = clock
        self.inserter: ArrowInsert = arrow_insert(client, route)
        self._last_stamp: datetime | None = None
        self._stamp_lock = threading.Lock()
        self._retrying = Retrying(
            stop=stop_after_attempt(max_attempts),
            wait=wait_exponential_jitter(initial=backoff, max=30.0),
            retry=retry_if_exception(is_transient),
            sleep=sleep,
            reraise=True,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, dataset: str = "rt_lmp", *, setup: bool = True, **kwargs: Any
    ) -> ClickHouseSink:
        """Connect as ``settings.clickhouse`` says and (by default) create the schema if missing."""
        from hmco.clickhouse import connect_clickhouse, ensure_schema, layout_from_settings

        client = connect_clickhouse(settings)
        layout = layout_from_settings(settings, dataset)
        if setup:
            ensure_schema(client, layout)
        return cls(client, layout, **kwargs)

    def write(
        self,
        table: pa.Table,
        *,
        dataset: Dataset,
        window: Window,
        batch_id: str,
        scope: Scope | None = None,
        fingerprint: str | None = None,
    ) -> WriteResult:
        """Insert ``table`` (conformed to ``dataset``) in chunks of ``batch_rows``; idempotent per content.

        ``scope`` is accepted for the :class:`~hmco.sinks.base.Sink` protocol and not needed: rows are
        upserted by key, never deleted, so a write cannot touch another scope's rows. ``fingerprint`` (the
        digest of the raw payloads the batch was parsed from) saves hashing the rows for the tokens.

        The newest ``published_at`` of a key wins. Rows without one are stamped with this sink's clock
        (one stamp per call, later than any stamp this sink gave before); ``meta["stamped_rows"]`` counts
        them. The deduplication tokens are derived from the rows as given, before stamping.

        Raises:
            SinkUnavailable: the server stayed unavailable through every retry (re-run the write later).
            SinkError: the server rejected the insert (schema mismatch, permissions …).
        """
        if dataset.name != self.layout.dataset.name:
            raise SinkError(
                f"this ClickHouse sink writes {self.layout.dataset.name}, not {dataset.name}",
                batch_id=batch_id,
            )
        started = time.perf_counter()
        data = conform(table, dataset, extra="drop")
        source = self.layout.version_source
        unstamped = data.column(source).null_count
        stamp = pa.scalar(self._next_stamp(), data.schema.field(source).type) if unstamped else None
        digest = f"mm-{content_digest(data)}" if not fingerprint and data.num_rows else ""
        tokens: list[str] = []
        for offset in range(0, data.num_rows, self.batch_rows):
            chunk = data.slice(offset, self.batch_rows)
            at = chunk.schema.get_field_index(source)
            basis = fingerprint_basis(fingerprint, chunk.column(at)) if fingerprint else digest
            token = insert_token(dataset.name, batch_id, basis, offset, chunk.num_rows)
            if stamp is not None and chunk.column(at).null_count:
                chunk = chunk.set_column(at, chunk.field(at), pc.coalesce(chunk.column(at), stamp))
            self._insert(chunk, token, batch_id)
            tokens.append(token)
        if self.rollups and data.num_rows:
            self._refresh_rollups(data, dataset, batch_id)
        return WriteResult(
            sink=self.name,
            target=self.layout.store,
            rows=data.num_rows,
            bytes=data.nbytes,
            seconds=time.perf_counter() - started,
            meta={
                "inserts": len(tokens),
                "dedup_tokens": tokens,
                "route": self.inserter.route,
                "window": str(window),
                "stamped_rows": unstamped,
            },
        )

    def _next_stamp(self) -> datetime:
        """The writer's clock in whole microseconds, strictly after the previous stamp of this sink."""
        now = self.clock()
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        with self._stamp_lock:
            if self._last_stamp is not None and now <= self._last_stamp:
                now = self._last_stamp + timedelta(microseconds=1)
            self._last_stamp = now
        return now

    def _insert(self, chunk: pa.Table, token: str, batch_id: str) -> None:
        settings = insert_settings(token, chunk.num_rows)
        try:
            for attempt in self._retrying:
                with attempt:
                    self.inserter(self.layout.store, chunk, settings)
        except Exception as exc:
            if isinstance(exc, HmcoError):
                raise
            if is_transient(exc):
                raise SinkUnavailable(
                    f"ClickHouse insert into {self.layout.store} kept failing ({_short(exc)}); "
                    "the batch can be re-sent safely: identical chunks are deduplicated",
                    batch_id=batch_id,
                ) from exc
            raise SinkError(
                f"ClickHouse rejected the insert into {self.layout.store}: {_short(exc)}", batch_id=batch_id
            ) from exc

    def _refresh_rollups(self, data: pa.Table, dataset: Dataset, batch_id: str) -> None:
        ts = data.column(dataset.time_column)
        lo, hi = pc.min_max(ts).values()
        window = Window(lo.as_py(), hi.as_py() + timedelta(microseconds=1))
        isos = pc.unique(data.column("iso")).to_pylist() if "iso" in data.column_names else []
        try:
            for attempt in self._retrying:
                with attempt:
                    refresh_rollups(self.client, self.layout, window, isos)
        except Exception as exc:
            if not is_transient(exc):
                raise SinkError(f"rollup refresh after batch {batch_id} failed: {_short(exc)}") from exc
            # Rows are in; the refreshable MVs redo these buckets. Say so instead of failing the batch.
            log.warning(
                "rollup refresh for batch %s failed (%s); the scheduled refresh will redo it", batch_id, exc
            )


def load_rt_lmp(table: pa.Table, settings: Settings | None = None, *, batch_id: str = "load") -> WriteResult:
    """Create the schema if missing and write ``table`` (canonical rt_lmp rows) into ClickHouse.

    The one-call path for demos and the CLI; re-running it with the same rows adds nothing.
    """
    from hmco.config import Settings as _Settings
    from hmco.schemas import get_dataset

    dataset = get_dataset("rt_lmp")
    sink = ClickHouseSink.from_settings(settings or _Settings.load(), dataset.name)
    if table.num_rows == 0:
        return WriteResult(sink.name, sink.layout.store, 0)
    lo, hi = pc.min_max(table.column(dataset.time_column)).values()
    window = Window(lo.as_py(), hi.as_py() + timedelta(microseconds=1))
    return sink.write(table, dataset=dataset, window=window, batch_id=batch_id)


def _arrow_ipc(chunk: pa.Table, compression: str | None) -> pa.Buffer:
    """Arrow IPC file bytes of ``chunk`` (what ``insert_arrow`` sends; benchmarks/bench_backup.py uses it)."""
    options = pa.ipc.IpcWriteOptions(compression=compression) if compression else None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, chunk.schema, options=options) as writer:
        writer.write_table(chunk)
    return sink.getvalue()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
