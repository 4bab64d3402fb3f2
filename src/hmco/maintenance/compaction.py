"""Compaction: bin-pack a table's small data files, partition by partition, into files of a target size.

The real-time lake copy adds one small file per poll, and planning and scans slow down with the file
count. :func:`compact` rewrites them on the embedded engine (pyiceberg + pyarrow), partition by partition:

1. **Plan.** The current snapshot's live data files are grouped by partition. A file under 3/4 of
   ``target_file_size`` is *small*. A partition is left ``unchanged`` when it has fewer than
   ``min_input_files`` small files or rewriting would not reduce its file count; also when it holds
   delete files (merge-on-read deletes written by Trino or Spark: compact those with the Trino engine)
   or its files were written under an older partition spec.
2. **Rewrite.** The small files are split into bins of about ``target_file_size`` on-disk bytes
   (compacted files compress better than the small ones, so outputs come out at or under the target).
   One bin at a time is read (the files fetched whole from threads, their footers checked, and those
   that match the table's schema decoded together by polars' Parquet reader; the rest by pyarrow, or
   by pyiceberg's projection after a schema change), sorted by the table's sort order and written as
   one Parquet file with the table's codec and Iceberg field ids. Memory is bounded by one bin per worker (``workers``, default 2,
   rewrite the next partitions while one commits), not by the partition or the table.
3. **Verify.** The written files are read back (by pyarrow). Their row count and content checksum must equal those of
   the files read, and the row count the manifests record for those files. Otherwise the outputs are
   deleted, the partition is reported ``skipped`` and the report carries an error.
4. **Commit.** One ``overwrite`` snapshot per partition deletes exactly the files read and adds exactly the
   files written (pyiceberg's overwrite producer with explicit files). Table properties, and with them
   hmco's state (:mod:`hmco.lake.state`), are left as they are; the snapshot carries no hmco keys, so
   ``newest_watermark`` walks past it. The catalog's compare-and-swap refuses a commit built on a stale
   snapshot: the table is then refreshed and, if every file read is still live, the commit is retried (a
   file another writer appended meanwhile is kept, since it is not among the files replaced). If a
   concurrent window replace removed any of them, the outputs are deleted and the partition is reported
   ``skipped``. Either way no row another writer committed is lost or duplicated. (The snapshot's
   operation is ``overwrite``, not the spec's ``replace``: pyiceberg 0.12 summarises only append,
   overwrite and delete; readers of the table are unaffected, incremental readers see an overwrite.)

**Checksum.** The content checksum (:func:`content_checksum`) of a set of rows is the pair (row count,
sum of a 64-bit hash of every row modulo 2**64); the row hash is polars' ``DataFrame.hash_rows`` over all
columns of the table's schema, in order. A sum does not depend on row order (sorting does not change it)
but counts multiplicity (a lost or duplicated row changes it), and it adds up over bins. polars' row hash
is stable within one polars version; both sides are computed in the same process, on Arrow tables of the
same schema (the rows read, and the rows read back), so they are comparable.

**Crashes.** Files are written before the commit that references them. A process killed before or during
the commit leaves only files no snapshot references, which :func:`~hmco.maintenance.orphans.remove_orphan_files`
removes after its safety horizon; outputs of an attempt that does not commit are deleted at once (best effort).
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from hmco._logging import get_logger
from hmco.maintenance.files import finish_report, start_report, table_name
from hmco.maintenance.report import ActionReport

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.locations import LocationProvider
    from pyiceberg.table.sorting import SortOrder
    from pyiceberg.typedef import Record

__all__ = ["DEFAULT_TARGET_FILE_SIZE", "SMALL_FILE_FRACTION", "Checksum", "compact", "content_checksum"]

log = get_logger("hmco.maintenance")

#: Iceberg's usual target: 128 MiB of Parquet per data file.
DEFAULT_TARGET_FILE_SIZE = 128 * 1024**2

#: A data file under this fraction of the target is small (Iceberg's ``min-file-size-bytes`` default).
SMALL_FILE_FRACTION = 0.75

#: Threads reading one bin's small files (object stores are latency-bound: more than the cores).
READ_THREADS = 8

_FIELD_ID = b"PARQUET:field_id"
_HASH_SEED = 0x484D434F  # "HMCO"
_PER_KEY_NULLS = int(pa.__version__.split(".")[0]) >= 25  # sort keys carry their own null placement


@dataclass(frozen=True)
class Checksum:
    """Row count and order-independent content hash of a set of rows (see the module docstring)."""

    rows: int = 0
    value: int = 0

    def __add__(self, other: Checksum) -> Checksum:
        return Checksum(self.rows + other.rows, (self.value + other.value) % 2**64)


def content_checksum(table: pa.Table) -> Checksum:
    """The :class:`Checksum` of ``table``'s rows: count, and the sum of per-row 64-bit hashes mod 2**64."""
    import polars as pl

    if table.num_rows == 0:
        return Checksum()
    hashes = pl.from_arrow(table).hash_rows(seed=_HASH_SEED).to_numpy()  # type: ignore[union-attr]
    return Checksum(table.num_rows, int(hashes.sum(dtype=np.uint64)))


