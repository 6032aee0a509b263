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
    pad_id: int
    mask_id: int
    is_special: np.ndarray  # uint8, one flag per id
    random_ids: np.ndarray  # int64 ids a selected token may be replaced with


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
    token_id = getattr(tokenizer, f"{attr}_id", None)
    if getattr(tokenizer, attr, None) is None or token_id is None:
        raise ValueError(f"the tokenizer has no {attr.replace('_', ' ')} ({attr} is None): {why}")
    return int(token_id)


def tokenizer_tables(tokenizer: Any, random_tokens: RandomTokens, mlm: bool) -> TokenizerTables:
    vocab_size = len(tokenizer)
    pad_id = require_token(
        tokenizer,
        "pad_token",
        "it is needed to pad batches; set one, e.g. tokenizer.pad_token = tokenizer.eos_token",
    )
    mask_id = (
        require_token(
            tokenizer, "mask_token", "masked language modelling needs one (or pass mlm=False)"
        )
        if mlm
        else 0
    )
    is_special = np.zeros(vocab_size, dtype=np.uint8)
    specials = [i for i in special_ids(tokenizer) | {pad_id} if 0 <= i < vocab_size]
    is_special[specials] = 1
    if random_tokens == "non_special":
        random_ids = np.flatnonzero(is_special == 0).astype(np.int64)
    else:
        random_ids = np.arange(vocab_size, dtype=np.int64)
    return TokenizerTables(vocab_size, pad_id, mask_id, is_special, random_ids)
