"""Do mlmkit's masks train a model as well as transformers' do?

Trains a tiny BERT (`BertForMaskedLM` from a config) on the same blocks of the built-in corpus
(the standard library's documentation) with three collators:

* `transformers`: `transformers.DataCollatorForLanguageModeling(mlm_probability=0.15, seed=seed)`
* `mlmkit`: `mlmkit.DataCollatorForLanguageModeling(mlm_probability=0.15, seed=seed)`
* `mlmkit-word`: the same with `whole_word_mask=True` (an extra row, not a drop-in comparison)

For each seed every arm starts from the same initial weights (`torch.manual_seed(seed)` before
the model is built) and sees the same blocks in the same order with the same optimizer and
learning-rate schedule: only the masks differ. Every run is evaluated on one held-out set
(documents disjoint from the training ones, hashed out as `mlmkit pretrain` does) whose masks are
drawn once, by code in this file that uses neither collator: 15% of each block's non-special
tokens (rounded), chosen uniformly without replacement by `numpy.random.default_rng`, all
replaced by `[MASK]`. Reported: token-weighted perplexity exp(total NLL / masked tokens) and
top-1 accuracy over the masked tokens.

Full run (results in benchmarks/RESULTS.md):
    python benchmarks/train_masks_equivalence.py --jobs 2
A smoke run of a few seconds (also run by benchmarks/test_train_masks_equivalence.py):
    python benchmarks/train_masks_equivalence.py --quick

Runs go to separate processes (`--jobs` at a time), each limited to one torch thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ARMS = ("transformers", "mlmkit", "mlmkit-word")
BASELINE = "transformers"
EVAL_MASK_SEED = 20_240_611
DEFAULT_OUTPUT = Path(".benchmarks/masks_equivalence")
T = TypeVar("T")


@dataclass
class Setup:
    """Everything a run depends on besides its arm and seed (saved as setup.json)."""

    steps: int = 2500
    seeds: int = 3
    first_seed: int = 0
    batch_size: int = 32
    block_size: int = 64
    vocab_size: int = 4096
    learning_rate: float = 1e-3
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    adam_beta2: float = 0.98
    max_grad_norm: float = 1.0
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 512
    position_init: str = "sinusoidal"
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    eval_fraction: float = 0.1
    eval_mlm_probability: float = 0.15
    eval_every: int = 250
    eval_batch_size: int = 64
    max_train_documents: int | None = None
    max_eval_documents: int | None = None
    arms: tuple[str, ...] = ARMS

    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))


QUICK: dict[str, Any] = {
    "steps": 6,
    "seeds": 2,
    "batch_size": 8,
    "block_size": 32,
    "vocab_size": 600,
    "eval_every": 3,
    "max_train_documents": 300,
    "max_eval_documents": 40,
}


# ---- data: blocks and the held-out set's fixed masks ----------------------------------------


def prepare(setup: Setup, workdir: Path) -> dict[str, Any]:
    """Train the tokenizer, cut train/held-out blocks, mask the held-out ones once; save the
    tokenizer and `data.npz` in `workdir`. Returns a description of the data."""
    import datasets

    import mlmkit
    from mlmkit.cli.text_corpus import load_corpus
    from mlmkit.cli.tokenizer_training import train_tokenizer

    datasets.disable_progress_bars()
    corpus = load_corpus(None, eval_fraction=setup.eval_fraction, progress=False)
    train_docs = _first(corpus.train, setup.max_train_documents)
    eval_docs = _first(corpus.eval, setup.max_eval_documents)
    tokenizer = train_tokenizer(
        _texts(train_docs),
        vocab_size=setup.vocab_size,
        model_max_length=setup.block_size,
        length=len(train_docs),
    )
    group = mlmkit.GroupTexts(
        setup.block_size, tokenizer, separator=True, add_special_tokens=True, tail="drop"
    )
    train_blocks = _blocks(train_docs, tokenizer, group)
    eval_blocks = _blocks(eval_docs, tokenizer, group)
    eval_inputs, eval_labels = fixed_masks(
        eval_blocks,
        np.asarray(tokenizer.all_special_ids),
        tokenizer.mask_token_id,
        setup.eval_mlm_probability,
        EVAL_MASK_SEED,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(workdir / "tokenizer"))
    np.savez(
        workdir / "data.npz",
        train_blocks=train_blocks,
        eval_inputs=eval_inputs,
        eval_labels=eval_labels,
    )
    return {
        "train_documents": len(train_docs),
        "eval_documents": len(eval_docs),
        "vocab_size": len(tokenizer),
        "train_blocks": int(train_blocks.shape[0]),
        "eval_blocks": int(eval_blocks.shape[0]),
        "eval_masked_tokens": int((eval_labels != -100).sum()),
        "eval_masks_sha256": masks_digest(eval_inputs, eval_labels),
    }


def resumed_data(setup: Setup, workdir: Path) -> dict[str, Any]:
    """The description `prepare` gave of the data an interrupted run saved in `workdir`."""
    if (workdir / "data.json").exists():
        return dict(json.loads((workdir / "data.json").read_text()))
    from mlmkit.cli.text_corpus import load_corpus

    corpus = load_corpus(None, eval_fraction=setup.eval_fraction, progress=False)
    data = Data.load(workdir)
    return {
        "train_documents": len(_first(corpus.train, setup.max_train_documents)),
        "eval_documents": len(_first(corpus.eval, setup.max_eval_documents)),
        "vocab_size": len(data.tokenizer),
        "train_blocks": int(data.train_blocks.shape[0]),
        "eval_blocks": int(data.eval_inputs.shape[0]),
        "eval_masked_tokens": int((data.eval_labels != -100).sum()),
        "eval_masks_sha256": masks_digest(data.eval_inputs, data.eval_labels),
    }


def _first(docs: Any, n: int | None) -> Any:
    return docs if n is None else docs.select(range(min(n, len(docs))))


def _texts(docs: Any) -> Any:
    for batch in docs.iter(batch_size=1000):
        yield [" ".join(d) for d in batch["sentences"]]


def _blocks(docs: Any, tokenizer: Any, group: Any) -> np.ndarray:
    """Documents -> token ids -> equal blocks `[CLS] ... [SEP]` (documents separated by [SEP])."""
    from mlmkit.cli.pretraining import TokenizeDocuments

    ids = docs.map(TokenizeDocuments(tokenizer), batched=True, remove_columns=docs.column_names)
    blocks = ids.with_format("arrow").map(
        group, batched=True, batch_size=100_000, remove_columns=ids.column_names
    )
    return np.asarray(blocks.with_format("numpy")["input_ids"], dtype=np.int64)


def fixed_masks(
    blocks: np.ndarray,
    special_ids: np.ndarray,
    mask_id: int,
    probability: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Masks drawn by this file alone (neither collator): in each block, round(probability * n)
    of its n non-special positions (at least one), uniformly without replacement, all set to
    `mask_id`. Labels are the original ids there and -100 elsewhere."""
    rng = np.random.default_rng(seed)
    inputs = blocks.copy()
    labels = np.full_like(blocks, -100)
    for row in range(blocks.shape[0]):
        eligible = np.flatnonzero(~np.isin(blocks[row], special_ids))
        if eligible.size == 0:
            continue
        k = max(1, round(probability * eligible.size))
        chosen = rng.choice(eligible, size=k, replace=False)
        labels[row, chosen] = blocks[row, chosen]
        inputs[row, chosen] = mask_id
    return inputs, labels


