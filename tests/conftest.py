"""Shared fixtures: the real MNIST (via TINYDIGITS_DATA) and one short training run reused by many tests;
`tree` (a folder's exact contents) and `needs`/`skip_or_fail` (a missing tool skips here, fails in CI)."""
import importlib
import os
from pathlib import Path

import numpy as np
import pytest

import tinydigits  # noqa: F401  (sets the Keras backend before anything imports Keras)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"  # screenshots and reports a person may want to look at
# CI gives a relative TINYDIGITS_DATA (../shared/datasets); tests that chdir (a relative run folder, as a
# user types it) must still find MNIST, so it is made absolute once, against the directory pytest started in.
if os.environ.get("TINYDIGITS_DATA"):
    os.environ["TINYDIGITS_DATA"] = str(Path(os.environ["TINYDIGITS_DATA"]).expanduser().resolve())


def skip_or_fail(reason: str):
    """Skip a test whose tool or package is missing, but fail it where the CI variable is set: there
    setup.sh installs everything, so a missing tool is a broken setup, not a reason to pass."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, where setup.sh must install it", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def needs(missing, reason: str):
    """A mark for tests that need a tool: skipped when `missing` is true, failed in CI (see skip_or_fail)."""
    return pytest.mark.needs(bool(missing), reason)


def import_or_skip(name: str):
    """pytest.importorskip that fails in CI (see skip_or_fail)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        skip_or_fail(f"the Python package {name} is not installed (pip install -e '.[test]')")


def pytest_configure(config):
    config.addinivalue_line("markers", "needs(missing, reason): skipped when missing, failed when CI is set")


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs"):
        missing, reason = mark.args
        if missing:
            skip_or_fail(reason)


def tree(folder: Path) -> dict:
    """Every entry under `folder`: relative path -> (mode, bytes) so 'untouched' can be asserted exactly."""
    return {str(p.relative_to(folder)): (p.stat().st_mode, p.read_bytes() if p.is_file() else None)
            for p in sorted(Path(folder).rglob("*"))}


def save_tiny_run(folder: Path, int8: bool = False) -> Path:
    """An untrained 784-4-10 model saved as a run folder by save_run under umask 022: no training, no data
    (`int8`: with a model_int8.tflite from random calibration images, as `convert` would add)."""
    from tinydigits.model import Recipe, build_model
    from tinydigits.train import TrainResult, save_run

    recipe = Recipe(hidden=(4,), epochs=2)
    history = {"loss": [2.0, 1.5], "accuracy": [0.3, 0.5], "val_loss": [1.9, 1.4], "val_accuracy": [0.35, 0.55]}
    metrics = {"test_accuracy": 0.55, "test_loss": 1.4, "params": 3190, "train_seconds": 0.1,
               "recipe": recipe.to_dict(), "dataset": {"name": "mnist", "data_dir": None}}
    model = build_model(recipe)
    int8_model = None
    if int8:
        from tinydigits.convert import to_tflite

        images = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)
        int8_model = to_tflite(model, images)
    old = os.umask(0o022)  # the modes test_runs asserts do not depend on the shell's umask
    try:
        return save_run(TrainResult(model, recipe, history, metrics), folder, int8_model=int8_model,
                        command=f"tinydigits train --out {Path(folder).name}")
    finally:
        os.umask(old)


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
