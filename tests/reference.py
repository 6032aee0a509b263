"""Slow, obviously-correct Python versions of the documented algorithms (rust/rng.rs,
rust/masking.rs), used as test oracles on small inputs."""

from __future__ import annotations

M32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9
LANE_SELECT, LANE_REPLACE, LANE_RANDOM_TOKEN = 1, 2, 3


def rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & M32


def fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def hash_words(seed: int, words: list[int]) -> int:
    h = seed & M32
    for w in words:
        k = (w * 0xCC9E2D51) & M32
        k = rotl(k, 15)
        k = (k * 0x1B873593) & M32
        h ^= k
        h = rotl(h, 13)
        h = (h * 5 + 0xE6546B64) & M32
    return fmix32(h ^ ((4 * len(words)) & M32))


def lane(row_key: int, lane_id: int, i: int) -> int:
    key = hash_words(row_key, [lane_id])
    return fmix32((key + i * GOLDEN) & M32)


def threshold(p: float) -> int:
    return round(min(max(p, 0.0), 1.0) * 2**32)


def mask_row(
    content: list[int],
    row_key: int,
    *,
    special: set[int],
    random_ids: list[int],
    mask_id: int,
    p: float,
    mask_replace: float,
    random_replace: float,
    exact: bool = False,
    cap: int | None = None,
) -> tuple[list[int], list[int]]:
    """Mask one unpadded row exactly as the kernel does; returns (ids, labels)."""
    ids, labels = list(content), [-100] * len(content)
    maskable = [j for j, t in enumerate(content) if t not in special]
    draws = {j: lane(row_key, LANE_SELECT, j) for j in maskable}
    if exact:
        n = len(maskable)
        k = 0 if n == 0 else min(max(int(p * n + 0.5), 1), n)
        chosen = sorted(maskable, key=lambda j: (draws[j], j))[:k]
    else:
        chosen = [j for j in maskable if draws[j] < threshold(p)]
    if cap is not None:
        chosen = sorted(chosen, key=lambda j: (draws[j], j))[:cap]
    t_mask = threshold(mask_replace)
    t_rand = max(threshold(mask_replace + random_replace), t_mask)
    for j in chosen:
        labels[j] = content[j]
        v = lane(row_key, LANE_REPLACE, j)
        if v < t_mask:
            ids[j] = mask_id
        elif v < t_rand:
            w = lane(row_key, LANE_RANDOM_TOKEN, j)
            ids[j] = random_ids[(w * len(random_ids)) >> 32]
    return ids, labels


KEYED = 0x4B455944


def keyed_row_key(seed: int, epoch: int, content: list[int]) -> int:
    s, e = seed % 2**64, epoch % 2**64
    words = [KEYED, s & M32, s >> 32, e & M32, e >> 32]
    return hash_words(0, words + [t & M32 for t in content])
