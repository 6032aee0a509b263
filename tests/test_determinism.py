"""Reproducibility: seeded streams, keyed (content) masks, DataLoader workers, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import transformers
from datasets.fingerprint import Hasher
from torch.utils.data import DataLoader

import mlmkit


def dataset(tokenizer, n=24, length=48):
    rng = np.random.default_rng(0)
    return [
        {
            "input_ids": [
                tokenizer.cls_token_id,
                *rng.integers(1000, 30000, length).tolist(),
                tokenizer.sep_token_id,
            ]
        }
        for _ in range(n)
    ]


def epochs(
    collator,
    data,
    *,
    workers=0,
    context=None,
    n_epochs=2,
    shuffle=False,
    batch_size=4,
    torch_seed=0,
):
    """Labels of every batch of every epoch, as a fresh script would see them."""
    torch.manual_seed(torch_seed)
    loader = DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collator,
        num_workers=workers,
        multiprocessing_context=context if workers else None,
        persistent_workers=False,
    )
    out = []
    for _ in range(n_epochs):
        out.append([(b["input_ids"].clone(), b["labels"].clone()) for b in loader])
    return out


def same(a, b):
    return all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True)
    )


def test_seeded_runs_repeat_and_epochs_differ_in_process(bert_tokenizer):
    data = dataset(bert_tokenizer)
    make = lambda: mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=7)  # noqa: E731
    run1, run2 = epochs(make(), data), epochs(make(), data)
    assert same(run1[0], run2[0]) and same(run1[1], run2[1])
    assert not same(run1[0], run1[1])
    other_seed = epochs(mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=8), data)
    assert not same(run1[0], other_seed[0])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_seeded_workers_repeat_across_runs_and_change_per_epoch(bert_tokenizer, context):
    data = dataset(bert_tokenizer)
    make = lambda: mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=7)  # noqa: E731
    run1 = epochs(make(), data, workers=2, context=context)
    assert not same(run1[0], run1[1]), "non-persistent workers replayed the same masks"
    run2 = epochs(make(), data, workers=2, context="fork")
    assert same(run1[0], run2[0]) and same(run1[1], run2[1])


def test_transformers_seed_replays_masks_every_epoch_but_ours_does_not(bert_tokenizer):
    data = dataset(bert_tokenizer)
    theirs = epochs(
        transformers.DataCollatorForLanguageModeling(bert_tokenizer, seed=7),
        data,
        workers=2,
        context="fork",
    )
    assert same(theirs[0], theirs[1])  # the problem mlmkit fixes
    ours = epochs(
        mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=7),
        data,
        workers=2,
        context="fork",
    )
    assert not same(ours[0], ours[1])


def test_unseeded_collator_follows_torch_seed(bert_tokenizer):
    data = dataset(bert_tokenizer)
    make = lambda: mlmkit.DataCollatorForLanguageModeling(bert_tokenizer)  # noqa: E731
    a, b = epochs(make(), data, torch_seed=1), epochs(make(), data, torch_seed=1)
    c = epochs(make(), data, torch_seed=2)
    assert same(a[0], b[0]) and same(a[1], b[1])
    assert not same(a[0], c[0])
    assert not same(a[0], a[1])


def by_row(run):
    """{row content: (masked ids, labels)} over one epoch."""
    table = {}
    for ids, labels in run:
        restored = torch.where(labels != -100, labels, ids)
        for r, i, lab in zip(restored, ids, labels, strict=True):
            key = tuple(r[r != 0].tolist())
            table[key] = (i[: len(key)].tolist(), lab[: len(key)].tolist())
    return table


@pytest.mark.parametrize("workers", [0, 2])
def test_keyed_masks_depend_on_content_only(bert_tokenizer, workers):
    data = dataset(bert_tokenizer)
    # vary the row lengths so batches get different padding widths
    for i, row in enumerate(data):
        row["input_ids"] = row["input_ids"][: 10 + i]
    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=3, keyed=True)
    reference = by_row(epochs(collator, data, n_epochs=1, batch_size=1)[0])
    shuffled = epochs(
        collator,
        data,
        workers=workers,
        context="fork",
        n_epochs=2,
        shuffle=True,
        batch_size=5,
        torch_seed=11,
    )
    assert by_row(shuffled[0]) == reference
    assert by_row(shuffled[1]) == reference  # same epoch attribute -> same masks
    collator.epoch = 1
    assert by_row(epochs(collator, data, n_epochs=1, batch_size=3)[0]) != reference


def test_collator_pickles_and_hashes_stably(bert_tokenizer):
    c = mlmkit.DataCollatorForLanguageModeling(
        bert_tokenizer, seed=5, keyed=True, mask_count="exact"
    )
    rows = [r["input_ids"] for r in dataset(bert_tokenizer, n=4)]
    before = c(rows)
    clone = pickle.loads(pickle.dumps(c))
    assert clone.seed == 5 and clone.keyed and clone.mask_count == "exact"
    after = clone(rows)
    for key in before:
        assert torch.equal(before[key], after[key])
    fresh = mlmkit.DataCollatorForLanguageModeling(
        bert_tokenizer, seed=5, keyed=True, mask_count="exact"
    )
    assert Hasher.hash(fresh) == Hasher.hash(
        mlmkit.DataCollatorForLanguageModeling(
            bert_tokenizer, seed=5, keyed=True, mask_count="exact"
        )
    )
    assert Hasher.hash(fresh) != Hasher.hash(
        mlmkit.DataCollatorForLanguageModeling(
            bert_tokenizer, seed=6, keyed=True, mask_count="exact"
        )
    )
