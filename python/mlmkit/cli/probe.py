"""`mlmkit probe`: what a masked LM gives away at its mask token.

* Known-answer prompts: the rank (1 = the model's top prediction) and probability of the answer
  at the mask; an answer of several tokens gets as many masks, its probability is the product of
  the per-position probabilities and its rank the worst per-position rank.
* Canaries (`pretrain/adapt --canaries N`): the exposure of each secret ("The Secret Sharer",
  Carlini et al. 2019). The true secret is ranked among `candidates` secrets of the same form
  (itself plus random others) by the model's pseudo-log-likelihood of the secret's tokens (mask
  each secret token in turn, sum the log-probabilities of the true token); exposure =
  log2(candidates) - log2(rank). A memorised secret ranks first (exposure log2(candidates)); an
  unseen one ranks anywhere (exposure about 1 bit on average): compare with the controls.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .canaries import DIGITS, Canary
from .errors import CliError

PLACEHOLDER = "[MASK]"
# Facts stated in the Python standard library's documentation (the default corpus), and two of
# general knowledge.
BUILTIN_PROMPTS = (
    ("Return True if the object is an [MASK] of the class.", "instance"),
    ("Raise a [MASK] if the key is not found.", "KeyError"),
    ("Return a shallow [MASK] of the list.", "copy"),
    ("The [MASK] is closed when the with statement ends.", "file"),
    ("Return the number of [MASK] in the sequence.", "items"),
    ("An integer is a whole [MASK].", "number"),
    ("Paris is the capital of [MASK].", "France"),
    ("The sun rises in the [MASK].", "east"),
)


@dataclass
class PromptResult:
    prompt: str
    answer: str
    rank: int
    probability: float
    top: list[str]


@dataclass
class CanaryResult:
    name: str
    secret: str
    inserted: bool
    repeats: int
    rank: int
    candidates: int
    exposure: float


def read_prompts(path: str | Path) -> list[tuple[str, str]]:
    """JSON lines `{"prompt": "... [MASK] ...", "answer": "..."}` or lines `prompt<TAB>answer`."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise CliError(f"cannot read the prompts file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: invalid UTF-8; the prompts file must be UTF-8 text") from None
    prompts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
                prompts.append((str(record["prompt"]), str(record["answer"])))
            except (ValueError, KeyError, TypeError):
                raise CliError(
                    f'{path}:{n}: expected {{"prompt": ..., "answer": ...}}, got {line[:60]!r}'
                ) from None
        elif "\t" in line:
            prompt, answer = line.rsplit("\t", 1)
            prompts.append((prompt, answer.strip()))
        else:
            raise CliError(f"{path}:{n}: expected 'prompt<TAB>answer' or a JSON object")
    if not prompts:
        raise CliError(f"the prompts file {path} holds no prompts")
    return prompts


def probe_prompts(
    model: Any, tokenizer: Any, prompts: list[tuple[str, str]], top_k: int = 5
) -> list[PromptResult]:
    import torch

    from mlmkit.metrics import mlm_logits

    results = []
    for prompt, answer in prompts:
        text = prompt.replace(PLACEHOLDER, tokenizer.mask_token)
        if text.count(tokenizer.mask_token) != 1:
            raise CliError(f"a prompt needs exactly one {PLACEHOLDER}: {prompt!r}")
        ids, where, answer_ids = _masked_answer(tokenizer, text, answer)
        inputs = torch.tensor([ids], device=model.device)
        with torch.no_grad():
            logits = mlm_logits(model(input_ids=inputs))[0, where : where + len(answer_ids)].float()
        logp = logits.log_softmax(-1)
        truth = torch.tensor(answer_ids, device=logp.device)
        true_logp = logp.gather(1, truth[:, None])[:, 0]
        ranks = (logp > true_logp[:, None]).sum(-1) + 1
        top = logp[0].topk(top_k).indices.tolist()
        results.append(
            PromptResult(
                prompt=prompt,
                answer=answer,
                rank=int(ranks.max()),
                probability=float(true_logp.sum().exp()),
                top=[tokenizer.decode([i]).strip() for i in top],
            )
        )
    return results


