"""The raw-payload archive: every fetched payload, byte for byte (zstd), in the raw tier, before parsing.

Objects are content-addressed: ``payloads/<source>/<dataset>/<sha[:2]>/<sha256>.zst`` with a JSON
sidecar of the (redacted) request metadata and fetch time. Every key part is checked (one safe segment
each; a key read back has no ``..`` or absolute part), so no name can write or read outside the archive. Re-fetching the same bytes stores nothing
new. Any archived payload can be replayed through its source's parser later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from hmco._logging import get_logger
from hmco.errors import ConfigError, SinkError
from hmco.lake import Lake
from hmco.lake.tiers import PAYLOAD_PREFIX
from hmco.names import check_key, check_segment
from hmco.payload import PayloadParser, RawPayload
from hmco.redaction import redact_bytes

__all__ = ["ArchivedPayload", "RawArchive"]

log = get_logger("hmco.raw")

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ArchivedPayload:
    """Where a payload lives in the raw tier; ``stored`` is False if identical bytes were already there."""

    key: str
    sha256: str
    size: int
    stored: bool


class RawArchive:
    """Lossless payload archive in the lake's raw tier."""

    def __init__(self, lake: Lake, prefix: str = PAYLOAD_PREFIX) -> None:
        self.lake = lake
        self.root = f"{lake.storage_location('raw').rstrip('/')}/{prefix}"
        self.fs, self.base = lake.filesystem(self.root)

    def _key(self, source: str, dataset: str, sha: str) -> str:
        """The key of a payload; raises :class:`SinkError` for a part that is not one safe segment."""
        try:
            parts = [check_segment(source, "source"), check_segment(dataset, "dataset")]
        except ConfigError as exc:
            raise SinkError(f"cannot archive the payload: {exc}") from None
        if _SHA256.fullmatch(sha) is None:
            raise SinkError(f"cannot archive the payload: sha256 {sha[:80]!r} is not 64 hex digits")
        return f"{parts[0]}/{parts[1]}/{sha[:2]}/{sha}"

    def _checked(self, key: str) -> str:
        """``key`` if it stays inside the archive (relative, safe segments), else :class:`SinkError`."""
        try:
            return check_key(key, "archive key")
        except ConfigError as exc:
            raise SinkError(str(exc)) from None

    def put(self, payload: RawPayload) -> ArchivedPayload:
        """Store a payload (idempotent); secrets registered at runtime are stripped from the bytes first."""
        import pyarrow.fs as pafs

        body = redact_bytes(payload.body)
        if body != payload.body:
            log.warning("secret value found in a %s payload body; redacted before archiving", payload.source)
            payload = _with_body(payload, body)
        key = self._key(payload.source, payload.dataset, payload.sha256)
        data_path = f"{self.base}/{key}.zst"
        meta_path = f"{self.base}/{key}.json"
        try:
            if self.fs.get_file_info(meta_path).type != pafs.FileType.NotFound:
                return ArchivedPayload(key, payload.sha256, payload.size, stored=False)
            self.fs.create_dir(data_path.rsplit("/", 1)[0], recursive=True)
            with self.fs.open_output_stream(data_path, compression="zstd") as out:
                out.write(body)
            # The sidecar is written last: its presence marks a complete object.
            with self.fs.open_output_stream(meta_path) as out:
                out.write(json.dumps(payload.describe(), sort_keys=True).encode())
        except (OSError, pa.ArrowException) as exc:
            raise SinkError(
                f"cannot archive {payload.source} payload to the raw tier: {exc}", key=key
            ) from None
        return ArchivedPayload(key, payload.sha256, payload.size, stored=True)

    def get(self, key: str) -> RawPayload:
        """Read an archived payload back, exactly as it was archived."""
        key = self._checked(key)
        try:
            with self.fs.open_input_stream(f"{self.base}/{key}.json") as f:
                desc = json.loads(f.read())
            with self.fs.open_input_stream(f"{self.base}/{key}.zst", compression="zstd") as f:
                body = f.read()
        except FileNotFoundError:
            raise SinkError(f"no archived payload {key!r} in {self.root}") from None
        return RawPayload.from_description(desc, body)

    def keys(self, source: str | None = None, dataset: str | None = None) -> list[str]:
        """Keys of archived payloads, optionally of one source / dataset."""
        import pyarrow.fs as pafs

        base = self.base
        if source:
            base += f"/{self._checked(source)}"
            if dataset:
                base += f"/{self._checked(dataset)}"
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        keys = [
            info.path[len(self.base) + 1 : -len(".json")]
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File and info.path.endswith(".json")
        ]
        return sorted(keys)

    def payloads(
        self, source: str | None = None, dataset: str | None = None, since: datetime | None = None
    ) -> Iterator[RawPayload]:
        """Archived payloads in fetch order (optionally fetched at or after ``since``).

        Only the small JSON sidecars are read to order and filter; bodies are read one at a time.
        """
        described = []
        for key in self.keys(source, dataset):
            desc = self.describe(key)
            fetched = datetime.fromisoformat(desc["fetched_at"])
            if since is None or fetched >= since:
                described.append((fetched, int(desc.get("page", 0)), key))
        for _, _, key in sorted(described):
            yield self.get(key)

    def describe(self, key: str) -> dict[str, Any]:
        """The metadata stored beside an archived payload (redacted request, hash, fetch time)."""
        key = self._checked(key)
        try:
            with self.fs.open_input_stream(f"{self.base}/{key}.json") as f:
                return dict(json.loads(f.read()))
        except FileNotFoundError:
            raise SinkError(f"no archived payload {key!r} in {self.root}") from None

    def replay(self, key: str, source: PayloadParser) -> pa.Table:
        """Parse an archived payload again (after a parser fix or to rebuild a table)."""
        return source.parse(self.get(key))


def _with_body(payload: RawPayload, body: bytes) -> RawPayload:
    from dataclasses import replace

    return replace(payload, body=body)
