"""The same upkeep on Trino: Iceberg's table procedures run by the cluster's query engine.

With the cluster profile and Trino configured (``settings.trino``, whose catalog is the lake's
catalog), :class:`TrinoMaintenance` runs

==========================  ==============================================================
``compact``                 ``ALTER TABLE … EXECUTE optimize(file_size_threshold => …)``
``rewrite_manifests``       ``ALTER TABLE … EXECUTE optimize_manifests``
``expire_snapshots``        ``ALTER TABLE … EXECUTE expire_snapshots(retention_threshold => …)``
``remove_orphan_files``     ``ALTER TABLE … EXECUTE remove_orphan_files(retention_threshold => …)``
==========================  ==============================================================

and returns the same :class:`~hmco.maintenance.report.ActionReport` as the embedded engine, measured
independently of Trino from the table's metadata through pyiceberg (files, bytes, manifests,
snapshots before and after) and, for the actions that delete, from a listing of the table's location
before and after (``removed_files``/``removed_bytes``). What Trino itself returns (its metrics rows)
is kept in ``details``. Trino refuses retentions below its catalog's
``iceberg.expire-snapshots.min-retention`` / ``iceberg.remove-orphan-files.min-retention`` (7 days
unless configured); such a refusal, like any query error, is the report's ``error``.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hmco._dependencies import import_optional
from hmco._logging import get_logger
from hmco.config import Settings
from hmco.errors import ConfigError
from hmco.lake import Lake
from hmco.maintenance.files import finish_report, list_files, start_report
from hmco.maintenance.report import ActionReport
from hmco.query.trino import TrinoSQL
from hmco.schemas import Dataset
from hmco.windows import as_utc

if TYPE_CHECKING:
    from pyiceberg.table import Table

__all__ = ["DEFAULT_FILE_SIZE_THRESHOLD", "TrinoMaintenance", "data_size", "duration", "quote_identifier"]

log = get_logger("hmco.maintenance")

#: Files smaller than this are rewritten by ``compact`` (Trino's own default is 100MB).
DEFAULT_FILE_SIZE_THRESHOLD = "128MB"

_DATA_SIZE = re.compile(r"\d+(\.\d+)?(B|kB|MB|GB|TB|PB)")


def quote_identifier(name: str) -> str:
    """``name`` as a Trino delimited identifier (``"a""b"`` for ``a"b``)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def data_size(value: int | str) -> str:
    """A Trino data size (``'128MB'``) from bytes or a size string; anything else is a ConfigError."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return f"{value}B"
    if isinstance(value, str) and _DATA_SIZE.fullmatch(value.strip()):
        return value.strip()
    raise ConfigError(
        f"file_size_threshold must be bytes or a size like '128MB' (units B, kB, MB, GB, TB, PB): {value!r}"
    )


def duration(value: timedelta) -> str:
    """A Trino duration (``'604800s'``) of whole seconds, rounded up (a retention never shrinks)."""
    if value < timedelta(0):
        raise ConfigError(f"a retention cannot be negative: {value}")
    return f"{math.ceil(value.total_seconds())}s"


class TrinoMaintenance:
    """Iceberg upkeep of the lake's tables through Trino's ``ALTER TABLE … EXECUTE`` procedures.

    Args:
        trino: a :class:`~hmco.query.trino.TrinoSQL` (or the settings to open one with; default: the lake's).
        lake: the lake whose tables Trino's catalog (``settings.trino.catalog``) serves.
    """

    engine = "trino"

    def __init__(self, trino: TrinoSQL | Settings | None, lake: Lake) -> None:
        self.trino = trino if isinstance(trino, TrinoSQL) else TrinoSQL(trino or lake.settings)
        self.lake = lake

    # --- actions ---------------------------------------------------------------------------------

    def compact(
        self,
        dataset: Dataset | str,
        tier: str | None = None,
        *,
        file_size_threshold: int | str = DEFAULT_FILE_SIZE_THRESHOLD,
        dry_run: bool = False,
    ) -> ActionReport:
        """Rewrite the data files smaller than ``file_size_threshold`` into fewer, larger ones (``optimize``)."""
        args = f"file_size_threshold => {_literal(data_size(file_size_threshold))}"
        return self._execute("compact", dataset, tier, f"optimize({args})", dry_run=dry_run)

    def rewrite_manifests(
        self, dataset: Dataset | str, tier: str | None = None, *, dry_run: bool = False
    ) -> ActionReport:
        """Merge the table's manifests (``optimize_manifests``) so that planning stays fast."""
        return self._execute("rewrite_manifests", dataset, tier, "optimize_manifests", dry_run=dry_run)

    def expire_snapshots(
        self,
        dataset: Dataset | str,
        tier: str | None = None,
        *,
        older_than: timedelta | datetime = timedelta(days=7),
        now: datetime | None = None,
        dry_run: bool = False,
    ) -> ActionReport:
        """Expire the snapshots older than ``older_than`` (an age, or a point in time) and delete their files.

        Trino keeps the current snapshot and every branch and tag head, and measures age by its own clock.
        """
        threshold = _literal(duration(self._age(older_than, now)))
        statement = f"expire_snapshots(retention_threshold => {threshold})"
        return self._execute("expire_snapshots", dataset, tier, statement, dry_run=dry_run, deletes=True)

    def remove_orphan_files(
        self,
        dataset: Dataset | str,
        tier: str | None = None,
        *,
        older_than: timedelta | datetime = timedelta(days=3),
        now: datetime | None = None,
        dry_run: bool = False,
    ) -> ActionReport:
        """Delete the files under the table's location that no snapshot references, older than ``older_than``.

        The age guard protects the files of commits in flight; keep it well above the longest write.
        """
        threshold = _literal(duration(self._age(older_than, now)))
        statement = f"remove_orphan_files(retention_threshold => {threshold})"
        return self._execute("remove_orphan_files", dataset, tier, statement, dry_run=dry_run, deletes=True)

    # --- helpers ---------------------------------------------------------------------------------

    def qualified_name(self, dataset: Dataset | str, tier: str | None = None) -> str:
        """``"catalog"."hub_<tier>"."<dataset>"``, each part quoted."""
        namespace, table = self.lake.identifier(self.lake.check_dataset(dataset), tier).split(".", 1)
        return ".".join(quote_identifier(p) for p in (self.trino.settings.trino.catalog, namespace, table))

    def statement(self, dataset: Dataset | str, tier: str | None, procedure: str) -> str:
        """``ALTER TABLE <qualified name> EXECUTE <procedure>``."""
        return f"ALTER TABLE {self.qualified_name(dataset, tier)} EXECUTE {procedure}"

    @staticmethod
    def _age(older_than: timedelta | datetime, now: datetime | None) -> timedelta:
        if isinstance(older_than, timedelta):
            return older_than
        return max(as_utc(now or datetime.now(UTC)) - as_utc(older_than), timedelta(0))

    def _table(self, dataset: Dataset | str, tier: str | None) -> Table:
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return self.lake.table(self.lake.check_dataset(dataset), tier, create=False)
        except NoSuchTableError:
            raise ConfigError(
                f"table {self.lake.identifier(dataset, tier)} does not exist in the lake"
            ) from None

    def _execute(
        self,
        action: str,
        dataset: Dataset | str,
        tier: str | None,
        procedure: str,
        *,
        dry_run: bool,
        deletes: bool = False,
    ) -> ActionReport:
        """Run one procedure on one table; stats before and after from pyiceberg, deletions from listings."""
        errors = import_optional("trino.exceptions")
        sql = self.statement(dataset, tier, procedure)
        tbl = self._table(dataset, tier)
        report, started = start_report(tbl, action, dry_run=dry_run)
        report.engine = self.engine
        report.details.append({"statement": sql})
        if dry_run:
            return finish_report(report, None, started)
        stored_before = {f.path: f.size for f in list_files(tbl)} if deletes else {}
        try:
            result = self.trino.sql(sql)
            report.details.extend({k: _plain(v) for k, v in row.items()} for row in result.to_pylist())
        except errors.TrinoQueryError as exc:
            report.error = f"{exc.error_name}: {exc.message}"
            log.error("%s on %s failed on Trino: %s", action, report.table, report.error)
        finish_report(report, tbl, started)
        if deletes:
            remaining = {f.path for f in list_files(tbl)}
            gone = [size for path, size in stored_before.items() if path not in remaining]
            report.removed_files, report.removed_bytes = len(gone), sum(gone)
            report.seconds = time.perf_counter() - started
        log.info("%s", report)
        return report

    def close(self) -> None:
        self.trino.close()

    def __enter__(self) -> TrinoMaintenance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TrinoMaintenance({self.trino!r}, {self.lake!r})"


def _plain(value: Any) -> Any:
    """A Trino result value as plain JSON-able data."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)