def _masked_answer(tokenizer: Any, text: str, answer: str) -> tuple[list[int], int, list[int]]:
    """(ids with the answer's tokens masked, first answer position, the answer's token ids): the
    answer's tokens are where the tokenization of the filled-in text differs from the masked one,
    so tokenizers that merge a word with the next character (SentencePiece "list.") still work."""
    masked = tokenizer(text)["input_ids"]
    filled = tokenizer(text.replace(tokenizer.mask_token, answer))["input_ids"]
    where = masked.index(tokenizer.mask_token_id)
    tail = len(masked) - where - 1
    answer_ids = filled[where : len(filled) - tail]
    if (
        not answer_ids
        or filled[:where] != masked[:where]
        or filled[len(filled) - tail :] != masked[where + 1 :]
    ):
        raise CliError(f"cannot line up the answer {answer!r} with the mask in {text!r}")
    ids = masked[:where] + [tokenizer.mask_token_id] * len(answer_ids) + masked[where + 1 :]
    return ids, where, answer_ids


def canary_exposure(
    model: Any,
    tokenizer: Any,
    canary: Canary,
    candidates: int = 200,
    seed: int = 0,
    batch_size: int = 512,
) -> CanaryResult:
    """Rank and exposure of `canary`'s secret among `candidates` secrets (itself included)."""
    space = 10**DIGITS
    candidates = min(candidates, space)
    rng = np.random.default_rng([seed, int(canary.secret.replace(" ", "")), len(canary.name)])
    true = int(canary.secret.replace(" ", ""))
    others = rng.choice(np.delete(np.arange(space), true), size=candidates - 1, replace=False)
    secrets = [canary.secret] + [" ".join(f"{v:0{DIGITS}d}") for v in others.tolist()]
    scores = pseudo_log_likelihoods(model, tokenizer, canary.prefix, secrets, batch_size)
    rank = int((scores > scores[0]).sum()) + 1
    return CanaryResult(
        name=canary.name,
        secret=canary.secret,
        inserted=canary.repeats > 0,
        repeats=canary.repeats,
        rank=rank,
        candidates=candidates,
        exposure=math.log2(candidates) - math.log2(rank),
    )


def pseudo_log_likelihoods(
    model: Any, tokenizer: Any, prefix: str, secrets: list[str], batch_size: int = 512
) -> np.ndarray:
    """For each secret: sum over its tokens of log p(token | text with that token masked)."""
    import torch

    rows = tokenizer([f"{prefix} {s}." for s in secrets])["input_ids"]
    head, tail = _frame(tokenizer, prefix, secrets[0])
    spans = []
    for row in rows:
        if row[: len(head)] != head or row[len(row) - len(tail) :] != tail:
            raise CliError(f"the tokenizer merges the canary text {prefix!r} with its secret")
        spans.append(range(len(head), len(row) - len(tail)))
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # One masked copy per (secret, secret token).
    owner, position = zip(*[(i, j) for i, span in enumerate(spans) for j in span], strict=True)
    owner_a, pos_a = np.array(owner), np.array(position)
    ids = np.full((len(rows), width), pad, dtype=np.int64)
    attention = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        attention[i, : len(row)] = 1
    scores = np.zeros(len(rows), dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(owner_a), batch_size):
            o, p = owner_a[start : start + batch_size], pos_a[start : start + batch_size]
            batch = torch.from_numpy(ids[o].copy())
            truth = batch[torch.arange(len(o)), torch.from_numpy(p)].clone()
            batch[torch.arange(len(o)), torch.from_numpy(p)] = tokenizer.mask_token_id
            logits = logits_at(
                model,
                batch.to(model.device),
                torch.from_numpy(attention[o]).to(model.device),
                torch.from_numpy(p).to(model.device),
            )
            logp = logits.float().log_softmax(-1)
            picked = logp.gather(1, truth.to(logp.device)[:, None])[:, 0].double().cpu().numpy()
            np.add.at(scores, o, picked)
    return scores


