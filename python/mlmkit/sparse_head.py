"""`sparse_mlm_head(model)`: masked-LM training that runs the vocabulary head at the labelled
positions only.

A masked-LM head projects every position onto the vocabulary, and the loss then ignores the ~85%
of positions without a label. For a 50k-token vocabulary that projection is a large share of a
training step (most of it for XLM-R's 250k). Google BERT (`masked_lm_positions`), MosaicBERT and
ModernBERT (`sparse_prediction`) compute the head at the labelled positions only; this module
does the same for the stock transformers classes, without changing them.

How: two forward pre-hooks on the model object. In training mode, when the forward gets labels
(and, for the pre-training classes, the sentence-pair label too), the model's hook replaces
`labels` by `labels[labels != -100]` and leaves the boolean mask on the head module; the head's
hook then gathers the encoder output at those positions before the head runs. The model's own
forward does the rest unchanged: the same head modules and the same loss code (mean over the
labelled tokens, or `self.loss_function` with `num_items_in_batch` where the class uses it). So
the loss and every gradient are the stock model's, `Trainer` sees the stock `forward` signature
(it decides `model_accepts_loss_kwargs` and `num_items_in_batch` exactly as for the stock model),
the state dict, `save_pretrained` output and class are unchanged, and the hooks are plain
picklable objects that act on the module they are called with (pickle and `copy.deepcopy` keep
them working on the copy). ModernBERT is switched to its own `sparse_prediction` for those calls
instead (a forward hook that also runs when the forward raises switches it back).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

IGNORE_INDEX = -100

# Where the labelled-position mask waits between the model's hook and its head's.
_MASK_ATTRIBUTE = "_mlmkit_labelled_positions"
# Set while a ModernBERT forward runs with `sparse_prediction` switched on by the hook.
_SWITCHED_ATTRIBUTE = "_mlmkit_sparse_prediction_switched"

Model = TypeVar("Model", bound=torch.nn.Module)


@dataclass(frozen=True)
class _Family:
    """How one class computes its masked-LM scores."""

    heads: tuple[str, ...]  # attribute of the first head module (the first one the model has)
    pair_label: str | None = None  # second label the pre-training loss needs, if any
    own_sparse_prediction: bool = False  # ModernBERT: switch its `sparse_prediction` on


_M = "transformers.models"
FAMILIES: dict[str, _Family] = {
    f"{_M}.bert.modeling_bert.BertForMaskedLM": _Family(("cls",)),
    f"{_M}.bert.modeling_bert.BertForPreTraining": _Family(("cls",), "next_sentence_label"),
    f"{_M}.roberta.modeling_roberta.RobertaForMaskedLM": _Family(("lm_head",)),
    f"{_M}.xlm_roberta.modeling_xlm_roberta.XLMRobertaForMaskedLM": _Family(("lm_head",)),
    f"{_M}.distilbert.modeling_distilbert.DistilBertForMaskedLM": _Family(("vocab_transform",)),
    f"{_M}.albert.modeling_albert.AlbertForMaskedLM": _Family(("predictions",)),
    f"{_M}.albert.modeling_albert.AlbertForPreTraining": _Family(
        ("predictions",), "sentence_order_label"
    ),
    f"{_M}.electra.modeling_electra.ElectraForMaskedLM": _Family(("generator_predictions",)),
    # `config.legacy` picks the head: `cls` (legacy) or `lm_predictions`.
    f"{_M}.deberta_v2.modeling_deberta_v2.DebertaV2ForMaskedLM": _Family(("cls", "lm_predictions")),
    f"{_M}.modernbert.modeling_modernbert.ModernBertForMaskedLM": _Family(
        (), own_sparse_prediction=True
    ),
}
SUPPORTED = tuple(name.rsplit(".", 1)[1] for name in FAMILIES)


def sparse_mlm_head(model: Model) -> Model:
    """Make `model`'s training forward compute its masked-LM head at the labelled positions only.

    Returns the same object, of the same class. With `model.training` and `labels` given (for
    `BertForPreTraining` / `AlbertForPreTraining` also `next_sentence_label` /
    `sentence_order_label`), the encoder runs on the whole batch, the head only where
    `labels != -100`, and the loss is the stock model's (the same mean over labelled tokens, the
    same handling of `num_items_in_batch`), as are the gradients. In that mode `logits`
    (`prediction_logits` for the pre-training classes) holds the scores of the labelled
    positions only: shape `(N, vocab_size)`, row `i` belonging to the `i`-th True of
    `labels != -100` in row-major order, so `logits.argmax(-1)` compares with
    `labels[labels != -100]`. In eval mode or without labels the model is the stock one (full
    `(batch, length, vocab_size)` logits, e.g. for `Trainer.evaluate` and `compute_metrics`), and
    `save_pretrained` writes the stock checkpoint. Calling it again is a no-op.

    Supported: BertForMaskedLM, BertForPreTraining, RobertaForMaskedLM, XLMRobertaForMaskedLM,
    DistilBertForMaskedLM, AlbertForMaskedLM, AlbertForPreTraining, ElectraForMaskedLM,
    DebertaV2ForMaskedLM, ModernBertForMaskedLM (and subclasses that keep their `forward`);
    anything else raises `TypeError`.
    """
    family, base = _family_of(model)
    if any(isinstance(h, _ModelHook) for h in model._forward_pre_hooks.values()):
        return model
    labels = _Argument.of(base, "labels")
    if family.own_sparse_prediction:
        model.register_forward_pre_hook(_ModelHook(labels, None, None), with_kwargs=True)
        model.register_forward_hook(_RestoreSparsePrediction(), always_call=True)
        return model
    head = next(
        (h for h in family.heads if isinstance(getattr(model, h, None), torch.nn.Module)), None
    )
    if head is None:
        raise TypeError(
            f"sparse_mlm_head: {type(model).__name__} has none of the head modules "
            f"{', '.join(family.heads)}"
        )
    pair = None if family.pair_label is None else _Argument.of(base, family.pair_label)
    getattr(model, head).register_forward_pre_hook(_GatherAtLabels(), with_kwargs=True)
    model.register_forward_pre_hook(_ModelHook(labels, pair, head), with_kwargs=True)
    return model


def _family_of(model: Any) -> tuple[_Family, type]:
    """The family of `model`'s class (or of the first supported base class, when the subclass
    keeps its `forward`)."""
    cls = type(model)
    for base in cls.__mro__:
        family = FAMILIES.get(f"{base.__module__}.{base.__qualname__}")
        if family is None:
            continue
        if cls.forward is not base.forward:  # type: ignore[attr-defined]
            raise TypeError(
                f"sparse_mlm_head: {cls.__name__} overrides the forward of {base.__name__}, so "
                "its head and loss are unknown; supported classes: " + ", ".join(SUPPORTED)
            )
        return family, base
    raise TypeError(
        f"sparse_mlm_head supports {', '.join(SUPPORTED)}; got {cls.__module__}.{cls.__qualname__}"
    )


@dataclass(frozen=True)
class _Argument:
    """A forward argument, found by keyword or by position."""

    name: str
    position: int  # in `args`, i.e. not counting `self`

    @classmethod
    def of(cls, model_class: type, name: str) -> _Argument:
        params = list(inspect.signature(model_class.forward).parameters)  # type: ignore[attr-defined]
        return cls(name, params.index(name) - 1)

    def get(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.name in kwargs:
            return kwargs[self.name]
        return args[self.position] if self.position < len(args) else None

    def replaced(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], value: Any
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self.name in kwargs:
            return args, {**kwargs, self.name: value}
        return (*args[: self.position], value, *args[self.position + 1 :]), kwargs


@dataclass(frozen=True)
class _ModelHook:
    """Forward pre-hook of the model: in training mode with labels, pass on the labelled ones
    only and leave their positions for the head's hook (or switch on `sparse_prediction`)."""

    labels: _Argument
    pair_label: _Argument | None
    head: str | None  # None: the model's own `sparse_prediction`

    def __call__(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        if self.head is None:
            self._switch(module, args, kwargs)
            return None
        head = getattr(module, self.head)
        head.__dict__.pop(_MASK_ATTRIBUTE, None)  # from a forward that raised
        labels = self.labels.get(args, kwargs)
        if not module.training or labels is None:
            return None
        if self.pair_label is not None and self.pair_label.get(args, kwargs) is None:
            return None  # the stock forward computes no loss then: keep its full logits
        picked = labels != IGNORE_INDEX
        head.__dict__[_MASK_ATTRIBUTE] = picked
        return self.labels.replaced(args, kwargs, labels[picked])

    def _switch(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if module.training and self.labels.get(args, kwargs) is not None:
            if not module.sparse_prediction:
                module.sparse_prediction = True  # type: ignore[assignment]
                module.__dict__[_SWITCHED_ATTRIBUTE] = True


@dataclass(frozen=True)
class _GatherAtLabels:
    """Forward pre-hook of the head: its input (the encoder output) at the labelled positions."""

    def __call__(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        picked = module.__dict__.pop(_MASK_ATTRIBUTE, None)
        if picked is None:
            return None
        hidden, *rest = args
        return (hidden[picked.to(hidden.device)], *rest), kwargs


@dataclass(frozen=True)
class _RestoreSparsePrediction:
    """Forward hook (also run when the forward raises): switch `sparse_prediction` back off."""

    def __call__(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if module.__dict__.pop(_SWITCHED_ATTRIBUTE, False):
            module.sparse_prediction = False  # type: ignore[assignment]
