"""`max_length`: rows cropped to windows before padding and masking.

The oracle: the windows a Python reimplementation of the documented draw (`rust/cropping.rs`)
predicts, applied to every column by hand, then collated without `max_length`, must give the
collator's output exactly (same windows, every aligned column cut alike, masks drawn after
cropping)."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
import pytest
import torch
from datasets.fingerprint import Hasher
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

import mlmkit
from mlmkit import seeding

from .conftest import CORPUS
from .reference import hash_words, keyed_row_key, lane

LANE_CROP = 4
Collator = mlmkit.DataCollatorForLanguageModeling


def template(tok):
    return Collator(tok, mlm=False).window_template()


def kept_positions(row, limit, prefix, suffix, key):
    """The positions of `row` its crop to `limit` keeps, by the documented algorithm."""
    n = len(row)
    if n <= limit:
        return list(range(n))
    p, q = len(prefix), len(suffix)
    wrapped = p + q > 0 and list(row[:p]) == list(prefix) and list(row[n - q :]) == list(suffix)
    head, tail = (p, q) if wrapped else (0, 0)
    body, window = n - head - tail, limit - head - tail
    start = (lane(key, LANE_CROP, 0) * (body - window + 1)) >> 32
    return [*range(head), *range(head + start, head + start + window), *range(n - tail, n)]


def keyed_key(seed, epoch):
    return lambda i, row: keyed_row_key(seed, epoch, [int(t) for t in row])


def seeded_key(seed, epoch, batch, rank=0):
    position = seeding.BatchPosition(epoch, batch, 0, None)
    words = [int(w) for w in seeding.seeded_words(seed, rank, position)]
    return lambda i, row: hash_words(0, words + [i])


def crop_by_hand(rows, limit, prefix, suffix, key):
    """Every per-token column of every row cut at the positions the oracle keeps."""
    out = []
    for i, r in enumerate(rows):
        keep = kept_positions(r["input_ids"], limit, prefix, suffix, key(i, r["input_ids"]))
        out.append(
            {
                k: [v[j] for j in keep]
                if isinstance(v, list) and len(v) == len(r["input_ids"])
                else v
                for k, v in r.items()
            }
        )
    return out


def encoded_rows(tok, n=24, seed=0, with_words=False, bare_every=5):
    """Rows of 1 to 7 corpus sentences, most wrapped in the tokenizer's specials, some bare; a
    `tag` column holds 1 + each token's position (0 is the padding fill)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(CORPUS[:8], int(rng.integers(1, 8))))
        enc = tok(text, add_special_tokens=i % bare_every != 0, return_special_tokens_mask=True)
        row = {k: list(v) for k, v in enc.items()}
        if with_words:
            row["word_ids"] = enc.word_ids()
        if len(row["input_ids"]) > 6:  # an unattended position inside the row is kept as is
            row["attention_mask"][3] = 0
        row["tag"] = list(range(1, len(row["input_ids"]) + 1))
        rows.append(row)
    return rows


def assert_batches_equal(a, b):
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])), k


# ---- the windows ------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["right", "left"])
def test_windows_are_contiguous_slices_wrapped_in_the_template(any_tokenizer, side):
    tok = copy.deepcopy(any_tokenizer)
    tok.padding_side = side
    prefix, suffix = template(tok)
    limit = 12
    rows = encoded_rows(tok)
    assert sum(len(r["input_ids"]) > limit for r in rows) >= 15  # most rows are cropped
    out = Collator(tok, seed=3, keyed=True, max_length=limit, mlm_probability=0.3)(rows)
    assert out["input_ids"].shape[1] <= limit
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        tags = out["tag"][i]
        kept = (tags[tags > 0] - 1).tolist()
        assert len(kept) == min(n, limit)
        unmasked = out["labels"][i] == -100
        ids = torch.where(unmasked, out["input_ids"][i], out["labels"][i])[tags > 0]
        assert ids.tolist() == [r["input_ids"][j] for j in kept]  # the kept tokens, unchanged
        if n <= limit:
            assert kept == list(range(n))
            continue
        wrapped = r["special_tokens_mask"][0] == 1
        p, q = (len(prefix), len(suffix)) if wrapped else (0, 0)
        window = kept[p : len(kept) - q]
        assert window == list(range(window[0], window[0] + len(window)))  # contiguous
        assert kept[:p] == list(range(p)) and kept[len(kept) - q :] == list(range(n - q, n))
        if wrapped:  # the tokenizer's own template, exactly, and never masked
            assert ids[:p].tolist() == list(prefix) and ids[len(ids) - q :].tolist() == list(suffix)
            assert bool(unmasked[tags > 0][:p].all()) and bool(unmasked[tags > 0][-q:].all())
        else:
            assert window[0] >= 0 and window[-1] <= n - 1


