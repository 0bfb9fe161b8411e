"""Does a default `faceheal restore` leave clean photos alone, and still repair damaged ones?

The product path, nothing else: each set is put in a folder and `faceheal restore IN -o OUT --report R`
is run on it with default options (damage detected automatically), exactly as a user runs it.

- clean held-out photos (AAF, CelebA-HQ, UTKFace; `--split val` to choose thresholds, `test` to report)
  and the real clean photos of ../shared/data/photos (large selfies, gray_aligned, faded, whole):
  photos changed (any pixel), photos reported damaged, changed pixels per photo;
- the same held-out photos shrunk to thumbnails (eyes 20 px apart, JPEG q 85), as web-size copies and
  small scans hold faces: photos changed, as above;
- the same held-out photos with one kind of damage each (the training renderer's kinds and the
  independent families of faceheal/masks/families.py, inside the main face's box): photos repaired
  and the share of damaged pixels that changed, so a stricter decision shows what it costs.

    python benchmarks/clean_photos.py [--split test] [--per-source 30]

`FACEHEAL_WEIGHTS=DIR` runs other weights. Writes benchmarks/results/clean_photos[_val].json/.md.
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
from faceheal.images import read_image, to_rgb8  # noqa: E402
from faceheal.masks.families import FAMILY_NAMES, render_family  # noqa: E402
from faceheal.masks.render import DAMAGE_KINDS, render_damage  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SOURCES = ("aaf/images", "celebamask/images", "utkface")
REAL_CLEAN = ("large", "gray_aligned", "faded", "whole")
THUMB_EYES, THUMB_QUALITY = 20, 85  # thumbnails: eyes this many px apart, saved as JPEG of this quality
DAMAGES = DAMAGE_KINDS + FAMILY_NAMES


def restore(folder: Path, work: Path, extra: list[str]) -> list[dict]:
    """`faceheal restore folder -o work/out --report work/report.jsonl`; the report's lines."""
    report = work / "report.jsonl"
    cmd = [sys.executable, "-m", "faceheal", "restore", str(folder), "-o", str(work / "out"), "--report", str(report), *extra]
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    return [json.loads(line) for line in report.read_text().splitlines() if line.strip()]


def summary(lines: list[dict]) -> dict:
    faced = [r for r in lines if r["status"] not in ("no-face", "error")]
    changed = [r["pixels_changed"] for r in faced]
    return {"photos": len(lines), "with_face": len(faced),
            "changed": sum(c > 0 for c in changed),
            "reported_damaged": sum(r["damaged_pixels"] > 0 for r in faced),
            "changed_fraction": round(sum(c > 0 for c in changed) / max(len(faced), 1), 3),
            "median_pixels_changed": float(np.median(changed)) if changed else 0.0,
            "changed_files": sorted(Path(r["path"]).name for r in lines if r["pixels_changed"] > 0)}


def damaged_set(photos: list[Path], folder: Path, seed: int = 0) -> dict[str, tuple[str, np.ndarray]]:
    """Each photo with one damage kind (cycling through all), written as PNG; name -> (kind, truth)."""
    rng = np.random.default_rng(seed)
    truths = {}
    for i, p in enumerate(photos):
        kind = DAMAGES[i % len(DAMAGES)]
        rgb = to_rgb8(read_image(p).display()).astype(np.float32) / 255
        h, w = rgb.shape[:2]
        # damage the central part (where the face is) so that it lies on the face, as in a portrait
        y0, x0, y1, x1 = h // 6, w // 6, h - h // 6, w - w // 6
        region = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        out, t = render_family(region, kind, rng) if kind in FAMILY_NAMES else render_damage(region, kind, rng)
        rgb[y0:y1, x0:x1] = out
        truth = np.zeros((h, w), bool)
        truth[y0:y1, x0:x1] = t
        name = f"{i:04d}_{kind}.png"
        cv2.imwrite(str(folder / name), (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)[..., ::-1])
        truths[name] = (kind, truth)
    return truths


