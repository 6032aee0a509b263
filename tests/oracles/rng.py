"""The generator of `rust/rng.rs` on plain Python ints: MurmurHash3_x86_32 over 32-bit words,
lanes of a row's stream, probability thresholds rounded exactly as Rust's `f64::round`, and
the key of a row in keyed mode. The lane numbers are the core's."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from fractions import Fraction

from mlmkit import _core

M32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9
LANE_SELECT = _core.LANE_SELECT
LANE_REPLACE = _core.LANE_REPLACE
LANE_RANDOM_TOKEN = _core.LANE_RANDOM_TOKEN
LANE_SPAN_LENGTH = _core.LANE_SPAN_LENGTH
LANE_SPAN_PHASE = _core.LANE_SPAN_PHASE
KEYED = 0x4B455944  # "KEYD": the first key word of keyed mode


def rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & M32


def fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def hash_words(seed: int, words: Sequence[int]) -> int:
    """MurmurHash3_x86_32 of 32-bit words (their little-endian bytes)."""
    h = seed & M32
    for w in words:
        k = ((w & M32) * 0xCC9E2D51) & M32
        k = rotl(k, 15)
        k = (k * 0x1B873593) & M32
        h ^= k
        h = rotl(h, 13)
        h = (h * 5 + 0xE6546B64) & M32
    return fmix32(h ^ ((4 * len(words)) & M32))


def lane(row_key: int, lane_id: int, i: int) -> int:
    """Value `i` of lane `lane_id` of a row's stream."""
    key = hash_words(row_key, [lane_id])
    return fmix32((key + i * GOLDEN) & M32)


class Lane:
    """One lane of a row's stream."""

    def __init__(self, row_key: int, lane_id: int):
        self.row_key, self.lane_id = row_key, lane_id

    def at(self, i: int) -> int:
        return lane(self.row_key, self.lane_id, i)


@functools.cache
def threshold(p: float) -> int:
    """round(p * 2^32) with halves away from zero (Rust's `f64::round`), in exact arithmetic."""
    x = Fraction(min(max(p, 0.0), 1.0)) * 2**32
    whole = x.numerator // x.denominator
    return whole + (x - whole >= Fraction(1, 2))


def index(value: int, n: int) -> int:
    """An index in [0, n) from a 32-bit value."""
    return (value * n) >> 32


def keyed_row_key(seed: int, epoch: int, content: Sequence[int]) -> int:
    """The key of a row in keyed mode: its content under the seed and epoch."""
    s, e = seed % 2**64, epoch % 2**64
    words = [KEYED, s & M32, s >> 32, e & M32, e >> 32]
    return hash_words(0, words + [t & M32 for t in content])
