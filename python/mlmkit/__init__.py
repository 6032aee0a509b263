"""mlmkit: fast, correct, reproducible masked-language-model data collation for Hugging Face."""

from .collator import DataCollatorForLanguageModeling

__all__ = ["DataCollatorForLanguageModeling"]
__version__ = "0.1.0"
