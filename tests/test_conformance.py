"""Drop-in conformance: the same inputs through transformers' collator and mlmkit's give the same
`input_ids`, `attention_mask` and `labels` (and every other column transformers returns) under
deterministic settings: no masking (`mlm=False`), `mlm_probability` 0, and `mlm_probability` 1
with every selected token replaced by the mask token.

The behaviours covered follow what transformers' own collator tests check
(`tests/trainer/test_data_collator.py`: shapes with and without padding, `pad_to_multiple_of`,
a missing pad token, MLM labels only at masked positions, whole-word masking from lists and
arrays, NSP/SOP columns, inputs left unchanged), here with realistic vocabularies: the real
bert-base-uncased tokenizer and byte-level BPE tokenizers trained on the fly.

Where mlmkit differs on purpose (the README's "Differences from transformers" table), the
tests at the end of this file check the difference itself.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import transformers
from transformers import AutoTokenizer

import mlmkit

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world!",
    "Masked language models learn by predicting hidden tokens from their context.",
    "Data collators pad batches.",
    "이순신은 조선 중기의 무신이다.",
]

MODES = {
    "causal": dict(mlm=False),
    "p0": dict(mlm_probability=0.0),
    "p1": dict(mlm_probability=1.0, mask_replace_prob=1.0, random_replace_prob=0.0),
}


def collate_both(tokenizer, features, return_tensors="pt", **options):
    """(mlmkit's batch, transformers' batch) for copies of the same features."""
    ours = mlmkit.DataCollatorForLanguageModeling(
        tokenizer, return_tensors=return_tensors, seed=0, **options
    )
    theirs = transformers.DataCollatorForLanguageModeling(
        tokenizer, return_tensors=return_tensors, **options
    )
    return ours(copy.deepcopy(features)), theirs(copy.deepcopy(features))


def assert_same(ours, theirs, extra=()):
    """Every column transformers returns is in mlmkit's batch with the same type, dtype, shape
    and values; mlmkit's batch has no other column but `extra`."""
    assert set(theirs) <= set(ours), (sorted(ours), sorted(theirs))
    assert set(ours) - set(theirs) <= set(extra), (sorted(ours), sorted(theirs))
    for key in theirs:
        a, b = ours[key], theirs[key]
        assert type(a) is type(b), key
        assert a.dtype == b.dtype, (key, a.dtype, b.dtype)
        assert tuple(a.shape) == tuple(b.shape), (key, a.shape, b.shape)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=key)


def dicts(enc, n):
    return [{k: enc[k][i] for k in enc} for i in range(n)]


