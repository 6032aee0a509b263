"""SentencePairs: exact agreement with the pure-Python reference, the NSP/SOP properties,
datasets.map, and BertForPreTraining training through Trainer."""

from __future__ import annotations

import math
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
from mlmkit import SentencePairs

from .conftest import CORPUS
from .oracles.pairs import sentence_pairs

Z999 = 3.2905  # two-sided 99.9 % normal quantile


def doc_token(d: int, s: int, p: int) -> int:
    """Token ids that say which document, sentence and position they come from."""
    return 1000 + d * 10_000 + s * 100 + p


def doc_of(t: int) -> int:
    return (t - 1000) // 10_000


def make_docs(shape: list[list[int]]) -> list[list[list[int]]]:
    return [
        [[doc_token(d, s, p) for p in range(n)] for s, n in enumerate(doc)]
        for d, doc in enumerate(shape)
    ]


def rows(out, sp):
    return {
        "input_ids": [r.tolist() for r in out["input_ids"]],
        "token_type_ids": [r.tolist() for r in out["token_type_ids"]],
        "label": out[sp.label_column].tolist(),
    }


def split_pair(ids, types, tpl):
    """A and B of one instance, checking the template around them."""
    n_pre, n_mid, n_suf = len(tpl.prefix), len(tpl.middle), len(tpl.suffix)
    assert tuple(ids[:n_pre]) == tpl.prefix
    assert tuple(ids[len(ids) - n_suf :]) == tpl.suffix
    n_a = types.index(tpl.b_type, n_pre) - n_pre if tpl.a_type != tpl.b_type else None
    if n_a is None:  # RoBERTa-style: find the middle tokens
        for n_a in range(1, len(ids)):
            if tuple(ids[n_pre + n_a : n_pre + n_a + n_mid]) == tpl.middle:
                break
    else:
        n_a -= n_mid
    a = ids[n_pre : n_pre + n_a]
    assert tuple(ids[n_pre + n_a : n_pre + n_a + n_mid]) == tpl.middle
    b = ids[n_pre + n_a + n_mid : len(ids) - n_suf]
    return a, b


shape_st = st.lists(
    st.lists(st.integers(0, 14), min_size=1, max_size=8).filter(any), min_size=1, max_size=7
)


@settings(max_examples=120, deadline=None)
@given(
    shape_st,
    st.sampled_from(["nsp", "sop"]),
    st.integers(5, 48),
    st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    st.sampled_from([0.0, 0.5, 1.0]),
    st.integers(0, 2**64 - 1),
    st.integers(1, 2),
)
def test_matches_the_reference_and_keeps_the_invariants(
    bert_tokenizer, shape, task, max_len, short, p, seed, dupe
):
    docs = make_docs(shape)
    sp = SentencePairs(
        bert_tokenizer,
        max_seq_length=max_len,
        short_seq_prob=short,
        nsp_probability=p,
        task=task,
        seed=seed,
        dupe_factor=dupe,
    )
    got = rows(sp({"sentences": docs}), sp)
    ref = sentence_pairs(
        docs,
        sp.template,
        max_seq_length=max_len,
        short_seq_prob=short,
        nsp_probability=p,
        task=task,
        seed=seed,
        dupe_factor=dupe,
    )
    forced = ref.pop("forced")
    assert got == ref
    # Arrow batches (nested list<list<int32>>, chunked and sliced) give the same pairs
    typ = pa.list_(pa.list_(pa.int32()))
    pieces = [pa.array([[[7]]] + docs[:1], typ), pa.array(docs[1:], typ)]
    table = pa.table({"sentences": pa.chunked_array(pieces, typ)}).slice(1)
    arrow = sp(table)
    assert arrow.column("input_ids").to_pylist() == got["input_ids"]
    assert arrow.column(sp.label_column).to_pylist() == got["label"]
    assert arrow.schema.field("input_ids").type == pa.list_(pa.int32())
    n_docs = len(docs)
    for ids, types, label, f in zip(
        got["input_ids"], got["token_type_ids"], got["label"], forced, strict=True
    ):
        assert len(ids) <= max_len and len(types) == len(ids)
        a, b = split_pair(ids, types, sp.template)
        assert a and b
        assert len({doc_of(t) for t in a}) == 1 and len({doc_of(t) for t in b}) == 1
        same = doc_of(a[0]) == doc_of(b[0])
        if f:
            assert label == 1
        if label == 0:  # B follows A in the same document
            assert same and a[-1] < b[0]
        elif task == "nsp" or f:  # random next: another document whenever there is one
            assert not same or n_docs == 1
        else:  # swapped
            assert same and b[-1] < a[0]