def masks_digest(inputs: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (inputs, labels):
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


# ---- one run ---------------------------------------------------------------------------------


def make_collator(arm: str, tokenizer: Any, setup: Setup, seed: int) -> Any:
    import transformers

    import mlmkit

    options: dict[str, Any] = {
        "mlm_probability": setup.mlm_probability,
        "mask_replace_prob": setup.mask_replace_prob,
        "random_replace_prob": setup.random_replace_prob,
        "seed": seed,
    }
    if arm == "transformers":
        return transformers.DataCollatorForLanguageModeling(tokenizer, **options)
    if arm == "mlmkit":
        return mlmkit.DataCollatorForLanguageModeling(tokenizer, **options)
    if arm == "mlmkit-word":
        return mlmkit.DataCollatorForLanguageModeling(tokenizer, whole_word_mask=True, **options)
    raise ValueError(f"unknown arm {arm!r}; choose from {ARMS}")


def build_model(setup: Setup, tokenizer: Any, seed: int) -> Any:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from mlmkit.cli.positions import init_sinusoidal_positions

    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=setup.hidden_size,
        num_hidden_layers=setup.num_hidden_layers,
        num_attention_heads=setup.num_attention_heads,
        intermediate_size=setup.intermediate_size,
        max_position_embeddings=setup.block_size,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(seed)
    model = BertForMaskedLM(config)
    if setup.position_init == "sinusoidal":
        init_sinusoidal_positions(
            model.bert.embeddings.position_embeddings, config.initializer_range
        )
    return model


def masked_logits(model: Any, input_ids: Any, labels: Any) -> tuple[Any, Any]:
    """Logits at the labelled positions only, and their labels. The same numbers as
    `BertForMaskedLM(...).logits[labels != -100]`, without the output layer at the other 85%."""
    import torch

    hidden = model.bert(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))[0]
    where = labels != -100
    return model.cls(hidden[where]), labels[where]


