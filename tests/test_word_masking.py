"""Whole-word, span and n-gram masking: no partial words, replacement per word, masked fractions
and 80/10/10 within 99.9% intervals, span lengths against their definition, exact agreement with
a slow Python oracle (hypothesis), keyed determinism, drop-in names and bad inputs."""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlmkit
from mlmkit import DataCollatorForLanguageModeling, DataCollatorForWholeWordMask, _core
from mlmkit.words import word_tables

from . import word_oracle as oracle
from .conftest import CORPUS
from .reference import keyed_row_key
from .wordcheck import char_words, expected_groups

Z999 = 3.2905  # two-sided 99.9% normal quantile
TEXT = " ".join(CORPUS[:8])


def within(count: float, mean: float, var: float, what: str) -> None:
    half = Z999 * math.sqrt(max(var, 1e-12))
    assert abs(count - mean) <= half, f"{what}: {count} vs {mean:.1f} +- {half:.1f}"


@pytest.fixture(scope="module")
def corpus_rows(any_tokenizer):
    """Rows of 128 tokens cut from the tokenized corpus (starting mid-word at times), with the
    words every row position belongs to according to the text."""
    tok = any_tokenizer
    text = " ".join([TEXT] * 12)
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    maskable = [i not in set(tok.all_special_ids) for i in ids]
    groups = expected_groups(offsets, maskable, char_words(text))
    group_of = np.full(len(ids), -1)
    for g, members in enumerate(groups):
        group_of[members] = g
    width, step = 128, 97
    starts = list(range(0, len(ids) - width, step))[:64]
    rows = [ids[s : s + width] for s in starts]
    return tok, rows, [group_of[s : s + width] for s in starts]


def _words_in(groups: np.ndarray) -> list[np.ndarray]:
    """Positions of each word of a row (`groups` gives every position's word)."""
    change = np.flatnonzero(np.diff(groups) != 0) + 1
    return [g for g in np.split(np.arange(len(groups)), change) if groups[g[0]] >= 0]


@pytest.mark.parametrize("masking", ["word", "span", "ngram"])
@pytest.mark.parametrize("count", ["bernoulli", "exact"])
@pytest.mark.parametrize("replace_per", ["word", "token"])
def test_no_partial_words_and_one_decision_per_word(corpus_rows, masking, count, replace_per):
    tok, rows, groups = corpus_rows
    collator = DataCollatorForLanguageModeling(
        tok,
        masking=masking,
        mask_count=count,
        replace_per=replace_per,
        mlm_probability=0.3,
        seed=7,
        return_tensors="np",
    )
    out = collator([{"input_ids": r} for r in rows])
    mask_id = tok.mask_token_id
    split_decisions = 0
    for row, ids, labels, g in zip(rows, out["input_ids"], out["labels"], groups, strict=True):
        row = np.asarray(row)
        selected = labels != -100
        assert np.array_equal(labels[selected], row[selected])
        assert np.array_equal(ids[~selected], row[~selected])
        for word in _words_in(g):
            assert selected[word].all() or not selected[word].any(), "partial word"
            if selected[word[0]]:
                masked = ids[word] == mask_id
                consistent = masked.all() or not masked.any()
                if replace_per == "word":
                    assert consistent, "replacement decided per token inside a word"
                split_decisions += not consistent
        assert selected.any()
    if replace_per == "token":
        assert split_decisions > 0  # per-token decisions do split multi-token words


CHINESE = "我喜欢你。今天天气很好。北京是中国的首都。"
CHINESE_WORDS = ["我", "喜欢", "你", "。", "今天", "天气", "很", "好", "。"]
CHINESE_WORDS += ["北京", "是", "中国", "的", "首都", "。"]


