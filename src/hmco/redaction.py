"""Redaction of secrets from URLs, headers, payload bodies, logs and error messages.

Three mechanisms work together: parameter/header *names* that always carry secrets (``api_key``,
``token``, ``key`` …) are masked wherever they appear, the password of a URL's userinfo
(``postgresql://user:password@host``) is masked in any text, and secret *values* registered at runtime
(every ``SecretStr`` a client uses) are replaced wherever they occur in text or bytes.

Log records are redacted as they are created. Importing this module (``import hmco`` does) wraps
``logging``'s record factory, so every record of hmco and of the libraries its requests pass through
(:data:`REDACTED_LOGGERS`: httpx logs ``HTTP Request: GET …?api_key=…`` at INFO) is masked before any
logger or handler sees it, handlers the application configures later included. (A filter on a logger
misses its children's records; a handler filter misses handlers added later.) Other loggers' records
pass untouched, and a record without a secret keeps its ``msg`` and ``args``: the common path costs a
cached name lookup and a few microseconds of scanning.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "REDACTED_LOGGERS",
    "SECRET_NAMES",
    "install_log_redaction",
    "redact_bytes",
    "redact_mapping",
    "redact_record",
    "redact_text",
    "redact_url",
    "register_secret",
]

REDACTED = "***"
SECRET_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "x-api-key",
        "key",
        "token",
        "access_token",
        "password",
        "secret",
        "authorization",
        "ocp-apim-subscription-key",
        "credential",
        "client_secret",
    }
)

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_bytes_pattern: re.Pattern[bytes] | None = None


def register_secret(value: str | None) -> None:
    """Remember a secret value so it is masked in every later redaction (min. 4 characters).

    Also re-installs the log redaction if an application replaced the record factory without
    chaining it, so a source built afterwards still keeps its key out of the logs.
    """
    global _pattern, _bytes_pattern
    install_log_redaction()
    if not value or len(value) < 4:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))
        _bytes_pattern = re.compile(b"|".join(re.escape(s.encode()) for s in ordered))


def _is_secret_name(name: str) -> bool:
    return _SECRET_NAME.fullmatch(name.strip()) is not None


def redact_text(text: str) -> str:
    """Mask registered secret values, URL userinfo passwords and ``name=value`` pairs of secret names."""
    if _pattern is not None:
        text = _pattern.sub(REDACTED, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED, text)
    lowered = text.lower()
    if any(name in lowered for name in SECRET_NAMES):  # cheap gate: most text names no secret at all
        text = _NAMED_PAIR.sub(_mask_pair, text)
    return text


def _mask_pair(m: re.Match[str]) -> str:
    value = m.group(4)
    quote = value[0] if len(value) > 1 and value[0] in "\"'" and value[-1] == value[0] else ""
    return f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{quote}{REDACTED}{quote}"


# A secret name, possibly prefixed (``refresh_token``, ``db_password``, ``X-Auth-Token``, ``secret_key``).
_NAME = (
    r"(?:[a-z0-9]+[_.-])*(?:"
    + "|".join(re.escape(n) for n in sorted(SECRET_NAMES, key=len, reverse=True))
    + r")"
)
_SECRET_NAME = re.compile(r"(?i)" + _NAME)
# name, separator (JSON/repr quotes, ``=``/``:`` or URL-encoded ``%3D``), optional auth scheme, value.
_NAMED_PAIR = re.compile(
    r"(?i)(?<![a-z0-9_.-])(" + _NAME + r")"
    r"([\"']?\s*(?:[=:]|%3D)\s*)"
    r"((?:bearer|basic|digest|token)\s+)?"
    r"(\"[^\"]*\"|'[^']*'|[^&\s\"',;}]+)"
)

# The password of ``scheme://user:password@host`` in free text: up to the authority's last ``@`` (hand-
# written URLs carry raw ``@`` in passwords), never past ``/?#``, whitespace or a quote.
_URL_PASSWORD = re.compile(r"(://[^\s/?#@:'\"]*:)[^\s/?#'\"]+(?=@)")


def redact_bytes(body: bytes) -> bytes:
    """Mask registered secret values inside raw bytes (e.g. EIA echoes ``api_key`` in its body)."""
    if _bytes_pattern is not None:
        body = _bytes_pattern.sub(REDACTED.encode(), body)
    return body


def redact_url(url: str) -> str:
    """Mask secret query parameters, the userinfo password (and registered secret values) in a URL.

    A string that does not parse as a URL (an unbalanced ``[``) is redacted as text.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.query:
        pairs = [
            (k, REDACTED if _is_secret_name(k) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(pairs, safe="*:/,"))
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", f":{REDACTED}@")
        parts = parts._replace(netloc=netloc)
    return redact_text(urlunsplit(parts))


def redact_mapping(values: Mapping[str, object] | Iterable[tuple[str, object]]) -> dict[str, str]:
    """Return a copy of params/headers with secret names masked and secret values removed."""
    items = values.items() if isinstance(values, Mapping) else values
    return {str(k): REDACTED if _is_secret_name(str(k)) else redact_text(str(v)) for k, v in items}


# --- log records ----------------------------------------------------------------------------------

#: Loggers whose records (and their children's) are redacted as they are created: hmco's own and those
#: of every library an hmco request or query passes through.
REDACTED_LOGGERS = frozenset(
    {
        "hmco",
        "httpx",
        "httpcore",
        "urllib3",
        "requests",
        "botocore",
        "boto3",
        "s3transfer",
        "aiobotocore",
        "s3fs",
        "fsspec",
        "pyiceberg",
        "sqlalchemy",
        "clickhouse_connect",
        "trino",
    }
)

_TRACEBACKS = logging.Formatter()


def redact_record(record: logging.LogRecord) -> None:
    """Mask secrets in a record's message and traceback, in place.

    A record without a secret keeps its ``msg`` and ``args``; one with a secret gets the redacted
    message as ``msg`` and no ``args``. A traceback with a secret is stored redacted as ``exc_text``,
    which formatters print instead of rendering ``exc_info`` again.
    """
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it for the handler to report, as logging does
        return
    masked = redact_text(message)
    if masked != message:
        record.msg, record.args = masked, ()
    if record.exc_info and not record.exc_text:
        traceback = _TRACEBACKS.formatException(record.exc_info)
        masked = redact_text(traceback)
        if masked != traceback:
            record.exc_text = masked


class _RedactingRecordFactory:
    """Wraps the previous log-record factory; redacts the records of :data:`REDACTED_LOGGERS`."""

    def __init__(self, wrapped: Callable[..., logging.LogRecord]) -> None:
        self.wrapped = wrapped
        self._watched: dict[str, bool] = {}  # logger name -> redacted?; names are few and long-lived

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.wrapped(*args, **kwargs)
        watched = self._watched.get(record.name)
        if watched is None:
            if len(self._watched) > 10_000:  # per-instance logger names must not grow it without bound
                self._watched.clear()
            watched = self._watched[record.name] = _is_redacted_logger(record.name)
        if watched:
            redact_record(record)
        return record


def _is_redacted_logger(name: str) -> bool:
    parts = name.split(".")
    return any(".".join(parts[:i]) in REDACTED_LOGGERS for i in range(1, len(parts) + 1))


_install_lock = threading.Lock()


def install_log_redaction() -> None:
    """Redact the records of hmco and the libraries it drives, whatever handlers exist (idempotent).

    Wraps ``logging``'s record factory, so it covers loggers and handlers created later too. An
    application that sets its own factory afterwards keeps the redaction as long as it chains the
    previous factory, as the ``logging`` documentation shows.
    """
    with _install_lock:
        current = logging.getLogRecordFactory()
        if not isinstance(current, _RedactingRecordFactory):
            logging.setLogRecordFactory(_RedactingRecordFactory(current))


install_log_redaction()
