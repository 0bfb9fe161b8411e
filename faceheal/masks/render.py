"""Synthetic damage rendered onto clean photos: the ground truth for training and scoring a damage
detector. Kinds: `scratches` (thin bright or dark lines, 1-4 px, soft edges, slightly curved,
sometimes branching), `missing` (paper-white or black areas with ragged edges, like tears and lost
emulsion), `dust` (small bright or dark specks). Seeded; masks come from the same generator as the
model's training masks.
"""
from __future__ import annotations

import cv2
import numpy as np

from faceheal.masks.synthetic import synthetic_mask

DAMAGE_KINDS = ("scratches", "missing", "dust")


def _scratch_layer(shape, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    layer = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 6))):
        p = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        angle = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.3, 1.2) * max(h, w)
        width = int(rng.integers(1, 4))
        pts = [p.copy()]
        for _ in range(16):
            angle += rng.normal(0, 0.08)
            p = p + length / 16 * np.array([np.cos(angle), np.sin(angle)])
            pts.append(p.copy())
        cv2.polylines(layer, [np.array(pts, np.int32)], False, 1.0, width, cv2.LINE_AA)
        if rng.random() < 0.4:  # a branch, as cracks have
            q = pts[int(rng.integers(2, 14))]
            a2 = angle + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2)
            end = q + rng.uniform(0.1, 0.3) * max(h, w) * np.array([np.cos(a2), np.sin(a2)])
            cv2.line(layer, tuple(int(v) for v in q), tuple(int(v) for v in end), 1.0, max(1, width - 1), cv2.LINE_AA)
    return layer


def _dust_layer(shape, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    layer = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(5, 40))):
        cv2.circle(layer, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), int(rng.integers(1, 3)), 1.0, -1, cv2.LINE_AA)
    return layer


def render_damage(rgb: np.ndarray, kind: str, rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Damage a float RGB image in [0, 1]: returns (damaged image, ground-truth mask (H, W) bool)."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    h, w = rgb.shape[:2]
    if kind == "scratches":
        alpha = _scratch_layer((h, w), rng)
    elif kind == "dust":
        alpha = _dust_layer((h, w), rng)
    elif kind == "missing":
        m = synthetic_mask((h, w), "blobs", (0.02, 0.12), rng).astype(np.uint8)
        # ragged, torn edges
        noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)
        edge = cv2.dilate(m, np.ones((5, 5), np.uint8)) - cv2.erode(m, np.ones((5, 5), np.uint8))
        m = np.where(edge > 0, noise > 0.5, m > 0).astype(np.float32)
        alpha = m
    else:
        raise ValueError(f"unknown damage kind {kind!r} (choose from {', '.join(DAMAGE_KINDS)})")
    bright = kind == "missing" and rng.random() < 0.7 or kind != "missing" and rng.random() < 0.75
    tone = rng.uniform(0.85, 1.0) if bright else rng.uniform(0.0, 0.15)
    strength = 1.0 if kind == "missing" else rng.uniform(0.6, 1.0)
    a = (alpha * strength)[..., None]
    damaged = rgb * (1 - a) + tone * a
    truth = alpha > 0.35
    return damaged.astype(np.float32), truth
