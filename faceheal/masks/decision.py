"""Is this face damaged at all? The per-face decision taken before anything is repainted.

A pixel detector with a false-alarm rate of 0.3 % flags a few hundred pixels of every clean photo,
and a few hundred repainted pixels are enough to make a clean photo "restored": measured, a default
restore changed 75 % of clean held-out photos. So the detected damage of each face (its crop's
footprint in the photo) is weighed as a whole first: how much of the region is flagged and how large
its largest flagged piece is, and how much of it the detector is sure of (probability above
0.9997). A logistic model of those numbers, fitted on the validation split
(clean photos against the same photos damaged, `fit_decision`; tools/calibrate_damage_decision.py),
gives the probability that the face is damaged; below the threshold the face's flags are dropped and
the face comes back untouched. The rest of the photo (outside every face) is weighed the same way.
Coefficients and threshold travel in the damage detector's weights metadata, as they belong to it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

EPS = 1e-5  # floor of the fractions before the logarithm: an empty region is "1e-5 flagged"
# Logit above which the learned detector is "sure" of a pixel (probability 0.99966). False flags on
# clean photos are mostly unsure ones: on the val photos, adding the sure share to the evidence raised
# the damaged regions kept at 2 % of clean ones from 0.87 to 0.97 (4-fold cross-validated by photo;
# logit 6: 0.97, 10: 0.95, 12: 0.91)
SURE_LOGIT = 8.0


def evidence(mask: np.ndarray, area: float | None = None, sure: int | None = None) -> np.ndarray:
    """Features of one region's flags: log10 of the flagged fraction of the region (`area` pixels, by
    default the mask's) and of its largest connected piece's fraction; with `sure` (the count of
    flagged pixels the detector is sure of), log10 of their fraction too."""
    area = max(float(mask.size if area is None else area), 1.0)
    shares = [float(mask.sum()) / area, _largest(mask) / area] + ([] if sure is None else [sure / area])
    return np.log10(np.array(shares) + EPS)


def packed_mask(shape: tuple[int, int]) -> np.ndarray:
    """An empty bit-packed mask (H, ceil(W / 8)) uint8: the detector's sure pixels at one bit each
    (a 100 MP scan: 12.5 MB, where coordinates of a large sure area would take hundreds)."""
    h, w = shape
    return np.zeros((h, (w + 7) // 8), np.uint8)


def _unpacked(packed: np.ndarray, y0: int, y1: int, x0: int, x1: int, width: int) -> np.ndarray:
    return np.unpackbits(packed[y0:y1], axis=1, count=width)[:, x0:x1].astype(bool)


def sure_counts(sure: np.ndarray | None, mask: np.ndarray, regions: list[tuple[int, int, int, int]],
                band: int = 1024) -> tuple[list[int], int]:
    """How many sure pixels (`sure`: bit-packed, see `packed_mask`; None: none) that are still in
    `mask` lie in each region, and outside all of them (counted in bands of rows: no scan-sized copy)."""
    if sure is None:
        return [0] * len(regions), 0
    h, w = mask.shape
    counts = [int((_unpacked(sure, y0, y1, x0, x1, w) & mask[y0:y1, x0:x1]).sum()) for x0, y0, x1, y1 in regions]
    rest = 0
    for b0 in range(0, h, band):
        b1 = min(h, b0 + band)
        here = _unpacked(sure, b0, b1, 0, w, w) & mask[b0:b1]
        for x0, y0, x1, y1 in regions:
            here[max(0, y0 - b0):max(0, y1 - b0), x0:x1] = False
        rest += int(here.sum())
    return counts, rest


def _largest(mask: np.ndarray, max_pixels: int = 4_000_000) -> float:
    """Area of the largest 8-connected piece; on a huge mask measured on a downscaled copy (a pixel
    of the copy flagged when any pixel under it is), so no full-size label image is made."""
    if not mask.any():
        return 0.0
    scale = 1.0
    if mask.size > max_pixels:
        scale = float(np.sqrt(max_pixels / mask.size))
        h, w = mask.shape
        mask = cv2.resize(mask.astype(np.uint8) * 255, (max(1, int(w * scale)), max(1, int(h * scale))),
                          interpolation=cv2.INTER_AREA) > 0
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return float(stats[1:, cv2.CC_STAT_AREA].max()) / scale ** 2 if n > 1 else 0.0


@dataclass(frozen=True)
class DamageDecision:
    weights: tuple[float, ...]  # (flagged share, largest piece) or, with the sure share, three
    bias: float
    threshold: float  # probability of damage needed to repaint, at sensitivity 0.5
    # A region flagged over this share is damaged whatever the rest says: the logistic model was fitted
    # on damage over 0.3-10 % of a region, and heavy paint (half a face) that the network is not sure of
    # fell below its threshold. Set at 3x the largest share of any clean val photo's region.
    certain_share: float | None = None

    @property
    def uses_sure(self) -> bool:
        return len(self.weights) == 3

    def probability(self, features: np.ndarray) -> float:
        if self.certain_share is not None and features[0] >= np.log10(self.certain_share + EPS):
            return 1.0
        z = float(np.dot(self.weights, features) + self.bias)
        return float(1 / (1 + np.exp(-np.clip(z, -50, 50))))

    def cut(self, sensitivity: float) -> float:
        """The probability threshold: this one at sensitivity 0.5, none at 1 (every flag is kept),
        twice as strict in odds at 0."""
        t = float(self.threshold)
        return float(np.interp(sensitivity, [0.0, 0.5, 1.0], [min(0.99, t + (1 - t) / 2), t, 0.0]))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict | None) -> "DamageDecision | None":
        if not d:
            return None
        certain = d.get("certain_share")
        return cls(weights=tuple(float(v) for v in d["weights"]), bias=float(d["bias"]), threshold=float(d["threshold"]),
                   certain_share=None if certain is None else float(certain))


def regions_of(faces, shape: tuple[int, int], size: int = 256) -> list[tuple[int, int, int, int]]:
    """Each face's crop footprint (x0, y0, x1, y1) in the photo: the pixels its repair can change."""
    from faceheal.faces.align import crop_region, similarity_transform, template

    return [crop_region(similarity_transform(f.landmarks, template(size)), size, shape) for f in faces]


