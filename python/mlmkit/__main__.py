"""The `mlmkit` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlmkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="collation speed against transformers on this machine")
    bench.add_argument("--quick", action="store_true", help="shorter timing runs")
    args = parser.parse_args(argv)
    if args.command == "bench":
        from .bench import format_table, run

        print(format_table(run(quick=args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
