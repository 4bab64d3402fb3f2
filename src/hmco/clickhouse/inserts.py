"""Arrow chunks into a ClickHouse table, by one of two routes with the same settings and errors.

* ``python`` (in-process chdb only): ``INSERT INTO t (cols) SETTINGS … SELECT cols FROM Python(chunk)`` on
  the chdb connection the clickhouse-connect client already holds. chdb reads the Arrow buffers in place:
  no IPC serialisation, no temporary file.
* ``arrow`` (any client): clickhouse-connect's ``insert_arrow``, Arrow IPC in one request body (over HTTP
  to a server; through a temporary file and ``INSERT … FROM INFILE`` on chdb).

``auto`` picks ``python`` when the client runs chdb in process, else ``arrow``; and it moves to ``arrow``
for good when the engine refuses the ``Python()`` table function to the user (table functions need the
``CREATE TEMPORARY TABLE`` grant, which a writer holding only ``INSERT`` lacks). Both raise
clickhouse-connect's ``DatabaseError`` (carrying the server's ``Code: N``) so callers classify failures once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pyarrow as pa

from hmco._dependencies import import_optional
from hmco._logging import get_logger
from hmco.errors import ConfigError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["ROUTES", "ArrowInsert", "InsertRoute", "arrow_insert", "chdb_handle"]

log = get_logger("hmco.clickhouse.inserts")

InsertRoute = Literal["python", "arrow"]
ROUTES: tuple[str, ...] = ("auto", "python", "arrow")

InsertSettings = Mapping[str, str | int]

_ACCESS_DENIED = "Code: 497."


class ArrowInsert(Protocol):
    """Inserts one Arrow chunk into a table (``db.table``, quoted as needed) with per-insert settings."""

    @property
    def route(self) -> InsertRoute: ...

    def __call__(self, table: str, chunk: pa.Table, settings: InsertSettings) -> None: ...


def arrow_insert(client: Client, route: str = "auto") -> ArrowInsert:
    """The inserter for ``client`` by ``route`` (``auto``, ``python`` or ``arrow``; see the module docstring).

    Raises:
        ConfigError: an unknown route, or ``python`` for a client that does not run chdb in process.
    """
    if route not in ROUTES:
        raise ConfigError(f"unknown ClickHouse insert route {route!r}; choose one of {', '.join(ROUTES)}")
    handle = chdb_handle(client) if route != "arrow" else None
    if route == "python" and handle is None:
        raise ConfigError(
            "the 'python' insert route needs an in-process chdb client (settings.clickhouse.interface='chdb'); "
            "use route='arrow' (or 'auto') for a ClickHouse server"
        )
    if handle is None:
        return ArrowIpcInsert(client)
    return PythonTableInsert(handle, fallback=ArrowIpcInsert(client) if route == "auto" else None)


def chdb_handle(client: Client) -> Any | None:
    """The chdb connection handle under a clickhouse-connect chdb ``client`` (``conn`` and its ``lock``).

    clickhouse-connect (1.12) keeps one per client at ``client._backend._handle`` and serialises every call on
    it with ``lock``; inserting through the same handle under the same lock shares the client's engine and
    lifetime. None for an HTTP client, or a clickhouse-connect that keeps it elsewhere (then ``auto`` falls
    back to ``arrow``, which is slower but equivalent).
    """
    handle = getattr(getattr(client, "_backend", None), "_handle", None)
    lock = getattr(handle, "lock", None)
    if not hasattr(getattr(handle, "conn", None), "query") or not hasattr(lock, "acquire"):
        return None
    return handle


class ArrowIpcInsert:
    """``client.insert_arrow``: Arrow IPC (compressed as the client's ``compress`` says) in one request."""

    route: InsertRoute = "arrow"

    def __init__(self, client: Client) -> None:
        self.client = client

    def __call__(self, table: str, chunk: pa.Table, settings: InsertSettings) -> None:
        self.client.insert_arrow(table, chunk, settings=dict(settings))


class PythonTableInsert:
    """chdb's ``Python()`` table function over the chunk, on the client's own chdb connection and lock.

    With a ``fallback``, an access denial (the user may insert but not use table functions) sends this
    chunk and every later one through the fallback instead; nothing was inserted by the refused query.
    """

    def __init__(self, handle: Any, fallback: ArrowInsert | None = None) -> None:
        self.handle = handle
        self.fallback = fallback
        self.denied = False

    @property
    def route(self) -> InsertRoute:
        return "arrow" if self.denied and self.fallback is not None else "python"

    def __call__(self, table: str, chunk: pa.Table, settings: InsertSettings) -> None:
        if self.denied and self.fallback is not None:
            return self.fallback(table, chunk, settings)
        try:
            return self._insert(table, chunk, settings)
        except Exception as exc:
            if self.fallback is None or _ACCESS_DENIED not in str(exc):
                raise
            self.fallback(table, chunk, settings)  # a refusal of the INSERT itself is raised from here
            log.warning("chdb refused the Python() table function (%s); inserting Arrow IPC instead", exc)
            self.denied = True
            return None

    def _insert(self, table: str, chunk: pa.Table, settings: InsertSettings) -> None:
        from clickhouse_connect.driver.binding import quote_identifier

        columns = ", ".join(quote_identifier(c) for c in chunk.column_names)
        clause = ", ".join(f"{_setting_name(k)} = {_literal(v)}" for k, v in settings.items())
        sql = (
            f"INSERT INTO {table} ({columns}) SETTINGS {clause} "
            f"SELECT {columns} FROM Python(hmco_insert_chunk)"
        )
        errors = import_optional("clickhouse_connect.driver.exceptions")
        handle = self.handle
        if getattr(handle, "stream_owner", None) == threading.get_ident():
            raise errors.ProgrammingError("a query result of this chdb client is still being streamed")
        # chdb's Python() finds the table by this name among the locals of the frames that called it.
        hmco_insert_chunk = chunk  # noqa: F841
        with handle.lock:
            conn = handle.conn
            if conn is None:
                raise errors.ProgrammingError("the chdb client has been closed")
            try:
                conn.query(sql, "TabSeparated")
            except Exception as exc:
                raise errors.DatabaseError(_engine_message(exc)) from exc


def _setting_name(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a ClickHouse setting name: {name!r}")
    return name


def _literal(value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _engine_message(exc: BaseException) -> str:
    """chdb's message from ``Code: N`` on (what clickhouse-connect reports for a server error)."""
    text = str(exc)
    at = text.find("Code: ")
    return text[at:].strip() if at > 0 else text.strip()
