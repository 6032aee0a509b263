"""Flags of `mlmkit preprocess`. Flags that only apply to one objective or one engine default to
None, so that giving one where it has no effect is an error rather than silently ignored."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULTS: dict[str, Any] = {
    "tail": "pad",
    "separator": "auto",
    "short_seq_prob": 0.1,
    "nsp_probability": 0.5,
    "dupe_factor": 1,
    "seed": 0,
    "sentences": "split",
    "num_proc": 1,
}
MLM_ONLY = ("tail", "separator", "no_special_tokens")
PAIRS_ONLY = ("short_seq_prob", "nsp_probability", "dupe_factor", "seed", "sentences")
DATASETS_ONLY = ("num_proc",)
RAY_ONLY = ("ray_address", "num_workers")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the None of flags whose help states their default itself."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action, argparse._StoreConstAction):
            return action.help or ""
        return super()._get_help_string(action) or ""


def add_preprocess_command(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "preprocess",
        help="tokenize and group a corpus into Parquet shards, on this machine or with Ray",
        description="Tokenize a corpus and cut it into training examples (MLM blocks or NSP/SOP "
        "sentence pairs), written as Parquet shards with a manifest.json that `mlmkit pretrain "
        "--corpus DIR` and `datasets.load_dataset('parquet', data_dir=DIR)` read. The output is "
        "the same whatever --engine, worker count or scheduling.",
        formatter_class=_Help,
    )
    io = p.add_argument_group("input and output")
    io.add_argument(
        "--corpus",
        nargs="+",
        metavar="PATH",
        help="text files, folders or globs (documents separated by blank lines), JSON lines "
        "(.jsonl/.json), Parquet files or a saved `datasets` directory; default: the running "
        "Python's standard library documentation",
    )
    io.add_argument(
        "--text_field", default="text", help="text field of JSON lines/Parquet/datasets"
    )
    io.add_argument(
        "--sentences",
        choices=("split", "lines"),
        help="nsp/sop: split: sentences found by punctuation (. ! ? followed by a space and no "
        "lowercase letter, CJK full stops) in every line/paragraph; lines: every non-blank line "
        "is one sentence (the format of BERT's create_pretraining_data.py) (default: split). "
        "MLM joins a document's lines with a space",
    )
    io.add_argument("--tokenizer", required=True, metavar="DIR", help="tokenizer directory")
    io.add_argument("--output_dir", required=True, metavar="DIR", help="where the shards go")
    io.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --output_dir (at the end)"
    )
    io.add_argument(
        "--eval_fraction",
        type=float,
        default=0.05,
        help="share of documents held out in the validation split (by a hash of their text); "
        "0 for none. A saved DatasetDict keeps its own validation split",
    )

    ex = p.add_argument_group("examples")
    ex.add_argument(
        "--objective",
        choices=("mlm", "nsp", "sop"),
        default="mlm",
        help="MLM blocks (GroupTexts), or next-sentence / sentence-order pairs (SentencePairs)",
    )
    ex.add_argument("--block_size", type=int, default=128, help="tokens per example")
    ex.add_argument(
        "--tail",
        choices=("pad", "keep", "drop"),
        help="mlm: the last block of a chunk is padded to --block_size (attention_mask 0), kept "
        f"shorter, or dropped with its tokens (default: {DEFAULTS['tail']})",
    )
    ex.add_argument(
        "--separator",
        help="mlm: token between documents: auto (the sep token, else eos), none, or a token "
        f"such as [SEP] (default: {DEFAULTS['separator']})",
    )
    ex.add_argument(
        "--no_special_tokens",
        action="store_const",
        const=True,
        help="mlm: do not wrap each block in the tokenizer's special tokens ([CLS] ... [SEP])",
    )
    ex.add_argument(
        "--short_seq_prob",
        type=float,
        help=f"nsp/sop: share of shorter target lengths (default: {DEFAULTS['short_seq_prob']})",
    )
    ex.add_argument(
        "--nsp_probability",
        type=float,
        help="nsp: share of random next sentences; sop: share of swapped pairs (default: "
        f"{DEFAULTS['nsp_probability']})",
    )
    ex.add_argument(
        "--dupe_factor",
        type=int,
        help=f"nsp/sop: passes over the corpus with different draws (default: "
        f"{DEFAULTS['dupe_factor']})",
    )
    ex.add_argument(
        "--seed",
        type=int,
        help="nsp/sop: seed of every draw (keyed by the document, so any engine gives the same "
        f"pairs; MLM blocks involve no randomness) (default: {DEFAULTS['seed']})",
    )

    run = p.add_argument_group("engine and layout")
    run.add_argument(
        "--engine",
        choices=("datasets", "ray"),
        default="datasets",
        help="datasets: datasets.map on this machine; ray: Ray Data on a local or existing "
        "Ray cluster (pip install 'mlmkit[ray]')",
    )
    run.add_argument(
        "--num_proc", type=int, help=f"datasets: processes (default: {DEFAULTS['num_proc']})"
    )
    run.add_argument(
        "--ray_address",
        help="ray: auto or HOST:PORT joins an existing cluster; not given: start a local Ray",
    )
    run.add_argument(
        "--num_workers",
        type=int,
        help="ray: worker actors, one CPU each (default: one per CPU of the cluster)",
    )
    run.add_argument(
        "--chunk_mb",
        type=float,
        default=1.0,
        help="documents are processed in chunks of about this many MB of text: the unit of "
        "work, of grouping (blocks never span chunks) and of the random next document",
    )
    run.add_argument(
        "--tokens_per_shard",
        type=int,
        default=50_000_000,
        help="a new Parquet shard starts once one holds this many tokens",
    )
    return p
