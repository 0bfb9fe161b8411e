"""OpenCV's classical inpainting on float images: stage 2's starting fill and the Telea backend."""
from __future__ import annotations

import cv2
import numpy as np

TILE_PRIOR_RADIUS = 3  # the Telea radius the texture inpainter's classical input is computed with (as stage 2's)


def classical_fill(image: np.ndarray, hole: np.ndarray, radius: int = 5, method: int = cv2.INPAINT_TELEA) -> np.ndarray:
    """OpenCV inpainting of a float image (H, W, C) in [0, 1] where `hole` is True.

    Runs per channel on 16-bit integers: OpenCV's float path assumes a 0-255 range, and 16 bits keep
    the precision of 16-bit scans.
    """
    m = hole.astype(np.uint8)
    q = np.clip(np.rint(image * 65535.0), 0, 65535).astype(np.uint16)
    chans = [cv2.inpaint(np.ascontiguousarray(q[..., c]), m, radius, method) for c in range(image.shape[2])]
    return (np.stack(chans, -1).astype(np.float32) / 65535.0)
