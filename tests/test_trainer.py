"""The collator drives a real Trainer run."""

from __future__ import annotations

import math

import datasets
import numpy as np
from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments

import mlmkit

from .conftest import CORPUS


def test_tiny_bert_trains_through_trainer(bert_tokenizer, tmp_path):
    ds = datasets.Dataset.from_dict({"text": CORPUS[:64]}).map(
        lambda b: bert_tokenizer(b["text"], truncation=True, max_length=48),
        batched=True,
        remove_columns=["text"],
    )
    config = BertConfig(
        vocab_size=len(bert_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = BertForMaskedLM(config)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=40,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
    )
    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=collator)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 40
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, losses
