"""Epochs and batch positions: `set_epoch`, DataLoader workers (persistent too), resume offsets,
integer-like `seed` / `epoch`, and the Trainer integration's defaults, opt-out and warnings."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys
import warnings

import datasets
import numpy as np
import pytest
import torch
from accelerate.data_loader import skip_first_batches
from datasets.fingerprint import Hasher
from torch.utils.data import DataLoader
from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments

import mlmkit
from mlmkit import seeding


def dataset(tokenizer, n=24, length=30, seed=0):
    rng = np.random.default_rng(seed)
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


def masks(batches):
    return [(b["input_ids"].clone(), b["labels"].clone()) for b in batches]


def same(a, b):
    return len(a) == len(b) and all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True)
    )


def epochs(collator, data, n_epochs=2, **loader):
    """Every epoch's masked batches, with `set_epoch` before each, as a training loop does."""
    dl = DataLoader(data, batch_size=4, collate_fn=collator, **loader)
    out = []
    for epoch in range(n_epochs):
        collator.set_epoch(epoch)
        out.append(masks(dl))
    return out


# ---- integer-like seed and epoch -------------------------------------------------------------


def test_integer_like_seed_and_epoch_are_accepted_and_normalised(bert_tokenizer):
    rows = [r["input_ids"] for r in dataset(bert_tokenizer, n=4)]
    make = mlmkit.DataCollatorForLanguageModeling
    reference = make(bert_tokenizer, seed=42, keyed=True, epoch=3)(rows)
    for seed, epoch in ((np.int64(42), np.int64(3)), (42.0, 3.0), (np.uint8(42), np.float32(3))):
        c = make(bert_tokenizer, seed=seed, keyed=True, epoch=epoch)
        assert type(c.seed) is int and c.seed == 42 and type(c.epoch) is int and c.epoch == 3
        out = c(rows)
        assert all(torch.equal(out[k], reference[k]) for k in reference)
    seeded = make(bert_tokenizer, seed=np.int32(9))
    assert seeded.seed == 9
    seeded.epoch = 2.0  # what Trainer.state.epoch holds at an epoch boundary
    assert seeded.epoch == 2
    seeded.seed = np.int64(10)
    assert seeded.seed == 10
    cb = mlmkit.FixedMaskPerplexityCallback(dataset(bert_tokenizer, n=4), seeded, seed=np.int64(1))
    assert cb.seed == 1 and cb.masker.seed == 1


@pytest.mark.parametrize(
    "bad", ["42", 1.5, True, np.bool_(True), None, float("nan"), torch.tensor(3), [1]]
)
def test_other_seeds_and_epochs_are_type_errors_naming_the_argument(bert_tokenizer, bad):
    make = mlmkit.DataCollatorForLanguageModeling
    if bad is not None:  # seed=None is the torch-seeded mode
        with pytest.raises(TypeError, match=r"^seed must be an integer"):
            make(bert_tokenizer, seed=bad)
        c = make(bert_tokenizer, seed=1)
        with pytest.raises(TypeError, match=r"^seed must be an integer"):
            c.seed = bad
        assert c.seed == 1
    with pytest.raises(TypeError, match=r"^epoch must be an integer"):
        make(bert_tokenizer, seed=1, epoch=bad)
    c = make(bert_tokenizer, seed=1, keyed=True, epoch=4)
    with pytest.raises(TypeError, match=r"^epoch must be an integer"):
        c.epoch = bad
    with pytest.raises(TypeError, match=r"^epoch must be an integer"):
        c.set_epoch(bad)
    assert c.epoch == 4


def test_set_epoch_rejects_negative_and_non_integer_values(bert_tokenizer):
    c = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=1)
    with pytest.raises(ValueError, match=r"epoch must be >= 0.*got -1"):
        c.set_epoch(-1)
    with pytest.raises(ValueError, match=r"epoch must be >= 0"):
        mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=1, epoch=-2)
    with pytest.raises(ValueError, match=r"epoch must be >= 0"):
        c.set_epoch(2**63)
    with pytest.raises(TypeError, match=r"^epoch must be an integer.*got '1'"):
        c.set_epoch("1")
    with pytest.raises(TypeError, match=r"^epoch must be an integer.*got 1.5"):
        c.set_epoch(1.5)
    with pytest.raises(ValueError, match=r"skip_batches must be >= 0"):
        c.set_epoch(1, skip_batches=-3)
    with pytest.raises(TypeError, match=r"^skip_batches must be an integer"):
        c.set_epoch(1, skip_batches=2.5)
    assert c.epoch == 0 and not c._schedule.managed  # nothing was set


def _set_epoch_in_worker(collator):
    def collate(rows):
        collator.set_epoch(3)
        return collator(rows)

    return collate


