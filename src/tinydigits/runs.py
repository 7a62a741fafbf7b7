"""A run folder and what is in it: the one place that knows its file names and reads them back.

`train` writes a run folder (`model.keras`, `metrics.json`, `history.json`, `curves.png`); later
stages add to it (`convert`: the two .tflite models, `deploy.json`, `flips.png`; `evaluate`,
`mcu`, `boards`: their reports). Every command takes a `Run`; each file is read once, checked, and
a missing, truncated or corrupt file is one TinyDigitsError naming the file and the problem.

    run = Run("runs/lesson")          # Run('runs/lesson': h20-relu-ce, test accuracy 0.9616, converted)
    run.model(), run.metrics["test_accuracy"], run.history["val_accuracy"], run.recipe
    run.int8_model()                  # bytes of model_int8.tflite (after `tinydigits convert`)
    run.deploy_report()               # deploy.json as a dict, or None before `convert`
    run.dataset()                     # the Dataset it was trained on
    run.paths.int8_model              # Path("runs/lesson/model_int8.tflite")
"""
from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .artifacts import MANIFEST
from .escape import html_text
from .data import load_dataset
from .errors import TinyDigitsError, first_line
from .inputs import MAX_JSON_BYTES, check_file, check_folder, read_input
from .model import Recipe

TFLITE_IDENTIFIER = b"TFL3"  # bytes 4-8 of every .tflite flatbuffer
KERAS_ARCHIVE_FILES = ("config.json", "model.weights.h5")
MAX_MODEL_BYTES = 256 * 1024 * 1024  # an int8 model for a microcontroller is kilobytes; this is no such model


@dataclass(frozen=True)
class RunFiles:
    """File names in a run folder, spelled once. `RUN_FILES.model == "model.keras"`; `run.paths.model` is its Path."""
    manifest: str = MANIFEST
    model: str = "model.keras"                 # train
    metrics: str = "metrics.json"
    history: str = "history.json"
    curves: str = "curves.png"
    float_model: str = "model_float32.tflite"  # convert
    int8_model: str = "model_int8.tflite"
    deploy: str = "deploy.json"
    flips: str = "flips.png"
    evaluation: str = "evaluation.json"        # evaluate
    confusion: str = "confusion.png"
    mistakes: str = "mistakes.png"
    mcu: str = "mcu.json"                      # mcu
    boards: str = "boards.json"                # boards
    boards_plot: str = "boards.png"
    firmware: str = "firmware"                 # mcu, boards: a folder, firmware/<board>/ (ELF, .hex/.bin, map)

    def under(self, folder: Path) -> "RunFiles":
        """The same fields as Paths inside `folder`."""
        return RunFiles(**{k: Path(folder) / v for k, v in dataclasses.asdict(self).items()})


RUN_FILES = RunFiles()


def read_json(path: Path, expect: type = dict):
    """A JSON file's value, checked to be an `expect`; a missing, unreadable or truncated file is one line."""
    path = Path(path)
    _exists(path)
    try:
        value = json.loads(read_input(path, MAX_JSON_BYTES))
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise TinyDigitsError(f"{path}: not valid JSON, truncated or damaged ({first_line(e, 80)})") from None
    if not isinstance(value, expect):
        raise TinyDigitsError(f"{path}: expected a JSON {expect.__name__}, got {type(value).__name__}")
    return value


