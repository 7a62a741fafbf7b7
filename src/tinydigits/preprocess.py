"""Turn any picture of a digit (a drawing, a scan, a phone photo of paper) into what MNIST is made of.

MNIST's recipe (LeCun et al.): the writer's black-and-white digit is scaled so that its longer
side is 20 pixels, keeping the aspect ratio, anti-aliased to grey levels, and placed in a 28x28
frame with its centre of mass at the centre. A photo first has to become that black-and-white
digit. The steps, each one function below (OpenCV does the image work), and what each is for:

 1. `images.lightness`: grey in [0, 1] from any PIL mode, EXIF orientation applied, alpha
    composited; then `work_size`: the longer side brought to WORK_SIDE pixels, so every threshold
    is relative.
 2. `remove_background`: the paper's own brightness, estimated by a morphological closing with a
    window larger than any pen stroke (it erases the strokes and keeps gradients, vignetting and
    shadows), divided out; the ink's polarity is the one whose thin features hold more contrast
    (black top-hat against white top-hat), so a white-on-black canvas and a photo both work.
 3. `binarize`: Otsu's threshold of the ink strength, never below INK_FLOOR.
 4. `remove_lines`: ruled lines (straight, thin, across at least half the picture, at any angle up
    to MAX_LINE_ANGLE) are found by projecting the ink along each angle, and their pixels removed
    where no stroke crosses them.
 5. `pick_digit`: the largest connected component that is not a speck and does not run along the
    picture's edge (the page's edge over a table, a strip of shadow), with the components near it
    (a 5's detached bar, a 4 drawn in two strokes).
 6. `frame_digit`: the digit's ink cropped and scaled to a 4x MNIST box (80 px); slant removed by
    image moments (`deskew`), the stroke width brought into MNIST's range (`fit_stroke`); then
    averaged down 4x to the 20-pixel box (MNIST's anti-aliasing) and placed by its centre of mass.

static/preprocess.js repeats these steps in the browser (tests/test_web.py holds it to this file).

    digit = mnist_like(Image.open("seven.jpg"))    # (28, 28) uint8, ink bright on 0
    steps = preprocess_steps(Image.open("seven.jpg"))  # every intermediate image, for --explain
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from .images import lightness, open_image  # noqa: F401  (open_image: read a file, then preprocess it)
from .model import IMAGE_SIZE

FRAME = IMAGE_SIZE      # output side, pixels: MNIST's
BOX = 20                # the digit's longer side in the frame, pixels
FINE = 4                # the digit is shaped at FINE x BOX pixels, then averaged down FINE x FINE
WORK_SIDE = 256         # pixels: the longer side every picture is brought to before the steps
POLARITY_WINDOWS = (0.02, 0.04, 0.08, 0.16)  # of the longer side: the top-hats ink_is_light compares
BACKGROUND_WINDOW = 0.25  # of the longer side: the closing's first window, wider than any stroke
PEN_WINDOW = 3.0        # then the window is this many pen widths (shadows are followed closer) ...
MIN_WINDOW = 0.05       # ... but at least this share of the longer side
INK_FLOOR = 0.2         # ink strength (1 - pixel / paper) below which nothing is ink, whatever Otsu says
BLANK_INK = 0.15        # a picture whose strongest ink is fainter than this is blank paper
LINE_SPAN = 0.5         # a ruled line crosses at least this share of the picture
MAX_LINE_ANGLE = 12.0   # degrees: the page's turn and perspective in a hand-held photo
LINE_ANGLE_STEP = 0.5   # degrees between the projections tried
MAX_LINE_WIDTH = 0.016  # of the longer side: thicker runs are strokes crossing the line, and are kept
SPECK = 0.0003          # of the picture's area: smaller components are dust, noise or JPEG blocks
EDGE_CONTACT = 0.15     # of the longer side: a component touching the edges over more is paper edge or table
NEAR = 0.3              # of the digit's size: components this close join the digit
JOIN_AREA = 0.06        # ... if their area is at least this share of the digit's (a ruled line's stub is less)
SLANT_RANGE = (-0.62, 0.31)  # columns per row: MNIST's 5th-95th percentile of slant (bench/handwriting.py)
STROKE_RANGE = (0.096, 0.203)  # stroke width / longer side: MNIST's 5th-95th percentile (bench/handwriting.py)


@dataclass
class Steps:
    """What each step made, at work size unless said: for `predict --explain` and the notebook."""
    gray: np.ndarray          # (H, W) float32 lightness in [0, 1]
    ink: np.ndarray           # (H, W) float32 ink strength in [0, 1], background removed, ink bright
    binary: np.ndarray        # (H, W) bool, thresholded, ruled lines and specks out
    chosen: np.ndarray        # (H, W) bool, the components taken as the digit
    shaped: np.ndarray        # (FINE*h, FINE*w) float32: the cropped digit deskewed, stroke fitted
    digit: np.ndarray         # (28, 28) uint8: what the model sees
    light_ink: bool           # the picture was light ink on dark (a canvas) rather than dark on light
    threshold: float          # the ink strength binarize used
    lines: int                # ruled lines found
    stroke: float             # stroke width / longer side before fit_stroke (0 if blank)


# ---- 1. reading (images.py) and the working size -----------------------------------------------

def work_size(gray: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """The longer side to `side` pixels: area-averaged when shrinking (noise averages out), bilinear when growing."""
    h, w = gray.shape
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


# ---- 2-3. paper and ink -------------------------------------------------------------------------

def square(side: int) -> np.ndarray:
    return np.ones((side, side), np.uint8)


def ink_is_light(gray: np.ndarray) -> bool:
    """Whether the ink is lighter than its paper: which polarity holds more thin features.

    A white top-hat (gray - opening) keeps the light features narrower than its window, a black
    top-hat (closing - gray) the dark ones. Pen strokes are the thinnest features of a picture;
    the bands of paper between ruled lines, a lit strip beside a shadow or a canvas's margins are
    wider. So the two are compared at several windows, each weighted by 1 / window area: the
    narrow windows, where only strokes show, count most.
    """
    score = 0.0
    for fraction in POLARITY_WINDOWS:
        side = max(3, round(fraction * max(gray.shape)) | 1)
        light = gray - cv2.morphologyEx(gray, cv2.MORPH_OPEN, square(side))
        dark = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, square(side)) - gray
        score += (float(light.sum()) - float(dark.sum())) / side ** 2
    return score > 0


def remove_background(gray: np.ndarray, window: float = BACKGROUND_WINDOW) -> np.ndarray:
    """Dark ink on light paper (work size) -> ink strength in [0, 1], ink bright.

    paper = closing(gray) with a square `window` (a share of the longer side) wider than the pen:
    the strokes are erased, gradients, vignetting and shadows wider than the window are kept.
    ink = 1 - gray / paper: a shadow multiplies paper and ink alike, and divides out.
    """
    side = max(3, round(window * max(gray.shape)) | 1)
    paper = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, square(side))
    return np.clip(1 - gray / np.maximum(paper, 1 / 255), 0, 1).astype(np.float32)


def pen_width(chosen: np.ndarray) -> float:
    """The typical stroke width of a mask, pixels: twice the median distance to the edge along the
    strokes' middles (the distance transform's ridge), less the centre pixel."""
    distance = cv2.distanceTransform(chosen.astype(np.uint8), cv2.DIST_L2, 3)
    ridge = chosen & (distance >= cv2.dilate(distance, square(3)))
    return float(2 * np.median(distance[ridge]) - 1) if ridge.any() else 1.0


def binarize(ink: np.ndarray) -> tuple[np.ndarray, float]:
    """Ink strength -> (bool mask, the threshold used): Otsu's, but never below INK_FLOOR."""
    levels = np.round(ink * 255).astype(np.uint8)
    otsu, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(float(otsu), INK_FLOOR * 255)
    return levels > threshold, threshold / 255


