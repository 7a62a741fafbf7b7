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


# errno -> the words a person searches for; the rest get the system's own text, lower-cased
_PROBLEMS = {
    "ENOENT": "not found",
    "ENAMETOOLONG": "name too long",
    "ELOOP": "symbolic link loop",
    "EISDIR": "is a folder, not a file",
    "ENOTDIR": "a part of the path is a file, not a folder",
    "EACCES": "permission denied",
    "EPERM": "permission denied",
    "ENOSPC": "no space left on the device",
    "EDQUOT": "disk quota exceeded",
    "EROFS": "read-only file system",
    "EFBIG": "file too large for the file system",
    "ENXIO": "no such device (a socket, or a device that is not there)",
}


def os_problem(error: OSError) -> str:
    """An OSError's problem in words: 'symbolic link loop', 'is a folder, not a file', 'name too long' ..."""
    import errno

    name = errno.errorcode.get(error.errno or 0, "")
    return _PROBLEMS.get(name) or (error.strerror or type(error).__name__).lower()
