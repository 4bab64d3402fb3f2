"""The job catalogue: every scheduled job of the platform, from one declaration.

The seven ingestion workflows ship with the package as UIS specs (``hmco/specs/*.yaml``); lake upkeep
(:data:`hmco.maintenance.WEEKLY_SCHEDULE`) and backups (the seed's times) are jobs beside them, plus the
freshness watch. ``hmco serve``, ``hmco serve --once``, the DolphinScheduler export, the Prometheus
rules and the Grafana dashboard are all generated from the same :class:`Catalogue`.

Users override a shipped spec instead of rewriting it: a YAML file in an overrides directory whose
``name`` matches a shipped pipeline is deep-merged over it (``{name: eia-daily-fuel, schedule: "0 7 * * *"}``
changes only the schedule); a file with a new name adds a whole new pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from hmco.compose.spec import PipelineSpec, load_spec
from hmco.cron import Cron
from hmco.errors import ConfigError, SpecError
from hmco.maintenance import WEEKLY_SCHEDULE

__all__ = [
    "BACKUP_JOBS",
    "FRESHNESS_JOB",
    "Catalogue",
    "Job",
    "JobKind",
    "default_catalogue",
    "shipped_specs",
]

JobKind = Literal["pipeline", "realtime", "maintenance", "backup", "freshness"]
#: How often ``serve`` checks every dataset's freshness (and alerts on a breach).
FRESHNESS_JOB = "freshness-watch"


@dataclass(frozen=True)
class BackupJob:
    """A backup on the seed's schedule: ``store`` (clickhouse, catalog, lake) and, for ClickHouse, ``kind``."""

    name: str
    cron: str
    store: Literal["clickhouse", "catalog", "lake"]
    kind: Literal["full", "incremental"] = "full"
    description: str = ""
    timeout: timedelta = timedelta(hours=2)


#: ClickHouse full weekly (Sunday 01:00) and incremental daily (02:00); Postgres daily at midnight. The
#: lake's replication to the DR site runs every 15 minutes (RPO 30 min) when a DR site is configured.
BACKUP_JOBS: tuple[BackupJob, ...] = (
    BackupJob("backup-clickhouse-full", "0 1 * * 0", "clickhouse", "full", "ClickHouse full backup to S3"),
    BackupJob(
        "backup-clickhouse-incremental",
        "0 2 * * *",
        "clickhouse",
        "incremental",
        "ClickHouse incremental backup on the newest full",
    ),
    BackupJob(
        "backup-catalog", "0 0 * * *", "catalog", description="Iceberg catalog dump (pg_dump / SQLite)"
    ),
    BackupJob(
        "replicate-lake",
        "*/15 * * * *",
        "lake",
        description="replicate the lake's buckets to the DR site",
        timeout=timedelta(minutes=30),
    ),
)


@dataclass(frozen=True)
class Job:
    """One scheduled job: what runs, when (a :class:`~hmco.cron.Cron`), with what retries and timeout.

    ``spec`` is set for ingestion jobs (``pipeline`` and ``realtime``); ``action`` names the upkeep action
    or the backup (``clickhouse:full``, ``catalog``, ``lake``) for the others.
    """

    name: str
    kind: JobKind
    cron: Cron
    description: str = ""
    retries: int = 2
    retry_delay: timedelta = timedelta(minutes=2)
    timeout: timedelta = timedelta(hours=1)
    spec: PipelineSpec | None = None
    action: str | None = None

    @property
    def command(self) -> tuple[str, ...]:
        """The command line that runs this job once, under any scheduler."""
        return ("hmco", "schedule", "run", self.name)

    @property
    def dataset(self) -> str | None:
        return self.spec.dataset_name if self.spec is not None else None

    @property
    def sla(self) -> timedelta | None:
        """The freshness SLA of the job's dataset (from its spec), None for non-ingestion jobs."""
        return self.spec.freshness_sla if self.spec is not None else None

    @property
    def lag(self) -> timedelta:
        """The source's publication delay, allowed on top of the SLA."""
        return self.spec.lag if self.spec is not None else timedelta(0)

    @property
    def iso(self) -> str | None:
        """The ISO a real-time job polls: its source's ``iso`` parameter, else the registry's code for the
        source (``caiso`` → ``CAISO``); None for other jobs. Metrics, rules and freshness label by it."""
        if self.kind != "realtime" or self.spec is None:
            return None
        from hmco.sources import realtime_isos

        source = self.spec.source
        return str(source.params.get("iso") or realtime_isos().get(source.type) or source.type.upper())

    @property
    def cadence(self) -> timedelta:
        """The time between two fires (a week for the Sunday jobs)."""
        return self.cron.cadence

    @property
    def runbook(self) -> str:
        """The command a person runs when this job's alert fires."""
        if self.kind == "backup":
            return f"hmco schedule run {self.name} && hmco backup status"
        return " ".join(self.command)


