"""Trino: run SQL on the cluster's query engine and get Arrow back.

The connection comes from ``settings.trino`` (host, port, user, catalog, scheme, password). The session
time zone is UTC, so ``CURRENT_DATE``/``now()`` mean the same as in the embedded engine
(:class:`hmco.query.lake.LakeSQL`). Result columns get the Arrow type of their Trino type where the
mapping is direct (timestamps, numbers, strings, dates); other types are inferred from the values.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from hmco._dependencies import import_optional
from hmco.config import Settings
from hmco.errors import ConfigError
from hmco.redaction import register_secret

if TYPE_CHECKING:
    from trino.dbapi import Connection

__all__ = ["TrinoSQL", "arrow_type"]

_SIMPLE: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double": pa.float64(),
    "varchar": pa.string(),
    "char": pa.string(),
    "varbinary": pa.binary(),
    "date": pa.date32(),
    "json": pa.string(),
    "uuid": pa.string(),
}
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")


def arrow_type(trino_type: str) -> pa.DataType | None:
    """The Arrow type for a Trino type name (``varchar(10)``, ``timestamp(6) with time zone`` …), or None.

    None means "infer from the values" (arrays, maps, rows, intervals …).
    """
    name = trino_type.strip().lower()
    base = name.split("(", 1)[0].strip()
    if base == "timestamp":
        # The client returns Python datetimes: microseconds at most; zoned values are stored as UTC.
        return pa.timestamp("us", tz="UTC") if name.endswith("with time zone") else pa.timestamp("us")
    if base == "time" and not name.endswith("with time zone"):
        return pa.time64("us")
    if base == "decimal":
        found = _DECIMAL.fullmatch(name)
        return pa.decimal128(int(found.group(1)), int(found.group(2))) if found else None
    return _SIMPLE.get(base)


class TrinoSQL:
    """Run SQL on Trino (``settings.trino``) and return Arrow tables.

    Args:
        settings: hmco settings (``Settings.load()`` if omitted).
        schema: the session's default schema (e.g. ``hub_curated``); queries usually name it.
    """

    def __init__(self, settings: Settings | None = None, *, schema: str | None = None) -> None:
        self.settings = settings or Settings.load()
        self.schema = schema
        self._conn: Connection | None = None

    def _connect(self) -> Connection:
        if self._conn is not None:
            return self._conn
        trino = import_optional("trino")
        cfg = self.settings.trino
        auth = None
        if cfg.password is not None:
            if cfg.http_scheme != "https":
                raise ConfigError(
                    "trino.password is set but trino.http_scheme is 'http'; Trino accepts passwords only "
                    "over HTTPS: set trino.http_scheme to 'https' or remove the password",
                    host=cfg.host,
                    port=cfg.port,
                )
            secret = cfg.password.get_secret_value()
            register_secret(secret)
            auth = trino.auth.BasicAuthentication(cfg.user, secret)
        self._conn = trino.dbapi.connect(
            host=cfg.host,
            port=cfg.port,
            user=cfg.user,
            catalog=cfg.catalog,
            schema=self.schema,
            http_scheme=cfg.http_scheme,
            auth=auth,
            timezone="UTC",
            source="hmco",
        )
        return self._conn

    def sql(self, query: str, params: list[Any] | None = None) -> pa.Table:
        """Run ``query`` (one statement, Trino dialect) and return its rows as an Arrow table."""
        cursor = self._connect().cursor()
        try:
            if params:
                cursor.execute(query, params)
            else:
                cursor.execute(query)
            rows = cursor.fetchall()
            description = cursor.description or []
        except import_optional("trino.exceptions").TrinoQueryError as exc:
            self._raise_typed(exc)
            raise
        finally:
            cursor.close()
        names = [d[0] for d in description]
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        arrays = [
            pa.array(values, type=arrow_type(str(d[1])) or (None if values else pa.null()))
            for values, d in zip(columns, description, strict=True)
        ]
        return pa.Table.from_arrays(arrays, names=names)

    def _raise_typed(self, exc: Exception) -> None:
        """Raise Trino's refusal (access denied, queue full) as hmco's typed error; other errors pass."""
        from hmco.security.trino import translate_trino_error

        typed = translate_trino_error(exc, user=self.settings.trino.user)
        if typed is not None:
            raise typed from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> TrinoSQL:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        cfg = self.settings.trino
        return f"TrinoSQL({cfg.http_scheme}://{cfg.host}:{cfg.port}, catalog={cfg.catalog!r})"