def vertical_runs(mask: np.ndarray) -> np.ndarray:
    """(H, W) int32: for each ink pixel, the length of the vertical run of ink it belongs to."""
    h = mask.shape[0]
    down, up = np.zeros(mask.shape, np.int32), np.zeros(mask.shape, np.int32)
    for y in range(h):
        down[y] = mask[y] * ((down[y - 1] if y else 0) + 1)
        up[h - 1 - y] = mask[h - 1 - y] * ((up[h - y] if y else 0) + 1)
    return np.where(mask, down + up - 1, 0)


def line_pixels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Pixels of straight lines nearly along the rows that cross LINE_SPAN of the width, and how many lines.

    For each angle, every ink pixel votes for the line through it at that angle (its row where the
    line crosses the middle column); a line is a vote count of at least LINE_SPAN * width.
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    on_line = np.zeros(mask.shape, bool)
    found = set()
    if not len(ys):
        return on_line, 0
    reach = int(np.ceil(w / 2 * np.tan(np.radians(MAX_LINE_ANGLE)))) + 2
    for angle in np.arange(-MAX_LINE_ANGLE, MAX_LINE_ANGLE + 1e-9, LINE_ANGLE_STEP):
        rows = np.floor(ys - (xs - w / 2) * np.tan(np.radians(angle)) + 0.5).astype(np.int64) + reach
        votes = np.bincount(rows, minlength=h + 2 * reach + 1)
        lines = np.flatnonzero(votes >= LINE_SPAN * w)
        if len(lines):
            found.update(int(r - reach) for r in lines if votes[r] >= votes[max(r - 1, 0)] and votes[r] >= votes[r + 1])
            near = np.zeros(len(votes) + 1, bool)
            near[lines] = near[lines - 1] = near[lines + 1] = True
            on_line[ys[near[rows]], xs[near[rows]]] = True
    return on_line, len({r // 3 for r in found})


def remove_lines(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The mask without ruled lines (along rows or columns) where they are thin: a stroke crossing one stays."""
    thin = max(2, round(MAX_LINE_WIDTH * max(mask.shape)))
    rows, n_rows = line_pixels(mask)
    cols, n_cols = line_pixels(mask.T)
    lines = (rows & (vertical_runs(mask) <= thin)) | (cols & (vertical_runs(mask.T) <= thin)).T
    return mask & ~lines, n_rows + n_cols


# ---- 5. which ink is the digit --------------------------------------------------------------------

def pick_digit(mask: np.ndarray) -> np.ndarray | None:
    """The digit's pixels: the largest component that is no speck and does not run along the edge,
    plus the components near it; None when there is none."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count < 2:
        return None
    h, w = mask.shape
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    along_edge = np.bincount(edge, minlength=count) > EDGE_CONTACT * max(h, w)
    usable = (area >= max(2, SPECK * h * w)) & ~along_edge
    usable[0] = False
    if not usable.any():
        return None
    main = int(np.argmax(np.where(usable, area, -1)))
    x0, y0 = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    x1, y1 = x0 + stats[:, cv2.CC_STAT_WIDTH], y0 + stats[:, cv2.CC_STAT_HEIGHT]
    chosen = np.zeros(count, bool)
    chosen[main] = True
    for _ in range(3):  # grow the group: a component near the group joins it
        box = (x0[chosen].min(), y0[chosen].min(), x1[chosen].max(), y1[chosen].max())
        margin = NEAR * max(box[2] - box[0], box[3] - box[1])
        near = (x0 < box[2] + margin) & (x1 > box[0] - margin) & (y0 < box[3] + margin) & (y1 > box[1] - margin)
        grown = chosen | (near & usable & (area >= JOIN_AREA * area[main]))
        if (grown == chosen).all():
            break
        chosen = grown
    return chosen[labels]


# ---- 6. MNIST's framing -------------------------------------------------------------------------

def fit_box(image: np.ndarray, side: int) -> np.ndarray:
    """Crop to the ink (> 0) and scale so the longer side is `side`, keeping the aspect ratio, in whole
    FINE-pixel steps (so that averaging FINE x FINE gives the box exactly)."""
    rows, cols = np.flatnonzero(image.max(axis=1) > 0), np.flatnonzero(image.max(axis=0) > 0)
    image = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = image.shape
    scale = side / FINE / max(h, w)
    size = (FINE * max(1, round(w * scale)), FINE * max(1, round(h * scale)))
    shrink = size[0] <= w and size[1] <= h  # OpenCV averages areas only when no side grows
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def slant(image: np.ndarray) -> float:
    """Columns of drift per row of the ink (mu11 / mu02 of the image moments): 0 for an upright digit."""
    m = cv2.moments(image)
    return m["mu11"] / m["mu02"] if m["mu02"] > 1e-6 else 0.0


def deskew(image: np.ndarray) -> np.ndarray:
    """Shear the digit along its rows so that its slant, by image moments, falls in SLANT_RANGE.

    MNIST's writers slant too, and a model trained on them reads slanted digits best: only the
    slant beyond theirs (a page photographed turned, an unusual hand) is taken out.
    """
    measured = slant(image)
    skew = measured - float(np.clip(measured, *SLANT_RANGE))
    if abs(skew) < 1e-3:
        return image
    h, w = image.shape
    pad = int(np.ceil(abs(skew) * h / 2)) + 1
    m = cv2.moments(image)
    cy = m["m01"] / m["m00"]
    shear = np.float32([[1, skew, -pad - skew * cy], [0, 1, 0]])  # output pixel -> where it reads from
    return cv2.warpAffine(image, shear, (w + 2 * pad, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0)


def stroke_width(image: np.ndarray) -> float:
    """Mean stroke width of a shaped digit, pixels: from the distance of its inside to its edge."""
    inside = np.pad(image > 0.5, 1).astype(np.uint8)  # the edge of the crop is an edge of the stroke
    if not inside.any():
        return 0.0
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    return float(4 * distance[inside > 0].mean() - 2)  # a band of width w: distances 1 .. w/2, mean (w+2)/4


def fit_stroke(image: np.ndarray, width: float) -> np.ndarray:
    """Dilate or erode the shaped digit so that its stroke width / longer side falls in STROKE_RANGE."""
    side = max(image.shape)
    share = float(np.clip(width / side, *STROKE_RANGE))
    radius = int(round((share * side - width) / 2 / (1 - share)))  # the box grows by 2 radius too: (w+2r)/(s+2r) = share
    if radius == 0:
        return image
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(radius) + 1, 2 * abs(radius) + 1))
    padded = np.pad(image, max(radius, 0))
    return cv2.dilate(padded, disc) if radius > 0 else cv2.erode(padded, disc)


def centre_by_mass(box: np.ndarray) -> np.ndarray:
    """Place a (h, w) ink box (h, w <= 20) in a 28x28 frame with its centre of mass at the centre."""
    h, w = box.shape
    total = box.sum()
    cy = (box.sum(axis=1) @ np.arange(h)) / total if total else (h - 1) / 2
    cx = (box.sum(axis=0) @ np.arange(w)) / total if total else (w - 1) / 2
    top = min(max(int(np.floor(FRAME / 2 - cy + 0.5)), 0), FRAME - h)  # MNIST: centre of mass at (14, 14)
    left = min(max(int(np.floor(FRAME / 2 - cx + 0.5)), 0), FRAME - w)
    frame = np.zeros((FRAME, FRAME), np.uint8)
    frame[top:top + h, left:left + w] = box
    return frame


def frame_digit(ink: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The chosen ink -> (the shaped FINE x box, the 28x28 uint8, the stroke width / side before fitting)."""
    strokes = ink[chosen]
    full = float(np.median(strokes)) if len(strokes) else 1.0  # a stroke's core: full ink, as MNIST's 255
    edge = cv2.dilate(chosen.astype(np.uint8), square(3)) > 0  # the strokes' anti-aliased rims too
    digit = np.where(edge, np.clip(ink / max(full, 1e-6), 0, 1), 0).astype(np.float32)
    shaped = fit_box(deskew(fit_box(digit, FINE * BOX)), FINE * BOX)
    width = stroke_width(shaped)
    shaped = fit_box(fit_stroke(shaped, width), FINE * BOX)
    h, w = shaped.shape
    box = cv2.resize(shaped, (w // FINE, h // FINE), interpolation=cv2.INTER_AREA)  # FINE x FINE means
    return shaped, centre_by_mass(np.floor(np.clip(box, 0, 1) * 255 + 0.5).astype(np.uint8)), width / max(h, w)


# ---- the pipeline -------------------------------------------------------------------------------

def steps_of_gray(gray: np.ndarray) -> Steps:
    """Lightness (H, W) in [0, 1], any size -> every step's result.

    The background is removed twice: first with a window wider than any pen, to find the digit and
    measure its pen; then with a window a few pen widths wide, which follows shadows closely.
    """
    gray = work_size(np.ascontiguousarray(gray, np.float32))
    light_ink = ink_is_light(gray)
    ink = remove_background(1 - gray if light_ink else gray)
    binary, threshold = binarize(ink)
    first = pick_digit(binary)
    if first is not None:
        window = max(MIN_WINDOW, PEN_WINDOW * pen_width(first) / max(gray.shape))
        if window < BACKGROUND_WINDOW:
            ink = remove_background(1 - gray if light_ink else gray, window)
            binary, threshold = binarize(ink)
    binary, lines = remove_lines(binary)
    chosen = pick_digit(binary) if ink.max() >= BLANK_INK else None
    if chosen is None:
        empty = np.zeros((FRAME, FRAME), np.uint8)
        return Steps(gray, ink, binary, np.zeros_like(binary), np.zeros((FINE * BOX, FINE * BOX), np.float32), empty,
                     light_ink, threshold, lines, 0.0)
    shaped, digit, stroke = frame_digit(ink, chosen)
    return Steps(gray, ink, binary, chosen, shaped, digit, light_ink, threshold, lines, stroke)


def preprocess_steps(image: Image.Image) -> Steps:
    return steps_of_gray(lightness(image))


def mnist_like(image: Image.Image) -> np.ndarray:
    """(28, 28) uint8, MNIST's way, from a picture of any size, mode, polarity, lighting."""
    return preprocess_steps(image).digit


def is_blank(digit: np.ndarray) -> bool:
    """True when preprocessing found no ink (a blank page, or one too faint to tell from the paper)."""
    return not np.asarray(digit).any()


def preprocess_pixels(pixels: np.ndarray) -> np.ndarray:
    """784 values or a 28x28 grid from a canvas, either polarity, 0-1 or 0-255 -> MNIST-like uint8."""
    grid = np.asarray(pixels, np.float32).reshape(FRAME, FRAME)
    if grid.max() > 1.0:
        grid = grid / 255
    return steps_of_gray(np.clip(grid, 0, 1)).digit
