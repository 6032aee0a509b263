"""Resumed `Trainer` runs: a tiny BERT checkpointed in the middle of epoch 2 and resumed in a
fresh process trains on the very masks, and to the very losses, of the uninterrupted run; and
every epoch draws fresh masks for the same rows.

The uninterrupted runs happen in two processes; each resume in a fresh process of its own (see
`trainer_run.py`: forked from a process that has only imported the libraries). The runs evaluate
every 4 steps, so with `dataloader_num_workers=0` Trainer's evaluation collates through the
training collator between training steps, which a resumed run does not redo before its
checkpoint; `FixedMaskPerplexityCallback` evaluates too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("trainer_run.py")
EPOCHS, BATCHES_PER_EPOCH = 3, 6  # 48 rows, batch 8

# name: (settings, checkpoint step). Every checkpoint is in the middle of epoch 2: after 3 of
# its 6 batches (with accumulation 2: after 1 of its 3 updates, 2 batches).
# Persistent workers run without dropout: the first iteration of a persistent DataLoader draws
# from torch's global generator more often than its later ones, and in a resumed run the first
# iteration of Trainer's DataLoader comes an epoch later than in the uninterrupted run, so from
# the next epoch on dropout (not the masks) differs. That is torch's and Trainer's doing.
RUNS = {
    "seeded-workers0": (dict(keyed=False, workers=0, persistent=False, shuffle=True), 9),
    "seeded-workers2": (dict(keyed=False, workers=2, persistent=False, shuffle=False), 9),
    "seeded-workers2-persistent-accumulate2": (
        dict(keyed=False, workers=2, persistent=True, shuffle=True, accumulation=2, dropout=0.0),
        4,
    ),
    "keyed-workers0-list": (
        dict(keyed=True, workers=0, persistent=False, shuffle=False, dataset="list"),
        9,
    ),
    "keyed-workers2": (dict(keyed=True, workers=2, persistent=False, shuffle=True), 9),
    "keyed-workers2-persistent": (
        dict(keyed=True, workers=2, persistent=True, shuffle=False, dropout=0.0),
        9,
    ),
    # An iterable dataset (one Trainer epoch of 3 passes over the rows, max_steps=18): skipped
    # batches are collated and dropped, so positions need no offset.
    "seeded-iterable-workers2": (
        dict(
            keyed=False,
            workers=2,
            persistent=False,
            shuffle=False,
            dataset="iterable",
            max_steps=18,
        ),
        9,
    ),
    # Controls: without mlmkit's Trainer integration the same checks fail.
    "seeded-workers0-opted-out": (
        dict(keyed=False, workers=0, persistent=False, shuffle=True, opt_out=True),
        9,
    ),
    "keyed-workers0-opted-out": (
        dict(keyed=True, workers=0, persistent=False, shuffle=True, opt_out=True),
        9,
    ),
}
RESUMED = [name for name in RUNS if name != "keyed-workers0-opted-out"]


def run_plan(plan: object, path: Path) -> None:
    path.write_text(json.dumps(plan))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(path)],
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")

    def config(name, phase):
        settings, save_steps = RUNS[name]
        return {
            **settings,
            "fixed_mask": True,
            "epochs": EPOCHS,
            "save_steps": save_steps,
            "output_dir": str(tmp / name),
            "results": str(tmp / f"{name}.{phase}.json"),
            "resume_from": (
                str(tmp / name / f"checkpoint-{save_steps}") if phase == "resumed" else None
            ),
        }

    full = [config(name, "full") for name in RUNS]
    resumed = [[config(name, "resumed")] for name in RESUMED]
    run_plan({"stages": [[full[::2], full[1::2]], resumed]}, tmp / "plan.json")

    def load(name, phase):
        return json.loads((tmp / f"{name}.{phase}.json").read_text())

    return {
        name: (load(name, "full"), load(name, "resumed") if name in RESUMED else None)
        for name in RUNS
    }


def _after(records, step):
    return [r for r in records if r["step"] >= step]


@pytest.mark.parametrize("name", [n for n in RESUMED if "opted-out" not in n])
def test_resumed_run_trains_on_the_same_masks_to_the_same_losses(runs, name):
    full, resumed = runs[name]
    save_steps = RUNS[name][1]
    expected = _after(full["records"], save_steps)
    got = resumed["records"]
    assert len(got) == len(expected) > 0
    for a, b in zip(expected, got, strict=True):
        assert a["step"] == b["step"]
        assert a["input_ids"] == b["input_ids"], f"step {a['step']}: other masks"
        assert a["labels"] == b["labels"], f"step {a['step']}: other labels"
        assert a["loss"] == b["loss"], f"step {a['step']}: {a['loss']} != {b['loss']}"

    # The fixed-mask evaluations after the checkpoint agree too (same model, same masks).
    def fixed(evals):
        return {e["step"]: e["eval_mlm_loss"] for e in evals if e["step"] > save_steps}

    assert fixed(resumed["evals"]) == fixed(full["evals"]) != {}
    assert full["warnings"] == [] and resumed["warnings"] == []


def test_without_the_integration_a_resumed_seeded_run_draws_other_masks(runs):
    full, resumed = runs["seeded-workers0-opted-out"]
    expected = _after(full["records"], 9)
    assert [r["input_ids"] for r in resumed["records"]] != [r["input_ids"] for r in expected]


def masks_by_row(records) -> list[dict[tuple[int, ...], np.ndarray]]:
    """Per epoch: {row content: positions masked}, from the recorded micro-batches."""
    epochs: list[dict[tuple[int, ...], np.ndarray]] = [{} for _ in range(EPOCHS)]
    for i, r in enumerate(records):
        ids, labels = np.array(r["input_ids"]), np.array(r["labels"])
        restored = np.where(labels != -100, labels, ids)
        for row, lab in zip(restored, labels, strict=True):
            n = int((row != 0).sum())
            epochs[i // BATCHES_PER_EPOCH][tuple(row[:n].tolist())] = lab[:n] != -100
    return epochs


@pytest.mark.parametrize("name", [n for n in RUNS if "opted-out" not in n and "iterable" not in n])
def test_every_epoch_draws_fresh_masks_for_the_same_rows(runs, name):
    full, _ = runs[name]
    epochs = masks_by_row(full["records"])
    assert all(len(e) == 48 for e in epochs)
    for a, b in ((epochs[0], epochs[1]), (epochs[1], epochs[2])):
        assert a.keys() == b.keys()
        differ = np.mean([not np.array_equal(a[k], b[k]) for k in a])
        assert differ >= 0.9, differ
        # Of the positions masked in one epoch, the share masked again is chance (p = 0.15),
        # not 1.
        again = sum(int((a[k] & b[k]).sum()) for k in a) / sum(int(a[k].sum()) for k in a)
        assert again < 0.3, again


def test_without_the_integration_keyed_masks_repeat_every_epoch(runs):
    full, _ = runs["keyed-workers0-opted-out"]
    epochs = masks_by_row(full["records"])
    for k in epochs[0]:
        assert np.array_equal(epochs[0][k], epochs[1][k])
        assert np.array_equal(epochs[1][k], epochs[2][k])
