"""The whole photo restored, through `faceheal restore`: damage painted across faces and background.

Held-out whole photos (All-Age-Faces, the 'test' split by default; `--split val` for choices) get
white damage over the whole photo (seeded synthetic strokes, scratches and blobs, 3-12 % of the
photo), the mask supplied. Restored three ways on the same photos and masks:
- `faceheal restore` (default: the generator on faces, the texture inpainter away from them),
- `faceheal restore --model telea` (OpenCV everywhere, through the same pipeline),
- plain OpenCV Telea on the whole photo (no faceheal at all).
Scores against the undamaged photo: PSNR of the damaged pixels away from faces (outside every face
crop's footprint), PSNR of all damaged pixels, damaged pixels left unrepaired (the report's count),
a seam measure (the mean |luma step| across the line where a face's repair meets the texture
inpainter's, the crop's square inset 9 crop px, over the same across the squares 4 crop px either
side, on damaged pixels only: near the undamaged photo's own ratio = no seam, above it = a seam), and
seconds per megapixel of each run on this machine.

    python benchmarks/whole_photo.py [--split test] [--limit 40]

`FACEHEAL_WEIGHTS=DIR` runs other weights. Writes benchmarks/results/whole_photo[_val].json/.md.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from faceheal.evaluate_photos import held_out_photos  # noqa: E402
from faceheal.faces.align import crop_region, similarity_transform, template  # noqa: E402
from faceheal.images import read_image, to_rgb8  # noqa: E402
from faceheal.masks.synthetic import synthetic_mask  # noqa: E402
from faceheal.metrics import image_psnr  # noqa: E402
from faceheal.model.classical import classical_fill  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
KINDS = ("strokes", "scratches", "blobs")


def psnr_on(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float | None:
    if not where.any():
        return None
    return image_psnr(a[where][None] / 255.0, b[where][None] / 255.0)


def footprints(faces: list[dict], shape: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The union of the face crops' footprints (their bounding boxes), and each crop's photo -> crop matrix."""
    inside = np.zeros(shape, bool)
    matrices = []
    for f in faces:
        if not f.get("landmarks"):
            continue
        m = similarity_transform(np.array(f["landmarks"], np.float64), template(256))
        x0, y0, x1, y1 = crop_region(m, 256, shape)
        inside[y0:y1, x0:x1] = True
        matrices.append(m)
    return inside, matrices


# where the face's repair meets the texture inpainter's: paste-back fades the crop out over its last
# 8 crop px (faceheal/faces/align.py paste_back), and damage the face does not fully cover is the
# texture pass's, so the junction is the square inset this far into the crop
JUNCTION = 9
BESIDE = 4  # crop px either side of it, for comparison


def square_steps(luma: np.ndarray, hole: np.ndarray, matrix: np.ndarray, inset: float, size: int = 256) -> list[float]:
    """|luma step| across the crop square inset `inset` crop px (its 4 sides, sampled each half crop px,
    the step taken between the points half a crop px inside and outside), where both points lie on
    damaged photo pixels; in photo coordinates through the inverse of `matrix` (bilinear luma)."""
    from faceheal.faces.align import invert_affine

    inv = invert_affine(matrix)
    lo, hi = inset, size - inset
    t = np.arange(lo, hi, 0.5)
    pts_in, pts_out = [], []
    for side in range(4):  # top, bottom, left, right: a point on the side and its inward normal
        if side < 2:
            y = lo if side == 0 else hi
            on = np.stack([t, np.full_like(t, y)], 1)
            normal = np.array([0.0, 1.0 if side == 0 else -1.0])
        else:
            x = lo if side == 2 else hi
            on = np.stack([np.full_like(t, x), t], 1)
            normal = np.array([1.0 if side == 2 else -1.0, 0.0])
        pts_in.append(on + 0.5 * normal)
        pts_out.append(on - 0.5 * normal)
    a = np.concatenate(pts_in) @ inv[:, :2].T + inv[:, 2]
    b = np.concatenate(pts_out) @ inv[:, :2].T + inv[:, 2]
    h, w = hole.shape
    ok = (a[:, 0] >= 0) & (a[:, 0] < w - 1) & (a[:, 1] >= 0) & (a[:, 1] < h - 1) & \
         (b[:, 0] >= 0) & (b[:, 0] < w - 1) & (b[:, 1] >= 0) & (b[:, 1] < h - 1)
    a, b = a[ok], b[ok]
    dmg = hole[a[:, 1].round().astype(int), a[:, 0].round().astype(int)] & hole[b[:, 1].round().astype(int), b[:, 0].round().astype(int)]
    if not dmg.any():
        return []
    a, b = a[dmg].astype(np.float32), b[dmg].astype(np.float32)
    la = cv2.remap(luma, a[:, 0:1], a[:, 1:2], cv2.INTER_LINEAR)[:, 0]
    lb = cv2.remap(luma, b[:, 0:1], b[:, 1:2], cv2.INTER_LINEAR)[:, 0]
    return list(np.abs(la - lb).astype(float))


def seam_parts(img: np.ndarray, hole: np.ndarray, matrices) -> tuple[list[float], list[float]]:
    """(steps across the junction of face repair and texture repair, steps across the squares BESIDE
    crop px either side of it), on damaged pixels only: a seam shows as bigger steps at the junction."""
    luma = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    at, beside = [], []
    for m in matrices:
        at += square_steps(luma, hole, m, JUNCTION)
        beside += square_steps(luma, hole, m, JUNCTION - BESIDE) + square_steps(luma, hole, m, JUNCTION + BESIDE)
    return at, beside