@dataclass
class _Partition:
    spec_id: int
    partition: Record
    path: str
    files: list[DataFile] = field(default_factory=list)
    has_deletes: bool = False


@dataclass(frozen=True)
class _Layout:
    """What every rewrite writes by, read once from the table as planned."""

    schema: Schema
    arrow: pa.Schema  # the schema as Arrow, with Iceberg field ids
    properties: dict[str, str]
    sort_order: SortOrder
    location_provider: LocationProvider
    reader: FileIO  # pyarrow's filesystems, whatever FileIO the catalog configured (see ``of``)

    @classmethod
    def of(cls, tbl: Table) -> _Layout:
        from pyiceberg.io.pyarrow import PyArrowFileIO, schema_to_pyarrow

        schema = tbl.schema()
        return cls(
            schema=schema,
            arrow=schema_to_pyarrow(schema, include_field_ids=True),
            properties=dict(tbl.properties),
            sort_order=tbl.sort_order(),
            location_provider=tbl.location_provider(),
            # Small files are read through pyarrow's own filesystems: on S3 its C++ client fetches many
            # small objects from threads ~5x faster than s3fs (measured on SeaweedFS).
            reader=tbl.io if isinstance(tbl.io, PyArrowFileIO) else PyArrowFileIO(dict(tbl.io.properties)),
        )


@dataclass
class _Rewrite:
    """One partition's rewrite: the files it reads, the files it wrote, the checksum of what it read."""

    part: _Partition
    bins: list[list[DataFile]]
    detail: dict[str, Any]
    outputs: list[DataFile] = field(default_factory=list)
    read: Checksum = Checksum()

    @property
    def inputs(self) -> list[DataFile]:
        return [f for b in self.bins for f in b]

    @property
    def locations(self) -> list[str]:
        return [f.file_path for f in self.outputs]


