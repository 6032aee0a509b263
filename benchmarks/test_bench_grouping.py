"""Chunk grouping: `mlmkit.GroupTexts` against a pure pyarrow/NumPy implementation and
run_mlm.py's `itertools.chain` `group_texts`, on the same synthetic tokenized corpus.

Two settings, each one benchmark group:
* plain: run_mlm.py's grouping (no separators, no special tokens, tail dropped), block 512;
* bert: `[CLS] ... [SEP]` around every block, `[SEP]` between documents, tail padded, block 512.
A third group times GroupTexts alone for several map batch sizes and records how much text the
dropped tails lose, and how much padding the padded ones add.

Every implementation gets its map batches in its natural format, prepared beforehand, as
`datasets.map` hands them (a `pa.Table` slice for mlmkit and pyarrow/NumPy, a dict of Python
lists for run_mlm.py), and each output is dropped after its batch, as `datasets.map` does once it
has written it. `test_implementations_agree` checks that all three give the same blocks.

By default (CI smoke run, `--benchmark-disable`) the corpus is tiny and each function runs once.
The figures in benchmarks/RESULTS.md (>= 50 M tokens) come from

    MLMKIT_BENCH_FULL=1 pytest benchmarks/test_bench_grouping.py --benchmark-enable \
        --benchmark-only --benchmark-timer=time.process_time \
        --benchmark-json=.benchmarks/grouping.json
    python benchmarks/ratios.py .benchmarks/grouping.json
"""

from __future__ import annotations

import os
from collections.abc import Callable
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import mlmkit

FULL = os.environ.get("MLMKIT_BENCH_FULL") == "1"
N_DOCS = 50_000 if FULL else 200
N_TOKENS = 51_000_000 if FULL else 40_000
MAP_BATCH = 1000 if FULL else 50
BLOCK = 512 if FULL else 64
CLS, SEP, PAD = 101, 102, 0
COLUMNS = ("input_ids", "token_type_ids", "attention_mask")


