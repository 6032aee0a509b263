"""One training step (forward, backward, zeroing the gradients) with the stock masked-LM head
(vocabulary projection at every position) against `mlmkit.sparse_mlm_head` (projection at the
labelled positions only), same weights, on the CPU with one torch thread (as the other
benchmarks: on this shared 2-core machine torch's two threads made small steps 30x slower).

Models, randomly initialised from a config:

* `distilroberta-base`-sized `RobertaForMaskedLM`: 6 layers, hidden 768, vocabulary 50,265;
* `xlm-roberta-base`-sized `XLMRobertaForMaskedLM`: 12 layers, hidden 768, vocabulary 250,002;
* the model `mlmkit pretrain` trains by default: `BertForMaskedLM`, 2 layers, hidden 128,
  vocabulary 4,096, batch 32 x 64 with 40% labelled (`--mlm_probability 0.4`).

The first two at B=8, L=128 with 15% of the positions labelled. Each benchmark also records
`flop_ratio`, the stock / sparse ratio of the step's floating-point operations (`step_flops`),
which is what the speed-up tends to where the step is compute-bound (a GPU), and the sparse one
`vs_stock_interleaved`, the speed-up measured with stock and sparse steps alternating.

By default (CI smoke run, `--benchmark-disable`) the configs are tiny and each step runs once.
Measured run:

    MLMKIT_BENCH_FULL=1 pytest benchmarks/test_bench_sparse_head.py --benchmark-enable \
        --benchmark-only --benchmark-json=.benchmarks/sparse_head.json
    python benchmarks/ratios.py .benchmarks/sparse_head.json
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import transformers

import mlmkit

FULL = os.environ.get("MLMKIT_BENCH_FULL") == "1"
ROUNDS = 5 if FULL else 1


@dataclass(frozen=True)
class Case:
    model_class: Any
    config: Any
    batch: int
    length: int
    labelled: float


def roberta_sized(config_class: Any, vocab: int, layers: int) -> Any:
    if FULL:
        return config_class(
            vocab_size=vocab, hidden_size=768, num_hidden_layers=layers, num_attention_heads=12,
            intermediate_size=3072, max_position_embeddings=514, pad_token_id=1,
        )  # fmt: skip
    return config_class(
        vocab_size=vocab // 100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=514, pad_token_id=1,
    )  # fmt: skip


CASES = {
    "distilroberta-base": Case(
        transformers.RobertaForMaskedLM,
        roberta_sized(transformers.RobertaConfig, 50_265, 6),
        8,
        128,
        0.15,
    ),
    "xlm-roberta-base": Case(
        transformers.XLMRobertaForMaskedLM,
        roberta_sized(transformers.XLMRobertaConfig, 250_002, 12),
        8,
        128,
        0.15,
    ),
    "mlmkit-pretrain-default": Case(
        transformers.BertForMaskedLM,
        transformers.BertConfig(
            vocab_size=4096,
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=512,
            max_position_embeddings=128,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        ),  # fmt: skip
        32 if FULL else 4,
        64,
        0.4,
    ),
}


def step_flops(config: Any, batch: int, length: int, head_positions: float) -> float:
    """Floating-point operations of one forward + backward (backward = 2x forward) of a
    BERT-style encoder with its masked-LM head (dense + layer norm + vocabulary projection)
    applied at `head_positions` positions: matrix products only, 2 per multiply-add."""
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = batch * length
    per_token_layer = 2 * (4 * d * d + 2 * d * ff) + 4 * length * d  # projections + attention
    head_per_position = 2 * (d * d + d * config.vocab_size)
    forward = tokens * layers * per_token_layer + head_positions * head_per_position
    return 3.0 * forward


@pytest.fixture(scope="module")
def models():
    """Per case: (stock model, the same weights with the sparse head, batch)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    built: dict[str, tuple[Any, Any, dict[str, torch.Tensor]]] = {}

    def get(name: str):
        if name not in built:
            built.clear()  # one case's models in memory at a time (XLM-R's are 1 GB each)
            case = CASES[name]
            torch.manual_seed(0)
            stock = case.model_class(case.config).train()
            sparse = mlmkit.sparse_mlm_head(copy.deepcopy(stock))
            g = torch.Generator().manual_seed(0)
            shape = (case.batch, case.length)
            ids = torch.randint(5, case.config.vocab_size, shape, generator=g)
            labels = torch.where(torch.rand(shape, generator=g) < case.labelled, ids, -100)
            batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
            built[name] = (stock, sparse, batch)
        return built[name]

    yield get
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["stock_head", "sparse_head"])  # the label ratios.py shows
@pytest.mark.parametrize("case", list(CASES))
def test_training_step(benchmark, models, case, name):
    stock, sparse, batch = models(case)
    model = sparse if name == "sparse_head" else stock
    spec = CASES[case]
    shape = f"B={spec.batch} L={spec.length}, {spec.labelled:.0%} labelled"
    benchmark.group = f"training step, {case}-sized, {shape}"
    labelled = int((batch["labels"] != -100).sum())
    all_positions = spec.batch * spec.length
    flops = step_flops(spec.config, spec.batch, spec.length, labelled)
    stock_flops = step_flops(spec.config, spec.batch, spec.length, all_positions)
    benchmark.extra_info.update(
        tokens=all_positions,
        baseline=name == "stock_head",
        step_gflop=(flops if name == "sparse_head" else stock_flops) / 1e9,
        flop_ratio=stock_flops / flops if name == "sparse_head" else 1.0,
    )

    def step(m=model):
        m.zero_grad(set_to_none=True)
        loss = m(**batch).loss
        loss.backward()
        return loss.detach()

    assert torch.isfinite(benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=int(FULL)))
    if name == "sparse_head":
        # Steps of the small default model are cheap: more alternating rounds.
        rounds = ROUNDS * (10 if case == "mlmkit-pretrain-default" else 1)
        benchmark.extra_info["vs_stock_interleaved"] = interleaved_speedup(
            lambda: step(stock), step, rounds
        )
    model.zero_grad(set_to_none=True)
    stock.zero_grad(set_to_none=True)
    # Same weights, batch and dropout draws: the stock model's loss.
    losses = []
    for m in (stock, model):
        torch.manual_seed(1)
        with torch.no_grad():
            losses.append(m(**batch).loss)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=0)


def interleaved_speedup(stock_step, sparse_step, rounds: int = ROUNDS) -> float:
    """Fastest stock step / fastest sparse step, the two alternating: on a shared machine the
    load shifts between separately run benchmarks (a stock step took 7 to 15 s in one run),
    while alternating steps see the same load."""
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, fn in enumerate((stock_step, sparse_step)):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0] / best[1]
