"""`mlmkit COMMAND ...`: parse the flags, run the command, and turn a `CliError` into a one-line
message and exit code 2."""

from __future__ import annotations

import argparse
import os
import sys

from .parser import build_parser


def main(argv: list[str] | None = None) -> int:
    from .errors import CliError

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
        from .commands import training_command

        training_command(args)
    elif args.command == "preprocess":
        from .preprocessing import preprocess_command

        preprocess_command(args)
    elif args.command == "fill-mask":
        from .commands import fill_mask_command

        fill_mask_command(args)
    elif args.command == "probe":
        from .commands import probe_command

        probe_command(args)
    return 0
