"""Running a `ChunkPipeline` over a chunk file: with `datasets.map` on this machine or with Ray
Data on a local or existing Ray cluster. Both yield single-row result tables; `shards.py` puts
them in chunk order. Ray is imported here only, and only when the Ray engine runs."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from .chunk_pipeline import ChunkPipeline
from .chunks import read_chunks
from .errors import CliError

RAY_EXTRA = 'pip install "mlmkit[ray]"'
CONNECT_TIMEOUT_S = 5.0
# The client preface of HTTP/2 (which gRPC, and so Ray's GCS, speaks) and an empty SETTINGS frame.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def run_datasets(
    chunk_file: Path, pipeline: ChunkPipeline, num_proc: int, work_dir: Path, desc: str
) -> Iterator[pa.Table]:
    """`datasets.map` over the chunk rows (`num_proc` processes); results are read back from
    the map's Arrow file."""
    import datasets

    chunks = datasets.Dataset.from_file(str(chunk_file))
    features = datasets.Features.from_arrow_schema(pipeline.schema)
    results = chunks.with_format("arrow").map(
        pipeline,
        batched=True,
        batch_size=1,
        num_proc=num_proc if num_proc > 1 else None,
        remove_columns=chunks.column_names,
        features=features,
        cache_file_name=str(work_dir / "results.arrow"),
        load_from_cache_file=False,
        new_fingerprint=f"mlmkit-preprocess-{os.getpid()}-{id(pipeline)}",
        desc=desc,
    )
    yield from results.with_format("arrow").iter(batch_size=16)


@dataclass
class RayChunkTask:
    """The map function of the Ray tasks. Tasks (rather than actors) reuse Ray's warm worker
    processes, and `Tokenize` builds its tokenizer once per process."""

    pipeline: ChunkPipeline

    def __call__(self, batch: pa.Table) -> pa.Table:
        # One CPU per task: the parallelism is Ray's, not the tokenizer's threads.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        return self.pipeline(batch)


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise CliError(f"--engine ray needs Ray Data ({e}): {RAY_EXTRA}") from None
    return ray


def use_loopback_for_local_ray() -> None:
    """A Ray started for this command serves this machine only: bind it to the loopback
    interface (Ray binds the node's IP otherwise). Ray reads this when it is first imported."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def run_ray(
    chunk_file: Path,
    pipeline: ChunkPipeline,
    address: str | None,
    num_workers: int | None,
    info: dict[str, Any] | None = None,
) -> Iterator[pa.Table]:
    """Ray Data: the chunk rows go through the object store to `num_workers` actors (default:
    one per CPU of the cluster), results come back here in chunk order. `info` gets the
    worker count and the cluster's CPUs."""
    if address is None:
        use_loopback_for_local_ray()
    else:
        check_ray_address(address)
    ray = import_ray()
    ours = connect(ray, address, num_workers)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        if num_workers is None:
            num_workers = max(cpus, 1)
        if info is not None:
            info.update(num_workers=num_workers, cluster_cpus=cpus)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        refs = [ray.put(table) for table in read_chunks(chunk_file)]
        ds = ray.data.from_arrow_refs(refs).map_batches(
            RayChunkTask(pipeline),
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.TaskPoolStrategy(size=num_workers),
            num_cpus=1,
        )
        yield from ds.iter_batches(batch_format="pyarrow", batch_size=None)
    finally:
        if ours:
            ray.shutdown()


def connect(ray: Any, address: str | None, num_workers: int | None) -> bool:
    """Start or join Ray; False when this process was already connected (then it stays)."""
    if ray.is_initialized():
        return False
    try:
        if address is None:
            ray.init(
                num_cpus=num_workers or os.cpu_count() or 1,
                include_dashboard=False,
                logging_level=logging.WARNING,
            )
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = "start a local Ray" if address is None else f"join the Ray cluster at {address}"
        raise CliError(f"cannot {where}: {_first_line(e)}") from None
    return True


def check_ray_address(address: str) -> None:
    """Fail within seconds when `address` (HOST:PORT, ray://HOST:PORT or auto) does not answer
    like a Ray head node; `ray.init` itself would retry for a minute."""
    if address == "auto":
        found = _auto_address()
        if found is None:
            return  # ray.init("auto") fails at once when it finds no cluster
        address = found
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise CliError(f"--ray_address must be auto or HOST:PORT, got {address!r}")
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S)
    except OSError as e:
        raise CliError(
            f"no Ray cluster at {address}: cannot connect ({e.strerror or e}); start one with "
            "`ray start --head` or check --ray_address"
        ) from None
    try:
        with conn:
            conn.sendall(_HTTP2_PREFACE)
            head = _read(conn, 9)
    except OSError:  # no answer in time, or the connection dropped
        head = b""
    if len(head) < 9 or head[3] != 0x04:  # a gRPC server answers with its SETTINGS frame
        raise CliError(
            f"no Ray cluster at {address}: something listens there but does not answer like a "
            "Ray head node (gRPC)"
        )


def _auto_address() -> str | None:
    """The address `ray.init("auto")` would use: $RAY_ADDRESS, else the cluster that
    `ray start` on this machine recorded."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:
        from ray._private.services import find_bootstrap_address

        return find_bootstrap_address(None)  # type: ignore[no-any-return]
    except Exception:  # a private helper: without it, ray.init reports what it finds
        return None


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        got = conn.recv(n - len(data))
        if not got:
            break
        data += got
    return data


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
