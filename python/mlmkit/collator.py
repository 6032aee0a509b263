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

from . import _core, seeding
from .batch import Ragged, aligned, as_ragged, columns_of, is_scalar
from .vocab import RandomTokens, TokenizerTables, tokenizer_tables
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
    """

    tokenizer: PreTrainedTokenizerBase
    mlm: bool = True
    whole_word_mask: bool = False
    mlm_probability: float = 0.15
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

    def __post_init__(self) -> None:
        if self.tokenizer is None:
            raise ValueError("a tokenizer is required")
        resolve_masking(self.whole_word_mask, self.masking, self.mlm)
        check_span_options(
            self.replace_per, self.span_geometric_p, self.max_span_length, self.max_ngram
        )
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
        self._cursor = seeding.BatchCursor()
        _ = self.tables  # fail now, not at the first batch, if pad/mask tokens are missing
        self._check_device()

    @property
    def tables(self) -> TokenizerTables:
        tables = self._tables
        if tables is None or tables.vocab_size != len(self.tokenizer):
            tables = tokenizer_tables(self.tokenizer, self.random_tokens, self.mlm)
            self._tables = tables
        return tables

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tables"] = None  # derived; rebuilt lazily in the process that uses it
        state["_cursor"] = seeding.BatchCursor()  # a copy counts its own batches
        return state

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

    def _key_words(self) -> np.ndarray:
        schedule = self._schedule
        if self.keyed:
            seeding.warn_if_unmanaged(schedule, keyed=True)
            return seeding.keyed_words(self.seed, schedule.epoch)  # type: ignore[arg-type]
        if self.seed is None:
            return seeding.torch_words(schedule.rank())
        seeding.warn_if_unmanaged(schedule, keyed=False)
        return seeding.seeded_words(self.seed, schedule, self._cursor)

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

    def _collate(self, examples: Any, framework: str) -> dict[str, Any]:
        tables = self.tables
        cols = columns_of(examples)
        ids = as_ragged(cols["input_ids"], "input_ids")
        per_token = [k for k in cols if k not in _CONSUMED or k == "special_tokens_mask"]
        if per_token:
            raw_starts, raw_lens = ids.starts.copy(), ids.lens.copy()
        width = _core.trim_padding(ids.values, ids.starts, ids.lens, tables.pad_id, "input_ids")
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        shape = (len(ids.lens), width)
        left = self.tokenizer.padding_side == "left"

        special = None
        if "special_tokens_mask" in cols:
            shift = ids.starts - raw_starts
            s = aligned(cols["special_tokens_mask"], "special_tokens_mask", ids, raw_lens, shift)
            special = Ragged(np.ascontiguousarray(s.values != 0, dtype=np.uint8), s.starts, s.lens)
            if not np.array_equal(special.starts, ids.starts):
                special.values = _gather(special, ids)

        words = None
        masking = resolve_masking(self.whole_word_mask, self.masking, self.mlm)
        if masking != "token":
            words = word_arguments(
                cols,
                ids,
                raw_starts if per_token else None,  # set when a boundary column is present
                raw_lens if per_token else None,
                masking,
                self.replace_per,
                self.span_geometric_p,
                self.max_span_length,
                self.max_ngram,
                lambda: word_tables(self.tokenizer),
            )
        input_ids, ids_out = self._empty(shape, framework)
        labels, labels_out = self._empty(shape, framework)
        attention, attention_out = self._empty(shape, framework)
        _core.collate_batch(
            ids.values,
            ids.starts,
            ids.lens,
            None if special is None else special.values,
            tables.is_special,
            tables.random_ids,
            self._key_words() if self.mlm else np.zeros(0, np.uint32),
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
            attention_out,
            words,
        )
        batch: dict[str, Any] = {"input_ids": input_ids}
        for name in per_token:
            rows = cols[name]
            if name in _CONSUMED or name in BOUNDARY_COLUMNS:
                continue
            if is_scalar(rows[0]):
                batch[name] = _stack_scalars(rows, name, framework)
                continue
            if isinstance(rows[0], str):
                raise ValueError(
                    f"column {name!r} holds strings, which cannot be batched; remove it from the "
                    "dataset (Trainer does unless remove_unused_columns=False)"
                )
            col = aligned(rows, name, ids, raw_lens, ids.starts - raw_starts)
            fill = (
                getattr(self.tokenizer, "pad_token_type_id", 0) if name == "token_type_ids" else 0
            )
            out, out_np = self._empty(shape, framework)
            _core.pad_column(col.values, col.starts, col.lens, fill, left, out_np)
            batch[name] = out
        batch["attention_mask"] = attention
        batch["labels"] = labels
        return batch

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
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask an already padded `(B, L)` batch on its own device (CUDA or CPU) with this
        collator's settings; returns `(masked_input_ids, labels)` on that device, in the same
        layout. Bit-identical to what the collator itself produces for the same rows, seed and
        epoch (keyed mode), or for the same key words (seeded / torch-seeded modes, which advance
        their streams as a collator call does).

        Every masking mode runs on the device: tokens, whole words, spans and n-grams. Word
        boundaries come from the tokenizer's tables (as in the collator without a boundary
        column), or from `word_ids`: a `(B, L)` integer tensor aligned with `input_ids`, -1 (any
        negative value) for tokens outside words, as the collator's `word_ids` column. Reference
        positions (`chinese_ref`) are not supported here: mask such batches with the collator.

        Use it with a padding-only collator (`dataclasses.replace(collator, mlm=False,
        whole_word_mask=False, masking=None)`) when the CPU side of a training loop is the
        bottleneck; see the README for `Trainer`."""
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
        )

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


def _gather(col: Ragged, like: Ragged) -> np.ndarray:
    """Lay a column's rows out at `like`'s offsets (so one start index serves both)."""
    out = np.zeros(len(like.values), dtype=col.values.dtype)
    for s_dst, s_src, n in zip(
        like.starts.tolist(), col.starts.tolist(), col.lens.tolist(), strict=True
    ):
        out[s_dst : s_dst + n] = col.values[s_src : s_src + n]
    return out


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
