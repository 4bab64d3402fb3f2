"""What every source is: ``fetch(window)`` does I/O and yields :class:`RawPayload`; ``parse`` is pure.

A source never writes anywhere. The pipeline archives each payload to the raw tier *before* parsing,
so a parser bug or a schema drift loses nothing: the payload can be replayed through ``parse`` later.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Self

import pyarrow as pa
from pydantic import SecretStr

from hmco.config import Settings
from hmco.errors import ConfigError
from hmco.payload import RawPayload, body_sha256, body_snippet, is_json_object
from hmco.redaction import register_secret
from hmco.schemas import Dataset, get_dataset
from hmco.sources.registry import get_source_class, register_source
from hmco.windows import Window, floor_time, in_window

__all__ = [
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

# Payload types and window masks are core (hmco.payload, hmco.windows), the source registry lives in
# hmco.sources.registry; all are re-exported here for source modules and custom sources.


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


class Source(ABC):
    """Base of every source client.

    Subclasses set ``name`` (registry key), ``datasets`` (the canonical datasets they can produce, the
    first is the default) and ``window_step`` (how a backfill is chunked), and implement ``fetch`` and
    ``parse``.
    """

    name: ClassVar[str]
    datasets: ClassVar[tuple[str, ...]]
    #: the market's own time zone (IANA name): what a date means for this source's data, e.g. the
    #: trading day of an ISO ("America/Los_Angeles" for CAISO, fixed "EST" for MISO). Rows stay UTC.
    timezone: ClassVar[str] = "UTC"
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
