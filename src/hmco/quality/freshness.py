"""Freshness: is each dataset's newest data within its platform SLA?

The newest data is read from where it lives: an Iceberg table (data-file statistics, or a projected
scan of the time column, or the watermark each commit records in its snapshot summary, read through
:meth:`hmco.lake.state.LakeState.newest_watermark`, the owner of that key) or ClickHouse
(``SELECT maxOrNull(ts) FROM rt_lmp WHERE iso = …`` through a clickhouse-connect client).

Age is measured from the end of the newest interval (``ts + dataset.frequency``; a watermark is already
an end) to ``now``. A dataset is ``fresh`` when that age is within ``sla + lag`` (``lag``: the source's
documented publication delay, 0 by default), ``stale`` otherwise, ``empty`` when there is no data.
:class:`FreshnessReport` prints as a table, converts to Arrow, records Prometheus gauges, and gives a
scheduler exit code (0 all fresh, 1 otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from hmco.errors import ConfigError
from hmco.lake.state import LakeState
from hmco.schemas import TS, Dataset, get_dataset
from hmco.windows import as_utc

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "FreshnessReport",
    "FreshnessStatus",
    "check_freshness",
    "clickhouse_freshness",
    "iceberg_freshness",
    "newest_in_clickhouse",
    "newest_in_iceberg",
]

Status = Literal["fresh", "stale", "empty"]
Prefer = Literal["data", "watermark"]
# A ClickHouse identifier, optionally database-qualified (``hmco.rt_lmp``): names are interpolated.
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class FreshnessStatus:
    """One dataset's (or one dataset slice's) freshness at ``checked_at``."""

    dataset: str
    newest: datetime | None
    current_to: datetime | None
    checked_at: datetime
    sla: timedelta
    lag: timedelta = timedelta(0)
    origin: str = ""
    target: str = ""

    @property
    def age(self) -> timedelta | None:
        """How long ago the data stopped being current (never negative)."""
        if self.current_to is None:
            return None
        return max(self.checked_at - self.current_to, timedelta(0))

    @property
    def status(self) -> Status:
        age = self.age
        if age is None:
            return "empty"
        return "fresh" if age <= self.sla + self.lag else "stale"

    @property
    def ok(self) -> bool:
        return self.status == "fresh"


def check_freshness(
    dataset: Dataset | str,
    newest: datetime | None,
    *,
    now: datetime | None = None,
    sla: timedelta | None = None,
    lag: timedelta = timedelta(0),
    is_end: bool = False,
    origin: str = "",
    target: str = "",
) -> FreshnessStatus:
    """Judge ``newest`` (a ``ts``, or an end time if ``is_end``) against the dataset's SLA."""
    ds = get_dataset(dataset)
    newest = as_utc(newest) if newest is not None else None
    current_to = newest
    if newest is not None and not is_end and ds.frequency is not None:
        current_to = newest + ds.frequency
    return FreshnessStatus(
        dataset=ds.name,
        newest=newest,
        current_to=current_to,
        checked_at=as_utc(now) if now is not None else datetime.now(UTC),
        sla=sla if sla is not None else ds.sla,
        lag=lag,
        origin=origin,
        target=target,
    )


def newest_in_iceberg(
    table: Any, *, column: str = "ts", prefer: Prefer = "data"
) -> tuple[datetime | None, str]:
    """The newest ``column`` value of a pyiceberg ``Table`` and how it was found.

    ``prefer="data"`` reads data-file upper bounds from the manifests (metadata only); if they are missing
    or delete files could make them stale, it scans the one projected column. With no data (or
    ``prefer="watermark"``) it falls back to/uses the newest snapshot carrying a watermark.
    Returns ``(newest, origin)`` where origin is ``data-stats``, ``data-scan``, ``watermark`` or ``none``.
    """
    if prefer == "data":
        newest, origin = _newest_from_data(table, column)
        if newest is not None:
            return newest, origin
    mark = LakeState.newest_watermark(table)
    if mark is not None:
        return mark, "watermark"
    if prefer == "watermark":
        return _newest_from_data(table, column)
    return None, "none"


def iceberg_freshness(
    table: Any,
    dataset: Dataset | str,
    *,
    now: datetime | None = None,
    sla: timedelta | None = None,
    lag: timedelta = timedelta(0),
    prefer: Prefer = "data",
) -> FreshnessStatus:
    """Freshness of an Iceberg table holding ``dataset``."""
    ds = get_dataset(dataset)
    newest, origin = newest_in_iceberg(table, column=ds.time_column, prefer=prefer)
    target = ".".join(table.name()) if hasattr(table, "name") else ds.identifier
    return check_freshness(
        ds,
        newest,
        now=now,
        sla=sla,
        lag=lag,
        is_end=origin == "watermark",
        origin=f"iceberg:{origin}",
        target=target,
    )


def newest_in_clickhouse(
    client: Any, *, table: str = "rt_lmp", column: str = "ts", filters: Mapping[str, str] | None = None
) -> datetime | None:
    """``SELECT maxOrNull(column) FROM table WHERE k = v …`` through a clickhouse-connect client."""
    for ident in (table, column, *(filters or {})):
        if not _IDENT.match(ident):
            raise ConfigError(f"not a valid ClickHouse identifier: {ident!r}")
    where, params = "", dict[str, str]()
    if filters:
        clauses = []
        for i, (col, value) in enumerate(filters.items()):
            clauses.append(f"{col} = {{p{i}:String}}")
            params[f"p{i}"] = value
        where = " WHERE " + " AND ".join(clauses)
    result = client.query(f"SELECT maxOrNull({column}) FROM {table}{where}", parameters=params)
    newest = result.result_rows[0][0] if result.result_rows else None
    return as_utc(newest) if newest is not None else None


