"""GroupTexts: block cutting against a plain-Python reference, aligned columns, Arrow/dict
batches, datasets.map (num_proc, fingerprint/cache), and clear errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import datasets
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mlmkit
from mlmkit import GroupTexts

DEFAULT_FILL = {"attention_mask": (1, 0), "word_ids": (None, None), "special_tokens_mask": (1, 1)}


def words_per_document(rows):
    """Each document's word ids shifted past the largest id of the documents before it."""
    out, base = [], 0
    for row in rows:
        out.append([w if w is None or w < 0 else w + base for w in row])
        base += max([w for w in row if w is not None and w >= 0], default=-1) + 1
    return out


def reference(docs, aligned, block, prefix, suffix, sep, tail, pad, fills, labels=False):
    """Plain-Python grouping: the documented semantics, written as directly as possible."""
    content = block - len(prefix) - len(suffix)
    if "word_ids" in aligned:
        aligned = {**aligned, "word_ids": words_per_document(aligned["word_ids"])}
    names = ["input_ids", *aligned]
    streams = {n: [] for n in names}
    first = True
    for d, doc in enumerate(docs):
        if not doc:
            continue
        if not first and sep is not None:
            streams["input_ids"].append(sep)
            for n in aligned:
                streams[n].append(fills[n][0])
        first = False
        streams["input_ids"] += doc
        for n in aligned:
            streams[n] += aligned[n][d]
    total = len(streams["input_ids"])
    out = {n: [] for n in names}
    if labels:
        out["labels"] = []
    make_mask = tail == "pad" and "attention_mask" not in aligned
    if make_mask:
        out["attention_mask"] = []
    for start in range(0, total, content):
        n_real = min(content, total - start)
        if n_real < content and tail == "drop":
            break
        n_pad = content - n_real if tail == "pad" else 0
        body = streams["input_ids"][start : start + n_real]
        out["input_ids"].append([*prefix, *body, *suffix, *[pad] * n_pad])
        if labels:
            out["labels"].append([*prefix, *body, *suffix, *[-100] * n_pad])
        for n in aligned:
            ins, p = fills[n]
            vals = streams[n][start : start + n_real]
            out[n].append([*[ins] * len(prefix), *vals, *[ins] * len(suffix), *[p] * n_pad])
        if make_mask:
            out["attention_mask"].append([1] * (block - n_pad) + [0] * n_pad)
    return out


def as_table(docs, aligned, chunk_sizes=None, slice_from=0, large=False):
    """An Arrow table of the documents, optionally split into chunks and/or sliced."""
    pad_docs = [[7] * 3] * slice_from  # rows before the slice that must not leak in
    cols = {"input_ids": pad_docs + docs}
    types = {"input_ids": pa.int32()}
    for n, rows in aligned.items():
        cols[n] = [[0] * 3] * slice_from + rows
        types[n] = pa.int8() if n != "word_ids" else pa.int64()
    arrays = {}
    for n, rows in cols.items():
        t = (pa.large_list if large else pa.list_)(types[n])
        if chunk_sizes:
            pieces, at = [], 0
            for size in [*chunk_sizes, len(rows)]:
                if at < len(rows):
                    pieces.append(pa.array(rows[at : at + size], type=t))
                at += size
            arrays[n] = pa.chunked_array(pieces, type=t)
        else:
            arrays[n] = pa.chunked_array([pa.array(rows, type=t)])
    table = pa.table(arrays)
    return table.slice(slice_from) if slice_from else table


docs_st = st.lists(st.lists(st.integers(1, 120), max_size=12), min_size=0, max_size=12)