@pytest.mark.parametrize("masking", ["word", "span", "ngram"])
@pytest.mark.parametrize("count", ["bernoulli", "exact"])
def test_chinese_words_from_references_stay_whole(any_tokenizer, masking, count):
    tok = any_tokenizer
    text = CHINESE * 4
    segmentation = CHINESE_WORDS * 4
    enc = tok(text, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    ref = mlmkit.reference_positions(offsets, mlmkit.word_starts(segmentation))
    maskable = [i not in set(tok.all_special_ids) for i in ids]
    groups = expected_groups(offsets, maskable, char_words(text, segmentation))
    collator = DataCollatorForLanguageModeling(
        tok, masking=masking, mask_count=count, mlm_probability=0.4, seed=4, return_tensors="np"
    )
    out = collator([{"input_ids": ids, "chinese_ref": ref}] * 64)
    selected = out["labels"] != -100
    multi = [g for g in groups if len(g) > 1]
    assert multi  # the references do merge characters into words
    for g in groups:
        part = selected[:, g]
        assert (part.all(axis=1) | ~part.any(axis=1)).all(), "partial word"
    assert selected.any(axis=1).mean() > 0.5


def _word_counts(rows_groups):
    lens = []
    for g in rows_groups:
        lens.extend(len(w) for w in _words_in(g))
    return np.asarray(lens)


@pytest.mark.parametrize("replace_per", ["word", "token"])
def test_word_fraction_and_80_10_10_within_intervals(corpus_rows, replace_per):
    tok, rows, groups = corpus_rows
    rows, groups = rows * 4, groups * 4  # 256 rows, each keyed differently
    p = 0.15
    collator = DataCollatorForLanguageModeling(
        tok,
        whole_word_mask=True,
        mlm_probability=p,
        replace_per=replace_per,
        seed=11,
        return_tensors="np",
    )
    out = collator([{"input_ids": r} for r in rows])
    lens = _word_counts(groups)
    n_words, n_tokens = len(lens), int(lens.sum())
    sel_words = sel_tokens = 0
    units = masked = kept = 0
    for row, ids, labels, g in zip(rows, out["input_ids"], out["labels"], groups, strict=True):
        row = np.asarray(row)
        selected = labels != -100
        for word in _words_in(g):
            if not selected[word[0]]:
                continue
            sel_words += 1
            sel_tokens += len(word)
            if replace_per == "word":
                units += 1
                masked += bool((ids[word] == tok.mask_token_id).all())
                kept += bool((ids[word] == row[word]).all())
            else:
                units += len(word)
                masked += int((ids[word] == tok.mask_token_id).sum())
                kept += int((ids[word] == row[word]).sum())
    # Words are selected independently: the count is Binomial(n_words, p) exactly.
    within(sel_words, n_words * p, n_words * p * (1 - p), "selected words")
    within(sel_tokens, n_tokens * p, p * (1 - p) * float((lens**2).sum()), "selected tokens")
    within(masked, units * 0.8, units * 0.8 * 0.2, "[MASK] decisions")
    # A random replacement may draw the original token: kept is 10% plus a little.
    chance = 0.1 / len(collator.tables.random_ids)
    within(kept, units * (0.1 + chance), units * 0.1 * 0.9, "kept decisions")


@pytest.mark.parametrize("masking", ["span", "ngram"])
def test_span_fraction_within_interval(corpus_rows, masking):
    tok, rows, groups = corpus_rows
    rows = rows * 4
    p = 0.15
    collator = DataCollatorForLanguageModeling(
        tok, masking=masking, mlm_probability=p, seed=5, return_tensors="np"
    )
    out = collator([{"input_ids": r} for r in rows])
    maskable = ~np.isin(np.asarray(rows), list(collator.tables.is_special.nonzero()[0]))
    per_row = (out["labels"] != -100).sum(axis=1) / maskable.sum(axis=1)
    # Every word is covered with probability p; spans make tokens of a row dependent, so the
    # interval comes from the spread of the (independent) rows.
    within(per_row.mean(), p, per_row.var(ddof=1) / len(per_row), f"{masking} masked fraction")


def _run_length_law(lengths: np.ndarray, q: float, r_max: int) -> np.ndarray:
    """P(a masked run has r words) when runs are spans of i.i.d. lengths and, after each span,
    the next (free) word starts another span with probability q."""
    f = np.zeros(r_max + 1)
    for r in range(1, r_max + 1):
        f[r] = (1 - q) * (lengths[r] if r < len(lengths) else 0.0)
        for n in range(1, min(r, len(lengths) - 1) + 1):
            f[r] += q * lengths[n] * f[r - n]
    return f


def _chi2_critical(df: int) -> float:
    """Wilson-Hilferty approximation of the chi-square 0.999 quantile."""
    z = 3.0902
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


@pytest.mark.parametrize(
    "masking, law",
    [
        ("span", [0.0] + [0.2 * 0.8**i for i in range(10)]),
        ("ngram", [0.0, 1.0, 1 / 2, 1 / 3]),
    ],
)
def test_span_lengths_follow_their_definition(bert_tokenizer, masking, law):
    law = np.asarray(law) / sum(law)  # SpanBERT renormalises the clipped geometric
    p, n_rows, width = 0.15, 120, 2000
    collator = DataCollatorForLanguageModeling(
        bert_tokenizer, masking=masking, mlm_probability=p, seed=3, return_tensors="np"
    )
    # One word per token (word_ids 0..width-1), no special tokens: runs are counted in words.
    row = list(range(2000, 2000 + width))
    out = collator([{"input_ids": row, "word_ids": list(range(width))}] * n_rows)
    q_threshold, _, _ = _core.span_tables(masking, p, 0.2, len(law) - 1)
    q = q_threshold / 2**32
    runs = []
    for selected in out["labels"] != -100:
        edges = np.diff(np.concatenate([[0], selected.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        keep = (starts > 0) & (starts < width - 100)  # a run at 0 may have begun before the row
        runs.extend((ends - starts)[keep])
    runs = np.asarray(runs)
    # Every word is covered with probability p, the first ones of a row included.
    per_row = (out["labels"] != -100).mean(axis=1)
    within(per_row.mean(), p, per_row.var(ddof=1) / n_rows, "covered words")
    first = (out["labels"][:, :10] != -100).mean(axis=1)
    within(first.mean(), p, first.var(ddof=1) / n_rows, "covered words at the row start")
    r_max = 80
    expected = _run_length_law(law, q, r_max) * len(runs)
    observed = np.bincount(runs, minlength=r_max + 1)[: r_max + 1].astype(float)
    observed[r_max] += (runs > r_max).sum()
    # Bins with at least 5 expected runs, the tail pooled into the last one.
    last = max(r for r in range(1, r_max + 1) if expected[r] >= 5)
    obs = np.append(observed[1:last], observed[last:].sum())
    exp = np.append(expected[1:last], len(runs) - expected[1:last].sum())
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    assert chi2 < _chi2_critical(len(obs) - 1), (chi2, obs[:12], exp[:12])
    mean_span = float((np.arange(len(law)) * law).sum())
    assert abs(runs.mean() - mean_span / (1 - q)) < 0.05 * runs.mean()


@pytest.mark.parametrize("masking, max_len", [("span", 10), ("ngram", 3), ("span", 1)])
@pytest.mark.parametrize("p", [0.0, 0.15, 0.5, 1.0])
def test_span_tables_match_their_definition(masking, max_len, p):
    g = 0.2
    Q, C, F = _core.span_tables(masking, p, g, max_len)
    if masking == "span":
        w = [g * (1 - g) ** i for i in range(max_len)]
    else:
        w = [1 / n for n in range(1, max_len + 1)]
    law = [x / sum(w) for x in w]
    mu = sum((i + 1) * x for i, x in enumerate(law))
    q = p / (mu * (1 - p) + p)
    assert abs(Q - q * 2**32) <= 1
    assert len(C) == max_len - 1 and len(F) == max_len - 1
    for i, c in enumerate(C):
        assert abs(int(c) - sum(law[: i + 1]) * 2**32) <= 2
    pi0 = 1 / (1 - q + q * mu)
    acc = pi0
    for r, f in enumerate(F, start=1):
        assert abs(int(f) - min(acc, 1.0) * 2**32) <= 2
        acc += q * sum(law[r:]) * pi0


def test_exact_budget_google_style(bert_tokenizer):
    # Words of one token each: every row gets exactly round(p * n) masked tokens.
    row = list(range(2000, 2100))
    collator = DataCollatorForWholeWordMask(bert_tokenizer, seed=1, return_tensors="np")
    out = collator([{"input_ids": row, "word_ids": list(range(100))}] * 20)
    assert ((out["labels"] != -100).sum(axis=1) == 15).all()
    # Words of three tokens and a budget of 4: one word fits, the others are skipped.
    out = collator([{"input_ids": row[:30], "word_ids": [k // 3 for k in range(30)]}] * 20)
    assert ((out["labels"] != -100).sum(axis=1) == 3).all()


def test_max_predictions_caps_whole_words(corpus_rows):
    tok, rows, groups = corpus_rows
    collator = DataCollatorForLanguageModeling(
        tok,
        whole_word_mask=True,
        mlm_probability=0.5,
        max_predictions=10,
        seed=2,
        return_tensors="np",
    )
    out = collator([{"input_ids": r} for r in rows])
    counts = (out["labels"] != -100).sum(axis=1)
    assert counts.max() <= 10 and counts.mean() > 8


def test_keyed_word_masks_follow_content(bpe_tokenizer):
    tok = bpe_tokenizer
    a = tok(CORPUS[0])["input_ids"]
    b = tok(CORPUS[1])["input_ids"]
    for masking in ("word", "span", "ngram"):
        make = dict(masking=masking, mlm_probability=0.4, seed=9, keyed=True, return_tensors="np")
        c = DataCollatorForLanguageModeling(tok, **make)
        one = c([{"input_ids": a}, {"input_ids": b}])
        two = c([{"input_ids": b}, {"input_ids": a}])
        n = len(a)
        assert np.array_equal(one["labels"][0, :n], two["labels"][1, :n])
        assert np.array_equal(one["input_ids"][0, :n], two["input_ids"][1, :n])
        left = dataclasses.replace(c)
        tok.padding_side = "left"
        try:
            three = left([{"input_ids": a}, {"input_ids": b}])
        finally:
            tok.padding_side = "right"
        width = three["labels"].shape[1]
        assert np.array_equal(three["labels"][0, width - n :], one["labels"][0, :n])
        epoch1 = dataclasses.replace(c, epoch=1)([{"input_ids": a}, {"input_ids": b}])
        assert not np.array_equal(epoch1["labels"], one["labels"])


# ---- exact agreement with the Python oracle -------------------------------------------------


@st.composite
def cases(draw, tables, special_ids):
    starts, ends = tables.starts_word, tables.ends_word
    pools = {
        "start": np.flatnonzero((starts == 1) & (ends == 0)),
        "cont": np.flatnonzero(starts == 0),
        "alone": np.flatnonzero(ends == 1),
        "glue": np.flatnonzero(ends == 2),
        "special": np.asarray(special_ids),
    }
    pools = {k: v[~np.isin(v, special_ids)] if k != "special" else v for k, v in pools.items()}
    pools = {k: v for k, v in pools.items() if len(v)}
    kinds = sorted(pools)
    weights = {"start": 4, "cont": 4, "alone": 2, "glue": 1, "special": 1}
    kind_st = st.sampled_from([k for k in kinds for _ in range(weights[k])])
    n_rows = draw(st.integers(1, 3))
    rows = []
    for _ in range(n_rows):
        picks = draw(st.lists(st.tuples(kind_st, st.integers(0, 10**6)), min_size=1, max_size=30))
        rows.append([int(pools[k][i % len(pools[k])]) for k, i in picks])
    masking = draw(st.sampled_from(["word", "span", "ngram"]))
    config = dict(
        masking=masking,
        mask_count=draw(st.sampled_from(["bernoulli", "exact"])),
        max_predictions=draw(st.one_of(st.none(), st.integers(1, 12))),
        replace_per=draw(st.sampled_from(["word", "token"])),
        mlm_probability=draw(st.sampled_from([0.0, 0.15, 0.5, 1.0]) | st.floats(0, 1)),
        mask_replace_prob=draw(st.sampled_from([0.8, 1.0, 0.0, 0.5])),
        span_geometric_p=draw(st.sampled_from([0.2, 0.5, 1.0]) | st.floats(0.01, 1)),
        max_span_length=draw(st.integers(1, 12)),
        max_ngram=draw(st.integers(1, 4)),
        seed=draw(st.integers(0, 2**40)),
        epoch=draw(st.integers(0, 3)),
    )
    rest = 1.0 - config["mask_replace_prob"]
    config["random_replace_prob"] = draw(st.sampled_from([0.0, rest / 2, rest]))
    source = draw(st.sampled_from(["tables", "refs", "word_ids"]))
    extra = []
    for row in rows:
        if source == "refs":
            extra.append({"chinese_ref": draw(st.lists(st.integers(0, len(row) - 1), unique=True))})
        elif source == "word_ids":
            steps = draw(
                st.lists(st.sampled_from([0, 1, 1, 2, -1]), min_size=len(row), max_size=len(row))
            )
            wid, cur = [], 0
            for s in steps:
                cur += max(s, 0)
                wid.append(None if s < 0 else cur)
            extra.append({"word_ids": wid})
        else:
            extra.append({})
    if draw(st.booleans()):
        for row, e in zip(rows, extra, strict=True):
            e["special_tokens_mask"] = draw(
                st.lists(st.sampled_from([0, 0, 0, 1]), min_size=len(row), max_size=len(row))
            )
    return rows, extra, config


def _oracle_row(collator, row, extra, config, tables, pad_id):
    # Surplus padding is left out at the padding side's end only (these tokenizers pad right).
    lo, hi = 0, len(row)
    while hi > lo and row[hi - 1] == pad_id:
        hi -= 1
    content = row[lo:hi]
    is_special = collator.tables.is_special
    flags = extra.get("special_tokens_mask", [0] * len(row))[lo:hi]
    maskable = [is_special[t] == 0 and f == 0 for t, f in zip(content, flags, strict=True)]
    row_key = keyed_row_key(config["seed"], config["epoch"], content)
    masking = config["masking"]
    span = None
    if masking != "word":
        max_len = config["max_span_length"] if masking == "span" else config["max_ngram"]
        q, c, f = _core.span_tables(
            masking, config["mlm_probability"], config["span_geometric_p"], max_len
        )
        span = (int(q), [int(x) for x in c], [int(x) for x in f])
    cfg = oracle.Config(
        masking=masking,
        count=config["mask_count"],
        p=config["mlm_probability"],
        mask_replace_prob=config["mask_replace_prob"],
        random_replace_prob=config["random_replace_prob"],
        max_predictions=config["max_predictions"],
        replace_per=config["replace_per"],
        mask_id=collator.tables.mask_id,
        random_ids=[int(x) for x in collator.tables.random_ids],
        span_tables=span,
    )
    kwargs = {}
    if "word_ids" in extra:
        kwargs["word_ids"] = [-1 if w is None else w for w in extra["word_ids"]][lo:hi]
    else:
        kwargs["starts_word"] = tables.starts_word.tolist()
        kwargs["ends_word"] = tables.ends_word.tolist()
        if "chinese_ref" in extra:
            cont = [0] * len(row)
            for pos in extra["chinese_ref"]:
                cont[pos] = 1
            kwargs["cont"] = cont[lo:hi]
    ids, labels = oracle.mask_row(content, maskable, cfg, row_key, **kwargs)
    return lo, ids, labels


def test_kernel_matches_oracle(any_tokenizer):
    tok = any_tokenizer
    tables = word_tables(tok)
    special_ids = sorted(set(tok.all_special_ids))

    @settings(
        max_examples=120,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(cases(tables, special_ids))
    def check(case):
        rows, extra, config = case
        collator = DataCollatorForLanguageModeling(tok, keyed=True, return_tensors="np", **config)
        features = [{"input_ids": r, **e} for r, e in zip(rows, extra, strict=True)]
        out = collator(features)
        for i, (row, e) in enumerate(zip(rows, extra, strict=True)):
            # Every input position keeps its column; trailing pad ids are not content.
            _, ids, labels = _oracle_row(collator, row, e, config, tables, tok.pad_token_id)
            assert out["labels"][i, : len(ids)].tolist() == labels
            assert out["input_ids"][i, : len(ids)].tolist() == ids
            assert (out["labels"][i, len(ids) :] == -100).all()

    check()


def test_oracle_detects_a_wrong_kernel(bert_tokenizer):
    """The oracle comparison can fail: a one-bit change of the key changes the masks."""
    row = bert_tokenizer(TEXT)["input_ids"]
    config = dict(
        masking="span",
        mask_count="bernoulli",
        max_predictions=None,
        replace_per="word",
        mlm_probability=0.3,
        mask_replace_prob=0.8,
        random_replace_prob=0.1,
        span_geometric_p=0.2,
        max_span_length=10,
        max_ngram=3,
        seed=1,
        epoch=0,
    )
    collator = DataCollatorForLanguageModeling(
        bert_tokenizer, keyed=True, return_tensors="np", **config
    )
    out = collator([{"input_ids": row}])
    tables = word_tables(bert_tokenizer)
    _, ids, labels = _oracle_row(collator, row, {}, config, tables, bert_tokenizer.pad_token_id)
    assert out["labels"][0].tolist() == labels
    _, _, other = _oracle_row(collator, row, {}, {**config, "epoch": 1}, tables, 0)
    assert other != labels


# ---- drop-in names ----------------------------------------------------------------------------


def test_whole_word_mask_collator_takes_4x_arguments(bert_tokenizer):
    c = DataCollatorForWholeWordMask(bert_tokenizer, True, 0.2, 0.8, 0.1, 8, False, "np", 42)
    assert isinstance(c, DataCollatorForLanguageModeling)
    assert (c.mlm_probability, c.pad_to_multiple_of, c.return_tensors, c.seed) == (
        0.2,
        8,
        "np",
        42,
    )
    assert c.whole_word_mask and c.mask_count == "exact" and c.max_predictions == 512
    again = pickle.loads(pickle.dumps(c))
    fields = [f.name for f in dataclasses.fields(c) if f.name != "tokenizer"]
    assert [getattr(again, f) for f in fields] == [getattr(c, f) for f in fields]
    assert type(again) is DataCollatorForWholeWordMask
    assert dataclasses.replace(c, mlm_probability=0.3).mlm_probability == 0.3
    rows = [bert_tokenizer(t)["input_ids"] for t in CORPUS[:4]]
    out = c([{"input_ids": r} for r in rows])
    assert out["input_ids"].shape[1] % 8 == 0
    assert ((out["labels"] != -100).sum(axis=1) > 0).all()

    class Custom(DataCollatorForWholeWordMask):
        def __call__(self, features, return_tensors=None):
            batch = super().__call__(features, return_tensors)
            batch["custom"] = True
            return batch

    assert Custom(bert_tokenizer, mlm_probability=0.3)([{"input_ids": rows[0]}])["custom"]
    assert DataCollatorForWholeWordMask(bert_tokenizer, replace_per="word").replace_per == "word"
    with pytest.raises(ValueError, match="tf_experimental_compile"):
        DataCollatorForWholeWordMask(bert_tokenizer, tf_experimental_compile=True)


def test_offset_mapping_is_ignored_and_chinese_ref_consumed(bert_tokenizer):
    enc = bert_tokenizer(CORPUS[5], return_offsets_mapping=True)
    c = DataCollatorForLanguageModeling(bert_tokenizer, whole_word_mask=True, seed=0)
    out = c(
        [
            {
                "input_ids": enc["input_ids"],
                "offset_mapping": enc["offset_mapping"],
                "chinese_ref": [2],
            }
        ]
    )
    assert set(out) == {"input_ids", "attention_mask", "labels"}
    assert isinstance(out["labels"], torch.Tensor)


def test_trainer_column_pruning_falls_back_to_tables(bert_dir, bert_tokenizer, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForMaskedLM, Trainer, TrainingArguments

    enc = bert_tokenizer(CORPUS[:16], return_offsets_mapping=True)
    ds = Dataset.from_dict(
        {
            "input_ids": enc["input_ids"],
            "offset_mapping": enc["offset_mapping"],
            "word_ids": [enc.word_ids(i) for i in range(16)],
            "text": CORPUS[:16],
        }
    )
    model = AutoModelForMaskedLM.from_pretrained(bert_dir)
    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=8, report_to=[])
    collator = mlmkit.DataCollatorForLanguageModeling(
        bert_tokenizer, whole_word_mask=True, mlm_probability=0.5, seed=0
    )
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=collator)
    batch = next(iter(trainer.get_train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert (batch["labels"] != -100).any()


# ---- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"masking": "span", "span_geometric_p": 0.0}, "span_geometric_p"),
        ({"masking": "span", "span_geometric_p": 1.5}, "span_geometric_p"),
        ({"masking": "span", "max_span_length": 0}, "max_span_length"),
        ({"masking": "span", "max_span_length": 10_000}, "max_span_length"),
        ({"masking": "ngram", "max_ngram": 0}, "max_ngram"),
        ({"masking": "ngram", "max_ngram": 2.5}, "max_ngram"),
        ({"masking": "sentence"}, "masking must be one of"),
        ({"whole_word_mask": True, "masking": "token"}, "contradicts"),
        ({"whole_word_mask": True, "mlm": False}, "needs mlm=True"),
        ({"whole_word_mask": True, "replace_per": "span"}, "replace_per"),
    ],
)
def test_bad_options_are_rejected(bert_tokenizer, options, message):
    with pytest.raises(ValueError, match=message):
        DataCollatorForLanguageModeling(bert_tokenizer, **options)


def test_bad_boundary_columns_are_rejected(bert_tokenizer):
    c = DataCollatorForLanguageModeling(bert_tokenizer, whole_word_mask=True, seed=0)
    row = bert_tokenizer("hello world")["input_ids"]  # 4 tokens
    with pytest.raises(ValueError, match="word_ids row 0 has 3 values but input_ids row 0 has 4"):
        c([{"input_ids": row, "word_ids": [None, 0, 1]}])
    with pytest.raises(ValueError, match="chinese_ref row 0 has position 4, outside"):
        c([{"input_ids": row, "chinese_ref": [4]}])
    with pytest.raises(ValueError, match="chinese_ref row 1 has position -1"):
        c([{"input_ids": row, "chinese_ref": []}, {"input_ids": row, "chinese_ref": [-1]}])
    with pytest.raises(ValueError, match="both 'word_ids' and 'chinese_ref'"):
        c([{"input_ids": row, "chinese_ref": [], "word_ids": [None, 0, 1, None]}])
    with pytest.raises(TypeError, match="word_ids must hold integers"):
        c([{"input_ids": row, "word_ids": [None, "a", 1, None]}])