def _label_interval(n: int, p: float) -> tuple[float, float]:
    sd = math.sqrt(n * p * (1 - p))
    return n * p - Z999 * sd, n * p + Z999 * sd


@pytest.mark.parametrize("task", ["nsp", "sop"])
@pytest.mark.parametrize("p", [0.5, 0.2])
def test_labels_follow_the_probability(bert_tokenizer, task, p):
    rng = np.random.default_rng(1)
    shape = [rng.integers(1, 12, rng.integers(2, 30)).tolist() for _ in range(800)]
    docs = make_docs(shape)
    sp = SentencePairs(bert_tokenizer, max_seq_length=40, nsp_probability=p, task=task, seed=3)
    out = sp({"sentences": docs})
    ref = sentence_pairs(docs, sp.template, max_seq_length=40, nsp_probability=p, task=task, seed=3)
    labels = out[sp.label_column]
    assert labels.tolist() == ref["label"]
    forced = np.array(ref["forced"])
    drawn = labels[~forced]
    lo, hi = _label_interval(len(drawn), p)
    assert len(drawn) > 2000
    assert lo <= drawn.sum() <= hi, (drawn.sum(), lo, hi)
    assert (labels[forced] == 1).all()


def test_random_b_comes_from_the_same_map_batch(bert_tokenizer):
    shape = [[5, 6, 7, 4, 9]] * 40
    ds = datasets.Dataset.from_dict({"sentences": make_docs(shape)})
    sp = SentencePairs(bert_tokenizer, max_seq_length=20, seed=1)
    out = ds.map(sp, batched=True, batch_size=8, remove_columns=["sentences"])
    n_random = 0
    for ids, types, label in zip(
        out["input_ids"], out["token_type_ids"], out["next_sentence_label"], strict=True
    ):
        a, b = split_pair(ids, types, sp.template)
        da, db = doc_of(a[0]), doc_of(b[0])
        assert da // 8 == db // 8
        assert (da != db) == bool(label)
        n_random += label
    assert n_random > 30


def test_text_input_is_tokenized_like_the_tokenizer_does(any_tokenizer):
    tok = any_tokenizer
    docs = [
        ["The quick brown fox jumps over the lazy dog.", "Hello, world!", "Data collators."],
        ["Masked language models learn.", "이순신은 조선 중기의 무신이다.", "我喜欢你。"],
        ["State-of-the-art encoders.", "   ", "Reproducible masks."],
    ]
    sp = SentencePairs(tok, max_seq_length=24, seed=5, short_seq_prob=0.5)
    from_text = sp({"sentences": docs})
    ids = [[tok(s, add_special_tokens=False)["input_ids"] for s in d] for d in docs]
    from_ids = sp({"sentences": ids})
    assert rows(from_text, sp) == rows(from_ids, sp)
    assert len(from_text["input_ids"]) >= 3
    ds = datasets.Dataset.from_dict({"sentences": docs, "id": [1, 2, 3]})
    arrow = ds.with_format("arrow").map(sp, batched=True)
    assert arrow.with_format(None)["input_ids"] == rows(from_text, sp)["input_ids"]


@pytest.mark.parametrize("fmt", ["numpy", "torch", "pandas"])
@pytest.mark.parametrize("as_ids", [False, True])
def test_formatted_datasets(bert_tokenizer, fmt, as_ids):
    docs = [["Hello world.", "Second one here."], ["Another document.", "More text.", "x"]] * 3
    if as_ids:
        docs = [[bert_tokenizer(s, add_special_tokens=False)["input_ids"] for s in d] for d in docs]
    ds = datasets.Dataset.from_dict({"sentences": docs})
    sp = SentencePairs(bert_tokenizer, max_seq_length=16, seed=0)
    expected = ds.map(sp, batched=True, remove_columns=["sentences"])[:]
    assert len(expected["input_ids"]) >= 6
    out = ds.with_format(fmt).map(sp, batched=True, remove_columns=["sentences"])
    assert out.with_format(None)[:] == expected


