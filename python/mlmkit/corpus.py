"""`load_sentence_corpus`: the classic BERT pretraining text format (one sentence per line, a
blank line between documents) as a `datasets.Dataset` with one document per row."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import datasets
import pyarrow as pa
from datasets.utils.tqdm import tqdm

FEATURES = datasets.Features({"sentences": datasets.List(datasets.Value("string"))})
_FORMAT_VERSION = 1
_BATCH_DOCS = 4096
_BATCH_CHARS = 32 << 20
_PROGRESS_EVERY = 4 << 20


def _resolve(path_or_paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(path_or_paths, (str, os.PathLike)):
        items = [path_or_paths]
    else:
        items = list(path_or_paths)
    if not items:
        raise ValueError("no corpus files given")
    files: list[Path] = []
    for item in items:
        s = os.fspath(item)
        if any(ch in s for ch in "*?[") and not os.path.exists(s):
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no sentence corpus file matches {s!r}")
            files += [Path(m) for m in matches if os.path.isfile(m)]
            continue
        p = Path(s)
        if not p.exists():
            raise FileNotFoundError(f"sentence corpus file not found: {s}")
        if p.is_dir():
            raise IsADirectoryError(
                f"{s} is a directory; pass the text files (or a glob such as '{s}/*.txt')"
            )
        files.append(p)
    return files


def _documents(path: Path, progress: tqdm) -> Iterator[list[str]]:
    """Documents of one file: runs of non-blank lines, each line a stripped sentence."""
    doc: list[str] = []
    pending = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            pending += len(raw)
            if pending >= _PROGRESS_EVERY:
                progress.update(pending)
                pending = 0
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path}:{lineno}: invalid UTF-8 (byte {e.start + 1} of the line is "
                    f"{raw[e.start : e.start + 1]!r}); the corpus must be UTF-8 text"
                ) from None
            if lineno == 1:
                line = line.lstrip("\ufeff")
            line = line.strip()
            if line:
                doc.append(line)
            elif doc:
                yield doc
                doc = []
    progress.update(pending)
    if doc:  # a file's end also ends its last document
        yield doc


def _write(files: list[Path], sink: pa.NativeFile) -> tuple[int, int]:
    """Stream the documents of `files` into `sink` as Arrow record batches; returns
    (documents, sentences)."""
    schema = FEATURES.arrow_schema
    n_docs = n_sents = 0
    total = sum(p.stat().st_size for p in files)
    with (
        pa.ipc.new_stream(sink, schema) as writer,
        tqdm(total=total, unit="B", unit_scale=True, desc="Reading sentences") as progress,
    ):
        batch: list[list[str]] = []
        chars = 0

        def flush() -> None:
            nonlocal batch, chars
            if batch:
                arr = pa.array(batch, type=schema.field("sentences").type)
                writer.write_batch(pa.record_batch([arr], schema=schema))
                batch, chars = [], 0

        for path in files:
            for doc in _documents(path, progress):
                batch.append(doc)
                n_docs += 1
                n_sents += len(doc)
                chars += sum(len(s) for s in doc)
                if len(batch) >= _BATCH_DOCS or chars >= _BATCH_CHARS:
                    flush()
        flush()
    return n_docs, n_sents


def _cache_key(files: list[Path]) -> str:
    stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    blob = json.dumps({"version": _FORMAT_VERSION, "files": stats}).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def load_sentence_corpus(
    path_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    cache_dir: str | os.PathLike | None = None,
    keep_in_memory: bool = False,
) -> datasets.Dataset:
    """Read text files in the format of BERT's `create_pretraining_data.py` (one sentence per
    line, blank lines between documents) into a `Dataset` with a `sentences` column: one row per
    document, a list of its stripped, non-empty lines. Feed it to `mlmkit.SentencePairs`.

    `path_or_paths` is a file, a glob pattern or a list of them. A file's end also ends its last
    document (Google's reader lets a document run on into the next file). The files are streamed
    into an Arrow file under `cache_dir` (default: the datasets cache) that is memory-mapped, so
    memory stays small for any corpus size; it is reused while the files' paths, sizes and
    modification times stay the same. `keep_in_memory=True` builds the table in memory instead.

    Raises FileNotFoundError / IsADirectoryError for missing paths, ValueError for invalid
    UTF-8 (naming the file and line) and for input without any sentence.
    """
    files = _resolve(path_or_paths)
    if keep_in_memory:
        sink = pa.BufferOutputStream()
        n_docs, _ = _write(files, sink)
        _check_nonempty(n_docs, files)
        table = pa.ipc.open_stream(sink.getvalue()).read_all()
        return datasets.Dataset(table, info=datasets.DatasetInfo(features=FEATURES))
    root = Path(cache_dir) if cache_dir is not None else Path(datasets.config.HF_DATASETS_CACHE)
    root = root / "mlmkit_sentence_corpus"
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"sentences-{_cache_key(files)}.arrow"
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=root, suffix=".arrow.tmp")
        os.close(fd)
        try:
            with pa.OSFile(tmp, "wb") as sink:
                n_docs, _ = _write(files, sink)
            _check_nonempty(n_docs, files)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return datasets.Dataset.from_file(str(target))


def _check_nonempty(n_docs: int, files: list[Path]) -> None:
    if n_docs == 0:
        names = ", ".join(str(p) for p in files[:3]) + (" ..." if len(files) > 3 else "")
        raise ValueError(f"no sentences in {names}: the input is empty or holds only blank lines")
