"""The two operating-system steps every write of a folder rests on: a lock on the destination, and a
replace in one step.

`claim(folder)` takes an fcntl lock on a lock file beside the folder (`.<name>.lock`, removed when
released), so two tinydigits commands never write the same folder at once: the second one waits
(commands that add files to a run) or stops with one line (commands that make a new folder). A
lock dies with its process, so a killed command (kill -9) never leaves one that blocks.

`exchange(a, b)` swaps two folders in one step (Linux renameat2 RENAME_EXCHANGE): a reader that
polls `b` sees the old folder, then the new one, never nothing and never a mix. `move_new(a, b)`
renames only where nothing is (RENAME_NOREPLACE), so it can never replace a folder that appeared in
the meantime. Where the kernel or the file system lacks renameat2, each falls back to steps that
are as safe (nothing is ever deleted, an interrupted swap is undone), only not instantaneous.

`link_tree` makes a hard-linked copy of a folder to stage an update in, and `carry_new_entries`
brings over what others added to the folder since (a user's notes, a file another tool wrote), so
swapping the updated copy in loses nobody's file.

    with claim(Path("runs/lesson"), wait=True, command="tinydigits evaluate runs/lesson"):
        ...                                   # nobody else of ours writes runs/lesson meanwhile
    move_new(staged, final) or exchange(staged, final)
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import logging
import os
import shutil
import stat
import threading
import time
from pathlib import Path

from .errors import TinyDigitsError, os_problem
from .interrupt import check as check_interrupt

NAME_MAX = 255  # bytes in one path component on Linux file systems
PATH_MAX = 4096  # bytes in a whole path, with its final NUL
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2  # linux/fs.h
AT_FDCWD = -100
POLL_SECONDS = 0.1  # how often a waiting writer tries the lock again (and sees Ctrl-C)

log = logging.getLogger("tinydigits")
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)  # glibc 2.28 and later
_held = threading.local()  # lock paths this thread holds -> depth (a claim inside a claim is free)


def sibling(path: Path, tag: str) -> Path:
    """A hidden name beside `path` (".lesson.lock"), shortened with a hash where the name is near NAME_MAX."""
    path = Path(path)
    name = path.name
    if len(os.fsencode(f".{name}.{tag}")) > NAME_MAX:
        digest = hashlib.sha1(os.fsencode(name)).hexdigest()[:12]
        name = os.fsdecode(os.fsencode(name)[:NAME_MAX - len(tag) - 30]) + "-" + digest
    return path.with_name(f".{name}.{tag}")


def check_names(path: Path) -> Path:
    """`path` if the file system can hold its name: every component at most NAME_MAX bytes, the whole under PATH_MAX."""
    path = Path(path)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            raise TinyDigitsError(f"{path}: name too long ({os.fsdecode(os.fsencode(part)[:24])}... has {size} bytes; "
                                  f"a file or folder name has at most {NAME_MAX})")
    size = len(os.fsencode(os.path.abspath(path)))
    if size >= PATH_MAX:
        raise TinyDigitsError(f"{path}: path too long ({size:,} bytes; at most {PATH_MAX - 1:,})")
    return path


def staging_prefix(final: Path) -> str:
    """The name prefix of `final`'s staging folders, `.lesson.`, short enough for mkdtemp's 8 random
    characters and ".partial" to fit in NAME_MAX."""
    return sibling(final, "x" * 8 + ".partial").name[:-len("x" * 8 + ".partial")]


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(src, dst, flags); False where the system or the file system does not offer it."""
    if _renameat2 is None:
        return False
    if _renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # old kernel, or a file system without it
        return False
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


def move_new(src: Path, dst: Path) -> None:
    """Rename folder `src` to `dst` where nothing is at `dst`; FileExistsError if anything is, even an empty folder."""
    if _rename2(src, dst, RENAME_NOREPLACE):
        return
    os.mkdir(dst)  # exclusive: fails if anything is there; then `dst` is our own empty folder
    os.rename(src, dst)  # a folder replaces an empty folder in one step (a folder that filled meanwhile: ENOTEMPTY)


def exchange(a: Path, b: Path) -> None:
    """Swap two existing paths: afterwards `a` holds what `b` held and `b` what `a` held."""
    if _rename2(a, b, RENAME_EXCHANGE):
        return
    aside = sibling(b, f"{os.getpid()}.aside")
    os.rename(b, aside)
    try:
        os.rename(a, b)
    except BaseException:
        os.rename(aside, b)  # the first step undone: `b` as it was
        raise
    os.rename(aside, a)


def _holder(lock: Path) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return lock.read_text().strip() or "another tinydigits command"
    return "another tinydigits command"


