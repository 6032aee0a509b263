"""Real torch.distributed (gloo on CPU, file store, two ranks): training masks differ between
ranks, keyed masks do not, and a DDP `Trainer` run reports one fixed-mask perplexity on every
rank, equal to a single-process evaluation of the saved model."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from transformers import BertForMaskedLM

import mlmkit

from . import trainer_run

ENV = {"OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "HF_HUB_OFFLINE": "1"}
MODES = {"torch": {}, "seeded": {"seed": 7}, "keyed": {"seed": 7, "keyed": True}}


def _labels(loader) -> np.ndarray:
    return np.concatenate([b["labels"].numpy() for b in loader])


def _rank_masks(rank, world, store, out):
    os.environ.update(ENV)
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=world
    )
    try:
        tok = trainer_run.tokenizer()
        rows = trainer_run.rows(tok, 32, 0)  # the same rows on both ranks
        found = {}
        for mode, options in MODES.items():
            for workers, context in ((0, None), (2, "fork"), (1, "spawn")):
                if context == "spawn" and mode != "seeded":
                    continue  # one spawned run: the rank travels with the pickled collator
                torch.manual_seed(0)  # every rank seeded alike, as Trainer and accelerate do
                collator = mlmkit.DataCollatorForLanguageModeling(
                    tok, pad_to_multiple_of=32, **options
                )
                if mode != "torch":
                    collator.set_epoch(0)
                loader = DataLoader(
                    rows,
                    batch_size=8,
                    collate_fn=collator,
                    num_workers=workers,
                    multiprocessing_context=context,
                    persistent_workers=workers > 0,
                )
                found[mode, workers, context] = _labels(loader)
        out.put((rank, found))
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def rank_masks(tmp_path_factory):
    store = tmp_path_factory.mktemp("store") / "store"
    ctx = torch.multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_rank_masks, args=(r, 2, store, out)) for r in range(2)]
    for p in procs:
        p.start()
    results: dict = {}
    deadline = time.monotonic() + 300
    while len(results) < len(procs):
        assert time.monotonic() < deadline, "the ranks did not finish"
        try:
            rank, found = out.get(timeout=2)
            results[rank] = found
        except queue.Empty:
            assert all(p.exitcode in (None, 0) for p in procs), "a rank failed (see its output)"
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def _agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(share of rows masked identically, share of rank 0's masked positions rank 1 masks)."""
    ma, mb = a != -100, b != -100
    same_rows = float(np.mean([np.array_equal(x, y) for x, y in zip(ma, mb, strict=True)]))
    return same_rows, float((ma & mb).sum() / ma.sum())


@pytest.mark.parametrize("mode", ["torch", "seeded"])
def test_ranks_draw_independent_training_masks(rank_masks, mode):
    for key in rank_masks[0]:
        if key[0] != mode:
            continue
        same_rows, overlap = _agreement(rank_masks[0][key], rank_masks[1][key])
        # Independent masks at p = 0.15: rows agree only by accident, and a position masked on
        # one rank is masked on the other with probability about 0.15 (identical masks: 1).
        assert same_rows < 0.1, (key, same_rows)
        assert 0.03 < overlap < 0.35, (key, overlap)


def test_seeded_masks_do_not_depend_on_workers_on_any_rank(rank_masks):
    for rank in (0, 1):
        found = rank_masks[rank]
        reference = found["seeded", 0, None]
        for key in (("seeded", 2, "fork"), ("seeded", 1, "spawn")):
            np.testing.assert_array_equal(found[key], reference, err_msg=f"rank {rank} {key}")


def test_keyed_masks_are_identical_on_every_rank(rank_masks):
    for key in rank_masks[0]:
        if key[0] == "keyed":
            np.testing.assert_array_equal(rank_masks[0][key], rank_masks[1][key])
            assert (rank_masks[0][key] != -100).any()


def test_ddp_trainer_reports_one_fixed_mask_perplexity_equal_to_a_single_process_one(tmp_path):
    saved = tmp_path / "model"
    config = {
        "output_dir": str(tmp_path / "out"),
        "keyed": False,
        "workers": 0,
        "persistent": False,
        "shuffle": True,
        "epochs": 2,
        "save_steps": 1000,
        "eval_steps": 3,
        "fixed_mask": True,
        "ddp": str(tmp_path / "store"),
        "save_model": str(saved),
        "results": str(tmp_path / "rank{rank}.json"),
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps([config]))
    script = Path(trainer_run.__file__)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(path)],
            env={
                **os.environ,
                **ENV,
                "RANK": str(r),
                "LOCAL_RANK": str(r),
                "WORLD_SIZE": "2",
                "LOCAL_WORLD_SIZE": "2",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    for p in procs:
        log, _ = p.communicate(timeout=600)
        assert p.returncode == 0, log[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]

    # 48 rows, 2 ranks, batch 8: 3 steps per epoch, evaluations before training and after steps
    # 3 and 6.
    evals = [{e["step"]: e["eval_mlm_perplexity"] for e in r["evals"]} for r in ranks]
    assert sorted(evals[0]) == [0, 3, 6]
    assert evals[0] == evals[1]  # every rank reports the same figure
    assert ranks[0]["warnings"] == ranks[1]["warnings"] == []
    assert len(ranks[0]["records"]) == len(ranks[1]["records"]) == 6

    tok = trainer_run.tokenizer()
    eval_rows = datasets.Dataset.from_list(trainer_run.rows(tok, trainer_run.N_EVAL, 1))
    collator = mlmkit.DataCollatorForLanguageModeling(tok, seed=7)
    model = BertForMaskedLM.from_pretrained(saved)
    single = mlmkit.FixedMaskPerplexityCallback(eval_rows, collator, batch_size=4).evaluate(model)
    assert evals[0][6] == pytest.approx(single["eval_mlm_perplexity"], rel=1e-6)
