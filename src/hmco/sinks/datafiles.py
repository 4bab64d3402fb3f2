"""Data files of an Iceberg table written from Arrow: split by partition, zstd Parquet with field ids.

The Iceberg sink (and compaction's tests and benchmarks) write through :func:`write_data_files`, then
register the paths with ``add_files`` in their own commit; nothing here touches table metadata.

Batches usually arrive grouped by partition (a window of one day and one ISO is one partition; a
multi-day batch is parsed day by day), so the split finds runs of equal partition values and slices
them without copying; only a batch whose partitions interleave row by row is sorted and gathered.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hmco.errors import SchemaError, SinkError

if TYPE_CHECKING:
    from pyiceberg.partitioning import PartitionKey, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table

__all__ = [
    "PartitionSlice",
    "discard",
    "parquet_options",
    "partition_slices",
    "partition_values",
    "split_by_partition",
    "with_field_ids",
    "write_data_files",
]

#: A batch with more runs of equal partition values than ``max(FEW_RUNS, rows / MIN_MEAN_RUN)`` is
#: sorted instead of sliced: slicing costs per run (tens of µs, plus per-chunk work in the Parquet
#: writer), gathering costs per row (about 0.3 µs), so runs shorter than ~300 rows favour the gather.
MIN_MEAN_RUN = 1024
FEW_RUNS = 64
#: Rows sampled to decide which columns are worth dictionary-encoding.
DICTIONARY_SAMPLE = 16_384

_MICROS = {"day": 86_400_000_000, "hour": 3_600_000_000}


@dataclass(frozen=True)
class PartitionSlice:
    """The rows of one partition of a batch, with the key that names its path (None: unpartitioned).

    ``rows`` is either the batch itself, a zero-copy slice (or concatenation of slices) of it, or
    — for an interleaved batch — ``indices`` into it, gathered only when the slice is materialised.
    """

    key: PartitionKey | None
    rows: pa.Table
    indices: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        return self.rows.num_rows if self.indices is None else len(self.indices)

    def part(self, start: int, length: int) -> PartitionSlice:
        """Rows ``start`` to ``start + length`` of this slice (for splitting it into several files)."""
        if self.indices is None:
            return PartitionSlice(self.key, self.rows.slice(start, length))
        return PartitionSlice(self.key, self.rows, self.indices[start : start + length])

    def table(self) -> pa.Table:
        """The slice's rows as a table (a gather for an interleaved batch, else no copy)."""
        return self.rows if self.indices is None else self.rows.take(pa.array(self.indices))


def split_by_partition(tbl: Table, table: pa.Table) -> list[pa.Table]:
    """Slices of ``table``, one per partition of ``tbl``'s spec, each in the batch's row order."""
    return [piece.table() for piece in partition_slices(tbl, table)]


