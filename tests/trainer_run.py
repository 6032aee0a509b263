"""Tiny-BERT `Trainer` runs in processes of their own (the resume and DDP tests start them).

    python tests/trainer_run.py RUNS.json

RUNS is either a list of runs, done one after the other in this process (what each rank of a
DDP run does), or `{"stages": [[group, ...], ...]}`: stages run one after the other; the groups
of a stage (each a list of runs) run in fresh processes forked from this one, two at a time.
This process only imports the libraries, so a forked child starts without any state of a
previous run, like a new interpreter, without paying the imports again.

A run is a dict with `output_dir`, `keyed`, `workers`, `persistent`, `shuffle`, `epochs`,
`save_steps`, and optionally `accumulation`, `dataset` ("datasets" or "list"), `resume_from`,
`opt_out` (remove mlmkit's MaskEpochCallback), `dropout`, `fixed_mask`, `eval_steps`, `ddp`,
`seq_schedule` (stages of a `SequenceLengthSchedule`)
(the path of a file store: this process is rank $RANK of $WORLD_SIZE), `save_model`, and
`results` (where to write them; "{rank}" becomes the rank). Results: for every training
micro-batch its global step, loss, input_ids and labels; the evaluations; the logged sequence-length
switches; mlmkit's warnings.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import torch

N_TRAIN, N_EVAL, BATCH, N_WORDS = 48, 16, 8, 200
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tokenizer():
    """A WordPiece tokenizer with 205 tokens (a tiny model and fast checkpoints)."""
    from transformers import BertTokenizer

    words = SPECIALS + [f"w{i}" for i in range(N_WORDS)]
    return BertTokenizer(vocab={w: i for i, w in enumerate(words)})


def rows(tok, n, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        body = rng.integers(len(SPECIALS), len(tok), int(rng.integers(12, 25))).tolist()
        out.append({"input_ids": [tok.cls_token_id, *body, tok.sep_token_id]})
    return out


class Stream(torch.utils.data.IterableDataset):
    """An iterable dataset (no length): the rows, `passes` times over, in order."""

    def __init__(self, data, passes):
        self.data, self.passes = data, passes

    def __iter__(self):
        for _ in range(self.passes):
            yield from self.data


def tiny_bert(tok, dropout=0.1):
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=len(tok),
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return BertForMaskedLM(config)


def run(cfg: dict) -> None:
    import datasets
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    import mlmkit

    torch.set_num_threads(1)
    if cfg.get("ddp") and not torch.distributed.is_initialized():
        # A file store instead of torchrun's TCP store (which listens on every interface);
        # accelerate then uses this process group (RANK / WORLD_SIZE / LOCAL_RANK from the env).
        torch.distributed.init_process_group(
            "gloo",
            init_method=f"file://{cfg['ddp']}",
            rank=int(os.environ["RANK"]),
            world_size=int(os.environ["WORLD_SIZE"]),
        )
    tok = tokenizer()
    train = rows(tok, N_TRAIN, 0)
    if cfg.get("dataset", "datasets") == "datasets":
        train = datasets.Dataset.from_list(train)
    elif cfg["dataset"] == "iterable":
        train = Stream(train, 3)
    eval_rows = datasets.Dataset.from_list(rows(tok, N_EVAL, 1))

    set_seed(0)
    model = tiny_bert(tok, cfg.get("dropout", 0.1))
    collator = mlmkit.DataCollatorForLanguageModeling(tok, seed=7, keyed=cfg["keyed"])
    workers = cfg["workers"]
    args = TrainingArguments(
        output_dir=cfg["output_dir"],
        num_train_epochs=cfg["epochs"],
        max_steps=cfg.get("max_steps", -1),
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=BATCH,
        gradient_accumulation_steps=cfg.get("accumulation", 1),
        learning_rate=3e-3,
        logging_steps=1,
        eval_strategy="steps",
        eval_on_start=True,  # a resumed run evaluates where the uninterrupted one did not
        eval_steps=cfg.get("eval_steps", 4),
        save_strategy="steps",
        save_steps=cfg["save_steps"],
        report_to=[],
        use_cpu=True,
        seed=0,
        dataloader_num_workers=workers,
        dataloader_persistent_workers=cfg["persistent"] and workers > 0,
        dataloader_pin_memory=False,
        train_sampling_strategy="random" if cfg["shuffle"] else "sequential",
        ddp_backend="gloo" if cfg.get("ddp") else None,
        disable_tqdm=True,
    )
    records: list[dict] = []

    class RecordingTrainer(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            records.append(
                {
                    "step": self.state.global_step,
                    "loss": float(loss.item()),
                    "input_ids": inputs["input_ids"].tolist(),
                    "labels": inputs["labels"].tolist(),
                }
            )
            return loss

    trainer = RecordingTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=eval_rows,
        data_collator=collator,
    )
    if cfg.get("opt_out"):
        trainer.remove_callback(mlmkit.MaskEpochCallback)
    if cfg.get("seq_schedule"):
        stages = [tuple(stage) for stage in cfg["seq_schedule"]]
        mlmkit.SequenceLengthSchedule(collator, stages).attach(trainer)
    if cfg.get("fixed_mask"):
        mlmkit.FixedMaskPerplexityCallback(eval_rows, collator, batch_size=4).attach(trainer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train(resume_from_checkpoint=cfg.get("resume_from"))
    if cfg.get("save_model") and trainer.is_world_process_zero():
        trainer.save_model(cfg["save_model"])
    rank = int(os.environ.get("RANK", "0"))
    out = {
        "rank": rank,
        "records": records,
        "evals": [h for h in trainer.state.log_history if "eval_loss" in h],
        "switches": [
            [h["step"], h["max_length"]]
            for h in trainer.state.log_history
            if "max_length" in h and "loss" not in h
        ],
        "warnings": [str(w.message) for w in caught if "mlmkit" in str(w.message)],
    }
    with open(cfg["results"].replace("{rank}", str(rank)), "w") as f:
        json.dump(out, f)


def _group(runs: list[dict]) -> None:
    for cfg in runs:
        run(cfg)


def _stages(stages: list[list[list[dict]]]) -> None:
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    for stage in stages:
        pending = list(stage)
        while pending:
            procs = [fork.Process(target=_group, args=(g,)) for g in pending[:2]]
            pending = pending[2:]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
                if p.exitcode != 0:
                    sys.exit(f"a run failed (exit code {p.exitcode})")


def main(path: str) -> None:
    # Imported here, once, before any fork.
    import datasets  # noqa: F401
    import torch  # noqa: F401
    import transformers.trainer  # noqa: F401

    import mlmkit  # noqa: F401

    with open(path) as f:
        plan = json.load(f)
    if isinstance(plan, dict):
        _stages(plan["stages"])
    else:
        _group(plan)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main(sys.argv[1])
