"""Score the damage detectors: synthetic damage on held-out faces (precision, recall and F1 within 1 px,
per kind) and false alarms on clean photos, for the learned detector and the classical one side by
side, plus seconds for a 2000x2000 photo. Writes benchmarks/results/damage_eval.json and .md.

    python benchmarks/eval_damage.py [--faces runs/prep256] [--n 100]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from faceheal.images import read_image, to_float_rgb  # noqa: E402
from faceheal.masks.damage import DamageSettings, detect_damage, learned_detector  # noqa: E402
from faceheal.masks.render import DAMAGE_KINDS, render_damage  # noqa: E402
from faceheal.train.damage import f1_within, render_painted  # noqa: E402
from faceheal.train.data import PreparedFaces  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
KINDS = DAMAGE_KINDS + ("painted",)


def held_out_faces(prep: Path, n: int) -> list[np.ndarray]:
    held_out = PreparedFaces(prep, "test")
    return [np.asarray(held_out.images[i], np.float32) / 255 for i in held_out.indices[:n]]


def score(detector: str, faces: list[np.ndarray], faded: list[Path]) -> dict:
    settings = DamageSettings(detector=detector)
    result = {"synthetic": {}, "clean": {}}
    rng = np.random.default_rng(0)  # the same damage for every detector
    for kind in KINDS:
        scores = []
        for face in faces:
            damaged, truth = render_painted(face, rng) if kind == "painted" else render_damage(face, kind, rng)
            scores.append(f1_within(detect_damage(damaged, settings), truth))
        p, r, f = np.mean(scores, axis=0)
        result["synthetic"][kind] = {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f, 3)}
    result["clean"]["held_out_faces_flagged_percent"] = round(
        100 * float(np.mean([detect_damage(f, settings).mean() for f in faces])), 3)
    if faded:
        result["clean"]["faded_photos_flagged_percent"] = round(
            100 * float(np.mean([detect_damage(to_float_rgb(read_image(p).display()), settings).mean() for p in faded])), 3)
    big = np.clip(np.random.default_rng(1).normal(0.5, 0.03, (2000, 2000, 3)), 0, 1).astype(np.float32)
    detect_damage(big[:256, :256], settings)  # warm-up (weights loaded, kernels chosen)
    t = time.perf_counter()
    detect_damage(big, settings)
    result["seconds_2000x2000"] = round(time.perf_counter() - t, 3)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=Path, default=ROOT / "runs" / "prep256")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    import torch

    faces = held_out_faces(args.faces, args.n)
    faded = sorted((SHARED / "photos" / "faded").glob("*")) if SHARED.is_dir() else []
    detectors = (["learned"] if learned_detector() is not None else []) + ["classical"]
    result = {"faces": len(faces), "torch_threads": torch.get_num_threads(),
              "detectors": {d: score(d, faces, faded) for d in detectors}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "damage_eval.json").write_text(json.dumps(result, indent=1))
    lines = ["# Damage detector evaluation", "",
             f"{len(faces)} held-out aligned faces (256 px) with seeded synthetic damage of each kind; precision, "
             "recall and F1 within 1 px. Targets: F1 >= 0.8 scratches, >= 0.9 missing; < 0.5 % of clean pixels flagged; "
             "< 1 s for 2000x2000 on 2 CPU cores.", "",
             "| detector | " + " | ".join(f"{k} P / R / F1" for k in KINDS) + " | clean faces flagged % | faded photos flagged % | s per 2000x2000 |",
             "|---" * (len(KINDS) + 4) + "|"]
    for d, r in result["detectors"].items():
        cells = [f"{r['synthetic'][k]['precision']} / {r['synthetic'][k]['recall']} / **{r['synthetic'][k]['f1']}**" for k in KINDS]
        lines.append(f"| {d} | " + " | ".join(cells) + f" | {r['clean']['held_out_faces_flagged_percent']} | "
                     f"{r['clean'].get('faded_photos_flagged_percent')} | {r['seconds_2000x2000']} |")
    lines += ["", f"torch threads: {result['torch_threads']}. Command: `python benchmarks/eval_damage.py --n {args.n}`"]
    (args.out / "damage_eval.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
