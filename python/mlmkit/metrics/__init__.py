"""Masked-LM figures computed the same way everywhere: total negative log-likelihood over the
masked tokens divided by their number (not a mean of per-batch means), its exponential, and top-1
accuracy on the masked tokens.

* `FixedMaskPerplexityCallback` (mlmkit.fixed_mask_perplexity) computes them itself on fixed masks.
* `preprocess_logits_for_metrics` + `compute_metrics`: the pair to hand `Trainer` when its own eval
  loop runs on fixed masks (a keyed collator, or an eval set masked once); they report
  `eval_mlm_loss`, `eval_mlm_perplexity`, `eval_mlm_accuracy`.
* `EVALUATE_MODULE`: an `evaluate` module shipped in the package (works offline):
  `evaluate.load(str(mlmkit.metrics.EVALUATE_MODULE))`, fed with `token_statistics(logits, labels)`.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._core import IGNORE_INDEX

EVALUATE_MODULE = pathlib.Path(__file__).parent / "mlm_perplexity"
"""Folder of the `evaluate` module: `evaluate.load(str(EVALUATE_MODULE))`."""


def summarize(
    nll_sum: float, count: float, correct: float, prefix: str = "mlm"
) -> dict[str, float]:
    """`{prefix}_loss` (nll_sum / count), `{prefix}_perplexity`, `{prefix}_accuracy`."""
    if count <= 0:
        raise ValueError(
            "no masked tokens to evaluate: every label is -100 (is mlm_probability 0, or are "
            "the rows made of special tokens only?)"
        )
    loss = nll_sum / count
    return {
        f"{prefix}_loss": loss,
        f"{prefix}_perplexity": math.exp(loss) if loss < 700 else math.inf,
        f"{prefix}_accuracy": correct / count,
    }


def mlm_logits(output: Any) -> torch.Tensor:
    """The masked-LM logits of a model output: `prediction_logits` (`*ForPreTraining`) or `logits`
    (`*ForMaskedLM`), or the first element of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    for name in ("prediction_logits", "logits"):
        value = output.get(name) if isinstance(output, Mapping) else getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    fields = list(output.keys()) if isinstance(output, Mapping) else type(output).__name__
    raise ValueError(
        "the model returns no masked-LM logits (no `logits` or `prediction_logits` in its "
        f"output; got {fields}): use a *ForMaskedLM or *ForPreTraining model"
    )


def check_logits(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.ndim != 3 or tuple(logits.shape[:2]) != tuple(labels.shape):
        raise ValueError(
            f"the model's logits have shape {tuple(logits.shape)} but masked-LM logits must be "
            f"(batch, length, vocab) = ({labels.shape[0]}, {labels.shape[1]}, vocab): is this a "
            "masked-LM model (*ForMaskedLM / *ForPreTraining)?"
        )
    if labels.numel() and int(labels.max()) >= logits.shape[-1]:
        raise ValueError(
            f"label id {int(labels.max())} is outside the model's vocabulary of "
            f"{logits.shape[-1]}: does the model match the tokenizer?"
        )


def token_sums(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """float64 `[sum of NLL, masked tokens, top-1 hits]` over the positions whose label is set."""
    check_logits(logits, labels)
    selected = labels != IGNORE_INDEX
    picked = logits[selected].float()
    target = labels[selected]
    nll = F.cross_entropy(picked, target, reduction="none").double().sum()
    hits = (picked.argmax(dim=-1) == target).sum().double()
    return torch.stack([nll, selected.sum().double(), hits])


def token_statistics(logits: Any, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Per masked token: `predictions` (top-1 id), `references` (label) and `nll` - the inputs of
    the `evaluate` module (`metric.add_batch(**token_statistics(logits, labels))`)."""
    logits = mlm_logits(logits)
    labels = torch.as_tensor(labels, device=logits.device)
    check_logits(logits, labels)
    selected = labels != IGNORE_INDEX
    picked = logits[selected].float()
    target = labels[selected]
    nll = F.cross_entropy(picked, target, reduction="none").double()
    return {
        "predictions": picked.argmax(dim=-1).cpu().numpy(),
        "references": target.cpu().numpy(),
        "nll": nll.cpu().numpy(),
    }


def preprocess_logits_for_metrics(logits: Any, labels: torch.Tensor) -> torch.Tensor:
    """For `Trainer(preprocess_logits_for_metrics=...)`: reduce `(B, L, vocab)` logits to a
    `(B, L, 2)` float32 tensor `[NLL of the label, 1.0 if top-1 == label]` (0 where the label is
    -100), so Trainer does not keep the full logits of the eval set in memory."""
    logits = mlm_logits(logits)
    check_logits(logits, labels)
    selected = labels != IGNORE_INDEX
    target = torch.where(selected, labels, 0)
    nll = F.cross_entropy(logits.float().transpose(1, 2), target, reduction="none")
    hits = (logits.argmax(dim=-1) == labels).float()
    zero = torch.zeros((), dtype=torch.float32, device=logits.device)
    return torch.stack([torch.where(selected, nll, zero), torch.where(selected, hits, zero)], -1)


def compute_metrics(eval_pred: Any) -> dict[str, float]:
    """For `Trainer(compute_metrics=...)` together with `preprocess_logits_for_metrics`: returns
    `mlm_loss`, `mlm_perplexity`, `mlm_accuracy` (Trainer reports them as `eval_mlm_*`)."""
    predictions, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.ndim != 3 or predictions.shape[-1] != 2 or predictions.shape[:2] != labels.shape:
        raise ValueError(
            f"compute_metrics got predictions of shape {predictions.shape} for labels of shape "
            f"{labels.shape}: pass mlmkit.metrics.preprocess_logits_for_metrics as "
            "Trainer(preprocess_logits_for_metrics=...) as well"
        )
    selected = labels != IGNORE_INDEX
    stats = predictions[selected].astype(np.float64)
    return summarize(float(stats[:, 0].sum()), float(selected.sum()), float(stats[:, 1].sum()))


__all__ = [
    "EVALUATE_MODULE",
    "compute_metrics",
    "mlm_logits",
    "preprocess_logits_for_metrics",
    "summarize",
    "token_statistics",
]
