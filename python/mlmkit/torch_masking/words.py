"""Whole-word, span and n-gram masking (`rust/words.rs`) with torch ops, over a padded batch on
its own device. Bit-identical to the Rust collator: it follows the algorithm written out in the
module documentation of `rust/words.rs` step by step, with the random values of
`mlmkit.torch_masking.rng` and the replacement step of token masking.

Layout: per-position tensors are `(B, L)`; per-word tensors are `(B, K)` with word `k` of each row
in column `k` (`K <= L`; columns past a row's word count are unused). A candidate unit is stored
at its first word as a word count (0: no unit there), which works for every mode because no two
units of a row share a first word.

The renewal process (span masking, bernoulli) and the budget (exact counts, `max_predictions`)
are sequential along a row: they run one step per word / per ranked unit, each step a few
elementwise ops across the batch. On CPU the loops stop at the longest row's word count (reading
it is free there); on an accelerator they run to the batch width, so no value leaves the device.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from .. import _core
from .._core import ENDS_WORD_BREAK, ENDS_WORD_JOIN
from .rng import LANE_SELECT, LANE_SPAN_LENGTH, LANE_SPAN_PHASE, M32, lane_at, lane_keys
from .tokens import (
    IGNORE_INDEX,
    INT64_MAX,
    DeviceTables,
    MaskSettings,
    lookup,
    maskable_positions,
    replace,
)

if TYPE_CHECKING:
    from ..word_boundaries import WordTables


@dataclass(frozen=True)
class WordSettings:
    """A collator's word-masking options: the unit, who shares a replacement decision, the
    longest span / n-gram, and the tokenizer's boundary tables (None when every batch brings
    `word_ids`)."""

    units: Literal["word", "span", "ngram"]
    per_token: bool
    span_geometric_p: float
    max_length: int
    tables: WordTables | None


@dataclass(frozen=True)
class SpanThresholds:
    """`words::SpanSpec` as integers on a device: `Q`, `C_1..C_{M-1}`, `F_0..F_{M-2}`."""

    start: int
    lengths: torch.Tensor  # C, int64, ascending
    phase: torch.Tensor  # F, int64, ascending

    @property
    def max_len(self) -> int:
        return int(self.lengths.numel()) + 1


@functools.lru_cache(maxsize=32)
def span_thresholds(
    units: str, probability: float, span_geometric_p: float, max_length: int, device: str
) -> SpanThresholds:
    """The thresholds of `units` ("span" or "ngram") from the Rust kernel, on `device`."""
    q, c, f = _core.span_tables(units, probability, span_geometric_p, max_length)
    as_tensor = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64)).to(device)  # noqa: E731
    return SpanThresholds(int(q), as_tensor(c), as_tensor(f))


@dataclass(frozen=True)
class BoundaryTables:
    """A tokenizer's `starts_word` / `ends_word` tables (`WordTables`) on a device."""

    starts_word: torch.Tensor  # bool
    ends_word: torch.Tensor  # int64: 0, ENDS_WORD_BREAK or ENDS_WORD_JOIN

    @classmethod
    def from_numpy(cls, tables: WordTables, device: torch.device) -> BoundaryTables:
        return cls(
            torch.from_numpy(np.asarray(tables.starts_word) != 0).to(device),
            torch.from_numpy(np.asarray(tables.ends_word, dtype=np.int64)).to(device),
        )


@dataclass(frozen=True)
class WordMasking:
    """`words::WordMasking`: the unit (`spans` None: whole words), who shares a replacement
    decision, and the vocabulary tables (None when every batch brings `word_ids`)."""

    per_token: bool
    spans: SpanThresholds | None = None
    boundaries: BoundaryTables | None = None


def _shift_right(x: torch.Tensor, fill: int | bool) -> torch.Tensor:
    """Column j holds x[:, j - 1] (`fill` in column 0)."""
    out = torch.empty_like(x)
    out[:, :1] = fill
    out[:, 1:] = x[:, :-1]
    return out


def _loop_bound(count: torch.Tensor, width: int) -> int:
    """Steps a per-word loop needs: the largest `count` on CPU, the width elsewhere (no sync)."""
    if count.device.type == "cpu":
        return int(count.max()) if count.numel() else 0
    return width


