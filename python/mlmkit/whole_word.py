"""`DataCollatorForWholeWordMask`: transformers 4.x's name and arguments, which transformers 5
removed, on top of mlmkit's whole-word masking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from .collator import DataCollatorForLanguageModeling


@dataclass(init=False)
class DataCollatorForWholeWordMask(DataCollatorForLanguageModeling):
    """Drop-in for transformers 4.x `DataCollatorForWholeWordMask`.

    Positional and keyword arguments are 4.x's. Like 4.x it masks `round(mlm_probability * n)`
    tokens of whole words per row (at most 512, words that would overflow are skipped) and decides
    80/10/10 per token; `chinese_ref` columns are honoured. Unlike 4.x, word boundaries come from
    the token ids for every tokenizer family (not only `##` pieces), special tokens are never
    masked, and any `DataCollatorForLanguageModeling` option can be passed by keyword (e.g.
    `mask_count="bernoulli", replace_per="word", max_predictions=None`).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        mlm: bool = True,
        mlm_probability: float = 0.15,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        pad_to_multiple_of: int | None = None,
        tf_experimental_compile: bool = False,
        return_tensors: str = "pt",
        seed: int | None = None,
        **options: Any,
    ) -> None:
        if tf_experimental_compile:
            raise ValueError("tf_experimental_compile is not supported (mlmkit returns pt or np)")
        options.setdefault("whole_word_mask", True)
        options.setdefault("mask_count", "exact")
        options.setdefault("max_predictions", 512)
        options.setdefault("replace_per", "token")
        super().__init__(
            tokenizer=tokenizer,
            mlm=mlm,
            mlm_probability=mlm_probability,
            mask_replace_prob=mask_replace_prob,
            random_replace_prob=random_replace_prob,
            pad_to_multiple_of=pad_to_multiple_of,
            return_tensors=return_tensors,
            seed=seed,
            **options,
        )
