"""`python -m mlmkit`: the `mlmkit` command line (`mlmkit.cli`)."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
