"""Peak memory of `faceheal restore` against the number of large photos without a face.

A photo with nothing for the model (no face, or no damage on a face) is written and released by its
loader at once; it never waits, with its pixels, for a batch of damaged faces to fill. So peak RSS
must not grow with how many such photos a run holds. Each run: N clean 24-megapixel JPEGs (no face)
followed by one damaged portrait with its mask; peak RSS is the child process's high-water mark.
Results: benchmarks/results/bench_no_face_memory.md.

    python benchmarks/bench_no_face_memory.py [--n 2 16]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_inputs(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:4000, :6000]
    scene = np.stack([(xx // 23) % 256, (yy // 17) % 256, ((xx + yy) // 31) % 256], -1).astype(np.uint8)
    for i in range(n):
        cv2.imwrite(str(folder / f"a{i:03d}_scene.jpg"), np.roll(scene, i * 7, axis=1), [cv2.IMWRITE_JPEG_QUALITY, 90])
    portrait = cv2.imread(str(ROOT / "examples" / "photos" / "bopbtl_a.png"))
    cv2.imwrite(str(folder / "z_portrait.png"), portrait)


def run(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_inputs(tmp / "in", n)
        code = ("import resource, subprocess, sys; "
                "r = subprocess.run(sys.argv[1:]); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "faceheal", "restore", str(tmp / "in"),
                              "-o", str(tmp / "out"), "-q", "--model", "telea"], capture_output=True, text=True)
        return float(out.stdout.strip().splitlines()[-1]) / 1024, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[2, 16])
    args = ap.parse_args()
    lines = ["# Peak RSS against the number of no-face photos", "",
             "`python benchmarks/bench_no_face_memory.py`: N clean 6000x4000 JPEGs without a face, then one "
             "portrait (auto-detected damage, `--model telea`), one `faceheal restore` run each.", "",
             "| no-face 24 MP photos | peak RSS MB | seconds |", "|---|---|---|"]
    for n in args.n:
        peak, seconds = run(n)
        lines.append(f"| {n} | {peak:.0f} | {seconds:.1f} |")
        print(lines[-1], flush=True)
    (ROOT / "benchmarks" / "results" / "bench_no_face_memory.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