@st.composite
def grouping_case(draw):
    docs = draw(docs_st)
    n_prefix = draw(st.integers(0, 2))
    n_suffix = draw(st.integers(0, 2))
    block = draw(st.integers(n_prefix + n_suffix + 1, n_prefix + n_suffix + 9))
    sep = draw(st.one_of(st.none(), st.just(121)))
    tail = draw(st.sampled_from(["drop", "pad", "keep"]))
    mask_rows = [[1] * len(d) for d in docs]
    # word ids with missing values, like a tokenizer's word_ids() with special tokens
    word_rows = [[None if (t % 5 == 0) else i for i, t in enumerate(d)] for d in docs]
    aligned = {}
    if draw(st.booleans()):
        aligned["attention_mask"] = mask_rows
    if draw(st.booleans()):
        aligned["word_ids"] = word_rows
    chunking = draw(st.one_of(st.none(), st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    slice_from = draw(st.integers(0, 2))
    return docs, aligned, block, n_prefix, n_suffix, sep, tail, chunking, slice_from


@settings(max_examples=150, deadline=None)
@given(grouping_case(), st.booleans())
def test_blocks_match_the_reference(case, labels):
    docs, aligned, block, n_prefix, n_suffix, sep, tail, chunking, slice_from = case
    prefix, suffix = (200, 201)[:n_prefix], (202, 203)[:n_suffix]
    g = GroupTexts(
        block, separator=sep, prefix=prefix, suffix=suffix, tail=tail, pad_id=0, labels=labels
    )
    table = as_table(docs, aligned, chunking, slice_from)
    out = g(table)
    fills = {n: DEFAULT_FILL[n] for n in aligned}
    expected = reference(docs, aligned, block, prefix, suffix, sep, tail, 0, fills, labels)
    assert out.to_pydict() == expected
    assert out.schema.field("input_ids").type == pa.list_(pa.int32())
    # every block has the declared length (a kept tail may be shorter)
    lens = [len(r) for r in expected["input_ids"]]
    assert all(n == block for n in (lens[:-1] if tail == "keep" else lens))
    # the blocks hold the whole stream, except (tail="drop") fewer than one block's content
    content = block - n_prefix - n_suffix
    n_stream = sum(map(len, docs)) + (
        max(0, sum(1 for d in docs if d) - 1) if sep is not None else 0
    )
    held = sum(lens) - len(lens) * (n_prefix + n_suffix)
    if tail == "pad":
        held -= sum(r.count(0) for r in out.column("attention_mask").to_pylist())
    assert 0 <= n_stream - held < (content if tail == "drop" else 1)
    # dict-of-lists batches give the same blocks (a batch of no rows gives no clue which of its
    # columns are per-token lists, so only input_ids comes back)
    as_dict = g({"input_ids": docs, **aligned})
    if docs:
        assert {k: _rows(v) for k, v in as_dict.items()} == expected
    else:
        assert _rows(as_dict["input_ids"]) == []


def _rows(col):
    if isinstance(col, np.ndarray) and col.ndim == 2:
        return col.tolist()
    return [list(r) if not isinstance(r, np.ndarray) else r.tolist() for r in col]


@settings(max_examples=60, deadline=None)
@given(docs_st, st.integers(1, 9), st.sampled_from(["drop", "pad", "keep"]))
def test_concatenated_blocks_equal_the_concatenated_documents(docs, block, tail):
    out = GroupTexts(block, tail=tail, pad_id=0)(as_table(docs, {}))
    flat = [t for r in out.column("input_ids").to_pylist() for t in r]
    stream = [t for d in docs for t in d]
    if tail == "pad":
        mask = [m for r in out.column("attention_mask").to_pylist() for m in r]
        flat = [t for t, m in zip(flat, mask, strict=True) if m]
    if tail == "drop":
        assert flat == stream[: len(stream) // block * block]
    else:
        assert flat == stream


def test_plain_blocks_are_zero_copy_slices_of_the_input():
    values = np.arange(1000, dtype=np.int32)
    offsets = pa.array(np.array([0, 300, 301, 1000], np.int32))
    table = pa.table({"input_ids": pa.ListArray.from_arrays(offsets, pa.array(values))})
    out = GroupTexts(64)(table.slice(0))
    ids = out.column("input_ids").chunk(0)
    assert ids.values.buffers()[1].address == table.column(0).chunk(0).values.buffers()[1].address
    assert ids.to_pylist() == values[: 1000 // 64 * 64].reshape(-1, 64).tolist()
    # padding: full blocks still share the input buffer, the padded one is its own chunk
    out = GroupTexts(64, tail="pad", pad_id=5)(table)
    col = out.column("input_ids")
    assert col.num_chunks == 2
    assert col.to_pylist()[-1] == list(range(960, 1000)) + [5] * 24
    assert out.column("attention_mask").to_pylist()[-1] == [1] * 40 + [0] * 24


def test_large_lists_and_dtypes_are_kept():
    docs = [[1, 2, 3], [4, 5]]
    t = pa.table(
        {
            "input_ids": pa.array(docs, pa.large_list(pa.int64())),
            "token_type_ids": pa.array([[0, 0, 0], [1, 1]], pa.large_list(pa.int8())),
        }
    )
    out = GroupTexts(2, separator=9)(t)
    assert out.schema.field("input_ids").type == pa.large_list(pa.int64())
    assert out.schema.field("token_type_ids").type == pa.large_list(pa.int8())
    assert out.column("input_ids").to_pylist() == [[1, 2], [3, 9], [4, 5]]
    assert out.column("token_type_ids").to_pylist() == [[0, 0], [0, 0], [1, 1]]


def test_custom_fill_and_explicit_columns():
    docs = [[1, 2, 3], [4, 5]]
    batch = {"input_ids": docs, "a": [[7, 7, 7], [8, 8]], "b": [[1, 1, 1], [1, 1]]}
    g = GroupTexts(
        4, separator=9, prefix=(100,), tail="pad", pad_id=0, columns=("a",), fill={"a": (-1, -2)}
    )
    out = g(batch)
    assert set(out) == {"input_ids", "a", "attention_mask"}
    assert out["input_ids"].tolist() == [[100, 1, 2, 3], [100, 9, 4, 5]]
    assert out["a"].tolist() == [[-1, 7, 7, 7], [-1, -1, 8, 8]]
    out = GroupTexts(4, tail="pad", pad_id=0, fill={"a": (-1, -2)}, columns=["a"])(
        {"input_ids": docs, "a": [[7, 7, 7], [8, 8]]}
    )
    assert out["a"].tolist() == [[7, 7, 7, 8], [8, -2, -2, -2]]


def test_tokenizer_specials_and_separator(any_tokenizer):
    tok = any_tokenizer
    texts = ["The quick brown fox jumps over the lazy dog.", "Hello, world!", "", "Data."]
    enc = tok(texts, add_special_tokens=False)
    g = GroupTexts(12, tok, separator=True, add_special_tokens=True, tail="pad")
    out = g(dict(enc))
    ids = out["input_ids"]
    assert ids.shape[1] == 12
    single = tok("x")["input_ids"]
    plain = tok("x", add_special_tokens=False)["input_ids"]
    n_pre = single.index(plain[0])
    prefix, suffix = single[:n_pre], single[n_pre + len(plain) :]
    assert g.prefix == tuple(prefix) and g.suffix == tuple(suffix)
    sep = tok.sep_token_id if tok.sep_token is not None else tok.eos_token_id
    mask = out["attention_mask"]
    body = [
        r[len(prefix) : int(m.sum()) - len(suffix)].tolist() for r, m in zip(ids, mask, strict=True)
    ]
    stream = []
    for doc in enc["input_ids"]:
        if doc:
            stream += ([sep] if stream else []) + doc
    assert [t for b in body for t in b] == stream
    assert ("token_type_ids" in out) == ("token_type_ids" in enc)
    if "token_type_ids" in out:
        assert out["token_type_ids"].shape == ids.shape


def test_korean_text_round_trips(bpe_tokenizer):
    texts = ["이순신은 조선 중기의 무신이다.", "서울은 대한민국의 수도이다. 한국어 문장입니다."]
    enc = bpe_tokenizer(texts, add_special_tokens=False)
    out = GroupTexts(7, tail="keep")(dict(enc))
    joined = [t for r in out["input_ids"] for t in r.tolist()]
    assert bpe_tokenizer.decode(joined) == "".join(texts)


def test_labels_copy_the_ids_with_ignored_padding():
    out = GroupTexts(4, tail="pad", pad_id=0, labels=True)({"input_ids": [[5, 6, 7, 8, 9]]})
    assert out["input_ids"].tolist() == [[5, 6, 7, 8], [9, 0, 0, 0]]
    assert out["labels"].tolist() == [[5, 6, 7, 8], [9, -100, -100, -100]]


def test_empty_batches():
    t = pa.table({"input_ids": pa.array([], pa.list_(pa.int32()))})
    assert GroupTexts(4)(t).num_rows == 0
    assert GroupTexts(4, tail="pad", pad_id=0)({"input_ids": [[], []]})["input_ids"] == []


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "8"])
def test_bad_block_size(bad):
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        GroupTexts(bad)


def test_block_size_smaller_than_the_special_tokens(bert_tokenizer):
    with pytest.raises(ValueError, match="block_size 2 is too small: each block holds 2 special"):
        GroupTexts(2, bert_tokenizer, add_special_tokens=True)
    with pytest.raises(ValueError, match="too small"):
        GroupTexts(3, prefix=(1, 2), suffix=(3,))


def test_bad_options(bert_tokenizer):
    with pytest.raises(ValueError, match="tail must be"):
        GroupTexts(8, tail="truncate")
    with pytest.raises(ValueError, match="needs a pad id"):
        GroupTexts(8, tail="pad")
    with pytest.raises(ValueError, match="not in the tokenizer's vocabulary"):
        GroupTexts(8, bert_tokenizer, separator="</s>")
    assert GroupTexts(8, bert_tokenizer, separator="[SEP]").separator == 102
    with pytest.raises(ValueError, match="needs the tokenizer"):
        GroupTexts(8, add_special_tokens=True)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        GroupTexts(8, bert_tokenizer, separator=10**6)
    with pytest.raises(ValueError, match="fill"):
        GroupTexts(8, fill={"x": 1})


def test_tokenizer_without_special_tokens():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    with pytest.raises(ValueError, match="adds no special tokens"):
        GroupTexts(8, tok, add_special_tokens=True)
    with pytest.raises(ValueError, match="neither a sep token nor an eos token"):
        GroupTexts(8, tok, separator=True)
    with pytest.raises(ValueError, match="needs a pad id"):
        GroupTexts(8, tok, tail="pad")


def test_missing_column_and_different_lengths():
    g = GroupTexts(4)
    with pytest.raises(ValueError, match="no 'input_ids' column"):
        g({"ids": [[1, 2]]})
    with pytest.raises(ValueError, match="no 'input_ids' column"):
        g(pa.table({"ids": pa.array([[1, 2]])}))
    with pytest.raises(ValueError, match="no 'mask' column"):
        GroupTexts(4, columns=("mask",))({"input_ids": [[1, 2]]})
    with pytest.raises(
        ValueError, match="columns of different lengths: 'attention_mask' has 1 rows"
    ):
        g({"input_ids": [[1, 2], [3]], "attention_mask": [[1, 1]]})
    with pytest.raises(
        ValueError, match="row 1 of 'attention_mask' has 2 values but 'input_ids' has 1"
    ):
        g({"input_ids": [[1, 2], [3]], "attention_mask": [[1, 1], [1, 1]]})
    t = as_table([[1, 2], [3], [4, 5, 6]], {"attention_mask": [[1, 1], [1], [1, 1]]}, [2])
    with pytest.raises(ValueError, match="row 2 of 'attention_mask' has 2 values"):
        g(t)


def test_wrong_types_and_missing_values():
    g = GroupTexts(4)
    with pytest.raises(TypeError, match="lists of token ids"):
        g({"input_ids": [["a", "b"]]})
    with pytest.raises(TypeError, match="lists of token ids"):
        g({"input_ids": [1, 2, 3]})
    with pytest.raises(ValueError, match="missing \\(null\\) row at position 1"):
        g(pa.table({"input_ids": pa.array([[1, 2], None])}))
    with pytest.raises(TypeError, match="batched map function"):
        g([[1, 2, 3]])
    with pytest.raises(ValueError, match="does not fit"):
        GroupTexts(4, prefix=(300,))(
            pa.table({"input_ids": pa.array([[1, 2]], pa.list_(pa.int8()))})
        )


# -- datasets.map ----------------------------------------------------------------------------


def _tokenized(n=60, seed=0):
    rng = np.random.default_rng(seed)
    docs = [rng.integers(1000, 2000, rng.integers(0, 40)).tolist() for _ in range(n)]
    return datasets.Dataset.from_dict(
        {"input_ids": docs, "attention_mask": [[1] * len(d) for d in docs]}
    )


def _expected_batches(ds, g, batch_size, shards=1):
    rows = []
    for s in range(shards):
        shard = ds.shard(shards, s, contiguous=True)
        for i in range(0, len(shard), batch_size):
            rows.append(g(shard.with_format("arrow")[i : i + batch_size]))
    return pa.concat_tables(rows).to_pydict()


def test_map_arrow_and_python_formats_agree():
    ds = _tokenized()
    g = GroupTexts(16, separator=3, prefix=(1,), suffix=(2,), tail="pad", pad_id=0)
    a = ds.with_format("arrow").map(g, batched=True, batch_size=7)
    b = ds.map(g, batched=True, batch_size=7, remove_columns=ds.column_names)
    assert a.with_format(None)[:] == b[:] == _expected_batches(ds, g, 7)
    assert b.features["input_ids"] == datasets.List(datasets.Value("int32"))


@pytest.mark.parametrize("fmt", ["numpy", "torch", "pandas"])
def test_map_on_numpy_torch_and_pandas_formatted_datasets(fmt):
    ds = _tokenized(30)
    g = GroupTexts(8, separator=3, tail="keep")
    out = ds.with_format(fmt).map(g, batched=True, batch_size=7, remove_columns=ds.column_names)
    assert out.with_format(None)[:] == _expected_batches(ds, g, 7)


def test_map_with_num_proc_2():
    ds = _tokenized(80)
    g = GroupTexts(8, separator=3, tail="keep")
    out = ds.with_format("arrow").map(g, batched=True, batch_size=9, num_proc=2)
    assert out.with_format(None)[:] == _expected_batches(ds, g, 9, shards=2)


def test_fingerprint_is_stable_and_the_cache_is_reused(tmp_path):
    _tokenized().save_to_disk(tmp_path / "src")
    ds = datasets.load_from_disk(str(tmp_path / "src"))

    def run():
        g = GroupTexts(16, separator=3, prefix=(1,), suffix=(2,), tail="pad", pad_id=0)
        return ds.with_format("arrow").map(g, batched=True)

    first = run()
    files = [f["filename"] for f in first.cache_files]
    assert files and all(str(tmp_path) in f for f in files)
    mtimes = [os.stat(f).st_mtime_ns for f in files]
    second = run()
    assert second._fingerprint == first._fingerprint
    assert [f["filename"] for f in second.cache_files] == files
    assert [os.stat(f).st_mtime_ns for f in files] == mtimes
    other = ds.with_format("arrow").map(GroupTexts(17), batched=True)
    assert other._fingerprint != first._fingerprint
    # pickles (num_proc, DataLoader workers) to an equal object
    g = GroupTexts(16, separator=3, tail="pad", pad_id=0)
    assert pickle.loads(pickle.dumps(g)) == g


def test_fingerprint_is_the_same_in_another_process():
    code = textwrap.dedent(
        """
        from datasets.fingerprint import Hasher
        from mlmkit import GroupTexts
        print(Hasher.hash(GroupTexts(16, separator=3, prefix=(1,), suffix=(2,), tail="pad",
                                     pad_id=0, fill={"x": (None, 0)})))
        """
    )
    from datasets.fingerprint import Hasher

    here = Hasher.hash(
        GroupTexts(
            16, separator=3, prefix=(1,), suffix=(2,), tail="pad", pad_id=0, fill={"x": (None, 0)}
        )
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    assert here == there


def test_exported():
    assert "GroupTexts" in mlmkit.__all__


def test_no_word_spans_two_documents(bert_tokenizer):
    """Each document numbers its words from 0: without renumbering, a one-word document followed
    by another would be one word for whole-word masking (no separator between them)."""
    texts = ["unbelievable", "unbelievable", "tokenization", "tokenization of words"]
    enc = bert_tokenizer(texts, add_special_tokens=False)
    batch = {
        "input_ids": enc["input_ids"],
        "word_ids": [enc.word_ids(i) for i in range(len(texts))],
    }
    lens = [len(r) for r in enc["input_ids"]]
    total = sum(lens)
    out = GroupTexts(total, tail="keep")(batch)
    words = out["word_ids"][0].tolist()
    ends = np.cumsum(lens)[:-1]
    for e in ends:  # the first token of each document starts a new word
        assert words[e] != words[e - 1]
    # within a document the partition into words is the one the tokenizer gave
    starts = [0, *ends]
    for s, n, row in zip(starts, lens, batch["word_ids"], strict=True):
        given = np.diff(row) != 0
        assert ((np.diff(words[s : s + n]) != 0) == given).all()
    # whole-word masking now masks each document's word on its own
    rows = [{"input_ids": out["input_ids"][0].tolist(), "word_ids": words}]
    split = 0
    for seed in range(200):
        c = mlmkit.DataCollatorForLanguageModeling(
            bert_tokenizer, whole_word_mask=True, seed=seed, mlm_probability=0.5
        )
        labels = c(rows)["labels"][0]
        first, second = labels[: lens[0]] != -100, labels[lens[0] : lens[0] + lens[1]] != -100
        assert first.all() or not first.any()  # a word is masked whole
        split += int(first.any() != second.any())
    assert 60 < split < 140  # independent words at p = 0.5: about half the seeds
