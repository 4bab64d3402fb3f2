"""Keep the lake healthy: Iceberg upkeep and tier retention, on the embedded engine or on Trino.

One call per table and action, the same API on both engines::

    from hmco.maintenance import TableMaintenance, maintain

    upkeep = TableMaintenance(lake, "rt_lmp", "curated")         # engine="trino" on the cluster
    upkeep.compact()                                             # bin-pack small files per partition
    upkeep.rewrite_manifests()
    upkeep.expire_snapshots(older_than=timedelta(days=7), retain_last=5)
    upkeep.remove_orphan_files(older_than=timedelta(days=3), dry_run=True)
    upkeep.apply_retention()                                     # rows past the tier's retention

    report = maintain(lake)                                      # every table, the weekly order
    print(report); sys.exit(report.exit_code)

Every action returns an :class:`ActionReport` (files and bytes before and after, snapshots and
manifests removed, seconds); :func:`maintain` runs many and returns a :class:`MaintenanceReport` with
an exit code, recording Prometheus metrics as it goes. :data:`WEEKLY_SCHEDULE` is the platform's
upkeep schedule as data, for schedulers. The modules, one action each: :mod:`.expire`,
:mod:`.manifests`, :mod:`.compaction`, :mod:`.orphans`, :mod:`.retention`, and :mod:`.trino` for the
same actions as Trino ``ALTER TABLE … EXECUTE`` procedures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from hmco._logging import get_logger
from hmco.errors import ConfigError
from hmco.lake.tiers import TIERS, tier
from hmco.maintenance.report import ActionReport, MaintenanceReport

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from hmco.lake import Lake
    from hmco.maintenance.trino import TrinoMaintenance
    from hmco.schemas import Dataset

__all__ = [
    "ACTIONS",
    "WEEKLY_SCHEDULE",
    "ActionReport",
    "MaintenanceReport",
    "ScheduledAction",
    "TableMaintenance",
    "maintain",
]

log = get_logger("hmco.maintenance")

Engine = Literal["local", "trino"]
Action = Literal["expire_snapshots", "rewrite_manifests", "compact", "remove_orphan_files", "retention"]


@dataclass(frozen=True)
class ScheduledAction:
    """One upkeep action and when the platform runs it (a 5-field cron expression, UTC)."""

    action: Action
    cron: str
    description: str


#: The platform's weekly upkeep, in the order it runs: Sunday 02:00 expire snapshots, 03:00 rewrite
#: manifests, 04:00 compaction (the platform's schedule); then hmco's retention (05:00) and the orphan
#: sweep (06:00), which must follow expiry and compaction to find what those freed.
WEEKLY_SCHEDULE: tuple[ScheduledAction, ...] = (
    ScheduledAction("expire_snapshots", "0 2 * * 0", "expire snapshots older than 7 days, keep the last 5"),
    ScheduledAction("rewrite_manifests", "0 3 * * 0", "merge small manifests so planning stays fast"),
    ScheduledAction("compact", "0 4 * * 0", "bin-pack small data files per partition, sorted"),
    ScheduledAction("retention", "0 5 * * 0", "delete rows past each tier's retention; sweep raw payloads"),
    ScheduledAction("remove_orphan_files", "0 6 * * 0", "remove unreferenced files older than 3 days"),
)
#: Every action, in the weekly order.
ACTIONS: tuple[Action, ...] = tuple(s.action for s in WEEKLY_SCHEDULE)

DEFAULT_SNAPSHOT_AGE = timedelta(days=7)
DEFAULT_RETAIN_LAST = 5
DEFAULT_ORPHAN_AGE = timedelta(days=3)


class TableMaintenance:
    """Upkeep of one table of the lake, on the embedded engine (pyiceberg) or on Trino.

    Args:
        lake: the lake holding the table.
        dataset: the dataset whose table it is.
        tier: the tier (default: the dataset's own).
        engine: ``local`` runs hmco's own implementations through pyiceberg; ``trino`` runs Trino's
            Iceberg procedures (the cluster profile; ``settings.trino`` says where Trino is).
        trino: a :class:`~hmco.query.trino.TrinoSQL` to use instead of one built from the settings.
    """

    def __init__(
        self,
        lake: Lake,
        dataset: Dataset | str,
        tier: str | None = None,
        *,
        engine: Engine = "local",
        trino: Any = None,
    ) -> None:
        from hmco.schemas import get_dataset

        if engine not in ("local", "trino"):
            raise ConfigError(f"unknown maintenance engine {engine!r}; use 'local' or 'trino'")
        self.lake = lake
        self.dataset = get_dataset(dataset)
        self.tier = tier or self.dataset.tier
        self.engine: Engine = engine
        self._trino = trino

    @property
    def table(self) -> Table:
        return self.lake.table(self.dataset, self.tier, create=False)

    @property
    def name(self) -> str:
        return self.lake.identifier(self.dataset, self.tier)

    def _on_trino(self) -> TrinoMaintenance:
        from hmco.maintenance.trino import TrinoMaintenance

        return TrinoMaintenance(self._trino, self.lake)

    def expire_snapshots(
        self,
        *,
        older_than: timedelta | datetime = DEFAULT_SNAPSHOT_AGE,
        retain_last: int = DEFAULT_RETAIN_LAST,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> ActionReport:
        """Expire snapshots older than ``older_than``, keeping ``retain_last`` and every branch/tag head."""
        if self.engine == "trino":
            return self._on_trino().expire_snapshots(
                self.dataset, self.tier, older_than=older_than, now=now, dry_run=dry_run
            )
        from hmco.maintenance.expire import expire_snapshots

        return expire_snapshots(
            self.table, older_than=older_than, retain_last=retain_last, dry_run=dry_run, now=now
        )

    def rewrite_manifests(self, *, dry_run: bool = False) -> ActionReport:
        """Merge the current snapshot's small manifests into few (same files, same rows)."""
        if self.engine == "trino":
            return self._on_trino().rewrite_manifests(self.dataset, self.tier, dry_run=dry_run)
        from hmco.maintenance.manifests import rewrite_manifests

        return rewrite_manifests(self.table, dry_run=dry_run)

    def compact(self, *, target_file_size: int | None = None, dry_run: bool = False) -> ActionReport:
        """Bin-pack small data files per partition to the target size, keeping the sort order."""
        from hmco.maintenance.compaction import DEFAULT_TARGET_FILE_SIZE

        size = target_file_size or DEFAULT_TARGET_FILE_SIZE
        if self.engine == "trino":
            return self._on_trino().compact(
                self.dataset, self.tier, file_size_threshold=size, dry_run=dry_run
            )
        from hmco.maintenance.compaction import compact

        return compact(self.table, target_file_size=size, dry_run=dry_run)

    def remove_orphan_files(
        self,
        *,
        older_than: timedelta = DEFAULT_ORPHAN_AGE,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> ActionReport:
        """Remove files under the table's location that no snapshot references (older than the horizon)."""
        if self.engine == "trino":
            return self._on_trino().remove_orphan_files(
                self.dataset, self.tier, older_than=older_than, now=now, dry_run=dry_run
            )
        from hmco.maintenance.orphans import remove_orphan_files

        return remove_orphan_files(self.table, older_than=older_than, dry_run=dry_run, now=now)

    def apply_retention(self, *, dry_run: bool = False, now: datetime | None = None) -> ActionReport:
        """Delete the rows older than the tier's retention, then expire so the storage is freed.

        Runs through pyiceberg on both engines: an Iceberg row delete is one metadata commit that any
        engine reading the table sees.
        """
        from hmco.maintenance.retention import apply_retention

        return apply_retention(self.lake, self.dataset, self.tier, now=now, dry_run=dry_run)

    def run(self, action: Action, *, dry_run: bool = False, now: datetime | None = None) -> ActionReport:
        """Run one action by name with the platform's defaults."""
        runners: dict[str, Callable[[], ActionReport]] = {
            "expire_snapshots": lambda: self.expire_snapshots(dry_run=dry_run, now=now),
            "rewrite_manifests": lambda: self.rewrite_manifests(dry_run=dry_run),
            "compact": lambda: self.compact(dry_run=dry_run),
            "remove_orphan_files": lambda: self.remove_orphan_files(dry_run=dry_run, now=now),
            "retention": lambda: self.apply_retention(dry_run=dry_run, now=now),
        }
        if action not in runners:
            raise ConfigError(f"unknown maintenance action {action!r}; actions are {', '.join(ACTIONS)}")
        return runners[action]()

    def __repr__(self) -> str:
        return f"TableMaintenance({self.name!r}, engine={self.engine!r})"


def maintain(
    lake: Lake,
    *,
    datasets: Sequence[str] | None = None,
    tiers: Sequence[str] | None = None,
    actions: Sequence[Action] = ACTIONS,
    dry_run: bool = False,
    engine: Engine = "local",
    trino: Any = None,
    now: datetime | None = None,
    registry: Any = None,
) -> MaintenanceReport:
    """Run ``actions`` (in the weekly order) on every table of ``tiers`` (default: all of them).

    A failing action is reported (``error``, ``exit_code`` 1) and the others still run. The raw tier
    holds no tables: its retention is the payload sweep. Metrics are recorded in ``registry`` (the
    default Prometheus registry if omitted).
    """
    from hmco.monitoring.metrics import metrics_for

    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise ConfigError(f"unknown maintenance action(s) {unknown}; actions are {', '.join(ACTIONS)}")
    chosen = [tier(t).name for t in (tiers or list(TIERS))]
    ordered = [a for a in ACTIONS if a in actions]
    metrics = metrics_for(registry)
    report = MaintenanceReport()
    for action in ordered:
        if action == "retention" and "raw" in chosen and not datasets:
            report.actions.append(_guarded("retention", "raw payloads", lambda: _sweep(lake, dry_run, now)))
        for tier_name, dataset in _tables(lake, chosen, datasets):
            upkeep = TableMaintenance(lake, dataset, tier_name, engine=engine, trino=trino)
            report.actions.append(
                _guarded(action, upkeep.name, partial(upkeep.run, action, dry_run=dry_run, now=now))
            )
    for item in report.actions:
        metrics.record_maintenance(item)
    return report


def _sweep(lake: Lake, dry_run: bool, now: datetime | None) -> ActionReport:
    from hmco.maintenance.retention import sweep_raw

    return sweep_raw(lake, dry_run=dry_run, now=now)


def _guarded(action: str, table: str, run: Callable[[], ActionReport]) -> ActionReport:
    """Run one action; an exception becomes a failed report, so the run goes on to the next."""
    started = time.perf_counter()
    try:
        return run()
    except Exception as exc:
        log.error("maintenance %s on %s failed: %s", action, table, exc)
        return ActionReport(
            action, table, error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - started
        )


def _tables(lake: Lake, tiers: Sequence[str], datasets: Sequence[str] | None) -> list[tuple[str, str]]:
    """``(tier, dataset)`` of every Iceberg table in ``tiers`` (optionally only ``datasets``)."""
    from pyiceberg.exceptions import NoSuchNamespaceError

    found: list[tuple[str, str]] = []
    for name in tiers:
        if name == "raw":
            continue
        try:
            identifiers = lake.catalog.list_tables(TIERS[name].namespace)
        except NoSuchNamespaceError:
            continue
        for ident in sorted(identifiers):
            table = ident[-1]
            if datasets is None or table in datasets:
                found.append((name, table))
    return found
