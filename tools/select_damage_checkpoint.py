"""Pick a damage-detector checkpoint by what restore does with it, not by its per-pixel score.

A detector reaches the photos through the per-face decision (faceheal/masks/decision.py), which drops
every flag of a face judged undamaged. What matters is how many damaged regions that decision can
keep while it repaints few of the clean ones, and fine-tunes with better per-pixel
F1 have kept fewer (the damage model card). For each weights file given (a `faceheal train-damage
--keep-checkpoints` run's OUT/checkpoints/*.pt, its damage.pt, the shipped one) this calibrates the
decision on the 'val' photos exactly as tools/calibrate_damage_decision.py does, in a scratch copy of
the weights folder, and prints one JSON line per file, best last. The ranking is by the mean share of
damaged regions kept at 2, 3 and 5 % of clean ones (`kept_2_to_5`): one operating point alone is
set by the eight or so clean regions that score highest, and moved 0.67-0.87 between checkpoints of
one run:

    python tools/select_damage_checkpoint.py runs/damage9/checkpoints/*.pt weights/faceheal-damage.pt

Each line also says how many clean val photos a default restore changes with that file (every val
photo, photos/*, and the val photos as thumbnails: benchmarks/clean_photos.py --skip-damaged).

Then calibrate the chosen file for real (FACEHEAL_WEIGHTS=DIR python tools/calibrate_damage_decision.py).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from faceheal.masks.learned import load_damage_net, save_damage_net  # noqa: E402
from faceheal.model.weights import weights_dir  # noqa: E402


def fit_for(weights: Path, max_clean_photos: float, per_source: int, draws: int) -> dict:
    """The decision's fit for one detector: its weights beside the other shipped ones, calibrated."""
    with tempfile.TemporaryDirectory() as tmp:
        for f in weights_dir().iterdir():
            if f.is_file() and not f.name.startswith("faceheal-damage.pt"):
                os.symlink(f, Path(tmp) / f.name)
        model, meta = load_damage_net(weights)
        save_damage_net(model, Path(tmp) / "faceheal-damage.pt", meta)
        env = {**os.environ, "FACEHEAL_WEIGHTS": tmp}
        run = subprocess.run([sys.executable, str(ROOT / "tools" / "calibrate_damage_decision.py"), "--max-clean-photos",
                              str(max_clean_photos), "--per-source", str(per_source), "--draws", str(draws)], capture_output=True, text=True,
                             env=env, check=True)
        small = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_damage.py"), "--split", "val", "--small-only"],
                               capture_output=True, text=True, env=env, check=True)
        # through restore: every clean val photo, and the same as thumbnails (benchmarks/clean_photos.py)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "clean_photos.py"), "--split", "val", "--per-source", "1000",
                        "--skip-damaged", "--out", tmp], capture_output=True, text=True, env=env, check=True)
        photos = json.loads((Path(tmp) / "clean_photos_val.json").read_text())["clean"]
    fit = json.loads(run.stdout.strip().splitlines()[-1])["fit"]
    small = json.loads(small.stdout.strip().splitlines()[-1])
    kept = fit["damaged_kept_at"]
    rows = small["small_faces"].values()  # per eye distance: clean flags, and a P/R/F1 dict per kind
    f1s = [v["f1"] for r in rows for v in r.values() if isinstance(v, dict)]
    return {"weights": str(weights), "step": meta.get("step"), "score": meta.get("score"),
            "kept_2_to_5": round((kept["0.02"] + kept["0.03"] + kept["0.05"]) / 3, 4),
            "small_clean_flagged_percent": round(sum(r["clean_flagged_percent"] for r in rows) / len(rows), 3),
            "small_f1": round(sum(f1s) / len(f1s), 3),
            "val_photos_changed": {name: f"{v['changed']}/{v['with_face']}" for name, v in photos.items()}, **small, **fit}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--max-clean-photos", type=float, default=0.005, help="largest share of clean photos changed")
    ap.add_argument("--per-source", type=int, default=0, help="val photos per source (0: all)")
    ap.add_argument("--draws", type=int, default=2, help="damaged copies of each photo")
    args = ap.parse_args()
    rows = [fit_for(w, args.max_clean_photos, args.per_source, args.draws) for w in args.weights]
    for row in sorted(rows, key=lambda r: r["kept_2_to_5"]):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
