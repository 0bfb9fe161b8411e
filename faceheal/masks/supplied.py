"""Masks the archivist drew: read, validate, binarise, and find the one that belongs to a photo.

White means damaged: a pixel is a hole when its value is above half of its dtype's range, so
anti-aliased brush edges count and 8- and 16-bit masks read the same. A mask of another size than
its photo is an error for that photo, never a silent resize.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from faceheal.errors import MaskMismatch, MissingMask, UnreadableImage
from faceheal.images import IMAGE_EXTENSIONS, read_image


def binarise(pixels: np.ndarray) -> np.ndarray:
    """Stored mask pixels (any depth, gray/RGB/alpha) -> (H, W) bool, True = damaged."""
    half = (65535 if pixels.dtype == np.uint16 else 255) / 2.0
    if pixels.dtype == bool:
        return pixels.copy()
    if pixels.ndim == 3:
        colour = pixels[..., :1] if pixels.shape[2] in (1, 2) else pixels[..., :3]
        return (colour.max(axis=2) > half)
    return pixels > half


def read_mask(path: str | Path, shape: tuple[int, int], photo: str | Path | None = None) -> np.ndarray:
    """Read a mask for a photo of display size `shape` (H, W); raise with a one-line reason.

    The mask is taken as drawn over the photo as a viewer shows it (EXIF orientation applied to both).
    """
    try:
        pic = read_image(path)
    except UnreadableImage as e:
        raise UnreadableImage(f"mask {path}: {e}") from None
    mask = binarise(pic.display())
    if mask.shape != tuple(shape):
        raise MaskMismatch(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but the photo is {shape[1]}x{shape[0]}")
    return mask


def find_mask(masks_dir: Path, relative: Path) -> Path:
    """The mask for the photo at `relative` (path under its input root): same folders, same stem, any
    image extension (`scans/a/b.jpg` <- `masks/a/b.png`)."""
    folder = masks_dir / relative.parent
    # a photo named without an image extension (IMG_2020.101220) may have its mask as IMG_2020.101220.png
    stems = [relative.stem] if relative.suffix.lower() in IMAGE_EXTENSIONS else [relative.name, relative.stem]
    for stem in stems:
        for ext in (".png",) + IMAGE_EXTENSIONS:
            for candidate in (folder / (stem + ext), folder / (stem + ext.upper())):
                if candidate.is_file():
                    return candidate
    if folder.is_dir():
        for candidate in sorted(folder.iterdir()):
            if candidate.stem in stems and candidate.suffix.lower() in IMAGE_EXTENSIONS and candidate.is_file():
                return candidate
    raise MissingMask(f"no mask for it in {masks_dir} (looked for {relative.parent / stems[0]}.*)")