def region_evidence(mask: np.ndarray, regions: list[tuple[int, int, int, int]], sure: np.ndarray | None = None,
                    with_sure: bool = False) -> tuple[list[np.ndarray], np.ndarray | None, np.ndarray]:
    """What the decision weighs: the evidence of each face region, of the rest of the photo (None when
    every pixel lies in some region), and the (H, W) mask of the regions. `with_sure`: the sure share
    too (`sure` bit-packed, None: none sure)."""
    sure_in, sure_rest = sure_counts(sure, mask, regions) if with_sure else ([None] * len(regions), None)
    faces = [evidence(mask[y0:y1, x0:x1], sure=n) for (x0, y0, x1, y1), n in zip(regions, sure_in)]
    inside = np.zeros(mask.shape, bool)
    for x0, y0, x1, y1 in regions:
        inside[y0:y1, x0:x1] = True
    outside = int((~inside).sum())
    # a strip left beside the faces (a thumbnail, a tight crop) is weighed as if it were as large as
    # a face region: a few specks there are not a 50 % flagged "rest of the photo"
    floor = float(np.mean([(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in regions])) if regions else 0.0
    rest = evidence(mask & ~inside, area=max(outside, floor), sure=sure_rest) if outside else None
    return faces, rest, inside


def decide(mask: np.ndarray, regions: list[tuple[int, int, int, int]], decision: DamageDecision | None,
           sensitivity: float = 0.5, sure: np.ndarray | None = None
           ) -> tuple[np.ndarray, list[float], float | None]:
    """The mask with the flags of every region judged undamaged removed (in place), the probability of
    damage of each face region, and of the rest of the photo (None when nothing is flagged there).
    `sure`: the pixels the detector is sure of (bit-packed, `packed_mask`), for a decision that
    weighs them (none given: none sure).

    A pixel in several regions is kept when any of them is judged damaged. In a photo judged damaged
    somewhere, a face's own flags need half the probability."""
    if decision is None or not mask.any():
        return mask, [1.0 if mask[y0:y1, x0:x1].any() else 0.0 for x0, y0, x1, y1 in regions], None
    faces, rest, inside = region_evidence(mask, regions, sure, with_sure=decision.uses_sure)
    probs = [decision.probability(f) for f in faces]
    if sensitivity >= 1.0:  # everything suspicious: every flag kept
        return mask, probs, None
    cut = decision.cut(sensitivity)
    # the rest is weighed when something there is flagged (its flagged share above the empty floor)
    p_rest = decision.probability(rest) if rest is not None and rest[0] > np.log10(EPS) else None
    # a print that is damaged somewhere (torn edges, a crack across the background) is more likely
    # damaged on its faces too: there a face's flags are kept from half the threshold
    damaged_photo = any(p >= cut for p in probs + ([p_rest] if p_rest is not None else []))
    face_cut = cut / 2 if damaged_photo else cut
    keep = np.zeros(mask.shape, bool)
    for (x0, y0, x1, y1), p in zip(regions, probs):
        if p >= face_cut:
            keep[y0:y1, x0:x1] = True
    if p_rest is not None and p_rest >= cut:
        keep |= ~inside
    mask &= keep
    return mask, probs, p_rest


def fit_decision(clean: list[np.ndarray], damaged: list[np.ndarray], max_clean_changed: float = 0.05,
                 steps: int = 200) -> tuple[DamageDecision, dict]:
    """Logistic regression (Newton's method, a little L2) of damaged (1) against clean (0) regions'
    evidence; the threshold is 0.5, raised where needed so that at most `max_clean_changed` of the
    clean regions would be repainted. Returns the decision and its fit on these data (the share of
    clean and of damaged regions kept)."""
    x = np.concatenate([np.stack(clean), np.stack(damaged)])
    y = np.concatenate([np.zeros(len(clean)), np.ones(len(damaged))])
    xb = np.concatenate([x, np.ones((len(x), 1))], 1)
    w = np.zeros(xb.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(xb @ w, -50, 50)))
        grad = xb.T @ (p - y) + 1e-3 * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + 1e-3 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    p = 1 / (1 + np.exp(-np.clip(xb @ w, -50, 50)))
    p_clean, p_damaged = p[:len(clean)], p[len(clean):]
    threshold = 0.5
    if float(np.mean(p_clean >= threshold)) > max_clean_changed:
        threshold = float(np.quantile(p_clean, 1 - max_clean_changed)) + 1e-6
    decision = DamageDecision(weights=tuple(float(v) for v in w[:-1]), bias=float(w[-1]), threshold=round(threshold, 6))
    return decision, fit_report(p_clean, p_damaged, decision.threshold)


def fit_report(p_clean: np.ndarray, p_damaged: np.ndarray, threshold: float) -> dict:
    """How a decision separates these regions (its probabilities of the clean and the damaged ones): the
    shares kept at `threshold`, the AUC, and the damaged share kept at several clean shares (less noisy
    than the one operating point)."""
    return {"clean_regions": len(p_clean), "damaged_regions": len(p_damaged),
            "clean_kept": round(float(np.mean(p_clean >= threshold)), 4),
            "damaged_kept": round(float(np.mean(p_damaged >= threshold)), 4),
            "auc": round(_auc(p_clean, p_damaged), 4),
            "damaged_kept_at": {f"{c:g}": round(float(np.mean(p_damaged >= np.quantile(p_clean, 1 - c) + 1e-6)), 4)
                                for c in (0.01, 0.02, 0.03, 0.05, 0.1)}}


def _auc(negative: np.ndarray, positive: np.ndarray) -> float:
    """The chance that a damaged region scores above a clean one (ties count half)."""
    scores = np.concatenate([negative, positive])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for v in np.unique(scores):  # average ranks of ties
        tie = scores == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    n, m = len(negative), len(positive)
    return float((ranks[n:].sum() - m * (m + 1) / 2) / max(n * m, 1))
