"""The PNG of a run: training loss and fixed-mask eval perplexity against the step."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(log_history: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [
        (h["step"], h["eval_mlm_perplexity"])
        for h in log_history
        if "eval_mlm_perplexity" in h and "step" in h
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    if train:
        left.plot(*zip(*train, strict=True), color="tab:blue")
    left.set(xlabel="step", ylabel="training loss", title="training loss")
    left.grid(alpha=0.3)
    if evals:
        right.plot(*zip(*evals, strict=True), marker="o", color="tab:orange")
        right.set_yscale("log")
    right.set(xlabel="step", ylabel="perplexity (log scale)", title="eval perplexity, fixed masks")
    right.grid(alpha=0.3, which="both")
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
