"""`mlmkit preprocess` with the datasets engine, end to end on a few MB of real text (the
standard library's documentation and Korean prose): exact blocks, every text token kept, NSP/SOP
pairs, identical shards for any num_proc, output that datasets loads and streams and that
`mlmkit pretrain` trains on, and bad input refused with exit code 2 and nothing half-written.

The Ray engine is tested in test_preprocess_ray.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest

from mlmkit.__main__ import main
from mlmkit.cli import shards as shards_module
from mlmkit.cli.errors import CliError
from mlmkit.cli.text_corpus import load_corpus

from .preprocess_corpora import (
    content,
    korean_documents,
    manifest,
    rows,
    stdlib_documents,
    text_tokens,
    write_documents,
)

BLOCK = 128


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(files, documents): the stdlib documentation (1.4 MB) and 0.8 MB of Korean."""
    root = tmp_path_factory.mktemp("corpus")
    english, korean = stdlib_documents(), korean_documents(800_000)
    files = [
        write_documents(root / "stdlib.txt", english),
        write_documents(root / "korean.txt", korean),
    ]
    return files, english + korean


def preprocess(argv):
    code = main(["preprocess", *map(str, argv)])
    assert code == 0
    return code


@pytest.fixture(scope="module")
def mlm_out(corpus, bert_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("mlm") / "out"
    files, _ = corpus
    preprocess(
        ["--corpus", *files, "--tokenizer", bert_dir, "--output_dir", out]
        + ["--block_size", BLOCK, "--chunk_mb", "0.4"]
    )
    return out


def test_blocks_are_block_size_and_hold_every_text_token(mlm_out, corpus, bert_tokenizer):
    _, docs = corpus
    m = manifest(mlm_out)
    cls, sep = bert_tokenizer.cls_token_id, bert_tokenizer.sep_token_id
    found: Counter = Counter()
    for split in ("train", "validation"):
        r = rows(mlm_out, split)
        s = m["splits"][split]
        assert len(r["input_ids"]) == s["blocks"] > 0
        assert {len(b) for b in r["input_ids"]} == {BLOCK}
        assert {len(a) for a in r["attention_mask"]} == {BLOCK}
        for ids, mask in zip(r["input_ids"], r["attention_mask"], strict=True):
            n = sum(mask)
            assert mask == [1] * n + [0] * (BLOCK - n)  # padding only at the end
            assert ids[0] == cls and ids[n - 1] == sep
            assert set(ids[n:]) <= {bert_tokenizer.pad_token_id}
            found.update(ids[1 : n - 1])
        # One separator between consecutive documents of a chunk.
        found[sep] -= s["documents"] - s["chunks"]
        assert s["dropped_tokens"] == 0
        assert s["chunks"] > 1 or split == "validation"
    assert m["splits"]["train"]["chunks"] >= 4  # several chunks, so the boundaries are tested
    assert +found == text_tokens(bert_tokenizer, docs)
    total = sum(m["splits"][s]["text_tokens"] for s in ("train", "validation"))
    assert total == sum(text_tokens(bert_tokenizer, docs).values()) > 800_000
    assert sum(m["splits"][s]["documents"] for s in ("train", "validation")) == len(docs)


def test_manifest_records_settings_counts_and_tokenizer(mlm_out, bert_tokenizer):
    from mlmkit.cli.preprocessed import tokenizer_fingerprint

    m = manifest(mlm_out)
    assert m["format"] == "mlmkit.preprocessed" and m["objective"] == "mlm"
    s = m["settings"]
    assert (s["block_size"], s["tail"], s["add_special_tokens"]) == (BLOCK, "pad", True)
    assert s["separator_id"] == bert_tokenizer.sep_token_id
    assert m["tokenizer"]["fingerprint"] == tokenizer_fingerprint(bert_tokenizer)
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(mlm_out / "tokenizer")
    assert tokenizer_fingerprint(saved) == m["tokenizer"]["fingerprint"]
    for split in ("train", "validation"):
        info = m["splits"][split]
        table_rows = sum(pq.read_metadata(mlm_out / sh["path"]).num_rows for sh in info["shards"])
        assert table_rows == info["rows"] == info["blocks"]
        assert info["tokens"] == info["blocks"] * BLOCK
        n_text = info["text_tokens"] + info["documents"] - info["chunks"]
        assert info["tokens"] - info["padding_tokens"] == n_text + 2 * info["blocks"]
    assert m["run"]["engine"] == "datasets"


def test_loads_and_streams_with_datasets(mlm_out):
    m = manifest(mlm_out)
    loaded = datasets.load_dataset("parquet", data_dir=str(mlm_out))
    assert set(loaded) == {"train", "validation"}
    assert len(loaded["train"]) == m["splits"]["train"]["blocks"]
    assert loaded["train"].features["input_ids"] == datasets.List(datasets.Value("int32"))
    streamed = datasets.load_dataset("parquet", data_dir=str(mlm_out), streaming=True)
    first = [row["input_ids"] for _, row in zip(range(3), streamed["validation"], strict=False)]
    assert first == loaded["validation"]["input_ids"][:3]


def test_any_num_proc_writes_the_same_files(mlm_out, corpus, bert_dir, tmp_path):
    files, _ = corpus
    out = tmp_path / "two"
    preprocess(
        ["--corpus", *files, "--tokenizer", bert_dir, "--output_dir", out]
        + ["--block_size", BLOCK, "--chunk_mb", "0.4", "--num_proc", "2"]
    )
    assert content(out) == content(mlm_out)
    assert manifest(out)["run"]["num_proc"] == 2


def test_small_shards_and_tails(corpus, bert_dir, bert_tokenizer, tmp_path):
    files, _ = corpus
    common = ["--corpus", files[1], "--tokenizer", bert_dir, "--chunk_mb", "0.2"]
    common += ["--block_size", "64", "--eval_fraction", "0"]
    preprocess([*common, "--output_dir", tmp_path / "keep", "--tail", "keep"])
    preprocess([*common, "--output_dir", tmp_path / "drop", "--tail", "drop"])
    preprocess([*common, "--output_dir", tmp_path / "pad", "--tokens_per_shard", "100000"])
    keep, drop, pad = (manifest(tmp_path / n)["splits"]["train"] for n in ("keep", "drop", "pad"))
    assert manifest(tmp_path / "keep")["splits"]["validation"]["documents"] == 0
    kept = rows(tmp_path / "keep", "train")
    assert "attention_mask" not in kept and keep["dropped_tokens"] == 0
    # keep: at most one short block per chunk (its last); drop: those blocks' tokens are
    # counted as dropped (each short block holds [CLS] and [SEP] besides them).
    short = [len(b) for b in kept["input_ids"] if len(b) < 64]
    assert 0 < len(short) <= keep["chunks"]
    assert drop["blocks"] == keep["blocks"] - len(short)
    assert drop["dropped_tokens"] == sum(n - 2 for n in short)
    # pad: the same blocks as keep once the padding is cut off, across several shards of at
    # least 100 000 tokens (except the last), in chunk order.
    assert len(pad["shards"]) > 2
    assert all(s["tokens"] >= 100_000 for s in pad["shards"][:-1])
    padded, lengths = _real(tmp_path / "pad")
    assert [b[:n] for b, n in zip(padded, lengths, strict=True)] == kept["input_ids"]


def _real(out):
    r = rows(out, "train")
    return r["input_ids"], [sum(m) for m in r["attention_mask"]]


@pytest.mark.parametrize("objective", ["nsp", "sop"])
def test_sentence_pairs(objective, corpus, bert_dir, bert_tokenizer, tmp_path):
    files, _ = corpus
    out = tmp_path / objective
    preprocess(
        ["--corpus", files[0], "--tokenizer", bert_dir, "--output_dir", out]
        + ["--objective", objective, "--block_size", "64", "--chunk_mb", "0.3", "--seed", "5"]
    )
    m = manifest(out)
    label = "next_sentence_label" if objective == "nsp" else "sentence_order_label"
    share_key = "random_next" if objective == "nsp" else "swapped"
    cls, sep = bert_tokenizer.cls_token_id, bert_tokenizer.sep_token_id
    for split in ("train", "validation"):
        r, s = rows(out, split), m["splits"][split]
        assert len(r["input_ids"]) == s["pairs"] > 0
        assert sum(r[label]) == s[share_key]
        for ids, types in zip(r["input_ids"], r["token_type_ids"], strict=True):
            assert len(ids) <= 64 and len(types) == len(ids)
            assert ids[0] == cls and ids[-1] == sep and ids.count(sep) == 2
            a = ids.index(sep) + 1
            assert types == [0] * a + [1] * (len(ids) - a) and 1 < a < len(ids) - 1
    # The workers split the lines into the sentences the driver would have found.
    split = load_corpus([str(files[0])], progress=False, sentences="split")
    for split_name, docs in (("train", split.train), ("validation", split.eval)):
        assert m["splits"][split_name]["sentences"] == sum(len(d) for d in docs["sentences"])
        assert m["splits"][split_name]["documents"] == len(docs)
    train = m["splits"]["train"]
    # Google's rule: a chunk of one sentence always gets a random B, so the share of label 1 is
    # at least --nsp_probability (0.5); the stdlib's many one-sentence documents raise it.
    assert 0.5 - 0.05 < train[share_key] / train["pairs"] < 0.75


def test_one_sentence_per_line_or_split(bert_dir, tmp_path):
    docs = [[f"Line {d} {i} says one thing. Then another." for i in range(6)] for d in range(40)]
    corpus = write_documents(tmp_path / "two-per-line.txt", docs)
    found = {}
    for mode in ("lines", "split"):
        out = tmp_path / mode
        preprocess(
            ["--corpus", corpus, "--tokenizer", bert_dir, "--output_dir", out, "--objective"]
            + ["sop", "--block_size", "32", "--sentences", mode, "--eval_fraction", "0"]
        )
        found[mode] = manifest(out)["splits"]["train"]["sentences"]
    assert found == {"lines": 240, "split": 480}


BAD = {
    "missing corpus": (lambda p, b: ["--corpus", p / "nope.txt"], "corpus input not found"),
    "empty corpus": (lambda p, b: ["--corpus", blank(p)], "no sentences"),
    "missing tokenizer": (
        lambda p, b: ["--tokenizer", p / "none"],
        "tokenizer directory not found",
    ),
    "not a tokenizer": (lambda p, b: ["--tokenizer", p], "cannot load a tokenizer"),
    "no mask token": (lambda p, b: ["--tokenizer", plain_tokenizer(p, "mask")], "no mask token"),
    "no pad token": (lambda p, b: ["--tokenizer", plain_tokenizer(p, "pad")], "no pad token"),
    "no special tokens around blocks": (
        lambda p, b: ["--tokenizer", plain_tokenizer(p, "template")],
        "adds no special tokens around a sequence",
    ),
    "no pair template for nsp": (
        lambda p, b: ["--tokenizer", plain_tokenizer(p, "template"), "--objective", "nsp"],
        "NSP/SOP pairs need a tokenizer with cls and sep tokens",
    ),
    "non-empty output": (lambda p, b: ["--output_dir", occupied(p)], "pass --overwrite"),
    "flag of the other objective": (lambda p, b: ["--seed", "3"], "--seed applies to --objective"),
    "sentences with mlm": (lambda p, b: ["--sentences", "lines"], "--sentences applies to"),
    "flag of the other engine": (
        lambda p, b: ["--num_workers", "2"],
        "--num_workers does not apply to --engine datasets",
    ),
    "block too small": (lambda p, b: ["--block_size", "4"], "--block_size must be at least 8"),
    "refused ray address": (
        lambda p, b: ["--engine", "ray", "--ray_address", f"127.0.0.1:{free_port()}"],
        "no Ray cluster at 127.0.0.1",
    ),
    "malformed ray address": (
        lambda p, b: ["--engine", "ray", "--ray_address", "nowhere"],
        "--ray_address must be auto or HOST:PORT",
    ),
}


def blank(p):
    (p / "blank.txt").write_text("\n\n   \n\n")
    return p / "blank.txt"


def occupied(p):
    (p / "taken").mkdir()
    (p / "taken" / "keep.txt").write_text("mine")
    return p / "taken"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plain_tokenizer(p, lacking):
    """A WordPiece tokenizer without a mask token, a pad token, or a template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if lacking != "template":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
        )
    special = {"unk_token": "[UNK]", "pad_token": "[PAD]", "mask_token": "[MASK]"}
    special |= {"cls_token": "[CLS]", "sep_token": "[SEP]"}
    special.pop(f"{lacking}_token", None)
    out = p / f"tok-{lacking}"
    PreTrainedTokenizerFast(tokenizer_object=tok, **special).save_pretrained(out)
    return out


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(case, corpus, bert_dir, tmp_path, capsys):
    files, _ = corpus
    make, message = BAD[case]
    given = [str(a) for a in make(tmp_path, bert_dir)]
    argv = ["preprocess"]
    argv += [] if "--corpus" in given else ["--corpus", str(files[1])]
    argv += [] if "--tokenizer" in given else ["--tokenizer", str(bert_dir)]
    argv += [] if "--output_dir" in given else ["--output_dir", str(tmp_path / "out")]
    start = time.monotonic()
    assert main(argv + given) == 2
    assert time.monotonic() - start < 60  # an unreachable cluster fails fast, never hangs
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    if case == "non-empty output":
        assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_ray_address_that_is_not_ray_fails_within_seconds(corpus, bert_dir, tmp_path, capsys):
    """A TCP server that accepts and never answers: not mistaken for a Ray head node."""
    files, _ = corpus
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    try:
        start = time.monotonic()
        code = main(
            ["preprocess", "--corpus", str(files[1]), "--tokenizer", str(bert_dir)]
            + ["--output_dir", str(tmp_path / "out"), "--engine", "ray"]
            + ["--ray_address", f"127.0.0.1:{server.getsockname()[1]}"]
        )
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert code == 2 and elapsed < 30
    assert "does not answer like a Ray head node" in capsys.readouterr().err
    assert accepted  # it did connect


def test_engine_ray_without_ray_installed_names_the_extra(corpus, bert_dir, tmp_path):
    """The real command in a fresh interpreter where `import ray` fails."""
    files, _ = corpus
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "shim"))
    proc = subprocess.run(
        [sys.executable, "-m", "mlmkit", "preprocess", "--corpus", str(files[1])]
        + ["--tokenizer", str(bert_dir), "--output_dir", str(tmp_path / "out"), "--engine", "ray"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert 'pip install "mlmkit[ray]"' in proc.stderr
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_interrupted_run_leaves_nothing_and_overwrite_replaces_at_the_end(
    corpus, bert_dir, tmp_path, monkeypatch, capsys
):
    files, _ = corpus
    out = occupied(tmp_path)
    argv = ["preprocess", "--corpus", str(files[1]), "--tokenizer", str(bert_dir)]
    argv += ["--output_dir", str(out), "--chunk_mb", "0.1", "--overwrite"]
    written = []
    real_write = shards_module.ShardWriter.write

    def interrupt_after_two(self, examples, tokens):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(tokens)
        real_write(self, examples, tokens)

    monkeypatch.setattr(shards_module.ShardWriter, "write", interrupt_after_two)
    assert main(argv) == 130
    # The old output is untouched and no half-written directory is left beside it.
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    monkeypatch.undo()
    assert main(argv) == 0
    assert not (out / "keep.txt").exists() and (out / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_parquet_and_one_sentence_per_line_inputs(tmp_path):
    import pyarrow as pa

    text = "Dr. Smith went home. He slept.\nA second line."
    pq.write_table(pa.table({"text": [text, "Other doc."]}), tmp_path / "docs.parquet")
    (tmp_path / "lines.txt").write_text(text + "\n\nOther doc.\n")
    split = load_corpus([str(tmp_path / "docs.parquet")], eval_fraction=0.0, progress=False)
    assert split.train["sentences"] == [
        ["Dr.", "Smith went home.", "He slept.", "A second line."],
        ["Other doc."],
    ]
    for path in ("docs.parquet", "lines.txt"):
        lines = load_corpus(
            [str(tmp_path / path)], eval_fraction=0.0, progress=False, sentences="lines"
        )
        assert lines.train["sentences"] == [
            ["Dr. Smith went home. He slept.", "A second line."],
            ["Other doc."],
        ]
    with pytest.raises(CliError, match="has no 'body' column"):
        load_corpus([str(tmp_path / "docs.parquet")], text_field="body", progress=False)


# ---- mlmkit pretrain on a preprocessed directory --------------------------------------------

TINY = [
    "--num_hidden_layers", "1", "--hidden_size", "32", "--num_attention_heads", "2",
    "--intermediate_size", "64", "--max_position_embeddings", "64",
    "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
    "--logging_steps", "5", "--eval_steps", "10", "--max_eval_samples", "16",
    "--use_cpu", "--disable_tqdm", "true",
]  # fmt: skip


@pytest.fixture(scope="module")
def small_tokenizer(corpus, tmp_path_factory):
    """A 400-token WordPiece (pretrain's own trainer) so that tiny models train in seconds."""
    from mlmkit.cli.tokenizer_training import train_tokenizer

    _, docs = corpus
    tok = train_tokenizer([[" ".join(d) for d in docs[:1500]]], vocab_size=400)
    path = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(path)
    return path


@pytest.mark.parametrize("objective", ["mlm", "nsp"])
def test_pretrain_trains_on_the_preprocessed_directory(
    objective, corpus, small_tokenizer, tmp_path, capsys
):
    files, _ = corpus
    data = tmp_path / "data"
    preprocess(
        ["--corpus", files[0], "--tokenizer", small_tokenizer, "--output_dir", data]
        + ["--objective", objective, "--block_size", "64"]
    )
    out = tmp_path / "model"
    code = main(
        ["pretrain", "--corpus", str(data), "--output_dir", str(out), "--max_steps", "10"] + TINY
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    m = manifest(data)
    assert metrics["corpus"]["preprocessed"] == str(data)
    assert metrics["corpus"]["train_documents"] == m["splits"]["train"]["documents"]
    assert metrics["objective"] == {"mlm": "mlm", "nsp": "mlm+nsp"}[objective]
    assert (
        metrics["model"]["class"]
        == {"mlm": "BertForMaskedLM", "nsp": "BertForPreTraining"}[objective]
    )
    assert metrics["model"]["train_examples"] == m["splits"]["train"]["rows"]
    assert metrics["model"]["block_size"] == 64
    assert metrics["tokenizer"]["vocab_size"] == 400
    before, after = metrics["eval_mlm_perplexity_before"], metrics["eval_mlm_perplexity_after"]
    assert np.isfinite(before) and after < before
    from transformers import AutoTokenizer

    assert (
        AutoTokenizer.from_pretrained(out).get_vocab()
        == AutoTokenizer.from_pretrained(small_tokenizer).get_vocab()
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--vocab_size", "500"], "--vocab_size has no effect"),
        (["--block_size", "32"], "use --block_size 64"),
        (["--objective", "mlm+nsp"], "holds mlm examples: use --objective mlm"),
        (["--canaries", "2"], "--canaries has no effect"),
        (["--eval_fraction", "0.2"], "has a validation split"),
        (["--max_position_embeddings", "32"], "more than --max_position_embeddings 32"),
    ],
)
def test_pretrain_refuses_flags_the_preprocessed_corpus_decides(
    flags, message, corpus, small_tokenizer, tmp_path_factory, capsys
):
    files, _ = corpus
    data = tmp_path_factory.getbasetemp() / "refuse-data"
    if not data.exists():
        preprocess(
            ["--corpus", files[1], "--tokenizer", small_tokenizer, "--output_dir", data]
            + ["--block_size", "64"]
        )
    out = tmp_path_factory.mktemp("refused")
    code = main(["pretrain", "--corpus", str(data), "--output_dir", str(out), *TINY, *flags])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1, err
    assert not (out / "metrics.json").exists()


def test_adapt_on_a_corpus_preprocessed_with_the_models_tokenizer(
    corpus, bert_dir, small_tokenizer, tmp_path, capsys
):
    files, _ = corpus
    data = tmp_path / "data"
    preprocess(
        ["--corpus", files[1], "--tokenizer", bert_dir, "--output_dir", data]
        + ["--block_size", "64", "--chunk_mb", "0.2"]
    )
    out = tmp_path / "adapted"
    code = main(
        ["adapt", "--model", str(bert_dir), "--corpus", str(data), "--output_dir", str(out)]
        + ["--max_steps", "4", "--per_device_train_batch_size", "8", "--eval_steps", "4"]
        + ["--per_device_eval_batch_size", "16", "--max_eval_samples", "16", "--use_cpu"]
        + ["--disable_tqdm", "true"]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["train_examples"] == manifest(data)["splits"]["train"]["blocks"]
    assert metrics["model"]["block_size"] == 64
    # A corpus tokenized by another tokenizer than the model's is refused.
    other = tmp_path / "other"
    preprocess(["--corpus", files[1], "--tokenizer", small_tokenizer, "--output_dir", other])
    capsys.readouterr()
    code = main(
        ["adapt", "--model", str(bert_dir), "--corpus", str(other)]
        + ["--output_dir", str(tmp_path / "refused"), "--use_cpu"]
    )
    assert code == 2
    assert "tokenized with another tokenizer than the model's" in capsys.readouterr().err


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["preprocess", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: mlmkit preprocess")
    for flag in ("--engine {datasets,ray}", "--ray_address", "--num_workers", "--num_proc"):
        assert flag in text
    assert "(default: None)" not in text and "(default: 128)" in text
