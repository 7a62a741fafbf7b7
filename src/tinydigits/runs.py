"""Read a run folder back: the trained model and what was recorded about it.

    run = load_run("runs/lesson")          # run.model (keras), run.metrics, run.recipe
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import TinyDigitsError
from .model import Recipe


@dataclass
class Run:
    folder: Path
    model: object
    metrics: dict

    @property
    def recipe(self) -> Recipe:
        return Recipe.from_dict(self.metrics.get("recipe", {}))

    def __repr__(self):
        return f"Run('{self.folder}', {self.recipe.name}, test_accuracy={self.metrics.get('test_accuracy')})"


def run_dataset(metrics: dict, allow_download: bool = True):
    """The dataset a run was trained on: by name, or the folder given with --data-dir."""
    from .data import load_dataset

    recorded = metrics.get("dataset", {})
    if recorded.get("data_dir"):
        return load_dataset(recorded.get("name", "custom"), data_dir=Path(recorded["data_dir"]))
    return load_dataset(metrics.get("recipe", {}).get("dataset", "mnist"), allow_download=allow_download)


def read_metrics(folder: Path) -> dict:
    path = Path(folder) / "metrics.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise TinyDigitsError(f"{path}: not valid JSON ({e})") from None


def load_run(folder: Path) -> Run:
    folder = Path(folder)
    if not folder.is_dir():
        raise TinyDigitsError(f"{folder}: no such run folder")
    model_path = folder / "model.keras"
    if not model_path.exists():
        raise TinyDigitsError(f"{folder}: not a run folder (no model.keras; train one with `tinydigits train --out {folder}`)")
    import keras

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as e:  # keras raises many types for a damaged archive
        raise TinyDigitsError(f"{model_path}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    return Run(folder, model, read_metrics(folder))
