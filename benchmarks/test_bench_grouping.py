"""Chunk grouping: `mlmkit.GroupTexts` against a pure pyarrow/NumPy implementation and
run_mlm.py's `itertools.chain` `group_texts`, on the same synthetic tokenized corpus.

Two settings, each one pytest-benchmark group:
* plain: run_mlm.py's grouping (no separators, no special tokens, tail dropped), block 512;
* bert: `[CLS] ... [SEP]` around every block, `[SEP]` between documents, tail padded, block 512.

Smoke run (CI): `pytest benchmarks/test_bench_grouping.py` (tiny corpus, each function once, and
the implementations are checked to agree). Measured run (>= 50 M tokens):
    MLMKIT_BENCH_FULL=1 python benchmarks/test_bench_grouping.py
prints the table recorded in benchmarks/RESULTS.md: least CPU and wall time of several repeats,
all in one process and one run. Every implementation gets its batches in its natural format,
prepared beforehand, as `datasets.map` hands them (a `pa.Table` slice for mlmkit and
pyarrow/NumPy, Python lists for run_mlm.py), and each output is dropped after its batch, as
`datasets.map` does once it is written. pytest-benchmark can time the same functions with
    MLMKIT_BENCH_FULL=1 pytest benchmarks/test_bench_grouping.py --benchmark-enable --benchmark-only
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from itertools import chain
from typing import Any

import mlmkit
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

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


# -- run_mlm.py (transformers/examples/pytorch/language-modeling/run_mlm.py, group_texts) -------


def run_mlm_group_texts(examples: dict[str, list], max_seq_length: int = BLOCK) -> dict:
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


# -- pure pyarrow / NumPy ---------------------------------------------------------------------


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


# -- mlmkit ----------------------------------------------------------------------------------

PLAIN = mlmkit.GroupTexts(BLOCK)
BERT = mlmkit.GroupTexts(BLOCK, separator=SEP, prefix=(CLS,), suffix=(SEP,), tail="pad", pad_id=PAD)


def run_all(fn: Callable[[Any], Any], batches: list) -> list:
    return [fn(b) for b in batches]


def stream(fn: Callable[[Any], Any], batches: list) -> int:
    """Apply `fn` to every batch and drop each output once counted, as `datasets.map` does
    after writing it (what is timed)."""
    rows = 0
    for b in batches:
        out = fn(b)
        rows += len(out) if isinstance(out, pa.Table) else len(next(iter(out.values())))
    return rows


def _tables_equal(a: list[pa.Table], b: list[pa.Table]) -> bool:
    return all(x.to_pydict() == y.to_pydict() for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def corpus() -> dict[str, Any]:
    table = synthetic_corpus()
    batches = arrow_batches(table)
    return {"arrow": batches, "python": python_batches(batches)}


@pytest.mark.benchmark(group="grouping-plain")
def test_plain_mlmkit(benchmark, corpus):
    benchmark(stream, PLAIN, corpus["arrow"])
    out = run_all(PLAIN, corpus["arrow"])
    assert _tables_equal(out, run_all(numpy_group_plain, corpus["arrow"]))
    assert [o.to_pydict() for o in out] == [run_mlm_group_texts(b) for b in corpus["python"]]


@pytest.mark.benchmark(group="grouping-plain")
def test_plain_numpy(benchmark, corpus):
    benchmark(stream, numpy_group_plain, corpus["arrow"])


@pytest.mark.benchmark(group="grouping-plain")
def test_plain_run_mlm_chain(benchmark, corpus):
    benchmark(stream, run_mlm_group_texts, corpus["python"])


@pytest.mark.benchmark(group="grouping-bert")
def test_bert_mlmkit(benchmark, corpus):
    benchmark(stream, BERT, corpus["arrow"])
    out = run_all(BERT, corpus["arrow"])
    assert _tables_equal(out, run_all(numpy_group_bert, corpus["arrow"]))
    assert [o.to_pydict() for o in out] == [chain_group_bert(b) for b in corpus["python"]]


@pytest.mark.benchmark(group="grouping-bert")
def test_bert_numpy(benchmark, corpus):
    benchmark(stream, numpy_group_bert, corpus["arrow"])


@pytest.mark.benchmark(group="grouping-bert")
def test_bert_chain(benchmark, corpus):
    benchmark(stream, chain_group_bert, corpus["python"])


# -- script: the ratio table -----------------------------------------------------------------


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Least CPU time and least wall time of `repeats` runs. The process is single-threaded, so
    its CPU time is the work done; wall time also counts the time other programs on this
    shared machine held the cores."""
    cpu = wall = float("inf")
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return cpu, wall


def main() -> None:
    table = synthetic_corpus()
    n_tokens = len(pc.list_flatten(table.column("input_ids")))
    batches = arrow_batches(table)
    py = python_batches(batches)
    print(
        f"corpus: {len(table)} documents, {n_tokens / 1e6:.1f} M tokens, columns {COLUMNS}, "
        f"map batches of {MAP_BATCH} documents, block {BLOCK}"
    )
    rows = []
    for setting, ours, numpy_fn, chain_fn in (
        ("plain", PLAIN, numpy_group_plain, run_mlm_group_texts),
        ("bert", BERT, numpy_group_bert, chain_group_bert),
    ):
        out = run_all(ours, batches)
        assert _tables_equal(out, run_all(numpy_fn, batches)), setting
        times = {
            "mlmkit.GroupTexts (Arrow batches)": _best(lambda o=ours: stream(o, batches), 20),
            "pyarrow/NumPy": _best(lambda f=numpy_fn: stream(f, batches), 20),
            "itertools.chain (run_mlm.py)": _best(lambda f=chain_fn: stream(f, py), 2),
        }
        np_cpu, np_wall = times["pyarrow/NumPy"]
        chain_cpu, chain_wall = times["itertools.chain (run_mlm.py)"]
        for name, (cpu, wall) in times.items():
            rows.append(
                f"| {setting} | {name} | {cpu:.3f} | {n_tokens / cpu / 1e6:,.0f} | "
                f"{np_cpu / cpu:.2f}x | {chain_cpu / cpu:.0f}x | {wall:.3f} | "
                f"{np_wall / wall:.2f}x | {chain_wall / wall:.0f}x |"
            )
    print(
        "| setting | implementation | CPU s | M tokens/s (CPU) | vs pyarrow/NumPy | vs chain "
        "| wall s | vs pyarrow/NumPy (wall) | vs chain (wall) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    _print_loss(table, n_tokens)


def _print_loss(table: pa.Table, n_tokens: int) -> None:
    """Text lost to dropped tails, and padding added, for a few map batch sizes."""
    print("| map batch (documents) | tail | tokens in no block | padding tokens |")
    print("|---|---|---|---|")
    ids_only = table.select(["input_ids"])
    for size in (1000, 10_000, 50_000):
        for tail in ("drop", "pad"):
            g = mlmkit.GroupTexts(BLOCK, tail=tail, pad_id=PAD)
            kept = padded = 0
            for b in arrow_batches(ids_only, size):
                out = g(b)
                kept += len(pc.list_flatten(out.column("input_ids")))
                if tail == "pad":
                    mask = pc.list_flatten(out.column("attention_mask")).to_numpy()
                    padded += int((mask == 0).sum())
            lost = n_tokens - (kept - padded)
            print(
                f"| {size} | {tail} | {lost:,} ({lost / n_tokens:.4%}) | "
                f"{padded:,} ({padded / n_tokens:.4%}) |"
            )


if __name__ == "__main__":
    main()