def compact(
    tbl: Table,
    *,
    target_file_size: int = DEFAULT_TARGET_FILE_SIZE,
    min_input_files: int = 2,
    partitions: str | BooleanExpression | None = None,
    dry_run: bool = False,
    max_attempts: int = 3,
    workers: int = 2,
    on_written: Callable[[list[str]], None] | None = None,
) -> ActionReport:
    """Bin-pack the small data files of ``tbl`` per partition into sorted files of ``target_file_size``.

    Args:
        tbl: the table (refreshed first).
        target_file_size: the wanted size of a data file, in Parquet bytes.
        min_input_files: a partition with fewer small files than this is left as it is.
        partitions: a row filter (pyiceberg expression or string, e.g. ``"iso = 'CAISO'"``): only the
            partitions holding files that match it are compacted (all of their small files).
        dry_run: plan only; ``details`` lists the partitions that would be rewritten (status ``planned``).
        max_attempts: commit attempts per partition while concurrent commits leave its files live.
        workers: partitions rewritten at the same time (commits stay one at a time, in partition
            order); memory is bounded by this many bins of ``target_file_size``.
        on_written: called with the locations of a partition's output files once they are all written,
            before they are verified and committed (progress; crash and fault tests). With more than one
            worker it is called from the worker's thread.

    Returns:
        The report, with one ``details`` item per partition: ``{"partition", "files_in", "files_out",
        "rows", "bytes_in", "bytes_out", "status", "reason", "attempts"}``. ``status`` is ``rewritten``;
        ``skipped`` (a concurrent commit replaced files it read, conflicts outlasted ``max_attempts``, or
        the rewrite or its verification failed: then ``error`` is set too); ``failed`` (the catalog did not
        say whether the commit landed: the run stops, ``error`` is set); ``unchanged``; or, in a dry run,
        ``planned``. ``files_in``/``bytes_in``/``rows`` count the files read and replaced.
    """
    if target_file_size <= 0:
        raise ValueError(f"target_file_size must be positive, not {target_file_size}")
    tbl.refresh()
    report, started = start_report(tbl, "compact", dry_run=dry_run)
    layout = _Layout.of(tbl)
    rewrites: list[_Rewrite] = []
    for part in _plan(tbl, partitions):
        small = sorted(
            (f for f in part.files if f.file_size_in_bytes < SMALL_FILE_FRACTION * target_file_size),
            key=lambda f: f.file_path,
        )
        bins = _bins(small, target_file_size)
        reason = _unchanged_reason(tbl, part, small, bins, min_input_files)
        chosen = small if reason is None else part.files  # unchanged: what goes in comes out
        detail: dict[str, Any] = {
            "partition": part.path,
            "files_in": len(chosen),
            "files_out": len(bins) if reason is None else len(chosen),
            "rows": sum(f.record_count for f in chosen),
            "bytes_in": sum(f.file_size_in_bytes for f in chosen),
            "bytes_out": 0 if reason is None else sum(f.file_size_in_bytes for f in chosen),
            "status": "unchanged" if reason is not None else "planned",
            "reason": reason,
            "attempts": 0,
        }
        report.details.append(detail)
        if reason is None and not dry_run:
            rewrites.append(_Rewrite(part, bins, detail))
    errors = _run(tbl, layout, rewrites, max(workers, 1), max_attempts, on_written)
    if errors:
        report.error = "; ".join(errors)
    rewritten = [d for d in report.details if d["status"] == "rewritten"]
    log.info(
        "compacted %s: %d partition(s) rewritten (%d → %d files), %d skipped",
        table_name(tbl),
        len(rewritten),
        sum(d["files_in"] for d in rewritten),
        sum(d["files_out"] for d in rewritten),
        sum(1 for d in report.details if d["status"] in ("skipped", "failed")),
    )
    return finish_report(report, None if dry_run else tbl, started)


# --- planning ------------------------------------------------------------------------------------


def _plan(tbl: Table, partitions: str | BooleanExpression | None) -> list[_Partition]:
    """The current snapshot's live data files grouped by partition, ordered by partition path."""
    schema = tbl.schema()
    specs = tbl.specs()
    groups: dict[tuple[int, Record], _Partition] = {}
    for task in tbl.scan().plan_files():
        data_file = task.file
        key = (data_file.spec_id, data_file.partition)
        part = groups.get(key)
        if part is None:
            path = (
                specs[data_file.spec_id].partition_to_path(data_file.partition, schema) or "(unpartitioned)"
            )
            part = groups[key] = _Partition(data_file.spec_id, data_file.partition, path)
        part.files.append(data_file)
        part.has_deletes = part.has_deletes or bool(task.delete_files)
    if partitions is not None:
        wanted = {(t.file.spec_id, t.file.partition) for t in tbl.scan(row_filter=partitions).plan_files()}
        groups = {k: v for k, v in groups.items() if k in wanted}
    return sorted(groups.values(), key=lambda p: (p.spec_id, p.path))


