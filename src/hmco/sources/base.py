"""What every source is: ``fetch(window)`` does I/O and yields :class:`RawPayload`; ``parse`` is pure.

A source never writes anywhere. The pipeline archives each payload to the raw tier *before* parsing,
so a parser bug or a schema drift loses nothing: the payload can be replayed through ``parse`` later.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar, Self

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import SecretStr

from hmco.config import Settings
from hmco.errors import ConfigError
from hmco.schemas import TS, Dataset, get_dataset
from hmco.security.redaction import redact_text, register_secret
from hmco.windows import Window, floor_time

__all__ = [
    "SOURCES",
    "RawPayload",
    "Source",
    "as_list",
    "body_sha256",
    "body_snippet",
    "get_source_class",
    "in_window",
    "is_json_object",
    "register_source",
    "secret_value",
]

_JSON_OBJECT = re.compile(rb"\s*\{")
_WHITESPACE = re.compile(r"\s+")
#: extra characters redacted past a snippet's end, so a secret straddling the cut is masked, not halved
_SNIPPET_LOOKAHEAD = 256


def as_list(value: Sequence[str] | str | None) -> list[str]:
    """A YAML-friendly list parameter: ``None`` → ``[]``, ``"a, b"`` → ``["a", "b"]``, items stripped."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


def secret_value(secret: SecretStr | None) -> str | None:
    """The value of a configured secret (``None`` if unset or empty), registered for redaction everywhere."""
    value = secret.get_secret_value() if secret is not None else None
    register_secret(value)
    return value or None


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


def in_window(ts: pa.Array | pa.ChunkedArray, window: Window) -> pa.Array | pa.ChunkedArray:
    """Mask of timestamps in the half-open ``[window.start, window.end)``; a null timestamp gives null.

    Callers choose what null means: ``Table.filter`` drops those rows, ``pc.all`` skips them.
    """
    return pc.and_(
        pc.greater_equal(ts, pa.scalar(window.start, TS)),
        pc.less(ts, pa.scalar(window.end, TS)),
    )


@dataclass(frozen=True)
class RawPayload:
    """Bytes exactly as a source sent them, plus what is needed to replay and audit them.

    ``url``, ``params`` and ``headers`` are already redacted; ``body`` must be redacted by the source
    if the API echoes secrets (EIA does). ``meta`` carries source-specific facts a parser needs
    (e.g. SPP's repeated-hour flag, the CAISO report version).
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

    @cached_property
    def sha256(self) -> str:
        return body_sha256(self.body)

    @property
    def size(self) -> int:
        return len(self.body)

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
        )


SOURCES: dict[str, type[Source]] = {}


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator: make a source available to UIS specs under ``cls.name``."""
    SOURCES[cls.name] = cls
    return cls


def get_source_class(name: str) -> type[Source]:
    if name not in SOURCES:
        import importlib

        from hmco.sources import SOURCE_MODULES

        if name in SOURCE_MODULES:
            importlib.import_module(SOURCE_MODULES[name])
    try:
        return SOURCES[name]
    except KeyError:
        raise ConfigError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}") from None


class Source(ABC):
    """Base of every source client.

    Subclasses set ``name`` (registry key), ``datasets`` (the canonical datasets they can produce, the
    first is the default) and ``window_step`` (how a backfill is chunked), and implement ``fetch`` and
    ``parse``.
    """

    name: ClassVar[str]
    datasets: ClassVar[tuple[str, ...]]
    #: how a backfill is chunked; a class default that an instance may override (per dataset or market).
    window_step: timedelta = timedelta(days=1)
    #: how far behind "now" the newest complete data usually is (used by "since last watermark").
    publication_lag: timedelta = timedelta(0)

    def __init__(self, dataset: str | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.load()
        name = dataset or self.datasets[0]
        if name not in self.datasets:
            raise ConfigError(
                f"source {self.name} cannot produce dataset {name!r}; it produces {self.datasets}"
            )
        self._dataset = get_dataset(name)

    @property
    def dataset(self) -> Dataset:
        return self._dataset

    @abstractmethod
    def fetch(self, window: Window) -> Iterator[RawPayload]:
        """Yield the raw payloads covering ``window`` (pagination and chunking handled here)."""

    @abstractmethod
    def parse(self, payload: RawPayload) -> pa.Table:
        """Turn one payload into a table of the dataset's canonical schema. Pure: no I/O."""

    def scope(self) -> dict[str, list[str]]:
        """Which slice of the dataset this source instance owns, e.g. ``{"iso": ["CAISO"]}``.

        Re-running a window replaces rows of the window *within this scope* only, so two sources
        writing one dataset (CAISO and SPP into ``rt_lmp``) never erase each other. Empty means the
        whole dataset; the pipeline then narrows it with the batch's identity-partition values.
        """
        return {}

    def read(self, window: Window) -> Iterator[tuple[RawPayload, pa.Table]]:
        """Fetch and parse without archiving (notebooks, debugging)."""
        for payload in self.fetch(window):
            yield payload, self.parse(payload)

    def latest_window(self, now: datetime | None = None) -> Window:
        """The most recent complete window this source can serve (for real-time polling)."""
        now = now or datetime.now(UTC)
        end = floor_time(now - self.publication_lag, self.window_step)
        return Window(end - self.window_step, end)

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections; sources are also context managers."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dataset={self.dataset.name!r})"