def evaluate(model: Any, inputs: np.ndarray, labels: np.ndarray, batch_size: int) -> dict[str, Any]:
    """Token-weighted perplexity and top-1 accuracy over every masked token of the held-out set."""
    import torch
    import torch.nn.functional as F

    model.eval()
    nll, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, inputs.shape[0], batch_size):
            ids = torch.from_numpy(inputs[start : start + batch_size])
            lab = torch.from_numpy(labels[start : start + batch_size])
            logits, target = masked_logits(model, ids, lab)
            nll += F.cross_entropy(logits.double(), target, reduction="sum").item()
            correct += int((logits.argmax(-1) == target).sum())
            count += int(target.numel())
    model.train()
    return {
        "perplexity": math.exp(nll / count),
        "accuracy": correct / count,
        "nll_sum": nll,
        "masked_tokens": count,
    }


def batch_order(n_blocks: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """Block indices for each step: a fresh permutation per epoch (from `seed` and the epoch),
    incomplete last batches dropped. Shape (steps, batch_size)."""
    per_epoch = n_blocks // batch_size
    if per_epoch == 0:
        raise ValueError(f"{n_blocks} training blocks are fewer than one batch of {batch_size}")
    epochs = -(-steps // per_epoch)
    order = [
        np.random.default_rng([seed, epoch]).permutation(n_blocks)[: per_epoch * batch_size]
        for epoch in range(epochs)
    ]
    return np.concatenate(order).reshape(-1, batch_size)[:steps]


@dataclass
class Data:
    """What `prepare` saved: the tokenizer, the training blocks, the masked held-out blocks."""

    tokenizer: Any
    train_blocks: np.ndarray
    eval_inputs: np.ndarray
    eval_labels: np.ndarray

    @classmethod
    def load(cls, workdir: Path) -> Data:
        from transformers import AutoTokenizer

        data = np.load(workdir / "data.npz")
        return cls(
            AutoTokenizer.from_pretrained(str(workdir / "tokenizer")),
            data["train_blocks"],
            data["eval_inputs"],
            data["eval_labels"],
        )


def one_thread(run: Callable[[], T]) -> T:
    """Run `run()` on one torch thread (restoring the caller's setting)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run()
    finally:
        torch.set_num_threads(threads)


def train_one(arm: str, seed: int, workdir: Path, setup: Setup) -> dict[str, Any]:
    """Train the model built from `seed` with the arm's collator, on one torch thread."""
    data = Data.load(workdir)
    model = build_model(setup, data.tokenizer, seed)
    collator = make_collator(arm, data.tokenizer, setup, seed)

    def batch(indices: np.ndarray) -> tuple[Any, Any]:
        # What Trainer hands a collator: a list of rows of Python ints.
        out = collator([{"input_ids": data.train_blocks[i].tolist()} for i in indices])
        return out["input_ids"], out["labels"]

    order = batch_order(data.train_blocks.shape[0], setup.batch_size, setup.steps, seed)
    result = one_thread(lambda: fit(model, batch, order, data, setup, f"{arm} seed {seed}"))
    return {"arm": arm, "seed": seed, **result}


def fit(
    model: Any,
    batch: Callable[[np.ndarray], tuple[Any, Any]],
    order: np.ndarray,
    data: Data,
    setup: Setup,
    name: str,
) -> dict[str, Any]:
    """AdamW over the steps of `order` (`batch` makes each step's input ids and labels from its
    block indices), linear warmup then linear decay to 0; evaluates on the held-out masks at
    step 0, every `eval_every` steps and at the end."""
    import torch
    import torch.nn.functional as F
    from transformers import get_linear_schedule_with_warmup

    steps = len(order)
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    others = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": matrices, "weight_decay": setup.weight_decay},
            {"params": others, "weight_decay": 0.0},
        ],
        lr=setup.learning_rate,
        betas=(0.9, setup.adam_beta2),
        eps=1e-6,
    )
    schedule = get_linear_schedule_with_warmup(
        optimizer, round(setup.warmup_fraction * steps), steps
    )

    def held_out() -> dict[str, Any]:
        return evaluate(model, data.eval_inputs, data.eval_labels, setup.eval_batch_size)

    curve = [{"step": 0, **held_out()}]
    start, cpu_start = time.perf_counter(), time.process_time()
    losses: list[float] = []
    for step, indices in enumerate(order, start=1):
        input_ids, labels = batch(indices)
        logits, target = masked_logits(model, input_ids, labels)
        loss = F.cross_entropy(logits, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), setup.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % setup.eval_every == 0 or step == steps:
            point = held_out()
            curve.append({"step": step, "train_loss": float(np.mean(losses)), **point})
            losses = []
            print(
                f"{name} step {step}: held-out perplexity {point['perplexity']:.2f}, "
                f"accuracy {point['accuracy']:.2%}",
                flush=True,
            )
    return {
        "train_seconds": round(time.perf_counter() - start, 1),
        "train_cpu_seconds": round(time.process_time() - cpu_start, 1),
        "eval_masks_sha256": masks_digest(data.eval_inputs, data.eval_labels),
        "final": curve[-1],
        "curve": curve,
    }