def partition_slices(tbl: Table, table: pa.Table) -> list[PartitionSlice]:
    """One :class:`PartitionSlice` per partition of ``tbl``'s spec present in ``table``, in first-seen order.

    pyiceberg's own writer filters the whole batch once per partition (O(partitions × rows)). Here a
    batch grouped by partition (each key in one contiguous run, or in a few long runs) is cut at the
    run boundaries without copying; an interleaved one is stable-sorted on integer partition codes.
    """
    spec, schema = tbl.spec(), tbl.schema()
    if spec.is_unpartitioned() or table.num_rows == 0:
        return [PartitionSlice(None, table)]
    values = partition_values(tbl, table)
    starts = _run_starts(values)
    if len(starts) == 1:
        return [PartitionSlice(_key(spec, schema, values, 0), table)]
    if len(starts) <= max(FEW_RUNS, table.num_rows // MIN_MEAN_RUN):
        return _slices_of_runs(spec, schema, table, values, starts)
    return _slices_by_sorting(spec, schema, table, values)


def partition_values(tbl: Table, table: pa.Table) -> list[pa.Array]:
    """Each partition field's transformed value for every row of ``table`` (e.g. the day of ``ts``).

    ``day`` and ``hour`` of a microsecond timestamp are an integer floor division of its epoch value;
    every other transform is pyiceberg's own vectorised one.
    """
    from pyiceberg.transforms import DayTransform, HourTransform
    from pyiceberg.types import TimestampType, TimestamptzType

    schema = tbl.schema()
    out = []
    for field in tbl.spec().fields:
        source = schema.find_field(field.source_id)
        column = table.column(source.name).combine_chunks()
        if (
            isinstance(field.transform, DayTransform | HourTransform)
            and isinstance(source.field_type, TimestampType | TimestamptzType)
            and pa.types.is_timestamp(column.type)
            and column.type.unit == "us"
            and column.null_count == 0
        ):
            micros = column.cast(pa.int64()).to_numpy()
            unit = _MICROS["day" if isinstance(field.transform, DayTransform) else "hour"]
            out.append(pa.array(np.floor_divide(micros, unit).astype(np.int32)))
        else:
            values = field.transform.pyarrow_transform(source.field_type)(column)
            out.append(values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values)
    return out


def _run_starts(values: Sequence[pa.Array]) -> np.ndarray:
    """Row numbers where any partition value differs from the row before (always starting with 0)."""
    n = len(values[0])
    changed: pa.Array | None = None
    for v in values:
        after, before = v.slice(1), v.slice(0, n - 1)
        ne = pc.not_equal(after, before)
        if v.null_count:  # null next to null is no change; null next to a value is
            both_null = pc.and_(pc.is_null(after), pc.is_null(before))
            ne = pc.if_else(both_null, False, pc.fill_null(ne, True))
        changed = ne if changed is None else pc.or_(changed, ne)
    assert changed is not None
    return np.concatenate([[0], pc.indices_nonzero(changed).to_numpy().astype(np.int64) + 1])


def _slices_of_runs(
    spec: PartitionSpec, schema: Schema, table: pa.Table, values: Sequence[pa.Array], starts: np.ndarray
) -> list[PartitionSlice]:
    """Group runs by partition: one run is a slice, several runs of one key a concatenation of slices."""
    run_starts = pa.array(starts)
    codes = [_codes(v.take(run_starts)) for v in values]
    runs: dict[tuple[int, ...], list[int]] = {}
    for run, key in enumerate(zip(*codes, strict=True)):
        runs.setdefault(key, []).append(run)
    bounds = [*starts.tolist(), table.num_rows]
    slices = []
    for members in runs.values():
        parts = [table.slice(bounds[r], bounds[r + 1] - bounds[r]) for r in members]
        rows = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        slices.append(PartitionSlice(_key(spec, schema, values, bounds[members[0]]), rows))
    return slices


def _slices_by_sorting(
    spec: PartitionSpec, schema: Schema, table: pa.Table, values: Sequence[pa.Array]
) -> list[PartitionSlice]:
    """Stable-sort row numbers on one integer key built from the fields' dictionary codes."""
    codes = [_codes(v) for v in values]
    sizes = [int(c.max()) + 1 for c in codes]
    if np.prod(sizes, dtype=float) < 2**62:
        key = np.zeros(len(codes[0]), np.int64)
        for c, size in zip(codes, sizes, strict=True):
            key = key * size + c
        small = np.prod(sizes, dtype=float) <= 2**16  # numpy radix-sorts 16-bit keys: O(rows)
        order = np.argsort(key.astype(np.uint16) if small else key, kind="stable")
        ordered = key[order]
        cuts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    else:
        order = np.lexsort(codes[::-1])
        keys = np.stack([c[order] for c in codes])
        cuts = np.flatnonzero((keys[:, 1:] != keys[:, :-1]).any(axis=0)) + 1
    bounds = [0, *cuts.tolist(), len(order)]
    slices = [
        PartitionSlice(_key(spec, schema, values, int(order[a])), table, order[a:b])
        for a, b in itertools.pairwise(bounds)
    ]
    return sorted(slices, key=lambda s: int(s.indices[0]) if s.indices is not None else 0)


def _codes(values: pa.Array) -> np.ndarray:
    """Dense integer codes of ``values`` (nulls and NaNs each one code), in first-seen order."""
    encoded = pc.dictionary_encode(values, null_encoding="encode")
    return encoded.indices.to_numpy(zero_copy_only=False)


def _key(spec: PartitionSpec, schema: Schema, values: Sequence[pa.Array], row: int) -> PartitionKey:
    from pyiceberg.partitioning import PartitionFieldValue, PartitionKey

    fields = [PartitionFieldValue(f, v[row].as_py()) for f, v in zip(spec.fields, values, strict=True)]
    return PartitionKey(field_values=fields, partition_spec=spec, schema=schema)


# --- writing -------------------------------------------------------------------------------------------


def write_data_files(tbl: Table, table: pa.Table, batch_id: str, *, max_rows: int = 1_000_000) -> list[str]:
    """Write ``table`` as Parquet data files of ``tbl``: ceil(rows / max_rows) files per partition.

    Files carry Iceberg field ids, land where the table's location provider puts the partition, and
    use the table's codec (zstd by default) and row-group limit; they are written on a thread pool
    sized to the cores (Parquet encoding releases the GIL). If any write fails, every file this call
    wrote is deleted before the error propagates. The caller registers the paths with ``add_files``.

    Raises:
        SchemaError: the batch does not fit the table's schema (names the column and table).
        SinkError: a file could not be written (names the file and table).
    """
    if table.num_rows == 0:
        return []
    rows = with_field_ids(tbl, table)
    pieces = [
        piece.part(start, length)
        for piece in partition_slices(tbl, rows)
        for start, length in _even_parts(piece.num_rows, max_rows)
    ]
    provider = tbl.location_provider()
    stem = f"{batch_id}-{uuid.uuid4().hex[:12]}"
    paths = [provider.new_data_location(f"{stem}-{i:05d}.parquet", p.key) for i, p in enumerate(pieces)]
    options = parquet_options(tbl, rows)

    def write(i: int) -> None:
        import pyarrow.parquet as pq

        try:
            with tbl.io.new_output(paths[i]).create(overwrite=True) as out:
                pq.write_table(pieces[i].table(), out, **options)
        except Exception as exc:
            raise SinkError(f"cannot write data file {paths[i]} of {'.'.join(tbl.name())}: {exc}") from exc

    # Largest first keeps the pool busy to the end (and the smallest, quickest files last).
    order = sorted(range(len(pieces)), key=lambda i: -pieces[i].num_rows)
    try:
        _run_all(write, order, workers=min(len(pieces), pa.cpu_count()))
    except BaseException:
        discard(tbl, paths)
        raise
    return paths


def with_field_ids(tbl: Table, table: pa.Table) -> pa.Table:
    """``table`` in ``tbl``'s current schema: columns by name, cast where the type differs, with field ids.

    Absent nullable columns become nulls; an absent required column, a null in one, or a failed cast
    is a SchemaError (before any file is written).
    """
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    target = schema_to_pyarrow(tbl.schema(), include_field_ids=True)
    columns = []
    for field in target:
        if field.name not in table.column_names:
            if not field.nullable:
                raise SchemaError(f"{'.'.join(tbl.name())}: the batch lacks required column {field.name!r}")
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        if not column.type.equals(field.type):
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(
                    f"{'.'.join(tbl.name())}: column {field.name!r} is {column.type} in the batch and cannot "
                    f"be written as {field.type}: {exc}"
                ) from exc
        if not field.nullable and column.null_count:
            raise SchemaError(
                f"{'.'.join(tbl.name())}: required column {field.name!r} has {column.null_count} null(s) in the batch"
            )
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=target)


