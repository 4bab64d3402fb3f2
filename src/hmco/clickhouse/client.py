"""One factory for the real-time store: a clickhouse-connect ``Client`` over HTTP(S) or in-process chdb.

Everything else in hmco talks to that ``Client`` and never asks which backend it is. chdb opens one data
directory per process, so chdb clients are cached per directory and asking for a second directory while
one is open raises :class:`~hmco.errors.ConfigError` naming both.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hmco._dependencies import import_optional
from hmco.config import Settings
from hmco.errors import ConfigError, TransientError
from hmco.security.redaction import register_secret

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["close_chdb", "connect_clickhouse"]

_lock = threading.Lock()
_chdb_clients: dict[Path, Client] = {}


def connect_clickhouse(settings: Settings | None = None, *, chdb_options: dict[str, Any] | None = None) -> Client:
    """A clickhouse-connect client for ``settings.clickhouse``.

    ``interface="chdb"`` (local profile) returns the process-wide client of ``settings.chdb_path`` (created
    on first use); ``"http"``/``"https"`` connects to the server or cluster at ``host:port``.

    Raises:
        ConfigError: chdb is asked for another directory than the one already open in this process.
        TransientError: the server cannot be reached.
    """
    settings = settings or Settings.load()
    ch = settings.clickhouse
    if ch.interface == "chdb":
        return _chdb_client(settings.chdb_path, chdb_options)
    cc = import_optional("clickhouse_connect")
    errors = import_optional("clickhouse_connect.driver.exceptions")
    password = ch.password.get_secret_value() if ch.password else ""
    if password:
        register_secret(password)
    try:
        return cc.get_client(  # type: ignore[no-any-return]
            interface=ch.interface,
            host=ch.host,
            port=ch.port,
            username=ch.username,
            password=password,
            database=ch.database,
            compress=ch.compress,
        )
    except errors.OperationalError as exc:
        raise TransientError(
            f"ClickHouse at {ch.interface}://{ch.host}:{ch.port} is unreachable; check the server and "
            f"settings.clickhouse.host/port ({type(exc).__name__})",
            database=ch.database,
        ) from None


def _chdb_client(path: Path, chdb_options: dict[str, Any] | None) -> Client:
    path = Path(path).expanduser().resolve()
    with _lock:
        if path in _chdb_clients:
            return _chdb_clients[path]
        if _chdb_clients:
            (open_path,) = _chdb_clients
            raise ConfigError(
                f"chdb can open one data directory per process: {open_path} is open, {path} was asked for; "
                "use the same settings.clickhouse.path in this process or call hmco.clickhouse.close_chdb() first"
            )
        import_optional("chdb")
        cc = import_optional("clickhouse_connect")
        path.mkdir(parents=True, exist_ok=True)
        client = cc.get_client(interface="chdb", path=str(path), chdb_options=chdb_options)
        _chdb_clients[path] = client
        return client  # type: ignore[no-any-return]


def close_chdb() -> None:
    """Close the process's chdb client (if any) so another directory can be opened."""
    with _lock:
        for client in _chdb_clients.values():
            client.close()
        _chdb_clients.clear()
