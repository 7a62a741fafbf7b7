"""Ask a trained model what digit an image shows.

    probabilities = predict_digits(model, images)      # (N, 28, 28) uint8 -> (N, 10) float32
    results = predict_files(model, ["seven.png"])      # [{"file", "digit", "probabilities", "blank"}]
    predict_files(model, ["photo/0.jpg"], explain=Path("why"))  # + why/photo/0.explain.png: each step
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .data import normalize
from .errors import TinyDigitsError
from .preprocess import is_blank, open_image, preprocess_steps


def predict_digits(model, images: np.ndarray) -> np.ndarray:
    """Softmax probabilities for MNIST-like uint8 images, (N, 28, 28) -> (N, 10)."""
    images = np.asarray(images).reshape(-1, 28, 28)
    return np.asarray(model.predict(normalize(images), batch_size=1000, verbose=0), np.float32)


def kept_path(path: Path) -> Path:
    """Where a file's outputs go inside an output folder: its path as given, so photo/0.jpg and
    ink/0.png stay apart; an absolute path relative to the current folder when it is inside it, else
    without its root; no '..'."""
    path = Path(path)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            path = Path(*path.parts[1:])
    return Path(*[p for p in path.parts if p not in ("..", ".")])


def predict_files(model, paths: list, save_preprocessed: Path | None = None, explain: Path | None = None) -> list[dict]:
    """Preprocess each image file the way MNIST was made, then predict; optionally keep what the model saw.

    One entry per path, in order: {"file", "digit", "probabilities", "blank"} ("blank": no ink was
    found, so the digit is a guess), or {"file", "error"} for a file that is not a readable image:
    one bad file does not stop the others. `save_preprocessed`: DIR/<path>.28x28.png, the 28x28;
    `explain`: DIR/<path>.explain.png, each preprocessing step beside the probabilities.
    """
    from PIL import Image

    from .artifacts import save_figure, write_bytes
    from .plots import preprocessing_steps

    results, steps = [], []
    for path in paths:
        try:
            steps.append(preprocess_steps(open_image(path)))
            results.append({"file": str(path)})
        except TinyDigitsError as e:
            results.append({"file": str(path), "error": str(e)})
    good = [r for r in results if "error" not in r]
    if not good:
        return results
    probabilities = predict_digits(model, np.stack([s.digit for s in steps]))
    for r, step, probs in zip(good, steps, probabilities):
        r.update(digit=int(probs.argmax()), probabilities=[round(float(x), 6) for x in probs], blank=is_blank(step.digit))
        name = kept_path(Path(r["file"]))
        if save_preprocessed is not None:
            buf = io.BytesIO()
            Image.fromarray(step.digit).save(buf, format="PNG")
            write_bytes(Path(save_preprocessed) / name.with_name(f"{name.stem}.28x28.png"), buf.getvalue())
        if explain is not None:
            figure = preprocessing_steps(step, probs, title=r["file"])
            r["explained"] = str(save_figure(figure, Path(explain) / name.with_name(f"{name.stem}.explain.png")))
    return results


def format_probabilities(probabilities: np.ndarray, top: int = 10, class_names: list[str] | None = None) -> str:
    """One line per class, highest first, with a bar; `top` limits the lines."""
    names = class_names or [str(d) for d in range(len(probabilities))]
    order = np.argsort(-probabilities)[:top]
    return "\n".join(f"  {names[i]:>11}  {probabilities[i]:.4f}  {'#' * int(round(40 * probabilities[i]))}"
                     for i in order)