# ---- running the grid and summarising ---------------------------------------------------------


def run_job(arm: str, seed: int, workdir: Path, setup: Setup) -> dict[str, Any]:
    """`train_one`, its result also written to workdir/ARM-SEED.json."""
    result = train_one(arm, seed, workdir, setup)
    (workdir / f"{arm}-{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def run_grid(setup: Setup, workdir: Path, parallel: int) -> list[dict[str, Any]]:
    """Every (arm, seed) run: in this process when `parallel` is 1, else in `parallel`
    subprocesses at a time (each its own main process, as transformers' seeded collator
    requires)."""
    jobs = [(arm, seed) for seed in setup.seed_list() for arm in setup.arms]
    todo = [(a, s) for a, s in jobs if not (workdir / f"{a}-{s}.json").exists()]
    if parallel <= 1:
        for arm, seed in todo:
            run_job(arm, seed, workdir, setup)
        return [json.loads((workdir / f"{a}-{s}.json").read_text()) for a, s in jobs]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    pending = list(todo)
    running: list[tuple[subprocess.Popen[bytes], str]] = []
    while pending or running:
        while pending and len(running) < parallel:
            arm, seed = pending.pop(0)
            name = f"{arm}-{seed}"
            log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115
            cmd = [sys.executable, __file__, "--worker", arm, str(seed), str(workdir)]
            running.append((subprocess.Popen(cmd, stdout=log, stderr=log, env=env), name))
        time.sleep(1.0)
        for proc, name in list(running):
            if proc.poll() is None:
                continue
            running.remove((proc, name))
            if proc.returncode != 0:
                raise RuntimeError(f"{name} failed (exit {proc.returncode}); see {name}.log")
            print(f"  done {name}", flush=True)
    return [json.loads((workdir / f"{a}-{s}.json").read_text()) for a, s in jobs]


def summarise(runs: list[dict[str, Any]], arms: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per arm: mean, sample std, min and max over seeds of final perplexity and accuracy; the
    ratio of mean perplexities to the baseline arm's, and the range of per-seed (paired) ratios."""
    by_arm = {arm: {r["seed"]: r["final"] for r in runs if r["arm"] == arm} for arm in arms}
    base = by_arm.get(BASELINE, {})
    base_ppl = float(np.mean([f["perplexity"] for f in base.values()])) if base else math.nan
    rows = []
    for arm in arms:
        finals = by_arm[arm]
        ppl = np.array([f["perplexity"] for f in finals.values()])
        acc = np.array([f["accuracy"] for f in finals.values()])
        paired = [finals[s]["perplexity"] / base[s]["perplexity"] for s in finals if s in base]
        rows.append(
            {
                "arm": arm,
                "seeds": len(finals),
                "perplexity_mean": float(ppl.mean()),
                "perplexity_std": float(ppl.std(ddof=1)) if len(ppl) > 1 else 0.0,
                "perplexity_min": float(ppl.min()),
                "perplexity_max": float(ppl.max()),
                "accuracy_mean": float(acc.mean()),
                "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "accuracy_min": float(acc.min()),
                "accuracy_max": float(acc.max()),
                "perplexity_ratio": float(ppl.mean()) / base_ppl,
                "paired_ratio_min": min(paired) if paired else math.nan,
                "paired_ratio_max": max(paired) if paired else math.nan,
            }
        )
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| arm | seeds | perplexity mean | std | min-max | accuracy mean | std | min-max "
        f"| perplexity / {BASELINE} | per-seed ratio min-max |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arm']} | {r['seeds']} | {r['perplexity_mean']:.2f} | {r['perplexity_std']:.2f} "
            f"| {r['perplexity_min']:.2f}-{r['perplexity_max']:.2f} "
            f"| {r['accuracy_mean']:.2%} | {r['accuracy_std']:.2%} "
            f"| {r['accuracy_min']:.2%}-{r['accuracy_max']:.2%} "
            f"| {r['perplexity_ratio']:.3f} "
            f"| {r['paired_ratio_min']:.3f}-{r['paired_ratio_max']:.3f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Setup]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    p.add_argument("--steps", type=int, help=f"training steps per run ({Setup.steps})")
    p.add_argument("--seeds", type=int, help=f"seeds per arm ({Setup.seeds})")
    p.add_argument("--first-seed", type=int, help=f"first seed ({Setup.first_seed})")
    p.add_argument("--batch-size", type=int, help=f"blocks per step ({Setup.batch_size})")
    p.add_argument("--block-size", type=int, help=f"tokens per block ({Setup.block_size})")
    p.add_argument("--learning-rate", type=float, help=f"peak AdamW lr ({Setup.learning_rate})")
    p.add_argument("--num-attention-heads", type=int, help=f"({Setup.num_attention_heads})")
    p.add_argument("--eval-every", type=int, help=f"steps between evaluations ({Setup.eval_every})")
    p.add_argument("--arms", nargs="+", choices=ARMS, help="arms to run (all)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel, one torch thread each")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results folder")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the finished runs of an interrupted run with the same setup; run the rest",
    )
    p.add_argument("--worker", nargs=3, metavar=("ARM", "SEED", "WORKDIR"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args, load_setup(Path(args.worker[2]))
    overrides: dict[str, Any] = dict(QUICK) if args.quick else {}
    for f in dataclasses.fields(Setup):
        value = getattr(args, f.name, None)
        if value is not None:
            overrides[f.name] = tuple(value) if f.name == "arms" else value
    setup = Setup(**overrides)
    if setup.steps < 1 or setup.seeds < 1 or setup.eval_every < 1:
        p.error("--steps, --seeds and --eval-every must be positive")
    return args, setup


def load_setup(workdir: Path) -> Setup:
    values = json.loads((workdir / "setup.json").read_text())
    values["arms"] = tuple(values["arms"])
    return Setup(**values)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, setup = parse_args(argv)
    if args.worker:
        kind, seed, workdir = args.worker[0], int(args.worker[1]), Path(args.worker[2])
        return run_job(kind, seed, workdir, setup)

    started = time.perf_counter()
    workdir = args.output
    workdir.mkdir(parents=True, exist_ok=True)
    setup_file = workdir / "setup.json"
    if args.resume:
        if not setup_file.exists() or load_setup(workdir) != setup:
            raise SystemExit(f"--resume: {setup_file} is missing or holds another setup")
    else:
        for stale in [
            *workdir.glob("*-[0-9]*.json"),
            *workdir.glob("*-[0-9]*.log"),
        ]:
            stale.unlink()
        setup_file.write_text(json.dumps(dataclasses.asdict(setup), indent=1) + "\n")
    data_file = workdir / "data.json"
    if args.resume and (workdir / "data.npz").exists():
        data = resumed_data(setup, workdir)  # tokenizer training is not bit-reproducible
    else:
        data = prepare(setup, workdir)
        data_file.write_text(json.dumps(data, indent=1) + "\n")
    print(f"data: {data}", flush=True)
    for done in workdir.glob("*-[0-9]*.json"):
        if json.loads(done.read_text())["eval_masks_sha256"] != data["eval_masks_sha256"]:
            raise SystemExit(f"--resume: {done.name} was scored on other held-out masks")
    runs = run_grid(setup, workdir, args.jobs)
    rows = summarise(runs, setup.arms)
    report = {
        "command": "python benchmarks/train_masks_equivalence.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "setup": dataclasses.asdict(setup),
        "data": data,
        "summary": rows,
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (workdir / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown_table(rows)
    (workdir / "results.md").write_text(table + "\n")
    print(table)
    print(f"wall time {report['wall_seconds']:.0f} s; results in {workdir}/results.json")
    return report


if __name__ == "__main__":
    main()