def test_korean_text_round_trips(bpe_tokenizer):
    docs = [
        ["이순신은 조선 중기의 무신이다.", "서울은 대한민국의 수도이다.", "한국어 문장입니다."],
        ["부산은 항구 도시이다.", "김치는 맛있다."],
    ]
    sp = SentencePairs(
        bpe_tokenizer, max_seq_length=512, short_seq_prob=0.0, nsp_probability=0.0, seed=0
    )
    out = sp({"sentences": docs})
    assert out["next_sentence_label"].tolist() == [0, 0]
    for row, types, doc in zip(out["input_ids"], out["token_type_ids"], docs, strict=True):
        a, b = split_pair(row.tolist(), types.tolist(), sp.template)
        text = bpe_tokenizer.decode(a) + bpe_tokenizer.decode(b)
        assert text == "".join(doc)


def test_seeded_and_reproducible_with_num_proc(bert_tokenizer):
    rng = np.random.default_rng(2)
    shape = [rng.integers(1, 9, rng.integers(1, 10)).tolist() for _ in range(60)]
    ds = datasets.Dataset.from_dict({"sentences": make_docs(shape)})
    sp = SentencePairs(bert_tokenizer, max_seq_length=24, seed=11, task="sop")
    out = ds.with_format("arrow").map(sp, batched=True, batch_size=7, num_proc=2)
    expected = []
    for s in range(2):
        shard = ds.shard(2, s, contiguous=True)
        for i in range(0, len(shard), 7):
            expected.append(sp(shard.with_format("arrow")[i : i + 7]))
    assert out.with_format(None)[:] == pa.concat_tables(expected).to_pydict()
    again = pickle.loads(pickle.dumps(sp))
    batch = {"sentences": make_docs(shape)}
    assert rows(again(batch), sp) == rows(sp(batch), sp)
    other = SentencePairs(bert_tokenizer, max_seq_length=24, seed=12, task="sop")
    assert rows(other(batch), sp) != rows(sp(batch), sp)


def test_fingerprint_is_stable_and_the_cache_is_reused(bert_tokenizer, tmp_path):
    datasets.Dataset.from_dict(
        {"sentences": [["Hello world.", "Second one."], ["Another document.", "More."]] * 5}
    ).save_to_disk(tmp_path / "src")
    ds = datasets.load_from_disk(str(tmp_path / "src"))

    def run():
        sp = SentencePairs(bert_tokenizer, max_seq_length=16, seed=4)
        return ds.map(sp, batched=True, remove_columns=["sentences"])

    first = run()
    files = [f["filename"] for f in first.cache_files]
    assert files and all(str(tmp_path) in f for f in files)
    second = run()
    assert second._fingerprint == first._fingerprint
    assert [f["filename"] for f in second.cache_files] == files
    third = ds.map(
        SentencePairs(bert_tokenizer, max_seq_length=16, seed=5),
        batched=True,
        remove_columns=["sentences"],
    )
    assert third._fingerprint != first._fingerprint


def test_fingerprint_is_the_same_in_another_process(bert_tokenizer, bert_dir):
    """A second run is usually a new process: the hash must not depend on the process, nor on
    the tokenizer having been used."""
    from datasets.fingerprint import Hasher

    code = textwrap.dedent(
        f"""
        from datasets.fingerprint import Hasher
        from transformers import AutoTokenizer
        from mlmkit import SentencePairs
        tok = AutoTokenizer.from_pretrained({str(bert_dir)!r})
        print(Hasher.hash(SentencePairs(tok, max_seq_length=64, seed=3, task="sop")))
        """
    )
    sp = SentencePairs(bert_tokenizer, max_seq_length=64, seed=3, task="sop")
    sp({"sentences": [["Hello world.", "Two."], ["Other doc."]]})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split()[-1]
    assert Hasher.hash(sp) == there


