"""mlmkit: fast, correct, reproducible masked-language-model data collation for Hugging Face."""

from importlib import metadata as _metadata

from .collator import DataCollatorForLanguageModeling

# Whole-word and span masking.
from .whole_word import DataCollatorForWholeWordMask
from .words import reference_positions, word_starts, word_tables

__all__ = ["DataCollatorForLanguageModeling"]
__all__ += ["DataCollatorForWholeWordMask", "reference_positions", "word_starts", "word_tables"]
__version__ = _metadata.version("mlmkit")

# ---- Fixed-mask evaluation and masking on the device ----
from . import metrics  # noqa: E402
from .callback import FixedMaskPerplexityCallback  # noqa: E402

__all__ += ["FixedMaskPerplexityCallback", "metrics"]

# ---- Training runs: epochs, ranks, resume ----
from .mask_epochs import MaskEpochCallback, install  # noqa: E402

install()  # every Trainer built from now on follows epochs with mlmkit collators
del install
__all__ += ["MaskEpochCallback"]

# ---- Short sequences first ----
from .sequence_length import SequenceLengthSchedule  # noqa: E402

__all__ += ["SequenceLengthSchedule"]

# Corpus preprocessing (issue 4).
from .corpus import load_sentence_corpus  # noqa: E402
from .grouping import GroupTexts  # noqa: E402
from .pairs import SentencePairs  # noqa: E402
from .tokenizing import Tokenize  # noqa: E402

__all__ += ["GroupTexts", "SentencePairs", "load_sentence_corpus", "Tokenize"]

# Masked-LM head at the labelled positions only, for training.
from .sparse_head import sparse_mlm_head  # noqa: E402

__all__ += ["sparse_mlm_head"]
