"""Smoke test of benchmarks/train_masks_equivalence.py: its --quick run is well-formed and finite,
and the held-out masks are what the script says they are."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .train_masks_equivalence import ARMS, batch_order, fixed_masks, main


def test_quick_run_is_well_formed(tmp_path: Path) -> None:
    report = main(["--quick", "--output", str(tmp_path)])
    setup, data = report["setup"], report["data"]
    assert [row["arm"] for row in report["summary"]] == list(ARMS)
    assert len(report["runs"]) == len(ARMS) * setup["seeds"]
    for row in report["summary"]:
        assert row["seeds"] == setup["seeds"]
        assert 1.0 < row["perplexity_mean"] < data["vocab_size"] * 2
        assert 0.0 <= row["accuracy_mean"] <= 1.0
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float))
    assert report["summary"][0]["perplexity_ratio"] == 1.0
    initial: dict[int, set[float]] = {}
    for run in report["runs"]:
        # every arm is evaluated on the very same held-out masks ...
        assert run["eval_masks_sha256"] == data["eval_masks_sha256"]
        assert [p["step"] for p in run["curve"]] == [0, 3, 6]
        assert run["final"]["masked_tokens"] == data["eval_masked_tokens"]
        initial.setdefault(run["seed"], set()).add(run["curve"][0]["nll_sum"])
    # ... from the same initial weights per seed, and different ones across seeds
    assert all(len(values) == 1 for values in initial.values())
    assert len({v for values in initial.values() for v in values}) == setup["seeds"]
    assert (tmp_path / "results.md").read_text().count("\n") == 2 + len(ARMS)


def test_fixed_masks_take_15_percent_of_non_special_tokens() -> None:
    rng = np.random.default_rng(0)
    blocks = rng.integers(5, 1000, size=(50, 64))
    blocks[:, 0], blocks[:, -1], blocks[:, 20] = 2, 3, 3  # [CLS], [SEP], a document separator
    special = np.array([0, 1, 2, 3, 4])
    inputs, labels = fixed_masks(blocks, special, 4, 0.15, seed=7)
    chosen = labels != -100
    assert (chosen.sum(axis=1) == round(0.15 * 61)).all()
    assert not chosen[:, [0, 20, 63]].any()
    assert (inputs[chosen] == 4).all() and (labels[chosen] == blocks[chosen]).all()
    assert (inputs[~chosen] == blocks[~chosen]).all()
    again_inputs, again_labels = fixed_masks(blocks, special, 4, 0.15, seed=7)
    assert (again_inputs == inputs).all() and (again_labels == labels).all()
    other = fixed_masks(blocks, special, 4, 0.15, seed=8)[1] != -100
    assert (other != chosen).any()
    # each eligible position is chosen about 15% of the time
    assert abs(chosen[:, 1:20].mean() - 0.15) < 0.02


def test_batch_order_covers_each_epoch_once() -> None:
    order = batch_order(n_blocks=100, batch_size=8, steps=30, seed=3)
    assert order.shape == (30, 8)
    epoch = order[:12].ravel()  # 12 full batches per epoch of 100 blocks
    assert len(set(epoch.tolist())) == 96
    assert not np.array_equal(order[:12], order[12:24])
    assert np.array_equal(order, batch_order(100, 8, 30, seed=3))
    assert not np.array_equal(order, batch_order(100, 8, 30, seed=4))
