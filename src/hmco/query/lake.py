"""The embedded SQL engine: DuckDB over the lake's Iceberg tables, speaking Trino's dialect.

Queries are written as users write them for Trino (``hub_curated.eia_daily_fuel``,
``iceberg.hub_curated.x``, ``INTERVAL '7' DAY``); sqlglot translates them to DuckDB, and each referenced
table becomes a view over ``iceberg_scan(<current metadata file>)`` — the snapshot the catalog says is
current. Where the DuckDB Iceberg extension is not installed, the table is scanned with pyiceberg and
handed to DuckDB as Arrow. Results come back as Arrow (``.pl()`` for polars is one call away).

Names reach DuckDB only after the identifier grammar (:mod:`hmco.names`) accepted them; values go in as
``?`` parameters (``sql(query, params=[...])``, or :meth:`LakeSQL.select`, which builds the filter).
"""

from __future__ import annotations

import glob
import importlib.util
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from hmco._dependencies import import_optional
from hmco._logging import get_logger
from hmco.errors import ConfigError
from hmco.lake import TIERS, Lake
from hmco.names import check_identifier, check_qualified

if TYPE_CHECKING:
    import duckdb

__all__ = ["LakeSQL", "translate"]

log = get_logger("hmco.query")

#: Catalog prefixes that name the lake in Trino (``iceberg.hub_curated.x``) and, for the seed's RT
#: query, the ClickHouse catalog whose ``rt_lmp`` the lake also keeps (``clickhouse.default.rt_lmp``).
LAKE_CATALOGS = ("iceberg", "lake", "hmco")
RT_ALIASES = {("clickhouse", "default"): "hub_curated"}


def translate(sql: str, read: str = "trino") -> str:
    """Translate a query from ``read`` (Trino by default) into DuckDB SQL."""
    import sqlglot

    return ";\n".join(sqlglot.transpile(sql, read=read, write="duckdb"))


