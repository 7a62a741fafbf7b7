"""MNIST-format datasets: find the four IDX files, check them, return uint8 arrays.

Where a dataset is looked for, in order: an explicit folder (`--data-dir`); `$TINYDIGITS_DATA/<name>/`;
the user cache `~/.cache/tinydigits/<name>/`; Debian's `/usr/share/datasets/<name>/`; then a download
from the public mirrors into the cache. Files are verified against the MD5 of their uncompressed
bytes; a verdict is cached by (size, mtime) so the second load costs nothing.

    ds = load_dataset("mnist")             # ds.x_train (60000, 28, 28) uint8, ds.y_train (60000,) uint8
    x = normalize(ds.x_test)               # (10000, 28, 28) float32 in [0, 1], the lesson's /255
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import sys
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import redraws_in_place
from .artifacts import write_bytes, write_json
from .errors import TinyDigitsError

FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

# MD5 of the *uncompressed* IDX bytes: the gzip wrapping differs between mirrors and packagers.
CHECKSUMS = {
    "mnist": {
        "x_train": "6bbc9ace898e44ae57da46a324031adb",
        "y_train": "a25bea736e30d166cdddb491f175f624",
        "x_test": "2646ac647ad5339dbf082846283269ea",
        "y_test": "27ae3e4e09519cfbb04c329615203637",
    },
    # as installed by Debian's dataset-fashion-mnist (the Zalando release)
    "fashion-mnist": {
        "x_train": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "y_train": "9018921c3c673c538a1fc5bad174d6f9",
        "x_test": "8181f5470baa50b63fa0f6fddb340f0a",
        "y_test": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # IDX: 0x00000803 uint8 3-D, 0x00000801 uint8 1-D
DEBIAN_DATASETS = Path("/usr/share/datasets")


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray  # (N, 28, 28) uint8
    y_train: np.ndarray  # (N,) uint8
    x_test: np.ndarray
    y_test: np.ndarray
    folder: Path
    custom: bool = False  # read from a folder given by hand (--data-dir), not found by name

    @property
    def class_names(self) -> list[str]:
        return CLASS_NAMES.get(self.name, [str(d) for d in range(10)])

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"folder='{self.folder}')")


def normalize(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> float32 in [0, 1]: the lesson's pixels / 255."""
    return images.astype(np.float32) / 255.0


def read_idx_bytes(path: Path) -> bytes:
    """The uncompressed bytes of an IDX file, gzip or plain."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TinyDigitsError(f"{path}: file not found") from None
    except OSError as e:
        raise TinyDigitsError(f"{path}: cannot read ({e.strerror})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise TinyDigitsError(f"{path}: corrupt or truncated gzip ({e})") from None


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into a uint8 array, checking magic number, dimensions and length."""
    if len(data) < 4:
        raise TinyDigitsError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or ndim not in (1, 3):
        raise TinyDigitsError(f"{name}: bad IDX magic number 0x{data[:4].hex()} "
                              "(expected 0x00000801 for labels or 0x00000803 for images)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise TinyDigitsError(f"{name}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims)) + header
    if len(data) != expected:
        raise TinyDigitsError(f"{name}: IDX says {dims} but holds {len(data) - header} data bytes "
                              f"(expected {expected - header}); the file is truncated or padded")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: Path, cache_dir: Path | None = None) -> np.ndarray:
    """An IDX file as a uint8 array. With `cache_dir`, a gzipped file is decompressed once: its plain
    bytes are kept in CACHE_DIR/idx/ under its path, size and mtime, and read from there next time
    (gunzipping MNIST's training images takes about 0.4 s, reading them back about 0.02 s)."""
    path = Path(path)
    if cache_dir is None or not path.name.endswith(".gz"):
        return parse_idx(read_idx_bytes(path), str(path))
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    plain = Path(cache_dir) / "idx" / f"{path.name[:-3]}-{key}"
    try:
        return parse_idx(plain.read_bytes(), str(path))
    except (OSError, TinyDigitsError):  # not cached yet, or a damaged copy: from the file itself
        data = read_idx_bytes(path)
        array = parse_idx(data, str(path))
        try:
            write_bytes(plain, data)
        except OSError:
            pass  # a read-only cache only costs the decompression next time
        return array


def default_roots() -> list[Path]:
    """Folders that hold `<name>/` dataset folders, in search order (reads the environment)."""
    roots = []
    if os.environ.get("TINYDIGITS_DATA"):
        roots.append(Path(os.environ["TINYDIGITS_DATA"]).expanduser().resolve())
    roots.append(default_cache_dir())
    roots.append(DEBIAN_DATASETS)
    return roots


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinydigits"


def _has_files(folder: Path) -> bool:
    return all((folder / f).exists() or (folder / f[:-3]).exists() for f in FILES.values())


def _file_in(folder: Path, key: str) -> Path:
    gz = folder / FILES[key]
    return gz if gz.exists() else folder / FILES[key][:-3]


