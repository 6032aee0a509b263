"""The generator the Rust core uses is the one documented (so it can be reimplemented)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmkit import _core

from .reference import fmix32, hash_words, lane


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
