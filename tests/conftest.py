"""Shared fixtures: the real MNIST (via TINYDIGITS_DATA) and one short training run reused by many tests."""
import os
from pathlib import Path

import numpy as np
import pytest

import tinydigits  # noqa: F401  (sets the Keras backend before anything imports Keras)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"  # screenshots and reports a person may want to look at


@pytest.fixture(scope="session")
def mnist():
    from tinydigits.data import load_dataset

    if not os.environ.get("TINYDIGITS_DATA"):
        pytest.fail("set TINYDIGITS_DATA to the folder holding mnist/ (see README)")
    return load_dataset("mnist", allow_download=False)


@pytest.fixture(scope="session")
def lesson_run(tmp_path_factory, mnist):
    """The lesson's model trained for 3 epochs (the full recipe takes 20), saved as a run folder."""
    from tinydigits.model import Recipe
    from tinydigits.train import save_run, train

    result = train(Recipe(epochs=3), mnist, verbose=0)
    return save_run(result, tmp_path_factory.mktemp("runs") / "lesson")


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tinydigits"


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX (the inverse of data.parse_idx), for synthetic test files."""
    import struct

    return struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@pytest.fixture(scope="session")
def converted_run(lesson_run):
    """The lesson run after `tinydigits convert`: model_int8.tflite, model_float32.tflite, deploy.json."""
    from tinydigits.cli import main

    assert main(["convert", str(lesson_run)]) == 0
    return lesson_run


def pytest_terminal_summary(terminalreporter):
    """How many cases the fuzz suite ran, per kind (recorded in bench/README.md)."""
    import sys

    fuzz = sys.modules.get("test_fuzz")
    if fuzz is not None and fuzz.CASES:
        terminalreporter.write_line(f"fuzz cases: {sum(fuzz.CASES.values())} in all; "
                                    + ", ".join(f"{kind} {n}" for kind, n in fuzz.CASES.items()))