def _bins(files: Sequence[DataFile], target: int) -> list[list[DataFile]]:
    """``files`` cut into consecutive bins of about ``target`` bytes each (and at most that many bins)."""
    total = sum(f.file_size_in_bytes for f in files)
    if not files:
        return []
    count = max(1, math.ceil(total / target))
    bins: list[list[DataFile]] = [[] for _ in range(count)]
    offset = 0
    for f in files:
        bins[min(offset * count // max(total, 1), count - 1)].append(f)
        offset += f.file_size_in_bytes
    return [b for b in bins if b]


def _unchanged_reason(
    tbl: Table, part: _Partition, small: list[DataFile], bins: list[list[DataFile]], min_input_files: int
) -> str | None:
    if part.has_deletes:
        return "holds delete files (merge-on-read); compact it with the Trino engine"
    if part.spec_id != tbl.spec().spec_id:
        return f"written under partition spec {part.spec_id}, not the current one"
    if len(small) < max(min_input_files, 1):
        return f"{len(small)} small file(s), fewer than min_input_files={min_input_files}"
    if len(bins) >= len(small):
        return "rewriting would not reduce the file count"
    return None


# --- rewriting -----------------------------------------------------------------------------------


def _run(
    tbl: Table,
    layout: _Layout,
    rewrites: list[_Rewrite],
    workers: int,
    max_attempts: int,
    on_written: Callable[[list[str]], None] | None,
) -> list[str]:
    """Rewrite the partitions and commit each in turn, in plan order; returns the errors.

    One worker rewrites and commits one partition after the other. More workers rewrite the next
    partitions while the current one commits (the commits themselves stay one at a time, here).
    """
    errors: list[str] = []
    with contextlib.ExitStack() as stack:
        prepared: Iterator[Callable[[], str | None]]
        pending: list[Future[str | None]] = []
        if workers <= 1 or len(rewrites) <= 1:
            prepared = (functools.partial(_prepare, tbl, layout, r, on_written) for r in rewrites)
        else:
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compact"))
            pending = [pool.submit(_prepare, tbl, layout, r, on_written) for r in rewrites]
            prepared = (f.result for f in pending)
        for i, (rewrite, result) in enumerate(zip(rewrites, prepared, strict=True)):
            detail = rewrite.detail
            try:
                mismatch = result()
            except Exception as exc:  # storage, a file that cannot be read: this partition only
                detail.update(status="skipped", reason=f"rewrite failed: {type(exc).__name__}: {exc}")
            else:
                if mismatch is not None:
                    _discard(tbl, rewrite.locations)
                    detail.update(status="skipped", reason=f"verification failed: {mismatch}")
                else:
                    try:
                        status, reason, attempts = _commit(tbl, rewrite, max_attempts)
                    except Exception as exc:  # it may have landed: keep its files (the orphan sweep decides)
                        detail.update(
                            status="failed", reason=f"commit outcome unknown: {type(exc).__name__}: {exc}"
                        )
                        _abandon(tbl, rewrites[i + 1 :], pending[i + 1 :])
                    else:
                        detail.update(status=status, reason=reason, attempts=attempts)
                        if status != "rewritten":
                            _discard(tbl, rewrite.locations)
                            log.warning(
                                "compaction of %s skipped %s: %s", table_name(tbl), rewrite.part.path, reason
                            )
                        continue
            log.error("compaction of %s %s: %s", table_name(tbl), rewrite.part.path, detail["reason"])
            errors.append(f"{rewrite.part.path}: {detail['reason']}")
            if detail["status"] == "failed":
                break
    return errors


def _abandon(tbl: Table, rewrites: list[_Rewrite], pending: list[Future[str | None]]) -> None:
    """Stop the rewrites not committed yet, delete what they wrote and report them skipped."""
    for future in pending:
        future.cancel()
    for j, rewrite in enumerate(rewrites):
        if j < len(pending):
            with contextlib.suppress(Exception):
                pending[j].result()
        _discard(tbl, rewrite.locations)
        rewrite.detail.update(
            status="skipped", reason="not attempted: an earlier commit's outcome is unknown"
        )


def _prepare(
    tbl: Table, layout: _Layout, rewrite: _Rewrite, on_written: Callable[[list[str]], None] | None
) -> str | None:
    """Write and verify one partition's files (a worker's part); returns a verification mismatch or None.

    On an exception the files written so far are deleted before it propagates.
    """
    try:
        _write_bins(tbl, layout, rewrite)
        rewrite.detail["bytes_out"] = sum(f.file_size_in_bytes for f in rewrite.outputs)
        if on_written is not None:
            on_written(rewrite.locations)
        return _verify(tbl, layout, rewrite)
    except BaseException:
        _discard(tbl, rewrite.locations)
        raise


def _write_bins(tbl: Table, layout: _Layout, rewrite: _Rewrite) -> None:
    """Read, checksum, sort and write each bin in turn (one bin in memory at a time)."""
    stem = f"compact-{uuid.uuid4().hex[:12]}"
    for i, files in enumerate(rewrite.bins):
        rows = _read_files(tbl, layout, files)
        rewrite.read = rewrite.read + content_checksum(rows)
        rows = _sort(layout, rows)
        location = layout.location_provider.new_data_location(f"{stem}-{i:05d}.parquet")
        rewrite.outputs.append(_write_file(tbl, layout, rows, location, rewrite.part))
        del rows


def _verify(tbl: Table, layout: _Layout, rewrite: _Rewrite) -> str | None:
    """None when the written files hold exactly the rows read; else what differs."""
    expected_rows = sum(f.record_count for f in rewrite.inputs)
    if rewrite.read.rows != expected_rows:
        return f"read {rewrite.read.rows} rows from files whose manifests record {expected_rows}"
    written = Checksum()
    for output in rewrite.outputs:
        written = written + content_checksum(_read_files(tbl, layout, [output]))
    if written.rows != rewrite.read.rows:
        return f"wrote {written.rows} rows, read {rewrite.read.rows}"
    if written.value != rewrite.read.value:
        return f"content checksum {written.value:#018x} written, {rewrite.read.value:#018x} read"
    return None


def _read_files(tbl: Table, layout: _Layout, files: Sequence[DataFile]) -> pa.Table:
    """The rows of ``files`` in the layout's schema (with field ids), in file order, one chunk per column.

    The files are fetched and their footers checked from threads. Consecutive files that can be read
    directly with the same columns are then decoded together by polars' Parquet reader (one call, on its
    own threads: about a third of the CPU of one pyarrow read per file, which for a small file is mostly
    per-column set-up); the others one by one (see ``_read_file``).
    """
    if len(files) == 1:
        return _read_file(tbl, layout, files[0])
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(files))) as pool:
        fetched = list(pool.map(lambda f: _fetch(layout, f), files))
    parts: list[pa.Table] = []
    run: list[_Fetched] = []
    for data_file, item in zip(files, fetched, strict=True):
        if item.columns is None:  # renamed, promoted or nested columns, no field ids: pyiceberg projects it
            parts.extend(_decode_run(layout, run))
            run = []
            parts.append(_read_projected(tbl, layout, data_file))
        else:
            if run and (run[0].columns != item.columns or not run[0].schema.equals(item.schema)):
                parts.extend(_decode_run(layout, run))
                run = []
            run.append(item)
    parts.extend(_decode_run(layout, run))
    del fetched, run
    if len(parts) == 1 and all(c.num_chunks == 1 for c in parts[0].columns):
        return parts[0]
    # One chunk per column: hashing, sorting and taking many small chunks costs more than this copy.
    return pa.concat_tables(parts).combine_chunks()


