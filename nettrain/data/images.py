"""Image files (PNG, JPEG, BMP) read with Pillow, the optional extra ``nettrain[images]``.

A training folder holds one sub-folder per class; classes are numbered in the sorted order of
the sub-folder names, and each sample keeps its file name (relative to the folder). Images are
kept as stored: uint8 (N, C, H, W), C = 1 (``color: gray``) or 3 (``rgb``); ``auto`` is gray when
every image is, else rgb. With ``size: [h, w]`` every image is resized (bilinear); without, all
must have the size of the first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nettrain.core.errors import UserError
from nettrain.data.checks import checked

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def pillow(where: str):
    """The PIL.Image module, or a UserError saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise UserError(
            where,
            "reading images needs Pillow, which is not installed",
            "install the extra: pip install 'nettrain[images]'",
        ) from None
    return Image


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by their relative path."""
    return sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def read_folder(path, size=None, color="auto"):
    """The labelled Dataset of a folder with one sub-folder of images per class."""
    folder = Path(path)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and image_files(p))
    if not classes:
        raise UserError(
            str(folder),
            "no class folders with images (PNG/JPEG/BMP) in it",
            "put each class's images in a sub-folder named after the class",
        )
    files, labels = [], []
    for label, name in enumerate(classes):
        found = image_files(folder / name)
        files += found
        labels += [label] * len(found)
    x = read_images(files, size, color)
    names = [f.relative_to(folder).as_posix() for f in files]
    return checked(x, np.array(labels, np.int64), str(folder), names=names, classes=classes)


def read_unlabelled(path, size=None, color="auto"):
    """(x uint8 (N, C, H, W), names) of one image file or every image under a folder."""
    path = Path(path)
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise UserError(str(path), "no images (PNG/JPEG/BMP) in the folder")
        return read_images(files, size, color), [f.relative_to(path).as_posix() for f in files]
    return read_images([path], size, color), [path.name]


def read_images(files, size=None, color="auto") -> np.ndarray:
    """uint8 (N, C, H, W) of the image files, each converted to the same channels and size."""
    Image = pillow(str(files[0]))
    if color == "auto":  # a first pass reads only the headers
        color = (
            "gray"
            if all(_open(Image, f, lambda im: im.mode) in GRAY_MODES for f in files)
            else "rgb"
        )
    mode = "L" if color == "gray" else "RGB"
    h, w = size if size else _open(Image, files[0], lambda im: im.size[::-1])
    x = np.empty((len(files), 1 if mode == "L" else 3, h, w), np.uint8)
    for i, f in enumerate(files):
        im = _open(Image, f, lambda im: im.convert(mode))
        if size:
            im = im.resize((w, h), Image.Resampling.BILINEAR)
        elif im.size != (w, h):
            raise UserError(
                str(f),
                f"the image is {im.size[1]}x{im.size[0]}, the first one ({files[0]}) is {h}x{w}",
                "give size: [h, w] to resize every image",
            )
        pixels = np.asarray(im)
        x[i] = pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)
    return x


def _open(Image, path, use):
    """``use(image)`` with the file open; a file Pillow cannot read is a UserError naming it."""
    try:
        with Image.open(path) as im:
            return use(im)
    except (OSError, ValueError) as exc:
        raise UserError(str(path), f"cannot read the image: {exc}") from None
