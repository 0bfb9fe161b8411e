"""Big faces, through `faceheal restore`: is the repair as detailed as the skin and grain around it?

Held-out CelebA-HQ photos (512 px; the 'test' split by default, 'val' for choices), whose faces are
2-3 times the model's crop scale, and (test only) the modern selfies of ../shared/data/photos/large
(faces 5-10 times it). White damage over 15-35 % of the main face's box, the mask supplied (thin strokes on half the photos, wide irregular brush marks on the others). Restored with the default (`--native-detail`: the photo-resolution classical fill near the damage's
edge, the model's repair deeper in, and the surroundings' fine texture given to the repair) and
`--no-native-detail` (the 256 px result resampled up, as smooth as the crop), and by
OpenCV Telea on the whole photo. Scores over the damaged pixels against the undamaged photo: PSNR,
LPIPS of the face box (resized to 256), and the no-reference sharpness ratio of the repair to its
surroundings (faceheal/metrics.py `hole_sharpness`; the undamaged photo's own ratio at the same
pixels is given beside it: a repair should be near that).

    python benchmarks/big_faces.py [--split test] [--limit 16]

Writes benchmarks/results/big_faces[_val].json/.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from faceheal.evaluate_photos import DamageSource, held_out_photos, main_face  # noqa: E402
from faceheal.faces.detect import MtcnnDetector  # noqa: E402
from faceheal.faces.find import find_faces  # noqa: E402
from faceheal.images import read_image, to_rgb8  # noqa: E402
from faceheal.lpips import load_lpips  # noqa: E402
from faceheal.masks.synthetic import synthetic_mask  # noqa: E402
from faceheal.metrics import hole_grain, hole_sharpness, image_psnr  # noqa: E402
from faceheal.model.classical import classical_fill  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]


def restore(folder: Path, masks: Path, out: Path, extra: list[str]) -> float:
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "faceheal", "restore", str(folder), "-o", str(out), "--masks", str(masks),
                    "--quiet", *extra], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=os.environ.copy())
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=("val", "test"), default="test")
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--kinds", default="strokes,irregular",
                    help="damage kinds, in turn over the photos: strokes, irregular (wide brush marks), nvidia (the "
                         "NVIDIA irregular masks at 30-50 %% of the face box, from ../shared/data/masks)")
    ap.add_argument("--restore-args", default="", help="more `faceheal restore` options for both faceheal runs (trials)")
    ap.add_argument("--keep", type=Path, help="copy the inputs, masks and restored photos here (to look at them)")
    args = ap.parse_args()
    extra_args = args.restore_args.split()
    sets = {"CelebA-HQ, 512 px": held_out_photos(SHARED / "faces" / "celebamask" / "images", args.split, args.limit)}
    if args.split == "test":  # never used for a choice: modern selfies of 2-4 thousand px, faces of 600-1500 px
        sets["photos/large (selfies, 2-4k px)"] = sorted(p for p in (SHARED / "photos" / "large").iterdir() if p.is_file())
    detector = MtcnnDetector()
    lpips = load_lpips()
    rng = np.random.default_rng(0)
    kinds = tuple(args.kinds.split(","))
    nvidia = {b: DamageSource("nvidia", SHARED / "masks" / "nvidia_irregular", b) for b in (2, 3)} if "nvidia" in kinds else {}
    result = {"split": args.split, "weights": os.environ.get("FACEHEAL_WEIGHTS", "shipped"), "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for set_no, (set_name, photos) in enumerate(sets.items()):
            side = set_no
            inp, masks = tmp / f"in{side}", tmp / f"m{side}"
            inp.mkdir(), masks.mkdir()
            clean, holes, boxes, kind_of = {}, {}, {}, {}
            for i, p in enumerate(photos):
                rgb = to_rgb8(read_image(p).display())
                face = main_face(find_faces(detector, rgb)[0], rgb.shape[:2])
                if face is None:
                    continue
                h, w = rgb.shape[:2]
                x0, y0, x1, y1 = (int(v) for v in face.box)
                x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
                hole = np.zeros((h, w), bool)
                kind = kinds[i % len(kinds)]
                if kind == "nvidia":  # big holes: 30-40 % and 40-50 % of the box in turn
                    hole[y0:y1, x0:x1] = nvidia[2 + (i // len(kinds)) % 2].mask(2 + (i // len(kinds)) % 2, (y1 - y0, x1 - x0))
                else:  # thin strokes, and wide brush marks
                    hole[y0:y1, x0:x1] = synthetic_mask((y1 - y0, x1 - x0), kind, (0.15, 0.35), int(rng.integers(1 << 31)))
                kind_of[f"{i:03d}.png"] = kind
                damaged = rgb.copy()
                damaged[hole] = 255
                name = f"{i:03d}.png"
                cv2.imwrite(str(inp / name), damaged[..., ::-1])
                cv2.imwrite(str(masks / name), hole.astype(np.uint8) * 255)
                clean[name], holes[name], boxes[name] = rgb, hole, (x0, y0, x1, y1)
            outs = {"faceheal (native detail)": (tmp / f"a{side}", extra_args),
                    "faceheal --no-native-detail (256 px resampled)": (tmp / f"b{side}", ["--no-native-detail", *extra_args])}
            rows = {}
            for label, (folder, extra) in outs.items():
                seconds = restore(inp, masks, folder, extra)
                rows[label] = {"folder": folder, "seconds": seconds}
            rows["OpenCV Telea"] = {"folder": None, "seconds": 0.0}
            table = {}
            for label, row in rows.items():
                ps, lp, sh, sh_clean, gr, gr_clean, by_kind, sharp_by_kind = [], [], [], [], [], [], {}, {}
                for name, rgb in clean.items():
                    hole = holes[name]
                    if row["folder"] is None:
                        damaged = cv2.imread(str(inp / name))[..., ::-1]
                        out = (classical_fill(damaged.astype(np.float32) / 255, hole) * 255 + 0.5).astype(np.uint8)
                    else:
                        path = row["folder"] / name
                        if not path.is_file():
                            continue
                        out = cv2.imread(str(path))[..., ::-1]
                    ps.append(image_psnr(out[hole][None] / 255.0, rgb[hole][None] / 255.0))
                    by_kind.setdefault(kind_of[name], []).append(ps[-1])
                    x0, y0, x1, y1 = boxes[name]
                    a = cv2.resize(out[y0:y1, x0:x1], (256, 256), interpolation=cv2.INTER_AREA)
                    b = cv2.resize(rgb[y0:y1, x0:x1], (256, 256), interpolation=cv2.INTER_AREA)
                    with torch.inference_mode():
                        lp.append(float(lpips(tensor(a) * 2 - 1, tensor(b) * 2 - 1)[0]))
                    h = torch.from_numpy(hole)[None, None].float()
                    sh.append(float(hole_sharpness(tensor(out), h)[0]))
                    sh_clean.append(float(hole_sharpness(tensor(rgb), h)[0]))
                    sharp_by_kind.setdefault(kind_of[name], []).append((sh[-1], sh_clean[-1]))
                    gr.append(hole_grain(out, hole))
                    gr_clean.append(hole_grain(rgb, hole))
                table[label] = {"photos": len(ps), "psnr": round(float(np.mean(ps)), 2), "lpips": round(float(np.mean(lp)), 4),
                                "sharpness": round(float(np.median(sh)), 3), "sharpness_clean": round(float(np.median(sh_clean)), 3),
                                "grain": round(float(np.median(gr)), 3), "grain_clean": round(float(np.median(gr_clean)), 3),
                                "seconds": round(row["seconds"], 1),
                                "psnr_by_kind": {k: round(float(np.mean(v)), 2) for k, v in by_kind.items()},
                                "sharpness_by_kind": {k: [round(float(np.median([a for a, _ in v])), 3),
                                                          round(float(np.median([b for _, b in v])), 3)]
                                                      for k, v in sharp_by_kind.items()}}
            result["sets"][set_name] = table
            if args.keep:
                import shutil

                for folder in (inp, masks, *(f for f, _ in outs.values())):
                    shutil.copytree(folder, args.keep / folder.name, dirs_exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "big_faces" if args.split == "test" else f"big_faces_{args.split}"
    if args.restore_args:
        stem += "_trial"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    lines = ["# Big faces: detail of the repair at the photo's resolution", "",
             f"Held-out CelebA-HQ photos ('{args.split}' split, 512 px, faces about 300 px: 2-3x the model's crop scale)"
             + (" and the modern selfies of photos/large (faces of 600-1500 px)" if args.split == "test" else "") +
             f"; white damage in the main face's box, the kinds in turn over the photos ({', '.join(kinds)}; strokes and "
             "irregular brush marks over 15-35 % of the box, NVIDIA masks over 30-50 %), mask supplied, default options otherwise (`--grain auto`: big faces' repairs get the fine texture around them); weights: " + result["weights"] + ".", "",
             "| photos | method | PSNR (damaged pixels) | PSNR by kind | LPIPS (face box) | sharpness of the repair (undamaged photo's own) | grain of the repair (undamaged photo's own) | seconds (run) |",
             "|---|---|---|---|---|---|---|---|"]
    for side, table in result["sets"].items():
        for label, r in table.items():
            by_kind = " / ".join(f"{k} {v}" for k, v in r["psnr_by_kind"].items())
            sharp = " / ".join(f"{k} {a} ({b})" for k, (a, b) in r["sharpness_by_kind"].items())
            lines.append(f"| {side} | {label} | {r['psnr']} | {by_kind} | {r['lpips']} | {r['sharpness']} ({r['sharpness_clean']}); {sharp} | {r['grain']} ({r['grain_clean']}) | {r['seconds']} |")
    lines += ["", "Sharpness: Laplacian energy inside the damage over that of a band of known pixels around it "
              "(median over photos); 1 would be as detailed as the surroundings. Grain: median |Laplacian| inside over "
              "that of the same band (`metrics.hole_grain`; edges hardly move a median, so this is the fine noise "
              "and texture alone), median over photos.", "",
              f"Command: `python benchmarks/big_faces.py {' '.join(sys.argv[1:])}`"]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
