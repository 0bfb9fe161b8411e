"""Synthetic damage rendered onto clean photos: the ground truth for training and scoring a damage
detector. Kinds: `scratches` (thin bright or dark lines, 1-4 px, slightly curved, sometimes
branching), `hairlines` (the same, 1-2 px, faint and often soft), `missing` (paper-white or black areas with
ragged edges, like lost emulsion), `dust` (small bright or dark specks), `stains` (foxing, mould and
water spots: soft, tinted, 1-12 px, in clusters) and `tears` (a piece missing from an edge or a
corner of the print, jagged, with whatever lay behind it showing: paper, the scanner lid, a table).
Seeded; masks come from the same generator as the model's training masks. The ground truth is where
the damage covers the pixel and changed it visibly: a scratch of the photo's own tone is no damage.
"""
from __future__ import annotations

import cv2
import numpy as np

from faceheal.masks.synthetic import synthetic_mask

DAMAGE_KINDS = ("scratches", "missing", "dust", "stains", "tears", "hairlines")
VISIBLE = 0.04  # least change of a damaged pixel (any channel, 0-1; 10 levels of 255) for it to count as damage


def _scratch_layer(shape, rng: np.random.Generator, widths: tuple[int, int] = (1, 4)) -> np.ndarray:
    h, w = shape
    layer = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 6))):
        p = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        angle = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.3, 1.2) * max(h, w)
        width = int(rng.integers(*widths))
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


def _stain_layer(shape, rng: np.random.Generator) -> np.ndarray:
    """Foxing and mould: soft spots of uneven density, mostly clustered, some alone."""
    h, w = shape
    layer = np.zeros((h, w), np.float32)
    centres = [(rng.uniform(0, w), rng.uniform(0, h)) for _ in range(int(rng.integers(1, 4)))]
    spread = rng.uniform(0.05, 0.3) * max(h, w)
    for _ in range(int(rng.integers(3, 40))):
        cx, cy = centres[int(rng.integers(len(centres)))]
        x, y = (cx + rng.normal(0, spread), cy + rng.normal(0, spread)) if rng.random() < 0.75 else (rng.uniform(0, w), rng.uniform(0, h))
        r = float(np.exp(rng.uniform(np.log(1.0), np.log(12.0))))
        ax = (max(1, int(round(r * rng.uniform(0.7, 1.3)))), max(1, int(round(r * rng.uniform(0.7, 1.3)))))
        cv2.ellipse(layer, (int(x), int(y)), ax, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.5, 1.0)), -1, cv2.LINE_AA)
    mottle = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), rng.uniform(0.8, 2.5))
    layer *= np.clip(0.6 + 0.4 * (mottle - mottle.mean()) / max(float(mottle.std()), 1e-6), 0.3, 1.2)  # uneven density
    return np.clip(cv2.GaussianBlur(layer, (0, 0), rng.uniform(0.4, 1.6)), 0, 1)


def _stain_colour(rng: np.random.Generator) -> np.ndarray:
    """Rust, brown, ochre or yellow (foxing, water), or gray-green to black (mould)."""
    if rng.random() < 0.75:
        hue = rng.uniform(8, 45)  # degrees: red-orange to yellow
        hsv = np.uint8([[[hue / 2, rng.uniform(110, 230), rng.uniform(60, 190)]]])
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255
    g = rng.uniform(0.05, 0.4)
    return np.array([g * rng.uniform(0.85, 1.0), g, g * rng.uniform(0.8, 1.0)], np.float32)


def _tear(shape, rng: np.random.Generator) -> np.ndarray:
    """A piece torn from one side or across a corner: the region beyond a jagged line."""
    h, w = shape
    n = 48
    t = np.linspace(0, 1, n)
    rough = np.cumsum(rng.normal(0, 1, n))
    rough = (rough - np.linspace(rough[0], rough[-1], n)) / max(float(np.abs(rough).max()), 1e-6)
    jag = rng.uniform(0.02, 0.12) * rough + rng.normal(0, rng.uniform(0.002, 0.015), n)
    if rng.random() < 0.5:  # across a corner: from one side to the next
        a, b = rng.uniform(0.1, 0.7, 2)
        pts = np.stack([a * (1 - t), b * t], 1) + jag[:, None] / np.sqrt(2)
        poly = np.concatenate([[[0.0, 0.0]], pts])
    else:  # a bite from one side, its depth varying along it
        d0, d1 = rng.uniform(0.0, 0.35, 2)
        depth = np.clip(d0 + (d1 - d0) * t + jag, 0, 0.6)
        poly = np.concatenate([[[0.0, 0.0]], np.stack([t, depth], 1), [[1.0, 0.0]]])
    side = int(rng.integers(4))  # drawn from the top, then turned to its side
    th, tw = (h, w) if side % 2 == 0 else (w, h)
    alpha = np.zeros((th, tw), np.float32)
    cv2.fillPoly(alpha, [(poly * [tw, th]).astype(np.int32)], 1.0, cv2.LINE_AA)
    return np.ascontiguousarray(np.rot90(alpha, side))


