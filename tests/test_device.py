"""The collator's `device` option: tensors on a given device for custom loops with
num_workers=0, and clear errors where that cannot work."""

from __future__ import annotations

import pickle

import pytest
import torch
from datasets.fingerprint import Hasher
from torch.utils.data import DataLoader

import mlmkit

ROWS = [[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 102], [101, 2460, 2028, 1012, 102]]


def test_cpu_device_gives_the_same_batch(bert_tokenizer):
    plain = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, keyed=True, seed=1)
    for device in ("cpu", torch.device("cpu")):
        on_cpu = mlmkit.DataCollatorForLanguageModeling(
            bert_tokenizer, keyed=True, seed=1, device=device
        )
        a, b = plain(ROWS), on_cpu(ROWS)
        assert a.keys() == b.keys()
        for k in a:
            assert b[k].device == torch.device("cpu")
            assert torch.equal(a[k], b[k])
    loader = DataLoader(ROWS, batch_size=2, collate_fn=on_cpu, num_workers=0)
    assert [b["input_ids"].shape[0] for b in loader] == [2, 1]


def test_device_collator_pickles_and_hashes(bert_tokenizer):
    c = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=3, device="cpu")
    clone = pickle.loads(pickle.dumps(c))
    assert clone.device == "cpu" and clone(ROWS)["input_ids"].device.type == "cpu"
    same = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=3, device="cpu")
    assert Hasher.hash(c) == Hasher.hash(same)


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "tpu0", ""])
def test_unknown_device_strings_are_rejected(bert_tokenizer, bad):
    with pytest.raises(ValueError, match=f"device={bad!r} is not a device torch knows"):
        mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, device=bad)


def test_other_bad_device_settings(bert_tokenizer, monkeypatch):
    with pytest.raises(TypeError, match="string or torch.device"):
        mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, device=0)
    with pytest.raises(ValueError, match="return_tensors='pt'"):
        mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, device="cpu", return_tensors="np")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False"):
        mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, device="cuda:0")


def test_accelerator_device_inside_a_worker_fails_clearly(bert_tokenizer, monkeypatch):
    # Pretend CUDA is there (the check must fire before anything touches CUDA); forked workers
    # inherit the patch.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, device="cuda")
    loader = DataLoader(
        ROWS, batch_size=2, collate_fn=collator, num_workers=1, multiprocessing_context="fork"
    )
    with pytest.raises(ValueError, match="cannot be used inside a DataLoader worker process"):
        next(iter(loader))