def run_restore(folder: Path, masks: Path, out: Path, extra: list[str]) -> tuple[dict[str, dict], float]:
    report = out.with_suffix(".jsonl")
    cmd = [sys.executable, "-m", "faceheal", "restore", str(folder), "-o", str(out), "--masks", str(masks),
           "--report", str(report), "--quiet", *extra]
    t0 = time.time()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    seconds = time.time() - t0
    lines = [json.loads(x) for x in report.read_text().splitlines() if x.strip()]
    return {Path(r["path"]).name: r for r in lines}, seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=("val", "test"), default="test")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    photos = held_out_photos(SHARED / "faces" / "aaf" / "images", args.split, args.limit)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir(), (tmp / "masks").mkdir()
        clean, holes, telea = {}, {}, {}
        megapixels = 0.0
        t_telea = 0.0
        for i, p in enumerate(photos):
            rgb = to_rgb8(read_image(p).display())
            h, w = rgb.shape[:2]
            hole = synthetic_mask((h, w), KINDS[i % len(KINDS)], (0.03, 0.12), int(rng.integers(1 << 31)))
            damaged = rgb.copy()
            damaged[hole] = 255
            name = f"{i:04d}.png"
            cv2.imwrite(str(tmp / "in" / name), damaged[..., ::-1])
            cv2.imwrite(str(tmp / "masks" / name), hole.astype(np.uint8) * 255)
            clean[name], holes[name] = rgb, hole
            t0 = time.time()
            telea[name] = (classical_fill(damaged.astype(np.float32) / 255, hole) * 255 + 0.5).astype(np.uint8)
            t_telea += time.time() - t0
            megapixels += h * w / 1e6
        runs = {"faceheal restore": run_restore(tmp / "in", tmp / "masks", tmp / "out_default", []),
                "faceheal restore --model telea": run_restore(tmp / "in", tmp / "masks", tmp / "out_telea", ["--model", "telea"])}
        rows, per_photo = {}, {}
        for label, (reports, seconds) in [*runs.items(), ("OpenCV Telea, whole photo", (None, t_telea)),
                                          ("undamaged photo (reference)", ("clean", 0.0))]:
            away, alldmg, left, seam_at, seam_beside = [], [], 0, [], []
            for name, rgb in clean.items():
                hole = holes[name]
                if reports is None or reports == "clean":
                    out = telea[name] if reports is None else rgb
                    faces = next(iter(runs.values()))[0].get(name, {}).get("faces", [])  # the same faces, for the same regions
                else:
                    r = reports.get(name)
                    if r is None or r["status"] == "error":
                        continue
                    left += r.get("unrepaired_pixels", 0)
                    faces = r.get("faces", [])
                    folder = "out_default" if label == "faceheal restore" else "out_telea"
                    out = cv2.imread(str(tmp / folder / name))[..., ::-1]
                inside, boxes = footprints(faces, hole.shape)
                v = psnr_on(out, rgb, hole & ~inside)
                if v is not None:
                    away.append(v)
                    per_photo.setdefault(name, {})[label] = round(v, 2)
                alldmg.append(psnr_on(out, rgb, hole))
                at, beside = seam_parts(out, hole, boxes)
                seam_at += at
                seam_beside += beside
            ref = reports == "clean"
            rows[label] = {"photos": len(alldmg), "psnr_away_from_faces": None if ref else round(float(np.mean(away)), 2),
                           "psnr_damaged": None if ref else round(float(np.mean(alldmg)), 2), "unrepaired_pixels": left,
                           "seam_ratio": round(float(np.mean(seam_at)) / max(float(np.mean(seam_beside)), 1e-9), 3) if seam_at else None,
                           "seam_samples": len(seam_at),
                           "seconds_per_megapixel": round(seconds / megapixels, 2)}
    result = {"split": args.split, "photos": len(photos), "megapixels": round(megapixels, 2),
              "weights": os.environ.get("FACEHEAL_WEIGHTS", "shipped"), "rows": rows,
              "psnr_away_from_faces_per_photo": per_photo}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "whole_photo" if args.split == "test" else f"whole_photo_{args.split}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    lines = ["# The whole photo restored (damage across faces and background, mask supplied)", "",
             f"{len(photos)} held-out All-Age-Faces photos ('{args.split}' split), {megapixels:.1f} megapixels; white "
             "strokes, scratches and blobs over 3-12 % of each photo; weights: " + result["weights"] + ".", "",
             "| method | PSNR, damage away from faces | PSNR, all damage | pixels left unrepaired | seam where face repair meets texture repair (the undamaged photo's own for reference) | s per megapixel |",
             "|---|---|---|---|---|---|"]
    for label, r in rows.items():
        if label.startswith("undamaged"):
            lines.append(f"| {label} | | | | {r['seam_ratio']} | |")
        else:
            lines.append(f"| {label} | {r['psnr_away_from_faces']} | {r['psnr_damaged']} | {r['unrepaired_pixels']} | "
                         f"{r['seam_ratio']} | {r['seconds_per_megapixel']} |")
    lines += ["", "PSNR in dB over the damaged pixels against the undamaged photo (mean over photos). Seconds include "
              "model loading and face detection for the faceheal runs (2-core CPU, shared with other jobs when noted).",
              "", f"Command: `python benchmarks/whole_photo.py {' '.join(sys.argv[1:])}`"]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
