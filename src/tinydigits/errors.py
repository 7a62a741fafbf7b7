"""The one error type tinydigits raises for bad input.

The CLI turns a `TinyDigitsError` into a single `error: ...` line on stderr and exit code 2;
library users catch it like any other exception. Its message names the thing and the problem.
"""


class TinyDigitsError(Exception):
    """Bad input from the user: a missing or corrupt file, a wrong shape, a bad value."""
