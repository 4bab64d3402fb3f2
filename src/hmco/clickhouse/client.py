"""One factory for the real-time store: a clickhouse-connect ``Client`` over HTTP(S) or in-process chdb.

Everything else in hmco talks to that ``Client`` and never asks which backend it is. chdb opens one data
directory per process, so chdb clients are cached (one per database, all on that directory) and
asking for a second directory while one is open raises :class:`~hmco.errors.ConfigError` naming both.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hmco._dependencies import import_optional
from hmco.config import Settings
from hmco.errors import ConfigError, SinkUnavailable
from hmco.redaction import register_secret

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["close_chdb", "connect_clickhouse"]

_lock = threading.Lock()
_chdb_path: Path | None = None
_chdb_clients: dict[str, Client] = {}  # one per database, all on the single chdb path


def connect_clickhouse(
    settings: Settings | None = None, *, chdb_options: dict[str, Any] | None = None
) -> Client:
    """A clickhouse-connect client for ``settings.clickhouse``.

    ``interface="chdb"`` (local profile) returns the process-wide client of ``settings.chdb_path`` and
    ``settings.clickhouse.database`` (both created on first use); ``"http"``/``"https"`` connects to
    the server or cluster at ``host:port``.

    Raises:
        ConfigError: chdb is asked for another directory than the one already open in this process.
        SinkUnavailable: the server cannot be reached (transient).
    """
    settings = settings or Settings.load()
    ch = settings.clickhouse
    if ch.interface == "chdb":
        return _chdb_client(settings.chdb_path, ch.database, chdb_options)
    cc = import_optional("clickhouse_connect")
    errors = import_optional("clickhouse_connect.driver.exceptions")
    password = ch.password.get_secret_value() if ch.password else ""
    if password:
        register_secret(password)
    try:
        return cc.get_client(
            interface=ch.interface,
            host=ch.host,
            port=ch.port,
            username=ch.username,
            password=password,
            database=ch.database,
            compress=ch.compress,
        )
    except errors.OperationalError as exc:
        raise SinkUnavailable(
            f"ClickHouse at {ch.interface}://{ch.host}:{ch.port} is unreachable; check the server and "
            f"settings.clickhouse.host/port ({type(exc).__name__})",
            database=ch.database,
        ) from None


def _chdb_client(path: Path, database: str, chdb_options: dict[str, Any] | None) -> Client:
    global _chdb_path
    path = Path(path).expanduser().resolve()
    with _lock:
        if _chdb_path is not None and path != _chdb_path:
            raise ConfigError(
                f"chdb can open one data directory per process: {_chdb_path} is open, {path} was asked for; "
                "use the same settings.clickhouse.path in this process, or hmco.clickhouse.close_chdb() first"
            )
        if database in _chdb_clients:
            return _chdb_clients[database]
        import_optional("chdb")
        cc = import_optional("clickhouse_connect")
        path.mkdir(parents=True, exist_ok=True)
        if "default" not in _chdb_clients:
            _chdb_clients["default"] = cc.get_client(
                interface="chdb", path=str(path), chdb_options=chdb_options
            )
            _chdb_path = path
        if database != "default":
            _chdb_clients["default"].command(f"CREATE DATABASE IF NOT EXISTS {_quote_ident(database)}")
            _chdb_clients[database] = cc.get_client(
                interface="chdb", path=str(path), database=database, chdb_options=chdb_options
            )
        return _chdb_clients[database]


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def close_chdb() -> None:
    """Close the process's chdb client (if any) so another directory can be opened."""
    global _chdb_path
    with _lock:
        for client in _chdb_clients.values():
            client.close()
        _chdb_clients.clear()
        _chdb_path = None
