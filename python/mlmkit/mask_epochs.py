"""`MaskEpochCallback`: mlmkit collators follow `Trainer`'s epochs and resume exactly.

Importing mlmkit adds `MaskEpochCallback` to transformers' default Trainer callbacks (when
`transformers.trainer` is imported, now or later), so every `Trainer` built afterwards has one.
It does nothing unless the training DataLoader collates with an mlmkit collator. Then:

* on train begin it hands the training DataLoader a `TrainingBatches` wrapper around the collator:
  the same object and settings, but with a batch counter of its own, so that `Trainer` evaluating
  with the same collator in the main process (`dataloader_num_workers=0`) does not shift the
  positions of training batches (a resumed run does not redo the evaluation before its
  checkpoint);
* on train begin and at each epoch begin it calls `collator.set_epoch(epoch, skip_batches=...)`
  with Trainer's epoch and, in the epoch a run resumes in, the number of batches Trainer skips
  (accelerate's `skip_first_batches` never fetches nor collates them), computed as Trainer does:
  `(global_step % updates_per_epoch) * gradient_accumulation_steps`. Datasets without a length
  or iterable ones are skipped by collating and dropping batches, so there the count is 0. With
  the epoch it records the optimizer step of the epoch's batch 0 and the batches per step, so
  that a batch's step is known where it is collated (`SequenceLengthSchedule` switches on it).

A collator that masks inside a `Trainer.train()` loop while nobody manages its epoch warns once
(`seeding.warn_if_unmanaged`): the integration could not reach it.

`trainer.remove_callback(mlmkit.MaskEpochCallback)` opts out (the masks then stay as the
collator's own epoch makes them).
"""

from __future__ import annotations

import importlib.abc
import math
import sys
import warnings
from collections.abc import Sequence
from types import FrameType, ModuleType
from typing import Any

import torch
from transformers import TrainerCallback

from . import seeding
from .collator import DataCollatorForLanguageModeling


class TrainingBatches:
    """A training DataLoader's `collate_fn`: `collator` itself (its settings as they are at each
    call), counting training batch positions apart from the collator's other uses."""

    def __init__(self, collator: DataCollatorForLanguageModeling) -> None:
        self.collator = collator
        self.cursor = seeding.BatchCursor(training=True)

    def __call__(self, examples: Any) -> Any:
        collator = self.collator
        own = collator._cursor
        collator._cursor = self.cursor
        try:
            return collator(examples)
        finally:
            collator._cursor = own


class MaskEpochCallback(TrainerCallback):
    """Tells mlmkit collators `Trainer`'s epoch and, when a run resumes mid-epoch, where in the
    epoch it resumes, so that keyed and seeded masks are fresh every epoch and a resumed run masks
    exactly like the uninterrupted one.

    Every `Trainer` gets one automatically (it drives the collator of the training DataLoader).
    Add one yourself only for collators that Trainer does not call directly, e.g. one that masks
    in the training step with `mask_tensor`: `MaskEpochCallback(masker).attach(trainer)`.

    Args:
        collators: the collators to drive; none: the training DataLoader's collator.
    """

    def __init__(self, *collators: DataCollatorForLanguageModeling) -> None:
        for c in collators:
            if not isinstance(c, DataCollatorForLanguageModeling):
                raise TypeError(
                    "MaskEpochCallback drives mlmkit collators "
                    f"(mlmkit.DataCollatorForLanguageModeling), got {type(c).__name__}"
                )
        self.explicit: tuple[DataCollatorForLanguageModeling, ...] = collators
        self.collators: list[DataCollatorForLanguageModeling] = []
        self._next: tuple[int, int, int] | None = None
        self._accumulation = 1
        self._run: tuple[int, Any] | None = None

    def attach(self, trainer: Any) -> MaskEpochCallback:
        """Add this callback to `trainer` (without transformers' warning about a second callback
        of the same class). Returns the callback."""
        handler = trainer.callback_handler
        handler.callbacks = [cb for cb in handler.callbacks if cb is not self] + [self]
        return self

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        if self._run is not None:
            seeding.trainer_ended(self._run)
        self._run = seeding.trainer_started(_trainer_frame())
        self.collators = list(self.explicit) or _take_over(train_dataloader)
        self._next = None
        if not self.collators:
            return
        self._accumulation = max(int(args.gradient_accumulation_steps), 1)
        self._next = (
            (0, 0, int(state.global_step))
            if train_dataloader is None
            else _start(args, state, train_dataloader)
        )
        _check_workers(args, self.collators)
        # Managed from now on: evaluation before the first epoch (eval_on_start) uses it too.
        self._set(*self._next)

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self._next is None:
            return
        epoch, skip, first_step = self._next
        self._set(epoch, skip, int(state.global_step) if first_step < 0 else first_step)
        self._next = (epoch + 1, 0, -1)  # later epochs start at the step Trainer is at then

    def _set(self, epoch: int, skip: int, first_step: int) -> None:
        """`set_epoch(epoch, skip_batches=skip)`, recording where the epoch is in the run."""
        for collator in self.collators:
            collator._schedule.set(
                epoch, skip, first_step=first_step, accumulation=self._accumulation
            )

    def on_train_end(self, args, state, control, **kwargs):
        for collator in self.collators:
            collator._schedule.end_steps()
        if self._run is not None:
            seeding.trainer_ended(self._run)
            self._run = None


