"""Reading `--corpus` inputs into documents (a `datasets.Dataset` with a `sentences` column, one
document per row) and splitting them into train and held-out eval documents.

Inputs: text files (documents separated by blank lines; read by `mlmkit.load_sentence_corpus`),
folders (every non-hidden file below, by extension), glob patterns, JSON lines files (`.jsonl`,
`.json`, `.ndjson`: one object per line with a text field), Parquet files (`.parquet`: one
document per row in a text column) and directories written by `datasets`' `save_to_disk`.
Without inputs: the standard library's documentation.

Sentences (what NSP/SOP pairs are built from): by default every line of a text file, and every
paragraph of a JSON/Parquet/saved-dataset text, is split with `sentences.split_sentences`;
with `sentences="lines"` each non-blank line is one sentence as it is (the one-sentence-per-line
format of BERT's `create_pretraining_data.py`); `sentences="units"` keeps those lines and
paragraphs whole for a later `split_units` (the same sentences as "split", split elsewhere).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import pyarrow as pa

from .errors import CliError
from .sentences import split_sentences

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
# "units": what "split" would split, left unsplit (lines of text files, paragraphs of text
# fields), for `mlmkit preprocess`, whose workers split them (`split_units`).
SentenceMode = Literal["split", "lines", "units"]
EVAL_SPLITS = ("validation", "valid", "eval", "test")
FEATURES = datasets.Features({"sentences": datasets.List(datasets.Value("string"))})


@dataclass
class Corpus:
    train: datasets.Dataset
    eval: datasets.Dataset
    description: str


def load_corpus(
    inputs: Sequence[str] | None,
    text_field: str = "text",
    eval_fraction: float = 0.05,
    progress: bool = True,
    sentences: SentenceMode = "split",
) -> Corpus:
    """Documents of `inputs` (or of the default corpus), split into train and eval documents.

    A saved `DatasetDict` with a validation/eval/test split keeps its own split; otherwise
    documents go to eval by a hash of their text (deterministic, independent of order).
    `eval_fraction=0` holds nothing out (`eval` is then empty).
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise CliError(f"--eval_fraction must be in [0, 1), got {eval_fraction}")
    if not inputs:
        from .stdlib_corpus import load_stdlib_corpus, stdlib_root

        docs = load_stdlib_corpus(progress=progress)
        ds = datasets.Dataset.from_dict({"sentences": docs}, features=FEATURES)
        version = ".".join(map(str, sys.version_info[:3]))
        description = f"Python {version} standard library documentation ({stdlib_root()})"
        train, held_out = split_by_hash(ds, eval_fraction)
        return Corpus(train, held_out, description)
    parts, given_eval = [], []
    for kind, where in resolve_inputs(inputs):
        if kind == "text":
            parts.append(_text_files(where, sentences))
        elif kind == "json":
            parts.append(_json_lines(where, text_field, sentences))
        elif kind == "parquet":
            parts.append(_parquet_files(where, text_field, sentences))
        else:
            ds, ev = _saved_dataset(where[0], text_field, sentences)
            parts.append(ds)
            if ev is not None:
                given_eval.append(ev)
    ds = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    if len(ds) == 0:
        raise CliError(f"the corpus {_names(inputs)} holds no text")
    description = f"{len(inputs)} input(s): {_names(inputs)}"
    if given_eval:
        held_out = datasets.concatenate_datasets(given_eval)
        if len(held_out) == 0:
            raise CliError(f"the evaluation split of {_names(inputs)} holds no text")
        return Corpus(ds, held_out, description)
    train, held_out = split_by_hash(ds, eval_fraction)
    return Corpus(train, held_out, description)


