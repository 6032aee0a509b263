"""Options and per-batch inputs of whole-word and span masking (the kernel is `rust/words.rs`)."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from .batch import Ragged, aligned_values, as_ragged
from .words import WordTables

Masking = Literal["token", "word", "span", "ngram"]
ReplacePer = Literal["word", "token"]

MASKINGS = ("token", "word", "span", "ngram")
MAX_SPAN_WORDS = 512  # rust/words.rs MAX_SPAN_WORDS

# Per-token columns that describe word boundaries; consumed, never passed to the model.
BOUNDARY_COLUMNS = ("word_ids", "chinese_ref")


def resolve_masking(whole_word_mask: bool, masking: str | None, mlm: bool) -> Masking:
    """The masking unit from `whole_word_mask` (transformers' flag) and `masking`."""
    if not isinstance(whole_word_mask, bool):
        raise TypeError(f"whole_word_mask must be a bool, got {type(whole_word_mask).__name__}")
    if masking is None:
        resolved = "word" if whole_word_mask else "token"
    elif masking not in MASKINGS:
        raise ValueError(f"masking must be one of {MASKINGS}, got {masking!r}")
    elif whole_word_mask and masking == "token":
        raise ValueError("whole_word_mask=True contradicts masking='token'")
    else:
        resolved = masking
    if resolved != "token" and not mlm:
        raise ValueError(f"masking={resolved!r} (whole words) needs mlm=True")
    return resolved  # type: ignore[return-value]


def check_span_options(
    replace_per: Any, span_geometric_p: Any, max_span_length: Any, max_ngram: Any
) -> None:
    if replace_per not in ("word", "token"):
        raise ValueError(f"replace_per must be 'word' or 'token', got {replace_per!r}")
    if (
        isinstance(span_geometric_p, bool)
        or not isinstance(span_geometric_p, numbers.Real)
        or not 0.0 < span_geometric_p <= 1.0
    ):
        raise ValueError(f"span_geometric_p must be a number in (0, 1], got {span_geometric_p!r}")
    for name, value in (("max_span_length", max_span_length), ("max_ngram", max_ngram)):
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Integral)
            or not 1 <= value <= MAX_SPAN_WORDS
        ):
            raise ValueError(f"{name} must be an integer in [1, {MAX_SPAN_WORDS}], got {value!r}")


def continuation_flags(rows: Any, ids: Ragged) -> np.ndarray:
    """uint8 flags at input_ids' flat offsets from per-row reference positions."""
    refs = as_ragged(rows, "chinese_ref")
    if len(refs.lens) != len(ids.lens):
        raise ValueError(f"chinese_ref has {len(refs.lens)} rows but input_ids has {len(ids.lens)}")
    row = np.repeat(np.arange(len(refs.lens)), refs.lens)
    pos = refs.values.astype(np.int64)
    bad = np.flatnonzero((pos < 0) | (pos >= ids.lens[row]))
    if bad.size:
        i = int(bad[0])
        r = int(row[i])
        raise ValueError(
            f"chinese_ref row {r} has position {int(pos[i])}, outside its input_ids row of "
            f"{int(ids.lens[r])} tokens"
        )
    flags = np.zeros(len(ids.values), dtype=np.uint8)
    flags[ids.starts[row] + pos] = 1
    return flags


def word_arguments(
    cols: dict[str, Any],
    ids: Ragged,
    masking: Masking,
    replace_per: ReplacePer,
    span_geometric_p: float,
    max_span_length: int,
    max_ngram: int,
    tables: Callable[[], WordTables],
) -> dict[str, Any]:
    """The `words` argument of `_core.collate_batch` for one batch, at input_ids' flat offsets
    (`ids` are the rows as given, before surplus padding is left out).

    Boundaries come from a `word_ids` column when the batch has one, else from the tokenizer's
    tables (built by `tables()`, which raises when the family cannot be detected), merged by a
    `chinese_ref` column of continuation positions when present.
    """
    word_ids = cols.get("word_ids")
    refs = cols.get("chinese_ref")
    if word_ids is not None and refs is not None:
        raise ValueError(
            "the batch has both 'word_ids' and 'chinese_ref': give word boundaries one way"
        )
    args: dict[str, Any] = {
        "units": masking,
        "replace": replace_per,
        "starts_word": None,
        "ends_word": None,
        "continuation": None,
        "word_ids": None,
        "span_geometric_p": float(span_geometric_p),
        "max_span_length": int(max_span_length),
        "max_ngram": int(max_ngram),
    }
    if word_ids is not None:
        values = aligned_values(word_ids, "word_ids", ids, none=-1)
        args["word_ids"] = np.ascontiguousarray(values, dtype=np.int64)
        return args
    t = tables()
    args["starts_word"] = t.starts_word
    args["ends_word"] = t.ends_word
    if refs is not None:
        args["continuation"] = continuation_flags(refs, ids)
    return args
