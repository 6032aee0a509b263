"""Tokenize: the same ids as the transformers tokenizer for the three tokenizer families, on
Arrow, dict, numpy and pandas batches, through datasets.map (num_proc=2, fingerprint), pickling,
sentence-wise output, and clear errors."""

from __future__ import annotations

import pickle

import datasets
import numpy as np
import pyarrow as pa
import pytest
from datasets.fingerprint import Hasher

import mlmkit
from mlmkit import Tokenize

from .conftest import CORPUS

TEXTS = [
    *sorted(set(CORPUS)),
    "",
    "   spaces   around   ",
    "Unicode: café naïve 東京 😀 and a [MASK] token in text.",
    "대한민국의 수도는 서울이다. 한국어 문장도 토큰으로 나뉜다.",
]


def reference(tokenizer, texts):
    return tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []


def test_ids_match_the_transformers_tokenizer(any_tokenizer):
    tok = Tokenize(any_tokenizer)
    out = tok(pa.table({"text": TEXTS}))
    assert out.column_names == ["input_ids"]
    assert out.schema.field("input_ids").type == pa.list_(pa.int32())
    assert out.column("input_ids").to_pylist() == reference(any_tokenizer, TEXTS)


def test_special_tokens_on_request(bert_tokenizer):
    out = Tokenize(bert_tokenizer, add_special_tokens=True)({"text": TEXTS[:3]})
    assert [list(r) for r in out["input_ids"]] == bert_tokenizer(TEXTS[:3])["input_ids"]


def test_batch_formats_agree(bert_tokenizer):
    tok = Tokenize(bert_tokenizer)
    expected = reference(bert_tokenizer, TEXTS)
    as_dict = tok({"text": TEXTS})["input_ids"]
    as_numpy = tok({"text": np.array(TEXTS, dtype=object)})["input_ids"]
    as_batch = tok(pa.RecordBatch.from_pydict({"text": TEXTS})).column("input_ids").to_pylist()
    as_pandas = tok(pa.table({"text": TEXTS}).to_pandas())["input_ids"]
    assert [r.tolist() for r in as_dict] == expected
    assert [r.tolist() for r in as_numpy] == expected
    assert as_batch == expected
    assert [list(r) for r in as_pandas] == expected


def test_sentence_lists_are_joined_or_kept_apart(bert_tokenizer):
    docs = [["First sentence.", "Second one."], ["Alone."], []]
    joined = Tokenize(bert_tokenizer, column="sentences")(pa.table({"sentences": docs}))
    assert joined.column("input_ids").to_pylist() == reference(
        bert_tokenizer, ["First sentence. Second one.", "Alone.", ""]
    )
    apart = Tokenize(bert_tokenizer, column="sentences", join=None)
    table = apart(pa.table({"sentences": docs}))
    assert table.schema.field("input_ids").type == pa.list_(pa.list_(pa.int32()))
    assert table.column("input_ids").to_pylist() == [reference(bert_tokenizer, d) for d in docs]
    as_dict = apart({"sentences": docs})["input_ids"]
    assert [[s.tolist() for s in d] for d in as_dict] == [
        reference(bert_tokenizer, d) for d in docs
    ]


def test_keep_columns(bert_tokenizer):
    table = pa.table({"id": [7, 8], "text": ["a b", "c"]})
    out = Tokenize(bert_tokenizer, keep_columns=True)(table)
    assert out.column_names == ["id", "text", "input_ids"]
    assert out.column("id").to_pylist() == [7, 8]
    assert Tokenize(bert_tokenizer)(table).column_names == ["input_ids"]


def test_pickles_small_and_fingerprints_by_value(bert_tokenizer, bpe_tokenizer):
    a, b = Tokenize(bert_tokenizer), Tokenize(bert_tokenizer)
    a(pa.table({"text": ["builds the backend"]}))  # the built backend is not state
    assert Hasher.hash(a) == Hasher.hash(b) == Hasher.hash(pickle.loads(pickle.dumps(a)))
    assert Hasher.hash(a) != Hasher.hash(Tokenize(bpe_tokenizer))
    assert Hasher.hash(a) != Hasher.hash(Tokenize(bert_tokenizer, column="body"))
    assert a.fingerprint == b.fingerprint != Tokenize(bpe_tokenizer).fingerprint
    restored = pickle.loads(pickle.dumps(a))
    assert (
        restored({"text": ["hello world"]})["input_ids"][0].tolist()
        == reference(bert_tokenizer, ["hello world"])[0]
    )
    # Only the tokenizer's JSON travels, not the transformers object.
    assert len(pickle.dumps(a)) < 1.1 * len(bert_tokenizer.backend_tokenizer.to_str())


def test_datasets_map_with_two_processes_and_the_cache(bert_tokenizer, tmp_path):
    ds = datasets.Dataset.from_dict({"text": TEXTS * 20})
    expected = reference(bert_tokenizer, TEXTS * 20)
    one = ds.map(Tokenize(bert_tokenizer), batched=True, batch_size=16)
    two = ds.map(Tokenize(bert_tokenizer), batched=True, batch_size=16, num_proc=2)
    arrow = ds.with_format("arrow").map(Tokenize(bert_tokenizer), batched=True, batch_size=16)
    assert one["input_ids"] == two["input_ids"] == expected
    assert arrow.with_format(None)["input_ids"] == expected
    assert one.column_names == ["text", "input_ids"]  # datasets merges dict outputs
    # Same settings, same fingerprint: a second map is served from the cache.
    saved = datasets.Dataset.from_dict({"text": TEXTS})
    saved.save_to_disk(str(tmp_path / "d"))
    disk = datasets.load_from_disk(str(tmp_path / "d"))
    first = disk.map(Tokenize(bert_tokenizer), batched=True)
    second = disk.map(Tokenize(bert_tokenizer), batched=True)
    assert first._fingerprint == second._fingerprint
    assert first.cache_files == second.cache_files


def test_exported_beside_the_other_map_functions():
    assert {"Tokenize", "GroupTexts", "SentencePairs"} <= set(mlmkit.__all__)


@pytest.mark.parametrize(
    "batch, message",
    [
        (pa.table({"body": ["x"]}), "no 'text' column"),
        (pa.table({"text": ["ok", None]}), "missing \\(null\\) text at row 1"),
        (pa.table({"text": [1, 2]}), "must hold texts"),
        (pa.table({"text": [["a", None]]}), "missing \\(null\\) sentence"),
        ({"text": [1, "a"]}, "must hold texts"),
        ("not a batch", "batched map function"),
    ],
)
def test_bad_batches_raise(bert_tokenizer, batch, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Tokenize(bert_tokenizer)(batch)


def test_needs_a_tokenizer():
    with pytest.raises(ValueError, match="a tokenizer is required"):
        Tokenize()
