"""A vectorised NumPy MLM collator from Python lists: the fast baseline a careful user would
write by hand (pad into an array, then 80/10/10 with array ops)."""

from __future__ import annotations

from typing import Any

import numpy as np


class NumpyMLMCollator:
    def __init__(self, tokenizer: Any, mlm_probability: float = 0.15, seed: int = 0) -> None:
        vocab = len(tokenizer)
        self.is_special = np.zeros(vocab, dtype=bool)
        self.is_special[tokenizer.all_special_ids] = True
        self.random_ids = np.flatnonzero(~self.is_special)
        self.pad_id = tokenizer.pad_token_id
        self.mask_id = tokenizer.mask_token_id
        self.p = mlm_probability
        self.rng = np.random.default_rng(seed)

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, np.ndarray]:
        rows = [f["input_ids"] for f in features]
        lens = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        width = int(lens.max())
        if (lens == width).all():
            ids = np.array(rows, dtype=np.int64)
        else:
            ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            for i, row in enumerate(rows):
                ids[i, : len(row)] = row
        attention = (np.arange(width) < lens[:, None]).astype(np.int64)
        selected = (self.rng.random(ids.shape) < self.p) & ~self.is_special[ids]
        labels = np.where(selected, ids, -100)
        r = self.rng.random(ids.shape)
        to_mask = selected & (r < 0.8)
        to_random = selected & (r >= 0.8) & (r < 0.9)
        ids[to_mask] = self.mask_id
        ids[to_random] = self.rng.choice(self.random_ids, int(to_random.sum()))
        return {"input_ids": ids, "attention_mask": attention, "labels": labels}
