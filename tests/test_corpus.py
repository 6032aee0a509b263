"""load_sentence_corpus: the classic one-sentence-per-line format into a `sentences` column."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlmkit
from mlmkit import corpus as corpus_module
from mlmkit import load_sentence_corpus

sentence_st = (
    st.text(
        alphabet=st.sampled_from(
            list("abc xyz.,!?") + list("이순신서울한국어") + list("我喜欢") + ["é"]
        ),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)
docs_st = st.lists(st.lists(sentence_st, min_size=1, max_size=6), min_size=1, max_size=8)


def write_docs(path, docs, newline="\n", blank="\n"):
    text = blank.join(newline.join(doc) + newline for doc in docs)
    path.write_bytes(text.encode("utf-8"))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(docs_st, st.sampled_from(["\n", "\r\n"]), st.sampled_from(["\n", "\n\n\n", "  \n"]))
def test_documents_round_trip(tmp_path, docs, newline, blank):
    path = tmp_path / "c.txt"
    write_docs(path, docs, newline, blank.replace("\n", newline))
    ds = load_sentence_corpus(path, keep_in_memory=True)
    assert ds["sentences"] == docs
    assert ds.features == corpus_module.FEATURES


def test_classic_format_details(tmp_path):
    text = (
        "\ufeffFirst sentence.  \n\tSecond one.\n\n\n\n"
        "이순신은 조선 중기의 무신이다.\r\n서울은 대한민국의 수도이다.\r\n"
        "   \n"
        "Last doc without trailing newline."
    )
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    ds = load_sentence_corpus(tmp_path / "a.txt", cache_dir=tmp_path / "cache")
    assert ds["sentences"] == [
        ["First sentence.", "Second one."],
        ["이순신은 조선 중기의 무신이다.", "서울은 대한민국의 수도이다."],
        ["Last doc without trailing newline."],
    ]


def test_several_files_globs_and_file_ends(tmp_path):
    (tmp_path / "1.txt").write_text("a1\na2\n", encoding="utf-8")  # no blank line at the end
    (tmp_path / "2.txt").write_text("b1\n\nc1\n", encoding="utf-8")
    expected = [["a1", "a2"], ["b1"], ["c1"]]
    cache = tmp_path / "cache"
    assert (
        load_sentence_corpus([tmp_path / "1.txt", str(tmp_path / "2.txt")], cache_dir=cache)[
            "sentences"
        ]
        == expected
    )
    assert load_sentence_corpus(str(tmp_path / "*.txt"), cache_dir=cache)["sentences"] == expected


def test_many_record_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_module, "_BATCH_DOCS", 7)
    docs = [[f"doc {d} sentence {s}." for s in range(d % 4 + 1)] for d in range(100)]
    write_docs(tmp_path / "big.txt", docs)
    ds = load_sentence_corpus(tmp_path / "big.txt", cache_dir=tmp_path / "cache")
    assert ds["sentences"] == docs
    assert len(ds.data.to_batches()) == 15  # 100 documents, 7 per batch


def test_cache_is_reused_until_the_files_change(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one.\ntwo.\n\nthree.\n", encoding="utf-8")
    cache = tmp_path / "cache"
    first = load_sentence_corpus(path, cache_dir=cache)
    (arrow,) = [f["filename"] for f in first.cache_files]
    mtime = os.stat(arrow).st_mtime_ns
    second = load_sentence_corpus(path, cache_dir=cache)
    assert [f["filename"] for f in second.cache_files] == [arrow]
    assert os.stat(arrow).st_mtime_ns == mtime
    assert second._fingerprint == first._fingerprint
    path.write_text("one.\ntwo.\n\nthree.\nfour.\n", encoding="utf-8")
    third = load_sentence_corpus(path, cache_dir=cache)
    assert third["sentences"] == [["one.", "two."], ["three.", "four."]]
    assert [f["filename"] for f in third.cache_files] != [arrow]
    assert not [p for p in os.listdir(cache / "mlmkit_sentence_corpus") if p.endswith(".tmp")]


def test_progress_bar(tmp_path, capsys):
    (tmp_path / "c.txt").write_text("one.\n", encoding="utf-8")
    load_sentence_corpus(tmp_path / "c.txt", keep_in_memory=True)
    assert "Reading sentences" in capsys.readouterr().err


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="sentence corpus file not found: .*nope.txt"):
        load_sentence_corpus(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="no sentence corpus file matches"):
        load_sentence_corpus(str(tmp_path / "*.none"))
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_sentence_corpus(tmp_path)
    with pytest.raises(ValueError, match="no corpus files given"):
        load_sentence_corpus([])


def test_empty_input(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("\n  \n\t\n", encoding="utf-8")
    for name in ("empty.txt", "blank.txt"):
        with pytest.raises(ValueError, match=f"no sentences in .*{name}: the input is empty"):
            load_sentence_corpus(tmp_path / name, cache_dir=tmp_path / "cache")
    assert not os.listdir(tmp_path / "cache" / "mlmkit_sentence_corpus")


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("fine.\n좋아요.\n\n".encode() + b"broken \xff here\n")
    with pytest.raises(ValueError, match=r"bad\.txt:4: invalid UTF-8 \(byte 8 of the line"):
        load_sentence_corpus(path, cache_dir=tmp_path / "cache")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt:1: invalid UTF-8"):
        load_sentence_corpus(latin1, keep_in_memory=True)


def test_exported():
    assert "load_sentence_corpus" in mlmkit.__all__ and "SentencePairs" in mlmkit.__all__
