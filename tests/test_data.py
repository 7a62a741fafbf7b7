import gzip
import hashlib
import http.server
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import idx_bytes
from tinydigits import data
from tinydigits.errors import TinyDigitsError

# the real MNIST files, where the README points TINYDIGITS_DATA (conftest made it absolute)
SHARED_MNIST = Path(os.environ.get("TINYDIGITS_DATA", "../shared/datasets")).resolve() / "mnist"


def test_parse_idx_round_trip():
    images = np.arange(2 * 28 * 28, dtype=np.uint16).astype(np.uint8).reshape(2, 28, 28)
    assert np.array_equal(data.parse_idx(idx_bytes(images)), images)
    labels = np.array([7, 2, 1], np.uint8)
    assert np.array_equal(data.parse_idx(idx_bytes(labels)), labels)


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b"\x00\x00\x09\x03" + b[4:], "bad IDX magic"),      # not uint8
    (lambda b: b"\x12\x34\x08\x03" + b[4:], "bad IDX magic"),      # garbage
    (lambda b: b[:-5], "truncated or padded"),                     # data cut short
    (lambda b: b + b"\x00", "truncated or padded"),                # trailing bytes
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b[:2], "too short"),
])
def test_parse_idx_rejects_corrupt_input(mangle, message):
    good = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(TinyDigitsError, match=message):
        data.parse_idx(mangle(good), "x.idx")


def test_read_idx_gzip_and_truncated_gzip(tmp_path):
    labels = np.arange(100, dtype=np.uint8) % 10
    packed = gzip.compress(idx_bytes(labels))
    (tmp_path / "ok.gz").write_bytes(packed)
    assert np.array_equal(data.read_idx(tmp_path / "ok.gz"), labels)
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(TinyDigitsError, match="cut.gz: corrupt or truncated gzip"):
        data.read_idx(tmp_path / "cut.gz")
    with pytest.raises(TinyDigitsError, match="file not found"):
        data.read_idx(tmp_path / "missing.gz")


