"""Keys of the per-batch random streams, and the epoch schedule a collator shares with its copies.

Each row's stream is keyed by `hash_words(0, batch_words ++ row_words)` (see `rust/rng.rs`):

* keyed mode: `batch_words = [KEYED, seed_lo, seed_hi, epoch_lo, epoch_hi]` and the row words are
  the row's token ids without padding, so masks are a pure function of (seed, epoch, content) and
  the same on every rank;
* `seed=int`: `batch_words = [SEEDED, seed_lo, seed_hi, epoch_lo, epoch_hi, rank, pool_lo,
  pool_hi, batch_lo, batch_hi]` and the row word is its index in the batch. `rank` is the global
  rank (`torch.distributed` when initialised, else the launcher's `RANK`, else 0); `batch` is the
  batch's position in the epoch; `pool` is 0 once the epoch is managed (`set_epoch`, the Trainer
  integration), otherwise, inside a DataLoader worker, the base seed torch draws every time a
  DataLoader starts its workers (so loops that never call `set_epoch` still get fresh masks);
* `seed=None`: `batch_words = [TORCH, rank, a, b]` with `a`, `b` drawn from torch's global
  generator, so `transformers.set_seed` makes runs reproducible and ranks still differ.

A row longer than the collator's `max_length` is cropped to a window whose start comes from the
same row key (keyed mode: over the uncropped row's content) on a lane of its own (`cropping`);
with `seed=None` the window's batch words are drawn first, the masks' after them.

Batch positions: a collator counts the batches it masks since its epoch was last set. In the main
process the k-th is batch `skip + k`; in DataLoader worker `w` of `N` it is batch
`skip + w + k * N`, because torch hands batch `i` of an iteration to worker `i % N` (in order).
`skip` is the number of batches the DataLoader skips at the start of the epoch (a resumed run).
The epoch, `skip` and a version counter live in a small tensor in shared memory created with the
collator: forked workers inherit it and spawn/forkserver workers receive it through torch's
multiprocessing reductions, so persistent workers see `set_epoch` calls made after they started.

During a `Trainer` run the schedule also holds the optimizer step of the epoch's batch 0 and the
batches per step (gradient accumulation), so the step a batch belongs to is known wherever it is
collated: `first_step + batch // accumulation` (what a `SequenceLengthSchedule` switches on).
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
from multiprocessing.reduction import ForkingPickler
from types import CodeType, FrameType
from typing import Any, NamedTuple

import numpy as np
import torch

KEYED = 0x4B455944  # "KEYD"
SEEDED = 0x53454544  # "SEED"
TORCH = 0x54524348  # "TRCH"

_MASK32 = 0xFFFFFFFF
_INT63 = 1 << 63


def split64(value: int) -> tuple[int, int]:
    value %= 1 << 64
    return value & _MASK32, value >> 32


# ---- integer-like arguments ----------------------------------------------------------------


def integer_like(value: object, name: str) -> int:
    """`value` as an int when it is a Python or numpy integer or an integral float (`2.0`, what
    `Trainer.state.epoch` holds at an epoch boundary); a `TypeError` naming `name` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, (float, np.floating)) and math.isfinite(value):
            if float(value).is_integer():
                return int(value)
    raise TypeError(
        f"{name} must be an integer (int, numpy integer or an integral float such as 2.0), "
        f"got {value!r} of type {type(value).__name__}"
    )


def check_seed(value: object) -> int | None:
    return None if value is None else integer_like(value, "seed")


def check_count(value: object, name: str) -> int:
    """A non-negative integer-like value below 2^63 (epochs, batch counts)."""
    n = integer_like(value, name)
    if not 0 <= n < _INT63:
        raise ValueError(f"{name} must be >= 0 (and below 2^63), got {n}")
    return n


# ---- ranks ---------------------------------------------------------------------------------


_DISTRIBUTED = torch.distributed.is_available()


def current_rank() -> int:
    """The global rank of this process: `torch.distributed` when initialised, else the `RANK`
    environment variable that torchrun / accelerate launch set, else 0."""
    if _DISTRIBUTED and torch.distributed.is_initialized():
        return int(torch.distributed.get_rank())
    env = os.environ.get("RANK", "")
    return int(env) if env.isdigit() else 0


# ---- the schedule shared with DataLoader workers -------------------------------------------

_VERSION, _EPOCH, _SKIP, _MANAGED, _WARNED, _FIRST_STEP, _ACCUMULATION = range(7)


