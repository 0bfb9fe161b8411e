"""Throughput and memory of `faceheal restore`, end to end, against the machine's compute floor.

Makes N photos with faces and synthetic damage (from ../shared/data when present, else examples/),
runs the real command line in a child process, and writes photos/s, faces/s, busy seconds per stage,
peak RSS, the generator's GFLOPs per crop, the measured matmul GFLOP/s of this machine, the compute
floor (GFLOPs per crop x crops / GFLOP/s) and achieved / floor, to benchmarks/results/*.json and .md.

    python benchmarks/bench_restore.py --n 10 100 1000 [--device cpu|cuda] [--batch-size B] [--precision P]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "photos"


def source_photos() -> list[Path]:
    """Real photos with faces: ../shared/data photos when present, else the shipped examples."""
    folders = [SHARED / "whole", SHARED / "scratched", SHARED / "gray_aligned"] if SHARED.is_dir() else []
    photos = [p for f in folders for p in sorted(f.iterdir()) if p.suffix.lower() in (".jpg", ".png")]
    return photos or sorted((ROOT / "examples" / "photos").iterdir())


def make_inputs(n: int, folder: Path, seed: int = 0) -> None:
    """n photos (cycled from the sources, at most 1600 px) with white scratches painted in, and masks."""
    sys.path.insert(0, str(ROOT))
    from faceheal.masks.synthetic import synthetic_mask

    rng = np.random.default_rng(seed)
    photos = source_photos()
    cache = {}
    for i in range(n):
        src = photos[i % len(photos)]
        if src not in cache:
            img = cv2.imread(str(src), cv2.IMREAD_COLOR)
            s = min(1.0, 1600 / max(img.shape[:2]))
            cache[src] = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else img
        img = cache[src].copy()
        mask = synthetic_mask(img.shape[:2], "strokes", (0.02, 0.06), rng)
        img[mask] = 250
        cv2.imwrite(str(folder / "photos" / f"{i:05d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        cv2.imwrite(str(folder / "masks" / f"{i:05d}.png"), mask.astype(np.uint8) * 255)


def matmul_gflops(device: str, seconds: float = 2.0, precision: str = "fp32") -> float:
    """Measured square-matmul rate in the arithmetic the generator runs in (fp32, TF32 or bf16)."""
    import torch

    dev = torch.device(device)
    n = 2048
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(2):
        a @ b
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t, reps = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        a @ b
        reps += 1
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def generator_gflops(weights: Path | None) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(ROOT))
    from faceheal.model.generator import GeneratorConfig, TwoStageGenerator, load_generator

    model = load_generator(weights)[0] if weights else TwoStageGenerator(GeneratorConfig.default())
    s = model.config.size
    x, m = torch.zeros(1, 3, s, s), torch.zeros(1, 1, s, s)
    m[..., s // 4: s // 2, :] = 1
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model(x, m, prior=x)  # the classical prior (OpenCV Telea) is computed outside the network
    return fc.get_total_flops() / 1e9


def run_once(n: int, device: str, batch_size: int | None, work: Path, loaders: int | None = None,
             precision: str = "auto") -> dict:
    for sub in ("photos", "masks"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    make_inputs(n, work)
    out = work / "out"
    cmd = [sys.executable, "-m", "faceheal", "restore", str(work / "photos"), "-o", str(out), "--masks",
           str(work / "masks"), "--device", device, "--precision", precision, "-q"]
    if batch_size:
        cmd += ["--batch-size", str(batch_size)]
    if loaders:
        cmd += ["--loaders", str(loaders)]
    t = time.perf_counter()
    with open(work / "stderr.txt", "w") as err:  # a file, not a pipe: a full pipe would stall the child
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        trace = sample_memory(proc, out, n)
    wall = time.perf_counter() - t
    peak_mb = max((row[3] for row in trace), default=0.0)
    summary = json.loads((out / ".faceheal" / "last-run.json").read_text())
    stages = summary["stage_seconds"]
    return {"n": n, "exit_code": proc.returncode, "failed_photos": summary["counts"]["error"] + summary["counts"]["no-face"],
            "loaders": summary.get("loaders"), "wall_seconds": round(wall, 2), "run_seconds": summary["seconds"],
            "faces": summary["faces"], "photos_per_s": round(n / summary["seconds"], 3),
            "faces_per_s": round(summary["faces"] / summary["seconds"], 3),
            "seconds_per_photo": round(summary["seconds"] / n, 4), "stage_seconds": stages,
            "generator_share": round(stages.get("inpaint", 0) / summary["seconds"], 3),
            "peak_rss_mb": round(peak_mb, 1), "rss_mb_by_progress": rss_by_progress(trace, n),
            "model": summary["model"].get("model"), "precision": summary["model"].get("precision")}


def _status_mb(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a live process in MB, from /proc (None once it is gone)."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None


def sample_memory(proc: subprocess.Popen, outputs: Path, n: int, every: float = 0.5) -> list[tuple]:
    """Poll the running restore: (seconds, photos written, RSS MB, peak RSS MB so far) every `every` s.

    The child's own high-water mark (VmHWM), not getrusage's maximum over all children so far, so
    each N gets its own peak; the trace shows whether memory is flat along the run, not only at its end.
    """
    t0, trace = time.perf_counter(), []
    while proc.poll() is None:
        mem = _status_mb(proc.pid)
        if mem is not None:
            done = sum(1 for _ in outputs.glob("*.jpg")) if outputs.is_dir() else 0
            trace.append((round(time.perf_counter() - t0, 2), done, round(mem[0], 1), round(mem[1], 1)))
        time.sleep(every)
    return trace


def rss_by_progress(trace: list[tuple], n: int) -> dict:
    """RSS (MB) when 10, 25, 50, 75 and 100 % of the photos were written: flat memory means flat here."""
    marks = {}
    for pct in (10, 25, 50, 75, 100):
        rows = [row for row in trace if row[1] >= n * pct / 100]
        if rows:
            marks[f"{pct}%"] = rows[0][2]
    return marks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--loaders", type=int, default=None, help="restore --loaders (default: restore's own)")
    ap.add_argument("--precision", default="auto", help="restore --precision (default: restore's own choice)")
    ap.add_argument("--tag", default=None, help="results file suffix (default: cpu or cuda)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    import torch

    machine = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
               "cpu_threads": torch.get_num_threads(),
               "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"}
    weights = ROOT / "weights" / "faceheal-generator.pt"
    gflops_crop = generator_gflops(weights if weights.is_file() else None)
    from faceheal.inpainters import resolve_precision
    precision = resolve_precision(args.precision, torch.device(args.device))
    machine_gflops = matmul_gflops(args.device, precision=precision)
    runs = []
    for n in args.n:
        with tempfile.TemporaryDirectory(prefix="faceheal-bench-") as tmp:
            r = run_once(n, args.device, args.batch_size, Path(tmp), args.loaders, args.precision)
        r["floor_seconds"] = round(r["faces"] * gflops_crop / machine_gflops, 2)
        r["achieved_over_floor"] = round(r["run_seconds"] / max(r["floor_seconds"], 1e-9), 2)
        runs.append(r)
        print(json.dumps(r), flush=True)
    result = {"machine": machine, "generator_gflops_per_crop": round(gflops_crop, 2),
              "precision": precision, "matmul_gflops": round(machine_gflops, 1), "runs": runs,
              "note": "peak RSS is the restore process's own high-water mark (VmHWM, polled every 0.5 s)"}
    args.out.mkdir(parents=True, exist_ok=True)
    tag = args.tag or ("cuda" if args.device.startswith("cuda") else "cpu")
    (args.out / f"bench_restore_{tag}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# faceheal restore benchmark ({machine['device']}, {precision})", "",
             f"{machine['platform']}, torch {machine['torch']}; generator {gflops_crop:.2f} GFLOPs per 256 crop, "
             f"run in {precision}; {precision} matmul {machine_gflops:.1f} GFLOP/s measured.", "",
             "| photos | faces | seconds | photos/s | faces/s | s/photo | generator share | floor s | achieved/floor | peak RSS MB | RSS MB at 10/50/100 % |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        marks = "/".join(str(r["rss_mb_by_progress"].get(k, "-")) for k in ("10%", "50%", "100%"))
        lines.append(f"| {r['n']} | {r['faces']} | {r['run_seconds']} | {r['photos_per_s']} | {r['faces_per_s']} | "
                     f"{r['seconds_per_photo']} | {r['generator_share']} | {r['floor_seconds']} | {r['achieved_over_floor']} | "
                     f"{r['peak_rss_mb']} | {marks} |")
    lines += ["", "Stage busy seconds (the loader thread overlaps the model):", ""]
    for r in runs:
        lines.append(f"- N={r['n']}: " + ", ".join(f"{k} {v}" for k, v in r["stage_seconds"].items()))
    extra = f" --loaders {args.loaders}" if args.loaders else ""
    extra += f" --precision {args.precision}" if args.precision != "auto" else ""
    extra += f" --tag {args.tag}" if args.tag else ""
    lines += ["", f"Command: `python benchmarks/bench_restore.py --n {' '.join(map(str, args.n))} --device {args.device}{extra}`"]
    (args.out / f"bench_restore_{tag}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