@pytest.mark.parametrize("masking", ["token", "word", "span"])
@pytest.mark.parametrize("mode", ["keyed", "seeded"])
def test_crop_equals_the_documented_windows_collated_uncropped(bert_tokenizer, masking, mode):
    """Same windows as the reimplementation, every column (attention with its zeros,
    token_type_ids, special_tokens_mask, word_ids, tag) cut alike, masks drawn after cropping."""
    tok = bert_tokenizer
    prefix, suffix = template(tok)
    rows = encoded_rows(tok, with_words=True, seed=1)
    limit = 16
    kw = dict(seed=11, masking=masking, mlm_probability=0.4, keyed=mode == "keyed")
    cropping = Collator(tok, max_length=limit, **kw)
    plain = Collator(tok, **kw)
    for epoch in (0, 2):
        cropping.set_epoch(epoch)
        plain.set_epoch(epoch)
        for batch in range(2):
            key = keyed_key(11, epoch) if mode == "keyed" else seeded_key(11, epoch, batch)
            got = cropping(rows)
            want = plain(crop_by_hand(rows, limit, prefix, suffix, key))
            assert_batches_equal(got, want)


def test_masks_are_drawn_after_cropping(bert_tokenizer):
    """An exact mask count is round(p * n) of each row's kept maskable tokens, all inside the
    window; with p = 1 every kept non-special token is a label."""
    tok = bert_tokenizer
    rows = encoded_rows(tok, n=40, seed=2)
    limit = 20
    out = Collator(tok, seed=0, max_length=limit, mask_count="exact", mlm_probability=0.15)(rows)
    specials = mlmkit.vocab.special_ids(tok)
    for i in range(len(rows)):
        kept = out["tag"][i] > 0
        labelled = out["labels"][i] != -100
        assert not bool((labelled & ~kept).any())
        original = torch.where(labelled, out["labels"][i], out["input_ids"][i])[kept]
        maskable = sum(int(t) not in specials for t in original.tolist())
        assert int(labelled.sum()) == min(max(int(0.15 * maskable + 0.5), 1), maskable)
    full = Collator(
        tok,
        seed=0,
        max_length=limit,
        mlm_probability=1.0,
        mask_replace_prob=1.0,
        random_replace_prob=0.0,
    )
    out = full(rows)
    want = torch.full_like(out["labels"], -100)
    for i, r in enumerate(rows):
        for j, tag in enumerate(out["tag"][i].tolist()):
            token = r["input_ids"][tag - 1] if tag else None
            if tag and r["special_tokens_mask"][tag - 1] == 0 and token not in specials:
                want[i, j] = token
    assert torch.equal(out["labels"], want)
    assert bool((out["input_ids"][want != -100] == tok.mask_token_id).all())


def test_pre_padded_rows_lose_surplus_padding_before_a_crop(bert_tokenizer):
    tok = bert_tokenizer
    enc = tok([CORPUS[0], CORPUS[2], CORPUS[1]], padding="max_length", max_length=48)
    ids = torch.tensor(enc["input_ids"])
    lens = [int(x) for x in torch.tensor(enc["attention_mask"]).sum(1)]  # 12, 19, 25
    for limit in (30, 20, 14):
        out = Collator(tok, mlm=False, seed=0, max_length=limit)({"input_ids": ids})
        assert out["input_ids"].shape[1] == min(limit, max(lens))
        for i, n in enumerate(lens):
            got = out["input_ids"][i][out["attention_mask"][i] == 1].tolist()
            if n <= limit:
                assert got == enc["input_ids"][i][:n]  # content kept whole, padding trimmed
            else:
                assert len(got) == limit and got[0] == tok.cls_token_id
                assert got[-1] == tok.sep_token_id
    # rows that fit with their padding keep every position
    out = Collator(tok, mlm=False, max_length=48)({"input_ids": ids})
    assert torch.equal(out["input_ids"], ids)


