"""`mlmkit preprocess`: corpus -> chunks -> (engine) tokenize + group / pair -> Parquet shards,
tokenizer and manifest, written into a hidden directory beside `--output_dir` and moved into
place only when everything is written."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .errors import CliError
from .preprocess_arguments import DATASETS_ONLY, DEFAULTS, MLM_ONLY, PAIRS_ONLY, RAY_ONLY
from .preprocessed import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    TOKENIZER_DIR,
    tokenizer_fingerprint,
)

SPLITS = ("train", "validation")


def preprocess_command(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    settings = _settings(args)
    output = Path(args.output_dir)
    _check_output(output, args.overwrite)
    tokenizer = _load_tokenizer(args.tokenizer)
    pipeline = _pipeline(args, settings, tokenizer)
    if args.engine == "ray":
        _ray_preflight(args.ray_address)

    from .text_corpus import load_corpus

    corpus = load_corpus(args.corpus, args.text_field, args.eval_fraction, sentences=args.sentences)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would carry over to the output
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.work-", dir=output.parent))
    try:
        manifest = _run(args, settings, tokenizer, pipeline, corpus, staging, work, start)
        _move_into_place(staging, output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    print(summary(manifest, output))
    return manifest


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that decides the output's content, with the defaults filled in; flags given
    where they do nothing are errors."""
    given = {k for k in (*MLM_ONLY, *PAIRS_ONLY, *DATASETS_ONLY, *RAY_ONLY)}
    given = {k for k in given if getattr(args, k) is not None}
    if args.objective == "mlm":
        wrong = [k for k in PAIRS_ONLY if k in given]
        if wrong:
            raise CliError(f"--{wrong[0]} applies to --objective nsp/sop, not mlm")
    else:
        wrong = [k for k in MLM_ONLY if k in given]
        if wrong:
            raise CliError(f"--{wrong[0]} applies to --objective mlm, not {args.objective}")
    other = RAY_ONLY if args.engine == "datasets" else DATASETS_ONLY
    wrong = [k for k in other if k in given]
    if wrong:
        raise CliError(f"--{wrong[0]} does not apply to --engine {args.engine}")
    for name, low in (("block_size", 8), ("num_proc", 1), ("num_workers", 1), ("dupe_factor", 1)):
        value = getattr(args, name)
        if value is not None and value < low:
            raise CliError(f"--{name} must be at least {low}, got {value}")
    if not 0.0 <= args.eval_fraction < 1.0:
        raise CliError(f"--eval_fraction must be in [0, 1), got {args.eval_fraction}")
    if not args.chunk_mb > 0:
        raise CliError(f"--chunk_mb must be positive, got {args.chunk_mb}")
    if args.tokens_per_shard < 1:
        raise CliError(f"--tokens_per_shard must be at least 1, got {args.tokens_per_shard}")
    s: dict[str, Any] = {
        "objective": args.objective,
        "block_size": args.block_size,
        "text_field": args.text_field,
        "eval_fraction": args.eval_fraction,
        "chunk_bytes": max(int(args.chunk_mb * 2**20), 1),
        "tokens_per_shard": args.tokens_per_shard,
    }
    if args.objective == "mlm":
        s["tail"] = args.tail or DEFAULTS["tail"]
        s["separator"] = args.separator or DEFAULTS["separator"]
        s["add_special_tokens"] = not args.no_special_tokens
    else:
        for name in PAIRS_ONLY:
            value = getattr(args, name)
            s[name] = DEFAULTS[name] if value is None else value
        for name in ("short_seq_prob", "nsp_probability"):
            if not 0.0 <= s[name] <= 1.0:
                raise CliError(f"--{name} must be between 0 and 1, got {s[name]}")
    return s


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise CliError(f"--output_dir {output} exists and is not a directory")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise CliError(
            f"--output_dir {output} is not empty; pass --overwrite to replace it (it is replaced "
            "only once the new output is complete)"
        )


