"""Flat, zero-copy views of Arrow list columns (offsets + values as NumPy) and back.

`datasets.map` hands an Arrow-formatted batch as a `pa.Table` whose columns are ChunkedArrays of
(possibly sliced) ListArrays: a slice's `.offsets` are absolute positions in `.values`, which is
the whole child array. Everything here works on the row range the slice covers."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_INT32_MAX = 2**31 - 1


@dataclass
class FlatList:
    """Rows `values[offsets[i] : offsets[i + 1]]`.

    `raw_offsets` are the list array's own offsets (a zero-copy view, int32 or int64, starting
    wherever the slice starts); `offsets` are the same shifted to start at 0, as int64."""

    raw_offsets: np.ndarray
    values: pa.Array

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        raw = self.raw_offsets.astype(np.int64, copy=False)
        return raw - raw[0] if raw[0] else raw


def chunks_of(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    if isinstance(column, pa.ChunkedArray):
        return [c for c in column.chunks if len(c)] or [pa.array([], type=column.type)]
    return [column]


def is_list_type(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def flat_list(chunk: pa.Array, name: str) -> FlatList:
    """The rows of one list chunk as relative offsets and the values they cover."""
    t = chunk.type
    if not is_list_type(t):
        raise TypeError(f"column {name!r} must hold lists (one per row), got Arrow type {t}")
    if chunk.null_count:
        first = int(np.flatnonzero(chunk.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"column {name!r} has a missing (null) row at position {first}")
    if pa.types.is_fixed_size_list(t):
        size = t.list_size
        offsets = np.arange(len(chunk) + 1, dtype=np.int64) * size
        return FlatList(offsets, chunk.flatten())
    offsets = chunk.offsets.to_numpy()
    base = int(offsets[0])
    return FlatList(offsets, chunk.values.slice(base, int(offsets[-1]) - base))


def int_values(values: pa.Array, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer values as NumPy without copying, plus a validity mask (uint8) when some are null."""
    if not pa.types.is_integer(values.type):
        raise TypeError(
            f"column {name!r} must hold integers (token ids or per-token values), got lists of "
            f"{values.type}"
        )
    if values.null_count:
        valid = values.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8)
        return pc.fill_null(values, 0).to_numpy(), valid
    return values.to_numpy(), None


def to_arrow_column(rows: Any, name: str) -> pa.Array:
    """A dict-of-lists batch column (lists of ints, list of arrays, a 2-D array/tensor) as an
    Arrow list array."""
    if hasattr(rows, "detach") and hasattr(rows, "numpy"):  # torch tensor
        rows = rows.detach().cpu().numpy()
    if isinstance(rows, np.ndarray):
        if rows.dtype == object:
            rows = list(rows)
        elif rows.ndim == 2:
            flat = np.ascontiguousarray(rows).reshape(-1)
            offsets = np.arange(rows.shape[0] + 1, dtype=np.int64) * rows.shape[1]
            return list_array(offsets, pa.array(flat), large=False)
        else:
            raise ValueError(f"column {name!r} must be a 2-D batch, got shape {rows.shape}")
    if isinstance(rows, (pa.Array, pa.ChunkedArray)):
        return rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)):
        raise TypeError(f"column {name!r} must be a list of rows, got {type(rows).__name__}")
    if rows and hasattr(rows[0], "detach"):  # rows of a torch-formatted dataset
        rows = [r.detach().cpu().numpy() for r in rows]
    try:
        arr = pa.array(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise TypeError(f"column {name!r} could not be read as lists of integers: {e}") from e
    # No rows, or only empty rows, give Arrow nothing to infer an integer type from.
    if pa.types.is_null(arr.type):
        return pa.array([[] for _ in range(len(arr))], pa.list_(pa.int64()))
    if is_list_type(arr.type) and pa.types.is_null(arr.type.value_type):
        return arr.cast(pa.list_(pa.int64()))
    return arr


def list_array(offsets: np.ndarray, values: pa.Array, large: bool) -> pa.Array:
    """Wrap offsets and values as a ListArray (LargeListArray when asked or needed) without
    copying the values."""
    if large or int(offsets[-1]) > _INT32_MAX:
        return pa.LargeListArray.from_arrays(pa.array(offsets.astype(np.int64, copy=False)), values)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def numpy_rows(column: pa.Array) -> Any:
    """An output list column for a dict batch: a 2-D array when all rows have one length, else
    a list of 1-D arrays (views); lists of Python values only where some values are null."""
    flat = flat_list(column, "output")
    if flat.values.null_count:
        return column.to_pylist()
    values = flat.values.to_numpy()
    lens = np.diff(flat.offsets)
    if not len(lens):
        return []
    if (lens == lens[0]).all():
        return values.reshape(len(lens), int(lens[0]))
    return np.split(values, flat.offsets[1:-1])
