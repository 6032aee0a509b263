"""`DataCollatorForLanguageModeling`: transformers' MLM collator, with padding and masking done in
one Rust pass."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase
from transformers.data.data_collator import DataCollatorMixin

from . import _core, cropping, seeding
from .batch import Ragged, aligned_values, as_ragged, attention_values, columns_of, is_scalar
from .length_plan import LengthPlan, MaxLengthField
from .vocab import RandomTokens, TokenizerTables, tokenizer_state, tokenizer_tables
from .word_masking import (
    BOUNDARY_COLUMNS,
    MASKINGS,
    Masking,
    ReplacePer,
    check_span_options,
    resolve_masking,
    word_arguments,
)
from .words import word_tables

MaskCount = Literal["bernoulli", "exact"]

# Columns the collator consumes or rebuilds instead of passing through.
_CONSUMED = {"input_ids", "attention_mask", "special_tokens_mask", "labels", "offset_mapping"}


def _check_probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


@dataclass
class DataCollatorForLanguageModeling(DataCollatorMixin):
    """Drop-in for `transformers.DataCollatorForLanguageModeling`.

    Pads with the tokenizer's pad id on its padding side, builds `attention_mask`, pads
    `token_type_ids`, selects tokens for MLM (never special tokens or padding) and replaces them
    80/10/10, all in one Rust pass into tensors allocated here.

    Extra options:
        mask_count: "bernoulli" (each token independently, as transformers) or "exact"
            (round(p * n) of a row's n maskable tokens, at least one).
        max_predictions: cap on masked tokens per row.
        random_tokens: "non_special" (random replacements drawn from the non-special vocabulary)
            or "uniform" (from `range(len(tokenizer))`, as transformers).
        keyed: masks are a pure function of (seed, epoch, row content); needs `seed`.
        epoch: the epoch the masks belong to (0-based). `Trainer` advances it by itself; in
            other loops call `set_epoch(epoch)` every epoch (README: "Multi-GPU, multi-node and
            resumed training").

    Whole-word and span masking (README: "Whole-word and span masking"):
        whole_word_mask: True selects whole words (same as masking="word"); boundaries come from
            token ids (no offset_mapping needed), a `word_ids` column or a `chinese_ref` column.
        masking: "token", "word", "span" (SpanBERT: spans of Geometric(span_geometric_p) words,
            at most max_span_length) or "ngram" (n-grams of n <= max_ngram words, P(n) ~ 1/n).
            Default: "word" if whole_word_mask else "token".
        replace_per: "word": one 80/10/10 decision per word (per span in span/n-gram masking);
            "token": per token (Google BERT, Megatron).

    Short sequences (README: "Short sequences first"):
        max_length: crop every row longer than this to a window of `max_length` tokens (then
            pad and mask): `[CLS] window [SEP]` for rows wrapped in the tokenizer's special
            tokens, every per-token column cut alike. Sentence pairs are never cropped (an
            error when longer). `mlmkit.SequenceLengthSchedule` changes it during training.
    """

    tokenizer: PreTrainedTokenizerBase
    mlm: bool = True
    whole_word_mask: bool = False
    mlm_probability: float | None = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"
    seed: int | None = seeding.SeedField()  # type: ignore[assignment]
    mask_count: MaskCount = "bernoulli"
    max_predictions: int | None = None
    random_tokens: RandomTokens = "non_special"
    keyed: bool = False
    epoch: int = seeding.EpochField()  # type: ignore[assignment]
    masking: Masking | None = None
    replace_per: ReplacePer = "word"
    span_geometric_p: float = 0.2
    max_span_length: int = 10
    max_ngram: int = 3
    max_length: int | None = MaxLengthField()  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.tokenizer is None:
            raise ValueError("a tokenizer is required")
        resolve_masking(self.whole_word_mask, self.masking, self.mlm)
        check_span_options(
            self.replace_per, self.span_geometric_p, self.max_span_length, self.max_ngram
        )
        if self.mlm_probability is None and not self.mlm:
            self.mlm_probability = 0.0  # transformers allows None without MLM
        self.mlm_probability = _check_probability("mlm_probability", self.mlm_probability)
        self.mask_replace_prob = _check_probability("mask_replace_prob", self.mask_replace_prob)
        self.random_replace_prob = _check_probability(
            "random_replace_prob", self.random_replace_prob
        )
        if self.mask_replace_prob + self.random_replace_prob > 1.0 + 1e-12:
            raise ValueError(
                "mask_replace_prob + random_replace_prob must not exceed 1, got "
                f"{self.mask_replace_prob} + {self.random_replace_prob}"
            )
        if self.return_tensors not in ("pt", "np"):
            raise ValueError(f"return_tensors must be 'pt' or 'np', got {self.return_tensors!r}")
        if self.mask_count not in ("bernoulli", "exact"):
            raise ValueError(f"mask_count must be 'bernoulli' or 'exact', got {self.mask_count!r}")
        if self.random_tokens not in ("non_special", "uniform"):
            raise ValueError(
                f"random_tokens must be 'non_special' or 'uniform', got {self.random_tokens!r}"
            )
        for name in ("pad_to_multiple_of", "max_predictions"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.keyed and self.seed is None:
            raise ValueError(
                "keyed=True makes masks a function of (seed, epoch, content): pass a seed"
            )
        self._tables: TokenizerTables | None = None
        self._schedule: seeding.EpochSchedule = self.__dict__["_schedule"]  # made by `epoch`
        self._lengths: LengthPlan = self.__dict__["_lengths"]  # made by `max_length`
        self._cursor = seeding.BatchCursor()
        self._template: tuple[Any, ...] | None = None
        _ = self.tables  # fail now, not at the first batch, if the mask token is missing
        self._check_max_length(self.max_length)
        self._check_device()
        self._built = True

    @property
    def tables(self) -> TokenizerTables:
        """The tokenizer's special-token flags and ids, rebuilt when the tokenizer changes."""
        tables = self._tables
        if tables is None or tables.state != tokenizer_state(self.tokenizer):
            tables = tokenizer_tables(self.tokenizer, self.random_tokens, self.mlm)
            self._tables = tables
        return tables

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tables"] = None  # derived; rebuilt lazily in the process that uses it
        state["_template"] = None
        state["_cursor"] = seeding.BatchCursor()  # a copy counts its own batches
        return state

    def window_template(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The special tokens a cropped row keeps around its window when it carries them: the
        tokenizer's single-sequence template, e.g. `((cls_id,), (sep_id,))`."""
        state = self.tables.state
        cached = self._template
        if cached is None or cached[0] != state:
            cached = (state, *cropping.window_template(self.tokenizer))
            self._template = cached
        return cached[1], cached[2]

    def _check_max_length(self, n: int | None) -> None:
        if n is None:
            return
        prefix, suffix = self.window_template()
        specials = len(prefix) + len(suffix)
        if n <= specials:
            names = self.tokenizer.convert_ids_to_tokens([*prefix, *suffix])
            raise ValueError(
                f"max_length={n} is too small: the tokenizer wraps a sequence in {specials} "
                f"special tokens ({' '.join(names)}), so a cropped row needs max_length >= "
                f"{specials + 1}"
            )

    def set_epoch(self, epoch: int, *, skip_batches: int = 0) -> None:
        """Mask the coming batches as batches of `epoch` (0-based), like
        `DistributedSampler.set_epoch`. `skip_batches` is the number of batches the DataLoader
        skips at the start of this epoch when a run resumes (what accelerate's
        `skip_first_batches(loader, skip_batches)` skips), so that batch positions match the
        uninterrupted run.

        Keyed mode: the epoch enters every row's key. `seed=int`: each batch is keyed by (seed,
        rank, epoch, its position in the epoch), so a resumed run draws the same masks. Call it
        before iterating the DataLoader, in the process that iterates it; DataLoader workers,
        persistent ones included, see it. `Trainer` does this by itself (`MaskEpochCallback`)."""
        self._schedule.set(epoch, skip_batches)

    def _key_words(self, position: seeding.BatchPosition | None = None) -> np.ndarray:
        """The key words of a batch (at `position`, else the next one this collator takes)."""
        schedule = self._schedule
        if self.keyed:
            seeding.warn_if_unmanaged(schedule, keyed=True)
            epoch = schedule.epoch if position is None else position.epoch
            return seeding.keyed_words(self.seed, epoch)  # type: ignore[arg-type]
        if self.seed is None:
            return seeding.torch_words(schedule.rank())
        seeding.warn_if_unmanaged(schedule, keyed=False)
        if position is None:
            position = seeding.batch_position(schedule, self._cursor)
        return seeding.seeded_words(self.seed, schedule.rank(), position)

    def torch_call(self, examples: Any) -> dict[str, Any]:
        return self._to_device(self._collate(examples, "pt"))

    def numpy_call(self, examples: Any) -> dict[str, Any]:
        return self._collate(examples, "np")

    def _empty(self, shape: tuple[int, int], framework: str) -> tuple[Any, np.ndarray]:
        if framework == "pt":
            t = torch.empty(shape, dtype=torch.long, pin_memory=self._pin_outputs())
            return t, t.numpy()
        a = np.empty(shape, dtype=np.int64)
        return a, a

    def _collate(self, examples: Any, framework: str, keep_width: bool = False) -> dict[str, Any]:
        """Pad and mask a batch. Every position of the input keeps its place and value in the
        output (unless masked); `keep_width` (for the `*_mask_tokens` methods) leaves
        `pad_to_multiple_of` out."""
        tables = self.tables
        position = seeding.batch_position(self._schedule, self._cursor)
        cols = columns_of(examples)
        ids = as_ragged(cols["input_ids"], "input_ids")
        left = self.tokenizer.padding_side == "left"

        # Aligned columns are read at input_ids' flat offsets, checked against the rows as given.
        attention = None
        if "attention_mask" in cols:
            attention = attention_values(cols["attention_mask"], ids)
        special = None
        if "special_tokens_mask" in cols:
            s = aligned_values(cols["special_tokens_mask"], "special_tokens_mask", ids, bools=True)
            special = np.ascontiguousarray(s != 0, dtype=np.uint8)
        words = None
        masking = resolve_masking(self.whole_word_mask, self.masking, self.mlm)
        if masking != "token":
            words = word_arguments(
                cols,
                ids,
                masking,
                self.replace_per,
                self.span_geometric_p,
                self.max_span_length,
                self.max_ngram,
                lambda: word_tables(self.tokenizer),
            )
        passed: dict[str, np.ndarray] = {}
        scalars: dict[str, Any] = {}
        for name, rows in cols.items():
            if name in _CONSUMED or name in BOUNDARY_COLUMNS:
                continue
            if is_scalar(rows[0]):
                scalars[name] = _stack_scalars(rows, name, framework)
            elif isinstance(rows[0], str):
                raise ValueError(
                    f"column {name!r} holds strings, which cannot be batched; remove it from the "
                    "dataset (Trainer does unless remove_unused_columns=False)"
                )
            else:
                passed[name] = aligned_values(rows, name, ids, bools=True)

        # Content: each row without the surplus padding at its padding-side end (positions and
        # keyed masks count from it). The output keeps the input's layout.
        raw_starts, raw_lens = ids.starts, ids.lens
        content = Ragged(ids.values, raw_starts.copy(), raw_lens.copy())
        width = _core.trim_padding(
            ids.values,
            content.starts,
            content.lens,
            tables.pad_id,
            tables.pad_is_unique,
            left,
            "input_ids",
            attention,
        )
        limit = self._lengths.at(position.step, self._cursor.training)
        if limit is not None and width > limit:
            if keep_width:
                _check_fits(content, limit)
            else:
                crop = cropping.crop_rows(
                    ids,
                    content,
                    limit,
                    self.window_template(),
                    lambda: self._key_words(position),
                    self.keyed,
                    passed.get("token_type_ids"),
                    next((c for c in cropping.PAIR_LABELS if c in cols), None),
                )
                ids, content = crop.rows, crop.content
                raw_starts, raw_lens = ids.starts, ids.lens
                attention = None if attention is None else crop.take(attention)
                special = None if special is None else crop.take(special)
                if words is not None:
                    for name in ("word_ids", "continuation"):
                        if words[name] is not None:
                            words[name] = crop.take(words[name])
                passed = {name: crop.take(values) for name, values in passed.items()}
                width = int(raw_lens.max())
        if self.pad_to_multiple_of and not keep_width:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        if tables.pad_id is None and bool((raw_lens < width).any()):
            raise ValueError(_no_pad_message(raw_lens, width, self.pad_to_multiple_of))
        shape = (len(raw_lens), width)

        input_ids, ids_out = self._empty(shape, framework)
        labels, labels_out = self._empty(shape, framework)
        attention_out, attention_np = self._empty(shape, framework)
        _core.collate_batch(
            content.values,
            content.starts,
            content.lens,
            special,
            tables.is_special,
            tables.random_ids,
            self._key_words(position) if self.mlm else np.zeros(0, np.uint32),
            self.keyed,
            self.mlm,
            self.mlm_probability,
            self.mask_replace_prob,
            self.random_replace_prob,
            self.mask_count == "exact",
            self.max_predictions,
            tables.mask_id,
            tables.pad_id,
            left,
            ids_out,
            labels_out,
            attention_np,
            words,
            attention,
        )
        batch: dict[str, Any] = {"input_ids": input_ids}
        for name, values in passed.items():
            fill = self._fill_value(name)
            out, out_np = self._empty(shape, framework)
            _core.pad_column(values, raw_starts, raw_lens, fill, left, out_np)
            batch[name] = out
        batch.update(scalars)
        batch["attention_mask"] = attention_out
        batch["labels"] = labels
        return batch

    def _fill_value(self, name: str) -> int:
        if name == "token_type_ids":
            return int(getattr(self.tokenizer, "pad_token_type_id", 0) or 0)
        return 0

    # ---- Masking on the target device (torch path) and the `device` option ----------------

    device: str | torch.device | None = None
    """Return the batch's tensors on this device (custom loops with num_workers=0). For CUDA the
    outputs are allocated in pinned memory and copied with non_blocking=True."""

    def _check_device(self) -> None:
        self._device = None if self.device is None else _parse_device(self.device)
        if self._device is None:
            return
        if self.return_tensors != "pt":
            raise ValueError(f"device={self.device!r} needs return_tensors='pt'")
        backend = getattr(torch, self._device.type, None)
        available = getattr(backend, "is_available", None)
        if callable(available) and not available():
            raise ValueError(
                f"device={self.device!r} was requested but "
                f"torch.{self._device.type}.is_available() is False"
            )

    def _in_worker_on_accelerator(self) -> bool:
        return (
            self._device is not None
            and self._device.type != "cpu"
            and torch.utils.data.get_worker_info() is not None
        )

    def _pin_outputs(self) -> bool:
        return (
            self._device is not None
            and self._device.type == "cuda"
            and torch.cuda.is_available()
            and torch.utils.data.get_worker_info() is None
        )

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        device = self._device
        if device is None:
            return batch
        if self._in_worker_on_accelerator():
            raise ValueError(
                f"device={self.device!r} cannot be used inside a DataLoader worker process "
                "(num_workers > 0): CUDA cannot be initialised in forked workers. Use "
                "num_workers=0, or leave device=None and move batches in the training loop "
                "(Trainer does this itself)"
            )
        pin = self._pin_outputs()
        out = {}
        for name, value in batch.items():
            if isinstance(value, torch.Tensor):
                if pin and not value.is_pinned():
                    value = value.pin_memory()
                value = value.to(device, non_blocking=pin)
            out[name] = value
        return out

    def _torch_masking_supported(self) -> bool:
        """Whether `mask_tensor` implements this collator's masking (every mode does)."""
        return resolve_masking(self.whole_word_mask, self.masking, self.mlm) in MASKINGS

    def mask_tensor(
        self,
        input_ids: torch.Tensor,
        special_tokens_mask: torch.Tensor | None = None,
        word_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask an already padded `(B, L)` batch on its own device (CUDA or CPU) with this
        collator's settings; returns `(masked_input_ids, labels)` on that device, in the same
        layout. Bit-identical to what the collator itself produces for the same rows, seed and
        epoch (keyed mode), or for the same key words (seeded / torch-seeded modes, which advance
        their streams as a collator call does).

        Pass the batch's `attention_mask` when the pad id is also another special token (pad =
        eos or sep): without it such a batch's padding cannot be told from content, and keyed
        masks then follow the padded rows rather than their content.

        Every masking mode runs on the device: tokens, whole words, spans and n-grams. Word
        boundaries come from the tokenizer's tables (as in the collator without a boundary
        column), or from `word_ids`: a `(B, L)` integer tensor aligned with `input_ids`, -1 (any
        negative value) for tokens outside words, as the collator's `word_ids` column. Reference
        positions (`chinese_ref`) are not supported here: mask such batches with the collator.

        Use it with a padding-only collator (`dataclasses.replace(collator, mlm=False,
        whole_word_mask=False, masking=None)`) when the CPU side of a training loop is the
        bottleneck; see the README for `Trainer`. It does not crop: with `max_length` set, that
        padding-only collator crops (the same windows), and a row longer than `max_length` here
        is an error."""
        from . import torch_masking

        if not self.mlm:
            raise ValueError("mask_tensor masks tokens for MLM: this collator has mlm=False")
        masking = resolve_masking(self.whole_word_mask, self.masking, True)
        if not self._torch_masking_supported():
            raise NotImplementedError(f"mask_tensor does not support masking={masking!r}")
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
        if word_ids is not None and masking == "token":
            raise ValueError("word_ids were given but this collator masks tokens, not words")
        tables = self.tables
        device = input_ids.device
        words = None
        if masking != "token":
            words = self._device_word_masking(masking, device, word_ids is None)
        return torch_masking.mask_batch(
            input_ids,
            pad_id=tables.pad_id,
            key_words=[int(w) for w in self._key_words()],
            keyed=self.keyed,
            settings=torch_masking.MaskSettings(
                self.mlm_probability,
                self.mask_replace_prob,
                self.random_replace_prob,
                self.mask_count == "exact",
                self.max_predictions,
                tables.mask_id,
            ),
            tables=torch_masking.device_tables(tables, device),
            special_tokens_mask=special_tokens_mask,
            words=words,
            word_ids=word_ids,
            left=self.tokenizer.padding_side == "left",
            pad_is_unique=tables.pad_is_unique,
            attention_mask=attention_mask,
            max_length=self.max_length,
        )

    def torch_mask_tokens(
        self,
        inputs: Any,
        special_tokens_mask: Any | None = None,
        offset_mapping: Any | None = None,
    ) -> tuple[Any, Any]:
        """transformers' method: mask a padded `(B, L)` tensor of ids in place for MLM and
        return `(inputs, labels)`, with this collator's distribution and seeding (the Rust
        kernel for CPU tensors, `mask_tensor` on other devices). `special_tokens_mask` rows
        are never masked; `offset_mapping` is accepted for compatibility and not needed (word
        boundaries come from the token ids)."""
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
        if inputs.device.type not in ("cpu", "meta"):
            stm = None if special_tokens_mask is None else torch.as_tensor(special_tokens_mask)
            masked, labels = self.mask_tensor(inputs, special_tokens_mask=stm)
            inputs.copy_(masked)
            return inputs, labels
        return self._mask_padded(inputs, special_tokens_mask, "pt")

    def numpy_mask_tokens(
        self,
        inputs: Any,
        special_tokens_mask: Any | None = None,
        offset_mapping: Any | None = None,
    ) -> tuple[Any, Any]:
        """transformers' method: mask a padded `(B, L)` array of ids in place for MLM and return
        `(inputs, labels)`; see `torch_mask_tokens`."""
        if not isinstance(inputs, np.ndarray):
            raise TypeError(f"inputs must be a numpy array, got {type(inputs).__name__}")
        return self._mask_padded(inputs, special_tokens_mask, "np")

    def _mask_padded(self, inputs: Any, special_tokens_mask: Any, framework: str) -> Any:
        if not self.mlm:
            raise ValueError(
                "the *_mask_tokens methods mask tokens for MLM: this collator has mlm=False"
            )
        if inputs.ndim != 2:
            raise ValueError(
                f"inputs must be a 2-D (batch, length) batch, got shape {tuple(inputs.shape)}"
            )
        cols: dict[str, Any] = {"input_ids": inputs}
        if special_tokens_mask is not None:
            cols["special_tokens_mask"] = special_tokens_mask
        batch = self._collate(cols, framework, keep_width=True)
        inputs[...] = batch["input_ids"]
        return inputs, batch["labels"]

    def _device_word_masking(self, masking: str, device: torch.device, need_tables: bool) -> Any:
        from . import torch_word_masking as tw

        spans = None
        if masking in ("span", "ngram"):
            spans = tw.span_thresholds(
                masking,
                float(self.mlm_probability),
                float(self.span_geometric_p),
                int(self.max_span_length if masking == "span" else self.max_ngram),
                str(device),
            )
        boundaries = (
            tw.boundary_tables(word_tables(self.tokenizer), device) if need_tables else None
        )
        return tw.WordMasking(self.replace_per == "token", spans, boundaries)

    # ---- end of the torch path -----------------------------------------------------------


def _check_fits(content: Ragged, limit: int) -> None:
    """For methods that mask rows where they are: no row may need cropping."""
    over = np.flatnonzero(content.lens > limit)
    if over.size:
        i = int(over[0])
        raise ValueError(
            f"row {i} has {int(content.lens[i])} tokens, more than max_length={limit}, and rows "
            "are masked where they are here: crop them with the collator itself first (e.g. the "
            "padding-only collator of the device-masking recipe)"
        )


def _no_pad_message(lens: np.ndarray, width: int, multiple: int | None) -> str:
    shown = ", ".join(str(n) for n in lens[:8].tolist()) + (", ..." if len(lens) > 8 else "")
    why = f" (pad_to_multiple_of={multiple})" if multiple and width > int(lens.max()) else ""
    return (
        f"the batch needs padding to {width} tokens{why} (row lengths: {shown}) but the "
        "tokenizer has no pad token: set one, e.g. tokenizer.pad_token = tokenizer.eos_token, "
        "or collate rows of equal length"
    )


def _stack_scalars(rows: list[Any], name: str, framework: str) -> Any:
    arr = np.asarray([_to_item(r) for r in rows])
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"column {name!r} holds values of type {arr.dtype} that cannot be batched")
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.int64)
    return torch.from_numpy(arr) if framework == "pt" else arr


def _to_item(x: Any) -> Any:
    return x.item() if isinstance(x, (np.ndarray, np.generic, torch.Tensor)) else x


def _parse_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"device={device!r} is not a device torch knows: {e}") from None
