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


def test_trainer_recipe_masking_in_the_training_step(bpe_tokenizer, tmp_path):
    """The README recipe: the DataLoader pads only, masking happens on the training device in
    `get_batch_samples`, so Trainer counts the masked labels for the loss normalisation."""
    import dataclasses

    import datasets
    from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments

    tok = bpe_tokenizer
    masker = mlmkit.DataCollatorForLanguageModeling(tok, seed=0)
    padder = dataclasses.replace(masker, mlm=False)

    class DeviceMaskingTrainer(Trainer):
        def get_batch_samples(self, epoch_iterator, num_batches, device):
            batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
            for batch in batches:
                batch["input_ids"], batch["labels"] = masker.mask_tensor(batch["input_ids"])
            return batches, self._get_num_items_in_batch(batches, device)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            seen.append(
                (inputs["input_ids"].clone(), inputs["labels"].clone(), int(num_items_in_batch))
            )
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    seen = []
    texts = [
        " ".join(["masked language models learn from context"] * (1 + i % 3)) for i in range(32)
    ]
    train = datasets.Dataset.from_dict({"text": texts}).map(
        lambda b: tok(b["text"]), batched=True, remove_columns=["text"]
    )
    torch.manual_seed(0)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        )
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = DeviceMaskingTrainer(
        model=model, args=args, train_dataset=train, data_collator=padder
    )
    mlmkit.MaskEpochCallback(masker).attach(trainer)
    trainer.train()
    assert len(seen) == 8
    reference = mlmkit.DataCollatorForLanguageModeling(tok, seed=0)
    for step in range(4):
        pair = seen[2 * step : 2 * step + 2]
        masked_in_step = sum(int((labels != -100).sum()) for _, labels, _ in pair)
        assert all(n == masked_in_step for _, _, n in pair)  # counted after masking
        for ids, labels, _ in pair:
            restored = torch.where(labels != -100, labels, ids)
            expected = reference({"input_ids": restored})
            assert torch.equal(ids, expected["input_ids"])
            assert torch.equal(labels, expected["labels"])
            assert (ids == tok.mask_token_id).any()
