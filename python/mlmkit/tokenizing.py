"""`Tokenize`: text -> token ids as a picklable batched map function for `datasets.map` and
`ray.data.Dataset.map_batches`, the first step before `GroupTexts` / `SentencePairs`."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _core
from .arrow_lists import chunks_of, flat_list, is_list_type, list_array, numpy_rows
from .vocab import token_ids


@dataclass
class Tokenize:
    """Token ids of a text column, one row out per row in.

    Use as `dataset.map(Tokenize(tokenizer), batched=True)` (dict batches; `datasets` adds the
    output column to the row) or `ray_dataset.map_batches(Tokenize(tokenizer),
    batch_format="pyarrow")` (also "numpy" and "pandas"). Each row of `column` is a text, or a
    list of texts (sentences) joined with `join` first. Output: `output_column` (`input_ids`),
    a list of int32 ids per row, without special tokens unless `add_special_tokens` (mlmkit's
    `GroupTexts` and `SentencePairs` add their own). With `join=None` the sentences of a row
    are tokenized one by one and the output is a list of id lists per row (what
    `SentencePairs` takes as a document).

    Plain configuration: for a tokenizer with a `tokenizers` backend (every "fast" tokenizer)
    only its JSON serialization is kept (`tokenizer_json`), and the backend is rebuilt once per
    process that calls the function, so the object pickles small, `datasets` fingerprints it
    by value and Ray ships it to workers without transformers' objects. The ids are the same
    as `tokenizer(texts, add_special_tokens=False)["input_ids"]`. Other tokenizers are stored
    as they are (they must pickle) and called that way.

    Returned batches: a `pa.Table` for Arrow input (`pa.Table` / `pa.RecordBatch`), else a dict
    whose output column is a list of NumPy arrays. With `keep_columns` the batch's other
    columns are returned too (Ray replaces a batch with what the function returns; `datasets`
    merges dict outputs with the row anyway).
    """

    tokenizer: InitVar[Any] = None
    column: str = "text"
    output_column: str = "input_ids"
    add_special_tokens: bool = False
    join: str | None = " "
    keep_columns: bool = False
    tokenizer_json: str | None = field(default=None, repr=False)
    python_tokenizer: Any = field(default=None, repr=False)

    def __post_init__(self, tokenizer: Any) -> None:
        if tokenizer is not None:
            backend = getattr(tokenizer, "backend_tokenizer", None)
            if backend is not None:
                self.tokenizer_json = backend.to_str()
                self.python_tokenizer = None
            else:
                self.python_tokenizer = tokenizer
                self.tokenizer_json = None
        if self.tokenizer_json is None and self.python_tokenizer is None:
            raise ValueError("a tokenizer is required: Tokenize(tokenizer, ...)")
        for name in ("column", "output_column", "join"):
            if not isinstance(getattr(self, name), str) and not (
                name == "join" and self.join is None
            ):
                raise TypeError(f"{name} must be a string, got {getattr(self, name)!r}")

    @property
    def fingerprint(self) -> str:
        """A hash of the tokenizer's serialization (the same tokenizer gives the same ids)."""
        if self.tokenizer_json is not None:
            return hashlib.sha256(self.tokenizer_json.encode("utf-8")).hexdigest()
        from datasets.fingerprint import Hasher

        return Hasher.hash(self.python_tokenizer)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_backend", None)  # rebuilt where the function runs
        return state

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, int32 values) of the token ids of `texts`."""
        if self.tokenizer_json is None:
            rows = (
                token_ids(self.python_tokenizer, texts)
                if not self.add_special_tokens
                else self.python_tokenizer(texts, verbose=False)["input_ids"]
            )
        else:
            backend = self.__dict__.get("_backend")
            if backend is None:
                backend = _backend(self.tokenizer_json)
                self.__dict__["_backend"] = backend
            encodings = backend.encode_batch_fast(texts, add_special_tokens=self.add_special_tokens)
            rows = [e.ids for e in encodings]
        rows = cast(list[list[int]], rows)
        if not rows:
            return np.zeros(1, np.int64), np.zeros(0, np.int32)
        values, lens = _core.flatten_rows(list(rows), self.output_column)
        offsets = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        return offsets, values.astype(np.int32)

    def _texts(self, column: pa.Array | pa.ChunkedArray) -> tuple[list[str], np.ndarray | None]:
        """The texts to encode and, for lists of sentences kept apart (`join=None`), the
        document offsets into them."""
        chunks = chunks_of(column)
        arr = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)
        t = arr.type
        doc_offsets = None
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            vt = t.value_type
            if not (pa.types.is_string(vt) or pa.types.is_large_string(vt) or pa.types.is_null(vt)):
                raise TypeError(
                    f"column {self.column!r} must hold texts or lists of texts, got Arrow type {t}"
                )
            flat = flat_list(arr, self.column)  # null rows raise here
            if flat.values.null_count:
                raise ValueError(f"column {self.column!r} has a missing (null) sentence")
            if self.join is None:
                arr, doc_offsets = flat.values, flat.offsets
            else:
                joined = arr.cast(pa.list_(pa.large_string()))
                arr = pc.binary_join(joined, pa.scalar(self.join, pa.large_string()))
        elif pa.types.is_null(t) and len(arr) == 0:
            return [], None
        elif not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            raise TypeError(
                f"column {self.column!r} must hold texts or lists of texts, got Arrow type {t}"
            )
        if arr.null_count:
            first = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"column {self.column!r} has a missing (null) text at row {first}")
        if pa.types.is_null(arr.type):  # lists of no sentences at all
            return [], doc_offsets
        return arr.to_pylist(), doc_offsets

    def tokenize_table(self, table: pa.Table) -> pa.Table:
        """Tokenize an Arrow batch; returns a `pa.Table` (the output column, plus the batch's
        columns with `keep_columns`)."""
        if self.column not in table.column_names:
            raise ValueError(
                f"the batch has no {self.column!r} column (columns: {table.column_names})"
            )
        texts, doc_offsets = self._texts(table.column(self.column))
        offsets, values = self._encode(texts)
        ids = list_array(offsets, pa.array(values), large=False)
        if doc_offsets is not None:
            ids = list_array(doc_offsets, ids, large=False)
        if not self.keep_columns:
            return pa.table({self.output_column: ids})
        if self.output_column in table.column_names:
            table = table.drop_columns([self.output_column])
        return table.append_column(self.output_column, ids)

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        if isinstance(batch, pa.Table):
            return self.tokenize_table(batch)
        if type(batch).__name__ == "DataFrame" and hasattr(batch, "to_dict"):  # pandas
            out = self.tokenize_table(pa.Table.from_pandas(batch, preserve_index=False))
            return out.to_pandas()
        if isinstance(batch, Mapping):
            if self.column not in batch:
                raise ValueError(
                    f"the batch has no {self.column!r} column (columns: {sorted(batch)})"
                )
            table = pa.table({self.column: _text_column(batch[self.column], self.column)})
            ids = self.tokenize_table(table).column(self.output_column).combine_chunks()
            out = {self.output_column: _dict_rows(ids)}
            if self.keep_columns:
                out = {**{k: v for k, v in batch.items() if k != self.output_column}, **out}
            return out
        raise TypeError(
            "Tokenize is a batched map function: it takes a pa.Table (dataset.with_format("
            f"'arrow')) or a dict of columns, got {type(batch).__name__}"
        )


@functools.lru_cache(maxsize=4)
def _backend(tokenizer_json: str) -> Any:
    """The `tokenizers` tokenizer of a serialization, built once per process (map functions
    arrive unpickled in every Ray task)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer_json)
    backend.no_truncation()
    backend.no_padding()
    return backend


def _dict_rows(ids: pa.Array) -> Any:
    """Output ids for a dict batch: NumPy rows, or for sentence-wise ids a list of lists of
    NumPy rows (one list per document)."""
    if not is_list_type(ids.type.value_type):
        return numpy_rows(ids)
    docs = flat_list(ids, "output")
    sentences = flat_list(docs.values, "output")
    rows = (
        np.split(sentences.values.to_numpy(), sentences.offsets[1:-1]) if len(docs.values) else []
    )
    bounds = docs.offsets.tolist()
    return [rows[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _text_column(rows: Any, name: str) -> pa.Array:
    """Texts (or lists of texts) of a dict batch as an Arrow array."""
    if isinstance(rows, (pa.Array, pa.ChunkedArray)):
        return rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    if isinstance(rows, np.ndarray):
        rows = [list(r) if isinstance(r, np.ndarray) else r for r in rows.tolist()]
    if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)):
        raise TypeError(f"column {name!r} must be a list of texts, got {type(rows).__name__}")
    try:
        return pa.array(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise TypeError(f"column {name!r} must hold texts or lists of texts: {e}") from e