def synthetic_corpus(n_docs: int = N_DOCS, n_tokens: int = N_TOKENS, seed: int = 0) -> pa.Table:
    """A tokenized corpus as `datasets` stores it (list<int32> ids, list<int8> masks) with
    log-normal document lengths (median ~ 0.6 x mean, a long tail, like web/Wikipedia text)."""
    rng = np.random.default_rng(seed)
    raw = rng.lognormal(mean=0.0, sigma=1.0, size=n_docs)
    lens = np.maximum(1, np.round(raw / raw.sum() * n_tokens)).astype(np.int64)
    lens[-1] += n_tokens - lens.sum()
    offsets = np.zeros(n_docs + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    total = int(offsets[-1])
    ids = rng.integers(1000, 30522, size=total, dtype=np.int32)
    off = pa.array(offsets)
    return pa.table(
        {
            "input_ids": pa.ListArray.from_arrays(off, pa.array(ids)),
            "token_type_ids": pa.ListArray.from_arrays(off, pa.array(np.zeros(total, np.int8))),
            "attention_mask": pa.ListArray.from_arrays(off, pa.array(np.ones(total, np.int8))),
        }
    )


def arrow_batches(table: pa.Table, size: int = MAP_BATCH) -> list[pa.Table]:
    return [table.slice(i, size) for i in range(0, len(table), size)]


def python_batches(batches: list[pa.Table]) -> list[dict[str, list[list[int]]]]:
    return [b.to_pydict() for b in batches]


def run_mlm_group_texts(examples: dict[str, list], max_seq_length: int = BLOCK) -> dict:
    """`group_texts` of transformers' examples/pytorch/language-modeling/run_mlm.py."""
    # Concatenate all texts.
    concatenated_examples = {k: list(chain(*examples[k])) for k in examples.keys()}
    total_length = len(concatenated_examples[list(examples.keys())[0]])
    # We drop the small remainder, and if the total_length < max_seq_length  we exclude this batch
    # and return an empty dict.
    total_length = (total_length // max_seq_length) * max_seq_length
    # Split by chunks of max_len.
    result = {
        k: [t[i : i + max_seq_length] for i in range(0, total_length, max_seq_length)]
        for k, t in concatenated_examples.items()
    }
    return result


def chain_group_bert(examples: dict[str, list], block: int = BLOCK) -> dict:
    """The same idea with separators, [CLS]/[SEP] and a padded tail."""
    fills = {"input_ids": (SEP, PAD), "token_type_ids": (0, 0), "attention_mask": (1, 0)}
    content = block - 2
    result = {}
    for k, docs in examples.items():
        ins, pad = fills[k]
        stream: list[int] = []
        for doc in docs:
            if doc:
                if stream:
                    stream.append(ins)
                stream.extend(doc)
        head = CLS if k == "input_ids" else ins
        blocks = [[head, *stream[i : i + content], ins] for i in range(0, len(stream), content)]
        if blocks and len(blocks[-1]) < block:
            blocks[-1] += [pad] * (block - len(blocks[-1]))
        result[k] = blocks
    return result


def _flat(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    arr = column.combine_chunks()
    offsets = arr.offsets.to_numpy()
    values = arr.values.slice(offsets[0], offsets[-1] - offsets[0]).to_numpy()
    return offsets - offsets[0], values


def numpy_group_plain(table: pa.Table, block: int = BLOCK) -> pa.Table:
    out = {}
    for name in table.column_names:
        values = pc.list_flatten(table.column(name)).combine_chunks()
        n = len(values) // block * block
        offsets = pa.array(np.arange(0, n + 1, block, dtype=np.int32))
        out[name] = pa.ListArray.from_arrays(offsets, values.slice(0, n))
    return pa.table(out)


def numpy_group_bert(table: pa.Table, block: int = BLOCK) -> pa.Table:
    fills = {"input_ids": (SEP, PAD), "token_type_ids": (0, 0), "attention_mask": (1, 0)}
    content = block - 2
    out = {}
    for name in table.column_names:
        ins, pad = fills[name]
        offsets, values = _flat(table.column(name))
        starts = np.unique(offsets[1:-1])  # empty documents get no separator
        starts = starts[(starts > 0) & (starts < len(values))]
        stream = np.insert(values, starts, ins)
        n_blocks = -(-len(stream) // content)
        tail = len(stream) - (n_blocks - 1) * content
        body = np.empty((n_blocks, block), values.dtype)
        body[:, 0] = CLS if name == "input_ids" else ins
        full = (n_blocks - 1) * content
        body[:-1, 1:-1] = stream[:full].reshape(-1, content)
        body[:-1, -1] = ins
        if n_blocks:
            body[-1, 1 : 1 + tail] = stream[full:]
            body[-1, 1 + tail] = ins
            body[-1, 2 + tail :] = pad
        flat = body.reshape(-1)
        out[name] = pa.ListArray.from_arrays(
            pa.array(np.arange(0, len(flat) + 1, block, dtype=np.int32)), pa.array(flat)
        )
    return pa.table(out)


PLAIN = mlmkit.GroupTexts(BLOCK)
BERT = mlmkit.GroupTexts(BLOCK, separator=SEP, prefix=(CLS,), suffix=(SEP,), tail="pad", pad_id=PAD)

SETTINGS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "plain": {"mlmkit": PLAIN, "pyarrow_numpy": numpy_group_plain, "chain": run_mlm_group_texts},
    "bert": {"mlmkit": BERT, "pyarrow_numpy": numpy_group_bert, "chain": chain_group_bert},
}


def run_all(fn: Callable[[Any], Any], batches: list) -> list:
    return [fn(b) for b in batches]


def stream(fn: Callable[[Any], Any], batches: list) -> int:
    """Apply `fn` to every batch and drop each output once counted, as `datasets.map` does
    after writing it (what is timed). Returns the number of blocks."""
    rows = 0
    for b in batches:
        out = fn(b)
        rows += len(out) if isinstance(out, pa.Table) else len(next(iter(out.values())))
    return rows


@pytest.fixture(scope="module")
def corpus() -> dict[str, Any]:
    table = synthetic_corpus()
    batches = arrow_batches(table)
    return {
        "table": table,
        "arrow": batches,
        "python": python_batches(batches),
        "tokens": len(pc.list_flatten(table.column("input_ids"))),
    }


def _group_name(setting: str, tokens: int) -> str:
    return (
        f"chunk grouping ({setting}), {tokens / 1e6:.1f} M tokens, block {BLOCK}, "
        f"map batches of {MAP_BATCH} documents"
    )


@pytest.mark.parametrize("name", ["chain", "pyarrow_numpy", "mlmkit"])
@pytest.mark.parametrize("setting", ["plain", "bert"])
def test_grouping(benchmark, corpus, setting, name):
    benchmark.group = _group_name(setting, corpus["tokens"])
    benchmark.extra_info.update(baseline=name != "mlmkit", tokens=corpus["tokens"])
    fn = SETTINGS[setting][name]
    batches = corpus["python" if name == "chain" else "arrow"]
    if name == "chain" and FULL:  # ~10 s a round
        blocks = benchmark.pedantic(stream, (fn, batches), rounds=3, iterations=1)
    else:
        blocks = benchmark(stream, fn, batches)
    assert blocks == stream(SETTINGS[setting]["mlmkit"], corpus["arrow"]) > 0


@pytest.mark.parametrize("setting", ["plain", "bert"])
def test_implementations_agree(corpus, setting):
    impl = SETTINGS[setting]
    n = 3 if FULL else len(corpus["arrow"])  # the full corpus as Python lists is slow to compare
    ours = [t.to_pydict() for t in run_all(impl["mlmkit"], corpus["arrow"][:n])]
    assert ours == [t.to_pydict() for t in run_all(impl["pyarrow_numpy"], corpus["arrow"][:n])]
    assert ours == run_all(impl["chain"], corpus["python"][:n])


TAIL_CASES = [
    f"tail={tail}, batch={n}"
    for n in ([1000, 10_000, 50_000] if FULL else [50, 200])
    for tail in ("drop", "pad")
]


@pytest.mark.parametrize("name", TAIL_CASES)
def test_tail_loss(benchmark, corpus, name):
    """GroupTexts by map batch size, with the text lost to dropped tails and the padding
    added by padded ones (in extra_info)."""
    tail, batch_docs = name.removeprefix("tail=").split(", batch=")
    table = corpus["table"].select(["input_ids"])
    batches = arrow_batches(table, int(batch_docs))
    n_tokens = corpus["tokens"]
    benchmark.group = (
        f"tail handling by map batch size, {n_tokens / 1e6:.1f} M tokens, block {BLOCK}"
    )
    g = mlmkit.GroupTexts(BLOCK, tail=tail, pad_id=PAD)
    benchmark(stream, g, batches)
    kept = padded = 0
    for b in batches:
        out = g(b)
        kept += len(pc.list_flatten(out.column("input_ids")))
        if tail == "pad":
            padded += int((pc.list_flatten(out.column("attention_mask")).to_numpy() == 0).sum())
    lost = n_tokens - (kept - padded)
    assert lost < len(batches) * BLOCK and (tail == "drop" or lost == 0)
    benchmark.extra_info.update(
        baseline=False,
        tokens=n_tokens,
        lost_tokens=lost,
        lost_share=f"{lost / n_tokens:.4%}",
        padding_tokens=padded,
        padding_share=f"{padded / n_tokens:.4%}",
    )