def thumbnails(photos: list[Path], folder: Path) -> None:
    """Each photo shrunk so that its largest face's eyes are THUMB_EYES px apart and saved as a JPEG:
    the web-size copies and small scans an archive also holds (the Pillow test suite's 128 px Hopper
    portrait, eyes 21 px apart, is one). Photos whose face is already that small or not found: left out."""
    from faceheal.faces.detect import MtcnnDetector

    detector = MtcnnDetector()
    for i, p in enumerate(photos):
        rgb = to_rgb8(read_image(p).display())
        faces = detector.detect(rgb)
        if not faces:
            continue
        eyes = max(float(np.linalg.norm(np.asarray(f.landmarks)[1] - np.asarray(f.landmarks)[0])) for f in faces)
        if eyes <= THUMB_EYES:
            continue
        small = cv2.resize(rgb, None, fx=THUMB_EYES / eyes, fy=THUMB_EYES / eyes, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{i:04d}_{p.stem}.jpg"), small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=("val", "test"), default="test")
    ap.add_argument("--per-source", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--skip-damaged", action="store_true", help="clean sets only")
    ap.add_argument("--sensitivity", type=float, default=None, help="passed to faceheal restore (default: its own)")
    ap.add_argument("--fill-outside", default=None, help="passed to faceheal restore (default: its own)")
    args = ap.parse_args()
    photos = [p for s in SOURCES for p in held_out_photos(SHARED / "faces" / s, args.split, args.per_source)]
    result = {"split": args.split, "weights": os.environ.get("FACEHEAL_WEIGHTS", "shipped"), "sensitivity": args.sensitivity,
              "fill_outside": args.fill_outside,
              "clean": {}, "damaged": {}}
    extra = [] if args.sensitivity is None else ["--sensitivity", str(args.sensitivity)]
    if args.fill_outside is not None:
        extra += ["--fill-outside", args.fill_outside]
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = {"held-out photos": photos}
        sets.update({f"photos/{n}": sorted(p for p in (SHARED / "photos" / n).iterdir() if p.is_file() and p.suffix != ".txt")
                     for n in REAL_CLEAN})
        for name, paths in sets.items():
            folder, work = tmp / f"in_{len(result['clean'])}", tmp / f"work_{len(result['clean'])}"
            folder.mkdir(), work.mkdir()
            for i, p in enumerate(paths):
                (folder / f"{i:04d}_{p.name}").symlink_to(p.resolve())
            lines = restore(folder, work, extra)
            result["clean"][name] = summary(lines)
        folder, work = tmp / "thumbnails", tmp / "work_thumbnails"
        folder.mkdir(), work.mkdir()
        thumbnails(photos, folder)
        name = f"held-out photos as thumbnails (eyes {THUMB_EYES} px, JPEG q{THUMB_QUALITY})"
        lines = restore(folder, work, extra)
        result["clean"][name] = summary(lines)
        if not args.skip_damaged:
            folder, work = tmp / "damaged", tmp / "work_damaged"
            folder.mkdir(), work.mkdir()
            truths = damaged_set(photos, folder)
            lines = {Path(r["path"]).name: r for r in restore(folder, work, extra)}
            per_kind: dict[str, list] = {k: [] for k in DAMAGES}
            for name, (kind, truth) in truths.items():
                r = lines.get(name)
                if r is None or r["status"] in ("no-face", "error"):
                    continue
                out = cv2.imread(str(work / "out" / name))[..., ::-1]
                before = cv2.imread(str(folder / name))[..., ::-1]
                changed = (out != before).any(axis=2)
                per_kind[kind].append((r["pixels_changed"] > 0, float(changed[truth].mean()) if truth.any() else 1.0))
            for kind, rows in per_kind.items():
                if rows:
                    result["damaged"][kind] = {"photos": len(rows), "repaired": round(float(np.mean([a for a, _ in rows])), 3),
                                               "damage_changed": round(float(np.mean([b for _, b in rows])), 3)}
    result["seconds"] = round(time.time() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "clean_photos" if args.split == "test" else f"clean_photos_{args.split}"
    if args.sensitivity is not None:
        stem += f"_sensitivity{args.sensitivity:g}"
    if args.fill_outside is not None:
        stem += f"_fill_{args.fill_outside}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    lines = ["# Clean photos through `faceheal restore` (default options)", "",
             f"Split: {args.split}; weights: {result['weights']}; sensitivity: {args.sensitivity or 'default'}; "
             f"fill outside faces: {args.fill_outside or 'default'}. "
             "A photo counts as changed when any pixel of it changed.", "",
             "| set | photos | with a face | changed | reported damaged | median pixels changed |", "|---|---|---|---|---|---|"]
    for name, s in result["clean"].items():
        lines.append(f"| {name} | {s['photos']} | {s['with_face']} | **{s['changed']}** ({s['changed_fraction']:.0%}) | "
                     f"{s['reported_damaged']} | {s['median_pixels_changed']:.0f} |")
    if result["damaged"]:
        lines += ["", "The same held-out photos, each with one kind of damage in its central two thirds:", "",
                  "| damage | photos | repaired (any pixel changed) | share of damaged pixels changed |", "|---|---|---|---|"]
        for kind, s in result["damaged"].items():
            lines.append(f"| {kind} | {s['photos']} | {s['repaired']} | {s['damage_changed']} |")
    lines += ["", f"{result['seconds']} s. Command: `python benchmarks/clean_photos.py {' '.join(sys.argv[1:])}`"]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