@dataclass(frozen=True)
class _Fetched:
    """A data file's bytes, its Arrow schema, and the columns to read it directly by (see ``_direct_columns``)."""

    body: bytes
    schema: pa.Schema
    columns: tuple[str | None, ...] | None


def _fetch(layout: _Layout, data_file: DataFile) -> _Fetched:
    """Fetch a data file whole and read its footer."""
    import pyarrow.parquet as pq

    # Every column is wanted, so the whole object is fetched at once (one GET on S3, not one per column
    # chunk); a small file is what compaction reads, and a bin bounds the total.
    with layout.reader.new_input(data_file.file_path).open(seekable=False) as stream:
        body = stream.read()
    schema = pq.read_schema(pa.BufferReader(body))
    columns = _direct_columns(schema, layout.arrow)
    return _Fetched(body, schema, None if columns is None else tuple(columns))


def _decode_run(layout: _Layout, run: Sequence[_Fetched]) -> list[pa.Table]:
    """Files of the same schema, read directly: by polars in one call when the types round-trip through it
    exactly, else one by one by pyarrow."""
    if not run:
        return []
    if len(run) > 1 and _polars_reads(layout.arrow):
        table = _decode_polars(layout, run)
        if table is not None:
            return [table]
    return [_decode_pyarrow(layout, item, use_threads=False) for item in run]


