"""`SequenceLengthSchedule`: training batches cropped to each stage's max_length from exactly
the scheduled step, with DataLoader workers (persistent too), gradient accumulation and resume;
evaluation at the collator's own length; bad schedules are clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from transformers import Trainer, TrainingArguments

import mlmkit

from . import trainer_run

Collator = mlmkit.DataCollatorForLanguageModeling
SCRIPT = Path(__file__).with_name("trainer_run.py")

# 12 steps: 8 tokens for steps 0-3, 16 for steps 4-9, 24 for steps 10-11. With 24 rows in
# batches of 4 an epoch has 6 batches, so both switches fall inside an epoch, with and without
# accumulating 2 batches per step.
STAGES = [(1 / 3, 8), (1 / 2, 16), (1 / 6, 24)]
MAX_STEPS, ROW_LENGTH = 12, 30


def expected_length(step: int) -> int:
    return 8 if step < 4 else 16 if step < 10 else 24


def fixed_rows(tok, n, seed):
    rng = np.random.default_rng(seed)
    body = rng.integers(len(trainer_run.SPECIALS), len(tok), (n, ROW_LENGTH - 2))
    return [{"input_ids": [tok.cls_token_id, *b.tolist(), tok.sep_token_id]} for b in body]


class RecordingTrainer(Trainer):
    """Records the width of every training micro-batch (with its step) and eval batch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.widths: list[tuple[int, int]] = []
        self.eval_widths: list[int] = []

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.widths.append((self.state.global_step, int(inputs["input_ids"].shape[1])))
        return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        self.eval_widths.append(int(inputs["input_ids"].shape[1]))
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)


def make_trainer(
    tmp_path, collator, *, workers=0, persistent=False, accumulation=1, data=None, **more
):
    tok = collator.tokenizer
    train = data if data is not None else datasets.Dataset.from_list(fixed_rows(tok, 24, 0))
    settings = dict(
        output_dir=str(tmp_path),
        max_steps=MAX_STEPS,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        gradient_accumulation_steps=accumulation,
        learning_rate=1e-3,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=5,
        eval_on_start=True,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        dataloader_num_workers=workers,
        dataloader_persistent_workers=persistent,
        dataloader_pin_memory=False,
        disable_tqdm=True,
    )
    args = TrainingArguments(**{**settings, **more})
    return RecordingTrainer(
        model=trainer_run.tiny_bert(tok, dropout=0.0),
        args=args,
        train_dataset=train,
        eval_dataset=datasets.Dataset.from_list(fixed_rows(tok, 8, 1)),
        data_collator=collator,
    )


@pytest.mark.parametrize(
    "workers,persistent,accumulation",
    [(0, False, 1), (0, False, 2), (2, False, 1), (2, True, 2), (2, True, 1)],
)
def test_the_switch_lands_on_the_scheduled_step(tmp_path, workers, persistent, accumulation):
    tok = trainer_run.tokenizer()
    collator = Collator(tok, seed=3)
    trainer = make_trainer(
        tmp_path, collator, workers=workers, persistent=persistent, accumulation=accumulation
    )
    mlmkit.SequenceLengthSchedule(collator, STAGES).attach(trainer)
    trainer.train()
    expected = [(s, expected_length(s)) for s in range(MAX_STEPS) for _ in range(accumulation)]
    assert trainer.widths == expected
    assert set(trainer.eval_widths) == {ROW_LENGTH}  # evaluation is never cropped
    history = trainer.state.log_history
    switches = [
        (h["step"], h["max_length"]) for h in history if "max_length" in h and "loss" not in h
    ]
    assert switches == [(0, 8), (4, 16), (10, 24)]
    logged = [(h["step"], h["max_length"]) for h in history if "loss" in h]
    assert logged == [(s, expected_length(s - 1)) for s in range(1, MAX_STEPS + 1)]
    assert collator._lengths.stages() == [] and collator.max_length is None  # over at the end