def locate(name: str, data_dir: Path | None = None, roots: list[Path] | None = None) -> Path | None:
    """The first folder holding the four IDX files of `name`, or None."""
    if data_dir is not None:
        data_dir = Path(data_dir)
        if not _has_files(data_dir):
            missing = [FILES[key] for key in FILES if not _file_in(data_dir, key).exists()]
            raise TinyDigitsError(f"{data_dir}: not a dataset folder (missing {', '.join(missing)})")
        return data_dir
    for root in roots if roots is not None else default_roots():
        if _has_files(root / name):
            return root / name
    return None


def _verified(path: Path, md5: str, cache_dir: Path) -> None:
    """Raise unless the uncompressed bytes of `path` hash to `md5`; remember a pass by size+mtime."""
    verdicts_file = cache_dir / "verified.json"
    try:
        verdicts = json.loads(verdicts_file.read_text())
    except (OSError, ValueError):
        verdicts = {}
    if not isinstance(verdicts, dict):  # a damaged cache only costs the check
        verdicts = {}
    st = path.stat()
    stamp = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{md5}"
    if verdicts.get(stamp):
        return
    digest = hashlib.md5(read_idx_bytes(path)).hexdigest()
    if digest != md5:
        raise TinyDigitsError(f"{path}: checksum mismatch (MD5 of uncompressed bytes {digest}, "
                              f"expected {md5}); the file is corrupt or not the dataset it claims")
    verdicts[stamp] = True
    try:
        write_json(verdicts_file, verdicts)
    except OSError:
        pass  # a read-only cache only costs the check next time


def download(name: str, dest: Path, mirrors: list[str] | None = None, progress: bool = True) -> Path:
    """Fetch the four files of `name` into `dest`, verified; each file lands only once complete.

    `progress`: a tqdm.auto bar per file (a widget in Jupyter, text on a terminal's stderr).
    """
    mirrors = mirrors if mirrors is not None else MIRRORS.get(name, [])
    if not mirrors:
        raise TinyDigitsError(f"dataset {name!r}: no download mirror known")
    errors = []
    for key, filename in FILES.items():
        target = dest / filename
        if target.exists():
            continue
        for base in mirrors:
            try:
                data = _fetch(base + filename, progress)
            except OSError as e:
                errors.append(f"{base}{filename}: {e}")
                continue
            digest = hashlib.md5(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).hexdigest()
            want = CHECKSUMS.get(name, {}).get(key)
            if want and digest != want:
                errors.append(f"{base}{filename}: checksum mismatch")
                continue
            write_bytes(target, data)
            break
        else:
            raise TinyDigitsError(f"dataset {name!r}: download failed ({'; '.join(errors[-len(mirrors):])})")
    return dest


def _fetch(url: str, progress: bool) -> bytes:
    from tqdm.auto import tqdm  # looks for IPython to choose its bar: only paid when downloading

    live = progress and redraws_in_place(sys.stderr)  # elsewhere one plain line per file, no carriage returns
    if progress and not live:
        print(f"downloading {url}", file=sys.stderr, flush=True)
    with urllib.request.urlopen(url, timeout=30) as resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        chunks = []
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not live) as bar:
            while chunk := resp.read(1 << 16):
                chunks.append(chunk)
                bar.update(len(chunk))
        return b"".join(chunks)


def load_dataset(name: str = "mnist", data_dir: Path | None = None, roots: list[Path] | None = None,
                 cache_dir: Path | None = None, allow_download: bool = True,
                 mirrors: list[str] | None = None) -> Dataset:
    """Find, verify and read a dataset; download it into the cache if it is nowhere on disk."""
    if data_dir is None and name not in CHECKSUMS:
        raise TinyDigitsError(f"unknown dataset {name!r} (known: {', '.join(CHECKSUMS)}; "
                              "or give a folder of IDX files with --data-dir)")
    roots = roots if roots is not None else default_roots()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = locate(name, data_dir, roots)
    if folder is None:
        tried = [str(r / name) for r in roots]
        if not allow_download:
            raise TinyDigitsError(f"dataset {name!r} not found (looked in {', '.join(tried)}); "
                                  "point --data-dir or TINYDIGITS_DATA at a folder holding the four IDX files")
        try:
            folder = download(name, cache_dir / name, mirrors)
        except TinyDigitsError as e:
            raise TinyDigitsError(f"dataset {name!r} not found (looked in {', '.join(tried)}) and {e}; "
                                  "offline? point --data-dir or TINYDIGITS_DATA at a folder holding the four "
                                  "IDX files") from None
    arrays = {}
    for key in FILES:
        path = _file_in(folder, key)
        if data_dir is None:  # a folder given by hand holds the user's own data: nothing to check against
            _verified(path, CHECKSUMS[name][key], cache_dir)
        arrays[key] = read_idx(path, cache_dir)
    _check_shapes(arrays, folder)
    return Dataset(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], folder,
                   custom=data_dir is not None)


def _check_shapes(a: dict, folder: Path) -> None:
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1:
            raise TinyDigitsError(f"{folder}: {split} images must be 3-D and labels 1-D, got {x.shape} and {y.shape}")
        if len(x) != len(y):
            raise TinyDigitsError(f"{folder}: {len(x)} {split} images but {len(y)} labels")
        if y.size and y.max() > 9:
            raise TinyDigitsError(f"{folder}: {split} labels must be 0-9, found {int(y.max())}")
