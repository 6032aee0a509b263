"""Keys of the per-batch random streams.

Each row's stream is keyed by `hash_words(0, batch_words ++ row_words)` (see `rust/rng.rs`):

* keyed mode: `batch_words = [KEYED, seed_lo, seed_hi, epoch_lo, epoch_hi]` and the row words are
  the row's token ids without padding, so masks are a pure function of (seed, epoch, content);
* `seed=int`: `batch_words = [SEEDED, seed_lo, seed_hi, epoch_lo, epoch_hi, worker_lo, worker_hi,
  call_lo, call_hi]` and the row word is its index in the batch. `worker` is the seed torch gives
  the DataLoader worker (drawn afresh from torch's generator each time workers start, so each
  epoch differs), `call` counts this collator copy's batches;
* `seed=None`: `batch_words = [TORCH, a, b]` with `a`, `b` drawn from torch's global generator,
  so `transformers.set_seed` makes runs reproducible.
"""

from __future__ import annotations

import numpy as np
import torch

KEYED = 0x4B455944  # "KEYD"
SEEDED = 0x53454544  # "SEED"
TORCH = 0x54524348  # "TRCH"

_MASK32 = 0xFFFFFFFF


def split64(value: int) -> tuple[int, int]:
    value %= 1 << 64
    return value & _MASK32, value >> 32


def keyed_words(seed: int, epoch: int) -> np.ndarray:
    return np.array([KEYED, *split64(seed), *split64(epoch)], dtype=np.uint32)


def seeded_words(seed: int, epoch: int, calls: int) -> np.ndarray:
    info = torch.utils.data.get_worker_info()
    worker = 0 if info is None else int(info.seed)
    return np.array(
        [SEEDED, *split64(seed), *split64(epoch), *split64(worker), *split64(calls)],
        dtype=np.uint32,
    )


def torch_words() -> np.ndarray:
    a, b = torch.randint(0, 1 << 32, (2,), dtype=torch.int64).tolist()
    return np.array([TORCH, a, b], dtype=np.uint32)
