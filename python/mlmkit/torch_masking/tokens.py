"""Token masking (`rust/masking.rs`) with torch ops, over a padded `(B, L)` int64 batch: the
settings, the tokenizer's tables on a device, and the replacement step that word masking shares.

Positions are counted from each row's content start (`start`, `length`: each row's content;
`keys`: row keys, see `mlmkit.torch_masking.batch`), so the padding side does not change the
masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import validation
from .._core import IGNORE_INDEX
from .rng import LANE_RANDOM_TOKEN, LANE_REPLACE, LANE_SELECT, M32, lane_at, lane_keys, threshold

INT64_MAX = torch.iinfo(torch.int64).max


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
            validation.probability(name, getattr(self, name))
        validation.replacement_split(self.mask_replace_prob, self.random_replace_prob)

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


def lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`table[index]` for a 1-D table."""
    # index_select on the flat index: advanced indexing (`table[index]`) is ~100x slower on CPU.
    return table.index_select(0, index.reshape(-1)).view(index.shape)


def maskable_positions(
    ids: torch.Tensor,
    start: torch.Tensor,
    length: torch.Tensor,
    tables: DeviceTables,
    special_tokens_mask: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(position, maskable)`: each column's position in its row's content (only meaningful
    inside it), and whether it is a content token that is not special."""
    cols = torch.arange(ids.shape[1], dtype=torch.int64, device=ids.device)[None, :]
    position = (cols - start[:, None]) & M32
    in_content = (cols >= start[:, None]) & (cols < (start + length)[:, None])
    maskable = in_content & ~lookup(tables.is_special, ids)
    if special_tokens_mask is not None:
        maskable &= special_tokens_mask == 0
    return position, maskable


def replace(
    ids: torch.Tensor,
    selected: torch.Tensor,
    keys: torch.Tensor,
    settings: MaskSettings,
    tables: DeviceTables,
    position: torch.Tensor,
    decision_position: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`masking::replace` at every selected position: `(masked ids, labels)`. The mask / random /
    keep decision is drawn at `decision_position` (a unit's first position when a whole unit
    shares it; default: `position`), the random token at `position`."""
    labels = torch.where(selected, ids, IGNORE_INDEX)
    at = position if decision_position is None else decision_position
    v = lane_at(lane_keys(keys, LANE_REPLACE)[:, None], at)
    to_mask = selected & (v < settings.mask_below)
    to_random = selected & ~to_mask & (v < settings.random_below)
    out = torch.where(to_mask, settings.mask_id, ids)
    n_random = tables.random_ids.numel()
    if settings.random_below > settings.mask_below and n_random:
        w = lane_at(lane_keys(keys, LANE_RANDOM_TOKEN)[:, None], position)
        out = torch.where(to_random, lookup(tables.random_ids, (w * n_random) >> 32), out)
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
    """`masking::mask_row` for every row of a padded `(B, L)` int64 batch at once."""
    width = input_ids.shape[1]
    position, maskable = maskable_positions(input_ids, start, length, tables, special_tokens_mask)
    u = lane_at(lane_keys(keys, LANE_SELECT)[:, None], position)

    if not settings.exact and settings.max_predictions is None:
        selected = maskable & (u < settings.select_below)
        return replace(input_ids, selected, keys, settings, tables, position)

    # The k smallest (draw, position) pairs among the candidates; u * width + j orders them the
    # same way and fits in int64 (u < 2^32, j < width < 2^31).
    cols = torch.arange(width, dtype=torch.int64, device=input_ids.device)[None, :]
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
    order = torch.where(candidate, u * max(width, 1) + cols, INT64_MAX)
    ranked = torch.sort(order, dim=1).values
    kth = torch.where(
        k < width,
        ranked.gather(1, torch.clamp(k, max=max(width - 1, 0))[:, None]).squeeze(1),
        INT64_MAX,
    )
    selected = candidate & (order < kth[:, None])
    return replace(input_ids, selected, keys, settings, tables, position)
