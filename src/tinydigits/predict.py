"""Ask a trained model what digit an image shows.

    probabilities = predict_digits(model, images)      # (N, 28, 28) uint8 -> (N, 10) float32
    results = predict_files(model, ["seven.png"])      # [{"file", "digit", "probabilities"}]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import normalize
from .preprocess import mnist_like, open_image


def predict_digits(model, images: np.ndarray) -> np.ndarray:
    """Softmax probabilities for MNIST-like uint8 images, (N, 28, 28) -> (N, 10)."""
    images = np.asarray(images).reshape(-1, 28, 28)
    return np.asarray(model.predict(normalize(images), batch_size=1000, verbose=0), np.float32)


def predict_files(model, paths: list, save_preprocessed: Path | None = None) -> list[dict]:
    """Preprocess each image file the way MNIST was made, then predict; optionally keep what the model saw."""
    from PIL import Image

    from .artifacts import write_bytes

    digits = np.stack([mnist_like(open_image(p)) for p in paths])
    probabilities = predict_digits(model, digits)
    if save_preprocessed is not None:
        import io

        for path, digit in zip(paths, digits):
            buf = io.BytesIO()
            Image.fromarray(digit).save(buf, format="PNG")
            write_bytes(Path(save_preprocessed) / f"{Path(path).stem}.28x28.png", buf.getvalue())
    return [{"file": str(p), "digit": int(probs.argmax()), "probabilities": [round(float(x), 6) for x in probs]}
            for p, probs in zip(paths, probabilities)]


def format_probabilities(probabilities: np.ndarray, top: int = 10, class_names: list[str] | None = None) -> str:
    """One line per class, highest first, with a bar; `top` limits the lines."""
    names = class_names or [str(d) for d in range(len(probabilities))]
    order = np.argsort(-probabilities)[:top]
    return "\n".join(f"  {names[i]:>11}  {probabilities[i]:.4f}  {'#' * int(round(40 * probabilities[i]))}"
                     for i in order)
