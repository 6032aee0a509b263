"""`FixedMaskPerplexityCallback`: masked-LM perplexity on masks that never change.

Where the figures go, and why the callback works in `on_log`: in transformers 5 `Trainer.evaluate`
calls `self.log(output.metrics)` - which appends a copy of the metrics to `state.log_history` and
then calls every callback's `on_log` with the metrics dict itself - and only afterwards
`on_evaluate`. So the callback computes its figures in `on_log` when an evaluation's metrics arrive
and adds them to that dict (which is the dict `evaluate()` returns and `metric_for_best_model`
reads) and to the `log_history` entry just appended. Callbacks that run after it (the console
printer, and reporting integrations when it is added with `attach(trainer)`) see them too.
`on_evaluate` is a fallback for trainers whose `log` does not call `on_log`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import TrainerCallback
from transformers.trainer_callback import DefaultFlowCallback

from .collator import DataCollatorForLanguageModeling
from .metrics import check_logits, mlm_logits, summarize, token_sums
from .seeding import integer_like
from .word_masking import BOUNDARY_COLUMNS, resolve_masking

_EVAL_LOG = re.compile(r"^eval(_.+)?_runtime$")
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
# special_tokens_mask travels through the padding-only collator under this name (it pads unknown
# per-token columns like input_ids) and is handed to `mask_tensor` on the device.
_SPECIAL = "special_tokens_mask"
_CARRIED_SPECIAL = "_mlmkit_special_tokens_mask"


class FixedMaskPerplexityCallback(TrainerCallback):
    """Adds `eval_mlm_loss` (total NLL / masked tokens), `eval_mlm_perplexity` and
    `eval_mlm_accuracy` (top-1 on masked tokens) to every evaluation `Trainer` logs.

    The masks are a pure function of (`seed`, row content): the collator's masking settings in
    keyed mode, so they are identical at every evaluation, across runs, eval batch sizes,
    `num_workers`, devices and distributed ranks.

    Args:
        eval_dataset: map-style dataset (a `datasets.Dataset`, a list of dicts, ...) whose rows
            have `input_ids` (and optionally `token_type_ids`, `special_tokens_mask`, ...).
        collator: an mlmkit collator; its masking settings are used, in keyed mode.
        batch_size: eval batch size (does not change the masks).
        seed: the masks' seed.
        num_workers: DataLoader workers for collating the eval set (do not change the masks).
        metric_prefix: names are `{metric_prefix}_loss`, `_perplexity`, `_accuracy`.
        evaluate_before_training: also evaluate in `on_train_begin` and append the figures to
            `state.log_history` (`TrainingArguments(eval_on_start=True)` does this through the
            normal evaluation, which reporting integrations see as well).
        mask_on_device: mask with the torch implementation on the model's device (`True`), with
            the Rust collator on the CPU (`False`), or the former when the model is on an
            accelerator (`None`). Both give the same masks, in every masking mode (an eval set
            whose `word_ids` / `chinese_ref` columns give word boundaries is masked by the
            collator).

    Add it with `callback.attach(trainer)` to place it ahead of the reporting integrations
    (TensorBoard, W&B, ...) so they receive the figures; passed in `Trainer(callbacks=[...])` it
    runs after them, and the figures reach `log_history`, `evaluate()`'s result,
    `metric_for_best_model` and the console but not the integrations.
    """

    def __init__(
        self,
        eval_dataset: Any,
        collator: DataCollatorForLanguageModeling,
        batch_size: int = 16,
        *,
        seed: int = 0,
        num_workers: int = 0,
        metric_prefix: str = "eval_mlm",
        evaluate_before_training: bool = False,
        mask_on_device: bool | None = None,
    ) -> None:
        if not isinstance(collator, DataCollatorForLanguageModeling):
            raise TypeError(
                "collator must be an mlmkit collator (mlmkit.DataCollatorForLanguageModeling), "
                f"got {type(collator).__name__}"
            )
        if not collator.mlm:
            raise ValueError("the collator has mlm=False: there is nothing to mask")
        for name, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        seed = integer_like(seed, "seed")
        if mask_on_device not in (None, True, False):
            raise ValueError(f"mask_on_device must be None, True or False, got {mask_on_device!r}")
        _check_dataset(eval_dataset)
        self.eval_dataset = eval_dataset
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.metric_prefix = metric_prefix
        self.evaluate_before_training = evaluate_before_training
        self.mask_on_device = mask_on_device
        self.masker = dataclasses.replace(
            collator, keyed=True, seed=seed, epoch=0, return_tensors="pt", device=None
        )
        self.masker.set_epoch(0)  # managed: the eval masks never change, whatever Trainer does
        # The torch path: the DataLoader pads, mask_tensor masks (every masking mode). Word
        # boundaries from a dataset's word_ids / chinese_ref column stay with the collator.
        masking = resolve_masking(collator.whole_word_mask, collator.masking, True)
        boundary_columns = sorted(set(BOUNDARY_COLUMNS) & set(_column_names(eval_dataset)))
        self._torch_ok = self.masker._torch_masking_supported() and not (
            masking != "token" and boundary_columns
        )
        if mask_on_device and not self._torch_ok:
            raise ValueError(
                f"mask_on_device=True: the eval set gives word boundaries in {boundary_columns}, "
                "which masking on the device does not read (leave mask_on_device=None)"
            )
        self.padder = (
            dataclasses.replace(self.masker, mlm=False, whole_word_mask=False, masking=None)
            if self._torch_ok
            else None
        )
        self.last_metrics: dict[str, float] | None = None
        self._attached = False
        self._last: tuple[int, Any, dict[str, float]] | None = None
        self._handled: dict[str, float] | None = None

    # ---- placement -------------------------------------------------------------------------

    def attach(self, trainer: Any) -> FixedMaskPerplexityCallback:
        """Add this callback to `trainer` right after its `DefaultFlowCallback`, i.e. ahead of the
        reporting integrations, so they log the figures too. Returns the callback."""
        handler = trainer.callback_handler
        callbacks = [cb for cb in handler.callbacks if cb is not self]
        at = max(
            (i + 1 for i, cb in enumerate(callbacks) if isinstance(cb, DefaultFlowCallback)),
            default=0,
        )
        callbacks.insert(at, self)
        handler.callbacks = callbacks
        self._attached = True
        return self

    # ---- the evaluation --------------------------------------------------------------------

    def keys(self) -> tuple[str, str, str]:
        p = self.metric_prefix
        return f"{p}_loss", f"{p}_perplexity", f"{p}_accuracy"

    def batches(self, device: torch.device | str = "cpu", *, use_torch: bool | None = None):
        """The masked eval batches (this rank's share under torch.distributed), on `device`."""
        device = torch.device(device)
        if use_torch is None:
            use_torch = device.type != "cpu" if self.mask_on_device is None else self.mask_on_device
        use_torch = use_torch and self._torch_ok
        rank, world = _rank_and_world()
        rows = _Batches(
            self.eval_dataset,
            self.padder if use_torch else self.masker,
            self.batch_size,
            rank,
            world,
            carry_special=use_torch,
        )
        loader = DataLoader(
            rows,
            batch_size=None,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=False,
            pin_memory=device.type == "cuda",
        )
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            if use_torch:
                batch.pop("labels", None)
                special = batch.pop(_CARRIED_SPECIAL, None)
                batch["input_ids"], batch["labels"] = self.masker.mask_tensor(
                    batch["input_ids"], special_tokens_mask=special
                )
            yield batch

    def evaluate(self, model: torch.nn.Module, args: Any = None) -> dict[str, float]:
        """Evaluate `model` on the fixed masks; `args` (TrainingArguments) selects fp16/bf16
        autocast like training. Runs under `torch.no_grad` in eval mode and restores the mode."""
        device = _model_device(model)
        was_training = model.training
        model.eval()
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        try:
            with torch.no_grad(), _autocast(args, device):
                for batch in self.batches(device):
                    labels = batch.pop("labels")
                    sums += token_sums(_forward(model, batch), labels)
        finally:
            model.train(was_training)
        nll, count, hits = _all_reduce(sums).tolist()
        metrics = summarize(nll, count, hits, self.metric_prefix)
        self.last_metrics = metrics
        return metrics

    def check_model(self, model: torch.nn.Module) -> None:
        """Raise a clear error now, rather than at the first evaluation, if `model` does not
        return masked-LM logits for the eval rows."""
        device = _model_device(model)
        batch = next(iter(self.batches(device, use_torch=False)), None)
        if batch is None:  # this rank has no eval rows
            return
        batch = {k: v[:1] for k, v in batch.items()}
        labels = batch.pop("labels")
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits = _forward(model, batch)
        finally:
            model.train(was_training)
        check_logits(logits, labels)

    # ---- Trainer events --------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self.check_model(model)
        report_to = getattr(args, "report_to", None) or []
        if isinstance(report_to, str):
            report_to = [report_to]
        report_to = [r for r in report_to if r != "none"]
        if report_to and not self._attached:
            warnings.warn(
                f"FixedMaskPerplexityCallback runs after the reporting integrations {report_to}, "
                f"which will not receive {', '.join(self.keys())}; add it with "
                "callback.attach(trainer) instead of Trainer(callbacks=[...]) so they do",
                stacklevel=2,
            )
        best = getattr(args, "metric_for_best_model", None)
        if best is not None and getattr(args, "greater_is_better", None):
            name = best if best.startswith("eval") else f"eval_{best}"
            if name == self.keys()[1]:
                warnings.warn(
                    f"metric_for_best_model={best!r} with greater_is_better=True keeps the model "
                    f"with the HIGHEST perplexity; set greater_is_better=False (or use "
                    f"{self.keys()[0]!r}, whose name ends in 'loss')",
                    stacklevel=2,
                )
        if self.evaluate_before_training and model is not None:
            metrics = self.evaluate(model, args)
            state.log_history.append({**metrics, "epoch": state.epoch, "step": state.global_step})

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if logs is None or model is None:
            return
        runtime = next((k for k in logs if _EVAL_LOG.match(k)), None)
        if runtime is None:
            return
        metrics = self.evaluate(model, args)
        self._last = (state.global_step, logs[runtime], metrics)
        self._handled = logs
        logs.update(metrics)
        if state.log_history:
            entry = state.log_history[-1]
            if entry.get(runtime) == logs[runtime] and entry.get("step") == state.global_step:
                entry.update(metrics)

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        # Normally `metrics` is the very dict on_log received and extended; otherwise (a trainer
        # whose `log` copies it or does not call on_log) add the figures here.
        if metrics is None or model is None or metrics is self._handled:
            return
        runtime = next((k for k in metrics if _EVAL_LOG.match(k)), None)
        last = self._last
        if last is not None and last[0] == state.global_step and last[1] == metrics.get(runtime):
            computed = last[2]
        else:
            computed = self.evaluate(model, args)
        metrics.update(computed)
        if state.log_history and runtime is not None:
            entry = state.log_history[-1]
            if entry.get(runtime) == metrics[runtime]:
                entry.update(computed)


class _Batches(torch.utils.data.Dataset):
    """Eval batches as items (collated where the DataLoader runs them, workers included): rows
    `rank, rank + world, ...` of the eval set, `batch_size` at a time."""

    def __init__(self, data, collator, batch_size, rank, world, carry_special):
        self.data = data
        self.collator = collator
        self.batch_size = batch_size
        self.indices = list(range(rank, len(data), world))
        self.carry_special = carry_special

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        idx = self.indices[i * self.batch_size : (i + 1) * self.batch_size]
        if hasattr(self.data, "column_names") and hasattr(self.data, "select"):
            columns = self.data[idx]  # a datasets.Dataset: one slice, a dict of columns
        else:
            rows = [self.data[j] for j in idx]
            columns = {k: [r[k] for r in rows] for k in rows[0]}
        columns = {
            k: list(v) if isinstance(v, np.ndarray) and v.dtype == object else v
            for k, v in columns.items()
            if k != "labels" and not isinstance(v[0], str)
        }
        if self.carry_special and _SPECIAL in columns:
            columns[_CARRIED_SPECIAL] = columns.pop(_SPECIAL)
        batch = self.collator(columns)
        return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}


