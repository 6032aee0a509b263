"""`SentencePairs`: BERT next-sentence-prediction / ALBERT sentence-order-prediction pairs as a
`datasets.map(batched=True)` function (the instance algorithm of Google's
`create_pretraining_data.py`, one map batch at a time)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from . import _core, validation
from .arrow_lists import FlatList, chunks_of, flat_list, list_array
from .seeding import split64
from .templates import PairTemplate, pair_template
from .vocab import token_ids

Task = Literal["nsp", "sop"]
TASKS: tuple[Task, ...] = ("nsp", "sop")

PAIRS = 0x50414952  # "PAIR": first key word of every document's random stream

LABEL_COLUMN = {"nsp": "next_sentence_label", "sop": "sentence_order_label"}


@dataclass
class SentencePairs:
    """Turn documents (lists of sentences) into NSP or SOP sentence pairs.

    Use as `dataset.map(SentencePairs(tokenizer, seed=0), batched=True,
    remove_columns=dataset.column_names)` (or on `dataset.with_format("arrow")`, where the output
    `pa.Table` replaces the batch). Each row of `column` is one document: a list of sentence
    strings (tokenized here, in one batched call, without special tokens) or a list of token-id
    lists. Output columns: `input_ids`, `token_type_ids` and `next_sentence_label` (task="nsp";
    1 = B is a random sentence) or `sentence_order_label` (task="sop"; 1 = swapped), ready for
    `mlmkit.DataCollatorForLanguageModeling` and `BertForPreTraining` / `AlbertForPreTraining`.

    Semantics of Google's `create_instances_from_document` (see `rust/pairs.rs`): a target
    length of `max_seq_length` minus the special tokens (shorter, uniform in [2, target], with
    `short_seq_prob`), sentences gathered up to the target, a random split point into A and B,
    with `nsp_probability` B replaced by sentences from a random start in another document of
    the same map batch (the unused sentences go back to the document), and the pair trimmed to
    fit by removing tokens from the front or back (at random) of the longer side. task="sop"
    swaps A and B with `nsp_probability` instead; as in ALBERT's reference code, a chunk of one
    sentence (no split point) still gets a random B and label 1.

    Differences: the random document is drawn among the other documents of the map batch (not
    the whole corpus; Google's own code retries 10 times to avoid the same document, here it
    never is unless the batch has one document), instances are not shuffled (use
    `dataset.shuffle`), and the masking is left to the collator. Every random draw is a pure
    function of (`seed`, the document's content, the batch), so results are reproducible with
    any `num_proc`. Memory is bounded by the map batch. `dupe_factor` makes that many passes with
    different draws (Google's default is 10).

    The special tokens come from the tokenizer's pair template (`[CLS] A [SEP] B [SEP]` with
    token types 0/1 for BERT; `<s> A </s></s> B </s>` for RoBERTa-style tokenizers).
    """

    tokenizer: Any
    max_seq_length: int = 128
    short_seq_prob: float = 0.1
    nsp_probability: float = 0.5
    task: Task = "nsp"
    seed: int = 0
    dupe_factor: int = 1
    column: str = "sentences"

    def __post_init__(self) -> None:
        if self.tokenizer is None:
            raise ValueError("a tokenizer is required (it gives the special tokens of a pair)")
        validation.one_of("task", self.task, TASKS)
        self.short_seq_prob = validation.probability("short_seq_prob", self.short_seq_prob)
        self.nsp_probability = validation.probability("nsp_probability", self.nsp_probability)
        self.max_seq_length = validation.positive_int("max_seq_length", self.max_seq_length)
        self.dupe_factor = validation.positive_int("dupe_factor", self.dupe_factor)
        self.seed = validation.integer_like(self.seed, "seed")
        self.template: PairTemplate = pair_template(self.tokenizer)
        t = self.template
        if not t.middle or not (t.prefix or t.suffix):
            raise ValueError(
                "the tokenizer adds no special tokens around a sentence pair (it needs e.g. "
                "[CLS] A [SEP] B [SEP]); NSP/SOP pairs need a tokenizer with cls and sep tokens "
                f"(got prefix {list(t.prefix)}, middle {list(t.middle)}, suffix "
                f"{list(t.suffix)})"
            )
        if self.max_seq_length - t.n_special < 2:
            raise ValueError(
                f"max_seq_length {self.max_seq_length} leaves no room for a pair: the template "
                f"has {t.n_special} special tokens and A and B need at least one token each"
            )

    @property
    def label_column(self) -> str:
        return LABEL_COLUMN[self.task]

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        if _is_dataframe(batch):  # a pandas-formatted dataset
            return self(pa.Table.from_pandas(batch, preserve_index=False)).to_pandas()
        if isinstance(batch, pa.Table):
            if self.column not in batch.column_names:
                raise ValueError(
                    f"the batch has no {self.column!r} column (columns: {batch.column_names})"
                )
            return self._pairs(batch.column(self.column))
        if isinstance(batch, Mapping):
            if self.column not in batch:
                raise ValueError(
                    f"the batch has no {self.column!r} column (columns: {sorted(batch)})"
                )
            try:
                docs = pa.array(_plain_documents(batch[self.column]))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise TypeError(
                    f"column {self.column!r} must hold one list of sentences (strings or token-id "
                    f"lists) per row: {e}"
                ) from e
            out = self._pairs(docs)
            ids = out.column("input_ids").chunk(0)
            types = out.column("token_type_ids").chunk(0)
            return {
                "input_ids": _split_rows(ids),
                "token_type_ids": _split_rows(types),
                self.label_column: out.column(self.label_column).to_numpy(),
            }
        raise TypeError(
            "SentencePairs is a batched map function: it takes a pa.Table (dataset.with_format("
            f"'arrow')) or a dict of columns, got {type(batch).__name__}"
        )

    def _pairs(self, column: pa.Array | pa.ChunkedArray) -> pa.Table:
        docs = _documents(column, self.column)
        sentences = docs.values
        st = sentences.type
        if pa.types.is_string(st) or pa.types.is_large_string(st):
            sent_offsets, tokens = self._tokenize(sentences)
        elif pa.types.is_null(st):  # a batch of no rows
            sent_offsets, tokens = np.zeros(1, np.int64), np.zeros(0, np.int32)
        elif (pa.types.is_list(st) or pa.types.is_large_list(st)) and pa.types.is_integer(
            st.value_type
        ):
            flat = flat_list(sentences, f"{self.column} sentences")
            if flat.values.null_count:
                raise ValueError(f"column {self.column!r} has a missing (null) token id")
            sent_offsets, tokens = flat.offsets, flat.values.to_numpy()
        else:
            raise TypeError(
                f"column {self.column!r} must hold lists of sentence strings or lists of "
                f"token-id lists, got Arrow type {column.type}"
            )
        if tokens.dtype.kind not in "iu" or tokens.dtype == np.int8 or tokens.dtype == np.uint8:
            tokens = tokens.astype(np.int32)
        elif tokens.dtype == np.uint64:
            tokens = tokens.astype(np.int64)
        t = self.template
        ids, types, offsets, labels = _core.pair_instances(
            docs.offsets,
            sent_offsets,
            tokens,
            t,
            max_num_tokens=self.max_seq_length - t.n_special,
            short_seq_prob=self.short_seq_prob,
            nsp_probability=self.nsp_probability,
            task=self.task,
            key_words=np.array([PAIRS, *split64(self.seed)], dtype=np.uint32),
            dupe_factor=self.dupe_factor,
        )
        return pa.table(
            {
                "input_ids": list_array(offsets, pa.array(ids), large=False),
                "token_type_ids": list_array(offsets, pa.array(types.view(np.int8)), large=False),
                self.label_column: pa.array(labels.astype(np.int64)),
            }
        )

    def _tokenize(self, sentences: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of every sentence of the batch, from one batched tokenizer call."""
        if sentences.null_count:
            raise ValueError(f"column {self.column!r} has a missing (null) sentence")
        texts = sentences.to_pylist()
        if not texts:
            return np.zeros(1, np.int64), np.zeros(0, np.int32)
        values, lens = _core.flatten_rows(list(token_ids(self.tokenizer, texts)), "input_ids")
        offsets = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        if len(values) and int(values.max()) < 2**31:
            values = values.astype(np.int32)
        return offsets, values


def _documents(column: pa.Array | pa.ChunkedArray, name: str) -> FlatList:
    """The documents of a batch: offsets into one flat array of sentences."""
    if isinstance(column, pa.ChunkedArray):
        chunks = chunks_of(column)
        column = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise TypeError(
            f"column {name!r} must hold one list of sentences per row (a document), got Arrow "
            f"type {column.type}"
        )
    docs = flat_list(column, name)
    lens = np.diff(docs.offsets)
    empty = np.flatnonzero(lens == 0)
    if empty.size:
        raise ValueError(
            f"row {int(empty[0])} of column {name!r} is a document with no sentences; filter "
            "empty documents out first (dataset.filter(lambda d: len(d[...]) > 0))"
        )
    return docs


def _split_rows(column: pa.Array) -> list[np.ndarray]:
    flat = flat_list(column, "output")
    return np.split(flat.values.to_numpy(), flat.offsets[1:-1]) if len(column) else []


def _is_dataframe(batch: Any) -> bool:
    return type(batch).__name__ == "DataFrame" and hasattr(batch, "to_dict")


def _plain_documents(docs: Any) -> Any:
    """Documents of a torch-formatted dataset (lists of tensors) as NumPy, which Arrow reads."""
    first = next((d for d in docs if len(d)), None) if isinstance(docs, list) else None
    if first is not None and hasattr(first[0], "detach"):
        return [[s.detach().cpu().numpy() for s in d] for d in docs]
    return docs
