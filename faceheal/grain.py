"""Grain for repairs: a repaint is smooth, the scan around it is not.

A model or OpenCV fill gives the damaged pixels the picture's structure but not its film grain or
sensor noise, so on a grainy scan every repair shows as a smooth patch. Here the fine noise of the
photo around each repair is measured (the high-pass residual's local RMS over the undamaged pixels,
by normalised convolution, so it follows grain that varies across the print), what the repair
already has is measured the same way, and the missing part is added, luminance-only (grain is silver,
not colour): the photo's own fine texture, borrowed from undamaged pixels nearby (seeded), so it has
the photo's coarseness and not only its level. `grain_ratio` (high-pass RMS) and `metrics.hole_grain`
(median |Laplacian|) are the checks: the repair's fine noise over its surroundings', 1 when they match.
"""
from __future__ import annotations

import cv2
import numpy as np

from faceheal.images import LUMA, to_float_rgb

FINE_SIGMA = 1.0  # the high-pass: the image minus its Gaussian blur of this sigma (px)
REACH = 10.0  # px: how far around a pixel the noise level is measured
FAR_WEIGHT = 0.05  # below this share of measured pixels within REACH, the level comes from farther
_WHITE_GAIN = None  # the high-pass RMS of unit white noise, measured once


def _high_pass(gray: np.ndarray) -> np.ndarray:
    return gray - cv2.GaussianBlur(gray, (0, 0), FINE_SIGMA)


def _white_gain() -> float:
    global _WHITE_GAIN
    if _WHITE_GAIN is None:
        n = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
        _WHITE_GAIN = float(_high_pass(n)[16:-16, 16:-16].std())
    return _WHITE_GAIN


def _robust_sigma(values: np.ndarray) -> float:
    """Gaussian sigma from the median absolute value (edges and specks barely move it)."""
    return 1.4826 * float(np.median(np.abs(values)))


def local_noise(gray: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Fine-noise level (high-pass RMS) around every pixel, measured over the pixels `where` only.
    Residuals beyond 3 robust sigmas (edges, lashes, specks) are clipped first: texture, not grain."""
    hp = _high_pass(gray.astype(np.float32))
    vals = hp[where]
    if vals.size == 0:
        return np.zeros(gray.shape, np.float32)
    robust = _robust_sigma(vals) + 1e-6
    hp2 = np.minimum(hp * hp, (3 * robust) ** 2) * where
    num = cv2.GaussianBlur(hp2, (0, 0), REACH)
    den = cv2.GaussianBlur(where.astype(np.float32), (0, 0), REACH)
    level = num / np.maximum(den, 1e-6)
    far = den < FAR_WEIGHT  # deep inside wide damage the near estimate runs out of pixels
    if far.any():  # ... there it comes from farther (4x the reach, on a 4x smaller grid), then the whole region
        h, w = gray.shape
        small = (max(1, w // 4), max(1, h // 4))
        wide_num = cv2.GaussianBlur(cv2.resize(hp2, small, interpolation=cv2.INTER_AREA), (0, 0), REACH)
        wide_den = cv2.GaussianBlur(cv2.resize(where.astype(np.float32), small, interpolation=cv2.INTER_AREA), (0, 0), REACH)
        whole = float(hp2[where].mean())
        wide = np.where(wide_den > 1e-4, wide_num / np.maximum(wide_den, 1e-6), whole)
        wide = cv2.resize(wide.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        t = den[far] / FAR_WEIGHT
        level[far] = t * level[far] + (1 - t) * wide[far]
    return np.sqrt(level).astype(np.float32)


TILE = 32  # px: the pieces of the photo's own fine texture laid into a repair
SEAM = 4  # px: where two pieces overlap (cross-faded; elsewhere each pixel comes from one piece)


def borrowed_texture(gray: np.ndarray, repaired: np.ndarray, level: np.ndarray, rng: np.random.Generator,
                     tries: int = 24) -> np.ndarray:
    """Fine texture for the `repaired` pixels taken from the photo's own undamaged pixels nearby, so
    it has the photo's grain: its coarseness and its heavy tails, not only its level (white noise
    matched on the high-pass level carries about twice the photo's median Laplacian,
    `metrics.hole_grain`: 1.9x on CelebA-HQ val, 1.5x on phone selfies). The high-pass residual of
    pixels at least 3 px from any repair, divided by its local `level` and clipped at 3 (an edge is
    not grain), is copied in TILE-px pieces from random offsets within 8 tiles, cross-faded over SEAM
    px where pieces meet (weights whose squares sum to one: the variance stays); where no undamaged
    source is found, white noise. In units of the local level: multiply by the level wanted. Zero
    outside the repair."""
    h, w = gray.shape
    acc = np.zeros((h, w), np.float32)
    ys, xs = np.nonzero(repaired)
    if ys.size == 0:
        return acc
    source = cv2.erode((~repaired).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    residual = np.clip(_high_pass(gray.astype(np.float32)) / np.maximum(level, 1e-4), -3, 3) * source
    known = cv2.integral(source.astype(np.uint8))
    has = cv2.integral(repaired.astype(np.uint8))
    t, step, reach = TILE, TILE - SEAM, 8 * TILE
    edge = np.sin(0.5 * np.pi * (np.arange(SEAM) + 0.5) / SEAM)
    ramp = np.concatenate([edge, np.ones(t - 2 * SEAM), edge[::-1]]).astype(np.float32)
    window = np.outer(ramp, ramp)

    def box_sum(table, y0, x0, y1, x1):
        return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]

    x_starts = np.arange(xs.min() - SEAM, xs.max() + 1, step)
    for y0 in range(ys.min() - SEAM, ys.max() + 1, step):  # a row of tiles at a time, its offsets drawn at once
        ya, yb = max(y0, 0), min(y0 + t, h)
        xa, xb = np.maximum(x_starts, 0), np.minimum(x_starts + t, w)
        todo = box_sum(has, ya, xa, yb, xb) > 0
        if not todo.any():
            continue
        x0s = x_starts[todo]
        sy = y0 + rng.integers(-reach, reach + 1, (x0s.size, tries))
        sx = x0s[:, None] + rng.integers(-reach, reach + 1, (x0s.size, tries))
        inside = (sy >= 0) & (sx >= 0) & (sy + t <= h) & (sx + t <= w)
        sy, sx = np.where(inside, sy, 0), np.where(inside, sx, 0)
        good = inside & (box_sum(known, sy, sx, sy + t, sx + t) >= 0.97 * t * t)
        pick = good.argmax(axis=1)
        for i, x0 in enumerate(x0s):
            if good[i, pick[i]]:
                y, x = sy[i, pick[i]], sx[i, pick[i]]
                piece = residual[y:y + t, x:x + t]
            else:
                piece = rng.standard_normal((t, t)).astype(np.float32) / _white_gain()
            x_a, x_b = max(x0, 0), min(x0 + t, w)
            acc[ya:yb, x_a:x_b] += (piece * window)[ya - y0:yb - y0, x_a - x0:x_b - x0]
    return acc * repaired


def add_grain(rgb: np.ndarray, repaired: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`rgb` (float, [0, 1], (H, W, 3)) with grain added to the `repaired` pixels to match their
    surroundings; other pixels untouched."""
    if not repaired.any() or repaired.all():
        return rgb
    gray = rgb @ np.asarray(LUMA, np.float32)
    around = local_noise(gray, ~repaired)
    inside = local_noise(gray, repaired)
    need = np.sqrt(np.maximum(around * around - inside * inside, 0))
    noise = borrowed_texture(gray, repaired, around, rng) * need
    out = rgb.copy()
    out[repaired] = np.clip(rgb[repaired] + noise[repaired, None], 0, 1)
    return out


