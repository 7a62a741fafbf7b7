"""What a path may name that is not a readable file: a FIFO, /dev/zero, a folder, a symbolic link loop, a
name too long, a file nobody may read. Each gets one line in words a person searches for, exit 2, in
seconds: through `predict` (images), `evaluate` (a run), `train --data-dir` (IDX files) and the library."""
import gzip
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from conftest import idx_bytes, save_tiny_run

from tinydigits import data
from tinydigits.errors import TinyDigitsError

CLI = [sys.executable, "-m", "tinydigits"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return save_tiny_run(tmp_path_factory.mktemp("runs") / "tiny")


def _within(seconds: float, call, fifos=()):
    """call() in a thread: its exception (or None); a failure if it still runs after `seconds` (a read of a FIFO
    that never ends), after which the FIFOs are opened for writing so that the blocked read returns."""
    import threading

    outcome = []

    def run():
        try:
            call()
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 (returned to the test)
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        for fifo in fifos:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"still reading after {seconds} s")
    return outcome[0]


def _oddities(folder: Path) -> dict[Path, str]:
    """Paths that are not readable files -> the words their one line must hold."""
    folder.mkdir(exist_ok=True)
    os.mkfifo(folder / "fifo.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "folder.png").mkdir()
    (folder / "loop.png").symlink_to("loop.png")
    return {folder / "fifo.png": "is a named pipe (FIFO), not a regular file",
            folder / "zero.png": "is a device, not a regular file",
            Path("/dev/zero"): "is a device, not a regular file",
            folder / "folder.png": "is a folder, not a file",
            folder / "loop.png": "symbolic link loop",
            folder / ("x" * 300 + ".png"): "name too long"}


def test_predict_refuses_each_oddity_in_one_line_and_in_seconds(tiny_run, tmp_path):
    expected = _oddities(tmp_path)
    start = time.monotonic()
    proc = subprocess.run([*CLI, "predict", str(tiny_run), *map(str, expected)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert errors == [f"error: {path}: {words}" for path, words in expected.items()], errors
    assert time.monotonic() - start < 100


@pytest.mark.parametrize("make, words", [
    (lambda d: (d / "loop").symlink_to("loop") or d / "loop", "symbolic link loop"),
    (lambda d: d / ("r" * 300), "name too long"),
    (lambda d: os.mkfifo(d / "fifo") or d / "fifo", "is a named pipe (FIFO), not a regular file"),
])
def test_a_run_folder_that_is_no_folder_is_said_in_words(make, words, tmp_path, capsys):
    from tinydigits.cli import main

    path = make(tmp_path)
    assert main(["evaluate", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}: {words}\n"


def test_a_run_file_that_is_a_fifo_or_a_folder_is_refused_without_waiting(tiny_run, tmp_path):
    from tinydigits.runs import Run

    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.keras", "history.json"):
        (run / name).symlink_to(tiny_run / name)
    os.mkfifo(run / "metrics.json")
    (run / "model_int8.tflite").mkdir()
    error = _within(10, lambda: Run(run).metrics, [run / "metrics.json"])
    assert isinstance(error, TinyDigitsError) and "metrics.json: is a named pipe" in str(error), error
    with pytest.raises(TinyDigitsError, match="model_int8.tflite: is a folder, not a file"):
        Run(run).int8_model()
    assert Run(run).model().count_params() == 3190  # a link to a model file is that file


def test_an_unreadable_file_is_permission_denied(tmp_path):
    """As an ordinary user a file of mode 000 cannot be read; root reads anything, so there the check runs
    in a child process that has given up root."""
    from tinydigits.runs import read_json

    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    secret.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(TinyDigitsError) as e:
            read_json(secret)
        assert str(e.value) == f"{secret}: permission denied"
        return
    import warnings

    read, write = os.pipe()
    with warnings.catch_warnings():  # JAX warns about any fork; the child only opens one file and exits
        warnings.simplefilter("ignore")
        pid = os.fork()
    if pid == 0:  # the child: nobody, who may not read a mode-000 file
        message = "read it"
        try:
            os.setgid(65534)
            os.setuid(65534)
            read_json(secret)
        except TinyDigitsError as e:
            message = str(e)
        except BaseException as e:  # noqa: BLE001 (reported to the parent)
            message = repr(e)
        finally:
            os.write(write, message.encode())
            os._exit(0)
    os.close(write)
    message = os.read(read, 1000).decode()
    os.waitpid(pid, 0)
    assert message == f"{secret}: permission denied"


# ------------------------------------------------------------------------------ IDX data files

def _dataset(folder: Path, **replace) -> Path:
    """A small valid dataset folder (plain IDX), with files replaced by `replace` (key -> bytes or a callable)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), "y_train": np.arange(20, dtype=np.uint8) % 10,
              "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), "y_test": np.arange(10, dtype=np.uint8)}
    for key, name in data.FILES.items():
        path = folder / name[:-3]
        content = replace.get(key, idx_bytes(arrays[key]))
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)
    return folder


def _header(*dims) -> bytes:
    import struct

    return struct.pack(">HBB", 0, 8, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


def _bomb(path: Path, header: bytes, gigabytes: float) -> None:
    """A gzip file of `header` followed by zeros: about 1 MB on disk per GB it unpacks to."""
    chunk = bytes(1 << 24)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header)
        for _ in range(int(gigabytes * 1024 / 16)):
            f.write(chunk)


@pytest.mark.parametrize("replace, words", [
    ({"y_train": lambda p: _bomb(p.with_suffix(".gz"), _header(20), 0.5)}, "the file is truncated or padded"),
    ({"x_train": lambda p: _bomb(p.with_suffix(".gz"), b"", 0.5)}, "bad IDX magic number 0x00000000"),
    ({"x_train": lambda p: _bomb(p.with_suffix(".gz"), _header(1_000_000, 28, 28), 0.02)}, "gzip can hold"),
    ({"x_train": _header(2**31, 28, 28) + bytes(100)}, "over the 1,073,741,824 a dataset file may hold"),
    ({"y_train": _header(2**31) + bytes(100)}, "IDX says (2147483648,), 2,147,483,648 bytes, over the"),
    ({"y_train": _header(2**20) + bytes(100)}, "IDX says (1048576,) but holds 100 data bytes (expected 1,048,576)"),
    ({"x_test": _header(0, 28, 28)}, "no data (a dimension is 0)"),
    ({"x_test": idx_bytes(np.zeros((10, 32, 32), np.uint8))}, "IDX says (10, 32, 32), expected (N, 28, 28)"),
    ({"y_test": idx_bytes(np.zeros((10, 28, 28), np.uint8))}, "IDX says (10, 28, 28), expected (N,)"),
    ({"x_train": lambda p: os.mkfifo(p)}, "is a named pipe (FIFO), not a regular file"),
    ({"x_train": lambda p: p.symlink_to("/dev/zero")}, "is a device, not a regular file"),
    ({"x_train": lambda p: p.mkdir()}, "is a folder, not a file"),
])
def test_a_hostile_data_file_is_one_line_in_seconds_and_bounded_memory(replace, words, tmp_path):
    folder = _dataset(tmp_path / "d", **replace)
    tracemalloc.start()
    start = time.monotonic()
    try:
        error = _within(20, lambda: data.load_dataset("custom", data_dir=folder), list(folder.glob("*-ubyte")))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, TinyDigitsError) and words in str(error) and len(str(error).splitlines()) == 1, error
    assert time.monotonic() - start < 10 and peak < 64 * 1024 * 1024, (time.monotonic() - start, peak)


def test_train_with_a_fifo_for_data_stops_at_once(tmp_path):
    folder = _dataset(tmp_path / "d", x_test=lambda p: os.mkfifo(p))
    proc = subprocess.run([*CLI, "train", "--data-dir", str(folder), "--epochs", "1", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        f"error: {folder / 't10k-images-idx3-ubyte'}: is a named pipe (FIFO), not a regular file"), proc.stderr
    assert not (tmp_path / "r").exists()


def test_the_small_valid_dataset_loads(tmp_path):
    ds = data.load_dataset("custom", data_dir=_dataset(tmp_path / "d"))
    assert ds.x_train.shape == (20, 28, 28) and ds.y_test.tolist() == list(range(10))
