"""`DataCollatorForLanguageModeling`: transformers' MLM collator, with padding and masking done in
one Rust pass; and `DataCollatorForWholeWordMask`, transformers 4.x's whole-word collator (which
transformers 5 removed) on top of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase
from transformers.data.data_collator import DataCollatorMixin

from . import _core, batch, cropping, seeding, validation
from .batch import Ragged
from .length_plan import LengthPlan, MaxLengthField
from .vocab import RANDOM_TOKENS, RandomTokens, TokenizerTables, tokenizer_state, tokenizer_tables
from .word_boundaries import word_tables
from .word_masking import Masking, ReplacePer, check_span_options, resolve_masking

MaskCount = Literal["bernoulli", "exact"]
MASK_COUNTS: tuple[MaskCount, ...] = ("bernoulli", "exact")
_NO_WORDS = np.zeros(0, dtype=np.uint32)


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

    Custom loops:
        device: return the batch's tensors on this device (num_workers=0). For CUDA the outputs
            are allocated in pinned memory and copied with non_blocking=True.
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
    device: str | torch.device | None = None

    def __post_init__(self) -> None:
        if self.tokenizer is None:
            raise ValueError("a tokenizer is required")
        resolve_masking(self.whole_word_mask, self.masking, self.mlm)
        check_span_options(
            self.replace_per, self.span_geometric_p, self.max_span_length, self.max_ngram
        )
        if self.mlm_probability is None and not self.mlm:
            self.mlm_probability = 0.0  # transformers allows None without MLM
        self.mlm_probability = validation.probability("mlm_probability", self.mlm_probability)
        self.mask_replace_prob = validation.probability("mask_replace_prob", self.mask_replace_prob)
        self.random_replace_prob = validation.probability(
            "random_replace_prob", self.random_replace_prob
        )
        validation.replacement_split(self.mask_replace_prob, self.random_replace_prob)
        validation.one_of("return_tensors", self.return_tensors, ("pt", "np"))
        validation.one_of("mask_count", self.mask_count, MASK_COUNTS)
        validation.one_of("random_tokens", self.random_tokens, RANDOM_TOKENS)
        self.pad_to_multiple_of = validation.optional_positive_int(
            "pad_to_multiple_of", self.pad_to_multiple_of
        )
        self.max_predictions = validation.optional_positive_int(
            "max_predictions", self.max_predictions
        )
        if self.keyed and self.seed is None:
            raise ValueError(
                "keyed=True makes masks a function of (seed, epoch, content): pass a seed"
            )
        self._tables: TokenizerTables | None = None
        self._settings_cache: tuple[tuple[Any, ...], _core.CollateSettings] | None = None
        self._schedule: seeding.EpochSchedule = self.__dict__["_schedule"]  # made by `epoch`
        self._lengths: LengthPlan = self.__dict__["_lengths"]  # made by `max_length`
        self._cursor = seeding.BatchCursor()
        self._template: tuple[Any, ...] | None = None
        _ = self.tables  # fail now, not at the first batch, if the mask token is missing
        _ = self.settings
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

    @property
    def settings(self) -> _core.CollateSettings:
        """This configuration's settings for the kernels, rebuilt when a field changes."""
        config = (
            self.mlm,
            self.whole_word_mask,
            self.masking,
            self.mlm_probability,
            self.mask_replace_prob,
            self.random_replace_prob,
            self.mask_count,
            self.max_predictions,
            self.replace_per,
            self.span_geometric_p,
            self.max_span_length,
            self.max_ngram,
            self.keyed,
            self.tokenizer.padding_side,
        )
        cached = self._settings_cache
        if cached is not None and cached[0] == config:
            return cached[1]
        masking = resolve_masking(self.whole_word_mask, self.masking, self.mlm)
        probability = self.mlm_probability
        assert probability is not None  # a float since __post_init__
        settings = _core.CollateSettings(
            masking=masking if self.mlm else None,
            mlm_probability=probability,
            mask_replace_prob=self.mask_replace_prob,
            random_replace_prob=self.random_replace_prob,
            mask_count=self.mask_count,
            max_predictions=self.max_predictions,
            replace_per=self.replace_per,
            span_geometric_p=self.span_geometric_p,
            max_span_length=self.max_span_length,
            max_ngram=self.max_ngram,
            padding_side=self.tokenizer.padding_side,
            key_mode="content" if self.keyed else "row_index",
        )
        self._settings_cache = (config, settings)
        return settings

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # Derived; rebuilt lazily in the process that uses them.
        state["_tables"] = None
        state["_settings_cache"] = None
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
        settings = self.settings
        position = seeding.batch_position(self._schedule, self._cursor)
        words = (lambda: word_tables(self.tokenizer)) if settings.masks_words else None
        columns = batch.columns(examples, tables, self.tokenizer.padding_side, framework, words)
        limit = self._lengths.at(position.step, self._cursor.training)
        if limit is not None and columns.width > limit:
            if keep_width:
                _check_fits(columns.content, limit)
            else:
                columns = cropping.crop(
                    columns,
                    settings,
                    limit,
                    self.window_template(),
                    lambda: self._key_words(position),
                )
        rows, width = columns.rows, columns.width
        if self.pad_to_multiple_of and not keep_width:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        if tables.pad_id is None and bool((rows.lens < width).any()):
            raise ValueError(_no_pad_message(rows.lens, width, self.pad_to_multiple_of))
        shape = (len(rows.lens), width)

        input_ids, ids_out = self._empty(shape, framework)
        labels, labels_out = self._empty(shape, framework)
        attention, attention_out = self._empty(shape, framework)
        key_words = self._key_words(position) if self.mlm else _NO_WORDS
        _core.collate(settings, tables, columns, key_words, (ids_out, labels_out, attention_out))
        out: dict[str, Any] = {"input_ids": input_ids}
        side = self.tokenizer.padding_side
        for name, values in columns.passed.items():
            column, column_out = self._empty(shape, framework)
            _core.pad_column(
                values, rows.starts, rows.lens, self._fill_value(name), side, column_out
            )
            out[name] = column
        out.update(columns.scalars)
        out["attention_mask"] = attention
        out["labels"] = labels
        return out

    def _fill_value(self, name: str) -> int:
        if name == "token_type_ids":
            return int(getattr(self.tokenizer, "pad_token_type_id", 0) or 0)
        return 0

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
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
        if word_ids is not None and masking == "token":
            raise ValueError("word_ids were given but this collator masks tokens, not words")
        probability = self.mlm_probability
        assert probability is not None  # a float since __post_init__
        tables = self.tables
        words = None
        if masking != "token":
            words = torch_masking.WordSettings(
                masking,
                self.replace_per == "token",
                float(self.span_geometric_p),
                int(self.max_span_length if masking == "span" else self.max_ngram),
                word_tables(self.tokenizer) if word_ids is None else None,
            )
        return torch_masking.mask_batch(
            input_ids,
            pad_id=tables.pad_id,
            key_words=[int(w) for w in self._key_words()],
            keyed=self.keyed,
            settings=torch_masking.MaskSettings(
                probability,
                self.mask_replace_prob,
                self.random_replace_prob,
                self.mask_count == "exact",
                self.max_predictions,
                tables.mask_id,
            ),
            tables=tables,
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


def _parse_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"device={device!r} is not a device torch knows: {e}") from None


