"""Freshness: is each dataset's newest data within its platform SLA?

The newest data is read from where it lives: an Iceberg table (data-file statistics, or a projected
scan of the time column, or the watermark each commit records in its snapshot summary, read through
:meth:`hmco.lake.state.LakeState.newest_watermark`, the owner of that key) or ClickHouse
(``SELECT maxOrNull(ts) FROM rt_lmp WHERE iso = …`` through a clickhouse-connect client).

Age is measured from the end of the newest interval (``ts + dataset.frequency``; a watermark is already
an end) to ``now``. A dataset is ``fresh`` when that age is within ``sla + lag`` (``lag``: the source's
documented publication delay, 0 by default), ``stale`` otherwise, ``empty`` when there is no data.

The checks fail closed: a dataset whose table does not exist is ``missing``, one whose catalog, object
store or ClickHouse cannot be reached is ``unreachable`` (with the reason), never silently left out, and
a report that checked nothing is a failure too. :func:`catalogue_freshness` checks the dataset of every
ingestion job of a job catalogue against that job's spec SLA and lag.
:class:`FreshnessReport` prints as a table, converts to Arrow, records Prometheus gauges, and gives a
scheduler exit code (0 all fresh, 1 otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from hmco.errors import ConfigError, HmcoError, MissingDependency
from hmco.lake.state import LakeState
from hmco.monitoring.jobs import CatalogueJob, JobCatalogue
from hmco.redaction import redact_text
from hmco.schemas import TS, Dataset, get_dataset
from hmco.windows import as_utc, format_duration

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from hmco.lake import Lake

__all__ = [
    "FreshnessReport",
    "FreshnessStatus",
    "catalogue_freshness",
    "check_freshness",
    "clickhouse_freshness",
    "failed_status",
    "iceberg_freshness",
    "lake_freshness",
    "newest_in_clickhouse",
    "newest_in_iceberg",
]

Status = Literal["fresh", "stale", "empty", "missing", "unreachable"]
#: Why a dataset could not be judged by its data: no table, or a store that did not answer.
Problem = Literal["missing", "unreachable"]
Prefer = Literal["data", "watermark"]
# A ClickHouse identifier, optionally database-qualified (``hmco.rt_lmp``): names are interpolated.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


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
    problem: Problem | None = None
    reason: str = ""
    job: str = ""
    runbook: str = ""

    @property
    def age(self) -> timedelta | None:
        """How long ago the data stopped being current (never negative)."""
        if self.current_to is None:
            return None
        return max(self.checked_at - self.current_to, timedelta(0))

    @property
    def status(self) -> Status:
        if self.problem is not None:
            return self.problem
        age = self.age
        if age is None:
            return "empty"
        return "fresh" if age <= self.sla + self.lag else "stale"

    @property
    def ok(self) -> bool:
        return self.status == "fresh"

    @property
    def message(self) -> str:
        """One line a person can act on: what was checked, its verdict and why."""
        label = self.dataset + (f" ({self.target})" if self.target else "")
        if self.job:
            label += f" [job {self.job}]"
        allowed = f"{format_duration(self.sla + self.lag)} (sla {format_duration(self.sla)} + lag {format_duration(self.lag)})"
        age, status = self.age, self.status
        if status in ("fresh", "stale") and age is not None:
            verdict = "within" if status == "fresh" else "allowed"
            newest = self.newest.strftime("%Y-%m-%d %H:%M:%SZ") if self.newest else "-"
            return f"{label}: {status}: {format_duration(age)} old (newest {newest}), {verdict} {allowed}"
        return f"{label}: {status}: {self.reason or 'no data'}"


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


def failed_status(
    dataset: Dataset | str,
    problem: Problem,
    reason: str,
    *,
    now: datetime | None = None,
    sla: timedelta | None = None,
    lag: timedelta = timedelta(0),
    target: str = "",
    origin: str = "",
) -> FreshnessStatus:
    """A failing status for a dataset that could not be judged by its data (``missing``/``unreachable``)."""
    ds = get_dataset(dataset)
    return replace(
        check_freshness(ds, None, now=now, sla=sla, lag=lag, origin=origin, target=target),
        problem=problem,
        reason=reason,
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
    # Names are checked (``fullmatch``: no trailing newline slips through); values are bound parameters.
    for ident, what in ((table, "table"), (column, "column"), *((f, "filter column") for f in filters or {})):
        if not isinstance(ident, str) or not _IDENT.fullmatch(ident):
            raise ConfigError(f"not a valid ClickHouse identifier for the {what}: {ident!r}")
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


def lake_freshness(
    lake: Lake,
    dataset: Dataset | str,
    *,
    now: datetime | None = None,
    sla: timedelta | None = None,
    lag: timedelta = timedelta(0),
    tier: str | None = None,
    prefer: Prefer = "data",
    probes: dict[str, str | None] | None = None,
) -> FreshnessStatus:
    """Freshness of ``dataset``'s lake table that fails closed: no table is ``missing``, a catalog or
    store that cannot be read is ``unreachable``, a table without rows is ``empty`` (each with a reason).

    A table is called missing only once the object store has answered (``probes`` caches those answers
    by bucket across the calls of one check).
    """
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    ds = get_dataset(dataset)
    now = as_utc(now) if now is not None else datetime.now(UTC)
    target = lake.identifier(ds, tier)

    def failed(problem: Problem, reason: str) -> FreshnessStatus:
        return failed_status(ds, problem, reason, now=now, sla=sla, lag=lag, target=target, origin="iceberg")

    unreachable = _catalog_error(lake)
    if unreachable is not None:
        return failed("unreachable", unreachable)
    try:
        table = lake.table(ds, tier, create=False)
    except (NoSuchTableError, NoSuchNamespaceError):
        store = _store_error(lake, ds, tier, probes if probes is not None else {})
        if store is not None:
            return failed("unreachable", store)
        return failed("missing", f"no table {target} in the lake")
    except ConfigError:
        raise
    except Exception as exc:  # catalog database, REST server or object store: fail closed, say why
        return failed("unreachable", f"cannot load {target}: {_describe(exc)}")
    try:
        status = iceberg_freshness(table, ds, now=now, sla=sla, lag=lag, prefer=prefer)
    except ConfigError:
        raise
    except Exception as exc:  # metadata or data files that cannot be read
        return failed("unreachable", f"cannot read {target}: {_describe(exc)}")
    if status.status == "empty":
        status = replace(status, reason=f"table {target} has no rows and no watermark")
    return status


def catalogue_freshness(
    lake: Lake,
    catalogue: JobCatalogue | Iterable[CatalogueJob],
    *,
    now: datetime | None = None,
    clickhouse: Any = None,
    isos: Collection[str] | None = None,
    prefer: Prefer = "data",
) -> FreshnessReport:
    """Check the dataset of every ingestion job against that job's ``sla + lag``, at one instant.

    Each job gets its lake table's status (a table shared by several jobs is read once); a real-time job
    (kind ``realtime``) also gets ClickHouse's per-ISO status when ``clickhouse`` is given: a client, or
    a zero-argument callable that connects one (if it fails, each of those checks is ``unreachable``).
    ``isos`` limits the ClickHouse checks to those ISO codes.
    """
    found = catalogue.ingestion if isinstance(catalogue, JobCatalogue) else catalogue
    jobs = [j for j in found if j.dataset]
    now = as_utc(now) if now is not None else datetime.now(UTC)
    lake_error = _catalog_error(lake)
    by_dataset: dict[str, FreshnessStatus] = {}
    probes: dict[str, str | None] = {}
    statuses: list[FreshnessStatus] = []
    for job in jobs:
        ds = get_dataset(job.dataset or "")
        base = by_dataset.get(ds.name)
        if base is None:
            if lake_error is not None:
                base = failed_status(
                    ds, "unreachable", lake_error, now=now, target=lake.identifier(ds), origin="iceberg"
                )
            else:
                base = lake_freshness(lake, ds, now=now, prefer=prefer, probes=probes)
            by_dataset[ds.name] = base
        sla = job.sla or ds.sla
        statuses.append(replace(base, sla=sla, lag=job.lag, job=job.name, runbook=job.runbook))
    wanted = {i.upper() for i in isos} if isos is not None else None
    realtime = [j for j in jobs if j.kind == "realtime" and (wanted is None or _iso_of(j) in wanted)]
    if clickhouse is not None and realtime:
        client, error = _connect(clickhouse)
        for job in realtime:
            ds = get_dataset(job.dataset or "")
            iso, sla = _iso_of(job), job.sla or ds.sla
            if client is None:
                target = f"{ds.name}" + (f" iso={iso}" if iso else "")
                reason = f"cannot connect to ClickHouse: {error}"
                status = failed_status(
                    ds,
                    "unreachable",
                    reason,
                    now=now,
                    sla=sla,
                    lag=job.lag,
                    target=target,
                    origin="clickhouse",
                )
            else:
                status = _clickhouse_status(client, ds, iso, now=now, sla=sla, lag=job.lag)
            statuses.append(replace(status, job=job.name, runbook=job.runbook))
    return FreshnessReport.of(statuses)


def _clickhouse_status(
    client: Any, ds: Dataset, iso: str | None, *, now: datetime, sla: timedelta, lag: timedelta
) -> FreshnessStatus:
    target = f"{ds.name}" + (f" iso={iso}" if iso else "")
    try:
        status = clickhouse_freshness(client, ds, iso=iso, now=now, sla=sla, lag=lag)
    except ConfigError:
        raise
    except Exception as exc:
        text = _describe(exc)
        if "UNKNOWN_TABLE" in text or "Unknown table" in text:
            problem: Problem = "missing"
            reason = f"no table {ds.name} in ClickHouse"
        else:
            problem, reason = "unreachable", f"cannot query ClickHouse: {text}"
        return failed_status(
            ds, problem, reason, now=now, sla=sla, lag=lag, target=target, origin="clickhouse"
        )
    if status.status == "empty":
        where = f" for {iso}" if iso else ""
        status = replace(status, reason=f"ClickHouse table {ds.name} has no rows{where}")
    return status


def _catalog_error(lake: Lake) -> str | None:
    """Why the lake's catalog cannot be opened (None when it opens): checked once, not per dataset.

    Opening connects (SQL catalogs, REST config), and hmco reports a refused connection as a
    :class:`ConfigError`: here it is an unreachable store. Only a missing extra stays a config error.
    """
    try:
        lake.catalog  # noqa: B018
    except MissingDependency:
        raise
    except Exception as exc:
        return f"cannot open the catalog: {_describe(exc)}"
    return None


def _store_error(lake: Lake, ds: Dataset, tier: str | None, probes: dict[str, str | None]) -> str | None:
    """Why the object store of ``ds``'s tier does not answer (None when it does, or the lake is local)."""
    location = lake.table_location(ds, tier)
    if lake.is_local or location is None or not location.startswith("s3://"):
        return None
    bucket = location[len("s3://") :].split("/", 1)[0]
    if bucket not in probes:
        try:
            fs, _ = lake.filesystem(location)
            fs.get_file_info(bucket)  # a missing bucket answers NotFound; an unreachable store raises
            probes[bucket] = None
        except Exception as exc:
            probes[bucket] = f"cannot reach the object store (bucket {bucket}): {_describe(exc)}"
    return probes[bucket]


