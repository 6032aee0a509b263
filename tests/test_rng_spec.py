"""The generator the Rust core uses is the one documented (so it can be reimplemented)."""

import decimal
import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmkit import DataCollatorForLanguageModeling, _core
from mlmkit.torch_masking import rng as torch_rng
from mlmkit.vocab import special_ids

from .oracles.rng import LANE_SELECT, fmix32, hash_words, keyed_row_key, lane, threshold
from .oracles.tokens import mask_row


@given(st.integers(0, 2**32 - 1), st.lists(st.integers(0, 2**32 - 1), max_size=20))
@settings(max_examples=200, deadline=None)
def test_hash_words_matches_reference(seed, words):
    assert _core.hash_words(seed, words) == hash_words(seed, words)


@given(st.integers(0, 2**32 - 1), st.integers(1, 5))
@settings(max_examples=50, deadline=None)
def test_lanes_match_reference(row_key, lane_id):
    got = _core.lane_values(row_key, lane_id, 64)
    assert got.dtype == np.uint32
    assert got.tolist() == [lane(row_key, lane_id, i) for i in range(64)]


def test_known_murmur3_vectors():
    assert hash_words(0, []) == 0
    assert hash_words(1, []) == 0x514E28B7
    assert hash_words(0, [0x74736574]) == 0xBA6BD213  # "test"
    assert fmix32(0) == 0


def test_oracle_thresholds_round_halves_up_and_nothing_else():
    """The oracle's threshold against round-half-up written with Python's decimal module, and the
    torch path's against the oracle, where the two roundings people write by mistake go wrong:
    exact halves (Python's `round` goes to even) and the double just below a half
    (`floor(x + 0.5)` rounds the sum up to 1)."""
    below_half = math.nextafter(0.5, 0.0)
    assert math.floor(below_half + 0.5) == 1  # the naive formula's error
    halves = [(2 * v + 1) / 2**33 for v in (0, 1, 2, 3, 12345, 2**31, 2**32 - 1)]
    cases = [0.0, 1.0, 0.15, 1 / 3, below_half / 2**32, *halves]
    cases += [math.nextafter(p, 0.0) for p in halves] + [math.nextafter(p, 1.0) for p in halves]
    for p in cases:
        x = decimal.Decimal(p) * 2**32  # exact: Decimal(float) holds every digit
        expected = int(x.to_integral_value(rounding=decimal.ROUND_HALF_UP))
        assert threshold(p) == expected, p
        assert torch_rng.threshold(p) == expected, p
    assert threshold(below_half / 2**32) == 0
    assert threshold(5 / 2**33) == 3 and round(2.5) == 2


def test_kernel_rounds_a_half_threshold_as_the_oracle(bert_tokenizer):
    """A probability with p * 2^32 = v + 1/2, where v is the smallest select draw of a row and
    even: Rust's `f64::round` gives the threshold v + 1, so exactly that token is selected;
    half-to-even rounding gives v and selects nothing. The collator, the torch path and the
    oracle must all select it."""
    row = [101, *range(2000, 2060), 102]
    special = sorted(special_ids(bert_tokenizer))
    for seed in range(100):
        key = keyed_row_key(seed, 0, row)
        draws = [(lane(key, LANE_SELECT, j), j) for j in range(1, len(row) - 1)]
        v, j = min(draws)
        if v % 2 == 0:
            break
    p = (2 * v + 1) / 2**33
    assert p * 2**32 == v + 0.5 and round(p * 2**32) == v  # a real half, on which round() errs
    assert threshold(p) == v + 1
    collator = DataCollatorForLanguageModeling(
        bert_tokenizer, keyed=True, seed=seed, epoch=0, mlm_probability=p, return_tensors="np"
    )
    labels = collator([row])["labels"][0]
    assert np.flatnonzero(labels != -100).tolist() == [j]
    _, oracle_labels = mask_row(
        row,
        key,
        special=set(special),
        random_ids=collator.tables.random_ids.tolist(),
        mask_id=bert_tokenizer.mask_token_id,
        p=p,
        mask_replace=0.8,
        random_replace=0.1,
    )
    assert oracle_labels == labels.tolist()
    _, torch_labels = collator.mask_tensor(torch.tensor([row]))
    assert torch_labels[0].tolist() == labels.tolist()
