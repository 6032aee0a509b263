"""One training step (forward, backward, zeroing the gradients) of the model `mlmkit pretrain`
trains by default, with the stock `BertForMaskedLM` head (vocabulary projection at every position)
against `mlmkit.cli.sparse_head` (projection at the labelled positions only), on the CPU.

Default config of `mlmkit pretrain`: 2 layers, hidden 128, 2 heads, intermediate 512, vocabulary
4096, no dropout, batch 32 x 64 tokens, 40% of the positions labelled (`--mlm_probability 0.4`).
By default (CI smoke run, `--benchmark-disable`) each step runs once. Measured run:

    pytest benchmarks/test_bench_sparse_head.py --benchmark-enable --benchmark-only \
        --benchmark-json=.benchmarks/sparse_head.json
    python benchmarks/ratios.py .benchmarks/sparse_head.json
"""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from mlmkit.cli.sparse_head import SparseHeadBertForMaskedLM

B, L, VOCAB, LABELLED = 32, 64, 4096, 0.4
CONFIG = dict(
    vocab_size=VOCAB,
    hidden_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=512,
    max_position_embeddings=128,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
MODELS = {"stock_head": (BertForMaskedLM, True), "sparse_head": (SparseHeadBertForMaskedLM, False)}


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, VOCAB, (B, L), generator=g)
    labels = torch.where(torch.rand(B, L, generator=g) < LABELLED, ids, -100)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


@pytest.mark.parametrize("name", list(MODELS))
def test_training_step(benchmark, batch, name):
    model_class, baseline = MODELS[name]
    benchmark.group = f"training step, default pretrain model, {B}x{L} tokens"
    benchmark.extra_info.update(tokens=B * L, baseline=baseline)
    torch.manual_seed(0)
    model = model_class(BertConfig(**CONFIG)).train()

    def step():
        model.zero_grad(set_to_none=True)
        loss = model(**batch).loss
        loss.backward()
        return loss

    loss = benchmark(step)
    assert torch.isfinite(loss)
    # Same initial weights: the same loss as the stock model's.
    torch.manual_seed(0)
    stock = BertForMaskedLM(BertConfig(**CONFIG)).train()
    model.zero_grad(set_to_none=True)
    torch.testing.assert_close(model(**batch).loss, stock(**batch).loss)
