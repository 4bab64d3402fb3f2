"""Raw payloads: bytes exactly as a source sent them, and the helpers that name and quote them.

Core: sources produce :class:`RawPayload`, the raw archive stores it, the window processor passes it
from one to the other; none of them import each other for it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from hmco.redaction import redact_text
from hmco.windows import Window

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["PayloadParser", "RawPayload", "body_sha256", "body_snippet", "is_json_object"]

_JSON_OBJECT = re.compile(rb"\s*\{")
_WHITESPACE = re.compile(r"\s+")
#: extra characters redacted past a snippet's end, so a secret straddling the cut is masked, not halved
_SNIPPET_LOOKAHEAD = 256


def body_sha256(body: bytes) -> str:
    """Hex SHA-256 of a payload body: the id error messages and the raw archive name a payload by."""
    return hashlib.sha256(body).hexdigest()


def body_snippet(body: bytes | str, limit: int = 200) -> str:
    """The first ``limit`` characters of a body on one line, secrets masked, for error messages.

    Only a prefix is decoded (bodies can be 100 MB); an empty or blank body gives ``"<empty body>"``.
    """
    head = body[: limit + _SNIPPET_LOOKAHEAD]
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    return redact_text(_WHITESPACE.sub(" ", text).strip())[:limit].rstrip() or "<empty body>"


def is_json_object(body: bytes) -> bool:
    """Whether a body starts (after blank space) with ``{``.

    pyarrow.json may only be handed such bodies: it cannot type a non-object and pyarrow 26 crashes the
    process on a bare ``null``. Anything else goes to ``json.loads`` to be judged.
    """
    return _JSON_OBJECT.match(body) is not None


@dataclass(frozen=True)
class RawPayload:
    """Bytes exactly as a source sent them, plus what is needed to replay and audit them.

    ``url``, ``params`` and ``headers`` are already redacted; ``body`` must be redacted by the source
    if the API echoes secrets (EIA does). ``meta`` carries source-specific facts a parser needs
    (e.g. SPP's repeated-hour flag, the CAISO report version). ``published_at`` is the source's own
    publication or revision time of these bytes where it states one (a ``Last-Modified`` header, a
    timestamp inside the payload); it orders revisions of the same rows (see :meth:`version_time`).
    """

    source: str
    dataset: str
    body: bytes
    url: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    status: int = 200
    content_type: str | None = None
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    window: Window | None = None
    page: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict)
    published_at: datetime | None = None

    @cached_property
    def sha256(self) -> str:
        return body_sha256(self.body)

    @property
    def size(self) -> int:
        return len(self.body)

    def version_time(self) -> datetime:
        """When this revision of the data came to be: the source's publication time, else the fetch time."""
        return self.published_at or self.fetched_at

    def describe(self) -> dict[str, Any]:
        """Metadata (no body) as plain JSON-able values, as stored beside the archived bytes."""
        return {
            "source": self.source,
            "dataset": self.dataset,
            "sha256": self.sha256,
            "size": self.size,
            "url": self.url,
            "params": dict(self.params),
            "headers": dict(self.headers),
            "status": self.status,
            "content_type": self.content_type,
            "fetched_at": self.fetched_at.isoformat(),
            "window": [self.window.start.isoformat(), self.window.end.isoformat()] if self.window else None,
            "page": self.page,
            "meta": dict(self.meta),
            "published_at": self.published_at.isoformat() if self.published_at else None,
        }

    @classmethod
    def from_description(cls, desc: Mapping[str, Any], body: bytes) -> RawPayload:
        window = desc.get("window")
        return cls(
            source=desc["source"],
            dataset=desc["dataset"],
            body=body,
            url=desc.get("url", ""),
            params=desc.get("params", {}),
            headers=desc.get("headers", {}),
            status=desc.get("status", 200),
            content_type=desc.get("content_type"),
            fetched_at=datetime.fromisoformat(desc["fetched_at"]),
            window=Window.of(window[0], window[1]) if window else None,
            page=desc.get("page", 0),
            meta=desc.get("meta", {}),
            published_at=datetime.fromisoformat(desc["published_at"]) if desc.get("published_at") else None,
        )


class PayloadParser(Protocol):
    """Anything that turns one payload into a canonical table: every source (``Source.parse``)."""

    def parse(self, payload: RawPayload) -> pa.Table: ...