def test_real_mnist_matches_its_readme(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28)
    assert np.bincount(mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.y_train[:5].tolist() == [5, 0, 4, 1, 9] and mnist.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert mnist.x_train.mean() == pytest.approx(33.3184, abs=1e-3)
    assert mnist.x_train.std() == pytest.approx(78.5675, abs=1e-3)


def test_normalize_is_the_lessons_divide_by_255():
    x = data.normalize(np.array([[0, 51, 255]], np.uint8))
    assert x.dtype == np.float32 and np.array_equal(x, np.array([[0, 51, 255]], np.float32) / np.float32(255))
    assert x[0, 1] == pytest.approx(0.2)


def _copy_mnist(dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in data.FILES.values():
        shutil.copy(SHARED_MNIST / f, dst / f)
    return dst


def test_checksum_mismatch_is_caught_and_verdict_is_cached(tmp_path, cache_dir):
    root = tmp_path / "data"
    folder = _copy_mnist(root / "mnist")
    data.load_dataset("mnist", roots=[root], cache_dir=cache_dir, allow_download=False)
    assert len((cache_dir / "verified.json").read_text().splitlines()) >= 4  # four verdicts stored
    # one flipped pixel in the test labels: same size, valid IDX, wrong checksum
    labels = bytearray(gzip.decompress((folder / data.FILES["y_test"]).read_bytes()))
    labels[100] = (labels[100] + 1) % 10
    (folder / data.FILES["y_test"]).write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(TinyDigitsError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        data.load_dataset("mnist", roots=[root], cache_dir=cache_dir, allow_download=False)


def test_gzipped_files_are_decompressed_once(tmp_path, cache_dir, monkeypatch):
    """The second load reads the cached plain IDX bytes: no gunzip; a changed or damaged file is read afresh."""
    root = tmp_path / "data"
    folder = _copy_mnist(root / "mnist")
    first = data.load_dataset("mnist", roots=[root], cache_dir=cache_dir, allow_download=False)
    assert len(list((cache_dir / "idx").iterdir())) == 4
    monkeypatch.setattr(gzip, "decompress", lambda *a: pytest.fail("gunzipped again"))
    again = data.load_dataset("mnist", roots=[root], cache_dir=cache_dir, allow_download=False)
    assert all(np.array_equal(getattr(first, k), getattr(again, k)) for k in data.FILES)
    monkeypatch.undo()
    for cached in (cache_dir / "idx").iterdir():
        cached.write_bytes(cached.read_bytes()[:100])  # a truncated copy is not trusted
    assert np.array_equal(data.load_dataset("mnist", roots=[root], cache_dir=cache_dir, allow_download=False).x_test,
                          first.x_test)
    labels = bytearray(gzip.decompress((folder / data.FILES["y_test"]).read_bytes()))
    labels[100] = (labels[100] + 1) % 10  # the source changes: its checksum is checked again, not the old copy read
    (folder / data.FILES["y_test"]).write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(TinyDigitsError, match="checksum mismatch"):
        data.load_dataset("mnist", roots=[root], cache_dir=cache_dir, allow_download=False)


def test_search_order_and_not_found_message(tmp_path, cache_dir):
    first, second = tmp_path / "a", tmp_path / "b"
    _copy_mnist(second / "mnist")
    assert data.locate("mnist", roots=[first, second]) == second / "mnist"
    with pytest.raises(TinyDigitsError) as e:
        data.load_dataset("mnist", roots=[first], cache_dir=cache_dir, allow_download=False)
    assert str(first / "mnist") in str(e.value) and "TINYDIGITS_DATA" in str(e.value)
    with pytest.raises(TinyDigitsError, match="not a dataset folder"):
        data.locate("mnist", data_dir=first)
    with pytest.raises(TinyDigitsError, match="unknown dataset 'cifar'"):
        data.load_dataset("cifar", roots=[first])


def test_offline_download_failure_is_one_clear_error(tmp_path, cache_dir):
    with pytest.raises(TinyDigitsError, match="download failed.*offline"):
        data.load_dataset("mnist", roots=[tmp_path], cache_dir=cache_dir, mirrors=["http://127.0.0.1:9/"])
    assert not list((cache_dir / "mnist").glob("*.gz")) if (cache_dir / "mnist").exists() else True


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "log"])
def test_download_from_a_mirror_verifies_and_caches(tmp_path, cache_dir, capsys, monkeypatch, terminal):
    """A loopback HTTP server stands in for the public mirror. In a terminal a tqdm bar per file shows the
    progress; in a log (a pipe, a file) one plain line per file, no carriage returns."""
    monkeypatch.setattr(data, "redraws_in_place", lambda stream: terminal)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(SHARED_MNIST), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        mirror = f"http://127.0.0.1:{server.server_port}/"
        ds = data.load_dataset("mnist", roots=[tmp_path / "empty"], cache_dir=cache_dir, mirrors=[mirror])
    finally:
        server.shutdown()
    assert ds.folder == cache_dir / "mnist" and len(ds.x_test) == 10000
    progress = capsys.readouterr().err
    if terminal:
        assert all(f"{f}: 100%" in progress for f in data.FILES.values())
    else:
        mine = [line for line in progress.splitlines() if '"GET /' not in line]  # not the test server's own log
        assert mine == [f"downloading {mirror}{f}" for f in data.FILES.values()] and "\r" not in progress
    for key, f in data.FILES.items():
        assert hashlib.md5(gzip.decompress((cache_dir / "mnist" / f).read_bytes())).hexdigest() == data.CHECKSUMS["mnist"][key]


def test_fashion_mnist_from_debian_package():
    if not (data.DEBIAN_DATASETS / "fashion-mnist").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    ds = data.load_dataset("fashion-mnist", allow_download=False)
    assert ds.x_train.shape == (60000, 28, 28) and ds.class_names[9] == "Ankle boot"
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
