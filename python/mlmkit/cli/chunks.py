"""Cutting a corpus into chunks: runs of consecutive documents of about `chunk_bytes` of text.

A chunk closes after the first document that brings its UTF-8 size to `chunk_bytes` or more
(documents are never split), so where chunks start depends only on the documents and
`chunk_bytes`, never on how they were read or who processes them. The chunks are streamed into
an Arrow IPC file (one record batch of one row per chunk, `CHUNK_SCHEMA`) that `datasets`
memory-maps and the Ray engine ships chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .chunk_pipeline import CHUNK_SCHEMA

_READ_DOCS = 10_000
_DOCS_TYPE = pa.list_(pa.large_string())


@dataclass
class SplitSize:
    documents: int = 0
    empty_documents: int = 0
    characters: int = 0
    bytes: int = 0
    chunks: int = 0


@dataclass
class ChunkFile:
    path: Path
    chunks: int
    splits: dict[str, SplitSize] = field(default_factory=dict)


def write_chunks(splits: Mapping[str, datasets.Dataset], path: Path, chunk_bytes: int) -> ChunkFile:
    """Write the documents (`sentences` column) of every split as chunks into `path`.
    Documents without sentences are left out (and counted)."""
    out = ChunkFile(path, 0)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, CHUNK_SCHEMA) as writer:

        def emit(split: str, pending: list[pa.Array]) -> None:
            docs = pa.concat_arrays(pending) if len(pending) > 1 else pending[0]
            nested = pa.ListArray.from_arrays(pa.array([0, len(docs)], pa.int32()), docs)
            writer.write_batch(
                pa.record_batch(
                    [pa.array([split]), pa.array([out.chunks], pa.int64()), nested],
                    schema=CHUNK_SCHEMA,
                )
            )
            out.chunks += 1
            out.splits[split].chunks += 1

        for split, ds in splits.items():
            size = out.splits.setdefault(split, SplitSize())
            pending: list[pa.Array] = []
            pending_bytes = 0
            for batch in ds.with_format("arrow").iter(batch_size=_READ_DOCS):
                docs = batch.column("sentences").combine_chunks().cast(_DOCS_TYPE)
                sentences = docs.flatten()
                n_bytes = _per_document(pc.binary_length(sentences), docs)
                keep = pc.list_value_length(docs).to_numpy() > 0
                size.empty_documents += int((~keep).sum())
                if not keep.all():
                    docs, n_bytes = docs.filter(pa.array(keep)), n_bytes[keep]
                size.documents += len(docs)
                size.bytes += int(n_bytes.sum())
                size.characters += int(pc.sum(pc.utf8_length(sentences)).as_py() or 0)
                start = 0
                while start < len(docs):
                    # The first document at which the chunk reaches chunk_bytes closes it.
                    reach = np.cumsum(n_bytes[start:]) + pending_bytes
                    end = start + int(np.searchsorted(reach, chunk_bytes, side="left")) + 1
                    pending.append(docs.slice(start, min(end, len(docs)) - start))
                    if end <= len(docs):
                        emit(split, pending)
                        pending, pending_bytes = [], 0
                    else:
                        pending_bytes = int(reach[-1])
                    start = end
            if pending:
                emit(split, pending)
    return out


def _per_document(sentence_bytes: pa.Array, docs: pa.ListArray) -> np.ndarray:
    """Sum of the sentences' byte lengths per document."""
    values = np.concatenate([[0], np.cumsum(sentence_bytes.to_numpy(zero_copy_only=False))])
    offsets = docs.offsets.to_numpy()
    offsets = offsets - offsets[0]
    return (values[offsets[1:]] - values[offsets[:-1]]).astype(np.int64)


def read_chunks(path: Path) -> Iterator[pa.Table]:
    """The chunk rows of a chunk file, one single-row table each, in order."""
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_stream(source)
        for batch in reader:
            yield pa.Table.from_batches([batch])
