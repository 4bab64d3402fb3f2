"""Facts about one batch that several expectations need, computed once per gate check and shared.

A :class:`BatchScan` wraps the batch being judged and memoizes what the native kinds ask for: missing
counts (null, or NaN in a float column: Great Expectations' pandas semantics), min/max, each column's
dictionary codes, group ids of a set of columns (codes combined in mixed radix, no sort) and its
duplicate groups, and a time column as epoch microseconds. ``unique.primary_key``, ``in_set.*`` and
``continuity`` then share the per-column encodings instead of each hashing the batch again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["BatchScan", "Codes", "Duplicates", "Groups"]

_TS_US = "us"


@dataclass(frozen=True)
class Codes:
    """A column as dense integer codes into ``dictionary``; a missing value's code is ``len(dictionary)``."""

    indices: np.ndarray
    dictionary: pa.Array
    has_missing: bool

    @property
    def cardinality(self) -> int:
        """Distinct codes, counting the missing value as one where there is one."""
        return len(self.dictionary) + int(self.has_missing)


@dataclass(frozen=True)
class Groups:
    """Group ids of a set of columns: equal ids ⇔ equal values (missing values equal each other)."""

    ids: np.ndarray
    size: int  # ids lie in [0, size)


@dataclass
class Duplicates:
    """Rows whose key values occur more than once, as GX's uniqueness expectations count them.

    Rows whose key values are all missing are ignored (GX's ``ignore_row_if="all_values_are_missing"``;
    for one column: nulls are ignored); every copy of a repeated key is unexpected.
    """

    unexpected: int
    missing: int
    _groups: Groups
    _counts: np.ndarray
    _ignored: np.ndarray | None

    def mask(self) -> np.ndarray:
        """Which rows are unexpected (computed only when asked: a failing batch's sample)."""
        mask = self._counts[self._groups.ids] > 1
        if self._ignored is not None:
            mask &= ~self._ignored
        return mask


