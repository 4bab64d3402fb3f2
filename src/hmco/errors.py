"""Every exception hmco raises, in one domain-first tree, so catching a domain's base catches all of it.

::

    HmcoError                         base of everything hmco raises
    ├── ConfigError                   bad settings, profile file or missing credentials
    │   ├── SpecError                 a UIS YAML spec that does not validate (names the field)
    │   ├── MissingDependency         an optional extra is not installed (names the extra)
    │   └── AccessDenied              S3 or Trino refused a role an action (names role, action, object)
    ├── SourceError                   fetching from a source failed
    │   ├── HostNotFound              the source's host name does not resolve (names host and setting)
    │   ├── SourceUnavailable   [T]   connection error, timeout, HTTP 5xx
    │   │   └── ConnectionFailed [T]  connection refused or reset (a few quick retries, then this)
    │   ├── RateLimited         [T]   HTTP 429 / throttle page; carries ``retry_after`` seconds
    │   ├── AuthenticationError       key missing, invalid or suspended
    │   ├── RequestRejected           the source refused the request (bad parameter, window too long …)
    │   ├── NoData                    a valid request matched nothing (where the caller asked to fail)
    │   └── PayloadError              bytes that cannot be parsed (HTML error page, corrupt zip/JSON …)
    │       └── SchemaDriftError      payload columns/types differ from what the parser knows
    ├── SchemaError                   data that does not fit a dataset's canonical schema
    │   └── IncompatibleSchemaChange  an evolution that would break readers (type narrowing …)
    ├── SinkError                     a write to the lake, the archive or ClickHouse failed
    │   ├── CommitConflict      [T]   a concurrent writer won; the commit can be retried
    │   └── SinkUnavailable     [T]   a store (ClickHouse, S3) stayed unreachable through every retry
    ├── LakeStateError                the lake's own state is inconsistent (orphaned table metadata …)
    ├── BackupError                   a backup could not be taken, verified, replicated or restored
    │   ├── BackupFailed              taking it failed; nothing was recorded
    │   ├── BackupUnusable            missing, partial or corrupt (names the backup and object)
    │   ├── RestoreFailed             the restore itself failed; nothing half-restored is left
    │   ├── RestoreTargetNotEmpty     the target holds data: pass force to replace it
    │   └── ReplicationError          a copy to the DR site could not be completed or verified
    ├── QualityError                  quality checks could not pass a batch
    │   └── QualityGateFailed         a batch failed error-level expectations; nothing was published
    ├── QueryError                    the query engine (Trino) could not take a query
    │   └── QueryRejected       [T]   the user's resource group queue was full; retry later
    ├── NotificationError             an alert could not be delivered (webhook URL redacted)
    │   ├── NotificationUnavailable [T]  the webhook stayed unreachable or answered 5xx through every retry
    │   └── NotificationRejected      the webhook refused the message (4xx: bad token, unknown channel …)
    └── PipelineError                 a run failed; carries the per-window report

``[T]`` marks the transient ones: they also derive from :class:`TransientError` (``exc.transient`` is
True), and retries key on that marker, never on the domain. Every other error is a
:class:`TerminalError`: retrying the same call fails the same way until something is fixed. So
``except SourceError`` catches rate limits and outages too, and ``except TransientError`` catches
every retryable failure whatever its domain.

Every error carries a message a person can act on; source and payload errors name the source,
dataset and URL (with secrets redacted) and, where the raw payload was archived, its key.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessDenied",
    "AuthenticationError",
    "BackupError",
    "BackupFailed",
    "BackupUnusable",
    "CommitConflict",
    "ConfigError",
    "ConnectionFailed",
    "HmcoError",
    "HostNotFound",
    "IncompatibleSchemaChange",
    "LakeStateError",
    "MissingDependency",
    "NoData",
    "NotificationError",
    "NotificationRejected",
    "NotificationUnavailable",
    "PayloadError",
    "PipelineError",
    "QualityError",
    "QualityGateFailed",
    "QueryError",
    "QueryRejected",
    "RateLimited",
    "ReplicationError",
    "RequestRejected",
    "RestoreFailed",
    "RestoreTargetNotEmpty",
    "SchemaDriftError",
    "SchemaError",
    "SinkError",
    "SinkUnavailable",
    "SourceError",
    "SourceUnavailable",
    "SpecError",
    "TerminalError",
    "TransientError",
    "is_transient",
]


class HmcoError(Exception):
    """Base class of every error raised by hmco."""

    transient: bool = False

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = {k: v for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        if not self.context:
            return self.message
        where = ", ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.message} [{where}]"


class TransientError(HmcoError):
    """Marker: the same call may succeed if retried later (tenacity retries these)."""

    transient = True


class TerminalError(HmcoError):
    """Marker: the same call will fail again until something (data, config, code) is fixed."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an hmco error marked transient: the retry predicate every hmco retry uses."""
    return isinstance(exc, HmcoError) and exc.transient


# --- configuration ---------------------------------------------------------------------------------
class ConfigError(TerminalError):
    """Settings or a profile file are invalid or incomplete."""


