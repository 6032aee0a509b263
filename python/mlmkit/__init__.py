"""mlmkit: fast, correct, reproducible masked-language-model data collation for Hugging Face."""

from .collator import DataCollatorForLanguageModeling

# Whole-word and span masking.
from .whole_word import DataCollatorForWholeWordMask
from .words import reference_positions, word_starts, word_tables

__all__ = ["DataCollatorForLanguageModeling"]
__all__ += ["DataCollatorForWholeWordMask", "reference_positions", "word_starts", "word_tables"]
__version__ = "0.1.0"

# ---- Fixed-mask evaluation and masking on the device ----
from . import metrics  # noqa: E402
from .callback import FixedMaskPerplexityCallback  # noqa: E402

__all__ += ["FixedMaskPerplexityCallback", "metrics"]

# Corpus preprocessing (issue 4).
from .corpus import load_sentence_corpus  # noqa: E402
from .grouping import GroupTexts  # noqa: E402
from .pairs import SentencePairs  # noqa: E402

__all__ += ["GroupTexts", "SentencePairs", "load_sentence_corpus"]

# Masked-LM head at the labelled positions only, for training.
from .sparse_head import sparse_mlm_head  # noqa: E402

__all__ += ["sparse_mlm_head"]
