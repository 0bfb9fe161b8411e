"""Throughput of the generator alone (no detection, no I/O) by batch size and precision.

`bench_restore.py` measures the whole command; this one isolates the network so the precision and
batch defaults of `GeneratorInpainter` can be chosen from numbers: crops/s for fp32, TF32, bf16 and
fp16 autocast (CUDA), fp32 and bf16 autocast (CPU), how far each lands from fp32 in 8-bit levels, and the cost of the OpenCV
Telea prior that stage 2 takes (computed on the CPU). Results go to
benchmarks/results/bench_generator_{cpu,cuda}.{json,md}.

    python benchmarks/bench_generator.py [--device cpu|cuda] [--batch 8 32 64 128] [--seconds 3]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sample_batch(n: int, size: int, seed: int = 0):
    """Held-out-like crops: the shipped aligned examples cycled, with synthetic 30-50 % masks."""
    import cv2

    from faceheal.masks.synthetic import synthetic_mask

    rng = np.random.default_rng(seed)
    files = sorted((ROOT / "examples" / "aligned").glob("*.png"))
    faces = [cv2.resize(cv2.imread(str(f))[..., ::-1], (size, size), interpolation=cv2.INTER_AREA) for f in files]
    crops = np.stack([faces[i % len(faces)] for i in range(n)]).astype(np.float32) / 255
    holes = np.stack([synthetic_mask((size, size), "irregular", (0.3, 0.5), rng) for _ in range(n)])
    return crops, holes


def timed(fn, seconds: float, sync) -> tuple[float, int]:
    fn()
    sync()
    t, reps = time.perf_counter(), 0
    while time.perf_counter() - t < seconds or reps < 2:
        fn()
        reps += 1
    sync()
    return (time.perf_counter() - t) / reps, reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=None)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--weights", type=Path, default=ROOT / "weights" / "faceheal-generator.pt")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    import torch

    from faceheal.model.generator import classical_prior, load_generator

    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    batches = args.batch or ([16, 64, 128, 256] if cuda else [1, 8])
    model = load_generator(args.weights)[0].to(dev).eval()
    if not cuda:  # as restore runs it on the CPU
        model = model.to(memory_format=torch.channels_last)
    size = model.config.size
    crops, holes = sample_batch(max(batches), size)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    # the CPU-side prior, threaded across crops as restore does it
    t = time.perf_counter()
    prior = classical_prior(crops, holes, model.config.prior)
    prior_s = (time.perf_counter() - t) / len(crops)

    x = torch.from_numpy(crops).permute(0, 3, 1, 2).to(dev) * 2 - 1
    m = torch.from_numpy(holes)[:, None].float().to(dev)
    p = torch.from_numpy(prior).permute(0, 3, 1, 2).to(dev) * 2 - 1

    modes = {"fp32": contextlib.nullcontext}
    if cuda:
        modes["tf32"] = contextlib.nullcontext
        modes["bf16"] = lambda: torch.autocast("cuda", dtype=torch.bfloat16)
        modes["fp16"] = lambda: torch.autocast("cuda", dtype=torch.float16)
    else:  # bf16 autocast: what restore picks on CPUs with native bf16 (AVX512-BF16, AMX)
        from faceheal.inpainters import cpu_has_native_bf16
        modes["bf16" if cpu_has_native_bf16() else "bf16 (emulated)"] = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    rows, reference = [], None
    for mode, ctx in modes.items():
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
        for b in batches:
            def run(b=b, ctx=ctx):
                with torch.inference_mode(), ctx():
                    return model(x[:b], m[:b], p[:b])["composed"]
            try:
                sec, reps = timed(run, args.seconds, sync)
            except torch.OutOfMemoryError:
                rows.append({"mode": mode, "batch": b, "error": "out of memory"})
                torch.cuda.empty_cache()
                continue
            with torch.inference_mode():
                y = ((run().float().clamp(-1, 1) + 1) * 127.5)
            if mode == "fp32" and b == max(batches):
                reference = y
            row = {"mode": mode, "batch": b, "seconds_per_batch": round(sec, 5), "reps": reps,
                   "crops_per_s": round(b / sec, 1)}
            if reference is not None and b == max(batches):
                d = (y - reference).abs()
                row["max_diff_8bit"] = round(float(d.max()), 3)
                row["mean_diff_8bit_in_hole"] = round(float(d[m[:b].expand_as(d) > 0].mean()), 4)
            if cuda:
                row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)

    name = torch.cuda.get_device_name(0) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    result = {"device": name, "torch": torch.__version__, "crop": size,
              "telea_prior_ms_per_crop_threaded": round(prior_s * 1000, 3), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "cuda" if cuda else "cpu"
    (args.out / f"bench_generator_{tag}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Generator alone, {name}", "",
             f"torch {torch.__version__}, {size} px crops, 30-50 % irregular holes. OpenCV Telea prior (CPU, "
             f"threaded): {prior_s * 1000:.2f} ms per crop, i.e. {1 / prior_s:.0f} crops/s at most.", "",
             "| precision | batch | crops/s | ms/batch | max diff vs fp32 (8-bit) | mean diff in hole | peak GPU MB |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['mode']} | {r['batch']} | {r['error']} | | | | |")
            continue
        lines.append(f"| {r['mode']} | {r['batch']} | {r['crops_per_s']} | {r['seconds_per_batch'] * 1000:.1f} | "
                     f"{r.get('max_diff_8bit', '')} | {r.get('mean_diff_8bit_in_hole', '')} | {r.get('peak_gpu_mb', '')} |")
    lines += ["", f"Command: `python benchmarks/bench_generator.py --device {args.device}`"]
    (args.out / f"bench_generator_{tag}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
