"""The semantic label set of stage 1 (face parsing), its colours, and the CelebAMask-HQ mapping.

CelebAMask-HQ has 19 classes; rare accessories are merged into the region they sit on (hat -> hair,
earring -> ears, necklace -> neck) and left/right ears into one class, giving 15 classes. Left/right
eyes and brows stay apart: symmetry between them is what stage 2 needs to see. "Left" is the person's
left (the image's right), as in CelebAMask-HQ.
"""
from __future__ import annotations

import numpy as np

CLASSES = ("background", "skin", "nose", "eyeglasses", "left eye", "right eye", "left brow",
           "right brow", "ears", "mouth", "upper lip", "lower lip", "hair", "neck", "cloth")
NUM_CLASSES = len(CLASSES)
IGNORE = 255  # label value for "unknown" (outside the source image, or no label)

# CelebAMask-HQ id -> our id
CELEBAMASK_TO_FACEHEAL = np.array(
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 12, 8, 13, 13, 14], np.uint8)

# horizontal flip swaps left and right parts
FLIP_PERMUTATION = np.array([0, 1, 2, 3, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14], np.int64)

COLOURS = np.array([
    [0, 0, 0], [204, 153, 128], [255, 120, 60], [60, 60, 200], [0, 200, 255], [0, 120, 255],
    [140, 80, 30], [100, 60, 20], [255, 200, 0], [150, 0, 60], [230, 40, 90], [200, 20, 140],
    [90, 50, 160], [120, 200, 120], [60, 140, 160]], np.uint8)


def map_celebamask(labels: np.ndarray) -> np.ndarray:
    """CelebAMask-HQ ids (0..18) -> faceheal ids; values outside 0..18 become IGNORE."""
    out = np.full(labels.shape, IGNORE, np.uint8)
    ok = labels < len(CELEBAMASK_TO_FACEHEAL)
    out[ok] = CELEBAMASK_TO_FACEHEAL[labels[ok]]
    return out


def colourise(labels: np.ndarray) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB picture of the layout."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:NUM_CLASSES] = COLOURS
    lut[IGNORE] = (128, 128, 128)
    return lut[labels]
