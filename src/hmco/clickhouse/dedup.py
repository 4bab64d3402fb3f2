"""What makes a ClickHouse insert idempotent: its deduplication token and the settings it rides with.

A token names one chunk of one batch: ``<dataset>:<batch id>:<basis>:<first row>+<rows>``. The basis says
what the batch is:

* ``fp-<fingerprint>`` when the window processor passed the digest of the raw payloads the batch was
  parsed from (free: the archive hashed them already), followed by the chunk's ``published_at`` range.
  Rows carry ``published_at``, which the payload bytes need not hold (a ``Last-Modified`` header, the
  fetch time), so the range keeps a re-fetch of unchanged bytes (A -> B -> A) from passing for A's retry.
* ``mm-<digest>`` otherwise: a 128-bit MurmurHash3 (``mmh3``, which pyiceberg already needs) of the
  batch's values, read straight from the Arrow buffers with no serialisation. Equal tables give equal
  digests, so a retried or re-sent batch is dropped by the server; different tables give different
  digests. A sum of aggregates (row count, min/max, column sums) would not do: two batches differing in
  one price by +1 and another by -1 would share the token and the second would be silently dropped.
  MurmurHash3 is not cryptographic: someone crafting a collision inside one batch id and one dedup window
  could get a chunk dropped; the data comes from ISOs we fetch, not from an adversary.

The server forms one block per insert (``min_insert_block_size_rows`` = the chunk's rows), so a retried
chunk yields the same block ids whatever thread split the server would otherwise choose.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hmco._dependencies import import_optional

__all__ = ["content_digest", "fingerprint_basis", "insert_settings", "insert_token"]


def insert_settings(token: str, rows: int) -> dict[str, str | int]:
    """Settings of one chunk's insert: deduplicated by ``token``, synchronous, written as a single block."""
    return {
        "insert_deduplicate": 1,
        "insert_deduplication_token": token,
        # chdb turns async inserts on by default; an async insert is acknowledged before it is written.
        "async_insert": 0,
        # One block per chunk: a block's id is derived from the token and its index, so a chunk split into
        # a different number of blocks on a retry would not be recognised.
        "min_insert_block_size_rows": max(rows, 1),
        "min_insert_block_size_bytes": 0,
    }


def insert_token(dataset: str, batch_id: str, basis: str, offset: int, rows: int) -> str:
    """The token of rows ``[offset, offset + rows)`` of a batch (the slice, not a chunk number, so a
    different ``batch_rows`` can never give another slice the same token)."""
    return f"{dataset}:{batch_id}:{basis}:{offset}+{rows}"


def fingerprint_basis(fingerprint: str, versions: pa.ChunkedArray) -> str:
    """Basis of a chunk's token from the processor's payload ``fingerprint`` and its ``published_at``."""
    if versions.null_count == len(versions):
        return f"fp-{fingerprint}"
    lo, hi = pc.min_max(versions.cast(pa.int64())).values()  # epoch units of the column (µs)
    return f"fp-{fingerprint}@{lo.as_py()}-{hi.as_py()}"


def content_digest(table: pa.Table) -> str:
    """MurmurHash3 (x64, 128-bit) of ``table``'s schema and values, hex; about memory speed, no copies.

    Each column's arrays feed their length, null count and the bytes that hold the values of their rows
    (validity bits, fixed-width values, string offsets and characters). Tables with the same values but
    another memory layout may digest differently (a missed deduplication, which the ReplacingMergeTree
    absorbs), never the other way round.
    """
    mmh3 = import_optional("mmh3")
    hasher = mmh3.mmh3_x64_128()
    hasher.update(str(table.schema.remove_metadata()).encode())
    for column in table.columns:
        for array in column.chunks:
            _feed(hasher, array)
    return str(hasher.digest().hex())


def _feed(hasher: Any, array: pa.Array) -> None:
    update = hasher.update
    n, offset = len(array), array.offset
    update(f"|{n}:{array.null_count}:{offset % 8}|".encode())
    if n == 0:
        return
    buffers = array.buffers()
    kind = array.type
    if array.null_count and buffers[0] is not None:
        update(_bits(buffers[0], offset, n))
    if pa.types.is_boolean(kind):
        update(_bits(buffers[1], offset, n))
    elif _fixed_width(kind):
        width = kind.bit_width // 8
        update(buffers[1][offset * width : (offset + n) * width])
    elif pa.types.is_string(kind) or pa.types.is_binary(kind) or _is_large_binary(kind):
        dtype = np.int64 if _is_large_binary(kind) else np.int32
        size = np.dtype(dtype).itemsize
        ends = np.frombuffer(buffers[1], dtype, n + 1, offset * size)
        update(buffers[1][offset * size : (offset + n + 1) * size])
        update(buffers[2][int(ends[0]) : int(ends[-1])] if buffers[2] is not None else b"")
    else:  # nested, dictionary, view types: canonical schemas have none; IPC bytes are exact, if slower
        update(pa.RecordBatch.from_arrays([array], ["c"]).serialize())


def _bits(buffer: pa.Buffer, offset: int, n: int) -> pa.Buffer:
    return buffer[offset // 8 : (offset + n + 7) // 8]


def _fixed_width(kind: pa.DataType) -> bool:
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_temporal(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_fixed_size_binary(kind)
    )


def _is_large_binary(kind: pa.DataType) -> bool:
    return pa.types.is_large_string(kind) or pa.types.is_large_binary(kind)
