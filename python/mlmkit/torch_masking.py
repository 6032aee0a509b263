"""The Rust masking kernels reimplemented with torch ops, so a padded batch can be masked on the
device it already lives on (a CUDA batch inside a training step, or CPU).

Bit-identical to the Rust path for the same key words and rows: every function here mirrors one
kernel, and every random value is a 32-bit word held in an int64 tensor in [0, 2^32). Products are
formed so that no intermediate leaves int64 (`_mul32` splits the 32-bit constants), so the result
does not depend on how a backend treats signed overflow.

* `fmix32`, `murmur_round`, `hash_prefix`, `lane_keys`, `lane_at`, `threshold`: `rust/rng.rs`;
* `content_range`: `trim_padding` in `rust/padding.rs` (surplus padding at the padding side's end
  is not content);
* `row_keys`: `row_key` in `rust/collate.rs`;
* `mask_tokens`: `mask_row` in `rust/masking.rs`, over a whole batch;
* `mask_batch`: the masking half of `collate` in `rust/collate.rs`.

Whole-word, span and n-gram masking (`rust/words.rs`) live in `torch_word_masking.mask_words`,
which takes the same `(input_ids, start, length, keys, ...)` arguments; `mask_batch` dispatches.

Keyed (content) row keys hash each row's tokens in order, which is one small vectorised step per
column (the hash is sequential); row-index keys (seeded and torch-seeded modes) have no loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch

from . import _core

if TYPE_CHECKING:
    from .torch_word_masking import WordMasking

M32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9
IGNORE_INDEX = -100
LANE_SELECT = _core.LANE_SELECT
LANE_REPLACE = _core.LANE_REPLACE
LANE_RANDOM_TOKEN = _core.LANE_RANDOM_TOKEN

_C1, _C2 = 0xCC9E2D51, 0x1B873593
_ROUND_ADD = 0xE6546B64
_INT64_MAX = torch.iinfo(torch.int64).max


# ---- rust/rng.rs ---------------------------------------------------------------------------


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """`(x * c) mod 2^32` for x, c in [0, 2^32), with every intermediate below 2^49."""
    low = x * (c & 0xFFFF)
    high = ((x * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & M32


def fmix32(h: torch.Tensor) -> torch.Tensor:
    """murmur3's finaliser on int64 tensors holding 32-bit words."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def _rotl(x: torch.Tensor, r: int) -> torch.Tensor:
    return ((x << r) & M32) | (x >> (32 - r))


def mix_word(word: torch.Tensor) -> torch.Tensor:
    """The per-word half of a murmur3 round (`k` in `Murmur::push`), independent of the state."""
    return _mul32(_rotl(_mul32(word, _C1), 15), _C2)


def murmur_round(h: torch.Tensor, k: torch.Tensor | int) -> torch.Tensor:
    """The state half of a murmur3 round: `h ^= k; h = rotl(h, 13); h = h * 5 + 0xE6546B64`."""
    h = _rotl(h ^ k, 13)
    return (h * 5 + _ROUND_ADD) & M32


def murmur_finish(h: torch.Tensor, n_words: torch.Tensor | int) -> torch.Tensor:
    return fmix32(h ^ ((n_words * 4) & M32))


def _py_fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    return h ^ (h >> 16)


def _py_mix_word(w: int) -> int:
    k = (w * _C1) & M32
    return ((((k << 15) & M32) | (k >> 17)) * _C2) & M32


def hash_prefix(words: list[int], seed: int = 0) -> int:
    """murmur3 state (before finishing) after the given words: the part shared by a whole batch."""
    h = seed & M32
    for w in words:
        h ^= _py_mix_word(w & M32)
        h = ((h << 13) & M32) | (h >> 19)
        h = (h * 5 + _ROUND_ADD) & M32
    return h


