"""The default corpus: the documentation of the running Python's standard library.

Module, class and function docstrings of the stdlib's `.py` files, read with `ast` (no module is
ever imported: some, such as `antigravity` or `this`, act when imported), plus the language
reference topics of `pydoc_data/topics.py` (read the same way). Only prose paragraphs are kept:
doctest sessions, indented code and grammar blocks are dropped. Nothing is downloaded.

Gathering takes several seconds, so the documents are cached as JSON under the mlmkit cache
directory (`$MLMKIT_CACHE`, else `$XDG_CACHE_HOME/mlmkit`, else `~/.cache/mlmkit`), keyed by the
Python version and stdlib path.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .sentences import split_sentences

FORMAT_VERSION = 1
# Directories of tests, tools and vendored copies, not documentation.
SKIP_DIRS = frozenset(
    {
        "site-packages",
        "dist-packages",
        "test",
        "tests",
        "idlelib",
        "lib2to3",
        "turtledemo",
        "ensurepip",
        "__pycache__",
    }
)
MIN_DOCUMENT_CHARS = 80
_MIN_PARAGRAPH_WORDS = 4
_UNDERLINE = re.compile(r"^\s*([*=\-~^+#])\1{2,}\s*$")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def source_files(root: Path) -> list[Path]:
    """The stdlib's `.py` files, sorted, outside test/tool directories."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_DIRS and not d.startswith(("config-", "."))
        )
        files += [Path(dirpath, f) for f in sorted(filenames) if f.endswith(".py")]
    return files


def docstrings(source: str | bytes) -> Iterator[str]:
    """Module, class and function docstrings of one source file, in source order."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc


def topic_texts(root: Path) -> list[str]:
    """The language reference topics (`pydoc_data.topics.topics`), read without importing."""
    path = root / "pydoc_data" / "topics.py"
    if not path.is_file():
        return []
    tree = ast.parse(path.read_bytes())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "topics" for t in node.targets
        ):
            topics = ast.literal_eval(node.value)
            return [topics[k] for k in sorted(topics)]
    return []


def prose_paragraphs(text: str) -> list[str]:
    """Paragraphs of running text: headings, doctest sessions, indented blocks (code, grammar,
    tables) and very short fragments are left out; whitespace is collapsed."""
    kept = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.splitlines() if ln.strip() and not _UNDERLINE.match(ln)]
        if not lines or lines[0][:1].isspace():
            continue
        if any(ln.lstrip().startswith((">>>", "...", "$ ")) for ln in lines) or "::=" in block:
            continue
        paragraph = " ".join(ln.strip() for ln in lines)
        if len(paragraph.split()) >= _MIN_PARAGRAPH_WORDS and any(c.isalpha() for c in paragraph):
            kept.append(paragraph)
    return kept


def document(text: str) -> list[str]:
    """One docstring or topic as a list of sentences (empty when it holds too little prose)."""
    paragraphs = prose_paragraphs(text)
    if sum(len(p) for p in paragraphs) < MIN_DOCUMENT_CHARS:
        return []
    return [s for p in paragraphs for s in split_sentences(p)]


def gather(root: Path | None = None, progress: bool = True) -> list[list[str]]:
    """All documents (lists of sentences) of the stdlib at `root`, duplicates removed."""
    from tqdm.auto import tqdm

    root = stdlib_root() if root is None else Path(root)
    texts: list[str] = []
    for path in tqdm(
        source_files(root), desc="Reading stdlib docstrings", unit="file", disable=not progress
    ):
        try:
            texts += docstrings(path.read_bytes())
        except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, OSError):
            continue  # not parseable by this Python (templates, other versions' sources)
    try:
        texts += topic_texts(root)
    except (SyntaxError, ValueError, OSError):
        pass
    seen: set[str] = set()
    docs = []
    for text in texts:
        doc = document(text)
        key = " ".join(doc)
        if doc and key not in seen:
            seen.add(key)
            docs.append(doc)
    return docs


def cache_dir() -> Path:
    if os.environ.get("MLMKIT_CACHE"):
        return Path(os.environ["MLMKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlmkit"


def cache_path(root: Path) -> Path:
    key = hashlib.sha256(f"{FORMAT_VERSION}|{sys.version}|{root.resolve()}".encode()).hexdigest()
    version = ".".join(map(str, sys.version_info[:3]))
    return cache_dir() / f"stdlib-docs-py{version}-{key[:16]}.json"


def load_stdlib_corpus(root: Path | None = None, progress: bool = True) -> list[list[str]]:
    """`gather()`, cached: the first call writes the cache, later calls read it (milliseconds)."""
    root = stdlib_root() if root is None else Path(root)
    path = cache_path(root)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        pass
    docs = gather(root, progress)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(docs, f, ensure_ascii=False)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the next run the gathering time
    return docs
