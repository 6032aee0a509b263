"""Writing chunk results as Parquet shards, in chunk order, whichever order they arrive in.

Each split gets `SPLIT/part-00000.parquet`, `part-00001.parquet`, ...: a chunk's examples are
one write (so one row group) and a new shard starts once the current one holds
`tokens_per_shard` tokens. Files, row groups and bytes depend only on the chunk results, so
every engine writes the same files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSION = "zstd"


@dataclass
class ShardInfo:
    path: str  # relative to the output directory
    rows: int
    tokens: int
    sha256: str = ""


@dataclass
class SplitTotals:
    chunks: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    shards: list[ShardInfo] = field(default_factory=list)


def in_chunk_order(results: Iterable[pa.Table], first: int = 0) -> Iterator[pa.Table]:
    """Single-row result tables sorted by their `chunk` index (which runs first, first+1, ...),
    holding back the ones that arrive early."""
    waiting: dict[int, pa.Table] = {}
    following = first
    for table in results:
        for i in range(table.num_rows):
            row = table.slice(i, 1)
            waiting[int(row.column("chunk")[0].as_py())] = row
        while following in waiting:
            yield waiting.pop(following)
            following += 1
    if waiting:
        raise RuntimeError(f"chunk {following} never came back (got {sorted(waiting)[:5]} ...)")


class ShardWriter:
    """Parquet shards of one split."""

    def __init__(self, root: Path, split: str, schema: pa.Schema, tokens_per_shard: int) -> None:
        self.root, self.split, self.schema = root, split, schema
        self.tokens_per_shard = tokens_per_shard
        self.shards: list[ShardInfo] = []
        self._writer: pq.ParquetWriter | None = None

    def write(self, examples: pa.Table, tokens: int) -> None:
        if examples.num_rows == 0:
            return
        if self._writer is not None and self.shards[-1].tokens >= self.tokens_per_shard:
            self._close_file()
        if self._writer is None:
            rel = f"{self.split}/part-{len(self.shards):05d}.parquet"
            (self.root / self.split).mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                str(self.root / rel), self.schema, compression=COMPRESSION
            )
            self.shards.append(ShardInfo(rel, 0, 0))
        self._writer.write_table(examples.cast(self.schema), row_group_size=examples.num_rows)
        self.shards[-1].rows += examples.num_rows
        self.shards[-1].tokens += tokens

    def _close_file(self) -> None:
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        info = self.shards[-1]
        info.sha256 = _sha256(self.root / info.path)

    def close(self) -> list[ShardInfo]:
        if self._writer is not None:
            self._close_file()
        return self.shards


def unnest(result: pa.Table, names: list[str]) -> pa.Table:
    """The examples of a single-row result table (its list columns, one level down)."""
    return pa.table({n: result.column(n).combine_chunks().flatten() for n in names})


def write_results(
    results: Iterable[pa.Table],
    root: Path,
    examples: pa.Schema,
    count_names: tuple[str, ...],
    tokens_per_shard: int,
    progress: Any = None,
) -> dict[str, SplitTotals]:
    """Write every result row's examples to its split's shards; returns per-split totals."""
    writers: dict[str, ShardWriter] = {}
    totals: dict[str, SplitTotals] = {}
    for row in in_chunk_order(results):
        split = row.column("split")[0].as_py()
        if split not in writers:
            writers[split] = ShardWriter(root, split, examples, tokens_per_shard)
            totals[split] = SplitTotals(counts=dict.fromkeys(count_names, 0))
        counts = {n: int(row.column(n)[0].as_py()) for n in count_names}
        writers[split].write(unnest(row, examples.names), counts["tokens"])
        total = totals[split]
        total.chunks += 1
        for n, v in counts.items():
            total.counts[n] += v
        if progress is not None:
            progress.update(1)
            progress.set_postfix(
                tokens=f"{sum(t.counts['text_tokens'] for t in totals.values()):,}"
            )
    for split, writer in writers.items():
        totals[split].shards = writer.close()
    return totals


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
