"""A slow, obviously-correct transcription of the algorithm documented in `rust/words.rs`
(whole-word, span and n-gram masking), for comparing with the kernel on small inputs.

Everything is plain Python integers and lists, with the random values of `rng`; the only things
taken from mlmkit are the lane numbers, the per-vocabulary tables (tested on their own) and the
span thresholds `(Q, C, F)` (checked against their definition in test_word_masking.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .rng import (
    LANE_RANDOM_TOKEN,
    LANE_REPLACE,
    LANE_SELECT,
    LANE_SPAN_LENGTH,
    LANE_SPAN_PHASE,
    Lane,
    index,
    threshold,
)

IGNORE = -100


@dataclass
class Config:
    masking: str  # "word" | "span" | "ngram"
    count: str  # "bernoulli" | "exact"
    p: float
    mask_replace_prob: float
    random_replace_prob: float
    max_predictions: int | None
    replace_per: str  # "word" | "token"
    mask_id: int
    random_ids: list[int]
    span_tables: tuple[int, list[int], list[int]] | None  # (Q, C, F) for span / ngram


@dataclass
class Word:
    start: int
    length: int
    segment: bool


def words_of(
    row: list[int],
    maskable: list[bool],
    starts_word: list[int] | None,
    ends_word: list[int] | None,
    cont: list[int] | None,
    word_ids: list[int] | None,
) -> list[Word]:
    def inside(j: int) -> bool:
        return maskable[j] and (word_ids is None or word_ids[j] >= 0)

    words: list[Word] = []
    for j in range(len(row)):
        if not inside(j):
            continue
        if j == 0 or not inside(j - 1):
            words.append(Word(j, 1, True))
            continue
        if word_ids is not None:
            new = word_ids[j] != word_ids[j - 1]
        else:
            assert starts_word is not None and ends_word is not None
            e = ends_word[row[j - 1]]
            new = (cont is None or cont[j] == 0) and e != 2 and (starts_word[row[j]] != 0 or e == 1)
        if new:
            words.append(Word(j, 1, False))
        else:
            words[-1].length += 1
    return words


def exact_count(p: float, n: int, cap: int | None) -> int:
    if n == 0:
        return 0
    k = math.floor(p * n + 0.5)
    k = min(max(k, 1), n)
    return k if cap is None else min(k, cap)


def mask_row(
    row: list[int],
    maskable: list[bool],
    cfg: Config,
    row_key: int,
    starts_word: list[int] | None = None,
    ends_word: list[int] | None = None,
    cont: list[int] | None = None,
    word_ids: list[int] | None = None,
) -> tuple[list[int], list[int]]:
    words = words_of(row, maskable, starts_word, ends_word, cont, word_ids)
    K = len(words)
    sel = Lane(row_key, LANE_SELECT)
    rep = Lane(row_key, LANE_REPLACE)
    tok = Lane(row_key, LANE_RANDOM_TOKEN)
    lengths_lane = Lane(row_key, LANE_SPAN_LENGTH)
    phase_lane = Lane(row_key, LANE_SPAN_PHASE)
    u = [sel.at(w.start) for w in words]
    seg_end = [0] * K
    for k in range(K):
        b = k + 1
        while b < K and not words[b].segment:
            b += 1
        seg_end[k] = b

    units: list[tuple[int, int]] = []
    if cfg.masking == "word":
        select_below = threshold(cfg.p)
        for k in range(K):
            if cfg.count == "exact" or u[k] < select_below:
                units.append((k, 1))
    else:
        assert cfg.span_tables is not None
        Q, C, F = cfg.span_tables

        def length(k: int) -> int:
            v = lengths_lane.at(words[k].start)
            return 1 + sum(1 for c in C if v >= c)

        if cfg.count == "bernoulli":
            a = 0
            while a < K:
                b = seg_end[a]
                v = phase_lane.at(words[a].start)
                r = sum(1 for f in F if v >= f)
                if r > 0:
                    units.append((a, min(r, b - a)))
                k = a + r
                while k < b:
                    if u[k] < Q:
                        n = length(k)
                        units.append((k, min(n, b - k)))
                        k += n
                    else:
                        k += 1
                a = b
        else:
            units = [(k, min(length(k), seg_end[k] - k)) for k in range(K)]

    if cfg.count == "bernoulli" and cfg.max_predictions is None:
        accepted = units
    else:
        if cfg.max_predictions is not None and cfg.count == "bernoulli":
            budget = cfg.max_predictions
        else:
            budget = exact_count(cfg.p, sum(w.length for w in words), cfg.max_predictions)
        taken: set[int] = set()
        accepted = []
        for first, count in sorted(units, key=lambda un: (u[un[0]], words[un[0]].start)):
            if budget == 0:
                break
            got = 0
            for k in range(first, first + count):
                if k in taken or words[k].length > budget:
                    break
                taken.add(k)
                budget -= words[k].length
                got += 1
            if got:
                accepted.append((first, got))

    ids = list(row)
    labels = [IGNORE] * len(row)
    mask_below = threshold(cfg.mask_replace_prob)
    random_below = max(threshold(cfg.mask_replace_prob + cfg.random_replace_prob), mask_below)
    for first, count in accepted:
        s = words[first].start
        last = words[first + count - 1]
        for j in range(s, last.start + last.length):
            labels[j] = row[j]
            v = rep.at(j) if cfg.replace_per == "token" else rep.at(s)
            if v < mask_below:
                ids[j] = cfg.mask_id
            elif v < random_below:
                ids[j] = cfg.random_ids[index(tok.at(j), len(cfg.random_ids))]
    return ids, labels
