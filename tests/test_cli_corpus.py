"""The command line's building blocks: corpus inputs, the default stdlib corpus, the tokenizer
trainer, canaries and the probe's answer alignment."""

from __future__ import annotations

import json

import datasets
import pytest

from mlmkit.cli import stdlib_corpus
from mlmkit.cli.canaries import insert_canaries, make_canaries
from mlmkit.cli.errors import CliError
from mlmkit.cli.sentences import split_sentences
from mlmkit.cli.text_corpus import load_corpus, split_by_hash
from mlmkit.cli.tokenizer_training import train_tokenizer

KOREAN = "이순신은 조선 중기의 무신이다. 서울은 대한민국의 수도이다."


def test_split_sentences_keeps_abbreviations_and_splits_cjk():
    text = "Return a copy, e.g. of the list.  Then stop!  이순신은 무신이다. 我喜欢你。北京"
    assert split_sentences(text) == [
        "Return a copy, e.g. of the list.",
        "Then stop!",
        "이순신은 무신이다.",
        "我喜欢你。",
        "北京",
    ]


# ---- the default corpus ---------------------------------------------------------------------

FAKE_MODULE = '''"""A module docstring long enough to be kept as one document of the default corpus.

>>> print("doctest lines are dropped")

    indented code is dropped too
"""


def f():
    """Return the answer. The function docstring is a second document of English prose."""


class C:
    """Short."""
'''


@pytest.fixture
def fake_stdlib(tmp_path):
    root = tmp_path / "lib"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text(FAKE_MODULE)
    (root / "copy_of_mod.py").write_text(FAKE_MODULE)  # duplicate documents are dropped
    # Never imported: these would print or open a browser if they were.
    (root / "antigravity.py").write_text('"""' + "x " * 50 + '"""\nimport webbrowser\n')
    (root / "broken.py").write_text("def (:\n")
    for skipped in ("test", "idlelib", "site-packages", "config-3.11-x86_64-linux-gnu"):
        (root / skipped).mkdir()
        (root / skipped / "m.py").write_text('"""' + "skipped words here " * 10 + '"""\n')
    (root / "pydoc_data").mkdir()
    topics = {
        "assert": "The assert statement\n********************\n\n"
        "Assert statements are a convenient way to insert debugging assertions into a "
        'program.\n\n   assert_stmt ::= "assert" expression\n'
    }
    (root / "pydoc_data" / "topics.py").write_text(f"topics = {topics!r}\n")
    return root


def test_stdlib_corpus_reads_docstrings_and_topics_without_importing(fake_stdlib):
    docs = stdlib_corpus.gather(fake_stdlib, progress=False)
    assert docs == [
        ["x " * 49 + "x"],
        ["A module docstring long enough to be kept as one document of the default corpus."],
        ["Return the answer.", "The function docstring is a second document of English prose."],
        ["Assert statements are a convenient way to insert debugging assertions into a program."],
    ]
    files = [p.relative_to(fake_stdlib).as_posix() for p in stdlib_corpus.source_files(fake_stdlib)]
    assert not any(f.split("/")[0] in ("test", "idlelib", "site-packages") for f in files)
    assert "config-3.11-x86_64-linux-gnu/m.py" not in files


def test_stdlib_corpus_is_cached(fake_stdlib, tmp_path, monkeypatch):
    monkeypatch.setenv("MLMKIT_CACHE", str(tmp_path / "cache"))
    first = stdlib_corpus.load_stdlib_corpus(fake_stdlib, progress=False)
    (fake_stdlib / "pkg" / "mod.py").unlink()  # a cache hit does not read the sources again
    assert stdlib_corpus.load_stdlib_corpus(fake_stdlib, progress=False) == first
    assert len(list((tmp_path / "cache").glob("stdlib-docs-py*.json"))) == 1