def _column_names(data: Any) -> list[str]:
    names = getattr(data, "column_names", None)
    if names is None:
        first = data[0]
        names = list(first.keys()) if isinstance(first, Mapping) else []
    return list(names)


def _check_dataset(data: Any) -> None:
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise TypeError(
            "eval_dataset must be a map-style dataset (with __len__ and __getitem__), got "
            f"{type(data).__name__}"
        )
    if len(data) == 0:
        raise ValueError("eval_dataset is empty")
    names = getattr(data, "column_names", None)
    if names is None:
        first = data[0]
        if not isinstance(first, Mapping):
            raise TypeError(
                f"eval_dataset rows must be dicts with 'input_ids', got {type(first).__name__}"
            )
        names = list(first.keys())
    if isinstance(names, Sequence) and "input_ids" not in names:
        raise ValueError(f"eval_dataset has no 'input_ids' column (columns: {sorted(names)})")


def _model_device(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return torch.device("cpu") if param is None else param.device


def _forward(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The masked-LM logits of `model` on a batch (only the inputs its forward takes)."""
    params = inspect.signature(model.forward).parameters
    inputs = {k: v for k, v in batch.items() if k in _MODEL_INPUTS and k in params}
    embeddings = getattr(model, "get_input_embeddings", lambda: None)()
    size = getattr(embeddings, "num_embeddings", None)
    if size is not None and int(inputs["input_ids"].max()) >= size:
        raise ValueError(
            f"token id {int(inputs['input_ids'].max())} is outside the model's input embeddings "
            f"({size}): does the model match the tokenizer (model.resize_token_embeddings)?"
        )
    return mlm_logits(model(**inputs))


def _autocast(args: Any, device: torch.device):
    if args is not None and getattr(args, "bf16", False):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if args is not None and getattr(args, "fp16", False):
        return torch.autocast(device_type=device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def _rank_and_world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce(sums: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (every rank then reports the same figures)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return sums.cpu()
    on_device = "nccl" in str(dist.get_backend()).lower()
    buffer = sums if on_device else sums.cpu()
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    return buffer.cpu()
