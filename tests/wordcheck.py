"""Test helpers: words of a text from its characters, and the words a collator actually uses,
read back from its masks."""

from __future__ import annotations

import numpy as np

from mlmkit.word_boundaries import _is_cjk, _is_punctuation


def char_words(text: str, segmentation: list[str] | None = None) -> list[int]:
    """Word index of every character (-1 for whitespace).

    Without a segmentation: runs of characters that are not whitespace, punctuation or CJK
    ideographs are words, and every punctuation character or ideograph is a word of its own.
    With one: the given consecutive words (whitespace inside them still counts as -1).
    """
    out = [-1] * len(text)
    if segmentation is not None:
        assert "".join(segmentation) == text
        pos = 0
        for w, word in enumerate(segmentation):
            for c in range(pos, pos + len(word)):
                out[c] = -1 if text[c].isspace() else w
            pos += len(word)
        return out
    word, in_run = -1, False
    for c, ch in enumerate(text):
        if ch.isspace():
            in_run = False
        elif _is_punctuation(ch) or _is_cjk(ch):
            word += 1
            out[c] = word
            in_run = False
        else:
            if not in_run:
                word += 1
            out[c] = word
            in_run = True
    return out


def expected_groups(
    offsets: list[tuple[int, int]], maskable: list[bool], words_of_chars: list[int]
) -> list[list[int]]:
    """Token positions grouped into words: tokens covering characters of the same word are in one
    group, a token covering no word character (whitespace, empty offsets) joins the next token's
    group, and non-maskable tokens split groups."""
    covered = [
        sorted({words_of_chars[c] for c in range(s, e) if words_of_chars[c] >= 0})
        for s, e in offsets
    ]
    groups: list[list[int]] = []
    for j, ok in enumerate(maskable):
        if not ok:
            continue
        if j == 0 or not maskable[j - 1]:
            new = True
        else:
            prev, here = covered[j - 1], covered[j]
            new = bool(prev) and (not here or here[0] > prev[-1])
        if new:
            groups.append([j])
        else:
            groups[-1].append(j)
    return groups


def inferred_groups(collator_cls, tokenizer, row: list[int], copies: int = 64, **extra):
    """The words a whole-word collator uses for `row`: positions selected together in every one
    of `copies` differently-keyed rows at mlm_probability 0.5 are one word (two different words
    coincide everywhere with probability 2**-copies). `extra` holds per-row columns."""
    collator = collator_cls(
        tokenizer, whole_word_mask=True, mlm_probability=0.5, seed=1234, return_tensors="np"
    )
    features = [{"input_ids": row, **extra} for _ in range(copies)]
    out = collator(features)
    selected = out["labels"][:, : len(row)] != -100
    ever = selected.any(axis=0)
    groups: list[list[int]] = []
    for j in range(len(row)):
        if not ever[j]:
            continue
        if (
            groups
            and groups[-1][-1] == j - 1
            and np.array_equal(selected[:, j], selected[:, j - 1])
        ):
            groups[-1].append(j)
        else:
            groups.append([j])
    return groups
