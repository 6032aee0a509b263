"""Masking a padded batch where it lives: the entry point of the torch path (`mask_batch`, which
`DataCollatorForLanguageModeling.mask_tensor` calls), with the parts of `rust/padding.rs` and
`rust/collate.rs` it needs: each row's content range and its row key.

Keyed (content) row keys hash each row's tokens in order, which is one small vectorised step per
column (the hash is sequential); row-index keys (seeded and torch-seeded modes) have no loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from .rng import M32, ROUND_ADD, hash_prefix, mix_word, murmur_finish, murmur_round
from .tokens import IGNORE_INDEX, DeviceTables, MaskSettings, mask_tokens
from .words import BoundaryTables, WordMasking, WordSettings, mask_words, span_thresholds

if TYPE_CHECKING:
    from ..vocab import TokenizerTables
    from ..word_boundaries import WordTables


def mask_batch(
    input_ids: Any,
    *,
    pad_id: int | None,
    key_words: Sequence[int],
    keyed: bool,
    settings: MaskSettings,
    tables: TokenizerTables,
    special_tokens_mask: torch.Tensor | None = None,
    words: WordSettings | None = None,
    word_ids: torch.Tensor | None = None,
    left: bool = False,
    pad_is_unique: bool = True,
    attention_mask: torch.Tensor | None = None,
    max_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask a padded batch where it lives; returns `(masked_input_ids, labels)` (int64, same
    device and layout). Equal to the Rust collator's output for the same rows and key words
    (`left`, `pad_is_unique` and `attention_mask` decide the content as the collator does).

    `tables` are the tokenizer's (copied to the batch's device once, then cached). `words`
    selects whole words, spans or n-grams instead of tokens, with boundaries from its tables or
    from `word_ids` (`(B, L)`, aligned with input_ids, -1: none).

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
    device = input_ids.device
    on_device = device_tables(tables, device)
    if not 0 <= settings.mask_id < on_device.vocab_size:
        raise ValueError(
            f"mask token id {settings.mask_id} is outside the vocabulary "
            f"[0, {on_device.vocab_size})"
        )
    if settings.random_below > settings.mask_below and on_device.random_ids.numel() == 0:
        raise ValueError("random replacement is enabled but there are no candidate ids")
    ids = input_ids.to(torch.int64)
    if ids.numel() == 0:
        return ids.clone(), torch.full_like(ids, IGNORE_INDEX)
    check_ids(ids, on_device.vocab_size)
    if special_tokens_mask is not None:
        special_tokens_mask = special_tokens_mask.to(device)
    if attention_mask is not None:
        attention_mask = attention_mask.to(device)
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
        return mask_words(
            ids,
            start,
            length,
            keys,
            settings,
            on_device,
            word_masking(words, settings.probability, device),
            special_tokens_mask,
            word_ids,
        )
    return mask_tokens(ids, start, length, keys, settings, on_device, special_tokens_mask)


def check_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    """The id-range check `pad_row` does (one scalar read from the device)."""
    bad = (input_ids < 0) | (input_ids >= vocab_size)
    if bool(bad.any()):
        row, col = (int(x) for x in bad.nonzero()[0].tolist())
        raise ValueError(
            f"token id {int(input_ids[row, col])} at row {row}, position {col} is outside the "
            f"vocabulary [0, {vocab_size})"
        )


def _check_word_ids(word_ids: Any, ids: torch.Tensor) -> torch.Tensor:
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
    key_words: Sequence[int],
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
    add = torch.tensor(ROUND_ADD, dtype=torch.int64, device=device)
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


def word_masking(words: WordSettings, probability: float, device: torch.device) -> WordMasking:
    """A collator's word-masking options as `WordMasking` on `device` (tables cached)."""
    spans = None
    if words.units in ("span", "ngram"):
        spans = span_thresholds(
            words.units, probability, words.span_geometric_p, words.max_length, str(device)
        )
    boundaries = None if words.tables is None else boundary_tables(words.tables, device)
    return WordMasking(words.per_token, spans, boundaries)


_T = TypeVar("_T")
_DEVICE_TABLES: dict[tuple[int, str], tuple[object, DeviceTables]] = {}
_BOUNDARY_TABLES: dict[tuple[int, str], tuple[object, BoundaryTables]] = {}


def _cached_on_device(
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


def device_tables(tables: TokenizerTables, device: torch.device) -> DeviceTables:
    """`TokenizerTables` (numpy) as `DeviceTables` on `device`, cached."""
    return _cached_on_device(
        _DEVICE_TABLES,
        tables,
        device,
        lambda: DeviceTables.from_numpy(tables.is_special, tables.random_ids, device),
    )


def boundary_tables(tables: WordTables, device: torch.device) -> BoundaryTables:
    """`WordTables` (numpy) as `BoundaryTables` on `device`, cached."""
    return _cached_on_device(
        _BOUNDARY_TABLES, tables, device, lambda: BoundaryTables.from_numpy(tables, device)
    )
