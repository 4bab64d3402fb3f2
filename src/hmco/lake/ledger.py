"""Scheduled jobs' state in the catalog database: leases (one runner per job) and the last fire handled.

Leases are rows of ``hmco_job_leases`` taken with one conditional ``UPDATE`` (or the first ``INSERT``), so
two processes — two ``hmco serve``, or ``serve`` and a cron ``--once`` — never run one job at once, on
SQLite and PostgreSQL alike. A lease expires after its TTL unless renewed; a lease whose holder was a
process on this host that no longer exists is taken over at once (a SIGKILLed ``serve`` restarting).
``hmco_job_runs`` keeps, per job, the newest scheduled fire that was handled, so a restart knows what it
missed. It lives beside the Iceberg catalog's own tables: the catalog is the platform's state owner.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hmco.errors import ConfigError
from hmco.windows import as_utc

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from hmco.lake import Lake

__all__ = ["JobLedger", "JobRun", "Lease", "LeaseHeld", "default_owner"]

_HOST = socket.gethostname()


def default_owner() -> str:
    """``host:pid:random``: unique per process, and lets this host see whether the holder still lives."""
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Lease:
    """A job's lease: who holds it, its token (for renew/release) and until when."""

    job: str
    owner: str
    token: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class LeaseHeld:
    """Why a lease was refused: another live holder, until ``expires_at``."""

    job: str
    owner: str
    expires_at: datetime


@dataclass(frozen=True)
class JobRun:
    """The newest handled fire of a job and how its last run ended."""

    job: str
    last_fire: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str | None
    detail: str | None
    last_success: datetime | None