def test_width_and_pad_to_multiple_of(bert_tokenizer):
    rows = encoded_rows(bert_tokenizer)
    out = Collator(bert_tokenizer, max_length=13, pad_to_multiple_of=8)(rows)
    assert out["input_ids"].shape[1] == 16
    assert int(out["attention_mask"].sum(1).max()) <= 13
    out = Collator(bert_tokenizer, max_length=13, return_tensors="np")(rows)
    assert isinstance(out["input_ids"], np.ndarray) and out["input_ids"].shape[1] == 13


def test_rows_that_fit_are_untouched(bert_tokenizer):
    rows = encoded_rows(bert_tokenizer)
    longest = max(len(r["input_ids"]) for r in rows)
    a = Collator(bert_tokenizer, seed=4, max_length=longest)(rows)
    b = Collator(bert_tokenizer, seed=4)(rows)
    assert_batches_equal(a, b)


# ---- keys: keyed determinism, ranks, epochs, resume ------------------------------------------


def test_keyed_windows_follow_the_content_only(bert_tokenizer):
    tok = bert_tokenizer
    rows = encoded_rows(tok, seed=3)
    target = rows[1]
    assert len(target["input_ids"]) > 16

    def content_of(out, i):
        keep = out["attention_mask"][i] == 1
        return out["input_ids"][i][keep].tolist(), out["labels"][i][keep].tolist()

    make = lambda **kw: Collator(tok, seed=5, keyed=True, max_length=16, **kw)  # noqa: E731
    alone = content_of(make()([target]), 0)
    assert content_of(make()(rows), 1) == alone
    assert content_of(make()(rows[::-1]), len(rows) - 2) == alone
    left = copy.deepcopy(tok)
    left.padding_side = "left"
    assert content_of(Collator(left, seed=5, keyed=True, max_length=16)(rows), 1) == alone
    padded = {**target, "input_ids": target["input_ids"] + [0] * 9}
    padded = {
        k: v + [0] * 9 if isinstance(v, list) and k != "input_ids" else v for k, v in padded.items()
    }
    assert content_of(make()([padded]), 0) == alone
    # another epoch or seed moves the windows of most rows
    base = make()(rows)["tag"]
    for other in (make(epoch=1), Collator(tok, seed=6, keyed=True, max_length=16)):
        moved = (other(rows)["tag"] != base).any(1)
        assert int(moved.sum()) >= len(rows) // 2


def test_seeded_windows_differ_by_rank_and_keyed_ones_do_not(bert_tokenizer, monkeypatch):
    rows = encoded_rows(bert_tokenizer, seed=4)
    outs = {}
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        outs[rank] = {
            mode: Collator(bert_tokenizer, seed=2, keyed=mode == "keyed", max_length=12)(rows)
            for mode in ("seeded", "keyed")
        }
    assert torch.equal(outs["0"]["keyed"]["tag"], outs["1"]["keyed"]["tag"])
    moved = (outs["0"]["seeded"]["tag"] != outs["1"]["seeded"]["tag"]).any(1)
    assert int(moved.sum()) >= len(rows) // 2