def eos_rows(tok):
    """Documents delimited by eos as causal-LM corpora are: leading and trailing eos."""
    eos = tok.eos_token_id
    ids = tok(TEXTS, add_special_tokens=False)["input_ids"]
    return [[eos, *row, eos] if i % 2 else [*row, eos] for i, row in enumerate(ids)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("return_tensors", ["pt", "np"])
def test_pad_is_eos_with_eos_delimited_rows(gpt2_like, mode, return_tensors):
    rows = eos_rows(gpt2_like)
    for features in ([{"input_ids": r} for r in rows], rows):
        ours, theirs = collate_both(gpt2_like, features, return_tensors, **MODES[mode])
        extra = () if isinstance(features[0], dict) else ("attention_mask",)
        assert_same(ours, theirs, extra)
        # no eos is lost, moved or unattended: each row's tokens are where they were
        for i, row in enumerate(rows):
            assert np.asarray(ours["attention_mask"])[i, : len(row)].tolist() == [1] * len(row)
            if mode != "p1":
                assert np.asarray(ours["input_ids"])[i, : len(row)].tolist() == row


@pytest.mark.parametrize("mode", MODES)
def test_bert_vocabulary_with_pad_sep(bert_pad_sep, mode):
    features = dicts(bert_pad_sep(TEXTS), len(TEXTS))
    ours, theirs = collate_both(bert_pad_sep, features, **MODES[mode])
    assert_same(ours, theirs)
    # the real final [SEP] of every row keeps attention 1
    for i, f in enumerate(features):
        assert ours["attention_mask"][i, len(f["input_ids"]) - 1] == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tok_name", ["bert_tokenizer", "bert_pad_sep", "gpt2_like"])
def test_rows_with_their_own_attention_masks(request, tok_name, mode):
    tok = request.getfixturevalue(tok_name)
    features = dicts(tok(TEXTS), len(TEXTS))
    pad = tok.pad_token_id
    for i, f in enumerate(features):
        att = list(f["attention_mask"])
        att[len(att) // 2] = 0  # a zero inside the row
        f["attention_mask"] = att
        if i % 2:  # a pad-id token the row attends to, then real padding it does not
            f["input_ids"] = [*f["input_ids"], pad, pad, pad]
            f["attention_mask"] = [*att, 1, 0, 0]
            if "token_type_ids" in f:
                f["token_type_ids"] = [*f["token_type_ids"], 0, 0, 0]
    ours, theirs = collate_both(tok, features, **MODES[mode])
    assert_same(ours, theirs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("side", ["right", "left"])
def test_prepadded_to_max_length(bert_dir, mode, side):
    tok = AutoTokenizer.from_pretrained(bert_dir, padding_side=side)
    features = dicts(tok(TEXTS, padding="max_length", max_length=40), len(TEXTS))
    ours, theirs = collate_both(tok, features, **MODES[mode])
    assert_same(ours, theirs)
    assert ours["input_ids"].shape == (len(TEXTS), 40)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tok_name", ["bert_tokenizer", "bert_pad_sep", "gpt2_like"])
def test_left_padding(request, bert_dir, tok_name, mode):
    tok = copy.deepcopy(request.getfixturevalue(tok_name))
    tok.padding_side = "left"
    features = dicts(tok(TEXTS), len(TEXTS))
    ours, theirs = collate_both(tok, features, **MODES[mode])
    assert_same(ours, theirs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("return_tensors", ["pt", "np"])
def test_pad_to_multiple_of(bert_tokenizer, mode, return_tensors):
    features = dicts(bert_tokenizer(TEXTS), len(TEXTS))
    for multiple in (8, 64):
        ours, theirs = collate_both(
            bert_tokenizer, features, return_tensors, pad_to_multiple_of=multiple, **MODES[mode]
        )
        assert_same(ours, theirs)
        assert ours["input_ids"].shape[1] % multiple == 0


@pytest.mark.parametrize("mode", ["causal", "p1"])
def test_no_pad_token_with_equal_lengths(bert_dir, mode):
    tok = AutoTokenizer.from_pretrained(bert_dir)
    tok.pad_token = None
    rows = [[101, 7592, 2088, 102], [101, 2023, 2003, 102]]
    ours, theirs = collate_both(tok, rows, **MODES[mode])
    assert_same(ours, theirs, extra=("attention_mask",))
    assert (ours["attention_mask"] == 1).all()
    # both need a pad token as soon as rows must be padded
    for collator in (
        mlmkit.DataCollatorForLanguageModeling(tok, **MODES[mode]),
        transformers.DataCollatorForLanguageModeling(tok, **MODES[mode]),
    ):
        with pytest.raises(ValueError, match="pad token"):
            collator([rows[0], rows[1][:3]])
        with pytest.raises(ValueError, match="pad token"):
            mlmkit.DataCollatorForLanguageModeling(tok, pad_to_multiple_of=8)(rows)


@pytest.mark.parametrize("mode", MODES)
def test_pad_token_set_after_construction(bert_dir, mode):
    tok = AutoTokenizer.from_pretrained(bert_dir)
    tok.pad_token = None
    ours = mlmkit.DataCollatorForLanguageModeling(tok, seed=0, **MODES[mode])
    theirs = transformers.DataCollatorForLanguageModeling(tok, **MODES[mode])
    features = dicts(tok(TEXTS), len(TEXTS))
    with pytest.raises(ValueError, match="pad token"):
        ours(copy.deepcopy(features))
    tok.pad_token = "[SEP]"  # set late, then changed again
    assert_same(ours(copy.deepcopy(features)), theirs(copy.deepcopy(features)))
    tok.pad_token = "[PAD]"
    batch = ours(copy.deepcopy(features))
    assert_same(batch, theirs(copy.deepcopy(features)))
    assert (batch["input_ids"][1, len(features[1]["input_ids"]) :] == 0).all()
    tok.pad_token = None  # removed late (transformers' own test does this)
    for collator in (ours, theirs):
        with pytest.raises(ValueError, match="pad token"):
            collator(copy.deepcopy(features))


@pytest.mark.parametrize("mode", ["p0", "p1"])
def test_special_tokens_mask_column(bert_tokenizer, gpt2_like, mode):
    for tok in (bert_tokenizer, gpt2_like):
        features = dicts(tok(TEXTS, return_special_tokens_mask=True), len(TEXTS))
        ours, theirs = collate_both(tok, features, **MODES[mode])
        assert_same(ours, theirs)
        assert "special_tokens_mask" not in ours


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("return_tensors", ["pt", "np"])
def test_bare_lists_tensors_and_numpy_rows(bert_tokenizer, mode, return_tensors):
    ids = bert_tokenizer(TEXTS)["input_ids"]
    equal = [row[:8] for row in ids]
    for rows in (ids, equal):
        # (transformers' numpy path cannot take torch rows: np.full(..., dtype=torch.int64))
        forms = (
            (list, tuple, torch.tensor, np.array) if return_tensors == "pt" else (list, np.array)
        )
        for form in forms:
            features = [form(r) for r in rows]
            ours, theirs = collate_both(bert_tokenizer, features, return_tensors, **MODES[mode])
            # transformers returns no attention_mask for bare rows; mlmkit adds one
            assert_same(ours, theirs, extra=("attention_mask",))
        features = [{"input_ids": torch.tensor(r)} for r in rows]
        assert_same(*collate_both(bert_tokenizer, features, return_tensors, **MODES[mode]))
    padded = torch.tensor([r[:6] + [0] * 2 for r in ids])  # a padded 2-D tensor
    ours, theirs = collate_both(bert_tokenizer, padded, **MODES[mode])
    assert_same(ours, theirs, extra=("attention_mask",))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("task", ["nsp", "sop"])
def test_sentence_pairs(bert_tokenizer, mode, task):
    corpus = [
        ["The fox ran.", "It was quick.", "Dogs slept."],
        ["Models learn.", "They predict tokens.", "Context helps.", "Masks hide words."],
        ["Seoul is a city.", "It is large."],
    ] * 3
    pairs = mlmkit.SentencePairs(bert_tokenizer, max_seq_length=24, task=task, seed=1)(
        {"sentences": corpus}
    )
    label = "next_sentence_label" if task == "nsp" else "sentence_order_label"
    features = [
        {
            "input_ids": np.asarray(i).tolist(),
            "token_type_ids": np.asarray(t).tolist(),
            label: int(y),
        }
        for i, t, y in zip(pairs["input_ids"], pairs["token_type_ids"], pairs[label], strict=True)
    ]
    assert len({len(f["input_ids"]) for f in features}) > 1  # padding happens
    for multiple in (None, 8):
        ours, theirs = collate_both(
            bert_tokenizer, features, pad_to_multiple_of=multiple, **MODES[mode]
        )
        assert_same(ours, theirs)
        assert ours[label].dtype == torch.int64


@pytest.mark.parametrize("p", [0.0, 1.0])
@pytest.mark.parametrize("return_tensors", ["pt", "np"])
def test_whole_word_masking_from_lists_and_arrays(bert_tokenizer, p, return_tensors):
    # transformers needs offset_mapping and rows of one length (it cannot batch ragged offsets)
    enc = bert_tokenizer(
        TEXTS, return_offsets_mapping=True, padding="max_length", truncation=True, max_length=24
    )
    for form in (list, np.array):
        features = [
            {
                "input_ids": form(enc["input_ids"][i]),
                "attention_mask": form(enc["attention_mask"][i]),
                "offset_mapping": enc["offset_mapping"][i],
            }
            for i in range(len(TEXTS))
        ]
        ours, theirs = collate_both(
            bert_tokenizer,
            features,
            return_tensors,
            whole_word_mask=True,
            mlm_probability=p,
            mask_replace_prob=1.0,
            random_replace_prob=0.0,
        )
        assert_same(ours, theirs)


def test_masked_positions_and_labels(bert_tokenizer):
    """transformers' test: every position without the mask token has label -100 (here with
    the default 80/10/10, over enough tokens that some are masked)."""
    features = dicts(bert_tokenizer(TEXTS * 8), len(TEXTS) * 8)
    batch = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=3)(features)
    masked = batch["input_ids"] == bert_tokenizer.mask_token_id
    assert masked.any()
    assert (batch["labels"][masked] != -100).all()
    changed = batch["labels"] != -100
    assert (batch["labels"][~changed] == -100).all()
    assert changed.sum() >= masked.sum()


def test_inputs_are_left_unchanged(bert_tokenizer):
    """transformers' immutability tests: collating never modifies the features."""
    ids = bert_tokenizer(TEXTS)["input_ids"]
    forms = [
        [{"input_ids": r} for r in ids],
        [{"input_ids": tuple(r)} for r in ids],
        [{"input_ids": torch.tensor(r)} for r in ids],
        [{"input_ids": np.array(r)} for r in ids],
        [list(r) for r in ids],
    ]
    for options in ({}, dict(mlm=False), dict(pad_to_multiple_of=8), dict(whole_word_mask=True)):
        collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0, **options)
        for features in forms:
            before = copy.deepcopy(features)
            collator(features)
            for a, b in zip(features, before, strict=True):
                a = a["input_ids"] if isinstance(a, dict) else a
                b = b["input_ids"] if isinstance(b, dict) else b
                assert list(np.asarray(a)) == list(np.asarray(b))


@pytest.mark.parametrize("return_tensors", ["pt", "np"])
def test_mask_tokens_methods(bert_tokenizer, return_tensors):
    """`torch_mask_tokens` / `numpy_mask_tokens` with transformers' signatures: mask a padded
    batch in place and return (inputs, labels), equal to transformers' at p = 0 and 1 and to
    mlmkit's own collator call otherwise."""
    features = dicts(
        bert_tokenizer(TEXTS, padding=True, return_special_tokens_mask=True), len(TEXTS)
    )
    name = "torch_mask_tokens" if return_tensors == "pt" else "numpy_mask_tokens"
    to = torch.tensor if return_tensors == "pt" else np.array
    ids = [f["input_ids"] for f in features]
    stm = [f["special_tokens_mask"] for f in features]
    for options in (MODES["p0"], MODES["p1"]):
        ours = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0, **options)
        theirs = transformers.DataCollatorForLanguageModeling(bert_tokenizer, **options)
        for special in (None, stm):
            a_in, b_in = to(ids), to(ids)
            a = getattr(ours, name)(a_in, None if special is None else to(special))
            b = getattr(theirs, name)(b_in, None if special is None else to(special))
            assert a[0] is a_in  # masked in place, as transformers does
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # the collator's distribution and seeding: the same as a collator call on these rows
    c1 = mlmkit.DataCollatorForLanguageModeling(
        bert_tokenizer, seed=5, keyed=True, mlm_probability=0.5
    )
    inputs, labels = getattr(c1, name)(to(ids))
    batch = c1({"input_ids": ids}, return_tensors=return_tensors)
    np.testing.assert_array_equal(np.asarray(inputs), np.asarray(batch["input_ids"]))
    np.testing.assert_array_equal(np.asarray(labels), np.asarray(batch["labels"]))
    assert (np.asarray(labels) != -100).sum() > 10
    # special_tokens_mask rows are never masked
    protect = np.zeros_like(np.asarray(ids))
    protect[:, 1:4] = 1
    c2 = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=5, mlm_probability=1.0)
    _, labels = getattr(c2, name)(to(ids), to(protect))
    assert (np.asarray(labels)[:, 1:4] == -100).all()
    with pytest.raises(TypeError, match="inputs must be"):
        getattr(c2, name)(ids)
    with pytest.raises(ValueError, match="mlm=False"):
        getattr(mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, mlm=False), name)(to(ids))


