"""The `mlmkit` command line: pretrain BERT from scratch, adapt a masked LM to a corpus, preprocess
a corpus into training shards (on this machine or with Ray), fill masks, probe for memorisation,
and measure collation speed."""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    from .cli.arguments import (
        ADAPT_DEFAULTS,
        ADAPT_GROUPS,
        PRETRAIN_DEFAULTS,
        PRETRAIN_GROUPS,
        add_training_command,
    )

    parser = argparse.ArgumentParser(prog="mlmkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_training_command(
        sub,
        "pretrain",
        PRETRAIN_GROUPS,
        PRETRAIN_DEFAULTS,
        help="train a tokenizer and a BERT from scratch on a corpus",
        description="Train a tokenizer and a BERT from scratch on a corpus (default: the Python "
        "standard library's documentation). Training flags are transformers' TrainingArguments.",
    )
    add_training_command(
        sub,
        "adapt",
        ADAPT_GROUPS,
        ADAPT_DEFAULTS,
        help="domain adaptation: continue masked-LM training of a model on a corpus",
        description="Continue masked-LM training of an existing model on a corpus and report the "
        "fixed-mask perplexity before and after. Training flags are transformers' "
        "TrainingArguments.",
    )

    from .cli.preprocess_arguments import add_preprocess_command

    add_preprocess_command(sub)

    fill = sub.add_parser("fill-mask", help="top-k tokens at each mask of a text")
    fill.add_argument("--model", required=True, help="model directory (model and tokenizer)")
    fill.add_argument("text", help="text with the tokenizer's mask token, e.g. [MASK] or <mask>")
    fill.add_argument("--top_k", "--top-k", type=int, default=5, help="predictions per mask")

    probe = sub.add_parser(
        "probe", help="memorisation probe: known-answer prompts and canary exposure"
    )
    probe.add_argument("--model", required=True, help="model directory (model and tokenizer)")
    probe.add_argument(
        "--prompts",
        help="file of prompts with a known answer: JSON lines {'prompt': '... [MASK] ...', "
        "'answer': ...} or 'prompt<TAB>answer' lines (default: built-in prompts)",
    )
    probe.add_argument(
        "--canaries",
        help="canaries.json written by pretrain/adapt --canaries (default: the one in --model)",
    )
    probe.add_argument(
        "--candidates", type=int, default=200, help="secrets each canary is ranked among"
    )
    probe.add_argument("--json", dest="json_out", help="also write the results to this file")

    bench = sub.add_parser("bench", help="collation speed against transformers on this machine")
    bench.add_argument("--quick", action="store_true", help="shorter timing runs")
    return parser


def main(argv: list[str] | None = None) -> int:
    from .cli.errors import CliError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # which flags were given
    try:
        return run(args)
    except CliError as e:
        print(f"mlmkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mlmkit {args.command}: interrupted", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    if args.command == "bench":
        from .bench import format_table
        from .bench import run as run_bench

        print(format_table(run_bench(quick=args.quick)))
    elif args.command in ("pretrain", "adapt"):
        from .cli.commands import training_command

        training_command(args)
    elif args.command == "preprocess":
        from .cli.preprocessing import preprocess_command

        preprocess_command(args)
    elif args.command == "fill-mask":
        from .cli.commands import fill_mask_command

        fill_mask_command(args)
    elif args.command == "probe":
        from .cli.commands import probe_command

        probe_command(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
