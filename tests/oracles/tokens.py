"""Token masking (`rust/masking.rs`) on one unpadded row, in plain Python."""

from __future__ import annotations

from .rng import LANE_RANDOM_TOKEN, LANE_REPLACE, LANE_SELECT, index, lane, threshold


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
        select_below = threshold(p)
        chosen = [j for j in maskable if draws[j] < select_below]
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
            ids[j] = random_ids[index(w, len(random_ids))]
    return ids, labels
