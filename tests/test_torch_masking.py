"""The torch masking path (`mask_tensor`, `mlmkit.torch_masking`) against the Rust path: bit for
bit, over many random batches and settings."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

import mlmkit
from mlmkit import _core, torch_masking

from .reference import fmix32, hash_words, keyed_row_key


def test_generator_pieces_match_the_reference():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**32, 5000, dtype=np.int64)
    got = torch_masking.fmix32(torch.from_numpy(values)).tolist()
    assert got == [fmix32(int(v)) for v in values]
    # numpy uint32 arithmetic is the other obvious implementation
    h = values.astype(np.uint32)
    h ^= h >> 16
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> 13
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> 16
    assert got == h.astype(np.int64).tolist()
    for n in range(6):
        words = rng.integers(0, 2**32, n).tolist()
        seed = int(rng.integers(0, 2**32))
        assert torch_masking.hash_words(seed, words) == _core.hash_words(seed, words)
    keys = torch.from_numpy(rng.integers(0, 2**32, 8, dtype=np.int64))
    for lane_id in (1, 2, 3):
        got = torch_masking.lane_at(
            torch_masking.lane_keys(keys, lane_id)[:, None], torch.arange(50)[None, :]
        )
        for r, key in enumerate(keys.tolist()):
            assert got[r].tolist() == _core.lane_values(key, lane_id, 50).tolist()
    for p in (0.0, 0.15, 0.8, 0.9, 1.0, 1 / 3, 0.1 + 0.8):
        assert torch_masking.threshold(p) == round(p * 2**32)


def test_row_keys_match_the_reference(bert_tokenizer):
    pad = bert_tokenizer.pad_token_id
    rows = [[5, 6, 7], [101, 2000, 102], [9] * 30, []]
    width = 34
    for left in (False, True):
        ids = torch.full((len(rows), width), pad)
        for i, row in enumerate(rows):
            at = width - len(row) if left else 0
            ids[i, at : at + len(row)] = torch.tensor(row, dtype=torch.long)
        start, length = torch_masking.content_range(ids, pad, left=left)
        assert length.tolist() == [3, 3, 30, 0]
        assert start.tolist() == ([31, 31, 4, 34] if left else [0, 0, 0, 0])
        words = [int(w) for w in mlmkit.seeding.keyed_words(42, 3)]
        keys = torch_masking.row_keys(ids, start, length, words, keyed=True)
        assert keys.tolist() == [keyed_row_key(42, 3, row) for row in rows]
    by_index = torch_masking.row_keys(ids, start, length, words, keyed=False)
    assert by_index.tolist() == [hash_words(0, words + [i]) for i in range(len(rows))]


def random_batch(rng, tok, b, width, side, pad_both=False, inner_pad=False):
    """A padded (b, width) batch of random rows: specials at the ends, sometimes all padding."""
    pad = tok.pad_token_id
    ids = torch.full((b, width), pad, dtype=torch.long)
    specials = sorted(mlmkit.vocab.special_ids(tok))
    for i in range(b):
        n = int(rng.integers(0, width + 1)) if rng.random() < 0.9 else 0
        row = rng.integers(0, len(tok), n)
        if n >= 2 and rng.random() < 0.7:
            row[0], row[-1] = specials[0], specials[-1]
        if inner_pad and n >= 3:
            row[n // 2] = pad
        if n:
            row[0] = row[0] if row[0] != pad else pad + 1
            row[-1] = row[-1] if row[-1] != pad else pad + 1
        if pad_both:
            off = int(rng.integers(0, width - n + 1))
        else:
            off = 0 if side == "right" else width - n
        ids[i, off : off + n] = torch.from_numpy(row)
    return ids


def assert_same_as_rust(collator, ids, special=None):
    """mask_tensor(ids) equals what the Rust collator produces for the same rows (both keep
    every position where it is)."""
    feats = {"input_ids": ids}
    if special is not None:
        feats["special_tokens_mask"] = special
    rust = collator(feats)
    got_ids, got_labels = collator.mask_tensor(ids, special_tokens_mask=special)
    assert got_ids.dtype == torch.long and got_labels.dtype == torch.long
    assert torch.equal(got_ids, rust["input_ids"])
    assert torch.equal(got_labels, rust["labels"])


SETTINGS = [
    dict(),
    dict(mask_count="exact"),
    dict(max_predictions=3),
    dict(mask_count="exact", max_predictions=2, mlm_probability=0.5),
    dict(mlm_probability=0.5, mask_replace_prob=0.25, random_replace_prob=0.5),
    dict(mlm_probability=1.0, mask_replace_prob=0.0, random_replace_prob=1.0),
    dict(mlm_probability=0.3, mask_replace_prob=1.0, random_replace_prob=0.0),
    dict(mlm_probability=0.0, mask_count="exact"),
    dict(random_tokens="uniform", mlm_probability=0.4),
]


@pytest.fixture(scope="module")
def left_bert(bert_dir):
    return AutoTokenizer.from_pretrained(bert_dir, padding_side="left")


@pytest.mark.parametrize(
    "options", SETTINGS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())
)
@pytest.mark.parametrize("mode", ["keyed", "seeded", "torch"])
def test_torch_path_is_bit_identical_to_rust(bert_tokenizer, left_bert, options, mode):
    rng = np.random.default_rng(zlib.crc32(repr((mode, options)).encode()))
    for tok, side in ((bert_tokenizer, "right"), (left_bert, "left")):
        seed = int(rng.integers(0, 2**63))
        kwargs = dict(keyed=True, seed=seed, epoch=3) if mode == "keyed" else {}
        if mode == "seeded":
            kwargs = dict(seed=seed)
        # Two collators with the same seed advance their streams in step: one calls Rust, the
        # other the torch path.
        rust = mlmkit.DataCollatorForLanguageModeling(tok, **kwargs, **options)
        on_torch = dataclasses.replace(rust)
        for trial in range(12):
            b, width = int(rng.integers(1, 9)), int(rng.integers(1, 40))
            ids = random_batch(rng, tok, b, width, side)
            torch_seed = int(rng.integers(0, 2**31))
            torch.manual_seed(torch_seed)
            rust_batch = rust({"input_ids": ids})
            torch.manual_seed(torch_seed)
            got_ids, got_labels = on_torch.mask_tensor(ids)
            assert torch.equal(got_ids, rust_batch["input_ids"]), (trial, side)
            assert torch.equal(got_labels, rust_batch["labels"]), (trial, side)


def test_padding_anywhere_special_masks_and_dtypes(bert_tokenizer, left_bert):
    rng = np.random.default_rng(7)
    for tok in (bert_tokenizer, left_bert):
        collator = mlmkit.DataCollatorForLanguageModeling(
            tok, keyed=True, seed=1, mlm_probability=0.5
        )
        for _ in range(15):
            b, width = int(rng.integers(1, 8)), int(rng.integers(2, 50))
            ids = random_batch(rng, tok, b, width, "right", pad_both=True, inner_pad=True)
            assert_same_as_rust(collator, ids)
            special = torch.from_numpy(rng.random((b, width)) < 0.3).to(torch.long)
            assert_same_as_rust(collator, ids, special=special)
        ids = random_batch(rng, tok, 4, 20, tok.padding_side)
        for dtype in (torch.int32, torch.int64):
            assert_same_as_rust(collator, ids.to(dtype))


def test_many_large_random_batches_keyed(bert_tokenizer):
    rng = np.random.default_rng(11)
    collator = mlmkit.DataCollatorForLanguageModeling(
        bert_tokenizer, keyed=True, seed=2**40 + 5, epoch=7
    )
    for _ in range(6):
        ids = random_batch(rng, bert_tokenizer, 16, 256, "right")
        assert_same_as_rust(collator, ids)


def test_padding_only_collator_then_mask_tensor_equals_the_collator(bert_tokenizer):
    """The documented split: a padding-only collator on the CPU, masking in the training step."""
    texts = ["short one", "a somewhat longer sentence for the batch", "x"] * 3
    rows = [{"input_ids": r} for r in bert_tokenizer(texts)["input_ids"]]
    for kwargs in (dict(keyed=True, seed=5), dict(seed=5)):
        masker = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, **kwargs)
        reference = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, **kwargs)
        padder = dataclasses.replace(masker, mlm=False)
        for _ in range(3):
            batch = padder(rows)
            ids, labels = masker.mask_tensor(batch["input_ids"])
            expected = reference(rows)
            assert torch.equal(ids, expected["input_ids"])
            assert torch.equal(labels, expected["labels"])
            assert torch.equal(batch["attention_mask"], expected["attention_mask"])


def test_mask_tensor_rejects_bad_input(bert_tokenizer):
    c = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, keyed=True, seed=0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        c.mask_tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="2-D"):
        c.mask_tensor(torch.tensor([101, 2000, 102]))
    with pytest.raises(TypeError, match="integer token ids"):
        c.mask_tensor(torch.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"token id 40000 at row 1, position 2 .*\[0, 30522\)"):
        c.mask_tensor(torch.tensor([[101, 5, 102], [101, 5, 40000]]))
    with pytest.raises(ValueError, match="token id -3"):
        c.mask_tensor(torch.tensor([[101, -3, 102]]))
    with pytest.raises(ValueError, match="special_tokens_mask has shape"):
        c.mask_tensor(torch.ones((2, 3), dtype=torch.long), torch.zeros((2, 4)))
    causal = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, mlm=False)
    with pytest.raises(ValueError, match="mlm=False"):
        causal.mask_tensor(torch.ones((2, 3), dtype=torch.long))
    empty_ids, empty_labels = c.mask_tensor(torch.zeros((0, 5), dtype=torch.long))
    assert empty_ids.shape == (0, 5) and empty_labels.shape == (0, 5)
