"""The subcommands behind `mlmkit pretrain | adapt | fill-mask | probe`, from parsed flags."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .errors import CliError


def training_command(args: argparse.Namespace) -> None:
    from transformers import TrainingArguments

    from .arguments import ADAPT_GROUPS, PRETRAIN_GROUPS, dataclasses_from
    from .pretraining import run_adapt, run_pretrain

    groups = PRETRAIN_GROUPS if args.command == "pretrain" else ADAPT_GROUPS
    try:
        *ours, training = dataclasses_from(args, (*groups, TrainingArguments))
    except (ValueError, TypeError) as e:
        raise CliError(f"training arguments: {e}") from None
    given: frozenset[str] = frozenset()
    if getattr(args, "argv", None) is not None:
        from mlmkit.__main__ import build_parser

        from .arguments import given_flags

        given = frozenset(given_flags(build_parser(), args.argv))
    if args.command == "pretrain":
        corpus, masking, tokenizer, model = ours
        run_pretrain(corpus, masking, tokenizer, model, training, given=given)
    else:
        adapt, corpus, masking = ours
        run_adapt(adapt, corpus, masking, training, given=given)


def fill_mask_command(args: argparse.Namespace) -> None:
    from .fill_mask import fill_mask, format_predictions
    from .models import load_masked_lm

    if args.top_k < 1:
        raise CliError(f"--top_k must be at least 1, got {args.top_k}")
    model, tokenizer = load_masked_lm(args.model)
    predictions = fill_mask(model, tokenizer, args.text, args.top_k)
    for i, preds in enumerate(predictions, 1):
        label = f"mask {i}: " if len(predictions) > 1 else ""
        print(f"{label}{format_predictions(preds)}")


def probe_command(args: argparse.Namespace) -> None:
    from .canaries import FILE_NAME, load_canaries
    from .models import load_masked_lm
    from .probe import (
        BUILTIN_PROMPTS,
        as_json,
        canary_exposure,
        format_report,
        probe_prompts,
        read_prompts,
    )

    if args.candidates < 2:
        raise CliError(f"--candidates must be at least 2, got {args.candidates}")
    prompts = read_prompts(args.prompts) if args.prompts else list(BUILTIN_PROMPTS)
    canary_file = Path(args.canaries) if args.canaries else Path(args.model) / FILE_NAME
    if args.canaries and not canary_file.is_file():
        raise CliError(f"canaries file not found: {canary_file}")
    model, tokenizer = load_masked_lm(args.model)
    prompt_results = probe_prompts(model, tokenizer, prompts)
    canary_results = []
    if canary_file.is_file():
        inserted, controls = load_canaries(canary_file)
        canary_results = [
            canary_exposure(model, tokenizer, c, candidates=args.candidates)
            for c in inserted + controls
        ]
    print(format_report(prompt_results, canary_results))
    if not canary_results:
        print(f"\n(no {FILE_NAME} in {args.model}: train with --canaries N to measure exposure)")
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(as_json(prompt_results, canary_results), indent=2) + "\n", encoding="utf-8"
        )