def _exists(path: Path) -> Path:
    """`path`, or "missing" if nothing is there; any other problem (a loop, no permission) is left for the read to name."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        raise TinyDigitsError(f"{path}: missing") from None
    except OSError:
        pass
    return path


def check_keras_archive(path: Path) -> None:
    """Refuse a model.keras that is not a complete Keras archive, before Keras says 'File not found'."""
    check_file(_exists(path))  # a FIFO or a device would hang the zip reader
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise TinyDigitsError(f"{path}: not a Keras model archive, truncated or damaged ({e})") from None
    if damaged:
        raise TinyDigitsError(f"{path}: damaged Keras archive ({damaged} fails its checksum)")
    missing = [n for n in KERAS_ARCHIVE_FILES if n not in names]
    if missing:
        raise TinyDigitsError(f"{path}: not a Keras model archive (no {', '.join(missing)} inside)")


class Run:
    """A run folder: its paths, and each artifact loaded once and validated."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.paths = RUN_FILES.under(self.folder)
        check_folder(self.folder, "run folder")  # "no such run folder", "symbolic link loop", "name too long" ...
        if not self.paths.model.exists():
            raise TinyDigitsError(f"{self.folder}: not a run folder (no {RUN_FILES.model}; "
                                  f"train one with `tinydigits train --out {self.folder}`)")
        self._model = self._int8 = None

    def __fspath__(self) -> str:
        return str(self.folder)

    # ------------------------------------------------------------------ what train wrote
    def model(self):
        """The Keras model (loaded once, not compiled)."""
        if self._model is None:
            check_keras_archive(self.paths.model)
            import keras

            try:
                self._model = keras.saving.load_model(self.paths.model, compile=False)
            except Exception as e:  # keras raises many types for a damaged archive
                raise TinyDigitsError(f"{self.paths.model}: cannot load the model "
                                      f"({type(e).__name__}: {first_line(e, 160)})") from None
        return self._model

    @cached_property
    def metrics(self) -> dict:
        """metrics.json: test_accuracy, test_loss, params, train_seconds, recipe, dataset, versions."""
        metrics = read_json(self.paths.metrics)
        imported = isinstance(metrics.get("imported"), dict)  # `tinydigits import`: no recipe trained it
        for key, kind in (("test_accuracy", (int, float)), ("recipe", (type(None), dict) if imported else dict)):
            if not isinstance(metrics.get(key), kind):
                raise TinyDigitsError(f"{self.paths.metrics}: no valid {key!r}")
        dataset = metrics.get("dataset")
        if dataset is not None and not (isinstance(dataset, dict) and isinstance(dataset.get("name", ""), str)
                                        and isinstance(dataset.get("data_dir"), (str, type(None)))):
            raise TinyDigitsError(f"{self.paths.metrics}: 'dataset' must be {{\"name\": str, \"data_dir\": str or null}}, "
                                  f"got {json.dumps(dataset)[:80]}")
        return metrics

    @cached_property
    def history(self) -> dict[str, list[float]]:
        """history.json: metric name -> one number per epoch."""
        history = read_json(self.paths.history)
        if not all(isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in history.values()):
            raise TinyDigitsError(f"{self.paths.history}: expected lists of numbers per metric")
        return history

    @cached_property
    def recipe(self) -> Recipe | None:
        """The recipe that trained the model; None for a model brought in by `tinydigits import`."""
        if self.metrics.get("recipe") is None:
            return None
        try:
            return Recipe.from_dict(self.metrics["recipe"])
        except (TinyDigitsError, TypeError) as e:
            raise TinyDigitsError(f"{self.paths.metrics}: bad recipe ({e})") from None

    @property
    def imported(self) -> dict | None:
        """Where an imported model came from ({"from", "format", "name", ...}), or None for a trained one."""
        return self.metrics.get("imported")

    @property
    def name(self) -> str:
        """The design, `h20-relu-ce`, or `imported:<model name>`."""
        return self.recipe.name if self.recipe is not None else f"imported:{self.imported.get('name', '?')}"

    def dataset(self, allow_download: bool = True):
        """The dataset the run was trained (or scored) on: by name, or the folder given with --data-dir."""
        recorded = self.metrics.get("dataset") or {}
        if recorded.get("data_dir"):
            return load_dataset(recorded.get("name", "custom"), data_dir=Path(recorded["data_dir"]))
        name = self.recipe.dataset if self.recipe is not None else recorded.get("name", "mnist")
        return load_dataset(name, allow_download=allow_download)

    # ------------------------------------------------------------------ what convert wrote
    @property
    def converted(self) -> bool:
        return self.paths.int8_model.is_file()

    def int8_model(self) -> bytes:
        """model_int8.tflite's bytes (checked to be a .tflite flatbuffer)."""
        if self._int8 is None:
            if not self.paths.int8_model.exists():
                raise TinyDigitsError(f"{self.folder}: no {RUN_FILES.int8_model} (run `tinydigits convert {self.folder}` first)")
            data = read_input(self.paths.int8_model, MAX_MODEL_BYTES)
            if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
                raise TinyDigitsError(f"{self.paths.int8_model}: not a .tflite model (truncated or damaged)")
            self._int8 = data
        return self._int8

    def refresh(self) -> Run:
        """Forget the files read from the folder (after `convert` rewrote some); returns the run. The Keras
        model stays: only `train`, which makes a new folder, writes model.keras."""
        self._int8 = None
        for name in ("metrics", "history", "recipe"):
            self.__dict__.pop(name, None)
        return self

    def deploy_report(self) -> dict | None:
        """deploy.json (the forms `convert` measured), or None before `convert` ran."""
        if not self.paths.deploy.exists():
            return None
        report = read_json(self.paths.deploy)
        if not isinstance(report.get("forms"), list) or not all(isinstance(f, dict) for f in report["forms"]):
            raise TinyDigitsError(f"{self.paths.deploy}: no valid 'forms' list")
        return report

    def arena_bytes(self) -> int | None:
        """The TFLM tensor arena `convert` measured, or None."""
        forms = (self.deploy_report() or {"forms": []})["forms"]
        arena = next((f["arena_bytes"] for f in forms if "arena_bytes" in f), None)
        if arena is not None and not (isinstance(arena, int) and arena > 0):
            raise TinyDigitsError(f"{self.paths.deploy}: arena_bytes must be a positive integer, got {arena!r}")
        return arena

    # ------------------------------------------------------------------ showing it
    def _summary(self) -> str:
        try:
            facts = f"{self.name}, test accuracy {self.metrics['test_accuracy']:.4f}"
        except TinyDigitsError as e:
            facts = f"unreadable: {e}"
        return facts + (", converted" if self.converted else "")

    def __repr__(self):
        return f"Run('{self.folder}': {self._summary()})"

    def _repr_html_(self):
        files = [f"<code>{html_text(p.name)}</code> {p.stat().st_size:,} B"
                 for p in dataclasses.astuple(self.paths) if p.is_file() and p.name != MANIFEST]
        return (f"<b>Run</b> <code>{html_text(str(self.folder))}</code>: {html_text(self._summary())}"
                f"<br>{', '.join(files)}")
