"""Atomic writes: an artifact is either complete on disk or absent, never half-written, and never
written over a user's files.

Every file tinydigits writes goes through `write_bytes`/`write_text`/`write_json` (temp file in the
same folder, fsync, rename). A set of files is written by `staged_folder`: built in a hidden
sibling (`.<name>.XXXX.partial`), then swapped into place in one step (atomic.exchange), under the
destination's lock (atomic.claim), so an interrupted command leaves the user's earlier results
intact, two commands never write one folder at once, and a reader never sees the folder missing.
Files get the modes any tool gives them (0644 under umask 022), not mkstemp's 0600. A full disk is
one line, "no space left on <folder>", with nothing written.

Every folder tinydigits creates carries a small manifest, `.tinydigits.json` (its kind, the command
that made it); `--force` replaces only a folder that carries one (or a run folder from before
manifests: `metrics.json` + `model.keras`), checked again once the new folder is complete and once
more on the folder swapped out: whatever else appears at the path meanwhile is left as it is.
`preflight` checks a destination before long work.

    preflight(Path("runs/lesson"), force=False)                  # before training, not after
    with staged_folder(Path("runs/lesson"), "run", "tinydigits train") as tmp:
        write_json(tmp / "metrics.json", {...})
    with staged_folder(run.folder, "run", update=True) as tmp:   # add files to a run as one set
        write_bytes(tmp / "model_int8.tflite", data)
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import __version__
from .atomic import carry_new_entries, check_names, claim, exchange, link_tree, move_into, move_new, staging_prefix
from .errors import TinyDigitsError, os_problem
from .escape import json_text
from .interrupt import check as check_interrupt

MANIFEST = ".tinydigits.json"  # in every folder tinydigits creates: {"kind", "version", "created_by", ...}
MANIFEST_VERSION = 1
KINDS = ("run", "export", "web", "compare", "search")
LEGACY_FILES = {"run": ("metrics.json", "model.keras"), "search": ("search.json",)}  # written before manifests


def umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask has no getter)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class WriteFailed(TinyDigitsError):
    """A file could not be written; `staged_folder` names its folder instead of the hidden staging copy."""

    def __init__(self, path: Path, error: OSError):
        self.path, self.error = Path(path), error
        super().__init__(failed_write(path, error))


def failed_write(where: Path, error: OSError) -> str:
    """The one line for a write that failed: 'no space left on runs/lesson ...', or the problem in words."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on {where} ({os_problem(error)}); nothing was written"
    return f"{where}: cannot be written ({os_problem(error)})"


def write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600; an ordinary file follows the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        check_interrupt()  # after Ctrl-C nothing new lands, even if its KeyboardInterrupt was swallowed
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None:
            raise WriteFailed(path, e) from None
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8", "surrogateescape"))  # a path that is not UTF-8 stays its bytes


def write_json(path: Path, obj) -> Path:
    return write_text(path, json_text(obj))


def save_figure(fig, path: Path) -> Path:
    """Render a matplotlib figure to PNG atomically (and close it, if it is one of pyplot's)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)
    return write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------- folders and manifests

def manifest_kind(folder: Path) -> str | None:
    """The kind of folder tinydigits wrote at `folder` ("run", "export", ...), or None if not one of ours."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        kind = json.loads((folder / MANIFEST).read_text()).get("kind")
        if kind in KINDS:
            return kind
    return next((kind for kind, names in LEGACY_FILES.items() if all((folder / n).is_file() for n in names)), None)