def test_seeded_windows_resume_exactly(bert_tokenizer):
    rows = encoded_rows(bert_tokenizer, seed=5)
    batches = [rows[k : k + 6] for k in range(0, 24, 6)]
    run = Collator(bert_tokenizer, seed=9, max_length=14)
    run.set_epoch(1)
    uninterrupted = [run(b) for b in batches]
    resumed = Collator(bert_tokenizer, seed=9, max_length=14)
    resumed.set_epoch(1, skip_batches=2)
    for k in (2, 3):
        assert_batches_equal(resumed(batches[k]), uninterrupted[k])
    # positions enter the key: the same rows at positions 0 and 1 get other windows
    again = Collator(bert_tokenizer, seed=9, max_length=14)
    first, second = again(batches[0]), again(batches[0])
    assert bool((first["tag"] != second["tag"]).any())


def test_torch_seeded_windows_follow_torch_generator(bert_tokenizer):
    rows = encoded_rows(bert_tokenizer, seed=6)
    c = Collator(bert_tokenizer, max_length=12)
    torch.manual_seed(0)
    a = c(rows)
    torch.manual_seed(0)
    assert_batches_equal(c(rows), a)
    assert bool((c(rows)["tag"] != a["tag"]).any())


# ---- the device-masking recipe: padding-only collator + mask_tensor ---------------------------


