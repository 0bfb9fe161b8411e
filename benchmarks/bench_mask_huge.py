"""Memory and time of `faceheal mask` on a huge scan: the detectors work tile by tile, so peak memory
should stay near the decoded image, not grow with float copies of it.

Makes a 10000 x 10000 RGB JPEG (a noisy gray print with the shipped portrait pasted in and bright
scratches drawn across), runs the real command line in a child process for each damage detector,
and writes peak RSS, seconds and the flagged fraction to benchmarks/results/mask_huge.{json,md}.

    python benchmarks/bench_mask_huge.py [--side 10000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import resource, sys
from faceheal.cli import app
try:
    app(['mask', sys.argv[1], '-o', sys.argv[2], '--damage-detector', sys.argv[3]])
except SystemExit as e:
    print('exit', e.code)
# VmHWM, this process's own peak: ru_maxrss also counts the parent's RSS when it forked (Linux
# keeps the high-water mark across exec), and the parent holds the scan it made
peak = [int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:')]
print('peak_mb', (peak[0] if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024)
"""


def make_scan(path: Path, side: int) -> None:
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(150, 6, (side, side, 1)), 0, 255).astype(np.uint8).repeat(3, axis=2)
    face = cv2.imread(str(ROOT / "examples" / "photos" / "bopbtl_a.png"))
    y, x = side // 3, side // 3
    img[y:y + face.shape[0], x:x + face.shape[1]] = face
    for _ in range(12):
        p0 = tuple(int(v) for v in rng.integers(0, side, 2))
        p1 = tuple(int(v) for v in rng.integers(0, side, 2))
        cv2.line(img, p0, p1, (245, 245, 245), int(rng.integers(2, 5)), cv2.LINE_AA)
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="faceheal-huge-") as tmp:
        scan = Path(tmp) / "scan.jpg"
        make_scan(scan, args.side)
        for detector in ("learned", "classical"):
            out = Path(tmp) / detector
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", CHILD, str(scan), str(out), detector], capture_output=True,
                               text=True, cwd=ROOT)
            seconds = time.perf_counter() - t
            mask = cv2.imread(str(out / "scan.png"), cv2.IMREAD_GRAYSCALE)
            rows.append({"detector": detector, "exit": r.stdout.split("exit")[-1].split()[0] if "exit" in r.stdout else None,
                         "seconds": round(seconds, 1), "peak_rss_mb": round(float(r.stdout.split("peak_mb")[1]), 0),
                         "flagged_percent": round(100 * float((mask > 127).mean()), 3) if mask is not None else None})
            print(json.dumps(rows[-1]), flush=True)
    decoded_mb = args.side * args.side * 3 / 2 ** 20
    result = {"side": args.side, "decoded_rgb_mb": round(decoded_mb), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mask_huge.json").write_text(json.dumps(result, indent=1))
    lines = [f"# `faceheal mask` on a {args.side} x {args.side} RGB scan", "",
             f"Decoded, the scan is {decoded_mb:.0f} MB of 8-bit RGB; a float32 copy would be {4 * decoded_mb:.0f} MB.", "",
             "| detector | exit | seconds (whole command) | peak RSS MB | flagged % |", "|---|---|---|---|---|"]
    lines += [f"| {r['detector']} | {r['exit']} | {r['seconds']} | {r['peak_rss_mb']} | {r['flagged_percent']} |" for r in rows]
    lines += ["", f"Command: `python benchmarks/bench_mask_huge.py --side {args.side}`"]
    (args.out / "mask_huge.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
