"""Seeded synthetic hole masks for training and evaluation (one generator for both).

Kinds: `irregular` (free-form brush strokes of varied width, as in DeepFill v2), `strokes` (thin to
medium strokes), `boxes` (rectangles), `blobs` (ragged filled areas, like missing paper), `scratches`
(long thin lines, slightly curved, as on old prints), and `mixed` (a random kind per mask). Shapes are
added until the hole ratio reaches a target drawn uniformly from [lo, hi].
The NVIDIA irregular masks are reserved for evaluation; training uses these.
"""
from __future__ import annotations

import cv2
import numpy as np

KINDS = ("irregular", "strokes", "boxes", "blobs", "scratches")


def _stroke(mask: np.ndarray, rng: np.random.Generator, width_range: tuple[int, int], steps: int, step_len: float) -> None:
    h, w = mask.shape
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    angle = rng.uniform(0, 2 * np.pi)
    width = int(rng.integers(*width_range))
    for _ in range(steps):
        angle += rng.normal(0, 0.6)
        length = rng.uniform(0.3, 1.0) * step_len
        nx = float(np.clip(x + length * np.cos(angle), 0, w - 1))
        ny = float(np.clip(y + length * np.sin(angle), 0, h - 1))
        cv2.line(mask, (int(x), int(y)), (int(nx), int(ny)), 1, width, cv2.LINE_AA)
        cv2.circle(mask, (int(nx), int(ny)), width // 2, 1, -1, cv2.LINE_AA)
        x, y = nx, ny


def _blob(mask: np.ndarray, rng: np.random.Generator, radius_frac: float) -> None:
    h, w = mask.shape
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = radius_frac * min(h, w) * rng.uniform(0.5, 1.0)
    n = int(rng.integers(8, 20))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * rng.uniform(0.5, 1.3, n)
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, cv2.LINE_AA)


def _box(mask: np.ndarray, rng: np.random.Generator) -> None:
    h, w = mask.shape
    bw, bh = int(rng.uniform(0.1, 0.5) * w), int(rng.uniform(0.1, 0.5) * h)
    x, y = int(rng.uniform(0, w - bw)), int(rng.uniform(0, h - bh))
    mask[y:y + bh, x:x + bw] = 1


def _scratch(mask: np.ndarray, rng: np.random.Generator) -> None:
    h, w = mask.shape
    # a long, gently curving thin line crossing much of the image
    p0 = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    direction = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.4, 1.4) * max(h, w)
    n = 12
    bend = rng.normal(0, 0.15)
    pts = []
    for i in range(n + 1):
        t = i / n
        a = direction + bend * (t - 0.5) * 2
        pts.append(p0 + t * length * np.array([np.cos(a), np.sin(a)]))
    width = max(1, int(round(rng.uniform(0.003, 0.012) * min(h, w))))
    cv2.polylines(mask, [np.array(pts, np.int32)], False, 1, width, cv2.LINE_AA)


def _add_shape(mask: np.ndarray, kind: str, rng: np.random.Generator) -> None:
    s = min(mask.shape)
    if kind == "irregular":
        _stroke(mask, rng, (max(2, s // 40), max(3, s // 10)), int(rng.integers(4, 12)), s / 6)
    elif kind == "strokes":
        _stroke(mask, rng, (max(1, s // 100), max(2, s // 30)), int(rng.integers(3, 10)), s / 5)
    elif kind == "boxes":
        _box(mask, rng)
    elif kind == "blobs":
        _blob(mask, rng, 0.18)
    elif kind == "scratches":
        _scratch(mask, rng)
    else:
        raise ValueError(f"unknown mask kind {kind!r} (choose from {', '.join(KINDS + ('mixed',))})")


def synthetic_mask(size: int | tuple[int, int], kind: str = "mixed", ratio: tuple[float, float] = (0.0, 0.7),
                   rng: np.random.Generator | int | None = None) -> np.ndarray:
    """One (H, W) bool mask, True = hole, with a hole ratio drawn from `ratio` (fractions in [0, 1]).

    Thin kinds (scratches, strokes) stop at the target or after a bounded number of shapes, so their
    ratio can stay below a large target: a mask of scratches is never 60 % scratches.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    h, w = (size, size) if isinstance(size, int) else size
    lo, hi = ratio
    target = rng.uniform(lo, hi)
    chosen = kind if kind != "mixed" else KINDS[int(rng.integers(len(KINDS)))]
    mask = np.zeros((h, w), np.uint8)
    limit = 60 if chosen in ("scratches", "strokes") else 400
    for _ in range(limit):
        if mask.mean() >= target:
            break
        _add_shape(mask, chosen, rng)
    return mask > 0
