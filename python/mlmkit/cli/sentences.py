"""Splitting prose into paragraphs and sentences (for NSP/SOP pairs and the held-out examples)."""

from __future__ import annotations

import re

# A sentence ends at . ! ? followed by space and anything but a lowercase Latin letter (so
# "e.g. the" and "i.e. a" stay whole), or at CJK full stops.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?![a-z])|(?<=[。！？])\s*")
_SPACE = re.compile(r"\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph, whitespace collapsed; empty pieces dropped."""
    text = _SPACE.sub(" ", text).strip()
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]