# fine-noise level (high-pass RMS in units of white-noise sigma, robust) from which a scan counts as
# grainy: held-out val photos of AAF / CelebA-HQ / UTKFace measure 0.002-0.013 (median 0.006), the old
# prints of photos/faded 0.009-0.034 (median 0.018), photos/scratched 0.007 and 0.020
GRAINY = 0.012


def is_grainy(pixels: np.ndarray, damage: np.ndarray | None = None, window: int = 1024) -> bool:
    """Is this scan grainy (see GRAINY)? Measured on its central `window` px square, at full resolution
    (downscaling would average the grain away), away from the damage (a painted stroke's edges are
    not grain)."""
    h, w = pixels.shape[:2]
    y0, x0 = max(0, (h - window) // 2), max(0, (w - window) // 2)
    gray = (to_float_rgb(pixels[y0:y0 + window, x0:x0 + window]) @ np.asarray(LUMA, np.float32)).astype(np.float32)
    hp = _high_pass(gray)
    if damage is not None:
        near = cv2.dilate(damage[y0:y0 + window, x0:x0 + window].astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        hp = hp[~near]
    if hp.size < 1000:
        return False
    return _robust_sigma(hp) / _white_gain() >= GRAINY


def core_and_band(repaired: np.ndarray, ring: int = 8, gap: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Where a repair is compared with its surroundings: the repair without its 1 px rim (not its own
    edge), and the band of undamaged pixels more than `gap` and at most `ring` px from it."""
    r8 = repaired.astype(np.uint8)
    core = cv2.erode(r8, np.ones((3, 3), np.uint8)) > 0
    band = (cv2.dilate(r8, np.ones((2 * ring + 1,) * 2, np.uint8)) > 0) & ~(cv2.dilate(r8, np.ones((2 * gap + 1,) * 2, np.uint8)) > 0)
    return core, band


def grain_ratio(rgb: np.ndarray, repaired: np.ndarray, ring: int = 8) -> float:
    """Fine-noise RMS inside the repair over that in a `ring`-px band around it (1 = matched)."""
    gray = (rgb @ np.asarray(LUMA, np.float32)).astype(np.float32)
    hp = _high_pass(gray)
    core, band = core_and_band(repaired, ring, gap=2)
    if not core.any() or not band.any():
        return float("nan")
    return float(np.sqrt(np.mean(hp[core] ** 2)) / max(np.sqrt(np.mean(hp[band] ** 2)), 1e-9))
