"""`GroupTexts`: concatenate tokenized documents and cut fixed-size blocks, as a
`datasets.map(batched=True)` function."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from . import _core
from .arrow_lists import (
    FlatList,
    chunks_of,
    flat_list,
    int_values,
    is_list_type,
    list_array,
    numpy_rows,
    to_arrow_column,
)
from .templates import single_template

Tail = Literal["drop", "pad", "keep"]
FillValue = int | None

# (value at inserted special/separator tokens, value at padding) per known aligned column;
# None is a missing value (what a tokenizer's word_ids() gives special tokens).
DEFAULT_FILL: dict[str, tuple[FillValue, FillValue]] = {
    "attention_mask": (1, 0),
    "special_tokens_mask": (1, 1),
    "token_type_ids": (0, 0),
    "word_ids": (None, None),
    "labels": (-100, -100),
}
_OTHER_FILL: tuple[FillValue, FillValue] = (0, 0)


def _check_id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{what} must be a non-negative token id, got {value!r}")
    return int(value)


@dataclass
class GroupTexts:
    """Concatenate the tokenized documents of a map batch and cut blocks of `block_size`.

    Use as `dataset.map(GroupTexts(512, tokenizer, ...), batched=True)`. Fastest on Arrow
    batches (`dataset.with_format("arrow").map(...)`): the offsets and values of the list columns
    go to the Rust core without copies and the output is a `pa.Table`. Ordinary dict-of-lists
    batches (and numpy-formatted ones) work too; they come back as NumPy arrays. Output rows
    replace input rows, so with dict batches pass `remove_columns=dataset.column_names`.

    Args:
        block_size: tokens per block, special tokens included.
        tokenizer: only read here (never stored) to resolve `separator`, `add_special_tokens`
            and the pad id.
        separator: a token put between consecutive documents: a token id, a token string such
            as `"[SEP]"` or `"</s>"`, or True for the tokenizer's sep token (else its eos token).
            Empty documents are skipped and get no separator.
        add_special_tokens: wrap every block in the tokenizer's single-sequence special tokens
            (`[CLS] ... [SEP]`, `<s> ... </s>`); blocks stay exactly `block_size` long. Or give
            the ids yourself as `prefix` / `suffix`.
        tail: the last, incomplete block of each map batch is dropped ("drop", as run_mlm.py),
            padded to `block_size` after its suffix with `pad_id` ("pad"; an `attention_mask`
            column is added if there is none, 0 on padding), or kept shorter ("keep").
        column: the token-id column that defines the documents.
        columns: aligned per-token columns to cut exactly like `column`; None takes every
            list-of-integers column (`attention_mask`, `token_type_ids`, `special_tokens_mask`,
            `word_ids`, ...). Other columns are not in the output. `word_ids` are renumbered
            so that no word spans two documents (each document's ids are shifted past the
            largest id before it; the result is int64).
        fill: `{column: (at_inserted_tokens, at_padding)}` for aligned columns; None means a
            missing value. Defaults: attention_mask (1, 0), special_tokens_mask (1, 1),
            token_type_ids (0, 0), word_ids (None, None), labels (-100, -100), others (0, 0).
        labels: also output `labels`, a copy of the blocks' ids with -100 on padding (the HF
            course does this for causal LMs; mlmkit's collators make labels themselves).

    How much text is lost. Blocks never span map batches (each call sees one batch), so with
    tail="drop" every batch loses its `(tokens + separators) mod content` last tokens, where
    `content = block_size - special tokens per block`: about `content / 2` tokens per batch on
    average, independent of the batch's size. run_mlm.py groups with the default
    `batch_size=1000` documents, so it loses ~`content / 2` tokens per 1000 documents (on 50 k
    documents averaging ~1 000 tokens, block_size 512: ~0.025 %; on short documents such as
    tweets of ~30 tokens: ~0.85 %). Here, tail="pad" and tail="keep" lose nothing (one padded
    or short block per batch instead), and since a call is cheap on Arrow batches, a larger
    `batch_size` (e.g. 20 000) divides the loss of tail="drop" by as much. See
    `benchmarks/RESULTS.md` for measured figures.
    """

    block_size: int
    tokenizer: InitVar[Any] = None
    separator: int | str | bool | None = None
    add_special_tokens: bool = False
    prefix: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()
    tail: Tail = "drop"
    pad_id: int | None = None
    column: str = "input_ids"
    columns: tuple[str, ...] | None = None
    fill: dict[str, tuple[FillValue, FillValue]] = field(default_factory=dict)
    labels: bool = False

    def __post_init__(self, tokenizer: Any) -> None:
        bs = self.block_size
        if isinstance(bs, bool) or not isinstance(bs, numbers.Integral) or bs < 1:
            raise ValueError(f"block_size must be a positive integer, got {bs!r}")
        self.block_size = int(bs)
        if self.tail not in ("drop", "pad", "keep"):
            raise ValueError(f"tail must be 'drop', 'pad' or 'keep', got {self.tail!r}")
        self.separator = self._resolve_separator(tokenizer)
        self.prefix = tuple(_check_id(i, "prefix token") for i in self.prefix)
        self.suffix = tuple(_check_id(i, "suffix token") for i in self.suffix)
        if self.add_special_tokens:
            if self.prefix or self.suffix:
                raise ValueError("pass either add_special_tokens=True or prefix/suffix ids")
            if tokenizer is None:
                raise ValueError("add_special_tokens=True needs the tokenizer (tokenizer=...)")
            self.prefix, self.suffix = single_template(tokenizer)
            if not self.prefix and not self.suffix:
                raise ValueError(
                    "add_special_tokens=True but the tokenizer adds no special tokens around a "
                    "sequence (its post-processor has none, e.g. no [CLS]/[SEP])"
                )
        n_special = len(self.prefix) + len(self.suffix)
        if n_special >= self.block_size:
            raise ValueError(
                f"block_size {self.block_size} is too small: each block holds {n_special} "
                "special tokens and needs at least one token of text"
            )
        if self.tail == "pad":
            if self.pad_id is None and tokenizer is not None:
                self.pad_id = tokenizer.pad_token_id
            if self.pad_id is None:
                raise ValueError(
                    "tail='pad' needs a pad id: pass pad_id=... or a tokenizer with a pad token"
                )
        if self.pad_id is not None:
            self.pad_id = _check_id(self.pad_id, "pad_id")
        if not isinstance(self.column, str):
            raise TypeError(f"column must be a column name, got {self.column!r}")
        if self.columns is not None:
            if isinstance(self.columns, str):
                self.columns = (self.columns,)
            self.columns = tuple(c for c in self.columns if c != self.column)
        if self.labels and self.columns is not None and "labels" in self.columns:
            raise ValueError("labels=True makes a labels column; do not also carry one")
        self.fill = dict(self.fill)
        for name, pair in self.fill.items():
            if not (isinstance(pair, tuple) and len(pair) == 2) or not all(
                v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool))
                for v in pair
            ):
                raise ValueError(
                    f"fill[{name!r}] must be a pair (at_inserted_tokens, at_padding) of ints or "
                    f"None, got {pair!r}"
                )

    def _resolve_separator(self, tokenizer: Any) -> int | None:
        sep = self.separator
        if sep is None or sep is False:
            return None
        if sep is True:
            if tokenizer is None:
                raise ValueError("separator=True needs the tokenizer (tokenizer=...)")
            for attr in ("sep_token", "eos_token"):
                if getattr(tokenizer, attr, None) is not None:
                    return int(getattr(tokenizer, f"{attr}_id"))
            raise ValueError(
                "separator=True but the tokenizer has neither a sep token nor an eos token; pass "
                "the separator's id"
            )
        if isinstance(sep, str):
            if tokenizer is None:
                raise ValueError(f"separator={sep!r} is a token string: pass the tokenizer too")
            vocab = tokenizer.get_vocab()
            if sep not in vocab:
                raise ValueError(
                    f"the separator token {sep!r} is not in the tokenizer's vocabulary"
                )
            return int(vocab[sep])
        sep = _check_id(sep, "separator")
        if tokenizer is not None and sep >= len(tokenizer):
            raise ValueError(f"separator id {sep} is outside the vocabulary [0, {len(tokenizer)})")
        return sep

    # -- the map function -------------------------------------------------------------------

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        if type(batch).__name__ == "DataFrame" and hasattr(batch, "to_dict"):  # pandas format
            return self(pa.Table.from_pandas(batch, preserve_index=False)).to_pandas()
        if isinstance(batch, pa.Table):
            return self.group_table(batch)
        if isinstance(batch, Mapping):
            out = self.group_table(self._dict_to_table(batch))
            return {
                name: numpy_rows(out.column(name).combine_chunks()) for name in out.column_names
            }
        raise TypeError(
            "GroupTexts is a batched map function: it takes a pa.Table (dataset.with_format("
            f"'arrow')) or a dict of columns, got {type(batch).__name__}"
        )

    def _dict_to_table(self, batch: Mapping[str, Any]) -> pa.Table:
        if self.column not in batch:
            raise ValueError(f"the batch has no {self.column!r} column (columns: {sorted(batch)})")
        missing = [c for c in (self.columns or ()) if c not in batch]
        if missing:
            raise ValueError(f"the batch has no {missing[0]!r} column (columns: {sorted(batch)})")
        names = [self.column]
        if self.columns is not None:
            names += list(self.columns)
        else:
            names += [n for n in batch if n != self.column and _looks_like_lists(batch[n])]
        arrays = {}
        for name in names:
            arr = to_arrow_column(batch[name], name)
            if self.columns is None and name != self.column and not _int_lists(arr.type):
                continue
            arrays[name] = arr
        n = len(arrays[self.column])
        for name, arr in arrays.items():
            if len(arr) != n:
                raise ValueError(
                    f"columns of different lengths: {name!r} has {len(arr)} rows but "
                    f"{self.column!r} has {n}"
                )
        return pa.table(arrays)

    def group_table(self, table: pa.Table) -> pa.Table:
        """Group an Arrow batch; returns the blocks as a `pa.Table`."""
        if self.column not in table.column_names:
            raise ValueError(
                f"the batch has no {self.column!r} column (columns: {table.column_names})"
            )
        ids = table.column(self.column)
        if not _int_lists(ids.type):
            raise TypeError(
                f"column {self.column!r} must hold lists of token ids, got Arrow type {ids.type}"
            )
        ids_chunks = chunks_of(ids)
        ids_flat = [flat_list(c, self.column) for c in ids_chunks]
        if any(f.values.null_count for f in ids_flat):
            raise ValueError(f"column {self.column!r} has a missing (null) token id")
        plan = _core.group_plan(
            [f.raw_offsets for f in ids_flat],
            self.block_size,
            len(self.prefix),
            len(self.suffix),
            self.separator is not None,
            self.tail,
        )
        offsets = plan.offsets()
        large = pa.types.is_large_list(ids.type)
        sep = 0 if self.separator is None else self.separator
        pad = 0 if self.pad_id is None else self.pad_id

        # Without inserted tokens the blocks of a single-chunk batch are slices of its values.
        contiguous = (
            not self.prefix and not self.suffix and self.separator is None and len(ids_flat) == 1
        )

        def cut(
            name: str, flats: list[FlatList], inserted: Any, pad_value: FillValue
        ) -> pa.Array | pa.ChunkedArray:
            if contiguous:
                return _slice_blocks(plan, offsets, large, flats[0], pad_value)
            return _cut(
                plan,
                offsets,
                large,
                name,
                flats,
                inserted,
                pad_value,
                len(self.prefix),
                len(self.suffix),
            )

        out: dict[str, pa.Array | pa.ChunkedArray] = {
            self.column: cut(self.column, ids_flat, (self.prefix, self.suffix, sep), pad)
        }
        for name in self._carried(table):
            flats = _aligned(table.column(name), name, ids_chunks, ids_flat, self.column)
            if name == "word_ids":
                flats = _words_per_document(flats)
            inserted, pad_value = self.fill.get(name, DEFAULT_FILL.get(name, _OTHER_FILL))
            out[name] = cut(name, flats, inserted, pad_value)
        if self.labels:
            if pa.types.is_unsigned_integer(ids.type.value_type):
                raise ValueError(
                    f"labels=True needs signed token ids (labels use -100), got {ids.type}"
                )
            out["labels"] = cut("labels", ids_flat, (self.prefix, self.suffix, sep), -100)
        if self.tail == "pad" and "attention_mask" not in out:
            inserted, pad_value = self.fill.get("attention_mask", DEFAULT_FILL["attention_mask"])
            out["attention_mask"] = _cut(
                plan,
                offsets,
                large,
                "attention_mask",
                None,
                inserted,
                pad_value,
                len(self.prefix),
                len(self.suffix),
            )
        return pa.table(out)

    def _carried(self, table: pa.Table) -> list[str]:
        names = table.column_names
        if self.columns is not None:
            for c in self.columns:
                if c not in names:
                    raise ValueError(f"the batch has no {c!r} column (columns: {names})")
            carried = list(self.columns)
        else:
            carried = [n for n in names if n != self.column and _int_lists(table.column(n).type)]
        if self.labels and "labels" in carried:
            raise ValueError("labels=True makes a labels column but the batch already has one")
        return carried


def _looks_like_lists(col: Any) -> bool:
    if isinstance(col, np.ndarray):
        return col.ndim == 2 or col.dtype == object
    if hasattr(col, "ndim"):
        return col.ndim == 2
    if isinstance(col, (list, tuple)) and col:
        first = col[0]
        return isinstance(first, (list, tuple, np.ndarray)) or hasattr(first, "ndim")
    return False


def _int_lists(t: pa.DataType) -> bool:
    return is_list_type(t) and pa.types.is_integer(t.value_type)


def _aligned(
    column: pa.ChunkedArray,
    name: str,
    ids_chunks: list[pa.Array],
    ids_flat: list[FlatList],
    ids_name: str,
) -> list[FlatList]:
    """An aligned column's chunks, laid out like the id column's and checked row by row."""
    if not is_list_type(column.type):
        raise TypeError(f"column {name!r} must hold lists, got Arrow type {column.type}")
    chunks = chunks_of(column)
    if [len(c) for c in chunks] != [len(c) for c in ids_chunks]:
        whole = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if len(whole) != sum(len(c) for c in ids_chunks):
            raise ValueError(
                f"columns of different lengths: {name!r} has {len(whole)} rows but "
                f"{ids_name!r} has {sum(len(c) for c in ids_chunks)}"
            )
        starts = np.cumsum([0] + [len(c) for c in ids_chunks])
        chunks = [whole.slice(int(s), len(c)) for s, c in zip(starts, ids_chunks, strict=False)]
    flats = [flat_list(c, name) for c in chunks]
    row0 = 0
    for f, g in zip(flats, ids_flat, strict=True):
        if not np.array_equal(f.offsets, g.offsets):
            lens_f, lens_g = np.diff(f.offsets), np.diff(g.offsets)
            i = int(np.flatnonzero(lens_f != lens_g)[0])
            raise ValueError(
                f"columns of different lengths: row {row0 + i} of {name!r} has {lens_f[i]} "
                f"values but {ids_name!r} has {lens_g[i]}"
            )
        row0 += len(f.offsets) - 1
    return flats


def _words_per_document(flats: list[FlatList]) -> list[FlatList]:
    """Word ids renumbered so that no word spans two documents: each document's ids are shifted
    past the largest id of the documents before it in the batch (a tokenizer numbers every
    document's words from 0, so a one-word document followed by another would otherwise be one
    word). Equal and different ids within a document stay so; missing (null) and negative ids
    (tokens in no word) are kept as they are. The result is int64."""
    out, base = [], 0
    for f in flats:
        values, valid = int_values(f.values, "word_ids")
        v = values.astype(np.int64)
        ok = v >= 0 if valid is None else (valid != 0) & (v >= 0)
        offsets = f.offsets
        lens = np.diff(offsets)
        largest = np.full(len(lens), -1, dtype=np.int64)
        nonempty = np.flatnonzero(lens)
        if nonempty.size:
            largest[nonempty] = np.maximum.reduceat(np.where(ok, v, -1), offsets[nonempty])
        bases = base + np.concatenate(([0], np.cumsum(largest + 1)))
        shifted = np.where(ok, v + np.repeat(bases[:-1], lens), v)
        base = int(bases[-1])
        mask = None if valid is None else valid == 0
        out.append(FlatList(offsets, pa.array(shifted, mask=mask)))
    return out


def _cut(
    plan: Any,
    offsets: np.ndarray,
    large: bool,
    name: str,
    flats: list[FlatList] | None,
    inserted: Any,
    pad: FillValue,
    n_prefix: int,
    n_suffix: int,
) -> pa.Array:
    """One column through the plan. `inserted` is either (prefix ids, suffix ids, separator id)
    or one value (or None) for every inserted token; `flats` None makes a column of ones."""
    if isinstance(inserted, tuple):
        prefix, suffix, sep = list(inserted[0]), list(inserted[1]), inserted[2]
        ins_valid = 1
    else:
        v = 0 if inserted is None else int(inserted)
        prefix, suffix, sep = [v] * n_prefix, [v] * n_suffix, v
        ins_valid = 0 if inserted is None else 1
    pad_valid = 0 if pad is None else 1
    pad_value = 0 if pad is None else int(pad)
    if flats is None:
        like = np.zeros(0, np.int8)
        values = _core.group_apply(plan, [], like, 1, prefix, suffix, sep, pad_value, name)
        return list_array(offsets, pa.array(values), large)
    pairs = [int_values(f.values, name) for f in flats]
    chunks = [v for v, _ in pairs]
    like = chunks[0][:0]
    values = _core.group_apply(plan, chunks, like, None, prefix, suffix, sep, pad_value, name)
    mask = None
    if any(m is not None for _, m in pairs) or not (ins_valid and pad_valid):
        valid_chunks = [m if m is not None else np.ones(len(v), np.uint8) for v, m in pairs]
        valid = _core.group_apply(
            plan,
            valid_chunks,
            np.zeros(0, np.uint8),
            None,
            [ins_valid] * n_prefix,
            [ins_valid] * n_suffix,
            ins_valid,
            pad_valid,
            name,
        )
        if not valid.all():
            mask = valid == 0
    return list_array(offsets, pa.array(values, mask=mask), large)


def _slice_blocks(
    plan: Any, offsets: np.ndarray, large: bool, flat: FlatList, pad: FillValue
) -> pa.Array | pa.ChunkedArray:
    """Blocks as zero-copy slices of one chunk's values (no inserted tokens); a padded last block
    is a second, small chunk."""
    values = flat.values
    kept = plan.source_tokens - plan.dropped_tokens
    if plan.out_len == kept:
        return list_array(offsets, values.slice(0, kept), large)
    head = int(offsets[-2])
    n_pad = plan.out_len - kept
    if pad is None:
        padding = pa.nulls(n_pad, values.type)
    else:
        padding = pa.array(np.full(n_pad, pad, dtype=values.type.to_pandas_dtype()))
    last = pa.concat_arrays([values.slice(head, kept - head), padding])
    full = list_array(offsets[:-1], values.slice(0, head), large)
    return pa.chunked_array([full, list_array(np.array([0, len(last)]), last, large)])
