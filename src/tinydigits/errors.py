"""The one error type tinydigits raises for bad input.

The CLI turns a `TinyDigitsError` into a single `error: ...` line on stderr and exit code 2;
library users catch it like any other exception. Its message names the thing and the problem.
"""


class TinyDigitsError(Exception):
    """Bad input from the user: a missing or corrupt file, a wrong shape, a bad value."""


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first non-blank line of an exception's message, at most `limit` characters ("" if it has none):
    what a one-line error quotes from a library's (often many-line) message."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")[:limit]
