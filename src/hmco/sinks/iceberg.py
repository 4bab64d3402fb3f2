"""The tiered Iceberg writer: one window, one atomic commit, never a duplicate.

Writing a window *replaces* that window (``overwrite`` with a filter on the time column, narrowed to
the batch's scope, e.g. its ISO), so re-running it leaves exactly one copy — far faster than
``upsert`` for revisions (see the lakehouse reference). The pipeline's state (committed windows,
watermark, batch id; owned by :mod:`hmco.lake.state`) rides in the same commit, so state and data never
disagree. A concurrent commit is retried here, re-planning the delete and re-reading the state (hmco
tables set pyiceberg's own retries to 0 so the conflict reaches this code); schema evolution adds new
nullable columns by name, and anything else is an :class:`~hmco.errors.IncompatibleSchemaChange`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from hmco._logging import get_logger
from hmco.errors import CommitConflict, HmcoError, IncompatibleSchemaChange, SinkError, is_transient
from hmco.lake import Lake
from hmco.lake.state import window_commit
from hmco.schemas import Dataset
from hmco.sinks.base import WriteResult
from hmco.sinks.datafiles import discard as _discard
from hmco.sinks.datafiles import split_by_partition, write_data_files
from hmco.windows import Window

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table

__all__ = ["IcebergSink", "batch_scope", "split_by_partition", "window_filter", "write_data_files"]

log = get_logger("hmco.iceberg")


def batch_scope(dataset: Dataset, table: pa.Table) -> dict[str, list[Any]]:
    """The distinct values of the dataset's identity-partition columns in ``table`` (e.g. its ISOs)."""
    return {
        pf.source: table.column(pf.source).unique().to_pylist()
        for pf in dataset.partition_by
        if pf.transform == "identity" and pf.source in table.column_names and table.num_rows
    }