def mask_words(
    input_ids: torch.Tensor,
    start: torch.Tensor,
    length: torch.Tensor,
    keys: torch.Tensor,
    settings: MaskSettings,
    tables: DeviceTables,
    words: WordMasking,
    special_tokens_mask: torch.Tensor | None = None,
    word_ids: torch.Tensor | None = None,
    continuation: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`words::mask_row` for every row of a padded `(B, L)` int64 batch (`start`, `length`: each
    row's content; `keys`: row keys). Word boundaries come from `word_ids` (`(B, L)`, negative:
    no word) when given, else from `words.boundaries`, merged by `continuation` flags (`(B, L)`,
    non-zero: the token continues the previous token's word) when given."""
    b, width = input_ids.shape
    device = input_ids.device
    ids = input_ids
    if b == 0 or width == 0:
        return ids.clone(), torch.full_like(ids, IGNORE_INDEX)
    cols = torch.arange(width, dtype=torch.int64, device=device)[None, :]
    position, maskable = maskable_positions(ids, start, length, tables, special_tokens_mask)
    if word_ids is not None:
        maskable &= word_ids >= 0

    # Step 2: word starts and segment starts.
    prev_maskable = _shift_right(maskable, False)
    if word_ids is not None:
        boundary = word_ids != _shift_right(word_ids, -1)
    else:
        if words.boundaries is None:
            raise ValueError("word masking needs word_ids or the tokenizer's word tables")
        e = lookup(words.boundaries.ends_word, _shift_right(ids, 0))
        boundary = (e != ENDS_WORD_JOIN) & (
            lookup(words.boundaries.starts_word, ids) | (e == ENDS_WORD_BREAK)
        )
        if continuation is not None:
            boundary &= continuation == 0
    starts = maskable & (~prev_maskable | boundary)
    segment = maskable & ~prev_maskable
    word_of = starts.cumsum(1) - 1  # the word of each maskable position
    n_words = starts.sum(1)
    k_max = _loop_bound(n_words, width)
    if k_max == 0:
        return ids.clone(), torch.full_like(ids, IGNORE_INDEX)

    # Per-word tensors (a spare last column takes the scatters of non-starts).
    slot = torch.where(starts, word_of, k_max).clamp_(max=k_max)
    word_col = torch.zeros(b, k_max + 1, dtype=torch.int64, device=device)
    word_col.scatter_(1, slot, cols.expand(b, width))
    word_col = word_col[:, :k_max]
    word_seg = torch.zeros(b, k_max + 1, dtype=torch.bool, device=device)
    word_seg.scatter_(1, slot, segment)
    in_word = torch.where(maskable, word_of, k_max).clamp_(max=k_max)
    word_len = torch.zeros(b, k_max + 1, dtype=torch.int64, device=device)
    word_len.scatter_add_(1, in_word, maskable.to(torch.int64))
    word_len = word_len[:, :k_max]
    kk = torch.arange(k_max, dtype=torch.int64, device=device)[None, :]
    valid = kk < n_words[:, None]
    word_seg = word_seg[:, :k_max] & valid
    word_pos = (word_col - start[:, None]) & M32
    u = lane_at(lane_keys(keys, LANE_SELECT)[:, None], word_pos)

    # Step 3: candidate units as word counts at their first words.
    spans = words.spans
    max_units_len = 1
    if spans is None:
        count = valid if settings.exact else valid & (u < settings.select_below)
        count = count.to(torch.int64)
    else:
        max_units_len = min(spans.max_len, k_max)
        drawn = lane_at(lane_keys(keys, LANE_SPAN_LENGTH)[:, None], word_pos)
        span_len = 1 + _count_at_or_below(spans.lengths, drawn)
        # The end of each word's segment: the next segment start (or the row's word count).
        marks = torch.where(word_seg, kk, INT64_MAX)
        marks = torch.cat([marks[:, 1:], n_words[:, None]], dim=1)
        seg_end = torch.flip(torch.cummin(torch.flip(marks, [1]), 1).values, [1])
        seg_end = torch.minimum(seg_end, n_words[:, None])
        if settings.exact:
            count = torch.where(valid, torch.minimum(span_len, seg_end - kk), 0)
        else:
            phase = lane_at(lane_keys(keys, LANE_SPAN_PHASE)[:, None], word_pos)
            count = _renewal(
                word_seg,
                _count_at_or_below(spans.phase, phase),
                valid & (u < spans.start),
                span_len,
                k_max,
            )
            count = torch.minimum(count, seg_end - kk).clamp_(min=0)

    # Step 4: the budget.
    cap = settings.max_predictions
    budget = None
    if settings.exact:
        n = word_len.sum(1)
        budget = torch.floor(n.to(torch.float64) * settings.probability + 0.5).to(torch.int64)
        budget = torch.minimum(torch.clamp(budget, min=1), n)
        if cap is not None:
            budget = torch.clamp(budget, max=cap)
    elif cap is not None:
        budget = torch.full((b,), cap, dtype=torch.int64, device=device)
    if budget is None:
        accepted = count
    else:
        accepted = _fill_budget(count, u, word_len, budget, max_units_len, k_max)

    # Accepted units -> taken words and each word's unit start (column).
    head = accepted > 0
    covered_to = torch.cummax(torch.where(head, kk + accepted, 0), 1).values
    taken_word = covered_to > kk
    unit_col = torch.cummax(torch.where(head, word_col, -1), 1).values

    # Step 5: replacement, per position.
    widx = torch.where(maskable, word_of, 0).clamp_(max=k_max - 1)
    taken = maskable & taken_word.gather(1, widx)
    unit_position = None
    if not words.per_token:
        unit_position = (unit_col.gather(1, widx) - start[:, None]) & M32
    return replace(ids, taken, keys, settings, tables, position, unit_position)


def _count_at_or_below(thresholds: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`#{i : values >= thresholds[i]}` for ascending thresholds (`partition_point(t <= v)`)."""
    if thresholds.numel() == 0:
        return torch.zeros_like(values)
    return torch.searchsorted(thresholds, values.contiguous(), right=True)


def _renewal(
    seg: torch.Tensor, phase: torch.Tensor, hit: torch.Tensor, span_len: torch.Tensor, k_max: int
) -> torch.Tensor:
    """`renewal_units` as a scan over words. `left[k]` is the number of words of the current span
    from word `k` on (0: word `k` is free): a segment start sets it to its phase, a free word whose
    draw hits starts a span of its length. A unit starts where `left` is positive and either a
    segment starts or the word before was the last (or not in) a span; its count is `left` there."""
    b = seg.shape[0]
    seg_t, phase_t = seg.T.contiguous(), phase.T.contiguous()
    hit_len_t = torch.where(hit, span_len, 0).T.contiguous()
    left = torch.zeros(k_max, b, dtype=torch.int64, device=seg.device)
    rem = torch.zeros(b, dtype=torch.int64, device=seg.device)
    for k in range(k_max):
        rem = torch.where(seg_t[k], phase_t[k], rem)
        torch.where(rem == 0, hit_len_t[k], rem, out=left[k])
        torch.sub(left[k], 1, out=rem).clamp_(min=0)
    left = left.T
    before = torch.zeros_like(left)
    before[:, 1:] = (left[:, :-1] - 1).clamp_(min=0)
    head = (left > 0) & (seg | (before == 0))
    return torch.where(head, left, 0)


def _fill_budget(
    count: torch.Tensor,
    u: torch.Tensor,
    word_len: torch.Tensor,
    budget: torch.Tensor,
    window: int,
    k_max: int,
) -> torch.Tensor:
    """`fill_budget`: units in ascending `(u_first, first)` order take their words while a word
    is free and fits in what is left; returns the accepted word counts at the first words."""
    b = count.shape[0]
    device = count.device
    kk = torch.arange(k_max, dtype=torch.int64, device=device)[None, :]
    live = count > 0
    order = torch.sort(torch.where(live, u * k_max + kk, INT64_MAX), dim=1)
    ranked_live = order.values != INT64_MAX
    spare = k_max  # a column no unit uses
    first = torch.where(ranked_live, order.indices, spare).T.contiguous()
    ranked_count = torch.where(ranked_live, count.gather(1, order.indices), 0).T.contiguous()
    steps = _loop_bound(live.sum(1), k_max)
    size = k_max + window + 1
    lens = torch.zeros(b, size, dtype=torch.int64, device=device)
    lens[:, :k_max] = word_len
    accepted = torch.zeros(b, size, dtype=torch.int64, device=device)
    left = budget.clone()
    on_cpu = device.type == "cpu"
    if window == 1:
        # One word per unit and no two units share a word: a unit is taken iff its word fits.
        ranked_len = lens.gather(1, first.T).T.contiguous()
        for r in range(steps):
            if on_cpu and r % 8 == 0 and not bool((left > 0).any()):
                break  # every budget is spent (checked only where reading it is free)
            take = (ranked_count[r] > 0) & (ranked_len[r] <= left)
            left -= torch.where(take, ranked_len[r], 0)
            accepted.scatter_(1, first[r][:, None], take[:, None].to(torch.int64))
        return accepted[:, :k_max]
    taken = torch.zeros(b, size, dtype=torch.bool, device=device)
    offsets = torch.arange(window, dtype=torch.int64, device=device)[None, :]
    for r in range(steps):
        if on_cpu and r % 8 == 0 and not bool((left > 0).any()):
            break
        f = first[r][:, None]
        win = f + offsets
        was = taken.gather(1, win)
        n = lens.gather(1, win)
        ok = (offsets < ranked_count[r][:, None]) & ~was & (n.cumsum(1) <= left[:, None])
        take = ok.to(torch.int64).cumprod(1)
        left -= (take * n).sum(1)
        taken.scatter_(1, win, was | take.bool())
        accepted.scatter_(1, f, take.sum(1, keepdim=True))
    return accepted[:, :k_max]
