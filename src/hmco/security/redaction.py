"""Redaction of secrets from URLs, headers, payload bodies, logs and error messages.

Two mechanisms work together: parameter/header *names* that always carry secrets (``api_key``,
``token``, ``key`` …) are masked wherever they appear, and secret *values* registered at runtime
(every ``SecretStr`` a client uses) are replaced wherever they occur in text or bytes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SECRET_NAMES",
    "redact_bytes",
    "redact_mapping",
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
    """Remember a secret value so it is masked in every later redaction (min. 4 characters)."""
    global _pattern, _bytes_pattern
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
    """Mask registered secret values and ``name=value`` pairs of secret names in free text."""
    if _pattern is not None:
        text = _pattern.sub(REDACTED, text)
    return _NAMED_PAIR.sub(_mask_pair, text)


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


def redact_bytes(body: bytes) -> bytes:
    """Mask registered secret values inside raw bytes (e.g. EIA echoes ``api_key`` in its body)."""
    if _bytes_pattern is not None:
        body = _bytes_pattern.sub(REDACTED.encode(), body)
    return body


def redact_url(url: str) -> str:
    """Mask secret query parameters (and registered secret values) in a URL."""
    parts = urlsplit(url)
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