def _extension_path(name: str) -> str | None:
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        found = glob.glob(
            os.path.join(root, "extensions", "*", "**", f"{name}.duckdb_extension"), recursive=True
        )
        if found:
            return found[0]
    return None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class LakeSQL:
    """Run Trino-dialect SQL over the lake with DuckDB.

    Args:
        lake: the lake whose tables are queried.
        connection: an existing DuckDB connection to use (a new in-memory one by default).
    """

    def __init__(self, lake: Lake, connection: duckdb.DuckDBPyConnection | None = None) -> None:
        self.lake = lake
        duck = import_optional("duckdb")
        self.con: duckdb.DuckDBPyConnection = connection or duck.connect(
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        self.con.execute("SET TimeZone = 'UTC'")
        self.iceberg = self._load_extensions()

    def _load_extensions(self) -> bool:
        paths = {name: _extension_path(name) for name in ("avro", "httpfs", "iceberg")}
        if not paths["iceberg"] or not paths["avro"]:
            log.info("DuckDB iceberg extension not installed; tables will be scanned with pyiceberg")
            return False
        try:
            for name in ("avro", "httpfs", "iceberg"):
                if paths[name]:
                    self.con.execute(f"LOAD '{paths[name]}'")
        except Exception as exc:  # version mismatch between duckdb and the extension wheel
            log.warning("cannot load DuckDB extensions (%s); falling back to pyiceberg scans", exc)
            return False
        s3 = self.lake.settings.s3
        if s3.endpoint or s3.access_key_id:
            endpoint = (s3.endpoint or "").split("://", 1)[-1]
            opts = {
                "TYPE": "s3",
                "ENDPOINT": endpoint,
                "URL_STYLE": "path" if s3.path_style else "vhost",
                "USE_SSL": "true" if (s3.endpoint or "").startswith("https") else "false",
                "REGION": s3.region,
            }
            if s3.access_key_id and s3.secret_access_key:
                opts["KEY_ID"] = s3.access_key_id.get_secret_value()
                opts["SECRET"] = s3.secret_access_key.get_secret_value()
            body = ", ".join(
                f"{k} {v}" if k in ("TYPE", "USE_SSL") else f"{k} '{v}'" for k, v in opts.items()
            )
            self.con.execute(f"CREATE OR REPLACE SECRET hmco_s3 ({body})")
        return True

    def _register(self, namespace: str, name: str) -> None:
        from pyiceberg.exceptions import NoSuchTableError

        # Both names are quoted into DDL below: only plain identifiers get that far.
        check_identifier(namespace, "namespace")
        check_identifier(name, "table name")
        try:
            tbl = self.lake.catalog.load_table(f"{namespace}.{name}")
        except NoSuchTableError:
            raise ConfigError(f"table {namespace}.{name} does not exist in the lake") from None
        self.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{namespace}"')
        if self.iceberg and tbl.metadata_location:
            location = tbl.metadata_location.replace("'", "''")
            self.con.execute(
                f'CREATE OR REPLACE VIEW "{namespace}"."{name}" AS SELECT * FROM iceberg_scan(\'{location}\')'
            )
        else:
            arrow = tbl.scan().to_arrow()
            view = f"__hmco_{namespace}_{name}"
            self.con.register(view, arrow)
            self.con.execute(f'CREATE OR REPLACE VIEW "{namespace}"."{name}" AS SELECT * FROM "{view}"')

    def _rewrite(self, sql: str, read: str) -> str:
        """Map Trino catalog.schema.table names onto registered lake views and translate to DuckDB."""
        import sqlglot
        from sqlglot import exp

        namespaces = {t.namespace for t in TIERS.values()}
        statements = sqlglot.parse(sql, read=read)
        out = []
        for stmt in statements:
            if stmt is None:
                continue
            ctes = {c.alias_or_name for c in stmt.find_all(exp.CTE)}
            for table in stmt.find_all(exp.Table):
                # Only an unqualified name can refer to a CTE; ``hub_curated.x`` is the lake table.
                if not table.name or (not table.db and table.name in ctes):
                    continue
                # Trino folds identifiers to lower case: ICEBERG.HUB_CURATED.RT_LMP is the same table.
                catalog, db, name = table.catalog.lower(), table.db.lower(), table.name.lower()
                if (catalog, db) in RT_ALIASES:
                    db = RT_ALIASES[(catalog, db)]
                if db in namespaces and (
                    not catalog or catalog in LAKE_CATALOGS or (catalog, table.db.lower()) in RT_ALIASES
                ):
                    self._register(db, name)
                    table.set("catalog", None)
                    table.set("db", exp.to_identifier(db))
                    table.set("this", exp.to_identifier(name))
            out.append(stmt.sql(dialect="duckdb"))
        return ";\n".join(out)

    def sql(self, query: str, *, dialect: str = "trino", params: list[Any] | None = None) -> pa.Table:
        """Run ``query`` (Trino dialect unless told otherwise) and return the result as Arrow."""
        import sqlglot.errors

        duck = import_optional("duckdb")
        try:
            duck_sql = self._rewrite(query, dialect)
        except sqlglot.errors.SqlglotError as exc:
            raise ConfigError(f"cannot parse the {dialect} query: {_first_line(exc)}") from None
        log.debug("running on DuckDB: %s", duck_sql)
        try:
            return self.con.execute(duck_sql, params or []).fetch_arrow_table()
        except duck.Error as exc:
            raise ConfigError(f"query failed on the embedded engine: {_first_line(exc)}") from None

    def select(
        self,
        table: str,
        *,
        where: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Rows of a lake table (``hub_curated.rt_lmp``) filtered by column values, e.g. by ISO or node.

        ``where`` maps a column to a value (``=``) or a list of values (``IN``); every value is a bound
        ``?`` parameter, never SQL text.

        Raises:
            ConfigError: a table, column or limit that is not valid (named with the value).
        """
        check_qualified(table, "table", max_parts=3)
        cols = ", ".join(check_identifier(c, "column") for c in columns) if columns else "*"
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (where or {}).items():
            check_identifier(column, "filter column")
            if isinstance(value, (list, tuple, set, frozenset)):
                values = list(value)
                if not values:
                    clauses.append("FALSE")
                    continue
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params += values
            else:
                clauses.append(f"{column} = ?")
                params.append(value)
        query = f"SELECT {cols} FROM {table}"
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ConfigError(f"limit must be a positive whole number, not {limit!r}", field="limit")
            query += f" LIMIT {limit}"
        return self.sql(query, params=params)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> LakeSQL:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
