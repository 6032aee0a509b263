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
_TOKENIZE_FIRST = (
    "token ids are needed: tokenize the text first, e.g. "
    "dataset.map(lambda b: tokenizer(b['text']), batched=True)"
)


@dataclass
class Ragged:
    """Rows as `values[starts[i] : starts[i] + lens[i]]`."""

    values: np.ndarray
    starts: np.ndarray
    lens: np.ndarray


def _object_array_error(a: np.ndarray, what: str) -> Exception:
    """What is wrong with an object array: rows of different lengths, integers that do not fit
    in 64 bits, or items that are not integers."""
    for nd_index, item in np.ndenumerate(a):
        index = nd_index[0] if len(nd_index) == 1 else nd_index
        if isinstance(item, bool):
            return TypeError(
                f"{what} holds {item} at position {index}: integers are needed, not bools"
            )
        if isinstance(item, int):
            if not -(2**63) <= item < 2**63:
                return OverflowError(
                    f"{what} holds {item} at position {index}, which does not fit in 64 bits"
                )
            continue
        if isinstance(item, (str, bytes)):
            return TypeError(f"{what} holds a string at position {index}: {_TOKENIZE_FIRST}")
        if isinstance(item, (Sequence, np.ndarray, torch.Tensor)):
            return TypeError(
                f"{what} is ragged (an object array of rows); pass a list of rows instead"
            )
        return TypeError(f"{what} must hold integers; position {index} is a {type(item).__name__}")
    return TypeError(f"{what} is an object array; pass integer arrays or lists of ints")


def _int_array(a: np.ndarray, what: str, bools: bool = False) -> np.ndarray:
    if a.dtype == object:
        raise _object_array_error(a, what)
    if a.dtype.kind == "b" and bools:
        return a.view(np.uint8)
    if a.dtype.kind in "US":
        raise TypeError(f"{what} holds strings ({a.dtype}): {_TOKENIZE_FIRST}")
    if a.dtype.kind not in "iu":
        raise TypeError(f"{what} must hold integer token ids, got dtype {a.dtype}")
    if a.dtype not in _KERNEL_DTYPES:
        a = a.astype(np.int64)
    return a


def _to_numpy(x: Any, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        if x.is_meta:
            raise ValueError(f"{what} is a tensor on the meta device, which holds no values")
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_not_text(row: Any, what: str) -> None:
    if isinstance(row, (str, bytes)):
        shown = row if len(row) <= 40 else row[:40] + "..."
        raise TypeError(f"{what} is a string ({shown!r}): {_TOKENIZE_FIRST}")


def as_ragged(rows: Any, name: str, none: int | None = None, bools: bool = False) -> Ragged:
    """A column (list of rows, or a padded 2-D array/tensor) as flat values plus row ranges;
    `None` items of list rows become `none` when it is given. Bools are refused unless `bools`
    (for mask columns)."""
    _check_not_text(rows, f"the {name} column")
    if isinstance(rows, (np.ndarray, torch.Tensor)):
        arr = _int_array(_to_numpy(rows, name), name, bools)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D batch, got an array of shape {arr.shape}")
        b, width = arr.shape
        flat = np.ascontiguousarray(arr).reshape(-1)
        return Ragged(flat, np.arange(b, dtype=np.int64) * width, np.full(b, width, np.int64))
    if not isinstance(rows, list):
        rows = list(rows)
    if rows and isinstance(rows[0], (list, tuple)):
        values, lens = _core.flatten_rows(rows, name, none, bools)
    else:
        arrays = []
        for i, row in enumerate(rows):
            _check_not_text(row, f"{name} row {i}")
            arr = _to_numpy(row, f"{name} row {i}")
            if arr.ndim != 1:
                raise ValueError(f"row {i} of {name} must be 1-D, got shape {arr.shape}")
            arrays.append(_int_array(arr, f"row {i} of {name}", bools))
        values = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
        values = _int_array(values, name, bools)
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
    _check_not_text(ids, "the input_ids column")
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


def aligned_values(
    rows: Any, name: str, ids: Ragged, none: int | None = None, bools: bool = False
) -> np.ndarray:
    """A per-token column checked row by row against input_ids (as given, before any trimming)
    and laid out at input_ids' flat offsets, so `ids.starts` / `ids.lens` index both."""
    col = as_ragged(rows, name, none, bools)
    if len(col.lens) != len(ids.lens):
        raise ValueError(f"{name} has {len(col.lens)} rows but input_ids has {len(ids.lens)}")
    bad = np.flatnonzero(col.lens != ids.lens)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name} row {i} has {col.lens[i]} values but input_ids row {i} has {ids.lens[i]}"
        )
    if np.array_equal(col.starts, ids.starts):
        return col.values
    out = np.zeros(len(ids.values), dtype=col.values.dtype)
    for s_dst, s_src, n in zip(
        ids.starts.tolist(), col.starts.tolist(), col.lens.tolist(), strict=True
    ):
        out[s_dst : s_dst + n] = col.values[s_src : s_src + n]
    return out


def attention_values(rows: Any, ids: Ragged) -> np.ndarray:
    """The rows' own `attention_mask` at input_ids' offsets, as int64 0/1 values."""
    values = np.ascontiguousarray(
        aligned_values(rows, "attention_mask", ids, bools=True), dtype=np.int64
    )
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        k = int(bad[0])
        row = int(np.searchsorted(ids.starts, k, side="right")) - 1
        raise ValueError(
            f"attention_mask row {row}, position {k - int(ids.starts[row])} holds "
            f"{int(values[k])}: an attention mask holds 0 and 1"
        )
    return values
