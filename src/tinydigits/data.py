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
import io
import json
import math
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
from .errors import TinyDigitsError, os_problem
from .inputs import check_folder, open_input

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
EXPECTED = {"x_train": (None, 28, 28), "y_train": (None,), "x_test": (None, 28, 28), "y_test": (None,)}  # N any
MAX_IDX_BYTES = 1 << 30  # 1 GiB: 1.3 million 28x28 images, twice EMNIST's largest split; a header over it is damaged
DEFLATE_MAX_RATIO = 1032  # the most deflate can compress (258-byte matches at 2 bits each): a bound on any gzip
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


def read_idx_bytes(path: Path, expect: tuple | None = None) -> bytearray:
    """The uncompressed bytes of an IDX file, gzip or plain, read in bounded memory.

    The header is read first and its dimensions checked against `expect` (None: any size on that
    axis) and against the file's actual size, before the data: a header that claims more than the
    file holds (2**31 images), or more than deflate can pack into it (a gzip bomb), is refused
    without decompressing it, and no more than the header's size + 1 is ever decompressed.
    """
    path = Path(path)
    with open_input(path) as raw:
        size = os.fstat(raw.fileno()).st_size
        packed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw) if packed else raw
        try:
            head, dims = _read_header(f.read, str(path))
            count = _checked_size(dims, str(path), expect)
            if not packed and size != len(head) + count:
                raise TinyDigitsError(_size_mismatch(path, dims, size - len(head), count))
            if packed and count > DEFLATE_MAX_RATIO * size:
                raise TinyDigitsError(f"{path}: IDX says {dims}, {count:,} bytes, more than a {size:,}-byte gzip can "
                                      "hold; the file is damaged or a decompression bomb")
            data = bytearray(len(head) + count)  # one buffer, filled in place: the data is held once
            data[:len(head)] = head
            held = f.readinto(memoryview(data)[len(head):])
            held += len(f.read(1)) if held == count else 0  # a byte past what the header says: padded
        except (EOFError, OSError, zlib.error) as e:
            if not packed:
                raise TinyDigitsError(f"{path}: cannot read it ({os_problem(e)})") from None
            raise TinyDigitsError(f"{path}: corrupt or truncated gzip ({e})") from None
    if held != count:
        raise TinyDigitsError(_size_mismatch(path, dims, held, count, more=held > count))
    return data


def _read_header(read, name: str) -> tuple[bytes, tuple[int, ...]]:
    """An IDX header through `read(n)`: its bytes and its dimensions, the magic number checked."""
    magic = read(4)
    if len(magic) < 4:
        raise TinyDigitsError(f"{name}: too short to be an IDX file ({len(magic)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", magic)
    if zero != 0 or dtype != 0x08 or ndim not in (1, 3):
        raise TinyDigitsError(f"{name}: bad IDX magic number 0x{magic.hex()} "
                              "(expected 0x00000801 for labels or 0x00000803 for images)")
    sizes = read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise TinyDigitsError(f"{name}: truncated IDX header")
    return magic + sizes, struct.unpack(f">{ndim}I", sizes)


def _checked_size(dims: tuple[int, ...], name: str, expect: tuple | None) -> int:
    """The data bytes `dims` say, once they are what was expected, not empty, and not over MAX_IDX_BYTES."""
    if expect is not None and (len(dims) != len(expect) or any(e not in (None, d) for d, e in zip(dims, expect))):
        wanted = "(N, " + ", ".join(str(e) for e in expect[1:]) + ")" if len(expect) > 1 else "(N,)"
        raise TinyDigitsError(f"{name}: IDX says {dims}, expected {wanted}")
    if 0 in dims:
        raise TinyDigitsError(f"{name}: IDX says {dims}: no data (a dimension is 0)")
    count = math.prod(dims)
    if count > MAX_IDX_BYTES:
        raise TinyDigitsError(f"{name}: IDX says {dims}, {count:,} bytes, over the {MAX_IDX_BYTES:,} a dataset file "
                              "may hold; the header is damaged")
    return count


def _size_mismatch(name, dims, held: int, count: int, more: bool = False) -> str:
    held = f"more than {count:,}" if more else f"{held:,}"
    return (f"{name}: IDX says {dims} but holds {held} data bytes (expected {count:,}); "
            "the file is truncated or padded")


def parse_idx(data: bytes, name: str = "<bytes>", expect: tuple | None = None) -> np.ndarray:
    """Parse IDX bytes into a uint8 array, checking magic number, dimensions and length."""
    view = io.BytesIO(data)
    head, dims = _read_header(view.read, name)
    count = _checked_size(dims, name, expect)
    if len(data) != len(head) + count:
        raise TinyDigitsError(_size_mismatch(name, dims, len(data) - len(head), count))
    return np.frombuffer(data, dtype=np.uint8, offset=len(head)).reshape(dims)


def read_idx(path: Path, expect: tuple | None = None) -> np.ndarray:
    return parse_idx(read_idx_bytes(path, expect), str(path), expect)


def plain_idx_bytes(path: Path, expect: tuple | None, cache_dir: Path | None) -> bytearray:
    """read_idx_bytes, with a gzipped file decompressed once: its plain bytes are kept in CACHE_DIR/idx/
    under its path, size and mtime, and read from there (with the same checks) next time (gunzipping
    MNIST's training images takes about 0.4 s, reading them back about 0.02 s)."""
    path = Path(path)
    if cache_dir is None or not path.name.endswith(".gz"):
        return read_idx_bytes(path, expect)
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    plain = Path(cache_dir) / "idx" / f"{path.name[:-3]}-{key}"
    try:
        return read_idx_bytes(plain, expect)
    except TinyDigitsError:  # not cached yet, or a damaged copy: from the file itself
        data = read_idx_bytes(path, expect)
        try:
            write_bytes(plain, bytes(data))
        except (OSError, TinyDigitsError):
            pass  # a read-only or full cache only costs the decompression next time
        return data


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
        if data_dir.exists() or data_dir.is_symlink():  # a file, a loop, a FIFO: said in words
            check_folder(data_dir, "dataset folder")
        if not _has_files(data_dir):
            missing = [FILES[key] for key in FILES if not _file_in(data_dir, key).exists()]
            raise TinyDigitsError(f"{data_dir}: not a dataset folder (missing {', '.join(missing)})")
        return data_dir
    for root in roots if roots is not None else default_roots():
        if _has_files(root / name):
            return root / name
    return None


def _verified(path: Path, raw: bytes, md5: str, cache_dir: Path) -> None:
    """Raise unless `raw`, the uncompressed bytes of `path`, hash to `md5`; remember a pass by size+mtime."""
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
    digest = hashlib.md5(raw).hexdigest()
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
        raw = plain_idx_bytes(path, EXPECTED[key], cache_dir)  # header checked before the data is read
        if data_dir is None:  # a folder given by hand holds the user's own data: nothing to check against
            _verified(path, raw, CHECKSUMS[name][key], cache_dir)
        arrays[key] = parse_idx(raw, str(path))
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
