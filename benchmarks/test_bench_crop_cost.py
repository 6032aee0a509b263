"""Smoke run of benchmarks/crop_cost.py, so that the script behind the RESULTS.md figures keeps
working. The figures come from running the script itself (see its docstring)."""

from __future__ import annotations

from .crop_cost import CASES, main


def test_crop_cost_script_runs(capsys):
    results = main(["--rounds", "1", "--calls", "1"])
    assert len(results) == 4 * len(CASES)
    assert all(r["ms"] > 0 for r in results)
    assert "cropped 512 -> 128" in capsys.readouterr().out
