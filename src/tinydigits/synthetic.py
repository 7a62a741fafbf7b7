"""Handwritten digits rendered three ways, to test preprocessing and models on pictures, not on MNIST's own crops.

Each 28x28 digit (MNIST *test* digits: writers the model never trained on) is drawn as a pen
stroke (the grey digit enlarged smoothly, its edge made sharp) and rendered as:

- `crop`:  white ink on black, enlarged and padded: what a canvas or a cropped scan gives;
- `ink`:   dark ink on white paper, a clean scan with margins;
- `photo`: a phone photo of that paper: a pen colour, ruled lines, the page's edge over a table,
  perspective and rotation, a lighting gradient, vignetting, a soft shadow, defocus, sensor noise
  and JPEG compression.

Everything comes from one `numpy.random.Generator`, so a seed gives the same pictures on every
machine (the JPEG encoder is Pillow's libjpeg, the warps OpenCV's).

    rng = np.random.default_rng(0)
    picture = render(mnist.x_test[0], "photo", rng)       # (H, W, 3) uint8 RGB
    write_image_folder(Path("photos"), images, labels, "photo", seed=0)   # photos/<digit>/0000.jpg
"""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .artifacts import write_bytes

RENDERINGS = ("crop", "ink", "photo")
PHOTO_SIZE = (480, 360)  # (height, width) of a photo, pixels: a phone picture, downsized
PEN_COLOURS = ((0.08, 0.10, 0.45), (0.10, 0.10, 0.12), (0.35, 0.35, 0.37), (0.05, 0.20, 0.30))  # blue, black, pencil, teal


def pen_stroke(digit: np.ndarray, height: int) -> np.ndarray:
    """(28, 28) uint8 digit -> (h, w) float32 ink coverage in [0, 1], the digit's 28 px frame scaled to `height`."""
    big = cv2.resize(digit.astype(np.float32) / 255, (height, height), interpolation=cv2.INTER_CUBIC)
    return np.clip((big - 0.3) / 0.3, 0, 1)  # a pen's sharp edge instead of MNIST's soft grey one


def render(digit: np.ndarray, rendering: str, rng: np.random.Generator) -> np.ndarray:
    """One picture of `digit`: (H, W) uint8 grey for crop and ink, (H, W, 3) uint8 RGB for photo."""
    if rendering == "crop":
        return crop(digit, rng)
    if rendering == "ink":
        return ink_on_paper(digit, rng)
    if rendering == "photo":
        return photo(digit, rng)
    raise ValueError(f"rendering must be one of {', '.join(RENDERINGS)}, got {rendering!r}")