def test_default_corpus_is_the_running_stdlib(monkeypatch, fake_stdlib, tmp_path):
    monkeypatch.setenv("MLMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(stdlib_corpus, "stdlib_root", lambda: fake_stdlib)
    corpus = load_corpus(None, eval_fraction=0.3, progress=False)
    assert "standard library documentation" in corpus.description
    assert len(corpus.train) + len(corpus.eval) == 4
    assert len(corpus.eval) >= 1 and len(corpus.train) >= 1


# ---- corpus inputs --------------------------------------------------------------------------


def write_docs(path, n, prefix="doc"):
    path.write_text(
        "\n\n".join(f"{prefix} {i} first sentence. Second one.\nA new line {i}." for i in range(n))
        + "\n",
        encoding="utf-8",
    )
    return path


def test_split_by_hash_is_deterministic_and_order_free():
    docs = [[f"document number {i}."] for i in range(400)]
    a_train, a_eval = split_by_hash(datasets.Dataset.from_dict({"sentences": docs}), 0.1)
    b_train, b_eval = split_by_hash(datasets.Dataset.from_dict({"sentences": docs[::-1]}), 0.1)
    assert sorted(map(tuple, a_eval["sentences"])) == sorted(map(tuple, b_eval["sentences"]))
    assert len(a_train) + len(a_eval) == 400
    assert 40 - 3.29 * 6 <= len(a_eval) <= 40 + 3.29 * 6  # binomial(400, 0.1): sd = 6


def test_tiny_corpus_keeps_one_document_each_side():
    train, held = split_by_hash(datasets.Dataset.from_dict({"sentences": [["a."], ["b."]]}), 0.05)
    assert len(train) == 1 and len(held) == 1
    with pytest.raises(CliError, match="at least 2"):
        split_by_hash(datasets.Dataset.from_dict({"sentences": [["a."]]}), 0.05)


def test_text_files_folders_globs_json_lines_and_saved_datasets(tmp_path):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    write_docs(folder / "a.txt", 3)
    write_docs(folder / "sub" / "b.txt", 2, "bee")
    (folder / ".hidden").write_text("not read\n")
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(
        json.dumps({"body": "json one. Two.\n\nThird paragraph."})
        + "\n\n"
        + json.dumps({"body": "json two."})
        + "\n",
        encoding="utf-8",
    )
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"body": ["saved one.", "saved two."]}).save_to_disk(str(saved))
    corpus = load_corpus(
        [str(folder), str(tmp_path / "c.json*"), str(saved)], text_field="body", progress=False
    )
    docs = sorted(map(tuple, list(corpus.train["sentences"]) + list(corpus.eval["sentences"])))
    assert ("json one.", "Two.", "Third paragraph.") in docs
    assert ("doc 0 first sentence.", "Second one.", "A new line 0.") in docs
    assert ("bee 1 first sentence.", "Second one.", "A new line 1.") in docs
    assert ("saved two.",) in docs
    assert len(docs) == 3 + 2 + 2 + 2


def test_saved_dataset_dict_keeps_its_validation_split(tmp_path):
    saved = tmp_path / "dd"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["t one.", "t two.", "t three."]}),
            "validation": datasets.Dataset.from_dict({"text": ["v one."]}),
        }
    ).save_to_disk(str(saved))
    corpus = load_corpus([str(saved)], progress=False)
    assert corpus.eval["sentences"] == [["v one."]]
    assert len(corpus.train) == 3


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: [str(p / "missing.txt")], "not found"),
        (lambda p: [str(p / "nothing*.txt")], "no file matches"),
        (lambda p: [str(p)], "holds no files"),
        (lambda p: [str(write_bytes(p / "e.txt", b"\n\n  \n"))], "no sentences"),
        (lambda p: [str(write_bytes(p / "e.jsonl", b""))], "holds no text"),
        (lambda p: [str(write_bytes(p / "bad.txt", b"fine\nbad \xff byte\n"))], r"bad.txt:2"),
        (lambda p: [str(write_bytes(p / "bad.jsonl", b'{"text": "ok"}\n{"x": 1}\n'))], ":line 2"),
        (lambda p: [str(write_bytes(p / "b.jsonl", b'{"text": "\xff"}\n'))], "b.jsonl:1: invalid"),
        (lambda p: [str(write_bytes(p / "b.jsonl", b"{oops\n"))], "not valid JSON"),
    ],
)
def test_bad_corpus_inputs_raise_clear_errors(tmp_path, make, message):
    (tmp_path / "empty").mkdir()
    inputs = make(tmp_path / "empty")
    with pytest.raises(CliError, match=message):
        load_corpus(inputs, progress=False)


def write_bytes(path, data):
    path.write_bytes(data)
    return path


# ---- tokenizer ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
def test_trained_tokenizer_keeps_hangul_whole(kind, tmp_path):
    from transformers import AutoTokenizer

    texts = [["Café au lait, naïve résumé.", KOREAN, "Return the number of items."] * 30]
    tok = train_tokenizer(texts, kind=kind, vocab_size=300, lowercase=True, strip_accents=True)
    tok.save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok.mask_token == "[MASK]" and tok.pad_token == "[PAD]"
    ids = tok("이순신은 조선 Café")["input_ids"]
    assert tok.convert_ids_to_tokens([ids[0], ids[-1]]) == ["[CLS]", "[SEP]"]
    text = tok.decode(ids, skip_special_tokens=True)
    assert "이순신은" in text.replace(" ", "") and "조선" in text
    assert "cafe" in text.replace(" ", "")  # lowercased, accent stripped
    jamo = [c for t in tok.convert_ids_to_tokens(ids) for c in t if 0x1100 <= ord(c) <= 0x11FF]
    assert jamo == []
    pair = tok("first", "second")
    assert pair["token_type_ids"][-1] == 1 and pair["token_type_ids"][0] == 0