def test_set_epoch_inside_a_dataloader_worker_is_an_error(bert_tokenizer):
    c = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=1)
    dl = DataLoader(
        dataset(bert_tokenizer, n=4),
        batch_size=2,
        collate_fn=_set_epoch_in_worker(c),
        num_workers=1,
        multiprocessing_context="fork",
    )
    with pytest.raises(RuntimeError, match="not inside a DataLoader worker"):
        next(iter(dl))
    assert c.epoch == 0


# ---- batch positions -------------------------------------------------------------------------


@pytest.mark.parametrize("keyed", [False, True])
def test_masks_are_a_function_of_epoch_and_position_whatever_the_workers(bert_tokenizer, keyed):
    """num_workers 0 or 2, persistent or not: the same masks, batch for batch, and fresh ones
    each epoch (forked workers here; spawned ones below, forkserver pickles like spawn)."""
    data = dataset(bert_tokenizer)
    make = lambda: mlmkit.DataCollatorForLanguageModeling(  # noqa: E731
        bert_tokenizer, seed=5, keyed=keyed
    )
    reference = epochs(make(), data, n_epochs=3)
    assert not same(reference[0], reference[1]) and not same(reference[1], reference[2])
    for persistent in (False, True):
        got = epochs(
            make(),
            data,
            n_epochs=3,
            num_workers=2,
            multiprocessing_context="fork",
            persistent_workers=persistent,
        )
        for e in range(3):
            assert same(got[e], reference[e]), (persistent, e)


def test_spawned_persistent_workers_follow_set_epoch(bert_tokenizer):
    data = dataset(bert_tokenizer, n=16)
    make = lambda: mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=5)  # noqa: E731
    reference = epochs(make(), data, n_epochs=2)
    got = epochs(
        make(),
        data,
        n_epochs=2,
        num_workers=2,
        multiprocessing_context="spawn",
        persistent_workers=True,
    )
    assert same(got[0], reference[0]) and same(got[1], reference[1])


def test_keyed_epoch_assignment_reaches_persistent_workers(bert_tokenizer):
    """`collator.epoch = n` after the workers started: they see it (shared memory)."""
    data = dataset(bert_tokenizer, n=8)
    c = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=3, keyed=True)
    dl = DataLoader(
        data,
        batch_size=4,
        collate_fn=c,
        num_workers=2,
        persistent_workers=True,
        multiprocessing_context="fork",
    )
    first = masks(dl)
    c.epoch = 1
    second = masks(dl)
    in_process = dataclasses.replace(c, epoch=1)
    assert same(second, masks(DataLoader(data, batch_size=4, collate_fn=in_process)))
    assert not same(first, second)


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_batches_continues_an_epoch_where_it_was_interrupted(bert_tokenizer, workers):
    """Resume as accelerate does it: `skip_first_batches` never collates the skipped batches;
    `set_epoch(epoch, skip_batches=n)` keeps the positions (and masks) of the rest."""
    data = dataset(bert_tokenizer)
    for keyed in (False, True):
        options = dict(seed=11, keyed=keyed)
        full = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, **options)
        full.set_epoch(1)
        whole = masks(DataLoader(data, batch_size=4, collate_fn=full))
        resumed = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, **options)
        loader = DataLoader(
            data,
            batch_size=4,
            collate_fn=resumed,
            num_workers=workers,
            multiprocessing_context="fork" if workers else None,
        )
        resumed.set_epoch(1, skip_batches=2)
        assert same(masks(skip_first_batches(loader, 2)), whole[2:])
        resumed.set_epoch(1)  # without the offset the masks are those of other positions
        if not keyed:
            tail = masks(skip_first_batches(loader, 2))
            assert not any(torch.equal(a[1], b[1]) for a, b in zip(tail, whole[2:], strict=True))


def test_mask_tensor_shares_the_collators_positions(bert_tokenizer):
    rows = [r["input_ids"] for r in dataset(bert_tokenizer, n=4)]
    ids = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, mlm=False)(rows)["input_ids"]
    rust = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=2)
    on_torch = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=2)
    for c in (rust, on_torch):
        c.set_epoch(4, skip_batches=7)
    for _ in range(3):
        expected = rust({"input_ids": ids})
        got_ids, got_labels = on_torch.mask_tensor(ids)
        assert torch.equal(got_ids, expected["input_ids"])
        assert torch.equal(got_labels, expected["labels"])


def test_copies_count_their_own_batches_and_pickles_hash_the_configuration(bert_tokenizer):
    rows = [r["input_ids"] for r in dataset(bert_tokenizer, n=4)]
    c = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=8)
    c.set_epoch(2)
    first = c(rows)
    for clone in (copy.copy(c), copy.deepcopy(c), pickle.loads(pickle.dumps(c))):
        assert clone.epoch == 2
        again = clone(rows)  # a copy starts at the first batch of the epoch
        assert torch.equal(again["labels"], first["labels"])
    independent = pickle.loads(pickle.dumps(c))
    c.set_epoch(5)
    assert independent.epoch == 2  # a plain pickle does not share the schedule
    fresh = lambda: mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=8)  # noqa: E731
    used = fresh()
    used(rows)
    assert Hasher.hash(fresh()) == Hasher.hash(used)  # batches collated are not configuration
    moved = fresh()
    moved.set_epoch(1)
    assert Hasher.hash(moved) != Hasher.hash(fresh())