def crop(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White on black, 2-6x larger than MNIST, with a random margin on each side."""
    size = int(rng.integers(56, 168))
    stroke = pen_stroke(digit, size)
    pad = rng.integers(0, size // 4 + 1, 4)
    return (np.pad(stroke, ((pad[0], pad[1]), (pad[2], pad[3]))) * 255).round().astype(np.uint8)


def ink_on_paper(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dark ink on off-white paper, as a flatbed scan: margins, a faint paper grain, no lighting."""
    size = int(rng.integers(80, 200))
    stroke = pen_stroke(digit, size)
    pad = rng.integers(size // 8, size // 2 + 1, 4)
    stroke = np.pad(stroke, ((pad[0], pad[1]), (pad[2], pad[3])))
    paper = rng.uniform(0.88, 0.98) + rng.normal(0, 0.01, stroke.shape)
    ink = rng.uniform(0.05, 0.3)
    return (np.clip(paper * (1 - stroke) + ink * stroke, 0, 1) * 255).round().astype(np.uint8)


def paper_sheet(digit: np.ndarray, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """(h, w, 3) float32 RGB paper with optional ruled lines and the digit in pen; and the digit's height."""
    h, w = size
    tint = rng.uniform(0.86, 0.98) * np.array([1.0, rng.uniform(0.97, 1.0), rng.uniform(0.90, 1.0)], np.float32)
    sheet = np.ones((h, w, 3), np.float32) * tint
    if rng.random() < 0.5:  # ruled paper: thin lines every 6-10% of the page, sometimes a margin line
        line = np.array([0.55, 0.70, 0.90], np.float32) * rng.uniform(0.7, 1.0)
        spacing = int(h * rng.uniform(0.06, 0.10))
        first = int(rng.integers(0, spacing))
        thickness = int(rng.integers(1, 3))
        for y in range(first, h, spacing):
            sheet[y:y + thickness] = sheet[y:y + thickness] * 0.3 + line * 0.7
        if rng.random() < 0.4:
            x = int(w * rng.uniform(0.08, 0.15))
            sheet[:, x:x + thickness + 1] = sheet[:, x:x + thickness + 1] * 0.3 + np.array([0.9, 0.4, 0.4]) * 0.7
    height = int(h * rng.uniform(0.22, 0.5))
    stroke = pen_stroke(digit, height)
    if rng.random() < 0.5:  # a finer or a broader pen than MNIST's
        k = np.ones((3, 3), np.uint8)
        stroke = cv2.erode(stroke, k) if rng.random() < 0.5 else cv2.dilate(stroke, k)
    top = int(np.clip(h / 2 - height / 2 + rng.uniform(-0.15, 0.15) * h, 0, h - height))
    left = int(np.clip(w / 2 - height / 2 + rng.uniform(-0.15, 0.15) * w, 0, w - height))
    pen = np.array(PEN_COLOURS[rng.integers(len(PEN_COLOURS))], np.float32)
    region = sheet[top:top + height, left:left + height]
    a = stroke[..., None] * rng.uniform(0.85, 1.0)
    sheet[top:top + height, left:left + height] = region * (1 - a) + pen * a
    return sheet, height


def lighting(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(h, w) float32 illumination: a gradient across the page, vignetting, and sometimes a soft shadow."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = y / h - 0.5, x / w - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    light = 1 - rng.uniform(0, 0.45) * (0.5 + np.cos(angle) * x + np.sin(angle) * y)
    light *= 1 - rng.uniform(0, 0.5) * (x ** 2 + y ** 2) * 2
    if rng.random() < 0.6:  # the phone's or the hand's shadow: a half-plane with a blurred edge
        a = rng.uniform(0, 2 * np.pi)
        edge = np.cos(a) * x + np.sin(a) * y - rng.uniform(0.1, 0.45)
        shadow = (edge > 0).astype(np.float32)
        shadow = cv2.GaussianBlur(shadow, (0, 0), rng.uniform(4, 25))
        light *= 1 - rng.uniform(0.25, 0.6) * shadow
    return light * rng.uniform(0.75, 1.1)


def photo(digit: np.ndarray, rng: np.random.Generator, size: tuple[int, int] = PHOTO_SIZE) -> np.ndarray:
    """A phone photo of the digit written on paper: (h, w, 3) uint8 RGB, JPEG-compressed."""
    h, w = size
    sheet, _ = paper_sheet(digit, rng, (h, w))
    # where the sheet's corners land: the whole frame (paper fills it) or inside it (the table shows),
    # each corner moved for perspective, the whole turned by up to 10 degrees
    inset = rng.uniform(-0.1, 0.12) if rng.random() < 0.5 else rng.uniform(-0.15, -0.05)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    centre = np.array([w / 2, h / 2], np.float32)
    target = centre + (corners - centre) * (1 - 2 * inset) + rng.uniform(-0.06, 0.06, (4, 2)).astype(np.float32) * [w, h]
    turn = np.radians(rng.uniform(-10, 10))
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]], np.float32)
    target = (centre + (target - centre) @ rotation.T).astype(np.float32)
    warp = cv2.getPerspectiveTransform(corners, target)
    paper = cv2.warpPerspective(sheet, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    on_paper = cv2.warpPerspective(np.ones((h, w), np.float32), warp, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    table = np.array([rng.uniform(0.15, 0.5), rng.uniform(0.12, 0.4), rng.uniform(0.08, 0.3)], np.float32)
    grain = cv2.GaussianBlur(rng.normal(0, 0.06, (h, w)).astype(np.float32), (0, 0), 2)[..., None]
    scene = paper * on_paper + (table + grain) * (1 - on_paper)
    scene *= lighting((h, w), rng)[..., None]
    sigma = rng.uniform(0, 1.3)
    if sigma > 0.3:
        scene = cv2.GaussianBlur(scene, (0, 0), sigma)
    scene += rng.normal(0, rng.uniform(0.005, 0.03), scene.shape).astype(np.float32)
    rgb = (np.clip(scene, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(rng.integers(40, 92)))
    return np.asarray(Image.open(buf).convert("RGB"))


def render_set(images: np.ndarray, rendering: str, seed: int = 0) -> list[np.ndarray]:
    """Every digit of `images` (N, 28, 28) rendered one way, from one seed: the same list on every call."""
    rng = np.random.default_rng([seed, RENDERINGS.index(rendering)])
    return [render(digit, rendering, rng) for digit in images]


def encoded(picture: np.ndarray, rendering: str) -> tuple[bytes, str]:
    """A picture as the file a person would have: PNG for crops and scans, the photo's own JPEG bytes re-saved."""
    buf = io.BytesIO()
    if rendering == "photo":
        Image.fromarray(picture).save(buf, format="JPEG", quality=92)
        return buf.getvalue(), ".jpg"
    Image.fromarray(picture).save(buf, format="PNG")
    return buf.getvalue(), ".png"


def write_image_folder(folder: Path, images: np.ndarray, labels: np.ndarray, rendering: str, seed: int = 0) -> list[Path]:
    """Render `images` and write them as FOLDER/<label>/<index>.png|jpg: the layout `evaluate --images` reads."""
    paths = []
    for i, (picture, label) in enumerate(zip(render_set(images, rendering, seed), labels)):
        data, suffix = encoded(picture, rendering)
        paths.append(write_bytes(Path(folder) / str(int(label)) / f"{i:04d}{suffix}", data))
    return paths