def _load_tokenizer(directory: str) -> Any:
    from .models import load_tokenizer

    path = Path(directory)
    if not path.is_dir():
        raise CliError(f"tokenizer directory not found: {directory}")
    tokenizer = load_tokenizer(path)
    if tokenizer.pad_token is None:
        raise CliError(
            f"the tokenizer in {directory} has no pad token: masked-LM training pads batches "
            "(and --tail pad pads blocks) with it"
        )
    return tokenizer


def _pipeline(args: argparse.Namespace, settings: dict[str, Any], tokenizer: Any) -> Any:
    import mlmkit

    from .chunk_pipeline import ChunkPipeline

    try:
        if settings["objective"] == "mlm":
            sep = settings["separator"]
            separator: Any = True if sep == "auto" else None if sep == "none" else sep
            group = mlmkit.GroupTexts(
                settings["block_size"],
                tokenizer,
                separator=separator,
                add_special_tokens=settings["add_special_tokens"],
                tail=settings["tail"],
            )
            settings["separator_id"] = group.separator
            settings["prefix"], settings["suffix"] = list(group.prefix), list(group.suffix)
            tokenize = mlmkit.Tokenize(tokenizer, column="sentences", join=" ")
            return ChunkPipeline("mlm", tokenize, group=group)
        pairs = mlmkit.SentencePairs(
            tokenizer,
            max_seq_length=settings["block_size"],
            short_seq_prob=settings["short_seq_prob"],
            nsp_probability=settings["nsp_probability"],
            task=settings["objective"],
            seed=settings["seed"],
            dupe_factor=settings["dupe_factor"],
        )
        tokenize = mlmkit.Tokenize(tokenizer, column="sentences", join=None)
        split = settings["sentences"] == "split"
        return ChunkPipeline(settings["objective"], tokenize, pairs=pairs, split_sentences=split)
    except ValueError as e:
        raise CliError(f"the tokenizer in {args.tokenizer} does not fit: {e}") from None


def _ray_preflight(address: str | None) -> None:
    """Fail before reading the corpus when Ray is missing or the cluster is unreachable."""
    from .engines import check_ray_address, import_ray, use_loopback_for_local_ray

    if address is None:
        use_loopback_for_local_ray()
    else:
        check_ray_address(address)
    import_ray()


