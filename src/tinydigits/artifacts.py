"""Atomic writes: an artifact is either complete on disk or absent, never half-written.

Every file tinydigits writes goes through `write_bytes`/`write_text`/`write_json` (temp file in the
same folder, fsync, rename). A set of files is written by `staged_folder`: built in a hidden
sibling, then renamed into place, so an interrupted command leaves the user's earlier results
intact. Files get the modes any tool gives them (0644 under umask 022), not mkstemp's 0600.

Every folder tinydigits creates carries a small manifest, `.tinydigits.json` (its kind, the command
that made it); `--force` replaces only a folder that carries one (or a run folder from before
manifests: `metrics.json` + `model.keras`). `preflight` checks a destination before long work.

    preflight(Path("runs/lesson"), force=False)                  # before training, not after
    with staged_folder(Path("runs/lesson"), "run", "tinydigits train") as tmp:
        write_json(tmp / "metrics.json", {...})
    with staged_folder(run.folder, "run", update=True) as tmp:   # add files to a run as one set
        write_bytes(tmp / "model_int8.tflite", data)
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import __version__
from .errors import TinyDigitsError
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


def write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600; an ordinary file follows the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        check_interrupt()  # after Ctrl-C nothing new lands, even if its KeyboardInterrupt was swallowed
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2) + "\n")


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
    folder = Path(folder)
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
        raise TinyDigitsError(f"{folder}: cannot be written ({e.strerror} in {where})") from None
    return folder


def _holds_cwd(folder: Path) -> bool:
    resolved, cwd = Path(folder).resolve(), Path.cwd().resolve()
    return resolved == cwd or resolved in cwd.parents


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # same file system: free, and new files replace links, never the originals
    except OSError:
        shutil.copy2(src, dst)


@contextlib.contextmanager
def staged_folder(final: Path, kind: str, command: str = "", force: bool = False, update: bool = False):
    """Yield a hidden temp folder; on success it replaces `final` as a whole, on error it is removed.

    A new folder gets a manifest of `kind`. An existing `final` is kept unless `force` (and only if
    tinydigits wrote it as a folder of `kind`, see `preflight`); with `force` it is swapped out only
    once the new folder is complete. `update=True` starts from the files already in `final` (hard
    links), so a set of files is added to it all at once or not at all; a symbolic link to the
    folder stays a link (the folder it points to is updated).
    """
    if update:
        preflight(final, resume=kind)
        final = Path(final).resolve()
    else:
        preflight(final, force, kind=kind)
    final = Path(os.path.abspath(final))  # "x/.." has no name to stage beside; its absolute form has
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    old = None
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700; an ordinary folder follows the umask
        if update:
            shutil.copytree(final, tmp, copy_function=_link_or_copy, dirs_exist_ok=True)
        if not (tmp / MANIFEST).exists():
            write_manifest(tmp, kind, command)
        yield tmp
        check_interrupt()
        if update and _holds_cwd(final):  # swapping the folder a shell stands in would strand it: move the files
            _move_into(tmp, final)
            return
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException:
        if old is not None and not final.exists():
            os.replace(old, final)  # the swap failed half-way: the old folder goes back
            old = None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _move_into(staged: Path, final: Path) -> None:
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
