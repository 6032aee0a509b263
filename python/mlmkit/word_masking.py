"""Options of whole-word and span masking (the kernel is `rust/words.rs`; a batch's word
boundaries are read with its other columns, `batch.columns`)."""

from __future__ import annotations

from typing import Any, Literal

from . import _core, validation

Masking = Literal["token", "word", "span", "ngram"]
ReplacePer = Literal["word", "token"]

MASKINGS: tuple[Masking, ...] = ("token", "word", "span", "ngram")
REPLACE_PER: tuple[ReplacePer, ...] = ("word", "token")


def resolve_masking(whole_word_mask: bool, masking: str | None, mlm: bool) -> Masking:
    """The masking unit from `whole_word_mask` (transformers' flag) and `masking`."""
    if not isinstance(whole_word_mask, bool):
        raise TypeError(f"whole_word_mask must be a bool, got {type(whole_word_mask).__name__}")
    resolved: Masking
    if masking is None:
        resolved = "word" if whole_word_mask else "token"
    else:
        resolved = validation.one_of("masking", masking, MASKINGS)
        if whole_word_mask and resolved == "token":
            raise ValueError("whole_word_mask=True contradicts masking='token'")
    if resolved != "token" and not mlm:
        raise ValueError(f"masking={resolved!r} (whole words) needs mlm=True")
    return resolved


def check_span_options(
    replace_per: Any, span_geometric_p: Any, max_span_length: Any, max_ngram: Any
) -> None:
    validation.one_of("replace_per", replace_per, REPLACE_PER)
    validation.fraction("span_geometric_p", span_geometric_p)
    for name, value in (("max_span_length", max_span_length), ("max_ngram", max_ngram)):
        validation.integer_in(name, value, 1, _core.MAX_SPAN_WORDS)