def _run(
    args: argparse.Namespace,
    settings: dict[str, Any],
    tokenizer: Any,
    pipeline: Any,
    corpus: Any,
    staging: Path,
    work: Path,
    start: float,
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from .chunk_pipeline import COUNTS, MLM_COUNTS, PAIR_COUNTS
    from .chunks import write_chunks
    from .engines import run_datasets, run_ray
    from .shards import write_results

    chunk_file = write_chunks(
        {"train": corpus.train, "validation": corpus.eval},
        work / "chunks.arrow",
        settings["chunk_bytes"],
    )
    documents = sum(s.documents for s in chunk_file.splits.values())
    if documents == 0:
        raise CliError("the corpus holds no text (every document is empty)")
    tokenizer.save_pretrained(str(staging / TOKENIZER_DIR))

    objective = settings["objective"]
    what = "blocks" if objective == "mlm" else f"{objective.upper()} pairs"
    desc = f"Tokenizing, making {what}"
    compute_start = time.perf_counter()
    if args.engine == "datasets":
        num_proc = args.num_proc or DEFAULTS["num_proc"]
        results = run_datasets(chunk_file.path, pipeline, num_proc, work, desc)
        run_info: dict[str, Any] = {"engine": "datasets", "num_proc": num_proc}
    else:
        run_info = {"engine": "ray", "ray_address": args.ray_address}
        results = run_ray(
            chunk_file.path, pipeline, args.ray_address, args.num_workers, info=run_info
        )
    counts = COUNTS + (MLM_COUNTS if objective == "mlm" else PAIR_COUNTS)
    with tqdm(total=chunk_file.chunks, desc=f"Writing {what}", unit="chunk") as progress:
        totals = write_results(
            results,
            staging,
            pipeline.examples,
            counts,
            settings["tokens_per_shard"],
            progress=progress,
        )
    seconds = time.perf_counter() - compute_start

    splits: dict[str, Any] = {}
    for name in SPLITS:
        size = chunk_file.splits[name]
        total = totals.get(name)
        c = dict(total.counts) if total else dict.fromkeys(counts, 0)
        entry: dict[str, Any] = {
            "documents": size.documents,
            "empty_documents_skipped": size.empty_documents,
            "characters": size.characters,
            "bytes": size.bytes,
            "chunks": size.chunks,
            "text_tokens": c.pop("text_tokens"),
            "rows": c["rows"],
            "blocks" if objective == "mlm" else "pairs": c.pop("rows"),
            "tokens": c.pop("tokens"),
        }
        if objective != "mlm":
            entry["sentences"] = c.pop("sentences")
            entry["random_next" if objective == "nsp" else "swapped"] = c.pop("label_1")
        entry.update(c)
        entry["shards"] = [asdict(s) for s in total.shards] if total else []
        splits[name] = entry
    if not any(s["rows"] for s in splits.values()):
        raise CliError(
            "the corpus is too small: it makes no examples (try a smaller --block_size or "
            "--tail pad)"
        )
    text_tokens = sum(s["text_tokens"] for s in splits.values())
    run_info.update(
        {
            "seconds": round(time.perf_counter() - start, 2),
            "processing_seconds": round(seconds, 2),
            "text_tokens_per_second": round(text_tokens / seconds) if seconds > 0 else None,
        }
    )
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "objective": objective,
        "settings": settings,
        "columns": {f.name: str(f.type) for f in pipeline.examples},
        "tokenizer": {
            "path": TOKENIZER_DIR,
            "source": str(args.tokenizer),
            "class": type(tokenizer).__name__,
            "vocab_size": len(tokenizer),
            "special_tokens": {k: str(v) for k, v in tokenizer.special_tokens_map.items()},
            "fingerprint": tokenizer_fingerprint(tokenizer),
        },
        "corpus": {"inputs": list(args.corpus or []), "description": corpus.description},
        "splits": splits,
        "versions": _versions(),
        "run": run_info,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for name in ("mlmkit", "tokenizers", "transformers", "datasets", "pyarrow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _move_into_place(staging: Path, output: Path) -> None:
    """Replace `output` by the finished `staging` directory (the old one, if any, is removed
    only after the new one is in place)."""
    old = None
    if output.is_dir():
        if any(output.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
            os.replace(output, old / output.name)
        else:
            output.rmdir()
    os.replace(staging, output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def summary(manifest: dict[str, Any], output: Path) -> str:
    objective = manifest["objective"]
    what = "blocks" if objective == "mlm" else "pairs"
    block = manifest["settings"]["block_size"]
    run = manifest["run"]
    parts = []
    for name, s in manifest["splits"].items():
        parts.append(
            f"{name}: {s['documents']} documents, {s['text_tokens']:,} tokens -> {s['rows']:,} "
            f"{what} in {len(s['shards'])} shard(s)"
        )
    engine = run["engine"] + (
        f", {run['num_proc']} process(es)"
        if run["engine"] == "datasets"
        else f", {run['num_workers']} worker(s)"
        + (f" at {run['ray_address']}" if run["ray_address"] else " (local Ray)")
    )
    speed = run["text_tokens_per_second"]
    lines = [
        f"mlmkit preprocess: {objective} {what} of <= {block} tokens in "
        f"{run['seconds']:.0f} s ({engine}; {speed:,} tokens/s)",
        *("  " + p for p in parts),
        f"saved in {output}/ ({MANIFEST}, {TOKENIZER_DIR}/, "
        + ", ".join(f"{n}/" for n, s in manifest["splits"].items() if s["shards"])
        + f"); train with: mlmkit pretrain --corpus {output}",
    ]
    return "\n".join(lines)
