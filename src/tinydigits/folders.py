"""Your own digits on disk: a folder per digit, or a labels.csv; what `evaluate --images`, `train
--extra-data` and the web page's collect mode all use.

    DIR/0/*.png  DIR/1/*.jpg  ...  DIR/9/...      a folder per label (other names are refused)
    DIR/labels.csv                                 or: lines "file,label" (a header line is allowed),
                                                   files relative to DIR
    my_digits.zip                                  or a zip of the digit folders (the web page's collect
                                                   mode saves one), read as it is

    files = labelled_files(Path("my_digits"))             # [(Path, label), ...] sorted by path
    images, labels, files = load_image_folder(Path("my_digits"))   # (N, 28, 28) uint8 through preprocess
"""
from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from .errors import TinyDigitsError
from .model import NUM_CLASSES
from .preprocess import mnist_like, open_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
LABELS_FILE = "labels.csv"


def labelled_files(folder: Path) -> list[tuple[Path, int]]:
    """Every image of FOLDER with its label, from labels.csv when there is one, else from the digit folders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TinyDigitsError(f"{folder}: no such folder" if not folder.exists() else f"{folder}: not a folder")
    if (folder / LABELS_FILE).is_file():
        return from_labels_csv(folder)
    files = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (sub.name.isdigit() and int(sub.name) < NUM_CLASSES):
            raise TinyDigitsError(f"{sub}: a folder of images must be named by its digit, 0 to {NUM_CLASSES - 1}")
        files += [(p, int(sub.name)) for p in sorted(sub.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise TinyDigitsError(f"{folder}: no images in {folder}/<digit>/ folders (.png, .jpg, ...) and no {LABELS_FILE}")
    return files


def from_labels_csv(folder: Path) -> list[tuple[Path, int]]:
    path = folder / LABELS_FILE
    files = []
    with open(path, newline="") as f:
        for number, row in enumerate(csv.reader(f), 1):
            if not row or (number == 1 and not row[-1].strip().isdigit()):
                continue  # a blank line or the header
            if len(row) != 2 or not row[1].strip().isdigit() or int(row[1]) >= NUM_CLASSES:
                raise TinyDigitsError(f"{path}:{number}: expected 'file,label' with a label 0-{NUM_CLASSES - 1}, got {','.join(row)[:60]!r}")
            image = folder / row[0].strip()
            if not image.is_file():
                raise TinyDigitsError(f"{path}:{number}: {image}: file not found")
            files.append((image, int(row[1])))
    if not files:
        raise TinyDigitsError(f"{path}: no 'file,label' lines")
    return files


def zip_members(path: Path) -> list[tuple[str, int]]:
    """The images of a zip in the digit-folder layout, <digit>/<name> (under one top folder or none)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    except (zipfile.BadZipFile, OSError) as e:
        raise TinyDigitsError(f"{path}: not a readable zip ({e})") from None
    members = []
    for name in sorted(names):
        parts = Path(name).parts
        label = parts[-2] if len(parts) >= 2 else ""
        if not (label.isdigit() and int(label) < NUM_CLASSES):
            raise TinyDigitsError(f"{path}: {name}: images must sit in folders named by their digit, 0 to {NUM_CLASSES - 1}")
        members.append((name, int(label)))
    if not members:
        raise TinyDigitsError(f"{path}: no images in <digit>/ folders inside the zip")
    return members


def load_image_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Each labelled image prepared as `predict` prepares it: (N, 28, 28) uint8, (N,) uint8 labels, the files.

    FOLDER may be a zip of the digit folders. An unreadable image is an error that names it: a
    training or test set with a hole is not the set.
    """
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() == ".zip":
        members = zip_members(folder)
        with zipfile.ZipFile(folder) as archive:
            images = np.stack([mnist_like(open_image(archive.read(name))) for name, _ in members])
        return images, np.array([label for _, label in members], np.uint8), [folder / name for name, _ in members]
    files = labelled_files(folder)
    images = np.stack([mnist_like(open_image(path)) for path, _ in files])
    return images, np.array([label for _, label in files], np.uint8), [path for path, _ in files]


def check_image_folder(folder: Path) -> int:
    """How many labelled images FOLDER (or zip) holds, refusing one without any: before long work."""
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() == ".zip":
        return len(zip_members(folder))
    return len(labelled_files(folder))
