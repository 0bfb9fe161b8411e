"""Fit the per-face damage decision (faceheal/masks/decision.py) for a damage detector and store it in
the detector's weights metadata.

Data: clean held-out 'val' photos (AAF, CelebA-HQ, UTKFace; never the 'test' half, which the
benchmarks report on) and the same photos with damage of the *training renderer's* kinds only
(scratches, missing, dust, painted strokes) in their central two thirds, so the independent damage
families of faceheal/masks/families.py stay held out of every choice. Each photo goes through the
very mask path of `faceheal restore` (Restorer.prepare, detected damage, faces, 1 px growth) with no
decision; every face region and the rest of the photo gives one example, damaged when rendered
damage lies in it.

    FACEHEAL_WEIGHTS=DIR python tools/calibrate_damage_decision.py [--per-source 0] [--draws 2] [--max-clean 0.03]

rewrites DIR/faceheal-damage.pt (and its .sha256) with meta["decision"].
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from faceheal.evaluate_photos import held_out_photos  # noqa: E402
from faceheal.images import Picture, read_image, to_rgb8  # noqa: E402
from faceheal.inpainters import TeleaInpainter  # noqa: E402
from faceheal.faces.detect import MtcnnDetector  # noqa: E402
from faceheal.masks.damage import learned_detector  # noqa: E402
from faceheal.masks.decision import evidence, fit_decision, regions_of  # noqa: E402
from faceheal.masks.learned import load_damage_net, save_damage_net  # noqa: E402
from faceheal.masks.render import render_damage  # noqa: E402
from faceheal.masks.source import detected_masks  # noqa: E402
from faceheal.pipeline import Restorer  # noqa: E402
from faceheal.sources import Source  # noqa: E402
from faceheal.train.damage import render_painted  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SOURCES = ("aaf/images", "celebamask/images", "utkface")
KINDS = ("scratches", "missing", "dust", "painted")


def examples(restorer: Restorer, rgb8: np.ndarray, truth: np.ndarray | None) -> list[tuple[np.ndarray, bool]]:
    """(features, damaged) of each face region and of the rest of the photo, through restore's mask path."""
    item = restorer.prepare(Source(Path("val.png"), Path("val.png")), Picture(pixels=rgb8, format="PNG"))
    if item.error is not None or item.hole is None:
        return []
    h, w = item.hole.shape
    regions = regions_of(item.faces, (h, w))
    out, inside = [], np.zeros((h, w), bool)
    for x0, y0, x1, y1 in regions:
        inside[y0:y1, x0:x1] = True
        out.append((evidence(item.hole[y0:y1, x0:x1]), truth is not None and bool(truth[y0:y1, x0:x1].any())))
    if (~inside).any():
        out.append((evidence(item.hole & ~inside, area=(~inside).sum()), truth is not None and bool((truth & ~inside).any())))
    return out


def damaged_copy(rgb8: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The photo with one kind of the training renderer's damage in its central two thirds, and its truth."""
    h, w = rgb8.shape[:2]
    y0, x0, y1, x1 = h // 6, w // 6, h - h // 6, w - w // 6
    region = rgb8[y0:y1, x0:x1].astype(np.float32) / 255
    out, t = render_painted(region, rng) if kind == "painted" else render_damage(region, kind, rng)
    hurt_rgb = rgb8.copy()
    hurt_rgb[y0:y1, x0:x1] = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
    truth = np.zeros((h, w), bool)
    truth[y0:y1, x0:x1] = t
    return hurt_rgb, truth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-source", type=int, default=0, help="val photos per source (0: all of them)")
    ap.add_argument("--draws", type=int, default=2, help="damaged copies of each photo, each with another kind")
    ap.add_argument("--max-clean", type=float, default=0.03, help="largest share of clean regions repainted")
    args = ap.parse_args()
    learned = learned_detector(required=True)
    restorer = Restorer(TeleaInpainter(), MtcnnDetector(), detected_masks(decision=False))  # no decision
    rng = np.random.default_rng(0)
    clean, damaged = [], []
    photos = [p for s in SOURCES for p in held_out_photos(SHARED / "faces" / s, "val", args.per_source)]
    for i, p in enumerate(photos):
        rgb8 = to_rgb8(read_image(p).display())
        for feats, hurt in examples(restorer, rgb8, None):
            clean.append(feats)
        for draw in range(args.draws):
            hurt_rgb, truth = damaged_copy(rgb8, KINDS[(i * args.draws + draw) % len(KINDS)], rng)
            for feats, hurt in examples(restorer, hurt_rgb, truth):
                (damaged if hurt else clean).append(feats)
    decision, fit = fit_decision(clean, damaged, args.max_clean)
    model, meta = load_damage_net(learned.weights)
    meta = {**meta, "decision": decision.to_json(), "decision_fit": {**fit, "split": "val", "photos": len(photos),
                                                                    "draws": args.draws, "kinds": list(KINDS)}}
    save_damage_net(model, learned.weights, meta)
    print(json.dumps({"weights": str(learned.weights), "decision": decision.to_json(), "fit": fit}))


if __name__ == "__main__":
    main()
