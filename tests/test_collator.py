"""DataCollatorForLanguageModeling: structure versus transformers, masking semantics, inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st

import mlmkit
from mlmkit.vocab import special_ids

from .reference import keyed_row_key, mask_row

# z for a two-sided 99.9% interval
Z999 = 3.2905


def binomial_ok(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= Z999 * np.sqrt(n * p * (1 - p))


def features(tokenizer, texts, **kw):
    enc = tokenizer(texts, **kw)
    return [{k: enc[k][i] for k in enc} for i in range(len(texts))]


TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world!",
    "Masked language models learn by predicting hidden tokens from their context.",
    "이순신은 조선 중기의 무신이다.",
]


@pytest.mark.parametrize("return_tensors", ["pt", "np"])
@pytest.mark.parametrize("pad_to_multiple_of", [None, 8])
def test_structure_matches_transformers(any_tokenizer, return_tensors, pad_to_multiple_of):
    feats = features(any_tokenizer, TEXTS)
    kw = dict(pad_to_multiple_of=pad_to_multiple_of, return_tensors=return_tensors)
    ours = mlmkit.DataCollatorForLanguageModeling(any_tokenizer, seed=1, **kw)(feats)
    theirs = transformers.DataCollatorForLanguageModeling(any_tokenizer, seed=1, **kw)(feats)
    assert set(ours) == set(theirs)
    array_type = torch.Tensor if return_tensors == "pt" else np.ndarray
    for key in theirs:
        assert isinstance(ours[key], array_type)
        assert ours[key].shape == theirs[key].shape, key
        assert ours[key].dtype == theirs[key].dtype, key
    np.testing.assert_array_equal(
        np.asarray(ours["attention_mask"]), np.asarray(theirs["attention_mask"])
    )
    # transformers' padded ids with nothing masked:
    plain = transformers.DataCollatorForLanguageModeling(any_tokenizer, mlm=False, **kw)(feats)[
        "input_ids"
    ]
    ids, labels = np.asarray(ours["input_ids"]), np.asarray(ours["labels"])
    unmasked = labels == -100
    np.testing.assert_array_equal(ids[unmasked], np.asarray(plain)[unmasked])
    np.testing.assert_array_equal(labels[~unmasked], np.asarray(plain)[~unmasked])
    if "token_type_ids" in theirs:
        np.testing.assert_array_equal(
            np.asarray(ours["token_type_ids"]), np.asarray(theirs["token_type_ids"])
        )


def test_causal_labels_equal_transformers_exactly(any_tokenizer):
    feats = features(any_tokenizer, TEXTS)
    ours = mlmkit.DataCollatorForLanguageModeling(any_tokenizer, mlm=False)(feats)
    theirs = transformers.DataCollatorForLanguageModeling(any_tokenizer, mlm=False)(feats)
    assert set(ours) == set(theirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def test_left_padding_matches_transformers(bert_tokenizer):
    tok = transformers.AutoTokenizer.from_pretrained(
        bert_tokenizer.name_or_path, padding_side="left"
    )
    feats = features(tok, TEXTS)
    ours = mlmkit.DataCollatorForLanguageModeling(tok, mlm=False)(feats)
    theirs = transformers.DataCollatorForLanguageModeling(tok, mlm=False)(feats)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def test_probability_zero_and_one(bert_tokenizer):
    feats = features(bert_tokenizer, TEXTS)
    plain = transformers.DataCollatorForLanguageModeling(bert_tokenizer, mlm=False)(feats)
    none = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, mlm_probability=0.0, seed=0)(
        feats
    )
    assert torch.equal(none["input_ids"], plain["input_ids"])
    assert (none["labels"] == -100).all()
    every = mlmkit.DataCollatorForLanguageModeling(
        bert_tokenizer, mlm_probability=1.0, mask_replace_prob=1.0, random_replace_prob=0.0, seed=0
    )(feats)
    specials = torch.tensor(sorted(special_ids(bert_tokenizer)))
    is_special = torch.isin(plain["input_ids"], specials)
    assert (every["input_ids"][~is_special] == bert_tokenizer.mask_token_id).all()
    assert torch.equal(every["input_ids"][is_special], plain["input_ids"][is_special])
    assert torch.equal(every["labels"][~is_special], plain["input_ids"][~is_special])
    assert (every["labels"][is_special] == -100).all()


def synthetic_rows(tokenizer, n_rows, length, rng, vary=True):
    specials = special_ids(tokenizer)
    normal = np.array([i for i in range(len(tokenizer)) if i not in specials])
    rows = []
    for _ in range(n_rows):
        n = int(rng.integers(length // 2, length + 1)) if vary else length
        body = rng.choice(normal, size=n - 2)
        rows.append([tokenizer.cls_token_id, *body.tolist(), tokenizer.sep_token_id])
    return rows


@pytest.mark.parametrize("mask_count", ["bernoulli", "exact"])
def test_rates_and_80_10_10_over_a_million_tokens(bert_tokenizer, mask_count):
    rng = np.random.default_rng(0)
    rows = synthetic_rows(bert_tokenizer, 256, 512, rng, vary=False)
    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=3, mask_count=mask_count)
    specials = np.array(sorted(special_ids(bert_tokenizer)))
    maskable = selected = masked = random_ = kept = 0
    for _ in range(8):  # 8 x 256 x 510 = 1.04 M maskable tokens
        batch = collator(rows)
        orig = np.array(rows)
        ids, labels = batch["input_ids"].numpy(), batch["labels"].numpy()
        sel = labels != -100
        assert not np.isin(orig[sel], specials).any(), "a special token was selected"
        assert not np.isin(ids[sel & (ids != bert_tokenizer.mask_token_id)], specials).any()
        np.testing.assert_array_equal(labels[sel], orig[sel])
        np.testing.assert_array_equal(ids[~sel], orig[~sel])
        maskable += int((~np.isin(orig, specials)).sum())
        selected += int(sel.sum())
        masked += int((ids[sel] == bert_tokenizer.mask_token_id).sum())
        kept += int((ids[sel] == orig[sel]).sum())
        random_ += int(((ids[sel] != orig[sel]) & (ids[sel] != bert_tokenizer.mask_token_id)).sum())
    assert maskable >= 1_000_000
    if mask_count == "bernoulli":
        assert binomial_ok(selected, maskable, 0.15), selected / maskable
    else:
        # round(0.15 * 510) = 77 per row, exactly
        assert selected == 8 * 256 * 77
    assert binomial_ok(masked, selected, 0.8), masked / selected
    # a random draw equal to the original token counts as kept (probability ~1/30k)
    assert binomial_ok(random_, selected, 0.1 * (1 - 1 / 30000)), random_ / selected
    assert binomial_ok(kept, selected, 0.1 + 0.1 / 30000), kept / selected


def test_random_tokens_distribution_options(bert_tokenizer):
    rows = synthetic_rows(bert_tokenizer, 64, 256, np.random.default_rng(1))
    specials = np.array(sorted(special_ids(bert_tokenizer)))
    for option, may_be_special in (("non_special", False), ("uniform", True)):
        collator = mlmkit.DataCollatorForLanguageModeling(
            bert_tokenizer,
            seed=0,
            mlm_probability=1.0,
            mask_replace_prob=0.0,
            random_replace_prob=1.0,
            random_tokens=option,
        )
        drawn = []
        for _ in range(30):
            batch = collator(rows)
            drawn.append(batch["input_ids"][batch["labels"] != -100].numpy())
        drawn = np.concatenate(drawn)
        assert drawn.min() >= 0 and drawn.max() < len(bert_tokenizer)
        n_special = int(np.isin(drawn, specials).sum())
        if may_be_special:
            # ~ len(drawn) * 5 / 30522 specials expected under uniform draws
            assert n_special > 0
        else:
            assert n_special == 0


def test_exact_count_and_max_predictions(bert_tokenizer):
    rng = np.random.default_rng(2)
    rows = synthetic_rows(bert_tokenizer, 64, 200, rng)
    n_maskable = np.array([len(r) - 2 for r in rows])
    exact = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0, mask_count="exact")(rows)
    counts = (exact["labels"] != -100).sum(1).numpy()
    np.testing.assert_array_equal(counts, np.maximum(np.floor(0.15 * n_maskable + 0.5), 1))
    capped = mlmkit.DataCollatorForLanguageModeling(
        bert_tokenizer, seed=0, mask_count="exact", max_predictions=5
    )(rows)
    assert ((capped["labels"] != -100).sum(1) == 5).all()
    bern = mlmkit.DataCollatorForLanguageModeling(
        bert_tokenizer, seed=0, mlm_probability=0.5, max_predictions=20
    )(rows)
    counts = (bern["labels"] != -100).sum(1)
    assert counts.max() == 20 and (counts <= 20).all()
    # a row of one maskable token still gets its mask in exact mode
    tiny = [[bert_tokenizer.cls_token_id, 2000, bert_tokenizer.sep_token_id]]
    one = mlmkit.DataCollatorForLanguageModeling(
        bert_tokenizer, seed=0, mask_count="exact", mlm_probability=0.01
    )(tiny)
    assert (one["labels"] != -100).sum() == 1


@given(
    rows=st.lists(st.lists(st.integers(0, 599), min_size=1, max_size=40), min_size=1, max_size=6),
    p=st.sampled_from([0.0, 0.15, 0.5, 1.0]),
    exact=st.booleans(),
    cap=st.sampled_from([None, 1, 3]),
    seed=st.integers(0, 2**64 - 1),
    epoch=st.integers(0, 5),
)
@settings(max_examples=60, deadline=None)
def test_keyed_masks_equal_the_reference(bpe_tokenizer, rows, p, exact, cap, seed, epoch):
    tok = bpe_tokenizer
    pad = tok.pad_token_id
    rows = [[t for t in r if t != pad] or [5] for r in rows]  # pad ids at the ends are padding
    collator = mlmkit.DataCollatorForLanguageModeling(
        tok,
        seed=seed,
        keyed=True,
        epoch=epoch,
        mlm_probability=p,
        mask_count="exact" if exact else "bernoulli",
        max_predictions=cap,
        return_tensors="np",
    )
    batch = collator(rows)
    tables = collator.tables
    specials = set(np.flatnonzero(tables.is_special).tolist())
    for i, row in enumerate(rows):
        ids, labels = mask_row(
            row,
            keyed_row_key(seed, epoch, row),
            special=specials,
            random_ids=tables.random_ids.tolist(),
            mask_id=tok.mask_token_id,
            p=p,
            mask_replace=0.8,
            random_replace=0.1,
            exact=exact,
            cap=cap,
        )
        n = len(row)
        assert batch["input_ids"][i, :n].tolist() == ids
        assert batch["labels"][i, :n].tolist() == labels
        assert (batch["input_ids"][i, n:] == pad).all()
        assert (batch["labels"][i, n:] == -100).all()
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (
            batch["input_ids"].shape[1] - n
        )


def test_input_forms_give_the_same_batch(bert_tokenizer):
    rows = synthetic_rows(bert_tokenizer, 6, 40, np.random.default_rng(5))
    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=9, keyed=True)
    ref = collator(rows)
    forms = {
        "dicts of lists": [{"input_ids": r} for r in rows],
        "tuples": [tuple(r) for r in rows],
        "numpy int32 rows": [np.array(r, dtype=np.int32) for r in rows],
        "torch rows": [torch.tensor(r) for r in rows],
        "dicts of tensors": [{"input_ids": torch.tensor(r)} for r in rows],
        "dict of lists": {"input_ids": rows},
    }
    for name, form in forms.items():
        got = collator(form)
        for key in ref:
            assert torch.equal(got[key], ref[key]), (name, key)
    # an already padded 2-D batch (right padding, pad id 0) gives the same result too
    width = max(map(len, rows))
    padded = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        padded[i, : len(r)] = r
    for form in (padded, torch.from_numpy(padded), {"input_ids": padded}):
        got = collator(form)
        for key in ref:
            assert torch.equal(got[key], ref[key]), key
    # non-contiguous 2-D input is copied, not misread
    wide = np.zeros((len(rows), 2 * width), dtype=np.int64)
    wide[:, ::2] = padded
    got = collator(wide[:, ::2])
    assert torch.equal(got["input_ids"], ref["input_ids"])


def test_prepadded_rows_keep_attention_and_masks(bert_tokenizer):
    texts = ["a short one", "a slightly longer sentence to pad against"]
    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=4, keyed=True)
    dynamic = collator(features(bert_tokenizer, texts))
    fixed = collator(features(bert_tokenizer, texts, padding="max_length", max_length=32))
    width = dynamic["input_ids"].shape[1]
    assert fixed["input_ids"].shape == (2, 32)
    for key in ("input_ids", "labels", "attention_mask"):
        assert torch.equal(fixed[key][:, :width], dynamic[key]), key
    assert (fixed["attention_mask"][:, width:] == 0).all()


def test_special_tokens_mask_column_is_honoured_and_dropped(bert_tokenizer):
    feats = features(bert_tokenizer, TEXTS, return_special_tokens_mask=True)
    for f in feats:  # also protect the first real token of every row
        f["special_tokens_mask"] = list(f["special_tokens_mask"])
        f["special_tokens_mask"][1] = 1
    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0, mlm_probability=1.0)
    batch = collator(feats)
    assert "special_tokens_mask" not in batch
    assert (batch["labels"][:, 1] == -100).all()
    assert (batch["labels"][:, 2] != -100).all()


def test_other_columns_pass_through(bert_tokenizer):
    feats = features(bert_tokenizer, ["first sentence", "second one here"])
    for i, f in enumerate(feats):
        f["next_sentence_label"] = i
    batch = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0)(feats)
    assert batch["next_sentence_label"].tolist() == [0, 1]
    assert batch["next_sentence_label"].dtype == torch.int64
    assert batch["token_type_ids"].shape == batch["input_ids"].shape


def test_bad_inputs_raise_clear_errors(bert_tokenizer, bpe_tokenizer):
    C = mlmkit.DataCollatorForLanguageModeling
    no_mask = transformers.AutoTokenizer.from_pretrained(bert_tokenizer.name_or_path)
    no_mask.mask_token = None
    with pytest.raises(ValueError, match="mask token"):
        C(no_mask)
    no_pad = transformers.AutoTokenizer.from_pretrained(bert_tokenizer.name_or_path)
    no_pad.pad_token = None
    # a pad token is needed only to pad: equal rows collate, unequal ones name the lengths
    assert C(no_pad, seed=0)([[101, 7592, 102], [101, 2088, 102]])["input_ids"].shape == (2, 3)
    with pytest.raises(ValueError, match=r"row lengths: 3, 2\) but the tokenizer has no pad"):
        C(no_pad, seed=0)([[101, 7592, 102], [101, 102]])
    for kw, match in [
        (dict(mlm_probability=1.5), "mlm_probability"),
        (dict(mlm_probability=-0.1), "mlm_probability"),
        (dict(mask_replace_prob=0.9, random_replace_prob=0.2), "must not exceed 1"),
        (dict(random_replace_prob=-1), "random_replace_prob"),
        (dict(return_tensors="tf"), "return_tensors"),
        (dict(mask_count="some"), "mask_count"),
        (dict(max_predictions=0), "max_predictions"),
        (dict(pad_to_multiple_of=0), "pad_to_multiple_of"),
        (dict(keyed=True), "pass a seed"),
    ]:
        with pytest.raises(ValueError, match=match):
            C(bert_tokenizer, **kw)
    c = C(bert_tokenizer, seed=0)
    vocab = len(bert_tokenizer)
    for batch, exc, match in [
        ([], ValueError, "empty"),
        ({"input_ids": []}, ValueError, "empty"),
        ([[101, 2000], []], ValueError, "row 1 of input_ids is empty"),
        ([[101, -5, 102]], ValueError, r"token id -5 at row 0, position 1"),
        ([[101, 7], [101, vocab, 102]], ValueError, rf"token id {vocab} at row 1, position 1"),
        ([[101, 2.5, 102]], TypeError, "row 0, position 1 is a float"),
        (np.array([[101.0, 2000.0]]), TypeError, "float64"),
        (np.array([[1, 2], [3]], dtype=object), TypeError, "ragged"),
        ([[101, [1, 2]]], TypeError, "row 0, position 1 is a list"),
        (np.zeros((2, 3, 4), dtype=np.int64), ValueError, "2-D"),
        (
            [{"input_ids": [101, 7, 102], "token_type_ids": [0, 0]}],
            ValueError,
            "token_type_ids row 0 has 2",
        ),
        (
            [{"input_ids": [101, 102]}, {"input_ids": [101, 102], "x": [1, 1]}],
            ValueError,
            "columns",
        ),
        ([{"text": "hi"}], ValueError, "no 'input_ids'"),
        ([{"input_ids": [101, 102], "text": "hi"}], ValueError, "holds strings"),
        ("not a batch", TypeError, "a batch must be"),
    ]:
        with pytest.raises(exc, match=match):
            c(batch)
    with pytest.raises(ValueError, match="not recognized"):
        c([[101, 102]], return_tensors="jax")


BIG = 2**70


@pytest.mark.parametrize(
    "batch, exc, match",
    [
        ([[101, True, 102]], TypeError, r"row 0, position 1 is True: .*not bools"),
        ([np.array([101, 1, 102], dtype=bool)], TypeError, "dtype bool"),
        (torch.tensor([[True, False]]), TypeError, "dtype bool"),
        (["hello world"], TypeError, r"row 0 is a string \('hello world'\): .*tokenize"),
        ([{"input_ids": "hello world"}], TypeError, "row 0 is a string.*tokenize the text first"),
        ({"input_ids": "hello"}, TypeError, "input_ids column is a string.*tokenize"),
        ([["hello", "world"]], TypeError, r"position 0 is a str \('hello'\).*tokenize"),
        ([np.array(["a", "b"])], TypeError, "holds strings.*tokenize"),
        ([[101, BIG, 102]], OverflowError, f"position 1 holds {BIG}, which does not fit in 64"),
        ([np.array([101, BIG], dtype=object)], OverflowError, f"{BIG} at position 1.*64 bits"),
        (np.array([[101, BIG]], dtype=object), OverflowError, "does not fit in 64 bits"),
        ([torch.empty(3, dtype=torch.long, device="meta")], ValueError, "row 0 .*meta device"),
        (
            [{"input_ids": [101, 7, 102], "attention_mask": [1, 2, 1]}],
            ValueError,
            "attention_mask row 0, position 1 holds 2",
        ),
        (
            [{"input_ids": [101, 7, 102], "attention_mask": [1, 1]}],
            ValueError,
            "attention_mask row 0 has 2 values but input_ids row 0 has 3",
        ),
        (
            {"input_ids": [[101, 7, 102]], "attention_mask": [[1, 1, 1], [1]]},
            ValueError,
            "attention_mask has 2 rows but input_ids has 1",
        ),
    ],
    ids=lambda x: None,
)
def test_bad_rows_name_the_problem(bert_tokenizer, batch, exc, match):
    with pytest.raises(exc, match=match):
        mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0)(batch)


def test_meta_tensors_are_refused_on_the_torch_path(bert_tokenizer):
    c = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0)
    meta = torch.empty((2, 3), dtype=torch.long, device="meta")
    with pytest.raises(ValueError, match="meta device"):
        c.mask_tensor(meta)
    with pytest.raises(ValueError, match="meta device"):
        c.torch_mask_tokens(meta)


def test_core_rejects_non_contiguous_and_mismatched_buffers(bert_tokenizer):
    from mlmkit import _core

    c = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0)
    t = c.tables
    values = np.arange(100, 120, dtype=np.int64)
    starts, lens = np.array([0, 10]), np.array([10, 10])
    out = [np.empty((2, 10), np.int64) for _ in range(3)]

    def call(v=values, s=starts, n=lens, o=out):
        _core.collate_batch(
            v,
            s,
            n,
            None,
            t.is_special,
            t.random_ids,
            np.zeros(1, np.uint32),
            False,
            True,
            0.15,
            0.8,
            0.1,
            False,
            None,
            t.mask_id,
            t.pad_id,
            False,
            *o,
        )

    call()
    with pytest.raises(ValueError, match="C-contiguous"):
        call(v=np.arange(100, 140, dtype=np.int64)[::2])
    with pytest.raises(ValueError, match="C-contiguous"):
        call(o=[np.empty((2, 20), np.int64)[:, ::2], out[1], out[2]])
    with pytest.raises(ValueError, match="shape of out_ids"):
        call(o=[out[0], np.empty((2, 11), np.int64), out[2]])
    with pytest.raises(ValueError, match="spans"):
        call(n=np.array([10, 11]))
    with pytest.raises(ValueError, match="longer|more than the output width"):
        call(o=[np.empty((2, 5), np.int64) for _ in range(3)])
    with pytest.raises(TypeError, match="integer numpy array"):
        call(v=values.astype(np.float32))


def test_tokenizer_changes_after_construction_are_seen(bert_dir):
    tok = transformers.AutoTokenizer.from_pretrained(bert_dir)
    c = mlmkit.DataCollatorForLanguageModeling(
        tok, seed=0, mlm_probability=1.0, mask_replace_prob=1.0, random_replace_prob=0.0
    )
    rows = [[101, 7592, 2088, 102]]
    assert (c(rows)["input_ids"][0, 1:3] == 103).all()
    tok.mask_token = "[unused0]"  # a new mask token
    assert (c(rows)["input_ids"][0, 1:3] == tok.convert_tokens_to_ids("[unused0]")).all()
    tok.add_special_tokens({"additional_special_tokens": ["[NEW]"]})  # a new special token
    new = tok.convert_tokens_to_ids("[NEW]")
    batch = c([[101, new, 7592, 102]])
    assert batch["labels"][0, 1] == -100 and batch["input_ids"][0, 1] == new
    tok.mask_token = None
    with pytest.raises(ValueError, match="mask token"):
        c(rows)
    # the tables are rebuilt only when something changed
    tok.mask_token = "[MASK]"
    tables = c.tables
    c(rows)
    assert c.tables is tables
