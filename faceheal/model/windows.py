"""Cutting a damage mask into windows, so repairs away from faces cost memory per window, not per scan.

Torch-free: the pipeline's classical path uses it too.
"""
from __future__ import annotations

import numpy as np


def windows(hole: np.ndarray, core: int, context: int = 0) -> list[tuple[int, int, int, int]]:
    """Disjoint cores (x0, y0, x1, y1), the cells of a `core`-px grid over the image that hold damage,
    each shrunk to its damage's bounding box, in raster order; every damaged pixel is in exactly one.
    (`context`, the margin each core is read with, does not change the cores.)"""
    h, w = hole.shape
    out = []
    for cy in range(0, h, core):
        rows = hole[cy:cy + core]
        if not rows.any():
            continue
        for cx in range(0, w, core):
            cell = rows[:, cx:cx + core]
            if cell.any():
                ys, xs = np.nonzero(cell.any(axis=1))[0], np.nonzero(cell.any(axis=0))[0]
                out.append((cx + int(xs[0]), cy + int(ys[0]), cx + int(xs[-1]) + 1, cy + int(ys[-1]) + 1))
    return out