@dataclass(frozen=True)
class Catalogue:
    """The platform's jobs, by name, in declaration order."""

    jobs: tuple[Job, ...]
    timezone: str = "UTC"
    #: The ingestion jobs the freshness watch checks: the whole catalogue's, even in a subset (``only``).
    watched: tuple[Job, ...] | None = None
    _by_name: Mapping[str, Job] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Job] = {}
        for job in self.jobs:
            if job.name in by_name:
                raise ConfigError(f"job {job.name!r} is declared twice in the catalogue")
            by_name[job.name] = job
        object.__setattr__(self, "_by_name", by_name)

    def __iter__(self) -> Iterator[Job]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Job:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(
                f"no job named {name!r}; the catalogue has {', '.join(self._by_name)} (hmco schedule list)"
            ) from None

    def of_kind(self, *kinds: JobKind) -> list[Job]:
        return [j for j in self.jobs if j.kind in kinds]

    @property
    def ingestion(self) -> list[Job]:
        """The pipeline and real-time jobs (each feeds one dataset with an SLA)."""
        return self.of_kind("pipeline", "realtime")

    @property
    def watch(self) -> list[Job]:
        """What the freshness watch checks: every ingestion job of the catalogue this one was cut from."""
        return list(self.watched) if self.watched is not None else self.ingestion

    def only(self, names: Sequence[str]) -> Catalogue:
        """A catalogue of just ``names`` (each must exist); its freshness watch still checks every dataset."""
        return Catalogue(tuple(self.get(n) for n in names), self.timezone, tuple(self.watch))


def shipped_specs() -> dict[str, dict[str, Any]]:
    """The seven shipped pipeline specs as raw mappings, by pipeline name."""
    out: dict[str, dict[str, Any]] = {}
    for entry in sorted(resources.files("hmco.specs").iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            data = yaml.safe_load(entry.read_text())
            out[data["name"]] = data
    return out


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _overrides(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    if not directory.is_dir():
        raise ConfigError(f"spec overrides directory {directory} does not exist")
    found = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise SpecError(f"spec override is not valid YAML: {exc}", file=str(path)) from None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise SpecError("a spec override must be a mapping with a 'name'", file=str(path))
        found.append((path, data))
    return found


def _ingestion_job(spec: PipelineSpec) -> Job:
    cron = spec.cron
    assert cron is not None
    kind: JobKind = "realtime" if "clickhouse" in spec.sinks else "pipeline"
    cadence = cron.cadence
    return Job(
        name=spec.name,
        kind=kind,
        cron=cron,
        description=spec.description or f"ingest {spec.dataset_name} from {spec.source.type}",
        retries=spec.retries,
        retry_delay=spec.retry_delay,
        timeout=spec.timeout or min(max(cadence, timedelta(minutes=5)), timedelta(hours=6)),
        spec=spec,
    )


def default_catalogue(
    overrides: str | Path | None = None,
    *,
    timezone: str = "UTC",
    replication: bool = False,
    pipelines: Sequence[str] | None = None,
) -> Catalogue:
    """The shipped catalogue: the seven pipelines, weekly upkeep, backups and the freshness watch.

    Args:
        overrides: a directory of spec overrides (deep-merged by ``name``) and extra pipelines.
        timezone: the time zone upkeep and backup times are read in (the seed's "Sunday 2 AM").
        replication: include the lake's replication to the DR site (needs a DR site configured).
        pipelines: keep only these ingestion jobs (default: all).
    """
    raw = shipped_specs()
    if overrides is not None:
        for path, data in _overrides(Path(overrides)):
            name = data["name"]
            raw[name] = _merge(raw[name], data) if name in raw else data
            raw[name]["__file__"] = str(path)
    specs = []
    for name, data in raw.items():
        if pipelines is not None and name not in pipelines:
            continue
        where = data.pop("__file__", None)
        try:
            spec = load_spec(data)
        except SpecError as exc:
            raise SpecError(str(exc), errors=exc.errors, file=where or f"hmco/specs ({name})") from None
        if spec.schedule is None:
            raise SpecError(f"pipeline {name} has no schedule: the catalogue runs only scheduled specs")
        specs.append(spec)
    if pipelines is not None:
        missing = sorted(set(pipelines) - {s.name for s in specs})
        if missing:
            raise ConfigError(f"unknown pipeline(s) {missing}; shipped: {', '.join(raw)}")
    jobs = [_ingestion_job(s) for s in specs]
    jobs += [
        Job(
            name=f"iceberg-{s.action.replace('_', '-')}",
            kind="maintenance",
            cron=Cron(s.cron, timezone),
            description=s.description,
            retries=1,
            retry_delay=timedelta(minutes=10),
            timeout=timedelta(hours=3),
            action=s.action,
        )
        for s in WEEKLY_SCHEDULE
    ]
    jobs += [
        Job(
            name=b.name,
            kind="backup",
            cron=Cron(b.cron, timezone),
            description=b.description,
            retries=2,
            retry_delay=timedelta(minutes=5),
            timeout=b.timeout,
            action=f"{b.store}:{b.kind}" if b.store == "clickhouse" else b.store,
        )
        for b in BACKUP_JOBS
        if replication or b.store != "lake"
    ]
    jobs.append(
        Job(
            name=FRESHNESS_JOB,
            kind="freshness",
            cron=Cron("* * * * *", timezone),
            description="check every dataset against its SLA; alert on a breach",
            retries=0,
            timeout=timedelta(minutes=1),
        )
    )
    return Catalogue(tuple(jobs), timezone)