class SpecError(ConfigError):
    """A Universal Ingestion Spec failed validation; the message names each bad field."""

    def __init__(self, message: str, errors: list[str] | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.errors = errors or []


class MissingDependency(ConfigError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


class AccessDenied(ConfigError):
    """S3 refused these keys, or Trino this user, an action: the message names role, action and object.

    Retrying fails the same way; use the keys of a role that may, or change the policies in force.
    """

    def __init__(
        self, message: str, role: str | None = None, action: str | None = None, resource: str | None = None
    ) -> None:
        super().__init__(message)
        self.role, self.action, self.resource = role, action, resource


# --- sources ---------------------------------------------------------------------------------------
class SourceError(HmcoError):
    """Fetching from a source failed: it could not be reached, refused, or answered without data."""


class SourceUnavailable(SourceError, TransientError):
    """A source could not be reached or answered with a server error (5xx, timeout)."""


class ConnectionFailed(SourceUnavailable):
    """The host refused or reset the connection (or did not answer the connect) through a few quick retries."""


class HostNotFound(SourceError, TerminalError):
    """The source's host name does not resolve: its ``base_url`` (or this machine's DNS) needs fixing.

    Not retried: a name that does not resolve now will not resolve in a few seconds either.
    """


class RateLimited(SourceError, TransientError):
    """A source throttled the client; ``retry_after`` is the wait it asked for, in seconds."""

    def __init__(self, message: str, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, retry_after=retry_after, **context)
        self.retry_after = retry_after


class AuthenticationError(SourceError, TerminalError):
    """The API key is missing, invalid or suspended."""


class RequestRejected(SourceError, TerminalError):
    """The source rejected the request itself (bad parameter, window too long, unknown series)."""


class NoData(SourceError, TerminalError):
    """A valid request matched no data."""


class PayloadError(SourceError, TerminalError):
    """Fetched bytes could not be parsed (HTML error page, truncated zip, corrupt JSON …)."""


class SchemaDriftError(PayloadError):
    """A payload's columns or types differ from what its parser expects."""


# --- data ------------------------------------------------------------------------------------------
class SchemaError(TerminalError):
    """Data does not fit a dataset's canonical schema."""


class IncompatibleSchemaChange(SchemaError):
    """A schema change would break existing readers (dropped required column, narrowed type)."""


# --- sinks and lake state --------------------------------------------------------------------------
class SinkError(HmcoError):
    """A sink could not write a batch."""


class CommitConflict(SinkError, TransientError):
    """Another writer committed first; re-reading and re-committing may succeed."""


class SinkUnavailable(SinkError, TransientError):
    """A sink's store stayed unreachable or overloaded through every retry; re-run the write later."""


class LakeStateError(TerminalError):
    """The lake's state is inconsistent (e.g. table metadata exists that the catalog does not know)."""


# --- backups and disaster recovery ----------------------------------------------------------------
class BackupError(TerminalError):
    """A backup could not be taken, verified, replicated or restored; the message names the backup."""


class BackupFailed(BackupError):
    """Taking the backup failed (the tool's or server's reason, secrets redacted); nothing was recorded."""


class BackupUnusable(BackupError):
    """The backup (or a base it builds on) is missing, partial, or its objects differ from its record."""


class RestoreFailed(BackupError):
    """The restore failed (e.g. the engine's own checksum checks); nothing half-restored is left."""


class RestoreTargetNotEmpty(BackupError):
    """A restore's target holds data; pass ``force=True`` to replace it."""


class ReplicationError(BackupError):
    """A replication run could not copy or verify every object; the message names them."""


# --- quality ---------------------------------------------------------------------------------------
class QualityError(TerminalError):
    """Quality checks could not pass a batch."""


class QualityGateFailed(QualityError):
    """A batch failed error-level expectations: nothing was published.

    ``failed`` lists the names of the failed expectations; ``result`` is the gate's full result.
    """

    def __init__(self, message: str, failed: list[str] | None = None, result: Any = None, **context: Any):
        super().__init__(message, **context)
        self.failed = failed or []
        self.result = result


# --- queries on the engine --------------------------------------------------------------------------
class QueryError(HmcoError):
    """The query engine (Trino) could not take a query (refusals of access are :class:`AccessDenied`)."""


class QueryRejected(QueryError, TransientError):
    """The user's resource group had no room left in its queue (``QUERY_QUEUE_FULL``); retry later."""


# --- alerts --------------------------------------------------------------------------------------
class NotificationError(HmcoError):
    """An alert could not be delivered; the message names the webhook with its token redacted."""


class NotificationUnavailable(NotificationError, TransientError):
    """The webhook could not be reached or answered 5xx through every retry."""


class NotificationRejected(NotificationError, TerminalError):
    """The webhook refused the message (4xx): its URL, token or channel needs fixing."""


# --- runs ------------------------------------------------------------------------------------------
class PipelineError(TerminalError):
    """A pipeline run failed; ``report`` holds what was done before the failure."""

    def __init__(self, message: str, report: Any = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.report = report