# ---- the Trainer integration -----------------------------------------------------------------


def tiny_bert(tokenizer):
    return BertForMaskedLM(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        )
    )


def trainer_for(tokenizer, collator, tmp_path, **overrides):
    settings = dict(
        output_dir=str(tmp_path),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        dataloader_pin_memory=False,
        disable_tqdm=True,
    )
    settings.update(overrides)
    train = datasets.Dataset.from_list(dataset(tokenizer, n=16))
    return Trainer(
        model=tiny_bert(tokenizer),
        args=TrainingArguments(**settings),
        train_dataset=train,
        data_collator=collator,
    )


def mlmkit_warnings(caught):
    return [str(w.message) for w in caught if "mlmkit" in str(w.message)]


def test_every_trainer_follows_epochs_and_can_opt_out(bert_tokenizer, tmp_path):
    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0, keyed=True)
    trainer = trainer_for(bert_tokenizer, collator, tmp_path / "a", num_train_epochs=3)
    callbacks = trainer.callback_handler.callbacks
    assert any(isinstance(cb, mlmkit.MaskEpochCallback) for cb in callbacks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    assert collator.epoch == 2 and mlmkit_warnings(caught) == []

    static = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0, keyed=True)
    trainer = trainer_for(bert_tokenizer, static, tmp_path / "b", num_train_epochs=3)
    trainer.remove_callback(mlmkit.MaskEpochCallback)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    assert static.epoch == 0 and mlmkit_warnings(caught) == []  # opted out: no warning


class Wrapped:
    """A collate function that hides the mlmkit collator from the Trainer integration."""

    def __init__(self, collator):
        self.parts = {"masking": collator}

    def __call__(self, rows):
        return self.parts["masking"](rows)


@pytest.mark.parametrize("keyed", [True, False])
def test_a_collator_trainer_cannot_reach_warns_and_attach_fixes_it(bert_tokenizer, tmp_path, keyed):
    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0, keyed=keyed)
    trainer = trainer_for(bert_tokenizer, Wrapped(collator), tmp_path / "a")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    found = mlmkit_warnings(caught)
    assert len(found) == 1, found  # once, not every batch
    effect = "repeat every epoch (keyed=True, epoch stays 0)" if keyed else "will not reproduce"
    assert "epoch is not managed" in found[0] and effect in found[0]
    assert "mlmkit.MaskEpochCallback(collator).attach(trainer)" in found[0]
    assert collator.epoch == 0

    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0, keyed=keyed)
    trainer = trainer_for(bert_tokenizer, Wrapped(collator), tmp_path / "b")
    mlmkit.MaskEpochCallback(collator).attach(trainer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    assert mlmkit_warnings(caught) == [] and collator.epoch == 1


def test_trainer_warns_when_workers_may_take_batches_out_of_order(bert_tokenizer, tmp_path):
    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0)
    trainer = trainer_for(
        bert_tokenizer,
        collator,
        tmp_path,
        max_steps=1,
        dataloader_num_workers=1,
        dataloader_in_order=False,
    )
    with pytest.warns(UserWarning, match="dataloader_in_order=False"):
        trainer.train()


def test_callback_takes_only_mlmkit_collators(bert_tokenizer):
    with pytest.raises(TypeError, match="MaskEpochCallback drives mlmkit collators"):
        mlmkit.MaskEpochCallback(lambda rows: rows)


def test_rank_comes_from_the_launcher_without_torch_distributed(monkeypatch):
    assert not torch.distributed.is_initialized()
    monkeypatch.setenv("RANK", "3")
    assert seeding.current_rank() == 3
    monkeypatch.delenv("RANK")
    assert seeding.current_rank() == 0


def test_importing_mlmkit_registers_the_callback_when_trainer_is_imported_later():
    """In a fresh interpreter: mlmkit does not import transformers.trainer (seconds) itself, and
    the callback is among Trainer's defaults once it is imported."""
    code = (
        "import sys, mlmkit\n"
        "assert 'transformers.trainer' not in sys.modules\n"
        "from transformers import Trainer\n"
        "import transformers.trainer as t\n"
        "assert t.DEFAULT_CALLBACKS.count(mlmkit.MaskEpochCallback) == 1, t.DEFAULT_CALLBACKS\n"
        "import importlib; importlib.reload(mlmkit)\n"
        "assert t.DEFAULT_CALLBACKS.count(mlmkit.MaskEpochCallback) == 1, t.DEFAULT_CALLBACKS\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