def test_roberta_style_template(bpe_tokenizer):
    sp = SentencePairs(bpe_tokenizer, max_seq_length=16, seed=0)
    t = sp.template
    assert (t.prefix, t.middle, t.suffix) == ((0,), (2, 2), (2,))
    out = sp({"sentences": make_docs([[4, 4, 4], [5, 5]])})
    for ids in out["input_ids"]:
        assert len(ids) <= 16 and ids[0] == 0 and ids[-1] == 2


def test_bad_input(bert_tokenizer):
    sp = SentencePairs(bert_tokenizer, max_seq_length=16)
    with pytest.raises(ValueError, match="no 'sentences' column"):
        sp({"text": [["a"]]})
    with pytest.raises(ValueError, match="no 'sentences' column"):
        sp(pa.table({"text": pa.array([["a"]])}))
    with pytest.raises(ValueError, match="row 1 of column 'sentences' is a document with no sent"):
        sp({"sentences": [["A sentence."], []]})
    with pytest.raises(ValueError, match="row 0 of column 'sentences' is a document with no"):
        sp(pa.table({"sentences": pa.array([[]], pa.list_(pa.string()))}))
    with pytest.raises(ValueError, match="document 1 of the batch has only empty sentences"):
        sp({"sentences": [["A sentence."], ["  ", ""]]})
    with pytest.raises(TypeError, match="lists of sentence strings or lists of token-id lists"):
        sp({"sentences": [[1, 2, 3]]})
    with pytest.raises(TypeError, match="one list of sentences per row"):
        sp({"sentences": ["just a string"]})
    with pytest.raises(ValueError, match="missing \\(null\\) sentence"):
        sp({"sentences": [["A sentence.", None]]})
    with pytest.raises(TypeError, match="batched map function"):
        sp(["a"])


def test_bad_options(bert_tokenizer):
    with pytest.raises(ValueError, match="max_seq_length 4 leaves no room for a pair"):
        SentencePairs(bert_tokenizer, max_seq_length=4)
    with pytest.raises(ValueError, match="task must be"):
        SentencePairs(bert_tokenizer, task="mlm")
    with pytest.raises(ValueError, match="nsp_probability must be a number in"):
        SentencePairs(bert_tokenizer, nsp_probability=1.5)
    with pytest.raises(ValueError, match="short_seq_prob must be a number in"):
        SentencePairs(bert_tokenizer, short_seq_prob=-0.1)
    with pytest.raises(ValueError, match="dupe_factor must be a positive integer"):
        SentencePairs(bert_tokenizer, dupe_factor=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        SentencePairs(bert_tokenizer, seed=None)
    with pytest.raises(ValueError, match="a tokenizer is required"):
        SentencePairs(None)


def test_tokenizer_without_special_tokens():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    with pytest.raises(ValueError, match="adds no special tokens around a sentence pair"):
        SentencePairs(tok)


def test_trains_bert_for_pretraining(bert_tokenizer, tmp_path):
    import torch
    from transformers import BertConfig, BertForPreTraining, Trainer, TrainingArguments

    sentences = sorted(set(CORPUS))
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(120):
        lines += [sentences[i] for i in rng.integers(0, len(sentences), rng.integers(2, 6))]
        lines.append("")
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    corpus = mlmkit.load_sentence_corpus(path, cache_dir=tmp_path / "cache")
    pairs = corpus.map(
        SentencePairs(bert_tokenizer, max_seq_length=32, seed=0),
        batched=True,
        remove_columns=corpus.column_names,
    )
    assert len(pairs) > 100
    collator = mlmkit.DataCollatorForLanguageModeling(bert_tokenizer, seed=0)
    batch = collator([pairs[i] for i in range(4)])
    assert batch["token_type_ids"].shape == batch["input_ids"].shape
    assert batch["next_sentence_label"].shape == (4,)

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(bert_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    model = BertForPreTraining(config)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        max_steps=20,
        learning_rate=5e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        seed=0,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=pairs, data_collator=collator)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only contend on a shared machine
    try:
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 20
    assert all(math.isfinite(v) for v in losses)
    # starts near ln(vocab) + ln(2) ~ 11 nats; a working pipeline loses well over 1.5 of them
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.5, losses
