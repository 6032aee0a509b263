"""Cropping a batch's rows to at most `max_length` tokens, before padding and masking.

A row that fits in `max_length` tokens, with its padding, is left as it is. A longer row loses
the surplus padding at its padding side's end; if its content is still longer, it becomes a
window of `max_length` tokens: `[CLS] window [SEP]` when the row starts and ends with the
tokenizer's single-sequence special tokens, a plain window of the row otherwise. The kernel
(`rust/cropping.rs`) returns the flat positions every row keeps, and every column aligned with
`input_ids` is cut with that one gather, so they all stay consistent.

Where the window starts: value 0 of lane `LANE_CROP` (4) of the row's key, as an index into the
possible starts; the key is the masks' key of the uncropped row (keyed mode: the batch's key
words and the row's content; `seed=int`: the batch's key words and the row's index; `seed=None`:
key words drawn from torch for the windows, before the masks draw theirs). See
`rust/cropping.rs`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from .batch import Ragged
from .templates import single_template

# Columns that make a batch one of sentence pairs (NSP/SOP): its rows are never cropped.
PAIR_LABELS = ("next_sentence_label", "sentence_order_label")
_NO_WORDS = np.zeros(0, dtype=np.uint32)


@dataclass
class Crop:
    """The rows after cropping: `rows` (with their remaining padding) and their `content`, over
    the gathered values; `index` holds the input's flat positions they keep."""

    index: np.ndarray
    rows: Ragged
    content: Ragged

    def take(self, values: np.ndarray) -> np.ndarray:
        """A column laid out at input_ids' flat offsets, cut like input_ids."""
        return values.take(self.index)


def window_template(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The special tokens the tokenizer puts before and after one sequence; none when they
    cannot be read off the tokenizer."""
    try:
        return single_template(tokenizer)
    except (ValueError, TypeError, KeyError):
        return (), ()


def crop_rows(
    ids: Ragged,
    content: Ragged,
    max_length: int,
    template: tuple[tuple[int, ...], tuple[int, ...]],
    key_words: Callable[[], np.ndarray],
    keyed: bool,
    token_types: np.ndarray | None = None,
    pair_column: str | None = None,
) -> Crop:
    """Crop rows (as given, and their content without surplus padding) to `max_length` tokens.
    `key_words` is called only when a row needs a window (the torch-seeded mode draws them)."""
    long = content.lens > max_length
    words = _NO_WORDS
    if long.any():
        _check_not_pairs(content, long, max_length, token_types, pair_column)
        words = key_words()
    prefix, suffix = template
    index, starts, lens, content_starts, content_lens = _core.crop_rows(
        ids.values,
        ids.starts,
        ids.lens,
        content.starts,
        content.lens,
        max_length,
        list(prefix),
        list(suffix),
        words,
        keyed,
    )
    values = ids.values.take(index)
    return Crop(index, Ragged(values, starts, lens), Ragged(values, content_starts, content_lens))


def _check_not_pairs(
    content: Ragged,
    long: np.ndarray,
    max_length: int,
    token_types: np.ndarray | None,
    pair_column: str | None,
) -> None:
    rows = np.flatnonzero(long)
    why = None
    if pair_column is not None:
        row, why = int(rows[0]), f"the batch has a {pair_column!r} column"
    elif token_types is not None:
        # A row holds two segments when its token types change inside its content.
        changes = np.zeros(len(token_types), dtype=np.int64)
        np.cumsum(token_types[1:] != token_types[:-1], out=changes[1:])
        first = content.starts[rows]
        last = first + content.lens[rows] - 1
        mixed = np.flatnonzero(changes[last] != changes[first])
        if mixed.size:
            row, why = int(rows[mixed[0]]), "its token_type_ids hold two segments"
    if why is not None:
        raise ValueError(
            f"row {row} is a sentence pair ({why}) of {int(content.lens[row])} tokens, more than "
            f"max_length={max_length}: pairs are not cropped (a window would cut a sentence "
            f"out of its pair); build pairs of at most {max_length} tokens, e.g. "
            f"SentencePairs(max_seq_length={max_length})"
        )