def write_manifest(folder: Path, kind: str, command: str = "") -> Path:
    assert kind in KINDS, kind  # a kind manifest_kind does not know would make the folder unreplaceable
    return write_json(Path(folder) / MANIFEST, {
        "kind": kind, "version": MANIFEST_VERSION, "created_by": command or f"tinydigits ({kind})",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tinydigits": __version__})


def preflight(folder: Path, force: bool = False, resume: str | None = None, kind: str | None = None) -> Path:
    """Check, before any long work, that `folder` can be written; raise one clear TinyDigitsError if not.

    A new folder: absent, or (with `force`) a folder tinydigits wrote, of `kind` when given (an
    export never replaces a run). `resume=KIND`: an existing folder of that kind is written into
    (search resumes, convert adds to a run). Never the current folder or one above it, never a
    symbolic link that --force would replace; the nearest existing parent must be a folder we may
    create entries in.
    """
    folder = check_names(Path(folder))
    try:
        os.stat(folder)
    except OSError as e:
        if e.errno == errno.ELOOP:  # Path.resolve would raise, Path.exists say "no"
            raise TinyDigitsError(f"{folder}: {os_problem(e)}") from None
    resolved = folder.resolve()
    if folder.exists() or folder.is_symlink():
        found = manifest_kind(folder)
        if resume and found == resume:
            _check_writable(folder, resolved.parent)  # where the staged copy is built
            return _check_writable(folder, folder)    # where single files are replaced
        if _holds_cwd(folder):
            raise TinyDigitsError(f"{folder}: is the current folder or one above it; choose a new --out folder")
        if not folder.is_dir():
            raise TinyDigitsError(f"{folder}: is a file, not a folder tinydigits wrote; choose another --out")
        if resume and (found is not None or any(folder.iterdir())):
            raise TinyDigitsError(f"{folder}: exists and is not a {resume} folder; choose another --out")
        if not resume and not force:
            raise TinyDigitsError(f"{folder}: already exists (use --force to replace it, or choose another --out)")
        if not resume and found is None:
            raise TinyDigitsError(f"{folder}: not a folder tinydigits wrote (no {MANIFEST}); "
                                  "--force replaces only those, choose another --out")
        if not resume and kind is not None and found != kind:
            raise TinyDigitsError(f"{folder}: is {_a(found)} folder, not {_a(kind)} folder; choose another --out")
        if not resume and folder.is_symlink():
            raise TinyDigitsError(f"{folder}: is a symbolic link (to {os.readlink(folder)}); --force would replace the link, "
                                  "not the folder: choose another --out")
    parent = resolved.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise TinyDigitsError(f"{folder}: cannot be created, {parent} is a file")
    return _check_writable(folder, parent)


def _a(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def check_out(out: Path, kind: str, force: bool, source: Path) -> Path:
    """`preflight` for a folder made from `source` (a run being exported): also refuse an `out` that holds it."""
    out = Path(out)
    if out.resolve() == Path(source).resolve() or out.resolve() in Path(source).resolve().parents:
        raise TinyDigitsError(f"{out}: holds the run {source} that is being exported; choose another --out")
    return preflight(out, force, kind=kind)


def written_files(folder: Path) -> list[Path]:
    """Every file tinydigits wrote in `folder`, its manifest left out: what a command lists."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != MANIFEST)


def resumable_folder(folder: Path, kind: str, command: str = "") -> Path:
    """A folder that is written into over time (search's): created with its manifest, or resumed."""
    folder = Path(folder)
    preflight(folder, resume=kind)
    if not (folder / MANIFEST).exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_manifest(folder, kind, command)
    return folder


def _check_writable(folder: Path, where: Path) -> Path:
    """Create and remove a hidden folder in `where`: the only test that /proc, read-only mounts and ACLs all answer."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tinydigits-check.", dir=where))
    except OSError as e:
        raise TinyDigitsError(f"{folder}: cannot be written ({os_problem(e)} in {where})") from None
    return folder


def _holds_cwd(folder: Path) -> bool:
    resolved, cwd = Path(folder).resolve(), Path.cwd().resolve()
    return resolved == cwd or resolved in cwd.parents


@contextlib.contextmanager
def staged_folder(final: Path, kind: str, command: str = "", force: bool = False, update: bool = False):
    """Yield a hidden temp folder; on success it replaces `final` as a whole, on error it is removed.

    A new folder gets a manifest of `kind`. An existing `final` is kept unless `force` (and only if
    tinydigits wrote it as a folder of `kind`, see `preflight`); with `force` it is swapped out only
    once the new folder is complete. `update=True` starts from the files already in `final` (hard
    links), so a set of files is added to it all at once or not at all; files that others put in
    `final` meanwhile are carried into the new set, and a symbolic link to the folder stays a link
    (the folder it points to is updated). All of it under `final`'s lock: a second command that adds
    to the same run waits for this one; one that makes a new folder there stops with one line.
    """
    shown = Path(final)  # as the caller wrote it, in messages
    final = Path(os.path.abspath(Path(final).resolve() if update else final))  # "x/.." has no name to stage beside
    with claim(final, wait=update, command=command):
        if update:
            preflight(final, resume=kind)
        else:
            preflight(final, force, kind=kind)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            remove_leftovers(final)
            tmp = Path(tempfile.mkdtemp(prefix=staging_prefix(final), suffix=".partial", dir=final.parent))
        except OSError as e:
            raise TinyDigitsError(failed_write(shown, e)) from None
        keep_tmp = False  # True only if `tmp` ends up holding a folder that is not ours
        try:
            os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700; an ordinary folder follows the umask
            seen = link_tree(final, tmp) if update else None
            if not (tmp / MANIFEST).exists():
                write_manifest(tmp, kind, command)
            yield tmp
            check_interrupt()
            _commit(tmp, final, kind, replace=force or update, seen=seen, shown=shown)
        except LeftAside:
            keep_tmp = True
            raise
        except WriteFailed as e:
            raise TinyDigitsError(failed_write(shown, e.error)) from None
        except OSError as e:  # a full disk under a library's own writes (Keras saving model.keras)
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise TinyDigitsError(failed_write(shown, e)) from None
        finally:
            if not keep_tmp:
                shutil.rmtree(tmp, ignore_errors=True)


class LeftAside(TinyDigitsError):
    """A folder that is not ours was swapped out and could not be swapped back: it is kept where it is."""


def remove_leftovers(final: Path) -> None:
    """Staging folders of a command that was killed (kill -9) while it wrote `final`: called under
    `final`'s lock, so no live command owns them; only folders of the staging name are touched."""
    prefix = staging_prefix(final)
    for path in final.parent.glob(f"{glob_escape(prefix)}*.partial"):
        if path.is_dir() and not path.is_symlink() and (manifest_kind(path) or not any(path.iterdir())):
            shutil.rmtree(path, ignore_errors=True)


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _commit(tmp: Path, final: Path, kind: str, replace: bool, seen: dict | None, shown: Path) -> None:
    """Put the complete `tmp` at `final` in one step.

    Nothing at `final`: a rename that cannot replace anything. A folder of ours of `kind` (with
    `replace`): swapped in one step, and the folder swapped out is checked once more before the
    caller removes it; if it is not ours (it was replaced between the check and the swap), it is
    swapped back. Anything else at `final` is left as it is, and the new set is not written.
    `seen` (an update): what `tmp` was linked from, so that files added to `final` since are kept.
    """
    if seen is not None and _holds_cwd(final):  # swapping the folder a shell stands in would strand it
        carry_new_entries(final, tmp, seen, move=False)
        return move_into(tmp, final)
    if seen is not None:
        carry_new_entries(final, tmp, seen, move=False)
    try:
        return move_new(tmp, final)
    except FileExistsError:
        if not replace:
            raise TinyDigitsError(f"{shown}: appeared while this command ran, not made by it; left as it is, "
                                  "nothing written (choose another --out)") from None
    except OSError as e:
        if e.errno != errno.ENOTEMPTY:  # the fallback's empty folder, filled by someone in between
            raise
        raise TinyDigitsError(f"{shown}: filled while this command ran; left as it is, nothing written") from None
    if final.is_symlink() or manifest_kind(final) != kind:
        raise TinyDigitsError(f"{shown}: changed while this command ran and is not {_a(kind)} folder tinydigits "
                              "wrote; left as it is, nothing written")
    exchange(tmp, final)
    if tmp.is_symlink() or manifest_kind(tmp) != kind:  # replaced in the instant between the check and the swap
        try:
            exchange(tmp, final)
        except OSError:
            raise LeftAside(f"{shown}: changed while this command ran; what was there is now at {tmp}, "
                            "left as it is") from None
        raise TinyDigitsError(f"{shown}: changed while this command ran; left as it is, nothing written")
    if seen is not None:
        carry_new_entries(tmp, final, seen, move=True)  # added in the instant before the swap
