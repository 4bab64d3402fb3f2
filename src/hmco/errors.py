"""Every exception hmco raises, in one tree, so callers can catch at the right level.

::

    HmcoError                         base of everything hmco raises
    ├── TransientError                retrying the same call later may succeed (tenacity retries these)
    │   ├── SourceUnavailable         connection error, timeout, HTTP 5xx from a source
    │   ├── RateLimited               HTTP 429 / throttle page; carries ``retry_after`` seconds
    │   ├── CommitConflict            a concurrent writer won; the commit can be retried
    │   └── SinkUnavailable           a store (ClickHouse, S3) stayed unreachable through every retry
    └── TerminalError                 retrying the same call will fail the same way: fix something first
        ├── ConfigError               bad settings, profile file or missing credentials
        ├── SpecError                 a UIS YAML spec that does not validate (names the field)
        ├── MissingDependency         an optional extra is not installed (names the extra)
        ├── SourceError               the source answered, but not with data
        │   ├── AuthenticationError   key missing, invalid or suspended
        │   ├── RequestRejected       the source refused the request (bad parameter, window too long …)
        │   └── NoData                a valid request matched nothing (where the caller asked to fail)
        ├── PayloadError              bytes that cannot be parsed (HTML error page, corrupt zip/JSON …)
        │   └── SchemaDriftError      payload columns/types differ from what the parser knows
        ├── SchemaError               data that does not fit a dataset's canonical schema
        │   └── IncompatibleSchemaChange  an evolution that would break readers (type narrowing …)
        ├── SinkError                 a write failed for a reason retrying will not fix
        ├── QualityGateFailed         a batch failed error-level expectations; nothing was published
        └── PipelineError             a run failed; carries the per-window report

Every error carries a message a person can act on; source and payload errors name the source,
dataset and URL (with secrets redacted) and, where the raw payload was archived, its key.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "CommitConflict",
    "ConfigError",
    "HmcoError",
    "IncompatibleSchemaChange",
    "MissingDependency",
    "NoData",
    "PayloadError",
    "PipelineError",
    "QualityGateFailed",
    "RateLimited",
    "RequestRejected",
    "SchemaDriftError",
    "SchemaError",
    "SinkError",
    "SinkUnavailable",
    "SourceError",
    "SourceUnavailable",
    "SpecError",
    "TerminalError",
    "TransientError",
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
    """The same call may succeed if retried later."""

    transient = True


class TerminalError(HmcoError):
    """The same call will fail again until something (data, config, code) is fixed."""


class SourceUnavailable(TransientError):
    """A source could not be reached or answered with a server error (5xx, timeout)."""


class RateLimited(TransientError):
    """A source throttled the client; ``retry_after`` is the wait it asked for, in seconds."""

    def __init__(self, message: str, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, retry_after=retry_after, **context)
        self.retry_after = retry_after


class CommitConflict(TransientError):
    """Another writer committed first; re-reading and re-committing may succeed."""


class SinkUnavailable(TransientError):
    """A sink's store stayed unreachable or overloaded through every retry; re-run the write later."""


class ConfigError(TerminalError):
    """Settings or a profile file are invalid or incomplete."""


class SpecError(TerminalError):
    """A Universal Ingestion Spec failed validation; the message names each bad field."""

    def __init__(self, message: str, errors: list[str] | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.errors = errors or []


class MissingDependency(TerminalError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


class SourceError(TerminalError):
    """A source answered, but not with usable data."""


class AuthenticationError(SourceError):
    """The API key is missing, invalid or suspended."""


class RequestRejected(SourceError):
    """The source rejected the request itself (bad parameter, window too long, unknown series)."""


class NoData(SourceError):
    """A valid request matched no data."""


class PayloadError(TerminalError):
    """Fetched bytes could not be parsed (HTML error page, truncated zip, corrupt JSON …)."""


class SchemaDriftError(PayloadError):
    """A payload's columns or types differ from what its parser expects."""


class SchemaError(TerminalError):
    """Data does not fit a dataset's canonical schema."""


class IncompatibleSchemaChange(SchemaError):
    """A schema change would break existing readers (dropped required column, narrowed type)."""


class SinkError(TerminalError):
    """A sink could not write a batch for a reason retrying will not fix."""


class QualityGateFailed(TerminalError):
    """A batch failed error-level expectations: nothing was published.

    ``failed`` lists the names of the failed expectations; ``result`` is the gate's full result.
    """

    def __init__(self, message: str, failed: list[str] | None = None, result: Any = None, **context: Any):
        super().__init__(message, **context)
        self.failed = failed or []
        self.result = result


class PipelineError(TerminalError):
    """A pipeline run failed; ``report`` holds what was done before the failure."""

    def __init__(self, message: str, report: Any = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.report = report
