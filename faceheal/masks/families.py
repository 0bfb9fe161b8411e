"""Damage families drawn by a second, independent renderer: the generalisation test of the detector.

`faceheal/masks/render.py` is what the detector is trained on; scoring it only on that renderer
measures how well it learned the renderer, not damage. These families are drawn differently (other
shapes, widths, contrasts, tints, textures) and are not used in training unless a run asks for them
(`faceheal train-damage --families`), so benchmarks/eval_damage.py can report F1 on each family
held out of training. Each function takes a float RGB image in [0, 1] and a generator and returns
(damaged image, alpha): alpha is the damage's coverage, and the ground truth is alpha > 0.35, as for
the training renderer.
"""
from __future__ import annotations

import cv2
import numpy as np


def _curve(shape, rng, length_frac=(0.3, 1.0), wobble=0.05, segments=24) -> np.ndarray:
    h, w = shape
    p = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    a = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(*length_frac) * max(h, w)
    pts = [p.copy()]
    for _ in range(segments):
        a += rng.normal(0, wobble)
        p = p + length / segments * np.array([np.cos(a), np.sin(a)])
        pts.append(p.copy())
    return np.array(pts, np.int32)


def _lines(shape, rng, count, width, wobble) -> np.ndarray:
    layer = np.zeros(shape, np.float32)
    for _ in range(count):
        cv2.polylines(layer, [_curve(shape, rng, wobble=wobble)], False, 1.0, width, cv2.LINE_AA)
    return layer


def _apply(rgb, alpha, colour, strength=1.0):
    a = np.clip(alpha * strength, 0, 1)[..., None]
    return (rgb * (1 - a) + np.asarray(colour, np.float32) * a).astype(np.float32)


def bright_scratch(rgb, rng):
    """Emulsion scratched off: long, bright, 1-3 px, nearly straight, contrast from faint to full."""
    alpha = _lines(rgb.shape[:2], rng, int(rng.integers(1, 4)), int(rng.integers(1, 4)), 0.02)
    return _apply(rgb, alpha, rng.uniform(0.8, 1.0, 1).repeat(3), rng.uniform(0.5, 1.0)), alpha


def dark_scratch(rgb, rng):
    """Dirt or ink in a scratch: long and dark."""
    alpha = _lines(rgb.shape[:2], rng, int(rng.integers(1, 4)), int(rng.integers(1, 3)), 0.03)
    return _apply(rgb, alpha, rng.uniform(0.0, 0.2, 1).repeat(3), rng.uniform(0.5, 1.0)), alpha


def hairline(rgb, rng):
    """Fine hairline cracks: 1 px, low contrast, slightly soft, bright or dark."""
    alpha = _lines(rgb.shape[:2], rng, int(rng.integers(1, 5)), 1, 0.06)
    tone = 1.0 if rng.random() < 0.5 else 0.0
    out = _apply(rgb, alpha, (tone, tone, tone), rng.uniform(0.25, 0.5))
    return cv2.GaussianBlur(out, (0, 0), 0.5), alpha


def craquelure(rgb, rng):
    """A network of cracks: the edges of random cells (a Voronoi pattern), in a patch of the photo."""
    h, w = rgb.shape[:2]
    pts = rng.uniform(0, 1, (int(rng.integers(15, 40)), 2)) * [w, h]
    subdiv = cv2.Subdiv2D((0, 0, w, h))
    for x, y in pts:
        subdiv.insert((float(min(x, w - 1)), float(min(y, h - 1))))
    facets, _ = subdiv.getVoronoiFacetList([])
    alpha = np.zeros((h, w), np.float32)
    for f in facets:
        cv2.polylines(alpha, [f.astype(np.int32)], True, 1.0, 1, cv2.LINE_AA)
    cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.25, 0.6) * max(h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    alpha *= ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)
    tone = rng.uniform(0.0, 0.25) if rng.random() < 0.7 else rng.uniform(0.8, 1.0)
    return _apply(rgb, alpha, (tone, tone, tone), rng.uniform(0.6, 1.0)), alpha


