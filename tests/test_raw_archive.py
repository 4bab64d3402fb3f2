"""The raw archive: byte-for-byte, content-addressed, redacted metadata, replayable through the parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa

from hmco.lake import Lake
from hmco.redaction import register_secret
from hmco.sinks.raw import RawArchive
from hmco.sources.base import RawPayload
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window

HOUR = Window.of("2026-11-26T00:00", "2026-11-26T01:00")


def _payload(body: bytes, **kw: object) -> RawPayload:
    return RawPayload(source="demo", dataset="rt_lmp", body=body, url="https://x/y?a=1", **kw)  # type: ignore[arg-type]


def test_payload_is_archived_byte_for_byte_with_its_metadata(lake: Lake) -> None:
    archive = RawArchive(lake)
    body = bytes(range(256)) * 1000
    fetched = datetime(2026, 11, 26, 3, 4, 5, tzinfo=UTC)
    stored = archive.put(_payload(body, fetched_at=fetched, window=HOUR, page=3, meta={"version": 3}))
    back = archive.get(stored.key)
    assert back.body == body
    assert back.sha256 == stored.sha256
    assert (back.fetched_at, back.window, back.page, dict(back.meta)) == (fetched, HOUR, 3, {"version": 3})
    assert archive.keys("demo") == [stored.key]


def test_same_bytes_are_stored_once(lake: Lake) -> None:
    archive = RawArchive(lake)
    first = archive.put(_payload(b'{"x": 1}'))
    again = archive.put(_payload(b'{"x": 1}', fetched_at=datetime(2030, 1, 1, tzinfo=UTC)))
    assert first.stored and not again.stored and first.key == again.key
    assert len(archive.keys()) == 1


def test_objects_are_compressed_in_the_raw_tier(lake: Lake) -> None:
    archive = RawArchive(lake)
    stored = archive.put(_payload(b"LMP,1.0\n" * 100_000))
    info = archive.fs.get_file_info(f"{archive.base}/{stored.key}.zst")
    assert 0 < info.size < 800_000 / 20


def test_registered_secrets_never_reach_the_archive(lake: Lake) -> None:
    register_secret("EIAKEY-abcdef0123456789")
    archive = RawArchive(lake)
    stored = archive.put(_payload(b'{"request": {"params": {"api_key": "EIAKEY-abcdef0123456789"}}}'))
    with archive.fs.open_input_stream(f"{archive.base}/{stored.key}.zst", compression="zstd") as f:
        raw = f.read()
    with archive.fs.open_input_stream(f"{archive.base}/{stored.key}.json") as f:
        meta = json.loads(f.read())
    assert b"EIAKEY-abcdef0123456789" not in raw
    assert "EIAKEY" not in json.dumps(meta)


def test_archived_payload_replays_through_its_parser(lake: Lake) -> None:
    source = SyntheticISO(nodes=20, settings=lake.settings)
    archive = RawArchive(lake)
    payload = next(iter(source.fetch(HOUR)))
    key = archive.put(payload).key
    replayed = archive.replay(key, source)
    assert isinstance(replayed, pa.Table)
    assert replayed.equals(source.parse(payload))
    assert replayed.num_rows == 20 * 12
    assert [p.sha256 for p in archive.payloads("synthetic_iso", "rt_lmp")] == [payload.sha256]