def _polars_reads(target: pa.Schema) -> bool:
    """Whether every column's type is one polars reads and hands back as the same Arrow type (the types a
    table of flat Iceberg primitives has, but decimal, time, uuid, fixed and binary: those go through pyarrow)."""
    exact = (pa.bool_(), pa.int32(), pa.int64(), pa.float32(), pa.float64(), pa.date32(), pa.large_string())
    return all(
        f.type in exact
        or (pa.types.is_timestamp(f.type) and f.type.unit in ("us", "ns") and f.type.tz in (None, "UTC"))
        for f in target
    )


def _decode_polars(layout: _Layout, run: Sequence[_Fetched]) -> pa.Table | None:
    """``run`` decoded by polars and handed back as Arrow in the layout's schema; None when polars cannot read
    it or hands back other types (then pyarrow reads it)."""
    import polars as pl

    target, columns = layout.arrow, run[0].columns
    assert columns is not None
    present = [c for c in columns if c is not None]
    if not present:
        return None
    try:
        sources: list[IO[bytes]] = [io.BytesIO(item.body) for item in run]  # shares the bytes, no copy
        frame = pl.read_parquet(sources, columns=present)
        data = frame.rechunk().to_arrow(compat_level=pl.CompatLevel.oldest())
    except pl.exceptions.PolarsError as exc:
        log.debug("polars could not read %d file(s) (%s); pyarrow reads them", len(run), exc)
        return None
    del frame
    arrays = []
    for name, f in zip(columns, target, strict=True):
        if name is None:
            arrays.append(pa.nulls(data.num_rows, f.type))
            continue
        column = data.column(name)
        if not column.type.equals(f.type):
            return None
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=target)


