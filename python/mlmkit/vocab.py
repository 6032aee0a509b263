"""Per-tokenizer tables the kernels need (special-token flags, random-replacement ids) and the
plain text -> token ids call the preprocessing steps share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

RandomTokens = Literal["non_special", "uniform"]


@dataclass(frozen=True)
class TokenizerTables:
    vocab_size: int
    pad_id: int | None  # None: the tokenizer has no pad token (only batches that need no padding)
    pad_is_unique: bool  # the pad id is no other special token (not eos, sep, cls, bos, unk, mask)
    mask_id: int
    is_special: np.ndarray  # uint8, one flag per id
    random_ids: np.ndarray  # int64 ids a selected token may be replaced with
    state: tuple[Any, ...]  # `tokenizer_state` when the tables were built


def token_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens (the steps add their own) and without the
    tokenizer's too-long warning (the steps cut or group long texts themselves)."""
    return tokenizer(
        texts,
        add_special_tokens=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )["input_ids"]


def special_ids(tokenizer: Any) -> set[int]:
    """All special and added-special token ids of a tokenizer."""
    ids = {int(i) for i in tokenizer.all_special_ids if i is not None}
    for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(tok, "special", False):
            ids.add(int(i))
    return ids


def require_token(tokenizer: Any, attr: str, why: str) -> int:
    token_id = optional_token(tokenizer, attr)
    if token_id is None:
        raise ValueError(f"the tokenizer has no {attr.replace('_', ' ')} ({attr} is None): {why}")
    return token_id


def optional_token(tokenizer: Any, attr: str) -> int | None:
    """The id of a special token such as `pad_token`, or None when the tokenizer has none."""
    token_id = getattr(tokenizer, f"{attr}_id", None)
    if getattr(tokenizer, attr, None) is None or token_id is None or int(token_id) < 0:
        return None
    return int(token_id)


_NAMED = ("bos_token", "eos_token", "unk_token", "sep_token", "cls_token", "mask_token")


def tokenizer_state(tokenizer: Any) -> tuple[Any, ...]:
    """A cheap fingerprint of what the tables depend on: the vocabulary size and the special
    tokens. It changes when a pad/mask/special token is set or tokens are added after the
    collator was built, so the tables are rebuilt then and only then."""
    named = getattr(tokenizer, "_special_tokens_map", None)
    extra = getattr(tokenizer, "_extra_special_tokens", None)
    if isinstance(named, dict) and isinstance(extra, list):
        # transformers 5 keeps the special tokens in these two containers (~0.5 us to read);
        # values are kept (not their ids), so equality compares the tokens themselves.
        return (len(tokenizer), tuple(named.values()), tuple(extra))
    return (
        len(tokenizer),
        tuple(sorted(tokenizer.special_tokens_map.items(), key=str)),
        tuple(tokenizer.all_special_ids),
    )


def tokenizer_tables(tokenizer: Any, random_tokens: RandomTokens, mlm: bool) -> TokenizerTables:
    state = tokenizer_state(tokenizer)
    vocab_size = len(tokenizer)
    pad_id = optional_token(tokenizer, "pad_token")
    mask_id = (
        require_token(
            tokenizer, "mask_token", "masked language modelling needs one (or pass mlm=False)"
        )
        if mlm
        else 0
    )
    others = {optional_token(tokenizer, attr) for attr in _NAMED}
    pad_is_unique = pad_id is not None and pad_id not in others
    is_special = np.zeros(vocab_size, dtype=np.uint8)
    pad = set() if pad_id is None else {pad_id}
    specials = [i for i in special_ids(tokenizer) | pad if 0 <= i < vocab_size]
    is_special[specials] = 1
    if random_tokens == "non_special":
        random_ids = np.flatnonzero(is_special == 0).astype(np.int64)
    else:
        random_ids = np.arange(vocab_size, dtype=np.int64)
    return TokenizerTables(
        vocab_size, pad_id, pad_is_unique, mask_id, is_special, random_ids, state
    )
