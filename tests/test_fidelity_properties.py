"""Properties of every collated batch (hypothesis): no token the user passed is lost, moved or
changed unless it is selected for masking; a given attention mask is kept exactly; special
tokens are never selected. Rows carry pad ids anywhere (leading, inside, trailing), with and
without their own attention masks, for tokenizers whose pad id is unique ([PAD]) or shared with
another special token ([SEP], GPT-2's <|endoftext|>), padded on either side."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlmkit

TOKENIZERS = ["bert_tokenizer", "bert_pad_sep", "gpt2_like"]


@st.composite
def batches(draw, vocab_size, pad_id, specials):
    n_rows = draw(st.integers(1, 5))
    token = st.one_of(st.integers(0, vocab_size - 1), st.sampled_from([pad_id, *specials]))
    rows, masks = [], []
    for _ in range(n_rows):
        row = draw(st.lists(token, min_size=1, max_size=24))
        rows.append(row)
        masks.append(draw(st.lists(st.integers(0, 1), min_size=len(row), max_size=len(row))))
    with_attention = draw(st.booleans())
    options = draw(
        st.fixed_dictionaries(
            {
                "mlm": st.booleans(),
                "masking": st.sampled_from(["token", "word", "span"]),
                "mlm_probability": st.sampled_from([0.0, 0.15, 0.5, 1.0]),
                "pad_to_multiple_of": st.sampled_from([None, 4, 16]),
                "keyed": st.booleans(),
                "return_tensors": st.sampled_from(["pt", "np"]),
            }
        )
    )
    if not options["mlm"]:
        options["masking"] = None
    return rows, (masks if with_attention else None), options, draw(st.booleans())


def _check(tok, rows, masks, options, left):
    tok = copy.copy(tok)
    tok.padding_side = "left" if left else "right"
    collator = mlmkit.DataCollatorForLanguageModeling(tok, seed=7, **options)
    features = [{"input_ids": list(r)} for r in rows]
    if masks is not None:
        for f, m in zip(features, masks, strict=True):
            f["attention_mask"] = list(m)
    before = copy.deepcopy(features)
    batch = collator(features)
    assert features == before  # the inputs themselves are not modified
    ids, labels = np.asarray(batch["input_ids"]), np.asarray(batch["labels"])
    attention = np.asarray(batch["attention_mask"])
    tables = collator.tables
    pad, mask_id = tok.pad_token_id, tok.mask_token_id
    width = max(map(len, rows))
    multiple = options["pad_to_multiple_of"]
    if multiple:
        width = -(-width // multiple) * multiple
    assert ids.shape == labels.shape == attention.shape == (len(rows), width)
    for i, row in enumerate(rows):
        n = len(row)
        at = width - n if left else 0
        got, lab, att = ids[i, at : at + n], labels[i, at : at + n], attention[i, at : at + n]
        row = np.asarray(row)
        kept = lab == -100
        # unselected tokens are exactly as given, in their places
        assert (got[kept] == row[kept]).all()
        if options["mlm"]:
            # selected tokens carry their original id as label and become [MASK], a random
            # non-special token or themselves; special tokens are never selected
            assert (lab[~kept] == row[~kept]).all()
            assert not tables.is_special[row[~kept]].any()
            replaced = got[~kept]
            ok = (replaced == mask_id) | (replaced == row[~kept]) | ~tables.is_special[replaced]
            assert ok.all()
        else:
            assert (got == row).all()
            assert (lab == np.where(row == pad, -100, row)).all()
        if masks is not None:
            assert (att == np.asarray(masks[i])).all()  # the given mask, exactly
        elif not tables.pad_is_unique:
            assert (att == 1).all()  # pad ids that may be content stay attended
        else:
            # only pad ids at the padding side's end are taken for padding
            content = np.flatnonzero(row != pad)
            if content.size == 0:
                assert (att == 0).all()
            elif left:
                first = int(content[0])
                assert (att[:first] == 0).all() and (att[first:] == 1).all()
            else:
                last = int(content[-1])
                assert (att[: last + 1] == 1).all() and (att[last + 1 :] == 0).all()
        outside = np.ones(width, dtype=bool)
        outside[at : at + n] = False
        assert (ids[i, outside] == pad).all()
        assert (labels[i, outside] == -100).all()
        assert (attention[i, outside] == 0).all()


@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_no_token_is_lost_moved_or_changed_unless_selected(request, tok_name):
    tok = request.getfixturevalue(tok_name)
    specials = sorted({int(t) for t in tok.all_special_ids})
    vocab = len(tok)

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batches(vocab, tok.pad_token_id, specials))
    def check(case):
        rows, masks, options, left = case
        _check(tok, rows, masks, options, left)

    check()


@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_keyed_masks_follow_the_content_not_the_surplus_padding(request, tok_name):
    """Keyed masks are a function of a row's content: the same rows pre-padded (with an
    attention mask saying so) get the same masks at the same positions."""
    tok = request.getfixturevalue(tok_name)
    rng = np.random.default_rng(11)
    pad = tok.pad_token_id
    for masking in ("token", "word", "span"):
        collator = mlmkit.DataCollatorForLanguageModeling(
            tok, seed=3, keyed=True, masking=masking, mlm_probability=0.4
        )
        rows = [rng.integers(5, len(tok), int(rng.integers(3, 30))).tolist() for _ in range(6)]
        plain = collator([{"input_ids": r} for r in rows])
        width = plain["input_ids"].shape[1] + 7
        padded = collator(
            [
                {
                    "input_ids": r + [pad] * (width - len(r)),
                    "attention_mask": [1] * len(r) + [0] * (width - len(r)),
                }
                for r in rows
            ]
        )
        w = plain["input_ids"].shape[1]
        for key in ("input_ids", "labels", "attention_mask"):
            assert (padded[key][:, :w] == plain[key]).all(), key
        assert (padded["labels"][:, w:] == -100).all()
        assert (plain["labels"] != -100).sum() > 10
