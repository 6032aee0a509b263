"""`mlmkit preprocess --engine ray` and the map functions on Ray Data, with real Ray: one local
cluster for the module (`ray.init(num_cpus=2)`) and a head node started with `ray start --head`
on 127.0.0.1 that the command joins with --ray_address. On the standard library's documentation
and Korean prose, the Ray engine writes exactly the datasets engine's shards, for any worker
count and from run to run.

Ray here binds 127.0.0.1 only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when Ray is imported)
and uses a token of this test session rather than ~/.ray/auth_token."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))

import pyarrow as pa  # noqa: E402
import pytest  # noqa: E402

ray = pytest.importorskip(
    "ray", reason="the Ray engine needs ray[data] (pip install 'mlmkit[ray]')"
)

import mlmkit  # noqa: E402
from mlmkit.__main__ import main  # noqa: E402

from .preprocess_corpora import (  # noqa: E402
    content,
    korean_documents,
    manifest,
    rows,
    stdlib_documents,
    text_tokens,
    write_documents,
)

BLOCK = 128


@pytest.fixture(scope="module")
def ray_cluster():
    import ray.data

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    english, korean = stdlib_documents(), korean_documents(800_000)
    files = [
        write_documents(root / "stdlib.txt", english),
        write_documents(root / "korean.txt", korean),
    ]
    return files, english, korean


def preprocess(files, tokenizer, out, *flags):
    argv = ["preprocess", "--corpus", *map(str, files), "--tokenizer", str(tokenizer)]
    argv += ["--output_dir", str(out), "--chunk_mb", "0.4", *map(str, flags)]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def datasets_mlm(corpus, bert_dir, tmp_path_factory):
    files, _, _ = corpus
    return preprocess(files, bert_dir, tmp_path_factory.mktemp("ds") / "out", "--block_size", BLOCK)


@pytest.fixture(scope="module")
def ray_mlm(ray_cluster, corpus, bert_dir, tmp_path_factory):
    files, _, _ = corpus
    out = tmp_path_factory.mktemp("ray") / "out"
    return preprocess(
        files, bert_dir, out, "--block_size", BLOCK, "--engine", "ray", "--num_workers", "2"
    )


def test_ray_engine_writes_the_datasets_engines_shards(ray_mlm, datasets_mlm):
    assert content(ray_mlm) == content(datasets_mlm)
    run = manifest(ray_mlm)["run"]
    assert (run["engine"], run["num_workers"], run["cluster_cpus"]) == ("ray", 2, 2)


def test_ray_blocks_are_block_size_and_hold_every_text_token(ray_mlm, corpus, bert_tokenizer):
    _, english, korean = corpus
    m = manifest(ray_mlm)
    found: Counter = Counter()
    sep = bert_tokenizer.sep_token_id
    for split in ("train", "validation"):
        r = rows(ray_mlm, split)
        assert {len(b) for b in r["input_ids"]} == {BLOCK}
        for ids, mask in zip(r["input_ids"], r["attention_mask"], strict=True):
            n = sum(mask)
            found.update(ids[1 : n - 1])
        found[sep] -= m["splits"][split]["documents"] - m["splits"][split]["chunks"]
    assert +found == text_tokens(bert_tokenizer, english + korean)


def test_a_second_ray_run_with_one_worker_is_identical(ray_mlm, corpus, bert_dir, tmp_path):
    files, _, _ = corpus
    again = preprocess(
        files, bert_dir, tmp_path / "again", "--block_size", BLOCK, "--engine", "ray",
        "--num_workers", "1",
    )  # fmt: skip
    assert content(again) == content(ray_mlm)
    assert manifest(again)["run"]["num_workers"] == 1


def test_nsp_pairs_agree_between_engines(ray_cluster, corpus, bert_dir, tmp_path):
    files, _, _ = corpus
    common = ["--objective", "nsp", "--block_size", "64", "--seed", "11"]
    ds_out = preprocess(files[:1], bert_dir, tmp_path / "ds", *common)
    ray_out = preprocess(files[:1], bert_dir, tmp_path / "ray", *common, "--engine", "ray")
    a, b = manifest(ds_out)["splits"], manifest(ray_out)["splits"]
    for split in ("train", "validation"):
        assert a[split]["pairs"] == b[split]["pairs"] > 0
        assert a[split]["random_next"] == b[split]["random_next"]
        labels = rows(ray_out, split)["next_sentence_label"]
        assert sum(labels) == b[split]["random_next"]
    share = b["train"]["random_next"] / b["train"]["pairs"]
    assert 0.45 < share < 0.75  # >= nsp_probability: one-sentence chunks always get a random B
    assert content(ds_out) == content(ray_out)


def test_map_functions_on_ray_data_in_pyarrow_and_numpy(ray_cluster, corpus, bert_tokenizer):
    """Tokenize -> GroupTexts and SentencePairs as `map_batches`, each batch format through the
    whole chain; one batch of everything gives exactly the direct call's result."""
    import ray.data

    _, english, _ = corpus
    docs = english[:300]
    texts = [" ".join(d) for d in docs]
    tokenize = mlmkit.Tokenize(bert_tokenizer)
    group = mlmkit.GroupTexts(64, bert_tokenizer, separator=True, add_special_tokens=True)
    pairs = mlmkit.SentencePairs(bert_tokenizer, max_seq_length=64, seed=3)
    expected_ids = tokenize(pa.table({"text": texts})).column("input_ids").to_pylist()
    expected_blocks = group(tokenize(pa.table({"text": texts}))).column("input_ids").to_pylist()
    expected_pairs = pairs(pa.table({"sentences": docs}))
    text_ds = ray.data.from_items([{"text": t} for t in texts]).repartition(1)
    sentence_ds = ray.data.from_items([{"sentences": d} for d in docs]).repartition(1)
    for fmt in ("pyarrow", "numpy"):
        ids = text_ds.map_batches(tokenize, batch_format=fmt, batch_size=37)
        got_ids = [list(r["input_ids"]) for r in ids.take_all()]
        assert got_ids == expected_ids, fmt
        blocks = ids.map_batches(group, batch_format=fmt, batch_size=None)
        assert [list(r["input_ids"]) for r in blocks.take_all()] == expected_blocks, fmt
        made = sentence_ds.map_batches(pairs, batch_format=fmt, batch_size=None).take_all()
        assert [list(r["input_ids"]) for r in made] == expected_pairs.column(
            "input_ids"
        ).to_pylist(), fmt
        assert [int(r["next_sentence_label"]) for r in made] == expected_pairs.column(
            "next_sentence_label"
        ).to_pylist()


