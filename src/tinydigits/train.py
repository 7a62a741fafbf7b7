"""Train a recipe and write a run folder.

A run folder (see runs.py, which reads it back) is what every later stage reads: `model.keras`, `history.json` (per-epoch lists of
loss, accuracy, val_loss, val_accuracy; "val" is the test set, as in the lesson, unless the recipe
holds out a validation split), `metrics.json` (test accuracy and loss, parameters, training time,
recipe, dataset, versions) and `curves.png` (the lesson's "model accuracy" and "model loss").

    result = train(Recipe(), load_dataset("mnist"))
    save_run(result, Path("runs/lesson"))

Training runs on Keras' JAX backend when tinydigits picks the backend (see `tinydigits/__init__.py`):
the same recipe, batch 32 and 20 epochs, compiled with XLA and 200 steps per call, is about 8x
faster on two CPU cores than the lesson's code on the TensorFlow backend. `train` asks XLA for one
CPU thread first (`tinydigits.single_thread_xla`; it has no effect once JAX has computed).
"""
from __future__ import annotations

import html
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import single_thread_xla
from .artifacts import save_figure, staged_folder, write_bytes, write_json
from .data import Dataset, normalize
from .interrupt import check as check_interrupt
from .model import Recipe, build_model, compile_model
from .runs import RUN_FILES

STEPS_PER_EXECUTION = 200  # batches per compiled call: removes Python overhead, same updates
VALIDATION_BATCH = 1000    # evaluation only: the batch size changes the speed, not the numbers


@dataclass
class TrainResult:
    model: object          # keras.Model
    recipe: Recipe
    history: dict          # metric name -> per-epoch list
    metrics: dict          # what metrics.json holds

    def __repr__(self):
        return f"TrainResult({summary_line(self)}, {len(self.history['loss'])} epochs)"

    def _repr_html_(self) -> str:
        """A notebook cell's view: the summary, then the first and last epoch of each metric."""
        keys = list(self.history)
        last = len(self.history["loss"])
        rows = "".join(f"<tr><td>{e}</td>" + "".join(f"<td>{self.history[k][e - 1]:.4f}</td>" for k in keys) + "</tr>"
                       for e in sorted({1, last}))
        return (f"<p><b>TrainResult</b> {html.escape(summary_line(self))}</p><table><tr><th>epoch</th>"
                + "".join(f"<th>{k}</th>" for k in keys) + f"</tr>{rows}</table>")


def split_train(ds: Dataset, validation_split: float):
    """(x_train, y_train, x_val, y_val): the last `validation_split` of the training images held out."""
    n_val = int(round(len(ds.x_train) * validation_split))
    cut = len(ds.x_train) - n_val
    return ds.x_train[:cut], ds.y_train[:cut], ds.x_train[cut:], ds.y_train[cut:]


def train(recipe: Recipe, ds: Dataset, verbose: int = 1, callbacks=()) -> TrainResult:
    """Fit `recipe` on `ds`; validate per epoch on the test set (or the held-out split)."""
    single_thread_xla()  # before Keras first touches JAX; no effect once XLA has started
    import keras

    keras.utils.set_random_seed(recipe.seed)
    x_train, y_train, x_val, y_val = split_train(ds, recipe.validation_split)
    if not len(x_val):
        x_val, y_val = ds.x_test, ds.y_test
    model = compile_model(build_model(recipe), recipe, STEPS_PER_EXECUTION)
    # Ctrl-C stops training at the next step even when its KeyboardInterrupt was swallowed (see interrupt.py)
    stop_on_ctrl_c = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: check_interrupt(),
                                                    on_epoch_end=lambda epoch, logs: check_interrupt())
    start = time.perf_counter()
    fit = model.fit(normalize(x_train), y_train, epochs=recipe.epochs, batch_size=recipe.batch_size,
                    validation_data=(normalize(x_val), y_val), validation_batch_size=VALIDATION_BATCH,
                    verbose=verbose, callbacks=[stop_on_ctrl_c, *callbacks])
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
    scores = model.evaluate(normalize(ds.x_test), ds.y_test, batch_size=1000, verbose=0, return_dict=True)
    test_loss, test_accuracy = scores["loss"], scores["accuracy"]
    metrics = {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "params": int(model.count_params()),
        "train_seconds": round(seconds, 2),
        "recipe": recipe.to_dict(),
        "dataset": {"name": ds.name, "folder": str(ds.folder), "data_dir": str(ds.folder) if ds.custom else None,
                    "train": len(x_train),
                    "validation": len(x_val) if recipe.validation_split else 0, "test": len(ds.x_test)},
        "versions": versions(),
    }
    return TrainResult(model, recipe, history, metrics)


def versions() -> dict:
    import keras

    return {"python": platform.python_version(), "numpy": np.__version__, "keras": keras.__version__,
            "backend": keras.backend.backend()}


def save_run(result: TrainResult, run_dir: Path, force: bool = False, int8_model: bytes | None = None,
             command: str = "") -> Path:
    """Write the run folder atomically (with `int8_model`, also its model_int8.tflite, as search's best/ does).

    An existing folder is replaced only with `force`, and only if tinydigits wrote it.
    """
    from .plots import training_curves

    run_dir = Path(run_dir)
    with staged_folder(run_dir, "run", command or "tinydigits.train.save_run", force) as tmp:
        result.model.save(tmp / RUN_FILES.model)
        write_json(tmp / RUN_FILES.history, result.history)
        write_json(tmp / RUN_FILES.metrics, result.metrics)
        save_figure(training_curves(result.history, title=result.recipe.name), tmp / RUN_FILES.curves)
        if int8_model is not None:
            write_bytes(tmp / RUN_FILES.int8_model, int8_model)
    return run_dir


def summary_line(result: TrainResult, run_dir: Path | None = None) -> str:
    m = result.metrics
    where = f" -> {run_dir}" if run_dir else ""
    return (f"{result.recipe.name}: test accuracy {m['test_accuracy']:.4f}, test loss {m['test_loss']:.4f}, "
            f"{m['params']:,} params, {m['train_seconds']:.1f} s{where}")
