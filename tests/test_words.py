"""Word boundaries from token ids: family detection, per-vocabulary tables, and the words the
collator actually uses on English, Korean and Chinese text with real tokenizers of the three
families."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest

import mlmkit
from mlmkit import DataCollatorForLanguageModeling
from mlmkit.word_boundaries import detect_family, reference_positions, word_starts, word_tables

from .wordcheck import char_words, expected_groups, inferred_groups

ENGLISH = "Hello, world! State-of-the-art (really) tokenizers split words.\nNew  line don't 2024"
KOREAN = "이순신은 조선 중기의 무신이다."
CHINESE = "我喜欢你。今天天气很好。北京是中国的首都。"
CHINESE_WORDS = ["我", "喜欢", "你", "。", "今天", "天气", "很", "好", "。"]
CHINESE_WORDS += ["北京", "是", "中国", "的", "首都", "。"]


def maskable_of(tokenizer, ids):
    specials = set(tokenizer.all_special_ids)
    return [i not in specials for i in ids]


def table_entry(tokenizer, token):
    tables = word_tables(tokenizer)
    i = tokenizer.convert_tokens_to_ids(token)
    assert tokenizer.convert_ids_to_tokens(i) == token, f"{token!r} is not in the vocabulary"
    return int(tables.starts_word[i]), int(tables.ends_word[i])


def test_families_are_detected(bert_tokenizer, bpe_tokenizer, unigram_tokenizer):
    assert detect_family(bert_tokenizer) == ("wordpiece", "##")
    assert detect_family(bpe_tokenizer) == ("byte_level", "Ġ")
    assert detect_family(unigram_tokenizer) == ("metaspace", "▁")


def test_wordpiece_table(bert_tokenizer):
    tok = bert_tokenizer
    assert table_entry(tok, "hello") == (1, 0)
    assert table_entry(tok, "##ization") == (0, 0)
    assert table_entry(tok, ",") == (1, 1)
    assert table_entry(tok, "中") == (1, 1)
    assert table_entry(tok, "##：") == (1, 1)  # a punctuation piece is a word even after ##
    tables = word_tables(tok)
    assert tables.starts_word.shape == (len(tok),) and tables.starts_word.dtype == np.uint8
    for i, t in enumerate(tok.convert_ids_to_tokens(range(len(tok)))):
        if tables.starts_word[i] == 0:
            assert t.startswith("##"), t
        if t.startswith("##") and t[2:].isalnum() and t[2:].isascii():
            assert tables.starts_word[i] == 0, t


def test_byte_level_table(bpe_tokenizer):
    tok = bpe_tokenizer
    assert table_entry(tok, "Ġworld") == (1, 0)
    assert table_entry(tok, "ew") == (0, 0)
    assert table_entry(tok, ",") == (1, 1)
    assert table_entry(tok, "Ċ") == (1, 2)  # a newline belongs to the next word
    assert table_entry(tok, "Ġ") == (1, 2)
    first, second = tok.tokenize("我喜欢你")
    # 我 + the first bytes of 喜, then the last byte of 喜 + 欢你: no boundary inside 喜.
    assert table_entry(tok, first) == (1, 0)
    assert table_entry(tok, second) == (0, 1)


def test_metaspace_table(unigram_tokenizer):
    tok = unigram_tokenizer
    assert table_entry(tok, "▁") == (1, 2)
    assert table_entry(tok, "我") == (1, 1)
    assert table_entry(tok, "▁wor") == (1, 0)
    assert table_entry(tok, "ld") == (0, 0)
    assert table_entry(tok, "이") == (0, 0)  # hangul is written with spaces: no boundary


def test_tables_are_cached_and_read_only(bert_tokenizer):
    a = word_tables(bert_tokenizer)
    assert word_tables(bert_tokenizer) is a
    with pytest.raises(ValueError):
        a.starts_word[0] = 0


def _check_text(collator_cls, tokenizer, text, segmentation=None):
    enc = tokenizer(text, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    maskable = maskable_of(tokenizer, ids)
    want = expected_groups(offsets, maskable, char_words(text, segmentation))
    extra = {}
    if segmentation is not None:
        extra["chinese_ref"] = reference_positions(offsets, word_starts(segmentation))
    got = inferred_groups(collator_cls, tokenizer, ids, **extra)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert [[tokens[j] for j in g] for g in got] == [[tokens[j] for j in g] for g in want]
    return [[tokens[j] for j in g] for g in got]


def test_english_words(any_tokenizer):
    groups = _check_text(DataCollatorForLanguageModeling, any_tokenizer, ENGLISH)
    flat = ["".join(g).replace("##", "").replace("Ġ", "").replace("▁", "") for g in groups]
    assert "," in flat and "!" in flat and "(" in flat  # punctuation is never glued to a word


def test_english_words_wordpiece_exactly(bert_tokenizer):
    groups = _check_text(DataCollatorForLanguageModeling, bert_tokenizer, "Hello, unbelievable!")
    assert groups == [["hello"], [","], ["unbelievable"], ["!"]] or groups == [
        ["hello"],
        [","],
        ["un", "##bel", "##ie", "##vable"],
        ["!"],
    ]


def test_korean_words_are_whole(any_tokenizer):
    groups = _check_text(DataCollatorForLanguageModeling, any_tokenizer, KOREAN)
    # Four space-separated words and the final full stop (WordPiece pieces are jamo: recompose).
    texts = [
        unicodedata.normalize("NFC", any_tokenizer.convert_tokens_to_string(g)).replace(" ", "")
        for g in groups
    ]
    assert texts == ["이순신은", "조선", "중기의", "무신이다", "."]


def test_chinese_without_references_is_one_word_per_character(bert_tokenizer, unigram_tokenizer):
    for tok in (bert_tokenizer, unigram_tokenizer):
        groups = _check_text(DataCollatorForLanguageModeling, tok, CHINESE)
        assert all(len(g) == 1 or g[0] == "▁" for g in groups)


def test_chinese_with_references(any_tokenizer):
    groups = _check_text(DataCollatorForLanguageModeling, any_tokenizer, CHINESE, CHINESE_WORDS)
    if any_tokenizer.backend_tokenizer.model.__class__.__name__ == "Unigram":
        texts = [any_tokenizer.convert_tokens_to_string(g).strip() for g in groups]
        assert texts[:5] == ["我", "喜欢", "你", "。", "今天"]


def test_word_ids_column_gives_the_words(bpe_tokenizer):
    enc = bpe_tokenizer(ENGLISH)
    word_ids = enc.word_ids()
    got = inferred_groups(
        DataCollatorForLanguageModeling, bpe_tokenizer, enc["input_ids"], word_ids=word_ids
    )
    want: list[list[int]] = []
    for j, w in enumerate(word_ids):
        if w is None:
            continue
        if want and word_ids[j - 1] == w:
            want[-1].append(j)
        else:
            want.append([j])
    assert got == want


def test_chunks_may_start_mid_word(any_tokenizer):
    text = " ".join([ENGLISH, KOREAN, "unbelievably tokenized encyclopedias"] * 3)
    ids = any_tokenizer(text, add_special_tokens=False)["input_ids"]
    full = inferred_groups(DataCollatorForLanguageModeling, any_tokenizer, ids)
    tables = word_tables(any_tokenizer)
    mid = next(j for j in range(5, len(ids)) if tables.starts_word[ids[j]] == 0)
    chunk = ids[mid : mid + 40]
    got = inferred_groups(DataCollatorForLanguageModeling, any_tokenizer, chunk)
    want = [[j - mid for j in g if mid <= j < mid + 40] for g in full]
    assert got == [g for g in want if g]


def test_other_families_are_detected():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["hello world, tokenizers split words", "unbelievable words"] * 20
    # Classic BPE with an end-of-word suffix.
    tok = Tokenizer(models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(vocab_size=80, special_tokens=["[UNK]"], end_of_word_suffix="</w>"),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    assert detect_family(fast) == ("end_of_word_suffix", "</w>")
    tables = word_tables(fast)
    for t in fast.tokenize("unbelievable hello"):
        i = fast.convert_tokens_to_ids(t)
        assert tables.ends_word[i] == int(t.endswith("</w>"))
    # Llama-style SentencePiece BPE: no pre-tokenizer, spaces replaced by a normalizer.
    tok = Tokenizer(models.BPE(unk_token="[UNK]", byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=80, special_tokens=["[UNK]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    assert detect_family(fast) == ("metaspace", "▁")


def _word_level_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[MASK]": 1, "[UNK]": 2, "hello": 3, "world": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", mask_token="[MASK]", unk_token="[UNK]"
    )


def test_undetectable_family_needs_word_ids():
    tok = _word_level_tokenizer()
    assert detect_family(tok) is None
    with pytest.raises(ValueError, match="word_ids"):
        word_tables(tok)
    collator = mlmkit.DataCollatorForLanguageModeling(tok, whole_word_mask=True, seed=0)
    with pytest.raises(ValueError, match="cannot find word boundaries.*WordLevel"):
        collator([{"input_ids": [3, 4, 3]}])
    out = collator([{"input_ids": [3, 4, 3], "word_ids": [0, 0, 1]}])
    assert out["input_ids"].shape == (1, 3) and "word_ids" not in out


def test_reference_positions_helper():
    offsets = [(0, 0), (0, 1), (1, 2), (2, 3), (3, 5), (0, 0)]
    assert reference_positions(offsets, word_starts(["我", "喜欢", "你们"])) == [3]
    assert word_starts(["ab", "c", "de"]) == [0, 2, 3]