@dataclass(init=False)
class DataCollatorForWholeWordMask(DataCollatorForLanguageModeling):
    """Drop-in for transformers 4.x `DataCollatorForWholeWordMask`.

    Positional and keyword arguments are 4.x's. Like 4.x it masks `round(mlm_probability * n)`
    tokens of whole words per row (at most 512, words that would overflow are skipped) and decides
    80/10/10 per token; `chinese_ref` columns are honoured. Unlike 4.x, word boundaries come from
    the token ids for every tokenizer family (not only `##` pieces), special tokens are never
    masked, and any `DataCollatorForLanguageModeling` option can be passed by keyword (e.g.
    `mask_count="bernoulli", replace_per="word", max_predictions=None`).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        mlm: bool = True,
        mlm_probability: float = 0.15,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        pad_to_multiple_of: int | None = None,
        tf_experimental_compile: bool = False,
        return_tensors: str = "pt",
        seed: int | None = None,
        **options: Any,
    ) -> None:
        if tf_experimental_compile:
            raise ValueError("tf_experimental_compile is not supported (mlmkit returns pt or np)")
        options.setdefault("whole_word_mask", True)
        options.setdefault("mask_count", "exact")
        options.setdefault("max_predictions", 512)
        options.setdefault("replace_per", "token")
        super().__init__(
            tokenizer=tokenizer,
            mlm=mlm,
            mlm_probability=mlm_probability,
            mask_replace_prob=mask_replace_prob,
            random_replace_prob=random_replace_prob,
            pad_to_multiple_of=pad_to_multiple_of,
            return_tensors=return_tensors,
            seed=seed,
            **options,
        )
