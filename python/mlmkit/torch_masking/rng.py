"""The counter-based generator of `rust/rng.rs` with torch ops.

Every value is a 32-bit word held in an int64 tensor in [0, 2^32). Products are formed so that no
intermediate leaves int64 (`mul32` splits the 32-bit constants), so the result does not depend on
how a backend treats signed overflow. The functions use only integer operators, so they take
Python ints as well (`hash_prefix` and `hash_words` work on the few words shared by a batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import torch

from .. import _core

M32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9
LANE_SELECT = _core.LANE_SELECT
LANE_REPLACE = _core.LANE_REPLACE
LANE_RANDOM_TOKEN = _core.LANE_RANDOM_TOKEN
LANE_SPAN_LENGTH = _core.LANE_SPAN_LENGTH
LANE_SPAN_PHASE = _core.LANE_SPAN_PHASE

# MurmurHash3_x86_32's constants.
C1, C2 = 0xCC9E2D51, 0x1B873593
ROUND_ADD = 0xE6546B64

Words = TypeVar("Words", torch.Tensor, int)


def mul32(x: Words, c: int) -> Words:
    """`(x * c) mod 2^32` for x, c in [0, 2^32), with every intermediate below 2^49."""
    low = x * (c & 0xFFFF)
    high = ((x * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & M32


def rotl(x: Words, r: int) -> Words:
    return ((x << r) & M32) | (x >> (32 - r))


def fmix32(h: Words) -> Words:
    """murmur3's finaliser."""
    h = h ^ (h >> 16)
    h = mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def mix_word(word: Words) -> Words:
    """The per-word half of a murmur3 round (`k` in `Murmur::push`), independent of the state."""
    return mul32(rotl(mul32(word, C1), 15), C2)


def murmur_round(h: Words, k: Words | int) -> Words:
    """The state half of a murmur3 round: `h ^= k; h = rotl(h, 13); h = h * 5 + 0xE6546B64`."""
    h = rotl(h ^ k, 13)
    return (h * 5 + ROUND_ADD) & M32


def murmur_finish(h: Words, n_words: Words | int) -> Words:
    return fmix32(h ^ ((n_words * 4) & M32))


def hash_prefix(words: Sequence[int], seed: int = 0) -> int:
    """murmur3 state (before finishing) after the given words: the part shared by a whole batch."""
    h = seed & M32
    for w in words:
        h = murmur_round(h, mix_word(int(w) & M32))
    return h


def hash_words(seed: int, words: Sequence[int]) -> int:
    """`rng::hash_words`: MurmurHash3_x86_32 of 32-bit words."""
    return murmur_finish(hash_prefix(words, seed), len(words))


def lane_keys(row_keys: torch.Tensor, lane: int) -> torch.Tensor:
    """`Lane::new(row_key, lane).key` for every row: `hash_words(row_key, [lane])`."""
    return murmur_finish(murmur_round(row_keys, mix_word(lane)), 1)


def lane_at(keys: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`Lane::at`: value `index` of the lanes with these keys (broadcasting)."""
    return fmix32((keys + ((index * GOLDEN) & M32)) & M32)


def threshold(p: float) -> int:
    """`rng::threshold`: round(p * 2^32) with halves away from zero, as Rust's `f64::round`.

    p * 2^32 is exact in float64, and so is its fractional part, which decides the rounding
    (`floor(x + 0.5)` would not: the sum itself rounds for x just below one half)."""
    x = min(max(p, 0.0), 1.0) * 4294967296.0
    whole = math.floor(x)
    return whole + (x - whole >= 0.5)
