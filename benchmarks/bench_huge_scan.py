"""Memory and time of `faceheal restore` (default model: the generator on faces, the texture inpainter
away from them) on a huge 16-bit scan with damage across the whole of it.

Makes a 10000 x 10000 (100-megapixel) 16-bit TIFF, gray by default (`--rgb` for colour): a print's
tone and grain, the shipped portrait pasted in, and long thin scratches plus a few blobs drawn across
the whole scan (mask supplied), then runs the real command line in a child process and writes peak
RSS, seconds, the damaged pixels left and the report's stage times to benchmarks/results/huge_scan*.

    python benchmarks/bench_huge_scan.py [--side 10000] [--rgb]
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
import tifffile

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import resource, sys
from faceheal.cli import app
try:
    app(['restore', sys.argv[1], '-o', sys.argv[2], '--mask', sys.argv[3], '--report', sys.argv[4], '-q'])
except SystemExit as e:
    print('exit', e.code)
# VmHWM, this process's own peak: ru_maxrss also counts the parent's RSS when it forked (Linux
# keeps the high-water mark across exec), and the parent holds the scan it made
peak = [int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:')]
print('peak_mb', (peak[0] if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024)
"""


def make_scan(side: int, rgb: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A grainy 16-bit print with examples/photos/bopbtl_a.png at 4x and scratches/blobs over it; (scan, mask)."""
    small = cv2.GaussianBlur(rng.normal(0, 1, (side // 50, side // 50)).astype(np.float32), (0, 0), 3)
    tone = cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)
    base = 0.55 + 0.25 * tone / max(float(np.abs(tone).max()), 1e-6)
    portrait = cv2.imread(str(ROOT / "examples" / "photos" / "bopbtl_a.png"))  # a real old portrait, one face
    face = cv2.resize(portrait, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)[..., ::-1].astype(np.float32) / 255
    mask = np.zeros((side, side), np.uint8)
    for _ in range(40):  # long thin scratches across the print
        x0, y0 = (int(v) for v in rng.integers(0, side, 2))
        ang = rng.uniform(0, np.pi)
        length = rng.uniform(0.2, 0.8) * side
        x1, y1 = int(x0 + length * np.cos(ang)), int(y0 + length * np.sin(ang))
        cv2.line(mask, (x0, y0), (x1, y1), 255, int(rng.integers(2, 9)))
    for _ in range(30):  # spots and small losses
        cx, cy = (int(v) for v in rng.integers(0, side, 2))
        cv2.circle(mask, (cx, cy), int(rng.integers(5, 40)), 255, -1)
    scan = np.empty((side, side, 3) if rgb else (side, side), np.uint16)
    step = 1000
    for y in range(0, side, step):  # row bands: never the whole scan in float
        band = base[y:y + step, :, None] * np.array([1.0, 0.93, 0.82] if rgb else [1.0], np.float32)
        band = band + rng.normal(0, 0.015, band.shape[:2])[..., None].astype(np.float32)
        scan[y:y + step] = (np.clip(band, 0, 1) * 65535 + 0.5).astype(np.uint16).reshape(scan[y:y + step].shape)
    fy, fx = side // 3, side // 3
    fh, fw = face.shape[:2]
    patch = (face * 65535 + 0.5).astype(np.uint16)
    scan[fy:fy + fh, fx:fx + fw] = patch if rgb else cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
    m = mask > 0
    scan[m] = 65535
    return scan, m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=10000)
    ap.add_argument("--rgb", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scan, mask = make_scan(args.side, args.rgb, rng)
        damaged = int(mask.sum())
        tifffile.imwrite(tmp / "scan.tif", scan, compression="zlib")
        cv2.imwrite(str(tmp / "mask.png"), mask.astype(np.uint8) * 255)
        decoded_mb = scan.nbytes / 2**20
        del scan, mask
        t0 = time.time()
        r = subprocess.run([sys.executable, "-c", CHILD, str(tmp / "scan.tif"), str(tmp / "out"), str(tmp / "mask.png"),
                            str(tmp / "report.jsonl")], capture_output=True, text=True, cwd=ROOT)
        seconds = time.time() - t0
        if "exit 0" not in r.stdout:
            sys.exit(f"restore failed:\n{r.stdout}\n{r.stderr}")
        peak = float(r.stdout.split("peak_mb")[1])
        report = json.loads((tmp / "report.jsonl").read_text().splitlines()[0])
        out = tifffile.imread(tmp / "out" / "scan.tif")
        ok = out.dtype == np.uint16 and out.shape[:2] == (args.side, args.side)
    result = {"side": args.side, "channels": 3 if args.rgb else 1, "decoded_mb": round(decoded_mb), "peak_rss_mb": round(peak),
              "seconds": round(seconds, 1), "damaged_pixels": damaged, "unrepaired_pixels": report["unrepaired_pixels"],
              "faces": len(report["faces"]), "status": report["status"], "output_16bit_same_size": ok}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "huge_scan" + ("_rgb" if args.rgb else "") + ("" if args.side == 10000 else f"_{args.side}")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    mp = args.side * args.side / 1e6
    lines = ["# A huge 16-bit scan with damage everywhere, through `faceheal restore` (default model)", "",
             f"{args.side} x {args.side} ({mp:.0f} MP), 16-bit {'RGB' if args.rgb else 'gray'} TIFF (decoded: {result['decoded_mb']} MB); "
             f"40 long scratches and 30 spots over the whole scan ({damaged / (args.side ** 2) * 100:.2f} % of it), one face, mask supplied.", "",
             "| peak RSS MB | seconds | s per MP | damaged px | left unrepaired | faces | status |", "|---|---|---|---|---|---|---|",
             f"| {result['peak_rss_mb']} | {result['seconds']} | {seconds / mp:.2f} | {damaged} | {result['unrepaired_pixels']} | "
             f"{result['faces']} | {result['status']} |", "",
             "2-core CPU (shared with other jobs when noted). Command: `python benchmarks/bench_huge_scan.py "
             + " ".join(sys.argv[1:]) + "`"]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
