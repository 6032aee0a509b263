"""Whole-word, span and n-gram masking on the torch path (`mask_tensor`,
`mlmkit.torch_word_masking`) against the Rust collator: bit for bit, over many random batches of
real text and of random ids, for the three tokenizer families and every option."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import zlib

import numpy as np
import pytest
import torch

import mlmkit

from .conftest import CORPUS
from .test_torch_masking import random_batch

SENTENCES = list(dict.fromkeys(CORPUS))

OPTIONS = [
    dict(),
    dict(mask_count="exact"),
    dict(max_predictions=3),
    dict(mask_count="exact", max_predictions=5, mlm_probability=0.5),
    dict(replace_per="token"),
    dict(replace_per="token", mask_count="exact", mlm_probability=0.3),
    dict(mlm_probability=0.5, mask_replace_prob=0.25, random_replace_prob=0.5),
    dict(mlm_probability=1.0, mask_replace_prob=0.0, random_replace_prob=1.0),
    dict(mlm_probability=0.3, mask_replace_prob=1.0, random_replace_prob=0.0, max_predictions=4),
    dict(mlm_probability=0.0, mask_count="exact"),
    dict(mlm_probability=0.4, random_tokens="uniform", replace_per="token", max_predictions=8),
    dict(span_geometric_p=0.5, max_span_length=3, max_ngram=1, mlm_probability=0.35),
    dict(span_geometric_p=0.05, max_span_length=40, max_ngram=6, mask_count="exact"),
    dict(max_span_length=1, max_ngram=2, mlm_probability=0.6, max_predictions=6),
]
MODES = ("keyed", "seeded", "torch")


def left_padded(tok):
    left = copy.deepcopy(tok)
    left.padding_side = "left"
    return left


@pytest.fixture(scope="module")
def tokenizers(bert_tokenizer, bpe_tokenizer, unigram_tokenizer):
    out = {}
    for name, tok in (
        ("bert", bert_tokenizer),
        ("bpe", bpe_tokenizer),
        ("unigram", unigram_tokenizer),
    ):
        out[name] = (tok, left_padded(tok))
    return out


def text_batch(rng, tok, b, *, with_word_ids=False):
    """A padded batch of tokenized sentences (pairs too: special tokens inside rows), some rows
    truncated or empty, with their word ids (-1 outside words) when asked."""
    rows, wids = [], []
    for _ in range(b):
        if rng.random() < 0.08:
            rows.append([])
            wids.append([])
            continue
        a = " ".join(rng.choice(SENTENCES, int(rng.integers(1, 3))).tolist())
        pair = str(rng.choice(SENTENCES)) if rng.random() < 0.4 else None
        enc = tok(a, pair)
        cut = int(rng.integers(4, 56))  # truncated by hand: the BPE fixture cannot truncate
        rows.append(enc["input_ids"][:cut])
        wids.append([-1 if w is None else w for w in enc.word_ids()][:cut])
    return _pad(rng, tok, rows, wids if with_word_ids else None)


def _pad(rng, tok, rows, wids):
    width = max(max((len(r) for r in rows), default=0) + int(rng.integers(0, 3)), 1)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    word_ids = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        off = 0 if tok.padding_side == "right" else width - len(r)
        ids[i, off : off + len(r)] = torch.tensor(r, dtype=torch.long)
        if wids is not None:
            word_ids[i, off : off + len(r)] = torch.tensor(wids[i], dtype=torch.long)
    return ids, (word_ids if wids is not None else None)


def random_word_ids(rng, ids, pad_id):
    """Non-decreasing word ids with runs of random lengths, -1 on padding and at random spots."""
    b, width = ids.shape
    steps = rng.random((b, width)) < 0.6
    wid = np.cumsum(steps, axis=1)
    wid[rng.random((b, width)) < 0.1] = -1
    wid = torch.from_numpy(wid)
    return torch.where(ids == pad_id, -1, wid)


def assert_same(rust, on_torch, ids, *, mode, rng, special=None, word_ids=None):
    feats = {"input_ids": ids}
    if special is not None:
        feats["special_tokens_mask"] = special
    if word_ids is not None:
        feats["word_ids"] = word_ids
    torch_seed = int(rng.integers(0, 2**31))
    torch.manual_seed(torch_seed)
    expected = rust(feats)
    torch.manual_seed(torch_seed)
    got_ids, got_labels = on_torch.mask_tensor(ids, special_tokens_mask=special, word_ids=word_ids)
    assert got_ids.dtype == torch.long and got_labels.dtype == torch.long
    assert torch.equal(got_labels, expected["labels"]), (mode, ids, word_ids)
    assert torch.equal(got_ids, expected["input_ids"]), (mode, ids, word_ids)
    return int((expected["labels"] != -100).sum())


def collators(tok, masking, mode, options, rng):
    seed = int(rng.integers(0, 2**63))
    kwargs = {"keyed": dict(keyed=True, seed=seed, epoch=5), "seeded": dict(seed=seed)}
    rust = mlmkit.DataCollatorForLanguageModeling(
        tok, masking=masking, **kwargs.get(mode, {}), **options
    )
    return rust, dataclasses.replace(rust)  # seeded: two streams advancing in step


@pytest.mark.parametrize("masking", ["word", "span", "ngram"])
@pytest.mark.parametrize("family", ["bert", "bpe", "unigram"])
def test_word_span_ngram_torch_path_is_bit_identical(tokenizers, family, masking):
    rng = np.random.default_rng(zlib.crc32(f"{family}/{masking}".encode()))
    masked = 0
    for i, options in enumerate(OPTIONS):
        for mode, tok in zip(MODES, itertools.cycle(tokenizers[family]), strict=False):
            if (i + MODES.index(mode)) % 2:  # half the (options, mode) pairs, all modes used
                continue
            rust, on_torch = collators(tok, masking, mode, options, rng)
            for trial in range(3):
                b = int(rng.integers(1, 7))
                if trial == 2:
                    ids = random_batch(rng, tok, b, int(rng.integers(1, 40)), tok.padding_side)
                else:
                    ids, _ = text_batch(rng, tok, b)
                masked += assert_same(rust, on_torch, ids, mode=mode, rng=rng)
    assert masked > 200  # the comparisons covered real masks


@pytest.mark.parametrize("family", ["bert", "bpe", "unigram"])
def test_word_ids_and_special_tokens_mask_on_the_torch_path(tokenizers, family):
    rng = np.random.default_rng(zlib.crc32(family.encode()) + 1)
    masked = 0
    for masking, options in itertools.product(("word", "span", "ngram"), OPTIONS[:8]):
        tok = tokenizers[family][int(rng.integers(0, 2))]
        mode = MODES[int(rng.integers(0, 3))]
        rust, on_torch = collators(tok, masking, mode, options, rng)
        b = int(rng.integers(1, 6))
        ids, word_ids = text_batch(rng, tok, b, with_word_ids=True)
        masked += assert_same(rust, on_torch, ids, mode=mode, rng=rng, word_ids=word_ids)
        ids = random_batch(rng, tok, b, int(rng.integers(2, 30)), tok.padding_side)
        word_ids = random_word_ids(rng, ids, tok.pad_token_id)
        special = torch.from_numpy(rng.random(ids.shape) < 0.2).to(torch.long)
        masked += assert_same(rust, on_torch, ids, mode=mode, rng=rng, word_ids=word_ids)
        masked += assert_same(rust, on_torch, ids, mode=mode, rng=rng, special=special)
        masked += assert_same(
            rust, on_torch, ids, mode=mode, rng=rng, special=special, word_ids=word_ids
        )
    assert masked > 200


def test_padding_on_both_ends_and_int32_ids(bert_tokenizer):
    """Rows padded on both sides: both paths keep every position, so the batches are equal."""
    rng = np.random.default_rng(3)
    for masking in ("word", "span", "ngram"):
        c = mlmkit.DataCollatorForLanguageModeling(
            bert_tokenizer, masking=masking, keyed=True, seed=9, mlm_probability=0.4
        )
        for _ in range(4):
            ids = random_batch(rng, bert_tokenizer, 5, 30, "right", pad_both=True, inner_pad=True)
            got_ids, got_labels = c.mask_tensor(ids.to(torch.int32))
            expected = c({"input_ids": ids})
            assert torch.equal(got_ids, expected["input_ids"])
            assert torch.equal(got_labels, expected["labels"])


def test_long_rows_and_the_whole_word_mask_collator(bert_tokenizer, unigram_tokenizer):
    """Wide batches (budget and renewal scans over hundreds of words), and the 4.x-compatible
    DataCollatorForWholeWordMask defaults (exact, cap 512, per-token decisions)."""
    rng = np.random.default_rng(5)
    text = " ".join(SENTENCES * 3)
    for tok in (bert_tokenizer, unigram_tokenizer):
        rows = [tok(text[int(rng.integers(0, 200)) :])["input_ids"][:384] for _ in range(6)]
        ids, _ = _pad(rng, tok, rows, None)
        for collator in (
            mlmkit.DataCollatorForWholeWordMask(tok, seed=1, keyed=True),
            mlmkit.DataCollatorForLanguageModeling(tok, masking="span", seed=2, keyed=True),
            mlmkit.DataCollatorForLanguageModeling(
                tok, masking="ngram", seed=2, keyed=True, mask_count="exact", max_predictions=20
            ),
        ):
            n = assert_same(collator, collator, ids, mode="keyed", rng=rng)
            assert n > 6 * 20 * 0.5


def test_padding_only_collator_then_mask_tensor_for_words(bpe_tokenizer):
    """The documented split for word masking: pad on the CPU, mask in the training step."""
    rows = [{"input_ids": r} for r in bpe_tokenizer(SENTENCES)["input_ids"]]
    for kwargs in (dict(keyed=True, seed=5), dict(seed=5)):
        masker = mlmkit.DataCollatorForLanguageModeling(bpe_tokenizer, masking="span", **kwargs)
        reference = dataclasses.replace(masker)
        padder = dataclasses.replace(masker, mlm=False, masking=None)
        for _ in range(3):
            batch = padder(rows)
            ids, labels = masker.mask_tensor(batch["input_ids"])
            expected = reference(rows)
            assert torch.equal(ids, expected["input_ids"])
            assert torch.equal(labels, expected["labels"])


def test_word_masking_errors_on_the_torch_path(bert_tokenizer):
    c = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, masking="word", keyed=True, seed=0)
    ids = torch.tensor([[101, 2000, 2001, 102]])
    with pytest.raises(ValueError, match=r"word_ids has shape \(1, 3\) but input_ids has \(1, 4\)"):
        c.mask_tensor(ids, word_ids=torch.zeros((1, 3), dtype=torch.long))
    with pytest.raises(TypeError, match="word_ids must hold integer"):
        c.mask_tensor(ids, word_ids=torch.zeros((1, 4)))
    with pytest.raises(TypeError, match="word_ids must be a torch.Tensor"):
        c.mask_tensor(ids, word_ids=[[0, 1, 2, 3]])
    token = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, keyed=True, seed=0)
    with pytest.raises(ValueError, match="masks tokens, not words"):
        token.mask_tensor(ids, word_ids=torch.zeros((1, 4), dtype=torch.long))
    empty_ids, empty_labels = c.mask_tensor(torch.zeros((0, 5), dtype=torch.long))
    assert empty_ids.shape == (0, 5) and empty_labels.shape == (0, 5)
    # A row of special tokens only has no words: nothing is masked.
    ids, labels = c.mask_tensor(torch.tensor([[101, 102, 0]]))
    assert (labels == -100).all() and ids.tolist() == [[101, 102, 0]]


def test_accelerator_loop_bounds_give_the_same_masks(bert_tokenizer, monkeypatch):
    """Off the CPU the scans run to the batch width instead of the longest row's word count (no
    value is read back from the device); the extra steps change nothing."""
    from mlmkit import torch_word_masking

    monkeypatch.setattr(torch_word_masking, "_loop_bound", lambda count, width: width)
    rng = np.random.default_rng(8)
    for masking, options in itertools.product(("word", "span", "ngram"), OPTIONS[:4]):
        rust, on_torch = collators(bert_tokenizer, masking, "keyed", options, rng)
        ids, _ = text_batch(rng, bert_tokenizer, 4)
        assert_same(rust, on_torch, ids, mode="keyed", rng=rng)
