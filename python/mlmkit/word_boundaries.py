"""Word boundaries from token ids alone: two per-vocabulary tables computed once per tokenizer.

Position `j` of a row starts a word when it is the row's first content token, when the token
before it is special, or when `starts_word[t[j]] == 1 or ends_word[t[j-1]] == ENDS_WORD_BREAK`,
unless `ends_word[t[j-1]] == ENDS_WORD_JOIN` (see `rust/words.rs`). The tables come from the
tokenizer family, detected from the fast tokenizer's backend:

* WordPiece (BERT): a token without the model's `continuing_subword_prefix` (`##`) starts a word;
* byte-level BPE (GPT-2, RoBERTa): a token whose first byte is a space (`Ġ`) or other whitespace
  starts a word;
* SentencePiece / Metaspace (ALBERT, XLM-R, T5, Llama): a token starting with `▁` starts a word;
* BPE with an `end_of_word_suffix` (`</w>`): a token with the suffix ends a word.

On top of the family rule, punctuation characters and CJK ideographs are words of their own: a
token whose first character is one starts a word, a token whose last character is one ends a word
(`ends_word = ENDS_WORD_BREAK`). So "hello," is two words and an unsegmented Chinese sentence is
one word per character unless reference positions merge characters into words. A whitespace-only
token (`▁`, `Ġ`, a newline) belongs to the word after it (`ends_word = ENDS_WORD_JOIN`). A
byte-level token that begins or ends inside a UTF-8 character opens no boundary on that side.
Added (non-special) tokens are words of their own.

In text terms: a word is a maximal run of characters that are not whitespace, punctuation or CJK
ideographs, or a single punctuation character or ideograph; whitespace belongs to the word after
it; words that share a token are merged (a token is never split).
"""

from __future__ import annotations

import json
import unicodedata
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ._core import ENDS_WORD_BREAK, ENDS_WORD_JOIN, ENDS_WORD_NONE

Family = Literal["wordpiece", "byte_level", "metaspace", "end_of_word_suffix"]


@dataclass(frozen=True)
class WordTables:
    family: Family
    marker: str  # continuation prefix, space marker or end-of-word suffix
    starts_word: np.ndarray  # uint8 per id: 1 if the token starts a word
    ends_word: np.ndarray  # uint8 per id: ENDS_WORD_NONE, ENDS_WORD_BREAK or ENDS_WORD_JOIN


