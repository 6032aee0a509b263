"""`mlmkit fill-mask`: the most likely tokens at each mask of a text, and the held-out examples
that `pretrain` / `adapt` print at the end."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import CliError

_WORD = re.compile(r"[^\W\d_]{4,}")


@dataclass
class Prediction:
    token: str
    score: float


def fill_mask(model: Any, tokenizer: Any, text: str, top_k: int = 5) -> list[list[Prediction]]:
    """Top-k predictions (token, probability) at every mask token of `text`, left to right."""
    import torch

    from mlmkit.metrics import mlm_logits

    mask = tokenizer.mask_token
    if mask not in text:
        raise CliError(f"the text has no mask token: write {mask} where a word should be predicted")
    enc = tokenizer(text, return_tensors="pt", truncation=True)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    positions = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
    if len(positions) == 0:
        raise CliError("the mask token was cut off: the text is longer than the model's maximum")
    with torch.no_grad():
        logits = mlm_logits(model(**enc))[0, positions].float()
    probs = logits.softmax(-1)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    return [
        [
            Prediction(tokenizer.decode([i]).strip(), float(p))
            for i, p in zip(ids.tolist(), ps.tolist(), strict=True)
        ]
        for ids, ps in zip(top.indices, top.values, strict=True)
    ]


def format_predictions(predictions: list[Prediction]) -> str:
    return ", ".join(f"{p.token} ({p.score:.2f})" for p in predictions)


# Plain prose: a capital first letter, words, commas, a final period (no code, markup or symbols).
_PROSE = re.compile(r"[A-Z][A-Za-z' ,;-]+\.")


def held_out_examples(
    documents: Any, tokenizer: Any, n: int = 5, min_words: int = 6, max_words: int = 20
) -> list[tuple[str, str]]:
    """`n` (sentence with one word masked, that word) from held-out documents: plain-prose
    sentences of `min_words`..`max_words` words; the masked word is the alphabetic word of 4+
    letters nearest the middle that the tokenizer keeps as one token (so one prediction can get
    it right), a different word each time."""
    examples: list[tuple[str, str]] = []
    seen_words: set[str] = set()
    for doc in documents:
        for sentence in doc:
            if len(examples) >= n:
                return examples
            if not min_words <= len(sentence.split()) <= max_words or not _PROSE.fullmatch(
                sentence
            ):
                continue
            middle = len(sentence) / 2
            for m in sorted(_WORD.finditer(sentence), key=lambda m: abs(m.start() - middle)):
                word = m.group()
                ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
                if len(ids) == 1 and word.lower() not in seen_words:
                    masked = sentence[: m.start()] + tokenizer.mask_token + sentence[m.end() :]
                    examples.append((masked, tokenizer.decode(ids).strip()))
                    seen_words.add(word.lower())
                    break
    return examples
