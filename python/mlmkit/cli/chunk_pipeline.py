"""The work `mlmkit preprocess` does on one chunk of documents, whichever engine runs it.

A chunk is a run of consecutive documents of one split (see `chunks.py`). `ChunkPipeline` turns
each chunk row into one result row: the chunk's examples as nested lists (blocks of
`GroupTexts`, or pairs of `SentencePairs`) plus counts. Blocks never span chunks and the random
document of an NSP/SOP pair is drawn inside the chunk, so a chunk's result depends only on its
documents and the settings: the same whatever engine, worker or order computes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlmkit.grouping import GroupTexts
from mlmkit.pairs import SentencePairs
from mlmkit.tokenizing import Tokenize

Objective = Literal["mlm", "nsp", "sop"]

CHUNK_SCHEMA = pa.schema(
    [
        ("split", pa.string()),
        ("chunk", pa.int64()),
        ("sentences", pa.list_(pa.list_(pa.large_string()))),
    ]
)
COUNTS = ("documents", "text_tokens", "rows", "tokens")
MLM_COUNTS = ("padding_tokens", "dropped_tokens")
PAIR_COUNTS = ("sentences", "label_1")
_IDS = pa.list_(pa.int32())
_FLAGS = pa.list_(pa.int8())


def example_schema(objective: Objective, tail: str, label_column: str) -> pa.Schema:
    """Columns of the written examples."""
    if objective == "mlm":
        fields = [("input_ids", _IDS)]
        if tail == "pad":
            fields.append(("attention_mask", _FLAGS))
        return pa.schema(fields)
    return pa.schema([("input_ids", _IDS), ("token_type_ids", _FLAGS), (label_column, pa.int64())])


def result_schema(examples: pa.Schema, objective: Objective) -> pa.Schema:
    """One row per chunk: its place, counts, and its examples as one list per column."""
    counts = COUNTS + (MLM_COUNTS if objective == "mlm" else PAIR_COUNTS)
    return pa.schema(
        [("split", pa.string()), ("chunk", pa.int64())]
        + [(name, pa.int64()) for name in counts]
        + [(f.name, pa.list_(f.type)) for f in examples]
    )


@dataclass
class ChunkPipeline:
    """Batched map function over chunk rows (`CHUNK_SCHEMA`) -> result rows (`result_schema`).

    A document is a list of text units (lines, or paragraphs of a text field). mlm: `tokenize`
    (the units joined by a space) -> `group`. nsp/sop: the units are the sentences, or with
    `split_sentences` are split into sentences here (in the workers, not on the driver) ->
    `tokenize` (sentence by sentence) -> `pairs`. Every chunk of a batch is processed on its
    own, so how an engine batches chunk rows does not matter."""

    objective: Objective
    tokenize: Tokenize
    group: GroupTexts | None = None
    pairs: SentencePairs | None = None
    split_sentences: bool = False

    def __post_init__(self) -> None:
        if (self.objective == "mlm") != (self.group is not None) or (self.objective != "mlm") != (
            self.pairs is not None
        ):
            raise ValueError("mlm needs `group`, nsp/sop need `pairs` (and only that)")
        want_join = None if self.objective != "mlm" else self.tokenize.join
        if self.tokenize.column != "sentences" or self.tokenize.join != want_join:
            raise ValueError("tokenize must read the 'sentences' column (join=None for pairs)")

    @property
    def examples(self) -> pa.Schema:
        tail = self.group.tail if self.group is not None else "drop"
        label = self.pairs.label_column if self.pairs is not None else ""
        return example_schema(self.objective, tail, label)

    @property
    def schema(self) -> pa.Schema:
        return result_schema(self.examples, self.objective)

    def __call__(self, batch: Any) -> pa.Table:
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        rows = [self.process(batch.slice(i, 1)) for i in range(batch.num_rows)]
        if not rows:
            return self.schema.empty_table()
        return pa.concat_tables(rows)

    def process(self, row: pa.Table) -> pa.Table:
        """The result row of one chunk row."""
        docs = row.column("sentences").combine_chunks().flatten()  # list<string> per document
        if self.split_sentences and self.pairs is not None:
            from .text_corpus import split_units

            docs = pa.array([split_units(d) for d in docs.to_pylist()], docs.type)
        ids = self.tokenize.tokenize_table(pa.table({"sentences": docs}))
        counts: dict[str, int] = {"documents": len(docs)}
        if self.group is not None:
            column = ids.column("input_ids").combine_chunks()
            counts["text_tokens"] = len(column.flatten())
            out = self.group.group_table(ids)
            counts.update(self._block_counts(out, column))
        else:
            assert self.pairs is not None
            column = ids.column("input_ids").combine_chunks()
            counts["sentences"] = len(docs.flatten())
            counts["text_tokens"] = len(column.flatten().flatten())
            out = self.pairs(pa.table({"sentences": column}))
            counts["rows"] = out.num_rows
            counts["tokens"] = len(out.column("input_ids").combine_chunks().flatten())
            counts["label_1"] = int(pc.sum(out.column(self.pairs.label_column)).as_py() or 0)
        out = out.select(self.examples.names).cast(self.examples)
        fields: dict[str, pa.Array] = {
            "split": row.column("split").combine_chunks(),
            "chunk": row.column("chunk").combine_chunks(),
        }
        fields.update({k: pa.array([v], pa.int64()) for k, v in counts.items()})
        for name in self.examples.names:
            values = out.column(name).combine_chunks()
            fields[name] = pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), values)
        return pa.table(fields, schema=result_schema(self.examples, self.objective))

    def _block_counts(self, blocks: pa.Table, docs: pa.Array) -> dict[str, int]:
        """Rows, tokens, padding and text tokens not in any block (only tail="drop" drops);
        checks that the blocks hold every text token and separator otherwise."""
        g = self.group
        assert g is not None
        lengths = pc.list_value_length(blocks.column("input_ids")).to_numpy()
        n_blocks = len(lengths)
        padding = 0
        if "attention_mask" in blocks.column_names:
            mask = blocks.column("attention_mask").combine_chunks().flatten()
            padding = int(len(mask) - (pc.sum(mask).as_py() or 0))
        tokens = int(lengths.sum())
        n_docs = int(np.count_nonzero(pc.list_value_length(docs).to_numpy()))
        separators = max(n_docs - 1, 0) if g.separator is not None else 0
        text_and_separators = len(docs.flatten()) + separators
        in_blocks = tokens - padding - n_blocks * (len(g.prefix) + len(g.suffix))
        dropped = text_and_separators - in_blocks
        if dropped < 0 or (g.tail != "drop" and dropped):
            raise RuntimeError(
                f"blocks hold {in_blocks} text tokens and separators, expected "
                f"{text_and_separators} (tail={g.tail!r})"
            )
        return {
            "rows": n_blocks,
            "tokens": tokens,
            "padding_tokens": padding,
            "dropped_tokens": dropped,
        }