def _connect(clickhouse: Any) -> tuple[Any, str]:
    if callable(clickhouse) and not hasattr(clickhouse, "query"):
        try:
            return clickhouse(), ""
        except ConfigError:
            raise
        except Exception as exc:
            return None, _describe(exc)
    return clickhouse, ""


def _iso_of(job: CatalogueJob) -> str | None:
    """The ISO code a real-time job writes (``caiso`` → ``CAISO``; its ``iso`` when it has one), or None."""
    return job.iso


def _describe(exc: BaseException, limit: int = 300) -> str:
    """An exception as one redacted line: its type and the first line of its message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, HmcoError) and lines:  # hmco's own messages already say what failed
        text = lines[0]
    else:
        text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    text = redact_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class FreshnessReport:
    """The freshness of several datasets: a table for people, an exit code for schedulers."""

    statuses: list[FreshnessStatus] = field(default_factory=list)

    @classmethod
    def of(cls, statuses: Iterable[FreshnessStatus]) -> FreshnessReport:
        return cls(list(statuses))

    @property
    def ok(self) -> bool:
        """Every dataset is fresh, and at least one was checked (nothing checked proves nothing)."""
        return bool(self.statuses) and all(s.ok for s in self.statuses)

    @property
    def exit_code(self) -> int:
        """0 when every dataset is fresh, 1 when any is stale, empty, missing or unreachable, or none was checked."""
        return 0 if self.ok else 1

    @property
    def problems(self) -> list[str]:
        """One line per failure: each failing status's message, or why an empty report fails."""
        if not self.statuses:
            return ["no datasets were checked: nothing proves the data is fresh"]
        return [s.message for s in self.statuses if not s.ok]

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
                "job": pa.array([s.job for s in ss], pa.string()),
                "reason": pa.array([s.reason for s in ss], pa.string()),
            }
        )

    def __str__(self) -> str:
        with_jobs = any(s.job for s in self.statuses)
        header: tuple[str, ...] = ("dataset", "target", "newest", "age", "sla", "status")
        if with_jobs:
            header = ("job", *header)
        rows = [
            (
                *((s.job,) if with_jobs else ()),
                s.dataset,
                s.target,
                s.newest.strftime("%Y-%m-%d %H:%M:%SZ") if s.newest else "-",
                format_duration(s.age) if s.age is not None else "-",
                format_duration(s.sla + s.lag),
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