def test_auto_address_from_ray_address_fails_fast_when_unreachable(
    corpus, bert_dir, tmp_path, monkeypatch, capsys
):
    files, _, _ = corpus
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_free_port()}")
    start = time.monotonic()
    code = main(
        ["preprocess", "--corpus", str(files[1]), "--tokenizer", str(bert_dir)]
        + ["--output_dir", str(tmp_path / "out"), "--engine", "ray", "--ray_address", "auto"]
    )
    assert code == 2 and time.monotonic() - start < 30
    assert "no Ray cluster at 127.0.0.1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- joining an existing cluster ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Processes below `pid` (Linux /proc), so that everything the head node started can be
    stopped by its id."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@pytest.fixture
def head_node():
    """`ray start --head --block` on 127.0.0.1 at a free port, stopped (with everything it
    started) when the test ends, whatever happens."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rayhead", dir="/tmp")  # short: Ray's socket paths
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block"]
        + ["--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2"]
        + ["--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # Stop at once when the test ends (a node drains for 30 s after SIGTERM by default).
        env=dict(os.environ, RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0"),
    )
    try:
        deadline = time.monotonic() + 120
        assert head.stdout is not None
        for line in head.stdout:
            if "Ray runtime started" in line:
                break
            assert time.monotonic() < deadline, "the head node did not start in 2 minutes"
        else:
            pytest.fail(f"ray start --head exited with {head.wait()}")
        # Keep reading its output so that it never blocks on a full pipe.
        threading.Thread(target=head.stdout.read, daemon=True).start()
        yield f"127.0.0.1:{port}"
    finally:
        started = _descendants(head.pid)
        head.terminate()  # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        for pid in started + _descendants(head.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["rm", "-rf", temp], check=False)


def test_cli_joins_a_head_node_and_writes_the_same_shards(
    head_node, corpus, bert_dir, datasets_mlm, tmp_path
):
    files, _, _ = corpus
    out = tmp_path / "joined"
    proc = subprocess.run(
        [sys.executable, "-m", "mlmkit", "preprocess", "--corpus", *map(str, files)]
        + ["--tokenizer", str(bert_dir), "--output_dir", str(out), "--chunk_mb", "0.4"]
        + ["--block_size", str(BLOCK), "--engine", "ray", "--ray_address", head_node]
        + ["--num_workers", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert content(out) == content(datasets_mlm)
    run = manifest(out)["run"]
    assert run["ray_address"] == head_node and run["cluster_cpus"] == 2
    assert f"at {head_node}" in proc.stdout
