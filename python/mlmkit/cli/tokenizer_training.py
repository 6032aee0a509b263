"""Training a BERT-style tokenizer (WordPiece, BPE or Unigram) on the corpus with `tokenizers`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TokenizerType = Literal["wordpiece", "bpe", "unigram"]
TOKENIZER_TYPES = ("wordpiece", "bpe", "unigram")


def normalizer(lowercase: bool, strip_accents: bool) -> Any:
    """BERT's text cleaning and CJK spacing, then optional lowercasing and accent stripping.

    Accents are stripped as NFD -> StripAccents -> NFC: BERT's own normalizer stops after the
    first two steps, which leaves Hangul syllables decomposed into jamo (이 -> ᄋ + ᅵ); NFC puts
    them back together, while the Latin letters have already lost their accents.
    """
    from tokenizers import normalizers

    steps: list[normalizers.Normalizer] = [
        normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
        )
    ]
    if lowercase:
        steps.append(normalizers.Lowercase())
    if strip_accents:
        steps += [normalizers.NFD(), normalizers.StripAccents(), normalizers.NFC()]
    return normalizers.Sequence(steps)


def train_tokenizer(
    texts: Iterable[list[str]],
    kind: TokenizerType = "wordpiece",
    vocab_size: int = 8192,
    lowercase: bool = True,
    strip_accents: bool = True,
    min_frequency: int = 2,
    model_max_length: int = 512,
    length: int | None = None,
) -> Any:
    """Train on `texts` (batches of strings) and wrap as a `PreTrainedTokenizerFast` with
    `[PAD] [UNK] [CLS] [SEP] [MASK]` and the `[CLS] A [SEP] (B [SEP])` template.

    WordPiece uses BERT's pre-tokenizer (whitespace and punctuation) and `##` continuations;
    BPE is byte-level (RoBERTa-style `Ġ` word starts); Unigram uses SentencePiece's `▁`
    (Metaspace), so mlmkit's whole-word masking recognises word starts in all three.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        trainer: Any = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIAL_TOKENS,
            continuing_subword_prefix="##",
        )
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="[UNK]"
        )
    else:
        raise ValueError(f"tokenizer type must be one of {TOKENIZER_TYPES}, got {kind!r}")
    tok.normalizer = normalizer(lowercase, strip_accents)
    tok.train_from_iterator(_strings(texts), trainer=trainer, length=length)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _strings(batches: Iterable[list[str]]) -> Iterator[str]:
    for batch in batches:
        yield from batch
