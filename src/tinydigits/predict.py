"""Ask a trained model what digit an image shows.

    probabilities = predict_digits(model, images)      # (N, 28, 28) uint8 -> (N, 10) float32
    results = predict_files(model, ["seven.png"])      # [{"file", "digit", "probabilities", "blank"}]
    save_raw(mnist_like(open_image("seven.png")), Path("seven.raw"))   # 784 bytes for the C's main.c
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .artifacts import write_bytes
from .data import normalize
from .errors import TinyDigitsError
from .preprocess import is_blank, mnist_like, open_image


def predict_digits(model, images: np.ndarray) -> np.ndarray:
    """Softmax probabilities for MNIST-like uint8 images, (N, 28, 28) -> (N, 10)."""
    images = np.asarray(images).reshape(-1, 28, 28)
    return np.asarray(model.predict(normalize(images), batch_size=1000, verbose=0), np.float32)


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


def predict_files(model, paths: list, save_preprocessed: Path | None = None, raw_file: Path | None = None) -> list[dict]:
    """Preprocess each image file the way MNIST was made, then predict; optionally keep what the model saw
    (`save_preprocessed`: a folder of 28x28 PNGs; `raw_file`: the first image's 784 raw bytes, see save_raw).

    One entry per path, in order: {"file", "digit", "probabilities", "blank"} ("blank": no ink was
    found, so the digit is a guess), or {"file", "error"} for a file that is not a readable image:
    one bad file does not stop the others.
    """
    from PIL import Image

    results, digits = [], []
    for path in paths:
        try:
            digits.append(mnist_like(open_image(path)))
            results.append({"file": str(path)})
        except TinyDigitsError as e:
            results.append({"file": str(path), "error": str(e)})
    good = [r for r in results if "error" not in r]
    if not good:
        return results
    probabilities = predict_digits(model, np.stack(digits))
    for r, digit, probs in zip(good, digits, probabilities):
        r.update(digit=int(probs.argmax()), probabilities=[round(float(x), 6) for x in probs], blank=is_blank(digit))
        if save_preprocessed is not None:
            buf = io.BytesIO()
            Image.fromarray(digit).save(buf, format="PNG")
            write_bytes(Path(save_preprocessed) / f"{Path(r['file']).stem}.28x28.png", buf.getvalue())
    if raw_file is not None:
        save_raw(digits[0], raw_file)
    return results


def format_probabilities(probabilities: np.ndarray, top: int = 10, class_names: list[str] | None = None) -> str:
    """One line per class, highest first, with a bar; `top` limits the lines."""
    names = class_names or [str(d) for d in range(len(probabilities))]
    order = np.argsort(-probabilities)[:top]
    return "\n".join(f"  {names[i]:>11}  {probabilities[i]:.4f}  {'#' * int(round(40 * probabilities[i]))}".rstrip()
                     for i in order)
