"""Pictures in: any file a person has (PNG, JPEG, TIFF, GIF, WebP, ..., any PIL mode, 16-bit and float
scans, transparency, EXIF orientation) read as one lightness map in [0, 1], for preprocess.py.

    image = open_image("seven.jpg")        # PIL image, or one TinyDigitsError line naming the file
    gray = lightness(image)                # (H, W) float32 in [0, 1]
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import TinyDigitsError

MAX_PIXELS = 16_000_000  # an image larger is refused from its header, before it is decoded: a 16 MP photo
MAX_SIDE = 16_384        # ... and one longer than this on a side (a 40,000,000 x 1 strip costs seconds to scale)
FULL_SCALES = (1.0, 255.0, 65535.0)  # white in float, 8-bit and 16-bit images


def open_image(source) -> Image.Image:
    """Open a path, bytes or file object as a PIL image, with a one-line error if it is not one.

    Its size is checked from the header, before any pixel is decoded (MAX_PIXELS, MAX_SIDE); a path
    must name a regular file (a FIFO or /dev/zero would never end), read through symbolic links."""
    import io

    from .inputs import open_input

    name = str(source) if isinstance(source, (str, Path)) else "upload"
    opened = open_input(Path(source)) if isinstance(source, (str, Path)) else None
    try:
        with warnings.catch_warnings():  # PIL warns about damaged metadata it skips: the pixels are what count
            warnings.simplefilter("ignore")
            image = Image.open(opened or (io.BytesIO(source) if isinstance(source, bytes) else source))
            if image.width * image.height > MAX_PIXELS or max(image.size) > MAX_SIDE:
                raise TinyDigitsError(f"{name}: image too large ({image.width}x{image.height} pixels; at most "
                                      f"{MAX_PIXELS:,} pixels and {MAX_SIDE:,} on a side): scale it down first")
            image.load()
    except TinyDigitsError:
        raise
    except Exception as e:  # damaged files make decoders raise many types: OSError, ValueError, RuntimeError ...
        raise TinyDigitsError(f"{name}: not a readable image ({type(e).__name__})") from None
    finally:
        if opened is not None:
            opened.close()
    return image


def lightness(image: Image.Image) -> np.ndarray:
    """(H, W) float32 lightness in [0, 1] whatever the mode, colour or alpha; EXIF orientation applied.

    Transparent pixels become paper that contrasts with the visible strokes (dark strokes, white
    paper), so a drawing exported with a transparent background keeps its ink.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("La", "RGBa"):  # premultiplied alpha: PIL converts these only to their plain form
        image = image.convert(image.mode[:-1] + "A")
    with_alpha = image.mode in ("P", "PA", "LA") or "transparency" in image.info
    if with_alpha and not is_deep(image):  # a 16-bit image's transparent key value is its paper anyway
        image = image.convert("RGBA")
    if image.mode == "RGBA" and np.asarray(image)[..., 3].min() < 250:
        rgba = np.asarray(image).astype(np.float32) / 255
        alpha = rgba[..., 3]
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        paper = 1.0 if np.average(gray, weights=alpha + 1e-6) < 0.5 else 0.0
        return (alpha * gray + (1 - alpha) * paper).astype(np.float32)
    return gray_of(image)


def gray_of(image: Image.Image) -> np.ndarray:
    """(H, W) float32 lightness in [0, 1] of an image without alpha, in any PIL mode.

    16-bit, 32-bit and float images keep their depth: PIL's own conversion to 8-bit clips them at
    255, which turns a 16-bit scan into a white page. "I;16" is read on 0-65535; "I" and "F" on the
    smallest usual full scale that holds them (1.0, 255 or 65535), or their own range if negative.
    "LAB" and "HSV" give their lightness band.
    """
    if is_deep(image):
        values = np.nan_to_num(np.asarray(image).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        if low < 0:
            values = (values - low) / ((high - low) or 1.0)
        else:
            full = 65535.0 if image.mode.startswith("I;16") else next((s for s in FULL_SCALES if high <= s), high)
            values = values / full
        return values.astype(np.float32)
    if image.mode == "LAB":
        return np.asarray(image.getchannel(0)).astype(np.float32) / 255
    if image.mode == "HSV":
        return np.asarray(image.getchannel(2)).astype(np.float32) / 255
    try:
        return np.asarray(image.convert("L")).astype(np.float32) / 255
    except ValueError as e:  # a mode PIL cannot turn into gray
        raise TinyDigitsError(f"image mode {image.mode!r} is not supported ({e})") from None


def is_deep(image: Image.Image) -> bool:
    """16-bit, 32-bit integer or float pixels: more than PIL's 8-bit conversions keep."""
    return image.mode in ("I", "F") or image.mode.startswith("I;16")
