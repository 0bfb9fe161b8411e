"""Automatic damage masks: scratches, cracks, dust, missing areas and painted strokes.

Two detectors share one entry point, `detect_damage`. The learned one (`faceheal/masks/learned.py`,
weights/faceheal-damage.pt, trained by `faceheal train-damage` on rendered damage) is the default
whenever its weights are present; the pure-white painted-stroke rule below is added to it, since
paint is exactly white and the rule finds it all. The classical detector (below) needs no weights
and stays available with `--damage-detector classical`:

Scratches and cracks are thin, long and brighter (emulsion gone) or darker (dirt, ink) than their
surroundings: a morphological top-hat isolates structures thinner than a few pixels, a noise-adaptive
threshold ignores film grain and JPEG noise, and only connected pieces that are long and thin are
kept. Dust is a small, very high-contrast spot (eye catchlights are protected when the caller passes
the eye positions). Painted damage is pure white, stroke-shaped. Large flat areas (a white wall, a dark
suit) are never flagged: they are not thin. Huge scans are processed in overlapping tiles so memory
stays bounded.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import cv2
import numpy as np

from faceheal.images import LUMA, as_float_rgb
from faceheal.masks.decision import packed_mask


@dataclass(frozen=True)
class DamageSettings:
    sensitivity: float = 0.5  # 0 = only the obvious, 1 = everything suspicious
    scratches: bool = True
    dust: bool = True
    painted: bool = True
    detector: str = "auto"  # auto: learned when its weights are present | learned | classical
    precision: str = "auto"  # the learned detector's arithmetic: auto (fp32) | fp32 | bf16 (see detector_precision)

    def threshold_scale(self) -> float:
        return float(np.interp(self.sensitivity, [0.0, 0.5, 1.0], [1.6, 1.0, 0.6]))


def _ellipse(k: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def _noise_sigma(gray: np.ndarray) -> float:
    """Robust noise level (grain, JPEG): median absolute Laplacian, scaled to a Gaussian sigma."""
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    return float(np.median(np.abs(lap)) / 0.6745 / 4.0)


def _thin_long_components(cand: np.ndarray, min_length: float, max_thickness: float) -> np.ndarray:
    """Connected pieces of `cand` that are long and thin. Length and thickness come from the area and
    the boundary length (a line of length L and width w has area L*w and boundary about 2L), which
    holds for crossing and branching cracks too, unlike a bounding box."""
    cand8 = cand.astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand8, connectivity=8)
    if n <= 1:
        return np.zeros(cand.shape, bool)
    boundary = cand & ~(cv2.erode(cand8, np.ones((3, 3), np.uint8)) > 0)
    perimeter = np.bincount(labels[boundary], minlength=n).astype(np.float64)
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    length = np.maximum(perimeter / 2, np.hypot(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]))
    thickness = area / np.maximum(length, 1)
    # a crack is sparse in its bounding box; lace, sequins and foliage fill theirs
    density = area / np.maximum(stats[:, cv2.CC_STAT_WIDTH] * stats[:, cv2.CC_STAT_HEIGHT], 1)
    keep = (length >= min_length) & (thickness <= max_thickness) & (density < 0.2)
    keep[0] = False
    return keep[labels]


def _spots(tophat: np.ndarray, threshold: float, max_area: int) -> np.ndarray:
    cand = tophat > threshold
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(cand.shape, bool)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] <= max_area
    return keep[labels]


# mean luma of the ring around a pure-white piece above which it is a clipped highlight, not paint: the
# blown-out rim light of a clean selfie in photos/large has rings of 0.99-1.0, painted strokes on
# photos/painted_damage 0.18-0.48
BLOWN_RING = 0.95
# share of the pixels touching a pure-white piece that are clipped in some channels but not all, above
# which it is an overexposed highlight: colour clips one channel at a time as it brightens (skin's red
# first), while paint touches the photo's own colours. On val faces: rendered, soft-edged and real
# paint 0.00-0.07 (90th percentile), rim-light pieces 0.79 (median); 0.2 left out 42 % of the
# rim-light negative's taken pixels, 97 % of those on clean real photos, no paint.
PART_CLIPPED = 0.2
# share of the pixels touching a pure-white piece that are bright (luma 0.9 or more) at or above which it
# is a blown-out area fading into its bright surroundings (a white background's pockets between hair
# strands, a white collar), not paint: paint ends on the photo's own colours. On 3,400 clean training
# photos (AAF, CelebA-HQ, UTKFace) the paint rule took 84 pieces in 38 photos, all with shares of 0.78
# or more but for a tenth of them; on 196 paint pieces (rendered on val faces, photos/painted_damage) the
# 99th percentile was 0.36.
BRIGHT_TOUCH = 0.6
# A thick pure-white piece is taken when its edge is hard: the ring up to 3 px around it darker than
# 0.6 (paint or a hole in the print, not a sky fading out), or a step, the pixels touching it darker
# than STEP_TOUCH with the ring beyond under STEP_RING. The second catches paint on bright skin: 0.6
# alone missed a disc painted over an eye on a bright sepia forehead (ring 0.64, touching pixels 0.65;
# the face, both eyes painted, was then not found through the damage). A clipped highlight fades
# instead: on 100 val faces overexposed (the rim-light negative) its pieces with rings of 0.55-0.8 had
# touching pixels of 0.76-0.98. (Taking rings under 0.75 alone took those too: rim-light flags 0.80 ->
# 1.46 % on the test faces.)
STEP_TOUCH, STEP_RING = 0.7, 0.75


def _along_photo_edge(labels: np.ndarray, c: int, box, photo_edges, thickness: float) -> bool:
    """Piece `c` is the print's border: it touches the photo's edge over a stretch much longer than it
    is thick (or a third of the side), and what it leaves of the photo around it is convex (straight
    sides: the convex hull of the rest, in the piece's box grown by a margin, adds under 5 % of the
    piece's area). A band along one side, white beyond a crooked straight edge, a frame on all four
    sides or along two qualify; a stroke crossing the edge and a ragged hole cut notches, and do not."""
    h, w = labels.shape
    x, y, bw, bh = (int(v) for v in box)
    top, bottom, left, right = photo_edges
    piece = labels[y:y + bh, x:x + bw] == c
    contact = max(piece[0].sum() if top and y == 0 else 0, piece[-1].sum() if bottom and y + bh == h else 0,
                  piece[:, 0].sum() if left and x == 0 else 0, piece[:, -1].sum() if right and x + bw == w else 0)
    if contact < min(8 * max(thickness, 1.0), min(h, w) / 3):
        return False
    m = int(4 * max(thickness, 1.0)) + 8
    x0, y0, x1, y1 = max(0, x - m), max(0, y - m), min(w, x + bw + m), min(h, y + bh + m)
    rest = labels[y0:y1, x0:x1] != c
    if not rest.any():
        return True  # the piece fills its surroundings: nothing of the photo here to cut into
    # the hull of the rest is the hull of its outline: its pixels beside the piece and on the box's edge
    outline = rest & (cv2.dilate((~rest).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    outline[0], outline[-1], outline[:, 0], outline[:, -1] = rest[0], rest[-1], rest[:, 0], rest[:, -1]
    hull = cv2.convexHull(cv2.findNonZero(outline.astype(np.uint8)))
    notches = cv2.contourArea(hull) - rest.sum()  # pixel centres' hull: a convex rest gives about -perimeter/2
    return bool(notches <= 0.05 * piece.sum())


# The edge of a scan. Where a print, a crop or a collage ends, a scan has a line of another tone
# (the print's edge and its shadow, the scanner's lid, a seam) that the detector takes for a scratch:
# 3-4 px wide flags along 314 px of the Solvay photograph's left side, along the top and right sides
# of a scanned family print (photos/whole). A flagged piece that lies wholly within SCAN_EDGE_PX of the
# photo's sides (SCAN_EDGE_SHARE of its shorter side on big scans) and runs along a side for
# SCAN_EDGE_LENGTH times that or more is the scan's edge, not damage: a scratch that crosses the edge
# reaches inside, a torn corner or a missing area is wider, and all stay; so does a speck of dust on
# the edge (dropping short pieces too cost dust F1 0.016 and scratches 0.011 on the test faces, whose
# crops cut damage at their sides).
SCAN_EDGE_PX = 4
SCAN_EDGE_SHARE = 1 / 256
SCAN_EDGE_LENGTH = 8


def scan_edge_band(shape: tuple[int, int]) -> int:
    """Px from the photo's sides within which a flagged piece lying wholly there is the scan's edge."""
    return max(SCAN_EDGE_PX, int(round(min(shape) * SCAN_EDGE_SHARE)))


def drop_scan_edges(mask: np.ndarray) -> None:
    """Clear, in place, the long flagged pieces of `mask` that lie wholly within `scan_edge_band` of
    the photo's sides (see SCAN_EDGE_PX). Looked at in the four strips along the sides only (a huge scan
    needs no full-size label image): a piece is inside the photo when it reaches the strip's inner row
    away from the corners; a corner's pixels are dropped only when both of their strips say so."""
    h, w = mask.shape
    k = scan_edge_band((h, w)) + 2  # the band and the row beyond it
    if min(h, w) < 4 * k or not (mask[:k].any() or mask[-k:].any() or mask[:, :k].any() or mask[:, -k:].any()):
        return

    def along_edge(strip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # strip (k, L): row 0 on the photo's side
        """Per pixel: its piece stays within the band, and its piece is long (see SCAN_EDGE_LENGTH)."""
        n, labels, stats, _ = cv2.connectedComponentsWithStats(strip.astype(np.uint8), connectivity=8)
        within = np.ones(n, bool)
        within[0] = False
        within[labels[k - 1, k - 1:strip.shape[1] - k + 1]] = False  # reaches the row beyond the band, away from the corners
        return within[labels], (stats[:, cv2.CC_STAT_WIDTH] >= SCAN_EDGE_LENGTH * (k - 2))[labels]

    strips = {"top": along_edge(mask[:k]), "bottom": [a[::-1] for a in along_edge(mask[-k:][::-1])],
              "left": [a.T for a in along_edge(mask[:, :k].T)], "right": [a.T[:, ::-1] for a in along_edge(mask[:, -k:][:, ::-1].T)]}
    drop = {side: within & long for side, (within, long) in strips.items()}
    for rows, cols in ((slice(0, k), slice(0, k)), (slice(0, k), slice(w - k, w)),
                       (slice(h - k, h), slice(0, k)), (slice(h - k, h), slice(w - k, w))):
        # a corner: within the band in both strips, and long in either (an L along two sides)
        across, down = "top" if rows.start == 0 else "bottom", "left" if cols.start == 0 else "right"
        (within_a, long_a), (within_d, long_d) = strips[across], strips[down]
        both = within_a[:, cols] & within_d[rows, :] & (long_a[:, cols] | long_d[rows, :])
        drop[across][:, cols] = both
        drop[down][rows, :] = both
    mask[:k] &= ~drop["top"]
    mask[-k:] &= ~drop["bottom"]
    mask[:, :k] &= ~drop["left"]
    mask[:, -k:] &= ~drop["right"]


def _painted(rgb: np.ndarray, max_width: float, photo_edges: tuple[bool, bool, bool, bool] = (True,) * 4) -> np.ndarray:
    """Pure-white painted strokes and paper-white missing areas.

    A white component is taken when it is stroke-shaped (the 90th percentile of the distance to its
    edge is small: thin almost everywhere, even where strokes cross) or when its edge is hard (the
    ring just outside it is much darker: paint or a hole in the print, not a blown-out sky, which
    fades into bright surroundings). A piece whose surroundings are nearly white, mostly bright where
    they touch it, or clipped in some colour channels but not all, is a blown-out highlight and never
    taken; nor is a white band along the photo's edges that leaves the rest of the photo convex (a
    border).
    `photo_edges`: which sides of `rgb` (top, bottom, left, right) are the photo's own edges.
    """
    white = rgb.min(axis=2) >= 0.998  # exactly white: paint and holes, rarely a real highlight
    if not white.any():
        return white
    h, w = white.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(white.astype(np.uint8), connectivity=8)
    dist = cv2.distanceTransform(white.astype(np.uint8), cv2.DIST_L2, 3)
    gray = rgb @ LUMA
    ring_labels = cv2.dilate(labels.astype(np.float32), _ellipse(7)).astype(np.int32)  # nearest component id
    ring = (ring_labels > 0) & ~white  # the pixels up to 3 px outside each piece
    ring_cnt = np.bincount(ring_labels[ring], minlength=n)
    ring_mean = np.bincount(ring_labels[ring], weights=gray[ring], minlength=n) / np.maximum(ring_cnt, 1)
    touching = (cv2.dilate(white.astype(np.uint8), _ellipse(3)) > 0) & ~white
    touch_labels = cv2.dilate(labels.astype(np.float32), _ellipse(3)).astype(np.int32)[touching]
    part_clipped = rgb.max(axis=2)[touching] >= 0.998  # some channels at full scale, not all (not white)
    touch_cnt = np.maximum(np.bincount(touch_labels, minlength=n), 1)
    clipped_share = np.bincount(touch_labels, weights=part_clipped, minlength=n) / touch_cnt
    bright_share = np.bincount(touch_labels, weights=gray[touching] >= 0.9, minlength=n) / touch_cnt
    touch_mean = np.bincount(touch_labels, weights=gray[touching], minlength=n) / touch_cnt
    keep = np.zeros(n, bool)
    flat_labels, flat_dist = labels.ravel(), dist.ravel()
    order = np.argsort(flat_labels, kind="stable")
    bounds = np.searchsorted(flat_labels[order], np.arange(n + 1))
    for c in range(1, n):
        d = flat_dist[order[bounds[c]:bounds[c + 1]]]
        if d.size < 20:
            continue
        if ring_cnt[c] > 0 and ring_mean[c] > BLOWN_RING:
            continue  # near-white all round: a blown-out highlight (rim light, a lamp), not paint
        if clipped_share[c] >= PART_CLIPPED:
            continue  # colour clipping one channel at a time around it: an overexposed highlight
        if bright_share[c] >= BRIGHT_TOUCH:
            continue  # fading into bright surroundings: a blown-out background or garment, not paint
        thickness = float(np.percentile(d, 90))
        if _along_photo_edge(labels, c, stats[c, :4], photo_edges, thickness):
            continue  # straight-sided, lying along the photo's edge: a border or padding
        hard = ring_cnt[c] > 0 and (ring_mean[c] < 0.6 or (touch_mean[c] < STEP_TOUCH and ring_mean[c] < STEP_RING))
        keep[c] = thickness <= max_width / 2 or hard
    return keep[labels]


def detect_damage_tile(rgb: np.ndarray, settings: DamageSettings = DamageSettings(),
                       protect: list[tuple[float, float, float]] | None = None,
                       photo_edges: tuple[bool, bool, bool, bool] = (True,) * 4) -> np.ndarray:
    """One tile -> (H, W) bool damage mask. rgb: float RGB in [0, 1], or pixels as stored (uint8/uint16,
    gray or colour), converted here, tile by tile. photo_edges: which sides of the tile (top, bottom,
    left, right) are the photo's own edges."""
    rgb = as_float_rgb(rgb)
    h, w = rgb.shape[:2]
    side = min(h, w)
    mask = np.zeros((h, w), bool)
    if not (settings.scratches or settings.dust):  # painted strokes only (added to the learned detector)
        return _painted(rgb, max_width=0.06 * side, photo_edges=photo_edges) if settings.painted else mask
    gray = (rgb @ LUMA).astype(np.float32)
    k = max(7, int(round(side / 120)) | 1)  # structures thinner than about k/2 px count as lines/spots
    scale = settings.threshold_scale()
    sigma = _noise_sigma(gray)
    t = max(0.10, 6.0 * sigma) * scale
    white_th = gray - cv2.morphologyEx(gray, cv2.MORPH_OPEN, _ellipse(k))
    black_th = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, _ellipse(k)) - gray
    keep_out = None
    if protect:
        keep_out = np.zeros((h, w), np.uint8)
        for x, y, r in protect:
            cv2.circle(keep_out, (int(round(x)), int(round(y))), max(1, int(round(r))), 1, -1)
        keep_out = keep_out > 0
    if settings.scratches:
        # emulsion scratches and cracks are neutral (white or gray, whatever the print's colours):
        # saturated thin things (a red lanyard, a coloured stripe) are picture, not damage
        chroma = rgb.max(axis=2) - rgb.min(axis=2)
        neutral = chroma < float(np.median(chroma[::4, ::4])) + 0.12  # relative to the print's own tint
        min_len = max(16.0, 0.06 * side)
        mask |= _thin_long_components((white_th > t) & neutral, min_len, max_thickness=k / 2.2)
        if settings.sensitivity > 0.7:
            # dark lines: eyes, lashes, nostrils, lips, glasses and seams are dark and thin too, so
            # only very long ones, and only when asked for more sensitivity
            dark = _thin_long_components((black_th > 2.0 * t) & neutral, max(32.0, 0.25 * side), max_thickness=k / 4.0)
            mask |= dark if keep_out is None else dark & ~keep_out
    if settings.dust:
        spots = _spots(white_th, 2.0 * t, max_area=max(4, k * k // 3))
        mask |= spots if keep_out is None else spots & ~keep_out
    if settings.painted:
        mask |= _painted(rgb, max_width=0.06 * side, photo_edges=photo_edges)
    if mask.any():  # cover the soft edges of a scratch
        mask = cv2.dilate(mask.astype(np.uint8), _ellipse(3)) > 0
    return mask


TRAINED_EYE_DISTANCE = 63.0  # px between the eyes in the 256 px crops the detector learned on (scaled 0.55-1.4)


def coarse_scale(landmarks: list[np.ndarray]) -> float | None:
    """The scale at which a photo's faces look like the detector's training faces, when they are much
    larger (a high-resolution scan: eyes 100+ px apart); None otherwise. On held-out faces scanned at
    4x, damage found at the scan's own resolution scored F1 0.43 / 0.54 / 0.19 (scratches / dust /
    missing areas: wide damage is found only at its edges) and 0.95 / 0.90 / 0.94 at this scale. It
    is asked for (`--wide-damage`), not the default: on clean modern selfies (photos/large) that look
    took sweater folds and highlights for wide scratches and changed 2 of 5 (none without it)."""
    if not len(landmarks):
        return None
    eyes = float(np.median([np.linalg.norm(np.asarray(lm)[1] - np.asarray(lm)[0]) for lm in landmarks]))
    return TRAINED_EYE_DISTANCE / eyes if eyes > 1.6 * TRAINED_EYE_DISTANCE else None


def detect_damage(rgb: np.ndarray, settings: DamageSettings = DamageSettings(),
                  protect: list[tuple[float, float, float]] | None = None, tile: int = 2048,
                  overlap: int = 64, coarse: float | None = None, sure: np.ndarray | None = None) -> np.ndarray:
    """Damage mask of a whole photo; photos larger than `tile` are processed in overlapping tiles.

    protect: (x, y, radius) discs where spots and dark lines are not flagged (eyes, mouths).
    coarse: also look at the photo downscaled by this factor (`coarse_scale`), where wide damage on a
    high-resolution scan is as wide as the damage the detector knows; the two looks are joined, the
    full-resolution one keeping hairlines that vanish when downscaled.
    sure: a bit-packed mask (`decision.packed_mask`) that gets the pixels the learned detector is sure
    of set, from both looks (see `LearnedDamageDetector.mask`; nothing with the classical detector).
    """
    mask = _detect_damage(rgb, settings, protect, tile, overlap, sure)
    if coarse is not None and coarse < 1:
        h, w = rgb.shape[:2]
        size = (max(1, round(w * coarse)), max(1, round(h * coarse)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        local = [(x * coarse, y * coarse, r * coarse) for x, y, r in (protect or [])]
        no_paint = replace(settings, painted=False)  # paint is exact: found at full size
        small_sure = None if sure is None else packed_mask((size[1], size[0]))
        found = _detect_damage(small, no_paint, local, tile, overlap, small_sure)
        if found.any():
            mask |= cv2.resize(found.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        if small_sure is not None and small_sure.any():  # what the coarse look is sure of, at full size
            look = np.unpackbits(small_sure, axis=1, count=size[0])
            sure |= np.packbits(cv2.resize(look, (w, h), interpolation=cv2.INTER_NEAREST) > 0, axis=1)
    return mask


def _detect_damage(rgb: np.ndarray, settings: DamageSettings, protect, tile: int, overlap: int,
                   sure: np.ndarray | None = None) -> np.ndarray:
    if settings.detector != "classical":
        learned = learned_detector(required=settings.detector == "learned", precision=settings.precision)
        if learned is not None:
            return _learned_damage(learned, rgb, settings, protect, tile, overlap, sure)
    h, w = rgb.shape[:2]
    if max(h, w) <= tile:
        mask = detect_damage_tile(rgb, settings, protect)
    else:
        mask = np.zeros((h, w), bool)
        for read, core, core_in_read in _overlapping_tiles(h, w, tile, overlap):
            (ya, yb), (xa, xb) = (read[0].start, read[0].stop), (read[1].start, read[1].stop)
            local = [(x - xa, y - ya, r) for x, y, r in (protect or [])]
            m = detect_damage_tile(rgb[read], settings, local, (ya == 0, yb == h, xa == 0, xb == w))
            mask[core] = m[core_in_read]
    if settings.scratches or settings.dust:  # not the paint-only look: its own rule knows borders
        drop_scan_edges(mask)
    return mask


def _overlapping_tiles(h: int, w: int, tile: int, overlap: int):
    """(read, core, core within read) slice pairs of `tile`-px tiles read with `overlap` px of context
    on every side: the cores cover an (h, w) image exactly once."""
    step = tile - 2 * overlap
    for y0 in range(0, h, step):
        for x0 in range(0, w, step):
            ya, xa = max(0, y0 - overlap), max(0, x0 - overlap)
            yb, xb = min(h, y0 + step + overlap), min(w, x0 + step + overlap)
            ye, xe = min(h, y0 + step), min(w, x0 + step)
            yield ((slice(ya, yb), slice(xa, xb)), (slice(y0, ye), slice(x0, xe)),
                   (slice(y0 - ya, ye - ya), slice(x0 - xa, xe - xa)))


_LEARNED: dict = {}
_LEARNED_LOCK = threading.Lock()


def learned_detector(required: bool = False, precision: str = "auto"):
    """The learned detector with the shipped weights (loaded once per precision), or None when they are
    absent and not `required` (then the classical detector is used)."""
    from faceheal.masks.learned import DEFAULT_DAMAGE_WEIGHTS, LearnedDamageDetector, detector_precision

    precision = detector_precision(precision)  # auto and fp32 are one detector
    with _LEARNED_LOCK:  # restore's loader threads may ask at once
        if precision not in _LEARNED:
            if not DEFAULT_DAMAGE_WEIGHTS.is_file() and not required:
                return None
            _LEARNED[precision] = LearnedDamageDetector(DEFAULT_DAMAGE_WEIGHTS, precision=precision)
        return _LEARNED[precision]


def damage_decision(detector: str = "auto"):
    """The per-face decision (faceheal/masks/decision.py) calibrated for the detector `detector` resolves
    to: the learned one's, from its weights' metadata; None for the classical detector or weights
    without one."""
    from faceheal.masks.decision import DamageDecision

    if detector == "classical":
        return None
    learned = learned_detector(required=detector == "learned")
    return None if learned is None else DamageDecision.from_json(learned.meta.get("decision"))


def _learned_damage(learned, pixels: np.ndarray, settings: DamageSettings, protect, tile: int, overlap: int,
                    sure: np.ndarray | None = None) -> np.ndarray:
    mask = learned.mask(pixels, learned.threshold(settings.sensitivity), tile, sure)
    drop_scan_edges(mask)
    h, w = mask.shape
    if protect and mask.any():
        # catchlights and lip corners: small blobs inside the eye and mouth discs are not dust.
        # Looked at in a window around each disc only, so a huge scan needs no full-size label image.
        side = min(h, w)
        small = max(9, (side // 60) ** 2)
        reach = int(np.sqrt(small)) + 2
        for x, y, r in protect:
            x0, y0 = max(0, int(x - r) - reach), max(0, int(y - r) - reach)
            x1, y1 = min(w, int(x + r) + reach + 1), min(h, int(y + r) + reach + 1)
            if x0 >= x1 or y0 >= y1 or not mask[y0:y1, x0:x1].any():
                continue
            window = mask[y0:y1, x0:x1]
            n, labels, stats, _ = cv2.connectedComponentsWithStats(window.astype(np.uint8), connectivity=8)
            disc = np.zeros(window.shape, np.uint8)
            cv2.circle(disc, (int(round(x)) - x0, int(round(y)) - y0), max(1, int(round(r))), 1, -1)
            inside = np.bincount(labels[disc > 0], minlength=n) > 0
            left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
            touches_edge = ((left == 0) & (x0 > 0)) | ((top == 0) & (y0 > 0)) | \
                ((left + stats[:, cv2.CC_STAT_WIDTH] == x1 - x0) & (x1 < w)) | \
                ((top + stats[:, cv2.CC_STAT_HEIGHT] == y1 - y0) & (y1 < h))
            drop = (stats[:, cv2.CC_STAT_AREA] <= small) & inside & ~touches_edge  # whole blob seen, and small
            drop[0] = False
            window &= ~drop[labels]
    if mask.any():
        mask = grow_into_flat(mask, pixels)
    if settings.painted:
        paint_only = replace(settings, scratches=False, dust=False, painted=True, detector="classical")
        mask |= _detect_damage(pixels, paint_only, None, tile, overlap)
    if mask.any():  # cover the soft edges of a scratch, as the classical detector does
        mask = cv2.dilate(mask.astype(np.uint8), _ellipse(3)) > 0
    return mask


# The inside of a missing area. The network sees 128 px at a time and is sure of a wide missing
# area's ragged edge but less of its flat middle (flat walls, skies and shirts are clean): on 100 val
# faces 23 % of the pixels inside missing areas were left (F1 0.878; the previous detector 0.917). So
# flags wider than GROW_WIDE px grow up to GROW_REACH px into pixels that are flat (5x5 spread under
# GROW_FLAT) and of the flags' own colour (within GROW_MATCH on every channel of the flags' mean
# around them), where the flags close around them. Val: missing F1 0.878 -> 0.940; scratches, dust,
# paint, clean faces and every hard negative within 0.02 % or 0.001 of F1 (reach 16 / 24 / 40 with
# a disc: 0.90 / 0.92 / 0.94; wide 5: glasses 1.67 -> 1.72 %; growing from thin flags too cost
# scratches and dust 0.01). Test: 0.877 -> 0.933 (benchmarks/results/damage_eval.md).
GROW_REACH = 32
GROW_WIDE = 7
GROW_MATCH = 0.08
GROW_FLAT = 0.03


def grow_into_flat(mask: np.ndarray, pixels: np.ndarray, window: int = 2048, overlap: int = 64) -> np.ndarray:
    """`mask` grown from its wide flags into the flat pixels of their colour that they close around
    (see GROW_REACH). `pixels`: float RGB or as stored. In overlapping windows: bounded memory."""
    h, w = mask.shape
    out = mask.copy()
    side = 2 * GROW_REACH + 1
    for read, core, core_in_read in _overlapping_tiles(h, w, window, overlap):
        m = cv2.morphologyEx(mask[read].astype(np.uint8), cv2.MORPH_OPEN, _ellipse(GROW_WIDE))
        if not m.any():
            continue
        # a square closing: as good as a disc here (val F1 the same) and 20x faster
        cand = (cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((side, side), np.uint8)) > 0) & (m == 0)
        if not cand.any():
            continue
        ys, xs = np.flatnonzero(cand.any(axis=1)), np.flatnonzero(cand.any(axis=0))
        box = (slice(max(0, ys[0] - side), ys[-1] + side + 1), slice(max(0, xs[0] - side), xs[-1] + side + 1))
        rgb = as_float_rgb(pixels[read][box])
        mb = m[box]
        weight = cv2.blur(mb.astype(np.float32), (side, side))
        colour = cv2.blur(rgb * mb[..., None], (side, side)) / np.maximum(weight, 1e-6)[..., None]
        mean = cv2.blur(rgb, (5, 5))
        spread = _channel_max(cv2.sqrt(np.maximum(cv2.blur(rgb * rgb, (5, 5)) - mean * mean, 0)))
        ok = np.zeros_like(cand)
        ok[box] = cand[box] & (_channel_max(cv2.absdiff(rgb, colour)) < GROW_MATCH) & (spread < GROW_FLAT)
        if not ok.any():
            continue
        n, labels = cv2.connectedComponents(ok.astype(np.uint8), connectivity=4)
        touching = np.bincount(labels[(cv2.dilate(m, np.ones((3, 3), np.uint8)) > 0) & ok], minlength=n) > 0
        touching[0] = False
        out[core] |= touching[labels][core_in_read]
    return out


def _channel_max(a: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])


def protected_discs(landmarks: list[np.ndarray]) -> list[tuple[float, float, float]]:
    """(x, y, r) discs over both eyes and the mouth of each face (5-point landmarks), sized by the
    distance between the eyes: where a bright dot is a catchlight and a dark line is a lip."""
    discs = []
    for lm in landmarks:
        lm = np.asarray(lm, np.float64)
        iod = float(np.linalg.norm(lm[1] - lm[0]))
        mouth = (lm[3] + lm[4]) / 2
        discs += [(lm[0][0], lm[0][1], 0.3 * iod), (lm[1][0], lm[1][1], 0.3 * iod),
                  (mouth[0], mouth[1], 0.45 * iod)]
    return discs


def overlay(rgb8: np.ndarray, mask: np.ndarray, colour=(255, 40, 40), alpha: float = 0.6) -> np.ndarray:
    """Review image: the damage tinted over the photo (uint8 RGB); only the damaged pixels are
    computed in float."""
    out = rgb8.copy()
    out[mask] = (rgb8[mask].astype(np.float32) * (1 - alpha) + np.array(colour, np.float32) * alpha).astype(np.uint8)
    return out