@pytest.mark.parametrize("masking", [None, "word", "span"])
@pytest.mark.parametrize("mode", ["keyed", "seeded", "torch"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_mask_tensor_of_the_cropping_padder_equals_the_collator(bert_dir, masking, mode, side):
    tok = AutoTokenizer.from_pretrained(bert_dir, padding_side=side)
    rows = [
        {k: r[k] for k in ("input_ids", "token_type_ids")}
        for r in encoded_rows(tok, seed=7, bare_every=4)
    ]
    kw = dict(masking=masking, mlm_probability=0.3, max_length=15)
    if mode != "torch":
        kw.update(seed=21, keyed=mode == "keyed")
    masker = Collator(tok, **kw)
    padder = dataclasses.replace(masker, mlm=False, whole_word_mask=False, masking=None)
    device_masker = dataclasses.replace(masker)
    for epoch in (0, 1):
        for c in (masker, padder, device_masker):
            c.set_epoch(epoch)
        for _ in range(2):
            torch.manual_seed(epoch)
            want = masker(rows)
            torch.manual_seed(epoch)
            padded = padder(rows)
            ids, labels = device_masker.mask_tensor(
                padded["input_ids"], attention_mask=padded["attention_mask"]
            )
            assert torch.equal(ids, want["input_ids"])
            assert torch.equal(labels, want["labels"])
            assert torch.equal(padded["attention_mask"], want["attention_mask"])
            assert torch.equal(padded["token_type_ids"], want["token_type_ids"])


def test_methods_that_mask_in_place_refuse_rows_longer_than_max_length(bert_tokenizer):
    c = Collator(bert_tokenizer, seed=0, max_length=8)
    ids = torch.tensor([[101, *range(2000, 2010), 102], [101, 2000, 102, *[0] * 9]])
    for call in (c.torch_mask_tokens, c.mask_tensor):
        with pytest.raises(ValueError, match=r"row 0 has 12 tokens, more than max_length=8"):
            call(ids.clone())
    with pytest.raises(ValueError, match=r"row 0 has 12 tokens, more than max_length=8"):
        c.numpy_mask_tokens(ids.numpy().copy())
    short = ids[1:].clone()  # wider than max_length only by its padding
    out, labels = c.torch_mask_tokens(short.clone())
    assert out.shape == short.shape and labels.shape == short.shape
    c.mask_tensor(short)


# ---- sentence pairs and bad values ------------------------------------------------------------


def test_pairs_are_not_cropped(bert_tokenizer):
    tok = bert_tokenizer
    enc = tok(CORPUS[2], CORPUS[7])
    pair = {k: list(v) for k, v in enc.items()}
    n = len(pair["input_ids"])
    c = Collator(tok, seed=0, max_length=n - 5)
    with pytest.raises(ValueError, match=r"row 1 is a sentence pair \(its token_type_ids hold two"):
        c([{k: v[:10] for k, v in pair.items()}, pair])
    single = {k: list(v) for k, v in tok(CORPUS[2] + " " + CORPUS[7]).items()}
    for label in ("next_sentence_label", "sentence_order_label"):
        with pytest.raises(ValueError, match=rf"the batch has a '{label}' column.*max_length="):
            c([{**single, label: 1}])
    # pairs within max_length are collated as they are
    out = Collator(tok, seed=0, max_length=n)([{**pair, "next_sentence_label": 0}])
    assert out["input_ids"].shape == (1, n)
    assert out["token_type_ids"][0].tolist() == pair["token_type_ids"]


@pytest.mark.parametrize("bad", [0, -3, 2**70])
def test_bad_max_length_values(bert_tokenizer, bad):
    with pytest.raises((ValueError, OverflowError), match="max_length"):
        Collator(bert_tokenizer, max_length=bad)


@pytest.mark.parametrize("bad", ["128", 1.5, True, [128]])
def test_max_length_must_be_an_integer(bert_tokenizer, bad):
    with pytest.raises(TypeError, match=r"^max_length must be an integer"):
        Collator(bert_tokenizer, max_length=bad)


def test_max_length_must_leave_room_inside_the_special_tokens(bert_tokenizer, bpe_tokenizer):
    with pytest.raises(
        ValueError, match=r"max_length=2 is too small: .*2 special tokens \(\[CLS\] \[SEP\]\).*>= 3"
    ):
        Collator(bert_tokenizer, max_length=2)
    c = Collator(bert_tokenizer, max_length=3, mlm=False)
    out = c([[101, 5, 6, 7, 102]])
    assert out["input_ids"][0].tolist()[0] == 101 and out["input_ids"][0].tolist()[2] == 102
    with pytest.raises(ValueError, match="max_length=1 is too small"):
        c.max_length = 1
    assert c.max_length == 3
    c.max_length = np.int64(4)
    assert type(c.max_length) is int and c.max_length == 4
    c.max_length = None
    assert c.max_length is None
    with pytest.raises(ValueError, match=r"<s> </s>"):
        Collator(bpe_tokenizer, max_length=2)


def test_max_length_travels_with_copies_and_hashes(bert_tokenizer):
    c = Collator(bert_tokenizer, seed=1, max_length=32)
    for other in (pickle.loads(pickle.dumps(c)), copy.deepcopy(c), dataclasses.replace(c)):
        assert other.max_length == 32
        other.max_length = 16  # an independent copy
        assert c.max_length == 32
    assert Hasher.hash(c) == Hasher.hash(Collator(bert_tokenizer, seed=1, max_length=32))
    assert Hasher.hash(c) != Hasher.hash(Collator(bert_tokenizer, seed=1, max_length=31))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_persistent_workers_see_a_new_max_length(bert_tokenizer, context):
    rows = encoded_rows(bert_tokenizer, n=16, seed=8)
    c = Collator(bert_tokenizer, seed=0, mlm=False, max_length=20)
    loader = DataLoader(
        rows,
        batch_size=4,
        collate_fn=c,
        num_workers=2,
        persistent_workers=True,
        multiprocessing_context=context,
    )
    widths = []
    for limit in (20, 10):
        c.max_length = limit
        widths.append({int(b["input_ids"].shape[1]) for b in loader})
    assert widths == [{20}, {10}]


def test_fixed_mask_evaluation_crops_at_the_collators_own_length_and_stays_fixed(bert_tokenizer):
    rows = encoded_rows(bert_tokenizer, n=12, seed=9)
    eval_rows = [{k: r[k] for k in ("input_ids", "token_type_ids")} for r in rows]
    collator = Collator(bert_tokenizer, seed=1, max_length=16)
    callback = mlmkit.FixedMaskPerplexityCallback(eval_rows, collator, batch_size=4)
    collator._lengths.set_stages([0], [8])  # a schedule's stages are the training batches' own
    first = list(callback.batches())
    assert {b["input_ids"].shape[1] for b in first} == {16}
    for use_torch in (True, False):  # both paths give the same fixed, cropped batches
        again = list(callback.batches(use_torch=use_torch))
        for a, b in zip(first, again, strict=True):
            assert torch.equal(a["input_ids"], b["input_ids"])
            assert torch.equal(a["labels"], b["labels"])
