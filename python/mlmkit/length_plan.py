"""The `max_length` a collator crops its rows to, in shared memory like its epoch schedule.

A `LengthPlan` holds the collator's own `max_length` and, while a `Trainer` run with a
`SequenceLengthSchedule` goes on, the run's stages: the optimizer step each stage starts at and
its length. A training batch is cropped to the length of the stage of the step it belongs to
(`seeding.BatchPosition.step`, known in every DataLoader worker), so the switch happens at the
scheduled step however far workers prefetch; every other batch (evaluation, other loops) uses the
collator's own value.

Forked DataLoader workers inherit the memory and spawn/forkserver workers receive it through
torch's multiprocessing reductions, so persistent workers see changes made after they started.
Plain pickling (`pickle`, `copy`, `datasets`' hasher) carries the values into a new plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from multiprocessing.reduction import ForkingPickler
from typing import Any

import numpy as np
import torch

from .seeding import integer_like

MAX_STAGES = 16
_BASE, _N, _STAGES = 0, 1, 2  # then MAX_STAGES first steps and MAX_STAGES lengths
_LIMIT = 1 << 62


def check_max_length(value: object) -> int | None:
    """None or a positive integer-like value (stored as int)."""
    if value is None:
        return None
    n = integer_like(value, "max_length")
    if not 1 <= n < _LIMIT:
        raise ValueError(f"max_length must be a positive integer or None, got {n}")
    return n


class LengthPlan:
    """A collator's `max_length` (0 in memory: None) and the stages of a scheduled run."""

    __slots__ = ("_values", "_view", "shared")

    def __init__(
        self, base: int | None = None, starts: Sequence[int] = (), lengths: Sequence[int] = ()
    ) -> None:
        values = torch.zeros(_STAGES + 2 * MAX_STAGES, dtype=torch.int64)
        try:
            values.share_memory_()
            self.shared = True
        except (RuntimeError, OSError):  # no shared memory here
            self.shared = False
        self._values = values
        self._view = values.numpy()
        self.base = base
        if len(starts):
            self.set_stages(starts, lengths)

    @classmethod
    def _attached(cls, values: torch.Tensor) -> LengthPlan:
        self = cls.__new__(cls)
        self._values, self._view, self.shared = values, values.numpy(), True
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        starts, lengths = zip(*self.stages(), strict=True) if self.stages() else ((), ())
        return (LengthPlan, (self.base, tuple(starts), tuple(lengths)))

    def _share(self) -> tuple[Any, ...]:
        if not self.shared:
            return self.__reduce__()
        return (LengthPlan._attached, (self._values,))

    @property
    def base(self) -> int | None:
        n = int(self._view[_BASE])
        return n or None

    @base.setter
    def base(self, value: int | None) -> None:
        self._view[_BASE] = 0 if value is None else value

    def set_stages(self, starts: Sequence[int], lengths: Sequence[int]) -> None:
        """Stage k covers steps `[starts[k], starts[k + 1])` (the last one: onwards) at
        `lengths[k]`; `starts` must increase from 0."""
        n = len(starts)
        if not 1 <= n <= MAX_STAGES or len(lengths) != n:
            raise ValueError(f"a plan has 1 to {MAX_STAGES} stages, each with a length")
        if starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:], strict=False)):
            raise ValueError(f"stage starts must increase from 0, got {list(starts)}")
        v = self._view
        v[_N] = 0  # a reader sees either no stages or all of them
        v[_STAGES : _STAGES + n] = starts
        v[_STAGES + MAX_STAGES : _STAGES + MAX_STAGES + n] = lengths
        v[_N] = n

    def clear_stages(self) -> None:
        self._view[_N] = 0

    def stages(self) -> list[tuple[int, int]]:
        """(first step, length) of each stage."""
        v = self._view
        n = int(v[_N])
        starts = v[_STAGES : _STAGES + n].tolist()
        lengths = v[_STAGES + MAX_STAGES : _STAGES + MAX_STAGES + n].tolist()
        return list(zip(starts, lengths, strict=True))

    def at(self, step: int | None, training: bool) -> int | None:
        """The length a batch of optimizer step `step` is cropped to (`training`: it comes from
        a `Trainer`'s training DataLoader)."""
        v = self._view
        base, n = v[:2].tolist()
        if n == 0 or step is None or not training:
            return base or None
        k = int(np.searchsorted(v[_STAGES : _STAGES + n], step, side="right")) - 1
        return int(v[_STAGES + MAX_STAGES + k]) if k >= 0 else (base or None)


ForkingPickler.register(LengthPlan, LengthPlan._share)


class MaxLengthField:
    """The `max_length` field of a collator dataclass, stored in its `LengthPlan` (made at
    construction; set later, persistent DataLoader workers see the new value)."""

    def __get__(self, obj: Any, objtype: Any = None) -> int | None:
        if obj is None:
            return None  # the field's default
        return obj.__dict__["_lengths"].base

    def __set__(self, obj: Any, value: int | None) -> None:
        n = check_max_length(value)
        plan = obj.__dict__.get("_lengths")
        if plan is None:
            obj.__dict__["_lengths"] = LengthPlan(n)
            return
        if obj.__dict__.get("_built"):
            obj._check_max_length(n)
        plan.base = n
