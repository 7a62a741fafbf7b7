"""Atomic writes: an artifact is either complete on disk or absent, never half-written.

Every file tinydigits writes goes through `write_bytes`/`write_text`/`write_json` (temp file in the
same folder, fsync, rename), and a run folder is built in a hidden sibling and renamed into
place by `staged_folder`, so an interrupted command leaves the user's earlier results intact.

    with staged_folder(Path("runs/lesson"), force=False) as tmp:
        write_json(tmp / "metrics.json", {...})
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import TinyDigitsError


def write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
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
    """Render a matplotlib figure to PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def staged_folder(final: Path, force: bool = False):
    """Yield a hidden temp folder; on success it replaces `final`, on error it is removed.

    An existing `final` is kept unless `force`; with `force` it is swapped out only after the new
    folder is complete.
    """
    final = Path(final)
    if final.exists() and not force:
        raise TinyDigitsError(f"{final}: already exists (use --force to replace it, or choose another --out)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