class EpochSchedule:
    """A collator's epoch, the batch its epoch starts at (`skip`), whether anyone manages the
    epoch, a version that changes with every `set_epoch`, and, during a `Trainer` run, the step
    of the epoch's batch 0 and the batches per step: seven int64 in shared memory.

    Plain pickling (`pickle`, `copy`, `datasets`' hasher) carries the values into a new,
    independent schedule; torch's multiprocessing pickler (spawn/forkserver DataLoader workers)
    shares the memory and carries the pickling process's rank."""

    __slots__ = ("_values", "_view", "_rank", "shared")

    def __init__(
        self,
        epoch: int = 0,
        skip: int = 0,
        managed: bool = False,
        first_step: int = -1,
        accumulation: int = 0,
    ) -> None:
        values = torch.tensor(
            [0, epoch, skip, int(managed), 0, first_step, accumulation], dtype=torch.int64
        )
        try:
            values.share_memory_()
            self.shared = True
        except (RuntimeError, OSError):  # no shared memory here (e.g. no /dev/shm)
            self.shared = False
        self._values = values
        self._view = values.numpy()  # the same memory; cheaper to read once per batch
        self._rank: int | None = None

    @classmethod
    def _attached(cls, values: torch.Tensor, rank: int) -> EpochSchedule:
        self = cls.__new__(cls)
        self._values, self._view, self._rank, self.shared = values, values.numpy(), rank, True
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        _, epoch, skip, managed, _, first_step, accumulation = self._view.tolist()
        return (EpochSchedule, (epoch, skip, bool(managed), first_step, accumulation))

    def _share(self) -> tuple[Any, ...]:
        if not self.shared:
            return self.__reduce__()
        return (EpochSchedule._attached, (self._values, self.rank()))

    def read(self) -> tuple[int, int, int, bool]:
        version, epoch, skip, managed = self._view[:4].tolist()
        return version, epoch, skip, bool(managed)

    @property
    def epoch(self) -> int:
        return int(self._view[_EPOCH])

    @property
    def managed(self) -> bool:
        return bool(self._view[_MANAGED])

    @property
    def first_step(self) -> int:
        """The optimizer step of this epoch's batch 0 (-1: not in a `Trainer` run)."""
        return int(self._view[_FIRST_STEP])

    def set(
        self,
        epoch: object,
        skip_batches: object = 0,
        *,
        first_step: int = -1,
        accumulation: int = 0,
    ) -> None:
        if torch.utils.data.get_worker_info() is not None:
            raise RuntimeError(
                "set_epoch must be called in the process that iterates the DataLoader, not inside "
                "a DataLoader worker: the workers' copies follow the main process's collator"
            )
        e = check_count(epoch, "epoch")
        s = check_count(skip_batches, "skip_batches")
        v = self._view
        v[_EPOCH], v[_SKIP], v[_MANAGED] = e, s, 1
        v[_FIRST_STEP], v[_ACCUMULATION] = first_step, accumulation
        v[_VERSION] += 1  # last: a reader that sees the new version sees the new values

    def end_steps(self) -> None:
        """The `Trainer` run is over: batches no longer belong to its steps."""
        self._view[_FIRST_STEP] = -1

    def rank(self) -> int:
        return current_rank() if self._rank is None else self._rank

    @property
    def warned(self) -> bool:
        """Whether a warning about this schedule was given, in any process sharing it."""
        return bool(self._view[_WARNED])

    @warned.setter
    def warned(self, value: bool) -> None:
        self._view[_WARNED] = int(value)


ForkingPickler.register(EpochSchedule, EpochSchedule._share)


class BatchCursor:
    """How many batches one collator object has masked since its schedule last changed, in this
    process. Copies (pickled, or inherited by a forked worker) start again at 0. `training`: the
    cursor of a `Trainer`'s training DataLoader (`mask_epochs.TrainingBatches`)."""

    __slots__ = ("_pid", "_version", "_count", "training")

    def __init__(self, training: bool = False) -> None:
        self._pid, self._version, self._count = -1, -1, 0
        self.training = training

    def __reduce__(self) -> tuple[Any, ...]:
        return (BatchCursor, (self.training,))

    def take(self, version: int) -> int:
        pid = os.getpid()
        if pid != self._pid or version != self._version:
            self._pid, self._version, self._count = pid, version, 0
        k = self._count
        self._count += 1
        return k


class BatchPosition(NamedTuple):
    """Where a batch sits: its epoch, its position in the epoch, the worker pool word of seeded
    keys, and the optimizer step it belongs to during a `Trainer` run (else None)."""

    epoch: int
    batch: int
    pool: int
    step: int | None


