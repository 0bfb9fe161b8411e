"""Grain in repairs, through `faceheal restore`: real old prints (../shared/data/photos/faded and
scratched) and clean held-out photos, with white strokes painted across their faces and the masks
supplied; restored with `--grain off` and `--grain auto` (the default). Per set: the fine-noise ratio
inside the repairs over their surroundings (faceheal/grain.py: 1 = matched, a smooth patch is well
below), and PSNR of the repaired pixels against the undamaged photo (added grain is independent of
the photo's own, so it costs PSNR where it is added: the price of a repair that does not show).

    python benchmarks/grain.py [--per-source 10]

Writes benchmarks/results/grain.json and .md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from faceheal.evaluate_photos import held_out_photos  # noqa: E402
from faceheal.grain import grain_ratio  # noqa: E402
from faceheal.images import read_image, to_rgb8  # noqa: E402
from faceheal.masks.synthetic import synthetic_mask  # noqa: E402
from faceheal.metrics import hole_grain, image_psnr  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-source", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    sets = {"old prints (photos/faded, scratched)": sorted(p for n in ("faded", "scratched") for p in (SHARED / "photos" / n).iterdir()),
            "held-out photos (AAF, CelebA-HQ)": [p for s in ("aaf/images", "celebamask/images")
                                                 for p in held_out_photos(SHARED / "faces" / s, "test", args.per_source)]}
    rng = np.random.default_rng(0)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, paths in sets.items():
            work = tmp / str(len(result))
            (work / "in").mkdir(parents=True), (work / "masks").mkdir()
            clean = {}
            for i, p in enumerate(paths):
                rgb = to_rgb8(read_image(p).display())
                h, w = rgb.shape[:2]
                hole = np.zeros((h, w), bool)
                y0, x0 = h // 5, w // 5
                hole[y0:h - y0, x0:w - x0] = synthetic_mask((h - 2 * y0, w - 2 * x0), "strokes", (0.05, 0.1), rng)
                damaged = rgb.copy()
                damaged[hole] = 255
                stem = f"{i:03d}"
                cv2.imwrite(str(work / "in" / f"{stem}.png"), damaged[..., ::-1])
                cv2.imwrite(str(work / "masks" / f"{stem}.png"), hole.astype(np.uint8) * 255)
                clean[stem] = (rgb, hole)
            rows = {}
            for mode in ("off", "auto"):
                out = work / f"out_{mode}"
                subprocess.run([sys.executable, "-m", "faceheal", "restore", str(work / "in"), "-o", str(out), "--masks",
                                str(work / "masks"), "--grain", mode, "--report", str(work / f"{mode}.jsonl"), "-q"], check=False)
                report = {Path(r["path"]).stem: r for r in map(json.loads, (work / f"{mode}.jsonl").read_text().splitlines())}
                ratios, psnrs, grainy, given, robust = [], [], 0, [], []
                for stem, (rgb, hole) in clean.items():
                    r = report.get(stem)
                    if r is None or r["status"] not in ("ok", "partial"):
                        continue
                    restored = cv2.imread(str(out / f"{stem}.png"))[..., ::-1]
                    repaired = hole & (restored != (cv2.imread(str(work / "in" / f"{stem}.png"))[..., ::-1])).any(-1)
                    if repaired.sum() < 200:
                        continue
                    grainy += bool(r.get("grain"))
                    ratios.append(grain_ratio(restored.astype(np.float32) / 255, repaired))
                    if r.get("grain"):
                        given.append(ratios[-1])
                        robust.append(hole_grain(restored, repaired))
                    psnrs.append(image_psnr(restored[repaired].astype(np.float64) / 255, rgb[repaired].astype(np.float64) / 255))
                rows[mode] = {"photos": len(ratios), "given_grain": grainy, "grain_ratio": round(float(np.nanmedian(ratios)), 3),
                              "grain_ratio_given": round(float(np.nanmedian(given)), 3) if given else None,
                              "hole_grain_given": round(float(np.nanmedian(robust)), 3) if robust else None,
                              "psnr_repaired": round(float(np.mean(psnrs)), 2)}
            original = [grain_ratio(rgb.astype(np.float32) / 255, hole) for rgb, hole in clean.values()]
            rows["original"] = {"grain_ratio": round(float(np.nanmedian(original)), 3),
                                "hole_grain": round(float(np.nanmedian([hole_grain(rgb, hole) for rgb, hole in clean.values()])), 3)}
            result[name] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "grain.json").write_text(json.dumps(result, indent=1))
    lines = ["# Grain in repairs (`faceheal restore --grain`)", "",
             "Fine-noise ratio inside the repairs over their surroundings (1 = matched; the undamaged photo's own "
             "ratio over the same pixels for reference), and PSNR of the repaired pixels against the undamaged photo. "
             "Ratio: high-pass RMS (`grain.grain_ratio`); median |Laplacian| (`metrics.hole_grain`): the same for the "
             "bulk of the fine noise, which the few edges in a band hardly move.", "",
             "| set | photos | `--grain off`: ratio / PSNR | `--grain auto` (default): given grain, ratio / PSNR | on the photos given grain: ratio / median \\|Laplacian\\| | undamaged photo: ratio / median \\|Laplacian\\| |",
             "|---|---|---|---|---|---|"]
    for name, rows in result.items():
        off, auto = rows["off"], rows["auto"]
        lines.append(f"| {name} | {off['photos']} | {off['grain_ratio']} / {off['psnr_repaired']} | {auto['given_grain']} of "
                     f"{auto['photos']}: {auto['grain_ratio']} / {auto['psnr_repaired']} | {auto['grain_ratio_given']} / {auto['hole_grain_given']} | {rows['original']['grain_ratio']} / {rows['original']['hole_grain']} |")
    lines += ["", f"Command: `python benchmarks/grain.py {' '.join(sys.argv[1:])}`"]
    (args.out / "grain.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