def resolve_inputs(inputs: Sequence[str]) -> list[tuple[str, list[Path]]]:
    """Group the inputs into ("text", files), ("json", files), ("parquet", files) and
    ("dataset", [dir]) sources."""
    text: list[Path] = []
    json_files: list[Path] = []
    parquet: list[Path] = []
    saved: list[Path] = []

    def add(f: Path) -> None:
        suffix = f.suffix.lower()
        if suffix in JSON_SUFFIXES:
            json_files.append(f)
        elif suffix in PARQUET_SUFFIXES:
            parquet.append(f)
        else:
            text.append(f)

    for item in inputs:
        if any(ch in item for ch in "*?[") and not os.path.exists(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            if not matches:
                raise CliError(f"no file matches the corpus pattern {item!r}")
            paths = matches
        else:
            path = Path(item)
            if not path.exists():
                raise CliError(f"corpus input not found: {item}")
            paths = [path]
        for path in paths:
            if path.is_dir() and _is_saved_dataset(path):
                saved.append(path)
            elif path.is_dir():
                files = _files_below(path)
                if not files:
                    raise CliError(f"the corpus folder {path} holds no files")
                for f in files:
                    add(f)
            elif path.is_file():
                add(path)
    sources: list[tuple[str, list[Path]]] = []
    if text:
        sources.append(("text", text))
    if json_files:
        sources.append(("json", json_files))
    if parquet:
        sources.append(("parquet", parquet))
    sources += [("dataset", [p]) for p in saved]
    if not sources:
        raise CliError(f"no corpus files in {_names(inputs)}")
    return sources


def split_by_hash(
    ds: datasets.Dataset, fraction: float
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Eval documents are those whose text hashes below `fraction` (at least one document on
    each side; none held out when `fraction` is 0)."""
    if fraction == 0.0:
        return no_split(ds)
    if len(ds) < 2:
        raise CliError(
            f"the corpus has {len(ds)} document(s); it needs at least 2 (documents are separated "
            "by blank lines), one of which is held out for evaluation"
        )
    u = np.concatenate(
        [
            np.array([_unit_hash(doc) for doc in batch["sentences"]], dtype=np.float64)
            for batch in ds.iter(batch_size=10_000)
        ]
    )
    held = u < fraction
    if not held.any():
        held[np.argmin(u)] = True
    if held.all():
        held[np.argmax(u)] = False
    return ds.select(np.flatnonzero(~held)), ds.select(np.flatnonzero(held))


def no_split(ds: datasets.Dataset) -> tuple[datasets.Dataset, datasets.Dataset]:
    return ds, ds.select([])


def _unit_hash(sentences: list[str]) -> float:
    digest = hashlib.blake2b("\n".join(sentences).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def _names(inputs: Sequence[str]) -> str:
    return ", ".join(inputs[:3]) + (" ..." if len(inputs) > 3 else "")


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def _files_below(folder: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [Path(dirpath, f) for f in sorted(filenames) if not f.startswith(".")]
    return files


def _sentences_of_lines(batch: dict[str, list[Any]]) -> dict[str, list[list[str]]]:
    return {
        "sentences": [
            [s for line in doc for s in split_sentences(line)] for doc in batch["sentences"]
        ]
    }


def _text_files(files: list[Path], sentences: SentenceMode = "split") -> datasets.Dataset:
    from mlmkit import load_sentence_corpus

    try:
        ds = load_sentence_corpus([str(f) for f in files])
    except (OSError, ValueError) as e:
        raise CliError(str(e)) from None
    if sentences != "split":  # load_sentence_corpus keeps one stripped line per row item
        return ds
    # Lines of prose files may hold several sentences (NSP/SOP pairs are built from sentences).
    return ds.map(_sentences_of_lines, batched=True, desc="Splitting sentences")


def paragraphs_to_sentences(text: str) -> list[str]:
    return [s for para in text.split("\n\n") for s in split_sentences(para)]


def lines_to_sentences(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def text_to_sentences(text: str, sentences: SentenceMode) -> list[str]:
    if sentences == "lines":
        return lines_to_sentences(text)
    if sentences == "units":
        return [p.strip() for p in text.split("\n\n") if p.strip()]
    return paragraphs_to_sentences(text)


def split_units(units: list[str]) -> list[str]:
    """The sentences of "units" (lines or paragraphs): what `sentences="split"` gives."""
    return [s for unit in units for s in split_sentences(unit)]


def _json_lines(files: list[Path], field: str, sentences: SentenceMode) -> datasets.Dataset:
    docs = [
        doc
        for path in files
        for doc in (text_to_sentences(t, sentences) for t in _json_texts(path, field))
        if doc
    ]
    return datasets.Dataset.from_dict({"sentences": docs}, features=FEATURES)


def _json_texts(path: Path, field: str) -> Iterator[str]:
    with open(path, "rb") as f:
        first = f.read(1)
        while first.isspace():
            first = f.read(1)
        f.seek(0)
        if first == b"[":  # a JSON array of records rather than JSON lines
            records = enumerate(json.loads(_decode(f.read(), path, 1)), 1)
            where = "record"
        else:
            records = ((n, _json_line(raw, path, n)) for n, raw in enumerate(f, 1) if raw.strip())
            where = "line"
        for n, record in records:
            if not isinstance(record, dict) or field not in record:
                keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise CliError(
                    f"{path}:{where} {n}: no {field!r} field (found {keys}); choose the text field "
                    "with --text_field"
                )
            text = record[field]
            if not isinstance(text, str):
                raise CliError(
                    f"{path}:{where} {n}: field {field!r} holds {type(text).__name__}, not text"
                )
            yield text


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if line == 1 and raw.count(b"\n"):
            line = raw[: e.start].count(b"\n") + 1
        raise CliError(f"{path}:{line}: invalid UTF-8; the corpus must be UTF-8 text") from None


def _json_line(raw: bytes, path: Path, line: int) -> Any:
    try:
        return json.loads(_decode(raw, path, line))
    except json.JSONDecodeError as e:
        raise CliError(f"{path}:{line}: not valid JSON ({e.msg})") from None


def _parquet_files(files: list[Path], field: str, sentences: SentenceMode) -> datasets.Dataset:
    import pyarrow.parquet as pq

    for path in files:
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException) as e:
            raise CliError(f"cannot read the Parquet file {path}: {_first_line(e)}") from None
        if field not in names and "sentences" not in names:
            raise CliError(
                f"the Parquet file {path} has no {field!r} column (columns: {names}); choose the "
                "text column with --text_field"
            )
    column = field if all(field in pq.read_schema(p).names for p in files) else "sentences"
    try:
        ds = datasets.Dataset.from_parquet([str(p) for p in files], columns=[column])
    except (OSError, ValueError, pa.ArrowException) as e:
        raise CliError(f"cannot read the Parquet corpus: {_first_line(e)}") from None
    assert isinstance(ds, datasets.Dataset)
    return _as_sentences(ds, field, files[0], sentences)


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def _saved_dataset(
    path: Path, field: str, sentences: SentenceMode = "split"
) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as e:
        raise CliError(f"cannot load the saved dataset {path}: {e}") from None
    if isinstance(loaded, datasets.DatasetDict):
        eval_name = next((s for s in EVAL_SPLITS if s in loaded), None)
        train_name = "train" if "train" in loaded else next(s for s in loaded if s != eval_name)
        held = _as_sentences(loaded[eval_name], field, path, sentences) if eval_name else None
        return _as_sentences(loaded[train_name], field, path, sentences), held
    return _as_sentences(loaded, field, path, sentences), None


def _as_sentences(
    ds: datasets.Dataset, field: str, path: Path, sentences: SentenceMode = "split"
) -> datasets.Dataset:
    if "sentences" in ds.column_names and field not in ds.column_names:
        return ds.select_columns(["sentences"]).cast(FEATURES)
    if field not in ds.column_names:
        raise CliError(
            f"the dataset {path} has no {field!r} column (columns: {ds.column_names}); choose "
            "the text column with --text_field"
        )

    def convert(batch: dict[str, list[Any]]) -> dict[str, list[list[str]]]:
        return {"sentences": [text_to_sentences(t or "", sentences) for t in batch[field]]}

    out = ds.map(
        convert, batched=True, remove_columns=ds.column_names, features=FEATURES, desc="Sentences"
    )
    return out.filter(lambda b: [len(s) > 0 for s in b["sentences"]], batched=True)
