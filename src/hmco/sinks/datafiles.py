"""Data files of an Iceberg table written from Arrow: split by partition, zstd Parquet with field ids.

The Iceberg sink (and compaction's tests and benchmarks) write through :func:`write_data_files`, then
register the paths with ``add_files`` in their own commit; nothing here touches table metadata.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from pyiceberg.table import Table

__all__ = ["discard", "split_by_partition", "write_data_files"]


def split_by_partition(tbl: Table, table: pa.Table) -> list[pa.Table]:
    """Slices of ``table``, one per partition of ``tbl``'s spec: one sort instead of one scan per partition.

    pyiceberg's own writer filters the whole batch once per partition (O(partitions × rows)); sorting
    once on integer partition codes keeps many-partition batches (a backfill of days × ISOs) fast.
    """
    spec = tbl.spec()
    if spec.is_unpartitioned() or table.num_rows == 0:
        return [table]
    schema = tbl.schema()
    codes: list[np.ndarray] = []
    for field in spec.fields:
        source = schema.find_field(field.source_id)
        values = field.transform.pyarrow_transform(source.field_type)(table.column(source.name))
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        encoded = pc.dictionary_encode(values, null_encoding="encode")
        codes.append(encoded.indices.to_numpy(zero_copy_only=False))
    if all(len(c) == 0 or (c == c[0]).all() for c in codes):
        return [table]
    order = np.lexsort(codes[::-1])
    keys = np.stack([c[order] for c in codes])
    cuts = (np.flatnonzero((keys[:, 1:] != keys[:, :-1]).any(axis=0)) + 1).tolist()
    ordered = table.take(pa.array(order))
    bounds = [0, *cuts, table.num_rows]
    return [ordered.slice(a, b - a) for a, b in itertools.pairwise(bounds)]


def write_data_files(tbl: Table, table: pa.Table, batch_id: str, *, max_rows: int = 1_000_000) -> list[str]:
    """Write ``table`` as zstd Parquet data files of ``tbl`` (one or more per partition, in parallel).

    Files carry Iceberg field ids and land where the table's location provider says; the caller
    registers them with ``add_files`` in the same transaction as the window's delete.
    """
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    if table.num_rows == 0:
        return []
    pieces = [
        piece.slice(offset, max_rows)
        for piece in split_by_partition(tbl, table)
        for offset in range(0, piece.num_rows, max_rows)
    ]
    codec = tbl.properties.get("write.parquet.compression-codec", "zstd")
    level = tbl.properties.get("write.parquet.compression-level")
    provider = tbl.location_provider()
    stem = f"{batch_id}-{uuid.uuid4().hex[:12]}"
    paths = [provider.new_data_location(f"{stem}-{i:05d}.parquet") for i in range(len(pieces))]

    def write(i: int) -> None:
        with tbl.io.new_output(paths[i]).create(overwrite=True) as out:
            pq.write_table(
                pieces[i],
                out,
                compression=codec,
                compression_level=int(level) if level else None,
                row_group_size=1_048_576,
            )

    try:
        with ThreadPoolExecutor(max_workers=min(4, len(pieces))) as pool:
            list(pool.map(write, range(len(pieces))))
    except Exception:
        discard(tbl, paths)
        raise
    return paths


def discard(tbl: Table, paths: Sequence[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):  # best-effort cleanup of files only this attempt wrote
            tbl.io.delete(path)