def test_an_iterable_dataset_and_a_schedule_given_to_trainer_callbacks(tmp_path):
    tok = trainer_run.tokenizer()
    collator = Collator(tok, seed=3, keyed=True)
    stream = trainer_run.Stream(fixed_rows(tok, 24, 0), passes=3)
    schedule = mlmkit.SequenceLengthSchedule(collator, STAGES)
    trainer = make_trainer(tmp_path, collator, workers=2, data=stream)
    trainer.add_callback(schedule)
    trainer.train()
    assert trainer.widths == [(s, expected_length(s)) for s in range(MAX_STEPS)]
    history = trainer.state.log_history
    switches = [
        (h["step"], h["max_length"]) for h in history if "max_length" in h and "loss" not in h
    ]
    assert switches == [(0, 8), (4, 16), (10, 24)]


def test_without_the_step_positions_the_switch_would_be_late(tmp_path, monkeypatch):
    """Control: a schedule that sets max_length from the main process when a step begins (what
    a plain callback would do) crops batches the workers prefetched at the old length."""
    tok = trainer_run.tokenizer()
    collator = Collator(tok, seed=3)
    trainer = make_trainer(tmp_path, collator, workers=2, persistent=True)

    class NaiveSchedule(mlmkit.SequenceLengthSchedule):
        def on_train_begin(self, args, state, control, **kwargs):
            self.collator.max_length = 8

        def on_step_begin(self, args, state, control, **kwargs):
            self.collator.max_length = expected_length(state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            pass

    trainer.add_callback(NaiveSchedule(collator, STAGES))
    trainer.train()
    expected = [(s, expected_length(s)) for s in range(MAX_STEPS)]
    assert trainer.widths != expected
    assert trainer.widths[4] == (4, 8)  # prefetched before step 4 began


# ---- resume in a fresh process -----------------------------------------------------------------

# name: (settings, checkpoint step). Rows of 14-27 tokens; the second stage is 16 long.
RESUME_RUNS = {
    # 18 steps: the switch at step 9 is the step the resumed run starts at.
    "seeded-workers0": (dict(keyed=False, workers=0, persistent=False, shuffle=True), 9, 9),
    # 9 steps of 2 batches: the checkpoint at step 4, the switch at step 5.
    "seeded-workers2-persistent-accumulate2": (
        dict(keyed=False, workers=2, persistent=True, shuffle=True, accumulation=2, dropout=0.0),
        4,
        5,
    ),
    "keyed-workers2": (dict(keyed=True, workers=2, persistent=False, shuffle=False), 7, 9),
}


@pytest.fixture(scope="module")
def resumed_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume-schedule")

    def config(name, phase):
        settings, save_steps, _ = RESUME_RUNS[name]
        return {
            **settings,
            "seq_schedule": [[0.5, 10], [0.5, 16]],
            "epochs": 3,
            "eval_steps": 100,
            "save_steps": save_steps,
            "output_dir": str(tmp / name),
            "results": str(tmp / f"{name}.{phase}.json"),
            "resume_from": (
                str(tmp / name / f"checkpoint-{save_steps}") if phase == "resumed" else None
            ),
        }

    plan = {
        "stages": [
            [[config(name, "full")] for name in RESUME_RUNS],
            [[config(name, "resumed")] for name in RESUME_RUNS],
        ]
    }
    (tmp / "plan.json").write_text(json.dumps(plan))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp / "plan.json")],
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return {
        name: tuple(json.loads((tmp / f"{name}.{p}.json").read_text()) for p in ("full", "resumed"))
        for name in RESUME_RUNS
    }


@pytest.mark.parametrize("name", list(RESUME_RUNS))
def test_a_resumed_run_keeps_the_schedule(resumed_runs, name):
    full, resumed = resumed_runs[name]
    _, save_steps, switch = RESUME_RUNS[name]
    for r in full["records"]:
        width = len(r["input_ids"][0])
        assert width == 10 if r["step"] < switch else 10 < width <= 16, (r["step"], width)
    expected = [r for r in full["records"] if r["step"] >= save_steps]
    assert len(resumed["records"]) == len(expected) > 0
    for a, b in zip(expected, resumed["records"], strict=True):
        assert a["step"] == b["step"]
        assert a["input_ids"] == b["input_ids"], f"step {a['step']}: other windows or masks"
        assert a["labels"] == b["labels"]
        assert a["loss"] == b["loss"]
    assert full["switches"] == [[0, 10], [switch, 16]]
    # the resumed history: the checkpoint's, the stage it resumes in, the later switches
    resumes_in = [save_steps, 10 if save_steps < switch else 16]
    before = [s for s in full["switches"] if s[0] < save_steps]
    after = [s for s in full["switches"] if s[0] > save_steps]
    assert resumed["switches"] == [*before, resumes_in, *after]
    assert full["warnings"] == [] and resumed["warnings"] == []