def logits_at(model: Any, input_ids: Any, attention_mask: Any, positions: Any) -> Any:
    """Logits at one position per row, (batch, vocab). The masked-LM head only runs at those
    positions: a forward hook hands it the encoder's states there instead of the whole sequence
    (masked-LM heads are position-wise); models whose head does not fit get the full pass."""
    import torch

    from mlmkit.metrics import mlm_logits

    rows = torch.arange(len(positions), device=input_ids.device)
    base = getattr(model, "base_model", None)

    def keep_positions(module: Any, args: Any, output: Any) -> Any:
        states = output[0]
        if isinstance(states, torch.Tensor) and states.dim() == 3:
            picked = states[rows, positions][:, None, :]
            if isinstance(output, tuple):
                return (picked, *output[1:])
            output[next(iter(output.keys()))] = picked
        return output

    handle = (
        base.register_forward_hook(keep_positions)
        if base is not None and base is not model
        else None
    )
    try:
        logits = mlm_logits(model(input_ids=input_ids, attention_mask=attention_mask))
    finally:
        if handle is not None:
            handle.remove()
    if logits.shape[1] == 1:
        return logits[:, 0]
    return logits[rows, positions]


def _frame(tokenizer: Any, prefix: str, secret: str) -> tuple[list[int], list[int]]:
    """The token ids before and after the secret: what the canary's row shares with the same row
    with other first and last digits (the period may merge into the last digit's token)."""
    digits = secret.split()
    other = [str((int(d) + 1) % 10) for d in digits]
    row = tokenizer(f"{prefix} {secret}.")["input_ids"]
    first = tokenizer(f"{prefix} {' '.join([other[0], *digits[1:]])}.")["input_ids"]
    last = tokenizer(f"{prefix} {' '.join([*digits[:-1], other[-1]])}.")["input_ids"]
    n_head = next((i for i, (a, b) in enumerate(zip(row, first, strict=False)) if a != b), 0)
    n_tail = next(
        (i for i, (a, b) in enumerate(zip(reversed(row), reversed(last), strict=False)) if a != b),
        0,
    )
    return row[:n_head], row[len(row) - n_tail :]


def format_report(prompts: list[PromptResult], canaries: list[CanaryResult]) -> str:
    lines = []
    if prompts:
        lines += ["Known-answer prompts (rank 1 = the model's first choice):", ""]
        lines += [
            "| prompt | answer | rank | probability | model's top 5 |",
            "|---|---|---|---|---|",
        ]
        for r in prompts:
            lines.append(
                f"| {r.prompt} | {r.answer} | {r.rank} | {r.probability:.3g} | {', '.join(r.top)} |"
            )
    if canaries:
        n = canaries[0].candidates
        lines += [
            "",
            f"Canary exposure (rank of the true secret among {n} candidates; exposure = "
            f"log2({n}) - log2(rank), at most {math.log2(n):.1f} bits):",
            "",
            "| canary | inserted | rank | exposure (bits) |",
            "|---|---|---|---|",
        ]
        for c in canaries:
            kind = f"yes, x{c.repeats}" if c.inserted else "no (control)"
            lines.append(f"| {c.name}: {c.secret} | {kind} | {c.rank} | {c.exposure:.2f} |")
        ins = [c.exposure for c in canaries if c.inserted]
        ctl = [c.exposure for c in canaries if not c.inserted]
        if ins and ctl:
            lines += [
                "",
                f"mean exposure: inserted {np.mean(ins):.2f} bits, controls {np.mean(ctl):.2f} "
                "bits",
            ]
    return "\n".join(lines)


def as_json(prompts: list[PromptResult], canaries: list[CanaryResult]) -> dict[str, Any]:
    return {"prompts": [asdict(p) for p in prompts], "canaries": [asdict(c) for c in canaries]}