class JobLedger:
    """Leases and last runs of scheduled jobs, in the SQL catalog's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        from sqlalchemy import Column, DateTime, MetaData, String, Table, Text

        self.engine = engine
        meta = MetaData()
        self.leases = Table(
            "hmco_job_leases",
            meta,
            Column("job", String(255), primary_key=True),
            Column("owner", String(255), nullable=False),
            Column("token", String(64), nullable=False),
            Column("acquired_at", DateTime(timezone=True), nullable=False),
            Column("expires_at", DateTime(timezone=True), nullable=False),
        )
        self.runs = Table(
            "hmco_job_runs",
            meta,
            Column("job", String(255), primary_key=True),
            Column("last_fire", DateTime(timezone=True)),
            Column("started_at", DateTime(timezone=True)),
            Column("finished_at", DateTime(timezone=True)),
            Column("outcome", String(32)),
            Column("detail", Text),
            Column("last_success", DateTime(timezone=True)),
        )
        meta.create_all(engine, checkfirst=True)

    @classmethod
    def for_lake(cls, lake: Lake) -> JobLedger:
        """The ledger in ``lake``'s catalog database; a REST catalog has none to share."""
        engine = getattr(lake.catalog, "engine", None)
        if engine is None:
            raise ConfigError(
                "job leases live in the Iceberg catalog's database, and this catalog "
                f"({type(lake.catalog).__name__}) has none: use catalog.type 'sqlite' or 'sql' (PostgreSQL)"
            )
        return cls(engine)

    # leases ------------------------------------------------------------------------------------------
    def acquire(
        self, job: str, owner: str, *, ttl: timedelta, now: datetime | None = None
    ) -> Lease | LeaseHeld:
        """Take ``job``'s lease for ``ttl``, or report who holds it. Atomic across processes."""
        from sqlalchemy import and_, insert, or_, select, true, update
        from sqlalchemy.exc import IntegrityError

        now = as_utc(now or datetime.now(UTC))
        token = uuid.uuid4().hex
        values = {"owner": owner, "token": token, "acquired_at": now, "expires_at": now + ttl}
        t = self.leases
        try:  # the usual case: nobody holds it (a released lease is a deleted row)
            with self.engine.begin() as conn:
                conn.execute(insert(t).values(job=job, **values))
            return Lease(job, owner, token, now, now + ttl)
        except IntegrityError:  # a row exists: it may have expired, or its holder died here
            pass
        with self.engine.begin() as conn:
            held = conn.execute(select(t).where(t.c.job == job)).mappings().first()
        if held is None:
            return self.acquire(job, owner, ttl=ttl, now=now)
        free = [t.c.expires_at <= now, t.c.owner == owner]
        if _dead_here(held["owner"]):
            free.append(true())
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(t).where(and_(t.c.job == job, t.c.token == held["token"], or_(*free))).values(**values)
            ).rowcount
        if claimed == 1:
            return Lease(job, owner, token, now, now + ttl)
        with self.engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.job == job)).mappings().first()
        if row is None:
            return self.acquire(job, owner, ttl=ttl, now=now)
        return LeaseHeld(job, row["owner"], _utc_required(row["expires_at"]))

    def renew(self, lease: Lease, *, ttl: timedelta, now: datetime | None = None) -> Lease | None:
        """Extend a held lease; None when it was lost (expired and taken by another)."""
        from sqlalchemy import and_, update

        now = as_utc(now or datetime.now(UTC))
        t = self.leases
        with self.engine.begin() as conn:
            n = conn.execute(
                update(t)
                .where(and_(t.c.job == lease.job, t.c.token == lease.token))
                .values(expires_at=now + ttl)
            ).rowcount
        return Lease(lease.job, lease.owner, lease.token, lease.acquired_at, now + ttl) if n == 1 else None

    def release(self, lease: Lease) -> bool:
        """Give the lease back (only the holder's token can)."""
        from sqlalchemy import and_, delete

        t = self.leases
        with self.engine.begin() as conn:
            return bool(
                conn.execute(delete(t).where(and_(t.c.job == lease.job, t.c.token == lease.token))).rowcount
            )

    def start(self, job: str, fire: datetime | None, now: datetime) -> bool:
        """Mark ``job`` started for ``fire``; False when that fire was already handled (by anyone)."""
        from sqlalchemy import and_, insert, or_, update
        from sqlalchemy.exc import IntegrityError

        t = self.runs
        fresh = t.c.job == job
        if fire is not None:
            fresh = and_(fresh, or_(t.c.last_fire.is_(None), t.c.last_fire < as_utc(fire)))
        with self.engine.begin() as conn:
            if conn.execute(update(t).where(fresh).values(started_at=as_utc(now))).rowcount:
                return True
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t).values(job=job, started_at=as_utc(now)))
            return True
        except IntegrityError:  # the row exists: the fire was handled
            return False

    def finish(self, lease: Lease, **values: Any) -> None:
        """Record how the run ended (``last_fire``, ``finished_at``, ``outcome`` …) and release the lease,
        in one transaction."""
        from sqlalchemy import and_, delete, update

        values = {k: as_utc(v) if isinstance(v, datetime) else v for k, v in values.items()}
        with self.engine.begin() as conn:
            conn.execute(update(self.runs).where(self.runs.c.job == lease.job).values(**values))
            conn.execute(
                delete(self.leases).where(
                    and_(self.leases.c.job == lease.job, self.leases.c.token == lease.token)
                )
            )

    def holder(self, job: str) -> LeaseHeld | None:
        from sqlalchemy import select

        t = self.leases
        with self.engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.job == job)).mappings().first()
        return None if row is None else LeaseHeld(job, row["owner"], _utc_required(row["expires_at"]))

    # runs --------------------------------------------------------------------------------------------
    def last_run(self, job: str) -> JobRun:
        return self.last_runs([job])[job]

    def last_runs(self, jobs: Sequence[str]) -> dict[str, JobRun]:
        """Each job's run row in one query (a job never run has an empty one)."""
        from sqlalchemy import select

        t = self.runs
        with self.engine.begin() as conn:
            rows = {r["job"]: r for r in conn.execute(select(t).where(t.c.job.in_(list(jobs)))).mappings()}
        return {job: _run(job, rows.get(job)) for job in jobs}

    def record(self, job: str, **values: Any) -> None:
        """Upsert ``job``'s run row (``last_fire``, ``started_at``, ``finished_at``, ``outcome`` …)."""
        from sqlalchemy import insert, update
        from sqlalchemy.exc import IntegrityError

        values = {k: as_utc(v) if isinstance(v, datetime) else v for k, v in values.items()}
        t = self.runs
        with self.engine.begin() as conn:
            if conn.execute(update(t).where(t.c.job == job).values(**values)).rowcount:
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t).values(job=job, **values))
        except IntegrityError:
            with self.engine.begin() as conn:
                conn.execute(update(t).where(t.c.job == job).values(**values))


def _run(job: str, row: Any) -> JobRun:
    if row is None:
        return JobRun(job, None, None, None, None, None, None)
    return JobRun(
        job,
        _utc(row["last_fire"]),
        _utc(row["started_at"]),
        _utc(row["finished_at"]),
        row["outcome"],
        row["detail"],
        _utc(row["last_success"]),
    )


def _dead_here(owner: str) -> bool:
    """True when ``owner`` was a process on this host that is gone."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_required(value: datetime) -> datetime:
    out = _utc(value)
    assert out is not None
    return out
