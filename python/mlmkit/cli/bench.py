"""`mlmkit bench`: collation speed against transformers on this machine.

The case builders here are shared with the pytest-benchmark files in `benchmarks/`.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def synthetic_tokenizer(vocab_size: int = 30522) -> Any:
    """A BERT-like WordPiece tokenizer with `vocab_size` made-up tokens (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for i in range(len(SPECIALS), vocab_size):
        vocab[f"w{i}" if i % 3 else f"##w{i}"] = i
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def token_rows(tokenizer: Any, batch: int, length: int, seed: int = 0) -> list[list[int]]:
    """`batch` rows of `length` ids: [CLS] random non-special ids [SEP], as Python lists."""
    rng = np.random.default_rng(seed)
    body = rng.integers(len(SPECIALS), len(tokenizer), size=(batch, length - 2))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    return [[cls, *row, sep] for row in body.tolist()]


def feature_rows(
    tokenizer: Any, batch: int, length: int, seed: int = 0
) -> list[dict[str, list[int]]]:
    """What Trainer hands a collator: one dict of Python lists per example."""
    return [{"input_ids": r} for r in token_rows(tokenizer, batch, length, seed)]


def padded_array(tokenizer: Any, batch: int, length: int, seed: int = 0) -> np.ndarray:
    return np.array(token_rows(tokenizer, batch, length, seed), dtype=np.int64)


def collators(tokenizer: Any) -> dict[str, Callable[[Any], Any]]:
    import transformers

    import mlmkit

    return {
        "transformers": transformers.DataCollatorForLanguageModeling(tokenizer),
        "mlmkit": mlmkit.DataCollatorForLanguageModeling(tokenizer),
    }


def dataloader_epoch(collate: Callable[[Any], Any], dataset: Any, batch_size: int) -> int:
    """Iterate a DataLoader over a `datasets.Dataset` once; returns the number of batches."""
    from torch.utils.data import DataLoader

    n = 0
    for _ in DataLoader(dataset, batch_size=batch_size, collate_fn=collate, num_workers=0):
        n += 1
    return n


def seconds_per_call(fn: Callable[[], Any], budget: float) -> float:
    """Median wall time of `fn` over repeated calls filling about `budget` seconds."""
    fn()
    start = time.perf_counter()
    fn()
    one = max(time.perf_counter() - start, 1e-6)
    number = max(1, int(budget / 5 / one))
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def run(quick: bool = False) -> list[dict[str, Any]]:
    import datasets
    import torch

    torch.set_num_threads(1)
    budget = 0.5 if quick else 2.0
    tokenizer = synthetic_tokenizer()
    coll = collators(tokenizer)
    results: list[dict[str, Any]] = []

    def add(case: str, tokens: int, times: dict[str, float]) -> None:
        base = times.get("transformers")
        for name, t in times.items():
            results.append(
                {
                    "case": case,
                    "collator": name,
                    "ms": t * 1e3,
                    "mtok_s": tokens / t / 1e6,
                    "speedup": (base / t) if base else None,
                }
            )

    for length in (128, 512):
        feats = feature_rows(tokenizer, 32, length)
        times = {n: seconds_per_call(functools.partial(c, feats), budget) for n, c in coll.items()}
        add(f"B=32 L={length}, rows as lists", 32 * length, times)
    arr = padded_array(tokenizer, 32, 512)
    tensor = torch.from_numpy(arr)
    times = {
        "transformers": seconds_per_call(lambda: coll["transformers"]([r for r in tensor]), budget),
        "mlmkit": seconds_per_call(lambda: coll["mlmkit"](arr), budget),
    }
    add("B=32 L=512, padded 2-D array", 32 * 512, times)
    n_rows = 32 * (8 if quick else 32)
    ds = datasets.Dataset.from_dict({"input_ids": token_rows(tokenizer, n_rows, 512)})
    times = {
        n: seconds_per_call(functools.partial(dataloader_epoch, c, ds, 32), budget) / (n_rows // 32)
        for n, c in coll.items()
    }
    add("DataLoader over datasets.Dataset, B=32 L=512", 32 * 512, times)
    return results


def format_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| case | collator | ms / batch | M tokens/s | vs transformers |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        speedup = f"{r['speedup']:.1f}x" if r["speedup"] else ""
        lines.append(
            f"| {r['case']} | {r['collator']} | {r['ms']:.3f} | {r['mtok_s']:.2f} | {speedup} |"
        )
    return "\n".join(lines)