class BatchScan:
    """Memoized per-batch facts; create one per checked batch (it holds the batch)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._missing: dict[str, int] = {}
        self._missing_masks: dict[str, np.ndarray] = {}
        self._min_max: dict[str, tuple[Any, Any]] = {}
        self._codes: dict[str, Codes] = {}
        self._groups: dict[tuple[str, ...], Groups] = {}
        self._duplicates: dict[tuple[str, ...], Duplicates] = {}
        self._micros: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}

    @cached_property
    def num_rows(self) -> int:
        return self.table.num_rows

    def missing(self, name: str) -> int:
        """Nulls, plus NaNs in a float column: what pandas (and so GX) counts as missing."""
        if name not in self._missing:
            col = self.table.column(name)
            count = col.null_count
            if pa.types.is_floating(col.type) and len(col):
                count += int(pc.sum(pc.is_nan(col)).as_py() or 0)
            self._missing[name] = count
        return self._missing[name]

    def missing_mask(self, name: str) -> np.ndarray:
        """Which rows of ``name`` are missing (null or NaN)."""
        if name not in self._missing_masks:
            col = self.table.column(name)
            mask = pc.is_null(col, nan_is_null=pa.types.is_floating(col.type))
            self._missing_masks[name] = _bools(mask)
        return self._missing_masks[name]

    def min_max(self, name: str) -> tuple[Any, Any]:
        """The smallest and largest non-missing value of ``name`` (Python values), or ``(None, None)``."""
        if name not in self._min_max:
            col = self.table.column(name)
            if self.missing(name) == self.num_rows:
                self._min_max[name] = (None, None)
            elif pa.types.is_floating(col.type) and col.null_count == 0:
                values = _numpy(col)  # numpy's fmin/fmax skip NaN and are ~8x faster than pc.min_max
                self._min_max[name] = (float(np.fmin.reduce(values)), float(np.fmax.reduce(values)))
            else:
                mm = pc.min_max(col)
                self._min_max[name] = (mm["min"].as_py(), mm["max"].as_py())
        return self._min_max[name]

    def codes(self, name: str) -> Codes:
        """``name`` dictionary-encoded (one hash pass); NaN counts as missing, like null."""
        if name not in self._codes:
            col = self.table.column(name)
            if pa.types.is_dictionary(col.type):  # re-encode: a dictionary may repeat or hold unused values
                col = col.cast(col.type.value_type)
            if pa.types.is_floating(col.type) and self.missing(name) > col.null_count:
                col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
            if _constant(col):  # one ISO, one market per batch: a comparison, 3x cheaper than hashing
                one = col.slice(0, 1).combine_chunks()
                self._codes[name] = Codes(np.zeros(len(col), np.int64), one, False)
                return self._codes[name]
            encoded = pc.dictionary_encode(col)
            if isinstance(encoded, pa.ChunkedArray):
                encoded = encoded.unify_dictionaries()
                chunks = encoded.chunks
            else:
                chunks = [encoded]
            if not chunks:
                dictionary = pa.array([], col.type)
                self._codes[name] = Codes(np.empty(0, np.int64), dictionary, False)
            else:
                dictionary = chunks[0].dictionary
                has_missing = col.null_count > 0
                parts = [
                    _numpy(pc.fill_null(c.indices, len(dictionary)) if has_missing else c.indices)
                    for c in chunks
                ]
                indices = (parts[0] if len(parts) == 1 else np.concatenate(parts)).astype(
                    np.int64, copy=False
                )
                self._codes[name] = Codes(indices, dictionary, has_missing)
        return self._codes[name]

    def groups(self, names: tuple[str, ...]) -> Groups:
        """Group ids of ``names`` together: the columns' codes combined in mixed radix.

        Ids stay below ``max(8·rows, 2**22)``; a combination that would exceed that is re-encoded densely
        (one hash pass over int64), so per-group counts are a ``bincount``, never a sort.
        """
        names = tuple(names)
        if names not in self._groups:
            limit = max(8 * self.num_rows, 1 << 22)
            ids: np.ndarray | None = None
            size = 1
            for name in names:
                codes = self.codes(name)
                if ids is None:
                    ids, size = codes.indices, codes.cardinality
                else:
                    ids = ids * codes.cardinality + codes.indices
                    size *= codes.cardinality
                if size > limit:
                    ids, size = _dense(ids)
            assert ids is not None, "groups of no columns"
            self._groups[names] = Groups(ids, size)
        return self._groups[names]

    def duplicates(self, names: tuple[str, ...]) -> Duplicates:
        """The duplicate key rows of ``names`` (see :class:`Duplicates`): one ``bincount`` over group ids."""
        names = tuple(names)
        if names not in self._duplicates:
            groups = self.groups(names)
            ignored: np.ndarray | None = None
            if all(self.missing(n) for n in names):  # some rows may have every key value missing
                ignored = np.logical_and.reduce([self.missing_mask(n) for n in names])
                if not ignored.any():
                    ignored = None
            kept = groups.ids if ignored is None else groups.ids[~ignored]
            counts = np.bincount(kept, minlength=groups.size)
            unexpected = int(counts[counts > 1].sum())
            missing = int(ignored.sum()) if ignored is not None else 0
            self._duplicates[names] = Duplicates(unexpected, missing, groups, counts, ignored)
        return self._duplicates[names]

    def epoch_micros(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """A timestamp column as int64 epoch microseconds, and its validity mask (``None``: no nulls)."""
        if name not in self._micros:
            col = self.table.column(name)
            if col.type.unit != _TS_US:
                col = col.cast(pa.timestamp(_TS_US, tz=col.type.tz), safe=False)
            ints = col.cast(pa.int64())
            valid = None if ints.null_count == 0 else ~_bools(pc.is_null(ints))
            values = _numpy(pc.fill_null(ints, 0) if valid is not None else ints).astype(np.int64, copy=False)
            self._micros[name] = (values, valid)
        return self._micros[name]

    def take(self, columns: list[str] | str, mask: np.ndarray, limit: int) -> list[Any]:
        """Values of the first ``limit`` rows where ``mask`` holds, in row order (dicts for many columns)."""
        rows = np.flatnonzero(mask)[:limit]
        if isinstance(columns, str):
            return self.table.column(columns).take(pa.array(rows)).to_pylist()
        return self.table.select(columns).take(pa.array(rows)).to_pylist()


def _numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A null-free primitive column as numpy (zero-copy for one chunk)."""
    if isinstance(values, pa.ChunkedArray):
        if values.num_chunks == 1:
            return values.chunk(0).to_numpy(zero_copy_only=False)
        return values.to_numpy()
    return values.to_numpy(zero_copy_only=False)


def _bools(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(_numpy(values), dtype=bool)


def _constant(col: pa.ChunkedArray) -> bool:
    """Whether every value of a null-free column equals its first (three probes before the full pass)."""
    n = len(col)
    if n == 0 or col.null_count:
        return False
    first = col[0]
    if not all(col[i] == first for i in (n // 2, n - 1)):
        return False
    return bool(pc.all(pc.equal(col, first)).as_py())


def _dense(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Re-number ``ids`` densely from 0 (Arrow's hash kernel: linear, first-seen order)."""
    encoded = pc.dictionary_encode(pa.array(ids))
    return encoded.indices.to_numpy().astype(np.int64, copy=False), len(encoded.dictionary)
