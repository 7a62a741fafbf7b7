"""Reading what the user points at: a regular file, read in bounded memory, or one clear line.

A data file, an image or a run's JSON may be anything a path can name: a FIFO or /dev/zero (a read
that never ends), a folder, a symbolic link loop, a name too long for the file system, a file
nobody may read, or a huge file. Each input is opened here without blocking and checked to be a
regular file (symbolic links are followed: a link to a file is that file), and read with a cap:

    with open_input(Path("digit.png")) as f:      # a file object, or TinyDigitsError
        header = f.read(16)
    data = read_input(Path("runs/x/metrics.json"), limit=MAX_JSON_BYTES)
    check_folder(Path("runs/x"), "run folder")     # a folder, or why not, in words
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import TinyDigitsError, os_problem

MAX_JSON_BYTES = 64 * 1024 * 1024  # a run's reports are kilobytes; a file this big is not one of them


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "not a regular file"


def open_input(path: Path):
    """`path` opened for reading in binary, refused unless it is a regular file (checked on the open file,
    so nothing can swap it for a FIFO in between); O_NONBLOCK makes opening a FIFO return at once."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TinyDigitsError(f"{path}: file not found") from None
    except OSError as e:
        raise TinyDigitsError(f"{path}: {os_problem(e)}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise TinyDigitsError(f"{path}: {_kind(mode)}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_input(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (its size is checked before it is read)."""
    with open_input(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise TinyDigitsError(f"{path}: too large ({size:,} bytes; at most {limit:,} expected here)")
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise TinyDigitsError(f"{path}: cannot read it ({os_problem(e)})") from None
    if len(data) > limit:  # it grew while being read
        raise TinyDigitsError(f"{path}: too large (over {limit:,} bytes)")
    return data


def check_file(path: Path) -> Path:
    """`path` if it names a regular file (through links), else one line saying what it is instead."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise TinyDigitsError(f"{path}: {os_problem(e)}") from None
    if not stat.S_ISREG(mode):
        raise TinyDigitsError(f"{path}: {_kind(mode)}")
    return path


def check_folder(path: Path, what: str = "folder") -> Path:
    """`path` if it names a folder (through links), else one line: 'no such run folder', 'is a file, not a
    run folder', 'symbolic link loop', 'name too long' ..."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise TinyDigitsError(f"{path}: no such {what}") from None
    except OSError as e:
        raise TinyDigitsError(f"{path}: {os_problem(e)}") from None
    if not stat.S_ISDIR(mode):
        raise TinyDigitsError(f"{path}: is a file, not a {what}" if stat.S_ISREG(mode) else f"{path}: {_kind(mode)}")
    return path
