"""Score the damage detector: synthetic damage on held-out faces (F1 per kind) and false alarms on
clean photos. Writes benchmarks/results/damage_eval.json and .md.

    python benchmarks/eval_damage.py [--faces runs/prep256] [--n 100]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from faceheal.images import read_image, to_float_rgb  # noqa: E402
from faceheal.masks.damage import detect_damage  # noqa: E402
from faceheal.masks.render import DAMAGE_KINDS, render_damage  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def f1(found: np.ndarray, truth: np.ndarray, tol: int = 1) -> tuple[float, float, float]:
    k = np.ones((2 * tol + 1,) * 2, np.uint8)
    near_t = cv2.dilate(truth.astype(np.uint8), k) > 0
    near_f = cv2.dilate(found.astype(np.uint8), k) > 0
    p = (found & near_t).sum() / max(found.sum(), 1)
    r = (truth & near_f).sum() / max(truth.sum(), 1)
    return float(p), float(r), float(2 * p * r / max(p + r, 1e-9))


def held_out_faces(prep: Path, n: int) -> list[np.ndarray]:
    index = json.loads((prep / "index.json").read_text())["items"]
    images = np.load(prep / "images.npy", mmap_mode="r")
    idx = [i for i, e in enumerate(index) if e["split"] == "test"][:n]
    return [np.asarray(images[i], np.float32) / 255 for i in idx]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=Path, default=ROOT / "runs" / "prep256")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    faces = held_out_faces(args.faces, args.n)
    result = {"faces": len(faces), "synthetic": {}, "clean": {}}
    rng = np.random.default_rng(0)
    for kind in DAMAGE_KINDS:
        scores = []
        for face in faces:
            damaged, truth = render_damage(face, kind, rng)
            scores.append(f1(detect_damage(damaged), truth))
        p, r, f = np.mean(scores, axis=0)
        result["synthetic"][kind] = {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f, 3)}
    flagged = [detect_damage(f).mean() for f in faces]
    result["clean"]["held_out_faces_flagged_percent"] = round(100 * float(np.mean(flagged)), 3)
    faded = sorted((SHARED / "photos" / "faded").glob("*")) if SHARED.is_dir() else []
    if faded:
        result["clean"]["faded_photos_flagged_percent"] = round(
            100 * float(np.mean([detect_damage(to_float_rgb(read_image(p).display())).mean() for p in faded])), 3)
    big = np.clip(np.random.default_rng(1).normal(0.5, 0.03, (2000, 2000, 3)), 0, 1).astype(np.float32)
    t = time.perf_counter()
    detect_damage(big)
    result["seconds_2000x2000"] = round(time.perf_counter() - t, 3)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "damage_eval.json").write_text(json.dumps(result, indent=1))
    lines = ["# damage detector evaluation", "", f"{len(faces)} held-out aligned faces (256 px), seeded synthetic damage.", "",
             "| damage | precision | recall | F1 |", "|---|---|---|---|"]
    for k, v in result["synthetic"].items():
        lines.append(f"| {k} | {v['precision']} | {v['recall']} | {v['f1']} |")
    lines += ["", f"Clean held-out faces flagged: {result['clean']['held_out_faces_flagged_percent']} % of pixels.",
              f"Faded real photos (../shared/data/photos/faded) flagged: {result['clean'].get('faded_photos_flagged_percent')} %.",
              f"2000x2000 photo: {result['seconds_2000x2000']} s.", "",
              "Command: `python benchmarks/eval_damage.py`"]
    (args.out / "damage_eval.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
