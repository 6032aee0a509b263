"""Checks of user settings, one message per rule. The Rust kernels check their settings again,
with the same words, so a value that reaches them another way fails the same way."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

S = TypeVar("S", bound=str)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def probability(name: str, value: Any) -> float:
    """A number in [0, 1] (not a bool)."""
    if not _is_real(value) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def replacement_split(mask_replace_prob: float, random_replace_prob: float) -> None:
    """The two replacement probabilities of a selected token leave room for keeping it."""
    if mask_replace_prob + random_replace_prob > 1.0 + 1e-12:
        raise ValueError(
            "mask_replace_prob + random_replace_prob must not exceed 1, got "
            f"{mask_replace_prob} + {random_replace_prob}"
        )


def fraction(name: str, value: Any) -> float:
    """A number in (0, 1] (not a bool)."""
    if not _is_real(value) or not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def integer_in(name: str, value: Any, low: int, high: int) -> int:
    """An integer (not a bool) in [low, high]."""
    if not _is_int(value) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def positive_int(name: str, value: Any) -> int:
    """An integer >= 1 (not a bool)."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def optional_positive_int(name: str, value: Any) -> int | None:
    """None or an integer >= 1 (not a bool)."""
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


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


def one_of(name: str, value: Any, choices: Sequence[S]) -> S:
    """One of the given strings."""
    if isinstance(value, str) and value in choices:
        return value  # type: ignore[return-value]
    quoted = [repr(c) for c in choices]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    raise ValueError(f"{name} must be one of {listed}, got {value!r}")
