"""A directory written by `mlmkit preprocess`: its manifest, its tokenizer and its splits as
`datasets`, for `mlmkit pretrain --corpus DIR`.

Layout: `manifest.json` (written last: a directory without it is not a finished output),
`tokenizer/` (the tokenizer, `save_pretrained`), `train/part-*.parquet` and
`validation/part-*.parquet` (the split names `datasets.load_dataset("parquet", data_dir=DIR)`
recognises)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CliError

MANIFEST = "manifest.json"
FORMAT = "mlmkit.preprocessed"
FORMAT_VERSION = 1
TOKENIZER_DIR = "tokenizer"
LABEL_COLUMN = {"nsp": "next_sentence_label", "sop": "sentence_order_label"}
PRETRAIN_OBJECTIVE = {"mlm": "mlm", "nsp": "mlm+nsp", "sop": "mlm+sop"}


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of what decides the ids: the `tokenizers` serialization (without truncation and
    padding, which are call settings) and the special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        from tokenizers import Tokenizer

        copy = Tokenizer.from_str(backend.to_str())
        copy.no_truncation()
        copy.no_padding()
        body = copy.to_str()
    else:
        from datasets.fingerprint import Hasher

        body = Hasher.hash(tokenizer)
    specials = {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())}
    blob = json.dumps({"tokenizer": body, "special_tokens": specials}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def is_preprocessed(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read {path}: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CliError(f"{path} is not a manifest of `mlmkit preprocess`")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CliError(
            f"{path} has format version {manifest.get('format_version')}; this mlmkit reads "
            f"version {FORMAT_VERSION} (preprocess the corpus again)"
        )
    return manifest


@dataclass
class PreprocessedCorpus:
    directory: Path
    manifest: dict[str, Any]

    @property
    def objective(self) -> str:
        return str(self.manifest["objective"])

    @property
    def block_size(self) -> int:
        return int(self.manifest["settings"]["block_size"])

    def split_names(self) -> list[str]:
        return [s for s, info in self.manifest["splits"].items() if info["shards"]]

    def load_tokenizer(self) -> Any:
        from .models import load_tokenizer

        tokenizer = load_tokenizer(self.directory / TOKENIZER_DIR)
        expected = self.manifest["tokenizer"]["fingerprint"]
        if tokenizer_fingerprint(tokenizer) != expected:
            raise CliError(
                f"the tokenizer in {self.directory / TOKENIZER_DIR} is not the one the corpus "
                "was preprocessed with (its fingerprint differs from the manifest's)"
            )
        return tokenizer

    def load_split(self, split: str) -> Any:
        """One split as a `datasets.Dataset` (read from its shards, checked against the
        manifest's row count)."""
        import datasets

        info = self.manifest["splits"][split]
        files = [str(self.directory / s["path"]) for s in info["shards"]]
        missing = [f for f in files if not Path(f).is_file()]
        if missing:
            raise CliError(f"the preprocessed corpus {self.directory} lacks {missing[0]}")
        ds = datasets.Dataset.from_parquet(files)
        assert isinstance(ds, datasets.Dataset)
        if len(ds) != info["rows"]:
            raise CliError(
                f"the {split} shards of {self.directory} hold {len(ds)} rows, the manifest says "
                f"{info['rows']}"
            )
        return ds


def open_preprocessed(inputs: list[str] | None) -> PreprocessedCorpus | None:
    """The preprocessed corpus given as `--corpus DIR`, or None for raw corpus inputs."""
    if not inputs:
        return None
    found = [item for item in inputs if Path(item).is_dir() and is_preprocessed(item)]
    if not found:
        return None
    if len(inputs) > 1:
        raise CliError(
            f"{found[0]} is a preprocessed corpus: pass it alone as --corpus (it cannot be mixed "
            "with other inputs)"
        )
    return PreprocessedCorpus(Path(found[0]), read_manifest(found[0]))