def _trainer_frame() -> FrameType:
    """The frame of the loop that sends Trainer's events (`Trainer._inner_training_loop`)."""
    frame = sys._getframe(1)
    while frame.f_back is not None:
        module = frame.f_globals.get("__name__", "")
        if not (module.startswith("mlmkit") or module == "transformers.trainer_callback"):
            break
        frame = frame.f_back
    return frame


def _take_over(loader: Any) -> list[DataCollatorForLanguageModeling]:
    """The mlmkit collator a training DataLoader collates with (directly, or inside transformers'
    RemoveColumnsCollator), after giving the DataLoader a `TrainingBatches` around it."""
    base = getattr(loader, "base_dataloader", loader)  # accelerate's DataLoaderShard wraps it
    owner, name = base, "collate_fn"
    fn = getattr(owner, name, None)
    inner = getattr(fn, "data_collator", None)
    if isinstance(inner, (DataCollatorForLanguageModeling, TrainingBatches)):
        owner, name, fn = fn, "data_collator", inner
    if isinstance(fn, TrainingBatches):
        return [fn.collator]
    if isinstance(fn, DataCollatorForLanguageModeling):
        setattr(owner, name, TrainingBatches(fn))
        return [fn]
    return []


def training_batches(loader: Any) -> TrainingBatches | None:
    """The `TrainingBatches` a training DataLoader collates with (after `_take_over`), if any."""
    base = getattr(loader, "base_dataloader", loader)
    fn = getattr(base, "collate_fn", None)
    fn = getattr(fn, "data_collator", fn)
    return fn if isinstance(fn, TrainingBatches) else None


def _start(args: Any, state: Any, loader: Any) -> tuple[int, int, int]:
    """(epoch, batches skipped, step of the epoch's batch 0) where `Trainer.train()` starts, as
    `Trainer` computes them."""
    accumulation = max(int(args.gradient_accumulation_steps), 1)
    try:
        length: int | None = len(loader)
    except TypeError:
        length = None
    if length:
        per_epoch = max(math.ceil(length / accumulation), 1)
    else:
        per_epoch = max(int(args.max_steps), 1)
    dataset = getattr(loader, "dataset", None)
    collated_when_skipped = isinstance(dataset, torch.utils.data.IterableDataset) or not length
    step = int(state.global_step)
    if args.ignore_data_skip:  # the epoch is run again from its first batch
        return step // per_epoch, 0, step
    first_step = step - step % per_epoch
    if collated_when_skipped:  # the skipped batches are collated: they take their positions
        return step // per_epoch, 0, first_step
    return step // per_epoch, (step % per_epoch) * accumulation, first_step


def _check_workers(args: Any, collators: Sequence[DataCollatorForLanguageModeling]) -> None:
    workers = int(getattr(args, "dataloader_num_workers", 0) or 0)
    if workers == 0:
        return
    if any(not c._schedule.shared for c in collators):
        warnings.warn(
            "shared memory is not available here, so DataLoader workers cannot see the epoch "
            "of the mlmkit collator: with dataloader_num_workers > 0 its masks do not follow the "
            "epochs. Use dataloader_num_workers=0",
            stacklevel=3,
        )
    seeded = [c for c in collators if c.mlm and not c.keyed and c.seed is not None]
    if seeded and getattr(args, "dataloader_in_order", True) is False:
        warnings.warn(
            "dataloader_in_order=False lets DataLoader workers take batches in the order they "
            "finish, so the batch positions that key seeded masks are not reproducible (nor is a "
            "resumed run); keep dataloader_in_order=True or use keyed=True",
            stacklevel=3,
        )


# ---- registration with transformers' default callbacks --------------------------------------


def _register(trainer_module: ModuleType) -> None:
    defaults = trainer_module.DEFAULT_CALLBACKS
    if MaskEpochCallback not in defaults:
        defaults.append(MaskEpochCallback)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `_register` once `transformers.trainer` has been imported (importing it here would
    cost seconds for users who never build a Trainer)."""

    name = "transformers.trainer"

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = None if find is None else find(fullname, path, target)
            if spec is not None:
                break
        loader = None if spec is None else spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_and_register(module: ModuleType) -> None:
            exec_module(module)
            _register(module)

        loader.exec_module = exec_and_register  # type: ignore[method-assign]
        return spec


def install() -> None:
    module = sys.modules.get(_AfterImport.name)
    if module is not None:
        _register(module)
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