def crease(rgb, rng):
    """A fold: a bright broken core along a straight line, with shading on one side of it."""
    h, w = rgb.shape[:2]
    line = _curve((h, w), rng, (1.2, 1.5), wobble=0.01, segments=8)
    core = np.zeros((h, w), np.float32)
    cv2.polylines(core, [line], False, 1.0, int(rng.integers(1, 3)), cv2.LINE_AA)
    broken = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 4) > 0.45
    core *= broken
    side = np.zeros((h, w), np.uint8)
    cv2.polylines(side, [line], False, 1, 1)
    dist = cv2.distanceTransform(1 - side, cv2.DIST_L2, 3)
    (x0, y0), (x1, y1) = line[0], line[-1]
    yy, xx = np.mgrid[0:h, 0:w]
    sign = np.sign((x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0))
    shade = np.exp(-dist / rng.uniform(3, 8)) * sign * rng.uniform(0.04, 0.12)
    out = np.clip(rgb + shade[..., None].astype(np.float32), 0, 1)
    return _apply(out, core, rng.uniform(0.85, 1.0, 1).repeat(3)), core


def foxing(rgb, rng):
    """Foxing and mould: rust-brown soft spots, 2-10 px, scattered or clustered."""
    h, w = rgb.shape[:2]
    alpha = np.zeros((h, w), np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    for _ in range(int(rng.integers(5, 30))):
        x, y = (cx + rng.normal(0, w / 5), cy + rng.normal(0, h / 5)) if rng.random() < 0.6 else (rng.uniform(0, w), rng.uniform(0, h))
        cv2.circle(alpha, (int(x), int(y)), int(rng.integers(2, 10)), float(rng.uniform(0.6, 1.0)), -1, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.2)
    colour = np.array([0.55, 0.35, 0.15], np.float32) * rng.uniform(0.6, 1.2)
    return _apply(rgb, alpha, np.clip(colour, 0, 1), rng.uniform(0.6, 0.9)), alpha


def flaking(rgb, rng):
    """Emulsion flaking: clusters of small hard-edged irregular patches where the paper shows."""
    h, w = rgb.shape[:2]
    alpha = np.zeros((h, w), np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    for _ in range(int(rng.integers(4, 20))):
        x, y = cx + rng.normal(0, w / 8), cy + rng.normal(0, h / 8)
        n = int(rng.integers(5, 9))
        r = rng.uniform(2, 12)
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        poly = np.stack([x + r * rng.uniform(0.4, 1.2, n) * np.cos(angles), y + r * rng.uniform(0.4, 1.2, n) * np.sin(angles)], 1)
        cv2.fillPoly(alpha, [poly.astype(np.int32)], 1.0)
    paper = rng.uniform(0.85, 0.98) * np.array([1.0, 0.97, 0.9], np.float32)
    return _apply(rgb, alpha, paper), alpha


def tear(rgb, rng):
    """A torn corner or edge: a piece missing from one side, jagged, paper, black or the scanner lid."""
    h, w = rgb.shape[:2]
    alpha = np.zeros((h, w), np.float32)
    corner = int(rng.integers(4))
    depth = rng.uniform(0.1, 0.35)
    xs = np.linspace(0, w, 24)
    ys = depth * h * (1 + 0.25 * np.cumsum(rng.normal(0, 0.3, 24)) / 5) * np.linspace(1, rng.uniform(0, 1), 24)
    poly = np.concatenate([[[0, 0]], np.stack([xs, np.clip(ys, 0, h)], 1), [[w, 0]]]).astype(np.int32)
    cv2.fillPoly(alpha, [poly], 1.0)
    alpha = np.rot90(alpha, corner)
    if alpha.shape != (h, w):
        alpha = cv2.resize(np.ascontiguousarray(alpha), (w, h), interpolation=cv2.INTER_NEAREST)
    fill = rng.choice([0.95, 0.05, 0.6]) * np.ones(3, np.float32)
    return _apply(rgb, np.ascontiguousarray(alpha), fill), np.ascontiguousarray(alpha)


FAMILIES = {"bright_scratch": bright_scratch, "dark_scratch": dark_scratch, "hairline": hairline,
            "craquelure": craquelure, "crease": crease, "foxing": foxing, "flaking": flaking, "tear": tear}
FAMILY_NAMES = tuple(FAMILIES)


def render_family(rgb: np.ndarray, family: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(damaged float RGB, truth (H, W) bool) for one family."""
    if family not in FAMILIES:
        raise ValueError(f"unknown damage family {family!r} (choose from {', '.join(FAMILY_NAMES)})")
    out, alpha = FAMILIES[family](np.ascontiguousarray(rgb, np.float32), rng)
    return np.clip(out, 0, 1).astype(np.float32), alpha > 0.35