def _decode_pyarrow(layout: _Layout, item: _Fetched, *, use_threads: bool) -> pa.Table:
    import pyarrow.parquet as pq

    columns = item.columns
    assert columns is not None
    data = pq.ParquetFile(pa.BufferReader(item.body)).read(
        columns=[c for c in columns if c is not None], use_threads=use_threads
    )
    arrays = [
        data.column(name) if name is not None else pa.nulls(data.num_rows, f.type)
        for name, f in zip(columns, layout.arrow, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=layout.arrow)


def _read_file(tbl: Table, layout: _Layout, data_file: DataFile) -> pa.Table:
    """One data file in the layout's schema, by pyarrow on its threads (a written file read back, or a bin
    of one): read directly when its columns match the current schema by field id, name and type (missing
    optional columns become nulls); otherwise through pyiceberg's projection (renamed, promoted or nested
    columns, files without field ids)."""
    item = _fetch(layout, data_file)
    if item.columns is None:
        return _read_projected(tbl, layout, data_file)
    return _decode_pyarrow(layout, item, use_threads=True)


def _direct_columns(file_schema: pa.Schema, target: pa.Schema) -> list[str | None] | None:
    """For each target column, the file column holding it (None: absent, read as nulls); None when the
    file cannot be read directly."""
    by_id: dict[int, pa.Field] = {}
    for f in file_schema:
        raw = (f.metadata or {}).get(_FIELD_ID)
        if raw is None:
            return None
        by_id[int(raw)] = f
    columns: list[str | None] = []
    for f in target:
        have = by_id.get(int((f.metadata or {})[_FIELD_ID]))
        if have is None:
            if not f.nullable:
                return None
            columns.append(None)
        elif have.name != f.name or not have.type.equals(f.type):
            return None
        else:
            columns.append(have.name)
    return columns


def _read_projected(tbl: Table, layout: _Layout, data_file: DataFile) -> pa.Table:
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan
    from pyiceberg.table import FileScanTask

    scan = ArrowScan(tbl.metadata, layout.reader, layout.schema, AlwaysTrue())
    table = scan.to_table([FileScanTask(data_file)])
    arrays = [table.column(f.name).cast(f.type) for f in layout.arrow]
    return pa.Table.from_arrays(arrays, schema=layout.arrow)


def _sort(layout: _Layout, rows: pa.Table) -> pa.Table:
    """``rows`` in the table's sort order (unchanged for an unsorted table)."""
    import pyarrow.compute as pc
    from pyiceberg.table.sorting import NullOrder, SortDirection
    from pyiceberg.transforms import IdentityTransform

    order = layout.sort_order
    if order.is_unsorted or rows.num_rows < 2:
        return rows
    schema = layout.schema
    keys: dict[str, pa.ChunkedArray | pa.Array] = {}
    directions = []
    for i, sort_field in enumerate(order.fields):
        source = schema.find_field(sort_field.source_id)
        column = rows.column(source.name)
        if not isinstance(sort_field.transform, IdentityTransform):
            column = sort_field.transform.pyarrow_transform(source.field_type)(column)
        keys[f"k{i}"] = column
        directions.append(
            (
                f"k{i}",
                "ascending" if sort_field.direction == SortDirection.ASC else "descending",
                "at_start" if sort_field.null_order == NullOrder.NULLS_FIRST else "at_end",
            )
        )
    if _PER_KEY_NULLS:
        indices = pc.sort_indices(pa.table(keys), sort_keys=directions)
    else:  # pyarrow < 25 takes one null placement for all keys: the first field's
        first = directions[0][2]
        indices = pc.sort_indices(pa.table(keys), sort_keys=[d[:2] for d in directions], null_placement=first)
    return rows.take(indices)


def _write_file(tbl: Table, layout: _Layout, rows: pa.Table, location: str, part: _Partition) -> DataFile:
    """Write ``rows`` as one Parquet data file of the partition; its DataFile with stats from the footer."""
    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import (
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

    props = layout.properties
    codec = props.get("write.parquet.compression-codec", "zstd")
    level = props.get("write.parquet.compression-level")
    collected: list[Any] = []
    with tbl.io.new_output(location).create(overwrite=True) as out:
        pq.write_table(
            rows,
            out,
            compression="none" if codec == "uncompressed" else codec,
            compression_level=int(level) if level else None,
            row_group_size=int(props.get("write.parquet.row-group-limit", 1_048_576)),
            metadata_collector=collected,
        )
        size = out.tell()
    stats = data_file_statistics_from_parquet_metadata(
        parquet_metadata=collected[0],
        stats_columns=compute_statistics_plan(layout.schema, props),
        parquet_column_mapping=parquet_path_to_id_mapping(layout.schema),
    )
    order = layout.sort_order
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=location,
        file_format=FileFormat.PARQUET,
        partition=part.partition,
        file_size_in_bytes=size,
        sort_order_id=None if order.is_unsorted else order.order_id,
        spec_id=part.spec_id,
        equality_ids=None,
        key_metadata=None,
        **stats.to_serialized_dict(),
    )


# --- committing ----------------------------------------------------------------------------------


def _commit(tbl: Table, rewrite: _Rewrite, max_attempts: int) -> tuple[str, str | None, int]:
    """Replace the files read with the files written in one snapshot: ``(status, reason, attempts)``.

    A refused commit (stale snapshot, or files to delete that are no longer live) is retried on the
    refreshed table while every file read is still live and no delete file touches them.
    """
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    attempt = 0
    while True:
        attempt += 1
        if tbl.spec().spec_id != rewrite.part.spec_id:  # the outputs carry the planned spec's partition
            return "skipped", "the partition spec changed during compaction", attempt
        try:
            with _transaction(tbl) as tx, tx.update_snapshot().overwrite() as overwrite:
                for data_file in rewrite.inputs:
                    overwrite.delete_data_file(data_file)
                for data_file in rewrite.outputs:
                    overwrite.append_data_file(data_file)
            return "rewritten", None, attempt
        except (CommitFailedException, ValidationException) as exc:
            tbl.refresh()
            gone, deletes = _input_state(tbl, rewrite.inputs)
            if gone:
                return (
                    "skipped",
                    f"a concurrent commit replaced {gone} of the {len(rewrite.inputs)} file(s) read",
                    attempt,
                )
            if deletes:
                return (
                    "skipped",
                    f"a concurrent commit added delete files for {deletes} file(s) read",
                    attempt,
                )
            if attempt >= max_attempts:
                return "skipped", f"concurrent commits on all {attempt} attempt(s): {exc}", attempt
            time.sleep(random.uniform(0, min(0.05 * 2**attempt, 2.0)))  # back off from a busy writer


@functools.cache
def _transaction_class() -> type[Transaction]:
    from pyiceberg.table import Transaction
    from pyiceberg.table.metadata import TableMetadata

    class _Transaction(Transaction):
        """pyiceberg's transaction, its metadata view built once per state instead of on every read.

        pyiceberg 0.12 rebuilds and deep-copies the whole table metadata (every snapshot, the logs) on each
        read of ``Transaction.table_metadata``, and an overwrite reads it about 40 times: on a table of a
        hundred snapshots that was half of a commit's CPU. The view is the same as long as the base
        metadata and the staged updates are (both are replaced, never mutated, when they change; the
        metadata models are frozen), so it is kept until either is replaced.
        """

        _memo: tuple[TableMetadata, tuple[Any, ...], TableMetadata] | None = None

        @property
        def table_metadata(self) -> TableMetadata:
            base, updates, memo = self._table.metadata, self._updates, self._memo
            if memo is None or memo[0] is not base or memo[1] is not updates:
                memo = self._memo = (base, updates, super().table_metadata)
            return memo[2]

    return _Transaction


def _transaction(tbl: Table) -> Transaction:
    """A transaction on ``tbl`` (see ``_transaction_class``)."""
    return _transaction_class()(tbl)


def _input_state(tbl: Table, inputs: Sequence[DataFile]) -> tuple[int, int]:
    """How many of ``inputs`` are no longer live in the current snapshot, and how many have delete files."""
    live = {}
    for task in tbl.scan().plan_files():
        live[task.file.file_path] = bool(task.delete_files)
    gone = sum(1 for f in inputs if f.file_path not in live)
    deletes = sum(1 for f in inputs if live.get(f.file_path, False))
    return gone, deletes


def _discard(tbl: Table, locations: Sequence[str]) -> None:
    """Delete files only this run wrote and no commit references (best effort: the orphan sweep is the backstop)."""
    for location in locations:
        with contextlib.suppress(Exception):
            tbl.io.delete(location)
