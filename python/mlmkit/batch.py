"""Turning what a DataLoader hands a collator into flat token buffers, without Python loops
over tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import _core

_KERNEL_DTYPES = {
    np.dtype(t) for t in (np.int64, np.int32, np.uint32, np.uint16, np.int16, np.uint8)
}


@dataclass
class Ragged:
    """Rows as `values[starts[i] : starts[i] + lens[i]]`."""

    values: np.ndarray
    starts: np.ndarray
    lens: np.ndarray


def _int_array(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype == object:
        raise TypeError(f"{what} is ragged (an object array); pass a list of rows instead")
    if a.dtype.kind not in "iu":
        raise TypeError(f"{what} must hold integer token ids, got dtype {a.dtype}")
    if a.dtype not in _KERNEL_DTYPES:
        a = a.astype(np.int64)
    return a


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def as_ragged(rows: Any, name: str, none: int | None = None) -> Ragged:
    """A column (list of rows, or a padded 2-D array/tensor) as flat values plus row ranges;
    `None` items of list rows become `none` when it is given."""
    if isinstance(rows, (np.ndarray, torch.Tensor)):
        arr = _int_array(_to_numpy(rows), name)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D batch, got an array of shape {arr.shape}")
        b, width = arr.shape
        flat = np.ascontiguousarray(arr).reshape(-1)
        return Ragged(flat, np.arange(b, dtype=np.int64) * width, np.full(b, width, np.int64))
    if not isinstance(rows, list):
        rows = list(rows)
    if rows and isinstance(rows[0], (list, tuple)):
        values, lens = _core.flatten_rows(rows, name, none)
    else:
        arrays = []
        for i, row in enumerate(rows):
            arr = _to_numpy(row)
            if arr.ndim != 1:
                raise ValueError(f"row {i} of {name} must be 1-D, got shape {arr.shape}")
            arrays.append(_int_array(arr, f"row {i} of {name}"))
        values = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
        values = _int_array(values, name)
        lens = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    starts = np.zeros(len(lens), dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    return Ragged(values, starts, lens)


def columns_of(features: Any) -> dict[str, Any]:
    """Columns of a batch given as a list of dicts, a list of rows, a dict of columns or a 2-D
    array/tensor."""
    if isinstance(features, Mapping):
        cols = dict(features)
    elif isinstance(features, (np.ndarray, torch.Tensor)):
        cols = {"input_ids": features}
    elif isinstance(features, Sequence) and not isinstance(features, (str, bytes)):
        if len(features) == 0:
            raise ValueError("the batch is empty: a collator needs at least one example")
        first = features[0]
        if isinstance(first, Mapping):
            cols = _columns_of_examples(features, first)
        else:
            cols = {"input_ids": list(features)}
    else:
        raise TypeError(
            "a batch must be a list of examples (dicts or token-id rows), a dict of columns or a "
            f"2-D array/tensor, got {type(features).__name__}"
        )
    if "input_ids" not in cols:
        raise ValueError(f"the batch has no 'input_ids' column (columns: {sorted(cols)})")
    ids = cols["input_ids"]
    if len(ids) == 0:
        raise ValueError("the batch is empty: a collator needs at least one example")
    return cols


def _columns_of_examples(features: Sequence[Any], first: Mapping[str, Any]) -> dict[str, list]:
    keys = list(first)
    try:
        if all(len(f) == len(keys) for f in features):
            return {k: [f[k] for f in features] for k in keys}
    except (KeyError, TypeError):
        pass
    for i, f in enumerate(features):
        if not isinstance(f, Mapping) or f.keys() != first.keys():
            got = sorted(f.keys()) if isinstance(f, Mapping) else type(f).__name__
            raise ValueError(f"example {i} has columns {got} but example 0 has {sorted(keys)}")
    raise AssertionError("unreachable")


def is_scalar(x: Any) -> bool:
    if isinstance(x, (int, float, bool, np.generic)):
        return True
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return x.ndim == 0
    return False


def aligned(
    rows: Any,
    name: str,
    ids: Ragged,
    raw_lens: np.ndarray,
    shift: np.ndarray,
    none: int | None = None,
) -> Ragged:
    """A per-token column checked against input_ids' row lengths and trimmed like input_ids
    (`shift` is how far trimming moved each row's start)."""
    col = as_ragged(rows, name, none)
    if len(col.lens) != len(raw_lens):
        raise ValueError(f"{name} has {len(col.lens)} rows but input_ids has {len(raw_lens)}")
    bad = np.flatnonzero(col.lens != raw_lens)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name} row {i} has {col.lens[i]} values but input_ids row {i} has {raw_lens[i]}"
        )
    return Ragged(col.values, col.starts + shift, ids.lens)
