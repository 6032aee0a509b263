"""Smoke run of benchmarks/preprocess_throughput.py (a small corpus, datasets engine only), so
that the script behind the RESULTS.md figures keeps working. The figures come from running the
script itself (see its docstring)."""

from __future__ import annotations

from .preprocess_throughput import main


def test_preprocess_throughput_script_runs(capsys):
    results = main(["--quick"])
    runs = {r["run"] for r in results}
    assert {"datasets num_proc 1", "datasets num_proc 2"} <= runs
    assert all(r["M_tokens_per_s"] > 0 for r in results)
