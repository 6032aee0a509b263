"""Collation speed: mlmkit against transformers' collator and a vectorised NumPy reference.

Measured run (ratios are computed between benchmarks of the same run):
    pytest benchmarks/test_bench_collator.py --benchmark-enable --benchmark-only \
        --benchmark-json=.benchmarks/collator.json
    python benchmarks/ratios.py .benchmarks/collator.json
"""

from __future__ import annotations

import datasets
import pytest
import torch
import transformers

import mlmkit
from mlmkit.cli.bench import (
    dataloader_epoch,
    feature_rows,
    padded_array,
    synthetic_tokenizer,
    token_rows,
)

from .numpy_reference import NumpyMLMCollator

B = 32


@pytest.fixture(scope="module")
def tokenizer():
    torch.set_num_threads(1)
    return synthetic_tokenizer()


def make(name, tokenizer):
    if name == "transformers":
        return transformers.DataCollatorForLanguageModeling(tokenizer)
    if name == "numpy_reference":
        return NumpyMLMCollator(tokenizer)
    return mlmkit.DataCollatorForLanguageModeling(tokenizer)


def tag(benchmark, tokens, baseline):
    benchmark.extra_info["tokens"] = tokens
    benchmark.extra_info["baseline"] = baseline


@pytest.mark.parametrize("length", [128, 512])
@pytest.mark.parametrize("name", ["transformers", "numpy_reference", "mlmkit"])
def test_rows_as_lists(benchmark, tokenizer, name, length):
    benchmark.group = f"rows as lists, B={B} L={length}"
    tag(benchmark, B * length, name != "mlmkit")
    collate = make(name, tokenizer)
    feats = feature_rows(tokenizer, B, length)
    batch = benchmark(collate, feats)
    assert batch["labels"].shape == (B, length)


@pytest.mark.parametrize("name", ["transformers_masking_only", "mlmkit"])
def test_padded_array(benchmark, tokenizer, name):
    """mlmkit on a ready (B, L) int64 array versus transformers' masking step alone on a ready
    tensor (no padding at all)."""
    benchmark.group = f"padded 2-D array, B={B} L=512"
    tag(benchmark, B * 512, name != "mlmkit")
    arr = padded_array(tokenizer, B, 512)
    if name == "mlmkit":
        collate = make("mlmkit", tokenizer)
        batch = benchmark(collate, arr)
        assert batch["input_ids"].shape == (B, 512)
    else:
        theirs = transformers.DataCollatorForLanguageModeling(tokenizer)
        tensor = torch.from_numpy(arr)
        special = torch.isin(tensor, torch.tensor(tokenizer.all_special_ids))
        ids, labels = benchmark(lambda: theirs.torch_mask_tokens(tensor.clone(), special))
        assert labels.shape == (B, 512)


@pytest.mark.parametrize("name", ["transformers", "mlmkit"])
def test_dataloader_over_dataset(benchmark, tokenizer, name):
    """A DataLoader (num_workers=0) over a `datasets.Dataset` of token-id lists, as Trainer
    iterates it: fetching rows plus collation, per batch."""
    n_batches = 8
    benchmark.group = f"DataLoader over datasets.Dataset, B={B} L=512 ({n_batches} batches)"
    tag(benchmark, n_batches * B * 512, name != "mlmkit")
    ds = datasets.Dataset.from_dict({"input_ids": token_rows(tokenizer, n_batches * B, 512)})
    collate = make(name, tokenizer)
    assert benchmark(dataloader_epoch, collate, ds, B) == n_batches