def window_filter(
    dataset: Dataset, window: Window, scope: Mapping[str, Sequence[Any]] | None = None
) -> BooleanExpression:
    """``start <= ts < end`` (and ``col IN (...)`` for each scope column) as a pyiceberg expression."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, In, LessThan

    col = dataset.time_column
    expr: BooleanExpression = And(
        GreaterThanOrEqual(term=col, literal=window.start.isoformat()),  # type: ignore[call-arg]
        LessThan(term=col, literal=window.end.isoformat()),  # type: ignore[call-arg]
    )
    for name, values in (scope or {}).items():
        expr = And(expr, In(term=name, literals=list(values)))
    return expr


class IcebergSink:
    """Writes batches of a dataset into one tier of the lake.

    Args:
        lake: the lake to write to.
        tier: ``staged``, ``curated`` (default: the dataset's own tier) or ``ml``.
        pipeline: the pipeline whose state (committed windows, watermark) each commit records;
            ``None`` records only the batch id and window (e.g. the staged tier).
        max_attempts: attempts on commit conflicts before giving up with :class:`CommitConflict`.
        evolve: accept new nullable columns (``True``) or reject any schema change (``False``).
    """

    name = "iceberg"

    def __init__(
        self,
        lake: Lake,
        tier: str | None = None,
        *,
        pipeline: str | None = None,
        max_attempts: int = 10,
        evolve: bool = True,
    ) -> None:
        self.lake = lake
        self.tier = tier
        self.pipeline = pipeline
        self.max_attempts = max_attempts
        self.evolve = evolve

    def write(
        self,
        table: pa.Table,
        *,
        dataset: Dataset,
        window: Window,
        batch_id: str,
        scope: Mapping[str, Sequence[Any]] | None = None,
        fingerprint: str | None = None,
    ) -> WriteResult:
        """Replace ``window`` (within ``scope``) of the dataset's table with ``table`` in one commit.

        Without an explicit ``scope`` the batch's own identity-partition values bound the replacement
        (an ``rt_lmp`` batch of CAISO rows never deletes SPP's rows of the same window).
        """
        from pyiceberg.exceptions import (
            CommitFailedException,
            CommitStateUnknownException,
            ValidationException,
        )

        started = time.perf_counter()
        tbl = self.lake.table(dataset, self.tier)
        self._evolve_schema(tbl, table, dataset)
        if scope is None:
            scope = batch_scope(dataset, table)
        row_filter = window_filter(dataset, window, scope)

        def commit() -> Table:
            tbl.refresh()
            state = window_commit(tbl, window=window, batch_id=batch_id, pipeline=self.pipeline)
            paths = write_data_files(tbl, _align(table, tbl), batch_id)
            try:
                with warnings.catch_warnings(), tbl.transaction() as tx:
                    warnings.filterwarnings("ignore", message="Delete operation did not match any records")
                    tx.delete(row_filter, snapshot_properties=state.summary)
                    if paths:
                        tx.add_files(paths, snapshot_properties=state.summary, check_duplicate_files=False)
                    if state.properties:
                        tx.set_properties(state.properties)
            except (CommitFailedException, ValidationException) as exc:
                _discard(tbl, paths)  # the commit certainly did not land: its files are orphans
                raise CommitConflict(
                    f"concurrent commit on {tbl.name()}; retrying window {window}: {exc}",
                    table=".".join(tbl.name()),
                ) from exc
            except CommitStateUnknownException:
                raise  # the commit may have landed: its files may be live, keep them
            except Exception:
                _discard(tbl, paths)  # rejected (add_files validation, catalog database error …)
                raise
            return tbl

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=0.05, max=2.0),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            tbl = retrying(commit)
        except CommitConflict:
            raise
        except CommitStateUnknownException as exc:
            raise SinkError(
                f"commit of {dataset.name} window {window} to {tbl.name()} may or may not have landed: {exc}; "
                "re-run the window (it is idempotent)"
            ) from exc
        except Exception as exc:  # storage, catalog database, Arrow: typed, with what and where
            if isinstance(exc, HmcoError):
                raise
            raise SinkError(f"cannot write {dataset.name} window {window} to {tbl.name()}: {exc}") from exc
        snap = tbl.current_snapshot()
        return WriteResult(
            sink=self.name,
            target=".".join(tbl.name()),
            rows=table.num_rows,
            bytes=table.nbytes,
            seconds=time.perf_counter() - started,
            snapshot_id=snap.snapshot_id if snap else None,
        )

    def _evolve_schema(self, tbl: Table, table: pa.Table, dataset: Dataset) -> None:
        """Add new nullable columns by name; reject type changes and new required columns."""
        from pyiceberg.io.pyarrow import schema_to_pyarrow

        current = schema_to_pyarrow(tbl.schema(), include_field_ids=False)
        new_fields = [f for f in table.schema if f.name not in current.names]
        for f in table.schema:
            if f.name in current.names:
                have = current.field(f.name).type
                if not _compatible(have, f.type):
                    raise IncompatibleSchemaChange(
                        f"{dataset.name}: column {f.name!r} is {have} in {tbl.name()} but the batch has {f.type}; "
                        "cast it in a transform or migrate the table explicitly",
                    )
        if not new_fields:
            return
        if not self.evolve:
            raise IncompatibleSchemaChange(
                f"{dataset.name}: batch has new column(s) {[f.name for f in new_fields]} and schema evolution is off"
            )
        with tbl.update_schema() as update:
            for f in new_fields:
                update.union_by_name(pa.schema([pa.field(f.name, f.type, nullable=True)]))
        log.info("evolved %s: added column(s) %s", ".".join(tbl.name()), [f.name for f in new_fields])


def _compatible(have: pa.DataType, got: pa.DataType) -> bool:
    if have.equals(got):
        return True
    widen = {
        (pa.int8(), pa.int32()),
        (pa.int16(), pa.int32()),
        (pa.int8(), pa.int64()),
        (pa.int16(), pa.int64()),
        (pa.int32(), pa.int64()),
        (pa.float32(), pa.float64()),
    }
    if (got, have) in widen:  # writing a narrower type into a wider column is fine
        return True
    if pa.types.is_string(have) and pa.types.is_large_string(got):
        return True
    if pa.types.is_large_string(have) and pa.types.is_string(got):
        return True
    return pa.types.is_timestamp(have) and pa.types.is_timestamp(got) and have.tz == got.tz


def _align(table: pa.Table, tbl: Table) -> pa.Table:
    """Order and cast columns to the table's current schema (with Iceberg field ids, so the Parquet
    files carry them); absent nullable columns become nulls."""
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    target = schema_to_pyarrow(tbl.schema(), include_field_ids=True)
    cols = []
    for f in target:
        if f.name in table.column_names:
            col = table.column(f.name)
            cols.append(col if col.type.equals(f.type) else col.cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=target)