def _acquire(lock: Path, folder: Path, wait: bool) -> int:
    told = False
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise TinyDigitsError(f"{folder}: cannot be written ({os_problem(e)} in {lock.parent})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _holder(lock)
            if not wait:
                raise TinyDigitsError(f"{folder}: is being written by {holder}; wait for it to finish, "
                                      "or choose another --out") from None
            if not told:
                log.warning(f"waiting: {folder} is being written by {holder}; this command goes on when that one ends")
                told = True
            check_interrupt()
            time.sleep(POLL_SECONDS)
            continue
        try:  # the last holder removes the file as it lets go: a lock on a removed file is no lock
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def claim(folder: Path, wait: bool, command: str = ""):
    """Hold the lock on `folder` for the block. `wait`: wait for another holder to finish (saying so once);
    else raise TinyDigitsError naming it. The same thread may claim a folder it holds again, at no cost."""
    shown = check_names(Path(folder))  # as the user wrote it, in messages
    folder = Path(os.path.abspath(shown))
    lock = sibling(Path(os.path.realpath(folder)), "lock")  # one lock file, whatever links lead to the folder
    depth = _held.__dict__.setdefault("depth", {})
    if depth.get(lock):
        depth[lock] += 1
        try:
            yield
        finally:
            depth[lock] -= 1
        return
    made = _make_parents(lock.parent, shown)
    try:
        fd = _acquire(lock, shown, wait)
    except BaseException:
        _remove_empty(made)
        raise
    depth[lock] = 1
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({command or 'tinydigits'})\n".encode("utf-8", "backslashreplace"))
        yield
    finally:
        del depth[lock]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)  # lets go of the lock
        _remove_empty(made)


def _make_parents(parent: Path, folder: Path) -> list[Path]:
    """Create `parent` and the folders above it that are missing; the ones made, deepest first."""
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    above = parent.parents[len(missing) - 1] if missing else parent  # the nearest folder that exists
    if not above.is_dir():
        raise TinyDigitsError(f"{folder}: cannot be created, {above} is a file")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TinyDigitsError(f"{folder}: cannot be created ({os_problem(e)})") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Folders `claim` made for its lock file and nobody used: removed again (rmdir never removes content)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


# ------------------------------------------------------------------ a folder's files, as links

def link_tree(src: Path, dst: Path) -> dict:
    """Hard-link every file of `src` into `dst` (symbolic links copied as the links they are, files on
    another file system copied); what was linked: relative path -> (device, inode) of the original."""
    seen = {}
    os.chmod(dst, stat.S_IMODE(os.stat(src).st_mode))
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        for name in dirs:
            st = os.lstat(Path(root) / name)
            seen[rel / name] = (st.st_dev, st.st_ino)
            if os.path.islink(Path(root) / name):
                os.symlink(os.readlink(Path(root) / name), dst / rel / name)
            else:
                (dst / rel / name).mkdir()
                os.chmod(dst / rel / name, stat.S_IMODE(st.st_mode))  # the folder keeps the mode it had
        dirs[:] = [d for d in dirs if not os.path.islink(Path(root) / d)]
        for name in files:
            if _is_temp(name):
                continue  # a half-written file of a killed command
            seen[rel / name] = _place(Path(root) / name, dst / rel / name, move=False)
    return seen


def carry_new_entries(src: Path, dst: Path, seen: dict, move: bool) -> None:
    """Entries of `src` that are not what `dst` was linked from (added or replaced since), put into `dst`
    unless the command wrote that path itself: nobody's file is lost to a swap."""
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        for name in dirs + files:
            path, target = Path(root) / name, dst / rel / name
            st = os.lstat(path)
            if seen.get(rel / name) == (st.st_dev, st.st_ino) or _is_temp(name):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                target.mkdir(parents=True, exist_ok=True)
            elif not os.path.lexists(target) or seen.get(rel / name) == _identity(target):
                target.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target)
                _place(path, target, move)
        dirs[:] = [d for d in dirs if not os.path.islink(Path(root) / d)]


def _identity(path: Path):
    with contextlib.suppress(OSError):
        st = os.lstat(path)
        return st.st_dev, st.st_ino
    return None


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")  # write_bytes' temp files


def _place(src: Path, dst: Path, move: bool):
    """Move, or hard-link (a copy across file systems), `src` to `dst`; the (device, inode) of `src`."""
    st = os.lstat(src)
    if move:
        os.rename(src, dst)
    elif os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    else:
        try:
            os.link(src, dst, follow_symlinks=False)  # free, and new files replace links, never the originals
        except OSError:
            shutil.copy2(src, dst)
    return st.st_dev, st.st_ino


def move_into(staged: Path, final: Path) -> None:
    """Make `final` hold what `staged` holds, entry by entry: files moved in (their folders made), then
    whatever the new set no longer has (firmware/<board>/ rebuilt, say) removed from `final`."""
    keep = set()
    for root, dirs, files in os.walk(staged):
        rel = Path(root).relative_to(staged)
        for name in dirs:
            keep.add(rel / name)
            target = final / rel / name
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()
            target.mkdir(exist_ok=True)
        for name in files:
            keep.add(rel / name)
            target = final / rel / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(Path(root) / name, target)
    for root, dirs, files in os.walk(final, topdown=False):
        rel = Path(root).relative_to(final)
        for name in files + dirs:
            path = final / rel / name
            if rel / name not in keep:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()  # bottom-up: its entries went first
                else:
                    path.unlink()
