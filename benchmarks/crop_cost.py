"""Cost of `max_length`: collating B=32 rows of 512 tokens cropped to 128, against collating
them uncropped (the baseline) and against rows of 128 tokens to begin with.

The cases run interleaved, round after round, and each figure is the median over rounds of the
process CPU time per batch, so load from other processes on a shared machine moves all cases
alike instead of whichever ran during a busy second.

    python -m benchmarks.crop_cost [--rounds 40] [--calls 50]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from tokenizers.processors import TemplateProcessing

import mlmkit
from mlmkit.bench import feature_rows, synthetic_tokenizer

B = 32
CASES = {  # name: (row length, max_length)
    "uncropped, rows of 512": (512, None),
    "cropped 512 -> 128": (512, 128),
    "rows of 128": (128, None),
}
BASELINE = "uncropped, rows of 512"


def bert_like_tokenizer() -> Any:
    tok = synthetic_tokenizer()
    cls, sep = tok.cls_token_id, tok.sep_token_id
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok


def rows(tok: Any, length: int, columns: bool) -> list[dict[str, list[int]]]:
    feats = feature_rows(tok, B, length)
    if columns:
        for f in feats:
            n = len(f["input_ids"])
            f["token_type_ids"] = [0] * n
            f["special_tokens_mask"] = [1] + [0] * (n - 2) + [1]
    return feats


def measure(rounds: int, calls: int) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    tok = bert_like_tokenizer()
    results = []
    for mode in ("seeded", "keyed"):
        for columns in (False, True):
            cases = {}
            for name, (length, max_length) in CASES.items():
                collator = mlmkit.DataCollatorForLanguageModeling(
                    tok, seed=0, keyed=mode == "keyed", max_length=max_length
                )
                feats = rows(tok, length, columns)
                assert collator(feats)["input_ids"].shape == (B, max_length or length)
                cases[name] = (collator, feats)
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(rounds):
                for name, (collator, feats) in cases.items():
                    start = time.process_time()
                    for _ in range(calls):
                        collator(feats)
                    times[name].append((time.process_time() - start) / calls)
            for name in cases:
                results.append(
                    {
                        "mode": mode,
                        "columns": "input_ids + token_type_ids + special_tokens_mask"
                        if columns
                        else "input_ids",
                        "case": name,
                        "ms": float(np.median(times[name])) * 1e3,
                        "spread_ms": float(np.subtract(*np.percentile(times[name], [75, 25])))
                        * 1e3,
                    }
                )
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["mode"], r["columns"]), []).append(r)
    for (mode, columns), items in groups.items():
        base = next(r["ms"] for r in items if r["case"] == BASELINE)
        lines += [
            f"### {mode}, {columns}",
            "",
            "| case | ms per batch (median) | interquartile range | vs uncropped |",
            "|---|---|---|---|",
        ]
        for r in items:
            lines.append(
                f"| {r['case']} | {r['ms']:.3f} | {r['spread_ms']:.3f} | {base / r['ms']:.2f}x |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args(argv)
    results = measure(args.rounds, args.calls)
    print(table(results))
    return results


if __name__ == "__main__":
    main()
