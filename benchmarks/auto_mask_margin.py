"""How far around a detected damage mask the damage really reaches: the margin restore grows detected
masks by (masks/source.py's AUTO_MASK_GROW).

Synthetic damage (faceheal's renderer: scratches, dust, missing areas) on held-out ('val') faces; the
pixels the damage visibly changed (more than 3 levels in a channel) near what the default detector
found (within 8 px) that a mask grown by r px still misses, for r = 0..4. Damage the detector missed
altogether is the detector's recall (benchmarks/eval_damage.py), not a margin question.
Results: benchmarks/results/auto_mask_margin.md.

    python benchmarks/auto_mask_margin.py [--n 40]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from faceheal.evaluate_photos import held_out_photos  # noqa: E402
from faceheal.images import read_image, to_float_rgb  # noqa: E402
from faceheal.masks.damage import DamageSettings, detect_damage  # noqa: E402
from faceheal.masks.render import render_damage  # noqa: E402
from faceheal.masks.source import grow_mask  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
KINDS = ("scratches", "dust", "missing")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    args = ap.parse_args()
    photos = held_out_photos(SHARED / "faces" / "celebamask" / "images", "val", args.n)
    rng = np.random.default_rng(0)
    missed = {k: np.zeros(5) for k in KINDS}
    total = {k: 0 for k in KINDS}
    for p in photos:
        face = cv2.resize(to_float_rgb(read_image(p).display()), (256, 256), interpolation=cv2.INTER_AREA)
        for kind in KINDS:
            damaged, _ = render_damage(face, kind, rng)
            changed = (np.abs(damaged - face) > 3 / 255).any(-1)
            found = detect_damage(damaged, DamageSettings())
            near = changed & grow_mask(found, 8) if found.any() else np.zeros_like(changed)
            total[kind] += int(near.sum())
            for r in range(5):
                cover = grow_mask(found, r) if r else found
                missed[kind][r] += int((near & ~cover).sum())
    lines = ["# Margin around detected damage", "", f"`python benchmarks/auto_mask_margin.py --n {args.n}`: {len(photos)} "
             "held-out ('val') CelebA-HQ faces at 256 px, faceheal's damage renderer, the default detector. "
             "Share of the visibly changed pixels near found damage that a mask grown by r px misses:", "",
             "| kind | " + " | ".join(f"r = {r}" for r in range(5)) + " |", "|---|" + "---|" * 5]
    for k in KINDS:
        lines.append(f"| {k} | " + " | ".join(f"{100 * missed[k][r] / max(total[k], 1):.1f} %" for r in range(5)) + " |")
    out = ROOT / "benchmarks" / "results" / "auto_mask_margin.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