def clickhouse_freshness(
    client: Any,
    dataset: Dataset | str = "rt_lmp",
    *,
    iso: str | None = None,
    table: str | None = None,
    now: datetime | None = None,
    sla: timedelta | None = None,
    lag: timedelta = timedelta(0),
) -> FreshnessStatus:
    """Freshness of ``dataset`` in ClickHouse, optionally of one ISO's rows."""
    ds = get_dataset(dataset)
    filters = {"iso": iso} if iso else None
    # Interval data carries its own end (RT15 rows end 15 minutes after ts, RT5 rows 5): judge by it.
    column = "interval_end" if "interval_end" in ds.schema.names else ds.time_column
    newest = newest_in_clickhouse(client, table=table or ds.name, column=column, filters=filters)
    target = f"{table or ds.name}" + (f" iso={iso}" if iso else "")
    return check_freshness(
        ds,
        newest,
        now=now,
        sla=sla,
        lag=lag,
        is_end=column == "interval_end",
        origin="clickhouse",
        target=target,
    )


@dataclass(frozen=True)
class FreshnessReport:
    """The freshness of several datasets: a table for people, an exit code for schedulers."""

    statuses: list[FreshnessStatus] = field(default_factory=list)

    @classmethod
    def of(cls, statuses: Iterable[FreshnessStatus]) -> FreshnessReport:
        return cls(list(statuses))

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.statuses)

    @property
    def exit_code(self) -> int:
        """0 when every dataset is fresh, 1 when any is stale or empty."""
        return 0 if self.ok else 1

    @property
    def stale(self) -> list[FreshnessStatus]:
        return [s for s in self.statuses if not s.ok]

    def to_arrow(self) -> pa.Table:
        ss = self.statuses
        ages = [s.age.total_seconds() if s.age is not None else None for s in ss]
        return pa.table(
            {
                "dataset": pa.array([s.dataset for s in ss], pa.string()),
                "target": pa.array([s.target for s in ss], pa.string()),
                "origin": pa.array([s.origin for s in ss], pa.string()),
                "newest": pa.array([s.newest for s in ss], TS),
                "current_to": pa.array([s.current_to for s in ss], TS),
                "age_seconds": pa.array(ages, pa.float64()),
                "sla_seconds": pa.array([(s.sla + s.lag).total_seconds() for s in ss], pa.float64()),
                "status": pa.array([s.status for s in ss], pa.string()),
                "checked_at": pa.array([s.checked_at for s in ss], TS),
            }
        )

    def __str__(self) -> str:
        header = ("dataset", "target", "newest", "age", "sla", "status")
        rows = [
            (
                s.dataset,
                s.target,
                s.newest.strftime("%Y-%m-%d %H:%M:%SZ") if s.newest else "-",
                _fmt(s.age) if s.age is not None else "-",
                _fmt(s.sla + s.lag),
                s.status,
            )
            for s in self.statuses
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
        ]
        return "\n".join(lines)

    def record(self, registry: CollectorRegistry | None = None) -> None:
        """Set the ``hmco_freshness_*`` gauges in ``registry`` (default: prometheus_client's)."""
        from hmco.monitoring.metrics import metrics_for

        metrics = metrics_for(registry)
        for status in self.statuses:
            metrics.record_freshness(status)


def _newest_from_data(table: Any, column: str) -> tuple[datetime | None, str]:
    if table.current_snapshot() is None:
        return None, "none"
    files = table.inspect.files()
    if files.num_rows == 0:
        return None, "none"
    content = files.column("content")
    only_data = pc.all(pc.equal(content, 0)).as_py()
    if only_data and "readable_metrics" in files.column_names:
        metrics = files.column("readable_metrics").combine_chunks()
        if column in metrics.type.names:
            upper = pc.struct_field(metrics.field(column), "upper_bound")
            rows = pc.struct_field(metrics.field(column), "value_count")
            nulls = pc.struct_field(metrics.field(column), "null_value_count")
            # Stats are usable when every file that has non-null values reports an upper bound.
            has_values = pc.greater(pc.subtract(pc.fill_null(rows, 1), pc.fill_null(nulls, 0)), 0)
            if not pc.any(pc.and_(has_values, pc.is_null(upper))).as_py():
                best = pc.max(upper).as_py()
                return (as_utc(best) if best is not None else None), "data-stats"
    scanned = table.scan(selected_fields=(column,)).to_arrow()
    best = pc.max(scanned.column(column)).as_py() if scanned.num_rows else None
    return (as_utc(best) if best is not None else None), "data-scan"


def _fmt(delta: timedelta) -> str:
    secs = int(delta.total_seconds())
    if secs >= 86400:
        return f"{secs / 86400:.1f}d"
    if secs >= 3600:
        return f"{secs / 3600:.1f}h"
    if secs >= 60:
        return f"{secs // 60}m{secs % 60:02d}s"
    return f"{secs}s"