def hash_words(seed: int, words: list[int]) -> int:
    """`rng::hash_words` on Python ints (for scalars: key words, tests)."""
    return _py_fmix32(hash_prefix(words, seed) ^ ((4 * len(words)) & M32))


def lane_keys(row_keys: torch.Tensor, lane: int) -> torch.Tensor:
    """`Lane::new(row_key, lane).key` for every row: `hash_words(row_key, [lane])`."""
    return murmur_finish(murmur_round(row_keys, _py_mix_word(lane)), 1)


def lane_at(keys: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`Lane::at`: value `index` of the lanes with these keys (broadcasting)."""
    return fmix32((keys + ((index * GOLDEN) & M32)) & M32)


def threshold(p: float) -> int:
    """`rng::threshold`: round(p * 2^32), half away from zero (p * 2^32 is exact in float64)."""
    return math.floor(min(max(p, 0.0), 1.0) * 4294967296.0 + 0.5)


# ---- rust/padding.rs, rust/collate.rs ------------------------------------------------------


def content_range(
    input_ids: torch.Tensor,
    pad_id: int | None,
    *,
    left: bool = False,
    pad_is_unique: bool = True,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, where its content starts and how long it is: the row without the surplus
    padding at its padding-side end (`trim_padding`): pad-id tokens whose attention is 0 when
    `attention_mask` is given, else pad-id tokens when the pad id is no other special token."""
    b, width = input_ids.shape
    device = input_ids.device
    full = torch.full((b,), width, dtype=torch.int64, device=device)
    zero = torch.zeros(b, dtype=torch.int64, device=device)
    if width == 0 or pad_id is None or (attention_mask is None and not pad_is_unique):
        return zero, full
    surplus = input_ids == pad_id
    if attention_mask is not None:
        surplus &= attention_mask == 0
    cols = torch.arange(width, device=device)
    if left:
        # the first position that is not surplus (width when the whole row is)
        start = torch.where(surplus, width, cols).amin(dim=1)
        return start, width - start
    end = torch.where(surplus, -1, cols).amax(dim=1) + 1
    return zero, end


def row_keys(
    input_ids: torch.Tensor,
    start: torch.Tensor,
    length: torch.Tensor,
    key_words: list[int],
    keyed: bool,
) -> torch.Tensor:
    """`collate::row_key` for every row: murmur3 over `key_words ++ [row index]` (row-index mode)
    or `key_words ++ content` (keyed mode)."""
    b, width = input_ids.shape
    device = input_ids.device
    h = torch.full((b,), hash_prefix(key_words), dtype=torch.int64, device=device)
    if not keyed:
        rows = torch.arange(b, dtype=torch.int64, device=device)
        return murmur_finish(murmur_round(h, mix_word(rows)), len(key_words) + 1)
    if b and width:
        h = _hash_contents(input_ids, start, length, h)
    return murmur_finish(h, length + len(key_words))


def _hash_contents(
    input_ids: torch.Tensor, start: torch.Tensor, length: torch.Tensor, h: torch.Tensor
) -> torch.Tensor:
    """Push each row's content words into its murmur3 state `h` (the loop of `row_key`).

    The hash is sequential along a row, so this takes one step per column of the longest content,
    vectorised across rows. Rows are left-aligned and sorted by length (longest first) so that the
    rows still hashing at step c are a prefix, and each step is five in-place ops on views."""
    b, width = input_ids.shape
    device = input_ids.device
    lens_sorted, order = torch.sort(length, descending=True, stable=True)
    lens_host = lens_sorted.tolist()  # the loop bounds (B ints read from the device)
    if not lens_host or lens_host[0] == 0:
        return h
    longest = lens_host[0]
    cols = torch.arange(longest, device=device)
    src = torch.clamp(start[order, None] + cols, max=width - 1)
    words = mix_word(input_ids[order].gather(1, src) & M32).T.contiguous()  # (longest, B)
    state = h[order].contiguous()
    x, r = torch.empty_like(state), torch.empty_like(state)
    add = torch.tensor(_ROUND_ADD, dtype=torch.int64, device=device)
    # Columns in runs over which the same rows (a prefix of n) are still hashing.
    c = 0
    for n in range(b, 0, -1):
        end = c
        while end < longest and lens_host[n - 1] > end:
            end += 1
        if end == c:
            continue
        s, xn, rn, wn = state[:n], x[:n], r[:n], words[:, :n]
        for col in range(c, end):
            # h ^= k; h = rotl(h, 13) * 5 + 0xE6546B64, with rotl(x, 13) = (x << 13) + (x >> 19)
            # for x < 2^32 (the two parts do not overlap), so the round is
            # x * 40960 + (x >> 19) * 5 + 0xE6546B64, masked to 32 bits once (x * 40960 < 2^48).
            torch.bitwise_xor(s, wn[col], out=xn)
            torch.bitwise_right_shift(xn, 19, out=rn)
            torch.add(add, rn, alpha=5, out=s)
            s.add_(xn, alpha=40960)
            s.bitwise_and_(M32)
        c = end
    out = torch.empty_like(h)
    out[order] = state
    return out


# ---- rust/masking.rs -----------------------------------------------------------------------


@dataclass(frozen=True)
class MaskSettings:
    """`masking::MaskSpec`: what a collator's masking options turn into."""

    probability: float
    mask_replace_prob: float
    random_replace_prob: float
    exact: bool
    max_predictions: int | None
    mask_id: int

    def __post_init__(self) -> None:
        for name in ("probability", "mask_replace_prob", "random_replace_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if self.mask_replace_prob + self.random_replace_prob > 1.0 + 1e-12:
            raise ValueError(
                "mask_replace_prob + random_replace_prob must be <= 1, got "
                f"{self.mask_replace_prob + self.random_replace_prob}"
            )

    @property
    def select_below(self) -> int:
        return threshold(self.probability)

    @property
    def mask_below(self) -> int:
        return threshold(self.mask_replace_prob)

    @property
    def random_below(self) -> int:
        return max(threshold(self.mask_replace_prob + self.random_replace_prob), self.mask_below)


@dataclass(frozen=True)
class DeviceTables:
    """A tokenizer's special-token flags and random-replacement ids, on one device."""

    is_special: torch.Tensor  # bool, one flag per id
    random_ids: torch.Tensor  # int64

    @classmethod
    def from_numpy(
        cls, is_special: np.ndarray, random_ids: np.ndarray, device: torch.device
    ) -> DeviceTables:
        return cls(
            torch.from_numpy(np.asarray(is_special) != 0).to(device),
            torch.from_numpy(np.ascontiguousarray(random_ids, dtype=np.int64)).to(device),
        )

    @property
    def vocab_size(self) -> int:
        return int(self.is_special.shape[0])


def _lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    # index_select on the flat index: advanced indexing (`table[index]`) is ~100x slower on CPU.
    return table.index_select(0, index.reshape(-1)).view(index.shape)


def _replace(
    ids: torch.Tensor,
    labels: torch.Tensor,
    selected: torch.Tensor,
    position: torch.Tensor,
    keys: torch.Tensor,
    settings: MaskSettings,
    tables: DeviceTables,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`masking::replace` at every selected position."""
    labels = torch.where(selected, ids, labels)
    v = lane_at(lane_keys(keys, LANE_REPLACE)[:, None], position)
    to_mask = selected & (v < settings.mask_below)
    to_random = selected & ~to_mask & (v < settings.random_below)
    out = torch.where(to_mask, settings.mask_id, ids)
    n_random = tables.random_ids.numel()
    if settings.random_below > settings.mask_below and n_random:
        w = lane_at(lane_keys(keys, LANE_RANDOM_TOKEN)[:, None], position)
        drawn = _lookup(tables.random_ids, (w * n_random) >> 32)
        out = torch.where(to_random, drawn, out)
    return out, labels


def mask_tokens(
    input_ids: torch.Tensor,
    start: torch.Tensor,
    length: torch.Tensor,
    keys: torch.Tensor,
    settings: MaskSettings,
    tables: DeviceTables,
    special_tokens_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`masking::mask_row` for every row of a padded `(B, L)` int64 batch at once: positions are
    counted from each row's content start, so the padding side does not change the masks."""
    b, width = input_ids.shape
    device = input_ids.device
    cols = torch.arange(width, dtype=torch.int64, device=device)[None, :]
    position = (cols - start[:, None]) & M32  # only read inside the content
    in_content = (cols >= start[:, None]) & (cols < (start + length)[:, None])
    maskable = in_content & ~_lookup(tables.is_special, input_ids)
    if special_tokens_mask is not None:
        maskable &= special_tokens_mask == 0
    u = lane_at(lane_keys(keys, LANE_SELECT)[:, None], position)
    labels = torch.full_like(input_ids, IGNORE_INDEX)

    if not settings.exact and settings.max_predictions is None:
        selected = maskable & (u < settings.select_below)
        return _replace(input_ids, labels, selected, position, keys, settings, tables)

    # The k smallest (draw, position) pairs among the candidates; u * width + j orders them the
    # same way and fits in int64 (u < 2^32, j < width < 2^31).
    candidate = maskable if settings.exact else maskable & (u < settings.select_below)
    n = candidate.sum(dim=1)
    if settings.exact:
        # exact_count: clamp(floor(p * n + 0.5), 1, n), computed in float64 like the kernel.
        k = torch.floor(n.to(torch.float64) * settings.probability + 0.5).to(torch.int64)
        k = torch.minimum(torch.clamp(k, min=1), n)
    else:
        k = n
    if settings.max_predictions is not None:
        k = torch.clamp(k, max=settings.max_predictions)
    order = torch.where(candidate, u * max(width, 1) + cols, _INT64_MAX)
    ranked = torch.sort(order, dim=1).values
    kth = torch.where(
        k < width,
        ranked.gather(1, torch.clamp(k, max=max(width - 1, 0))[:, None]).squeeze(1),
        _INT64_MAX,
    )
    selected = candidate & (order < kth[:, None])
    return _replace(input_ids, labels, selected, position, keys, settings, tables)


def check_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    """The id-range check `pad_row` does (one scalar read from the device)."""
    bad = (input_ids < 0) | (input_ids >= vocab_size)
    if bool(bad.any()):
        row, col = (int(x) for x in bad.nonzero()[0].tolist())
        raise ValueError(
            f"token id {int(input_ids[row, col])} at row {row}, position {col} is outside the "
            f"vocabulary [0, {vocab_size})"
        )


def mask_batch(
    input_ids: torch.Tensor,
    *,
    pad_id: int | None,
    key_words: list[int],
    keyed: bool,
    settings: MaskSettings,
    tables: DeviceTables,
    special_tokens_mask: torch.Tensor | None = None,
    words: WordMasking | None = None,
    word_ids: torch.Tensor | None = None,
    left: bool = False,
    pad_is_unique: bool = True,
    attention_mask: torch.Tensor | None = None,
    max_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask a padded batch where it lives; returns `(masked_input_ids, labels)` (int64, same
    device and layout). Equal to the Rust collator's output for the same rows and key words
    (`left`, `pad_is_unique` and `attention_mask` decide the content as the collator does).

    `words` selects whole words, spans or n-grams (`torch_word_masking`) instead of tokens, with
    boundaries from its tables or from `word_ids` (`(B, L)`, aligned with input_ids, -1: none).

    `max_length`: the collator's; rows are not cropped here, so a longer row is an error."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be a 2-D (batch, length) tensor, got {input_ids.ndim}-D")
    if (
        input_ids.dtype.is_floating_point
        or input_ids.dtype.is_complex
        or input_ids.dtype == torch.bool
    ):
        raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if input_ids.is_meta:
        raise ValueError("input_ids is a tensor on the meta device, which holds no token ids")
    for name, t in (
        ("special_tokens_mask", special_tokens_mask),
        ("attention_mask", attention_mask),
    ):
        if t is not None and t.shape != input_ids.shape:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)} but input_ids has {tuple(input_ids.shape)}"
            )
    if not 0 <= settings.mask_id < tables.vocab_size:
        raise ValueError(
            f"mask token id {settings.mask_id} is outside the vocabulary [0, {tables.vocab_size})"
        )
    if settings.random_below > settings.mask_below and tables.random_ids.numel() == 0:
        raise ValueError("random replacement is enabled but there are no candidate ids")
    ids = input_ids.to(torch.int64)
    if ids.numel() == 0:
        return ids.clone(), torch.full_like(ids, IGNORE_INDEX)
    check_ids(ids, tables.vocab_size)
    if special_tokens_mask is not None:
        special_tokens_mask = special_tokens_mask.to(ids.device)
    if attention_mask is not None:
        attention_mask = attention_mask.to(ids.device)
    if word_ids is not None:
        word_ids = _check_word_ids(word_ids, ids)
    start, length = content_range(
        ids, pad_id, left=left, pad_is_unique=pad_is_unique, attention_mask=attention_mask
    )
    if max_length is not None and ids.shape[1] > max_length:
        over = (length > max_length).nonzero()
        if over.numel():
            i = int(over[0, 0])
            raise ValueError(
                f"row {i} has {int(length[i])} tokens, more than max_length={max_length}: "
                "mask_tensor does not crop; crop the rows with the collator that pads them "
                "(the padding-only collator of the device-masking recipe crops alike)"
            )
    keys = row_keys(ids, start, length, key_words, keyed)
    if words is not None:
        from .torch_word_masking import mask_words

        return mask_words(
            ids, start, length, keys, settings, tables, words, special_tokens_mask, word_ids
        )
    return mask_tokens(ids, start, length, keys, settings, tables, special_tokens_mask)


def _check_word_ids(word_ids: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    if not isinstance(word_ids, torch.Tensor):
        raise TypeError(f"word_ids must be a torch.Tensor, got {type(word_ids).__name__}")
    if word_ids.shape != ids.shape:
        raise ValueError(
            f"word_ids has shape {tuple(word_ids.shape)} but input_ids has {tuple(ids.shape)}"
        )
    if (
        word_ids.dtype.is_floating_point
        or word_ids.dtype.is_complex
        or word_ids.dtype == torch.bool
    ):
        raise TypeError(f"word_ids must hold integer word indices, got dtype {word_ids.dtype}")
    return word_ids.to(device=ids.device, dtype=torch.int64)


_T = TypeVar("_T")


def cached_on_device(
    cache: dict[tuple[int, str], tuple[object, _T]],
    tables: object,
    device: torch.device,
    build: Callable[[], _T],
) -> _T:
    """Device copies of per-tokenizer tables, cached per (tables object, device) so a training
    loop does not copy them each step; the cache keeps at most 16 entries."""
    key = (id(tables), str(device))
    hit = cache.get(key)
    if hit is not None and hit[0] is tables:
        return hit[1]
    out = build()
    if len(cache) >= 16:
        cache.clear()
    cache[key] = (tables, out)
    return out


_TABLE_CACHE: dict[tuple[int, str], tuple[object, DeviceTables]] = {}


def device_tables(tables: object, device: torch.device) -> DeviceTables:
    """`TokenizerTables` (numpy) as `DeviceTables` on `device`, cached."""
    return cached_on_device(
        _TABLE_CACHE,
        tables,
        device,
        lambda: DeviceTables.from_numpy(tables.is_special, tables.random_ids, device),  # type: ignore[attr-defined]
    )