def batch_position(schedule: EpochSchedule, cursor: BatchCursor) -> BatchPosition:
    """The position of the next batch a collator with this schedule and cursor collates (call
    once per batch)."""
    version, epoch, skip, managed, _, first_step, accumulation = schedule._view.tolist()
    k = cursor.take(version)
    info = torch.utils.data.get_worker_info()
    if info is None:
        batch, pool = skip + k, 0
    else:
        batch = skip + info.id + k * info.num_workers
        pool = 0 if managed else int(info.seed) - info.id
    step = first_step + batch // accumulation if first_step >= 0 and accumulation > 0 else None
    return BatchPosition(epoch, batch, pool, step)


# ---- dataclass fields ----------------------------------------------------------------------


class SeedField:
    """The `seed` field of a collator dataclass: validated whenever it is set (integer-like
    values are stored as int)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: Any, objtype: Any = None) -> int | None:
        if obj is None:
            return None  # the field's default
        return obj.__dict__.get(self._name)

    def __set__(self, obj: Any, value: int | None) -> None:
        obj.__dict__[self._name] = check_seed(value)


class EpochField:
    """The `epoch` field of a collator dataclass, stored in its `EpochSchedule`. Set at
    construction it is the starting epoch; set later it is `set_epoch(value)`."""

    def __get__(self, obj: Any, objtype: Any = None) -> int:
        if obj is None:
            return 0  # the field's default
        return obj.__dict__["_schedule"].epoch

    def __set__(self, obj: Any, value: int) -> None:
        schedule = obj.__dict__.get("_schedule")
        if schedule is None:
            obj.__dict__["_schedule"] = EpochSchedule(check_count(value, "epoch"))
        else:
            schedule.set(value)


# ---- key words -----------------------------------------------------------------------------


def keyed_words(seed: int, epoch: int) -> np.ndarray:
    return np.array([KEYED, *split64(seed), *split64(epoch)], dtype=np.uint32)


def seeded_words(seed: int, rank: int, position: BatchPosition) -> np.ndarray:
    """The key words of a batch at `position` in seeded mode."""
    return np.array(
        [
            SEEDED,
            *split64(seed),
            *split64(position.epoch),
            rank & _MASK32,
            *split64(position.pool),
            *split64(position.batch),
        ],
        dtype=np.uint32,
    )


def torch_words(rank: int) -> np.ndarray:
    a, b = torch.randint(0, 1 << 32, (2,), dtype=torch.int64).tolist()
    return np.array([TORCH, rank & _MASK32, a, b], dtype=np.uint32)


# ---- epochs nobody manages during a Trainer run --------------------------------------------

# The frames of the `Trainer.train()` loops the Trainer integration saw start, as (id, code):
# a run is going on while its frame is on the call stack (forked DataLoader workers inherit the
# stack), so a run that ended with an exception leaves nothing behind. Holding the code object,
# not the frame, keeps the loop's locals (model, data) collectable.
_trainer_loops: list[tuple[int, CodeType]] = []


def trainer_started(frame: FrameType) -> tuple[int, CodeType]:
    marker = (id(frame), frame.f_code)
    del _trainer_loops[:-15]  # runs that raised; at most 16 kept
    _trainer_loops.append(marker)
    return marker


def trainer_ended(marker: tuple[int, CodeType]) -> None:
    if marker in _trainer_loops:
        _trainer_loops.remove(marker)


def in_trainer_loop() -> bool:
    if not _trainer_loops:
        return False
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if (id(frame), frame.f_code) in _trainer_loops:
            return True
        frame = frame.f_back
    return False


def warn_if_unmanaged(schedule: EpochSchedule, keyed: bool) -> None:
    """Warn once per schedule when a collator whose epoch nobody manages masks batches inside a
    `Trainer.train()`: the Trainer integration could not reach it."""
    if schedule.managed or schedule.warned or not in_trainer_loop():
        return
    schedule.warned = True
    effect = (
        f"its masks repeat every epoch (keyed=True, epoch stays {schedule.epoch})"
        if keyed
        else "a resumed run will not reproduce its masks"
    )
    warnings.warn(
        "an mlmkit collator masks batches during Trainer.train() but its epoch is not managed: "
        f"{effect}. mlmkit follows Trainer's epochs for the collator passed as "
        "Trainer(data_collator=...); for a collator used another way (wrapped in another "
        "function, masking in the training step) add mlmkit.MaskEpochCallback(collator)"
        ".attach(trainer), or call collator.set_epoch(epoch) yourself",
        stacklevel=4,
    )
