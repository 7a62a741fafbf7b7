"""Ask a trained model what digit an image shows.

    probabilities = predict_digits(model, images)      # (N, 28, 28) uint8 -> (N, 10) float32
    results = predict_files(model, ["seven.png"])      # [{"file", "digit", "probabilities", "blank"}]
    predict_files(model, ["photo/0.jpg"], explain=Path("why"))  # + why/photo/0.explain.png: each step
    save_raw(mnist_like(open_image("seven.png")), Path("seven.raw"))   # 784 bytes for the C's main.c
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .artifacts import write_bytes
from .data import normalize
from .errors import TinyDigitsError
from .preprocess import is_blank, open_image, preprocess_steps


def model_input(model, images: np.ndarray) -> np.ndarray:
    """MNIST-like uint8 images -> the model's input: /255, in its shape ((N, 28, 28), (N, 28, 28, 1) or (N, 784))."""
    return normalize(np.asarray(images)).reshape(-1, *model.input_shape[1:])


def predict_digits(model, images: np.ndarray) -> np.ndarray:
    """Softmax probabilities for MNIST-like uint8 images, (N, 28, 28) -> (N, 10)."""
    return np.asarray(model.predict(model_input(model, images), batch_size=1000, verbose=0), np.float32)


def save_raw(image: np.ndarray, path: Path) -> Path:
    """A 28x28 uint8 image (ink bright, as MNIST) as 784 raw bytes, row by row: the input file that the
    generated C's main.c reads (`./tinydigits x.raw`) and quantizes itself, as the model does."""
    path = Path(path)
    if path.is_dir():
        raise TinyDigitsError(f"--save-raw {path}: is a folder; give a file name such as {path / 'digit.raw'}")
    try:
        return write_bytes(path, np.ascontiguousarray(image, np.uint8).reshape(28 * 28).tobytes())
    except OSError as e:
        raise TinyDigitsError(f"--save-raw {path}: cannot be written ({e.strerror or type(e).__name__})") from None


def kept_paths(paths: list) -> list[Path]:
    """Where each file's outputs go inside an output folder: its path below the folder that holds all
    the files, so photo/0.jpg and ink/0.png stay apart (and a single file is just its name)."""
    resolved = [Path(p).resolve() for p in paths]
    common = Path(os.path.commonpath([p.parent for p in resolved])) if resolved else Path()
    return [p.relative_to(common) for p in resolved]


def predict_files(model, paths: list, save_preprocessed: Path | None = None, explain: Path | None = None,
                  raw_file: Path | None = None) -> list[dict]:
    """Preprocess each image file the way MNIST was made, then predict; optionally keep what the model saw
    (`raw_file`: the first image's 784 raw bytes, see save_raw).

    One entry per path, in order: {"file", "digit", "probabilities", "blank"} ("blank": no ink was
    found, so the digit is a guess), or {"file", "error"} for a file that is not a readable image:
    one bad file does not stop the others. `save_preprocessed`: DIR/<path>.28x28.png, the 28x28;
    `explain`: DIR/<path>.explain.png, each preprocessing step beside the probabilities; <path> is the
    file's path below the folder holding all the files (kept_paths).
    """
    from PIL import Image

    from .artifacts import save_figure
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
    names = dict(zip([r["file"] for r in good], kept_paths([r["file"] for r in good])))
    for r, step, probs in zip(good, steps, probabilities):
        r.update(digit=int(probs.argmax()), probabilities=[round(float(x), 6) for x in probs], blank=is_blank(step.digit))
        name = names[r["file"]]
        if save_preprocessed is not None:
            buf = io.BytesIO()
            Image.fromarray(step.digit).save(buf, format="PNG")
            write_bytes(Path(save_preprocessed) / name.with_name(f"{name.stem}.28x28.png"), buf.getvalue())
        if explain is not None:
            figure = preprocessing_steps(step, probs, title=r["file"])
            r["explained"] = str(save_figure(figure, Path(explain) / name.with_name(f"{name.stem}.explain.png")))
    if raw_file is not None:
        save_raw(steps[0].digit, raw_file)
    return results


def format_probabilities(probabilities: np.ndarray, top: int = 10, class_names: list[str] | None = None) -> str:
    """One line per class, highest first, with a bar; `top` limits the lines."""
    names = class_names or [str(d) for d in range(len(probabilities))]
    order = np.argsort(-probabilities)[:top]
    return "\n".join(f"  {names[i]:>11}  {probabilities[i]:.4f}  {'#' * int(round(40 * probabilities[i]))}".rstrip()
                     for i in order)