def _even_parts(rows: int, max_rows: int) -> list[tuple[int, int]]:
    """(start, length) of ceil(rows / max_rows) parts of nearly equal size."""
    count = max(1, -(-rows // max_rows))
    bounds = [rows * i // count for i in range(count + 1)]
    return [(a, b - a) for a, b in itertools.pairwise(bounds)]


def parquet_options(tbl: Table, table: pa.Table) -> dict[str, Any]:
    """``pq.write_table`` options for ``table`` from ``tbl``'s write properties (Arrow's defaults where unset).

    Codec and level, row-group limit, page and dictionary sizes come from the table; dictionary
    encoding is chosen per column from a sample of ``table`` (see :func:`_dictionary_columns`).
    """
    from pyiceberg.table import TableProperties as P
    from pyiceberg.utils.properties import property_as_int

    props = tbl.properties
    options: dict[str, Any] = {
        "compression": props.get(P.PARQUET_COMPRESSION, P.PARQUET_COMPRESSION_DEFAULT),
        "compression_level": property_as_int(props, P.PARQUET_COMPRESSION_LEVEL),
        "row_group_size": property_as_int(
            props, P.PARQUET_ROW_GROUP_LIMIT, P.PARQUET_ROW_GROUP_LIMIT_DEFAULT
        ),
        "data_page_size": property_as_int(props, P.PARQUET_PAGE_SIZE_BYTES),
        "dictionary_pagesize_limit": property_as_int(props, P.PARQUET_DICT_SIZE_BYTES),
        "use_dictionary": _dictionary_columns(table),
    }
    if options["compression"] == "uncompressed":
        options["compression"] = "none"
    return options


def _dictionary_columns(table: pa.Table) -> list[str] | bool:
    """Columns whose values repeat (in an evenly spaced sample) enough for a dictionary to pay.

    Arrow dictionary-encodes every column until the dictionary outgrows its page limit, per row group;
    on nearly unique doubles that hashing is wasted work (twice the encode time of small files) and,
    after zstd, the files come out no smaller than plain encoding.
    """
    if any(pa.types.is_nested(f.type) for f in table.schema):
        return True
    n = table.num_rows
    sample = table
    if n > DICTIONARY_SAMPLE:
        sample = table.take(pa.array(np.linspace(0, n - 1, DICTIONARY_SAMPLE, dtype=np.int64)))
    size = sample.num_rows
    return [
        name
        for name, column in zip(sample.column_names, sample.columns, strict=True)
        if pc.count_distinct(column, mode="all").as_py() * 2 <= size
    ]


def _run_all(write: Callable[[int], None], order: Sequence[int], *, workers: int) -> None:
    """Call ``write(i)`` for each ``i``; on the first failure cancel what has not started, wait, re-raise."""
    if workers <= 1:
        for i in order:
            write(i)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hmco-datafile") as pool:
        futures: list[Future[None]] = [pool.submit(write, i) for i in order]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def discard(tbl: Table, paths: Sequence[str]) -> None:
    """Delete ``paths`` (files only this attempt wrote), ignoring the ones that were never created."""
    for path in paths:
        with contextlib.suppress(OSError):
            tbl.io.delete(path)
