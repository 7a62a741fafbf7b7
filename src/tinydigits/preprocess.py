"""Turn any picture of a digit into what MNIST is made of: 28x28, white ink on black, centred.

MNIST's recipe (LeCun et al.): the ink's bounding box is scaled so its longer side is 20 pixels,
keeping the aspect ratio, with anti-aliasing, and placed in a 28x28 frame so that its centre of
mass sits at the centre. A model trained on MNIST only works on drawings prepared the same way.

The scaling is Pillow's classic separable resampling (Lanczos to shrink, bicubic to enlarge; 22-bit
fixed-point weights, horizontal pass then vertical) written out in `resample`, so that it does not
change with the Pillow version and static/preprocess.js can repeat it byte for byte in the browser.

    digit = mnist_like(Image.open("seven.png"))    # (28, 28) uint8, ink bright on 0
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import TinyDigitsError
from .model import IMAGE_SIZE

FRAME = IMAGE_SIZE  # output side, pixels: MNIST's
BOX = 20          # the ink's longer side after scaling, pixels
INK_LEVEL = 0.10  # fraction of the ink's full strength that counts as ink when cropping
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


def ink_map(image: Image.Image) -> np.ndarray:
    """(H, W) float32 ink strength in [0, 1] whatever the mode, colour, alpha or polarity."""
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
        # composite onto a paper contrasting with the visible strokes (dark ink -> white paper)
        ink_is_dark = np.average(gray, weights=alpha + 1e-6) < 0.5
        paper = 1.0 if ink_is_dark else 0.0
        gray = alpha * gray + (1 - alpha) * paper
    else:
        gray = gray_of(image)
    return ink_from_gray(gray)


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


def ink_from_gray(gray: np.ndarray) -> np.ndarray:
    """(H, W) gray in [0, 1], either polarity -> ink strength in [0, 1], ink bright."""
    # polarity: the border is paper; light paper means dark ink, which we flip to MNIST's light ink
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    ink = gray - background if background < 0.5 else background - gray
    peak = ink.max()
    if peak <= 0.05:
        return np.zeros_like(ink)
    return np.clip(ink / peak, 0, 1)


def mnist_like(image: Image.Image) -> np.ndarray:
    """(28, 28) uint8, MNIST's way: crop to the ink, longer side to 20 px, centre of mass centred."""
    return frame_ink(ink_map(image))


def frame_ink(ink: np.ndarray) -> np.ndarray:
    """Ink strength map -> (28, 28) uint8: crop to the ink, longer side to 20 px, centre of mass centred."""
    rows = np.flatnonzero((ink > INK_LEVEL).any(axis=1))
    cols = np.flatnonzero((ink > INK_LEVEL).any(axis=0))
    if not len(rows):
        return np.zeros((FRAME, FRAME), np.uint8)  # a blank page: nothing to see
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    box = resample((crop * 255).astype(np.uint8), size, lanczos if max(h, w) > BOX else bicubic)
    return centre_by_mass(box.astype(np.float32))


# ---- Pillow's resampling (libImaging/Resample.c, 8-bit images), written out ---------------------
PRECISION_BITS = 22  # fixed-point fraction bits of the weights


def lanczos(x: np.ndarray) -> np.ndarray:
    """Lanczos-3 kernel (support 3)."""
    return np.where((-3 <= x) & (x < 3), np.sinc(x) * np.sinc(x / 3), 0.0)


def bicubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel with a = -0.5 (support 2)."""
    a, x = -0.5, np.abs(x)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


SUPPORT = {lanczos: 3.0, bicubic: 2.0}


def resample_weights(in_size: int, out_size: int, kernel) -> np.ndarray:
    """(out_size, in_size) int64 fixed-point weights of one resampling pass."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    reach = SUPPORT[kernel] * filter_scale
    weights = np.zeros((out_size, in_size), np.int64)
    for o in range(out_size):
        centre = (o + 0.5) * scale
        lo = max(int(centre - reach + 0.5), 0)
        hi = min(int(centre + reach + 0.5), in_size)
        w = kernel((np.arange(lo, hi) - centre + 0.5) * (1.0 / filter_scale))
        total = sum(w.tolist())  # left to right, as the C loop adds them
        w = w / total if total != 0 else w
        weights[o, lo:hi] = [int(v * (1 << PRECISION_BITS) + (0.5 if v >= 0 else -0.5)) for v in w.tolist()]
    return weights


def resample(image: np.ndarray, size: tuple[int, int], kernel) -> np.ndarray:
    """(h, w) uint8 -> (rows, cols) uint8: a horizontal pass, then a vertical one, each only if needed."""
    def apply(weights, pixels):  # integer sums, rounded, clipped to 0-255
        acc = pixels.astype(np.int64) @ weights.T + (1 << (PRECISION_BITS - 1))
        return np.clip(acc >> PRECISION_BITS, 0, 255).astype(np.uint8)

    out = image
    if size[1] != image.shape[1]:
        out = apply(resample_weights(image.shape[1], size[1], kernel), out)
    if size[0] != image.shape[0]:
        out = apply(resample_weights(image.shape[0], size[0], kernel), out.T).T
    return np.ascontiguousarray(out)


def centre_by_mass(box: np.ndarray) -> np.ndarray:
    """Place a (h, w) ink box (h, w <= 20) in a 28x28 frame with its centre of mass at the centre."""
    h, w = box.shape
    total = box.sum()
    cy = (box.sum(axis=1) @ np.arange(h)) / total if total else (h - 1) / 2
    cx = (box.sum(axis=0) @ np.arange(w)) / total if total else (w - 1) / 2
    top = int(round(FRAME / 2 - cy))  # MNIST puts the centre of mass at pixel (14, 14)
    left = int(round(FRAME / 2 - cx))
    top = min(max(top, 0), FRAME - h)   # never push ink out of the frame
    left = min(max(left, 0), FRAME - w)
    frame = np.zeros((FRAME, FRAME), np.float32)
    frame[top:top + h, left:left + w] = box
    return np.round(frame).astype(np.uint8)


def is_blank(digit: np.ndarray) -> bool:
    """True when preprocessing found no ink (a blank page, or one too faint to tell from the paper)."""
    return not np.asarray(digit).any()


def preprocess_pixels(pixels: np.ndarray) -> np.ndarray:
    """784 values or a 28x28 grid from a canvas, light ink on dark, 0-1 or 0-255 -> MNIST-like uint8."""
    grid = np.asarray(pixels, np.float32).reshape(FRAME, FRAME)
    if grid.max() > 1.0:
        grid = grid / 255
    return frame_ink(ink_from_gray(np.clip(grid, 0, 1)))
