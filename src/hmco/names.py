"""The grammar of every name hmco puts into SQL, a catalog identifier, an object key or a file path.

Names that come from specs, settings or query helpers are checked here before they reach an engine
or a filesystem, so a hostile value (``x; DROP TABLE y``, ``../../etc``) is refused with a
:class:`~hmco.errors.ConfigError` naming the field and the value, never quoted into SQL or joined
into a path. *Values* (ISO codes, node names) are bound as query parameters instead; ISO codes are
also checked against their (small) grammar so a filter that could never match fails loudly.
"""

from __future__ import annotations

import re

from hmco.errors import ConfigError
from hmco.redaction import redact_text

__all__ = [
    "IDENTIFIER",
    "ISO_CODE",
    "check_identifier",
    "check_iso",
    "check_key",
    "check_qualified",
    "check_segment",
    "find_traversal",
]

#: A plain SQL / catalog identifier: ASCII letter or ``_`` first, then letters, digits, ``_`` (≤ 128).
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: An ISO / market code: ``CAISO``, ``ERCOT``, ``PJM``, ``ISO-NE``, ``NYISO`` (upper case, ≤ 16).
ISO_CODE = re.compile(r"[A-Z][A-Z0-9_-]{0,15}")
#: One segment of an object key or path: no separator, no ``..``, not hidden (≤ 128).
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]{0,127}")


def _shown(value: object) -> str:
    """The offending value as an error shows it: repr'd, redacted, cut to 80 characters."""
    text = redact_text(repr(value))
    return text if len(text) <= 80 else text[:77] + "..."


def check_identifier(value: object, what: str = "identifier") -> str:
    """``value`` if it is a plain identifier (:data:`IDENTIFIER`), else :class:`ConfigError` naming ``what``."""
    if not isinstance(value, str) or IDENTIFIER.fullmatch(value) is None:
        raise ConfigError(
            f"{what} must be a plain identifier (letters, digits, '_'; not starting with a digit), "
            f"not {_shown(value)}",
            field=what,
        )
    return value


def check_qualified(value: object, what: str = "table", *, max_parts: int = 2) -> str:
    """``value`` if it is ``name`` or ``namespace.name`` (up to ``max_parts`` plain identifiers)."""
    parts = value.split(".") if isinstance(value, str) else []
    if not parts or len(parts) > max_parts or any(IDENTIFIER.fullmatch(p) is None for p in parts):
        raise ConfigError(
            f"{what} must be {' or '.join(['name', 'namespace.name', 'catalog.namespace.name'][:max_parts])} "
            f"of plain identifiers, not {_shown(value)}",
            field=what,
        )
    assert isinstance(value, str)
    return value


def check_segment(value: object, what: str = "name") -> str:
    """``value`` if it is safe as one path or key segment: no ``/``, ``\\``, ``..``, leading dot or space."""
    if not isinstance(value, str) or SEGMENT.fullmatch(value) is None or ".." in value:
        raise ConfigError(
            f"{what} must be one path segment (letters, digits, '_', '-', '.', no '..' or '/'), "
            f"not {_shown(value)}",
            field=what,
        )
    return value


def check_key(value: object, what: str = "key") -> str:
    """``value`` if it is a relative key of safe segments (``a/b/c``): no absolute path, no ``..``."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a non-empty relative key, not {_shown(value)}", field=what)
    for segment in value.split("/"):
        try:
            check_segment(segment, what)
        except ConfigError:
            raise ConfigError(
                f"{what} must be a relative key of safe segments (no absolute path, '..', '\\' or "
                f"empty segment), not {_shown(value)}",
                field=what,
            ) from None
    return value


def check_iso(value: object, what: str = "iso") -> str:
    """``value`` if it is an ISO / market code (:data:`ISO_CODE`), else :class:`ConfigError`."""
    if not isinstance(value, str) or ISO_CODE.fullmatch(value) is None:
        raise ConfigError(
            f"{what} must be an ISO code (upper-case letters, digits, '-', '_'; e.g. CAISO), not {_shown(value)}",
            field=what,
        )
    return value


def find_traversal(value: str) -> str | None:
    """Why ``value`` would escape a path or key when joined to one (``..`` segment, absolute, NUL), or None."""
    if "\x00" in value:
        return "contains a NUL byte"
    if any(c in value for c in "\r\n"):
        return "contains a line break"
    if value.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", value):
        return "is an absolute path"
    if any(seg == ".." for seg in re.split(r"[\\/]", value)):
        return "contains a '..' path segment"
    return None
