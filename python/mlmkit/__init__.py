"""mlmkit: fast, correct, reproducible masked-language-model data collation for Hugging Face."""

from importlib import metadata as _metadata

from . import metrics
from .collator import DataCollatorForLanguageModeling, DataCollatorForWholeWordMask
from .corpus import load_sentence_corpus
from .fixed_mask_perplexity import FixedMaskPerplexityCallback
from .grouping import GroupTexts
from .mask_epochs import MaskEpochCallback, install
from .pairs import SentencePairs
from .sequence_length import SequenceLengthSchedule
from .sparse_head import sparse_mlm_head
from .tokenizing import Tokenize
from .word_boundaries import reference_positions, word_starts, word_tables

__version__ = _metadata.version("mlmkit")

install()  # every Trainer built from now on follows epochs with mlmkit collators
del install

__all__ = [
    "DataCollatorForLanguageModeling",
    "DataCollatorForWholeWordMask",
    "FixedMaskPerplexityCallback",
    "GroupTexts",
    "MaskEpochCallback",
    "SentencePairs",
    "SequenceLengthSchedule",
    "Tokenize",
    "load_sentence_corpus",
    "metrics",
    "reference_positions",
    "sparse_mlm_head",
    "word_starts",
    "word_tables",
]
