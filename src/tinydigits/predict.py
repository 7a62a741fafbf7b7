"""Ask a trained model what digit an image shows.

    probabilities = predict_digits(model, images)      # (N, 28, 28) uint8 -> (N, 10) float32
    results = predict_files(model, ["seven.png"])      # [{"file", "digit", "probabilities", "blank"}]
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .data import normalize
from .errors import TinyDigitsError
from .preprocess import is_blank, mnist_like, open_image


def model_input(model, images: np.ndarray) -> np.ndarray:
    """MNIST-like uint8 images -> the model's input: /255, in its shape ((N, 28, 28), (N, 28, 28, 1) or (N, 784))."""
    return normalize(np.asarray(images)).reshape(-1, *model.input_shape[1:])


def predict_digits(model, images: np.ndarray) -> np.ndarray:
    """Softmax probabilities for MNIST-like uint8 images, (N, 28, 28) -> (N, 10)."""
    return np.asarray(model.predict(model_input(model, images), batch_size=1000, verbose=0), np.float32)


def predict_files(model, paths: list, save_preprocessed: Path | None = None) -> list[dict]:
    """Preprocess each image file the way MNIST was made, then predict; optionally keep what the model saw.

    One entry per path, in order: {"file", "digit", "probabilities", "blank"} ("blank": no ink was
    found, so the digit is a guess), or {"file", "error"} for a file that is not a readable image:
    one bad file does not stop the others.
    """
    from PIL import Image

    from .artifacts import write_bytes

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
    return results


def format_probabilities(probabilities: np.ndarray, top: int = 10, class_names: list[str] | None = None) -> str:
    """One line per class, highest first, with a bar; `top` limits the lines."""
    names = class_names or [str(d) for d in range(len(probabilities))]
    order = np.argsort(-probabilities)[:top]
    return "\n".join(f"  {names[i]:>11}  {probabilities[i]:.4f}  {'#' * int(round(40 * probabilities[i]))}"
                     for i in order)
