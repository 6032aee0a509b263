"""`CliError`: a problem with the user's input, reported on stderr with exit code 2."""


class CliError(Exception):
    """Raised for bad input (files, models, flags); `mlmkit` prints the message, no traceback."""