def _is_punctuation(ch: str) -> bool:
    """BERT's definition: ASCII symbols and Unicode P* categories."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_cjk(ch: str) -> bool:
    """BERT's CJK ideograph blocks (not kana or hangul, which are written with spaces or need
    a segmenter)."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _gpt2_byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's `bytes_to_unicode`: the character standing for each byte."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _components(state: bytes | str | None, key: str) -> list[dict[str, Any]]:
    """The component dicts of a serialised pre-tokenizer / normalizer, Sequences flattened."""
    if not state:
        return []
    node = json.loads(state)
    out: list[dict[str, Any]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if item is None:
            continue
        if item.get("type") == "Sequence":
            stack.extend(reversed(item.get(key, [])))
        else:
            out.append(item)
    return out


def detect_family(tokenizer: Any) -> tuple[Family, str] | None:
    """The word-boundary family of a fast tokenizer and its marker, or None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    model = backend.model
    kind = type(model).__name__
    if kind == "WordPiece":
        prefix = model.continuing_subword_prefix
        return ("wordpiece", prefix) if prefix else None
    pre = _components(
        backend.pre_tokenizer.__getstate__() if backend.pre_tokenizer else None, "pretokenizers"
    )
    types = {c.get("type"): c for c in pre}
    if "ByteLevel" in types:
        return ("byte_level", "Ġ")
    if "Metaspace" in types:
        return ("metaspace", types["Metaspace"].get("replacement", "▁"))
    norm = _components(
        backend.normalizer.__getstate__() if backend.normalizer else None, "normalizers"
    )
    for c in norm:
        if c.get("type") == "Prepend" and c.get("prepend"):
            return ("metaspace", c["prepend"])
        if c.get("type") == "Replace" and c.get("pattern", {}).get("String") == " ":
            return ("metaspace", c.get("content", "▁"))
    if kind == "BPE":
        if getattr(model, "continuing_subword_prefix", None):
            return ("wordpiece", model.continuing_subword_prefix)
        if getattr(model, "end_of_word_suffix", None):
            return ("end_of_word_suffix", model.end_of_word_suffix)
    return None


def describe_backend(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return f"{type(tokenizer).__name__} (not a fast tokenizer)"
    return (
        f"{type(tokenizer).__name__} with model {type(backend.model).__name__} and "
        f"pre-tokenizer {backend.pre_tokenizer!r}"
    )


_WHITESPACE = b" \t\n\r\x0b\x0c"


def _utf8_parts(data: bytes) -> tuple[bool, str, bool]:
    """(begins at a character boundary, the complete characters, ends at one)."""
    lead = 0
    while lead < len(data) and 0x80 <= data[lead] <= 0xBF:
        lead += 1
    end = len(data)
    # Drop an incomplete multi-byte sequence at the end.
    k = end - 1
    while k >= lead and 0x80 <= data[k] <= 0xBF and end - k < 4:
        k -= 1
    if k >= lead and data[k] >= 0xC0:
        need = 2 if data[k] < 0xE0 else 3 if data[k] < 0xF0 else 4
        if end - k < need:
            end = k
    return lead == 0, data[lead:end].decode("utf-8", errors="ignore"), end == len(data)


def _alone(ch: str) -> bool:
    """A character that is a word by itself."""
    return _is_punctuation(ch) or _is_cjk(ch)


def _byte_fallback(token: str) -> bytes | None:
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        try:
            return bytes([int(token[3:5], 16)])
        except ValueError:
            return None
    return None


def _token_bytes(token: str, family: Family, marker: str, decoder: dict[str, int]) -> bytes:
    if family == "byte_level":
        if all(c in decoder for c in token):
            return bytes(decoder[c] for c in token)
        return token.encode()
    if family == "metaspace":
        raw = _byte_fallback(token)
        return raw if raw is not None else token.replace(marker, " ").encode()
    if family == "end_of_word_suffix" and token.endswith(marker):
        return token[: -len(marker)].encode()
    if family == "wordpiece" and token.startswith(marker):
        return token[len(marker) :].encode()
    return token.encode()


_CACHE: weakref.WeakKeyDictionary[Any, WordTables] = weakref.WeakKeyDictionary()


def word_tables(tokenizer: Any) -> WordTables:
    """`starts_word` / `ends_word` for every id of `tokenizer` (ValueError when its family cannot
    be detected). Cached per tokenizer object while its vocabulary size stays the same."""
    try:
        cached = _CACHE.get(tokenizer)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None and len(cached.starts_word) == len(tokenizer):
        return cached
    tables = _build_tables(tokenizer)
    try:
        _CACHE[tokenizer] = tables
    except TypeError:
        pass
    return tables


def _build_tables(tokenizer: Any) -> WordTables:
    found = detect_family(tokenizer)
    if found is None:
        raise ValueError(
            "cannot find word boundaries from token ids for "
            f"{describe_backend(tokenizer)}: whole-word and span masking detect WordPiece, "
            "byte-level BPE and SentencePiece/Metaspace fast tokenizers. For another tokenizer, "
            "add a 'word_ids' column (e.g. `encoding.word_ids()`, None or -1 for special tokens) "
            "and keep it in the batch (Trainer: remove_unused_columns=False)"
        )
    family, marker = found
    vocab_size = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    decoder = _gpt2_byte_decoder() if family == "byte_level" else {}
    starts = np.ones(vocab_size, dtype=np.uint8)
    ends = np.full(vocab_size, ENDS_WORD_NONE, dtype=np.uint8)
    for i, token in enumerate(tokens):
        if not token:
            continue
        data = _token_bytes(token, family, marker, decoder)
        begins, text, finishes = _utf8_parts(data)
        if family == "wordpiece":
            family_start = not token.startswith(marker)
        elif family == "end_of_word_suffix":
            family_start = False
        else:
            family_start = bool(data) and data[0] in _WHITESPACE
        starts[i] = family_start or (begins and bool(text) and _alone(text[0]))
        if begins and finishes and text and text.isspace():
            ends[i] = ENDS_WORD_JOIN
        elif (finishes and bool(text) and _alone(text[-1])) or (
            family == "end_of_word_suffix" and token.endswith(marker)
        ):
            ends[i] = ENDS_WORD_BREAK
    for i, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if 0 <= int(i) < vocab_size and not getattr(added, "special", False):
            starts[int(i)] = 1
            ends[int(i)] = ENDS_WORD_BREAK
    starts.setflags(write=False)
    ends.setflags(write=False)
    return WordTables(family, marker, starts, ends)


def reference_positions(
    offset_mapping: Sequence[Sequence[int]] | np.ndarray, word_starts: Iterable[int]
) -> list[int]:
    """Positions of the tokens that continue a word (transformers' `chinese_ref`).

    `offset_mapping` is a row's `(start, end)` character offsets (`return_offsets_mapping=True`),
    `word_starts` the character offsets where a segmenter's words begin. A token continues a word
    when it has characters and its first one is not a word start; special tokens ((0, 0)
    offsets) never do.
    """
    offsets = np.asarray(offset_mapping, dtype=np.int64).reshape(-1, 2)
    starts = np.fromiter(word_starts, dtype=np.int64)
    has_text = offsets[:, 1] > offsets[:, 0]
    return np.flatnonzero(has_text & ~np.isin(offsets[:, 0], starts)).tolist()


def word_starts(words: Iterable[str]) -> list[int]:
    """Character offsets where the given consecutive words (e.g. `jieba.cut(text)`) begin."""
    out, pos = [], 0
    for w in words:
        out.append(pos)
        pos += len(w)
    return out
