"""`SequenceLengthSchedule`: short sequences first, then longer ones, in one `Trainer` run.

BERT was pretrained for 90% of its steps on 128-token sequences and for the rest on 512: MLM
learns most of what it learns about words from short contexts, at a fraction of the cost of long
ones. The callback crops the training batches of the collator to each stage's `max_length`.

How the switch lands on the scheduled step: on train begin the stages go into the collator's
shared `LengthPlan` as optimizer steps; `MaskEpochCallback` records where each epoch starts in
the run, so every training batch knows the step it belongs to from its own position in the epoch
(`first_step + batch // gradient_accumulation_steps`), in the main process and in DataLoader
workers, persistent or not, however many batches they prefetch, and after a resume.
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import DefaultFlowCallback

from .collator import DataCollatorForLanguageModeling
from .length_plan import MAX_STAGES, check_max_length
from .mask_epochs import MaskEpochCallback, training_batches

logger = logging.getLogger(__name__)

Stage = tuple[float, int]


def check_stages(stages: object) -> tuple[Stage, ...]:
    """`[(fraction_of_steps, max_length), ...]` with positive fractions summing to 1 and
    increasing lengths."""
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
        raise TypeError(
            "stages must be a non-empty list of (fraction_of_steps, max_length) pairs, e.g. "
            f"[(0.9, 128), (0.1, 512)], got {stages!r}"
        )
    if len(stages) > MAX_STAGES:
        raise ValueError(f"a schedule has at most {MAX_STAGES} stages, got {len(stages)}")
    out: list[Stage] = []
    for k, stage in enumerate(stages):
        if isinstance(stage, (str, bytes)) or not isinstance(stage, Sequence) or len(stage) != 2:
            raise TypeError(
                f"stage {k} must be a (fraction_of_steps, max_length) pair, got {stage!r}"
            )
        fraction, length = stage
        f = float(fraction) if isinstance(fraction, numbers.Real) else math.nan
        if isinstance(fraction, bool) or not 0.0 < f <= 1.0:
            raise ValueError(
                f"stage {k}: the fraction of steps must be a number in (0, 1], got {fraction!r}"
            )
        n = check_max_length(length)
        if n is None:
            raise ValueError(f"stage {k}: max_length must be a positive integer, got None")
        if out and n <= out[-1][1]:
            raise ValueError(
                f"stage {k}: max_length {n} does not increase on the previous stage's "
                f"{out[-1][1]} (short sequences first, each stage longer than the last)"
            )
        out.append((f, n))
    total = math.fsum(f for f, _ in out)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(
            f"the stages' fractions of steps sum to {total:g}, not 1: "
            + " + ".join(f"{f:g}" for f, _ in out)
        )
    return tuple(out)


class SequenceLengthSchedule(TrainerCallback):
    """Crop the training batches of `collator` to a `max_length` that grows in stages.

        schedule = mlmkit.SequenceLengthSchedule(collator, [(0.9, 128), (0.1, 512)])
        schedule.attach(trainer)  # 90% of max_steps at 128 tokens, then 512

    Stage k starts at step `round((f_0 + ... + f_{k-1}) * max_steps)` and its batches are cropped
    to its `max_length` (`DataCollatorForLanguageModeling.max_length`: windows of the rows,
    `[CLS] window [SEP]`, masked after cropping). The switch happens at exactly that step with
    any `dataloader_num_workers`, persistent workers, gradient accumulation and on resume.
    Evaluation is not scheduled: it uses the collator's own `max_length` (None: whole rows).

    Each switch is logged (`{"max_length": n}` through `trainer.log` when attached, so the
    console and reporting integrations show it; else appended to `state.log_history`), and every
    training log gets the `max_length` of its step.

    Args:
        collator: the mlmkit collator `Trainer` trains with (`Trainer(data_collator=...)`).
        stages: `[(fraction_of_steps, max_length), ...]`: fractions > 0 summing to 1, lengths
            increasing, each longer than the tokenizer's special tokens.
    """

    def __init__(self, collator: DataCollatorForLanguageModeling, stages: Sequence[Stage]) -> None:
        if not isinstance(collator, DataCollatorForLanguageModeling):
            raise TypeError(
                "SequenceLengthSchedule drives an mlmkit collator "
                f"(mlmkit.DataCollatorForLanguageModeling), got {type(collator).__name__}"
            )
        self.stages = check_stages(stages)
        for _, n in self.stages:
            collator._check_max_length(n)
        self.collator = collator
        self._trainer: Any = None
        self._plan: list[tuple[int, int]] = []
        self._announced = -1

    def attach(self, trainer: Any) -> SequenceLengthSchedule:
        """Add this callback to `trainer`, after mlmkit's `MaskEpochCallback` and ahead of the
        reporting integrations (so they log the switches and lengths). Returns the callback."""
        handler = trainer.callback_handler
        callbacks = [cb for cb in handler.callbacks if cb is not self]
        at = max(
            (
                i + 1
                for i, cb in enumerate(callbacks)
                if isinstance(cb, (DefaultFlowCallback, MaskEpochCallback))
            ),
            default=0,
        )
        callbacks.insert(at, self)
        handler.callbacks = callbacks
        self._trainer = trainer
        return self

    def starts(self, max_steps: int) -> list[int]:
        """The first step of each stage in a run of `max_steps` optimizer steps."""
        out, done = [], 0.0
        for fraction, _ in self.stages:
            out.append(math.floor(done * max_steps + 0.5))
            done += fraction
        return out

    def max_length_at(self, step: int, max_steps: int) -> int:
        """The `max_length` of (0-based) optimizer step `step` in a run of `max_steps`."""
        length = self.stages[0][1]
        for start, (_, n) in zip(self.starts(max_steps), self.stages, strict=True):
            if step >= start:
                length = n
        return length

    # ---- Trainer events --------------------------------------------------------------------

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        batches = training_batches(train_dataloader)
        collates = batches is not None and batches.collator is self.collator
        if not collates and not _collates_with(train_dataloader, self.collator):
            raise ValueError(
                "SequenceLengthSchedule: the training DataLoader does not collate with its "
                "collator; pass that collator to Trainer(data_collator=...)"
            )
        if not collates or self.collator._schedule.first_step < 0:
            raise ValueError(
                "SequenceLengthSchedule needs mlmkit.MaskEpochCallback, which tells the collator "
                "where each epoch starts; it is one of Trainer's default callbacks: do not "
                "remove it (and attach the schedule with schedule.attach(trainer))"
            )
        workers = int(getattr(args, "dataloader_num_workers", 0) or 0)
        if workers and getattr(args, "dataloader_in_order", True) is False:
            warnings.warn(
                "dataloader_in_order=False lets Trainer take batches in the order DataLoader "
                "workers finish them, so a batch cropped for one step may be trained on at a "
                "neighbouring one: SequenceLengthSchedule switches exactly with "
                "dataloader_in_order=True (the default)",
                stacklevel=2,
            )
        # A stage too short to get a step (a short run) is left out.
        plan: dict[int, int] = {}
        for start, (_, n) in zip(self.starts(int(state.max_steps)), self.stages, strict=True):
            plan[start] = n
        self._plan = sorted(plan.items())
        self.collator._lengths.set_stages([s for s, _ in self._plan], [n for _, n in self._plan])
        logger.info(
            "sequence-length schedule over %d steps: %s",
            state.max_steps,
            ", ".join(f"max_length {n} from step {s}" for s, n in self._plan),
        )
        self._switch(state, self._length(int(state.global_step)))

    def on_step_begin(self, args, state, control, **kwargs):
        step = int(state.global_step)
        if step != self._announced and any(s == step for s, _ in self._plan[1:]):
            self._switch(state, self._length(step))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or not self._plan:
            return
        n = self._length(max(int(state.global_step) - 1, 0))  # the step just logged
        logs["max_length"] = n
        entry = state.log_history[-1] if state.log_history else None
        if entry is not None and entry.get("loss") == logs["loss"]:
            entry["max_length"] = n

    def on_train_end(self, args, state, control, **kwargs):
        self.collator._lengths.clear_stages()
        self._plan = []

    def _length(self, step: int) -> int:
        length = self._plan[0][1]
        for start, n in self._plan:
            if step >= start:
                length = n
        return length

    def _switch(self, state: Any, n: int) -> None:
        self._announced = int(state.global_step)
        logger.info("step %d: training batches are cropped to max_length %d", state.global_step, n)
        if self._trainer is not None:
            self._trainer.log({"max_length": n})
        else:
            state.log_history.append(
                {"max_length": n, "epoch": state.epoch, "step": state.global_step}
            )


def _collates_with(loader: Any, collator: DataCollatorForLanguageModeling) -> bool:
    """Whether a DataLoader collates with `collator` itself (not through `TrainingBatches`)."""
    fn = getattr(getattr(loader, "base_dataloader", loader), "collate_fn", None)
    return getattr(fn, "data_collator", fn) is collator