# ---- bad schedules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stages,error,match",
    [
        ([(0.5, 128), (0.5, 128)], ValueError, r"stage 1: max_length 128 does not increase"),
        ([(0.5, 256), (0.5, 128)], ValueError, r"stage 1: max_length 128 does not increase"),
        ([(0.9, 0), (0.1, 512)], ValueError, r"max_length must be a positive integer"),
        ([(0.9, -5), (0.1, 512)], ValueError, r"max_length must be a positive integer"),
        ([(0.0, 64), (1.0, 512)], ValueError, r"stage 0: the fraction of steps must be"),
        ([(-0.1, 64), (1.1, 512)], ValueError, r"stage 0: the fraction of steps must be"),
        ([(0.9, 128), (0.2, 512)], ValueError, r"fractions of steps sum to 1.1, not 1"),
        ([(0.5, 128)], ValueError, r"sum to 0.5, not 1"),
        ([(0.9, 128.5), (0.1, 512)], TypeError, r"max_length must be an integer"),
        ([(True, 128)], ValueError, r"the fraction of steps must be"),
        ([(0.9, None), (0.1, 512)], ValueError, r"stage 0: max_length must be a positive"),
        ([], TypeError, r"non-empty list of \(fraction_of_steps, max_length\) pairs"),
        ("128:0.9", TypeError, r"non-empty list"),
        ([(0.5, 64, 1), (0.5, 128)], TypeError, r"stage 0 must be a \(fraction_of_steps"),
        ([(1 / 17, 8 + k) for k in range(17)], ValueError, r"at most 16 stages"),
    ],
)
def test_bad_schedules_are_clear_errors(stages, error, match):
    collator = Collator(trainer_run.tokenizer(), seed=0)
    with pytest.raises(error, match=match):
        mlmkit.SequenceLengthSchedule(collator, stages)


def test_a_stage_must_leave_room_inside_the_special_tokens():
    collator = Collator(trainer_run.tokenizer(), seed=0)
    with pytest.raises(ValueError, match=r"max_length=2 is too small.*\[CLS\] \[SEP\]"):
        mlmkit.SequenceLengthSchedule(collator, [(0.5, 2), (0.5, 64)])
    with pytest.raises(TypeError, match="drives an mlmkit collator"):
        mlmkit.SequenceLengthSchedule(object(), [(1.0, 64)])  # type: ignore[arg-type]


def test_stage_starts():
    collator = Collator(trainer_run.tokenizer(), seed=0)
    bert = mlmkit.SequenceLengthSchedule(collator, [(0.9, 128), (0.1, 512)])
    assert bert.starts(2500) == [0, 2250]
    assert bert.max_length_at(2249, 2500) == 128 and bert.max_length_at(2250, 2500) == 512
    assert mlmkit.SequenceLengthSchedule(collator, STAGES).starts(12) == [0, 4, 10]


def test_the_schedule_needs_the_trainers_collator_and_mask_epoch_callback(tmp_path):
    tok = trainer_run.tokenizer()
    collator = Collator(tok, seed=3)
    trainer = make_trainer(tmp_path, collator)
    other = Collator(tok, seed=3)
    mlmkit.SequenceLengthSchedule(other, STAGES).attach(trainer)
    with pytest.raises(ValueError, match="does not collate with its collator"):
        trainer.train()
    trainer = make_trainer(tmp_path, collator)
    trainer.remove_callback(mlmkit.MaskEpochCallback)
    mlmkit.SequenceLengthSchedule(collator, STAGES).attach(trainer)
    with pytest.raises(ValueError, match="needs mlmkit.MaskEpochCallback"):
        trainer.train()


def test_out_of_order_workers_are_warned_about(tmp_path):
    tok = trainer_run.tokenizer()
    collator = Collator(tok, seed=3, keyed=True)  # keyed masks do not mind the order
    trainer = make_trainer(
        tmp_path, collator, workers=2, dataloader_in_order=False, eval_on_start=False, max_steps=2
    )
    mlmkit.SequenceLengthSchedule(collator, STAGES).attach(trainer)
    with pytest.warns(UserWarning, match="dataloader_in_order=False lets Trainer take batches"):
        trainer.train()