def test_accents_and_case_kept_when_asked():
    tok = train_tokenizer(
        [["Café Über"] * 20], vocab_size=100, lowercase=False, strip_accents=False
    )
    assert tok.decode(tok("Café Über")["input_ids"], skip_special_tokens=True) == "Café Über"


# ---- canaries -------------------------------------------------------------------------------


def test_canaries_are_inserted_the_given_number_of_times():
    inserted, controls = make_canaries(3, repeats=7, seed=1)
    assert len(controls) == 5
    names = [c.name for c in inserted + controls]
    assert len(set(names)) == len(names)
    docs = datasets.Dataset.from_dict({"sentences": [[f"s{i}.", "t."] for i in range(50)]})
    out = insert_canaries(docs, inserted, seed=1)
    flat = [s for d in out["sentences"] for s in d]
    for c in inserted:
        assert flat.count(c.text) == 7
    for c in controls:
        assert c.text not in flat
    assert len(flat) == 100 + 21


# ---- the sparse masked-LM head --------------------------------------------------------------


def test_adapt_trains_supported_classes_with_the_sparse_head(capsys):
    """(Equality with the stock model is tested in test_sparse_head.py.)"""
    from transformers import BertConfig, BertForMaskedLM, CamembertConfig, CamembertForMaskedLM

    from mlmkit.cli.models import with_sparse_head

    tiny = dict(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=40,
    )  # fmt: skip
    model = BertForMaskedLM(BertConfig(**tiny))
    assert with_sparse_head(model) is True
    assert type(model) is BertForMaskedLM and model._forward_pre_hooks
    other = CamembertForMaskedLM(CamembertConfig(**tiny))
    assert with_sparse_head(other) is False
    assert not other._forward_pre_hooks
    assert "CamembertForMaskedLM trains with its stock head" in capsys.readouterr().out


def test_cli_trainer_divides_the_mean_loss_by_the_accumulation_steps(bert_tokenizer, tmp_path):
    """The heads return a batch mean and ignore `num_items_in_batch` (transformers#47688), so
    the CLI's Trainer must not pass it, and then divides the loss by the accumulation steps."""
    from transformers import BertConfig, BertForMaskedLM, TrainingArguments

    import mlmkit
    from mlmkit.cli.arguments import MaskingArguments
    from mlmkit.cli.pretraining import Run, train

    config = BertConfig(
        vocab_size=len(bert_tokenizer), hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=40,
    )  # fmt: skip
    model = mlmkit.sparse_mlm_head(BertForMaskedLM(config))
    rows = bert_tokenizer(["The quick brown fox jumps over the lazy dog."] * 8)["input_ids"]
    data = datasets.Dataset.from_dict({"input_ids": rows})
    args = TrainingArguments(
        str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=1,
        use_cpu=True, report_to="none", save_strategy="no", eval_strategy="no",
        disable_tqdm=True, dataloader_pin_memory=False,
    )  # fmt: skip
    trainer = train(Run("test"), model, bert_tokenizer, data, data, MaskingArguments(), args)
    assert trainer.state.global_step == 1
    assert trainer.model_accepts_loss_kwargs is False


# ---- sinusoidal position embeddings at initialisation ---------------------------------------


def test_sinusoids_encode_offsets_as_rotations():
    import math

    import torch

    from mlmkit.cli.positions import sinusoids

    table = sinusoids(64, 16)
    assert table.shape == (64, 16)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0] * 8, dtype=torch.float64))
    assert table[5, 0].item() == pytest.approx(math.sin(5.0))
    assert table[5, 3].item() == pytest.approx(math.cos(5.0 / 10000 ** (2 / 16)))
    # Each (sin, cos) pair has norm 1, so the inner product of positions p and p + k is
    # sum_i cos(k * freq_i): the same for every p.
    for k in (1, 3, 10):
        dots = (table[:-k] * table[k:]).sum(-1)
        torch.testing.assert_close(dots, dots[:1].expand_as(dots))
    assert (table[:-1] * table[1:]).sum(-1)[0] > (table[:-10] * table[10:]).sum(-1)[0]


def test_sinusoidal_positions_have_the_initializer_scale():
    import torch

    from mlmkit.cli.positions import init_sinusoidal_positions, sinusoids

    emb = torch.nn.Embedding(128, 64)
    init_sinusoidal_positions(emb, std=0.02)
    assert emb.weight.requires_grad
    # Each (sin, cos) pair has sin² + cos² = 1: the root mean square is exactly the std asked for.
    assert emb.weight.pow(2).mean().sqrt().item() == pytest.approx(0.02, rel=1e-5)
    torch.testing.assert_close(emb.weight.detach(), (sinusoids(128, 64) * 0.02 * 2**0.5).float())