# ---- intentional differences (README: "Differences from transformers") ----------------------


def test_difference_surplus_padding_without_attention_mask(bert_tokenizer):
    """Pre-padded rows without an attention mask: transformers attends to the pad tokens they
    carry; mlmkit gives them attention 0 when the pad id is no other special token. Ids and
    labels are the same."""
    rows = [[101, 7592, 102, 0, 0], [101, 7592, 2088, 102, 0]]
    ours, theirs = collate_both(bert_tokenizer, [{"input_ids": r} for r in rows], mlm=False)
    assert theirs["attention_mask"].tolist() == [[1] * 5, [1] * 5]
    assert ours["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]
    for key in ("input_ids", "labels"):
        assert torch.equal(ours[key], theirs[key])


def test_difference_special_tokens_are_never_masked(bert_tokenizer):
    """A special_tokens_mask of 0 at [CLS] lets transformers mask it; mlmkit never masks the
    tokenizer's special tokens."""
    features = dicts(bert_tokenizer(TEXTS[:2]), 2)
    for f in features:
        f["special_tokens_mask"] = [0] * len(f["input_ids"])
    ours, theirs = collate_both(bert_tokenizer, features, **MODES["p1"])
    assert (theirs["labels"][:, 0] == 101).all()
    assert (ours["labels"][:, 0] == -100).all()


def test_difference_pad_token_only_needed_to_pad(bert_dir):
    """Dict examples of equal length and no pad token: transformers' tokenizer.pad refuses,
    mlmkit collates (nothing needs padding)."""
    tok = AutoTokenizer.from_pretrained(bert_dir)
    tok.pad_token = None
    features = [{"input_ids": [101, 7592, 102]}, {"input_ids": [101, 2088, 102]}]
    with pytest.raises(ValueError, match="padding"):
        transformers.DataCollatorForLanguageModeling(tok, mlm=False)(features)
    batch = mlmkit.DataCollatorForLanguageModeling(tok, mlm=False)(features)
    assert batch["labels"].tolist() == [[101, 7592, 102], [101, 2088, 102]]
