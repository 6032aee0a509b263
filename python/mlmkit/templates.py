"""The special tokens a tokenizer puts around one sequence or a pair (`[CLS] A [SEP] B [SEP]`,
`<s> A </s></s> B </s>`, ...), read off its post-processor once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_PROBE_A, _PROBE_B = "a", "b"


@dataclass(frozen=True)
class PairTemplate:
    """`prefix A middle B suffix`, with the token type of every part."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    middle_types: tuple[int, ...]
    suffix_types: tuple[int, ...]
    a_type: int
    b_type: int

    @property
    def n_special(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


def _encode(tokenizer: Any, pair: bool) -> tuple[list[int], list[int | None], list[int]]:
    """ids, sequence index (None for special tokens) and token types of a probe encoding."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        enc = (
            backend.encode(_PROBE_A, _PROBE_B, add_special_tokens=True)
            if pair
            else backend.encode(_PROBE_A, add_special_tokens=True)
        )
        # The backend keeps the padding a previous `tokenizer(..., padding=...)` call enabled.
        kept = [k for k, a in enumerate(enc.attention_mask) if a]
        return (
            [enc.ids[k] for k in kept],
            [enc.sequence_ids[k] for k in kept],
            [enc.type_ids[k] for k in kept],
        )
    # Tokenizers without a `tokenizers` backend: locate the probes by their plain encodings.
    args = (_PROBE_A, _PROBE_B) if pair else (_PROBE_A,)
    enc = tokenizer(*args, return_special_tokens_mask=True, return_token_type_ids=True)
    ids = list(enc["input_ids"])
    types = list(enc.get("token_type_ids") or [0] * len(ids))
    plain = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in args]
    seq: list[int | None] = [None] * len(ids)
    at = 0
    for k, probe in enumerate(plain):
        while at < len(ids) and ids[at : at + len(probe)] != probe:
            at += 1
        if at >= len(ids):
            raise ValueError("could not locate the sequences in the tokenizer's encoding")
        seq[at : at + len(probe)] = [k] * len(probe)
        at += len(probe)
    return ids, seq, types


def _split(tokenizer: Any, pair: bool) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """Special tokens (and their types) before, between and after the sequences, and each
    sequence's token type."""
    ids, seq, types = _encode(tokenizer, pair)
    if not any(s == 0 for s in seq) or (pair and not any(s == 1 for s in seq)):
        raise ValueError("could not locate the sequences in the tokenizer's encoding")
    parts: list[list[int]] = [[] for _ in range(3 if pair else 2)]
    part_types: list[list[int]] = [[] for _ in parts]
    seq_types = [0, 0]
    where = 0
    for i, s, t in zip(ids, seq, types, strict=True):
        if s is None:
            parts[where].append(int(i))
            part_types[where].append(int(t))
        else:
            seq_types[s] = int(t)
            where = s + 1
    return parts, part_types, seq_types


def single_template(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Special tokens before and after one sequence, e.g. `([CLS], [SEP])`."""
    parts, _, _ = _split(tokenizer, pair=False)
    return tuple(parts[0]), tuple(parts[1])


def pair_template(tokenizer: Any) -> PairTemplate:
    parts, types, seq_types = _split(tokenizer, pair=True)
    return PairTemplate(
        prefix=tuple(parts[0]),
        middle=tuple(parts[1]),
        suffix=tuple(parts[2]),
        prefix_types=tuple(types[0]),
        middle_types=tuple(types[1]),
        suffix_types=tuple(types[2]),
        a_type=seq_types[0],
        b_type=seq_types[1],
    )
