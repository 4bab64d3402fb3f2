"""Structured logging with secrets redacted from every record.

hmco logs through the standard ``logging`` module under the ``hmco`` logger. ``configure_logging``
installs a handler that redacts secrets and, with ``json=True``, writes one JSON object per line
(``ts, level, logger, msg`` plus any ``extra=`` fields), which schedulers and log shippers ingest as is.

Records reach that handler already redacted: ``hmco.redaction`` redacts the records of hmco and of the
libraries it drives as they are created, whatever handlers the application configures (see
:func:`hmco.redaction.install_log_redaction`). The handler's filter is a second line of defence.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from hmco.redaction import install_log_redaction, redact_record, redact_text

__all__ = ["RedactingFilter", "configure_logging", "get_logger"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Redacts each record passing a handler (installed on hmco's handlers).

    A second line of defence: records are already redacted when created (``hmco.redaction``), but one
    built with ``logging.makeLogRecord`` (e.g. received from a socket) bypasses the record factory.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = redact_text(value) if isinstance(value, str) else value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc"] = redact_text(record.exc_text)
        return json.dumps(data, default=str)


def get_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name if name.startswith("hmco") else f"hmco.{name}")
    return logger


def configure_logging(level: str | int = "INFO", *, json: bool = False) -> logging.Handler:
    """Attach one redacting handler to the ``hmco`` logger (idempotent)."""
    install_log_redaction()
    root = logging.getLogger("hmco")
    for h in list(root.handlers):
        if getattr(h, "_hmco", False):
            root.removeHandler(h)
    handler = logging.StreamHandler()
    handler._hmco = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter() if json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
    return handler