def render_damage(rgb: np.ndarray, kind: str, rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Damage a float RGB image in [0, 1]: returns (damaged image, ground-truth mask (H, W) bool)."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    h, w = rgb.shape[:2]
    if kind in ("scratches", "hairlines"):
        alpha = _scratch_layer((h, w), rng, (1, 4) if kind == "scratches" else (1, 3))
    elif kind == "dust":
        alpha = _dust_layer((h, w), rng)
    elif kind == "missing":
        m = synthetic_mask((h, w), "blobs", (0.02, 0.12), rng).astype(np.uint8)
        # ragged, torn edges
        noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)
        edge = cv2.dilate(m, np.ones((5, 5), np.uint8)) - cv2.erode(m, np.ones((5, 5), np.uint8))
        m = np.where(edge > 0, noise > 0.5, m > 0).astype(np.float32)
        alpha = m
    elif kind == "stains":
        alpha = _stain_layer((h, w), rng)
        a = (alpha * rng.uniform(0.5, 0.95))[..., None]
        colour = _stain_colour(rng)
        if rng.random() < 0.3:  # a dye soaked into the print: darkens and colours what is there
            damaged = rgb * (1 - a) + rgb * colour * a
        else:
            damaged = rgb * (1 - a) + colour * a
        return _result(rgb, damaged, a[..., 0] / 0.85)  # true where the stain is dense, not its faint rim
    elif kind == "tears":
        alpha = _tear((h, w), rng)
        r = rng.random()
        behind = (rng.uniform(0.85, 1.0) * np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 1.0)]) if r < 0.4
                  else rng.uniform(0.0, 0.12, 1).repeat(3) if r < 0.65 else rng.uniform(0.25, 0.8, 1).repeat(3) if r < 0.85
                  else rng.uniform(0.1, 0.9, 3)).astype(np.float32)
        fill = behind + rng.normal(0, rng.uniform(0.0, 0.03), (h, w, 1)).astype(np.float32)
        if rng.random() < 0.6:  # paper fibres: a pale fringe along the torn edge
            ring = cv2.dilate(alpha, np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 3))) - alpha
            alpha = np.maximum(alpha, ring)
            fill = np.where(ring[..., None] > 0, rng.uniform(0.8, 1.0), fill).astype(np.float32)
        a = alpha[..., None]
        return _result(rgb, rgb * (1 - a) + fill * a, alpha)
    else:
        raise ValueError(f"unknown damage kind {kind!r} (choose from {', '.join(DAMAGE_KINDS)})")
    bright = kind == "missing" and rng.random() < 0.7 or kind != "missing" and rng.random() < 0.75
    tone = rng.uniform(0.85, 1.0) if bright else rng.uniform(0.0, 0.15)
    strength = 1.0 if kind == "missing" else rng.uniform(0.2, 0.5) if kind == "hairlines" else rng.uniform(0.6, 1.0)
    a = (alpha * strength)[..., None]
    damaged = rgb * (1 - a) + tone * a
    if kind == "hairlines" and rng.random() < 0.5:  # soft, out of focus
        soft = cv2.GaussianBlur(damaged, (0, 0), rng.uniform(0.4, 0.8))
        damaged = np.where(cv2.dilate(alpha, np.ones((5, 5), np.uint8))[..., None] > 0, soft, damaged)
    return _result(rgb, damaged, alpha)


def _result(rgb: np.ndarray, damaged: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    damaged = np.clip(damaged, 0, 1).astype(np.float32)
    return damaged, (alpha > 0.35) & (np.abs(damaged - rgb).max(axis=2) > VISIBLE)
