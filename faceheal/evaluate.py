"""`faceheal eval`: the paper's protocol on held-out aligned faces, with classical baselines.

Each held-out face is paired (seeded) with an NVIDIA irregular mask from each hole-ratio bin
(0-10 % ... 50-60 %, measured after resizing the mask to the model's crop); every method fills the
same faces under the same masks; PSNR and SSIM are computed on the whole composed crop (the usual
protocol), L1 inside the hole. Writes a markdown table, a JSON file and a comparison grid PNG.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceheal.inpainters import Inpainter, TeleaInpainter
from faceheal.masks.supplied import binarise
from faceheal.images import read_image, to_float_rgb
from faceheal.metrics import image_psnr, image_ssim

BINS = [(0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6)]


@dataclass
class EvalSet:
    faces: np.ndarray  # (N, S, S, 3) float32 in [0, 1]
    masks: np.ndarray  # (N, S, S) bool
    bins: np.ndarray  # (N,) bin index


def load_faces(source: Path, size: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """Held-out faces: a `faceheal prepare` folder (its test split) or a folder of aligned images."""
    source = Path(source)
    if (source / "index.json").is_file():
        from faceheal.train.data import PreparedFaces

        held_out = PreparedFaces(source, "test")
        faces = [held_out.images[i] for i in held_out.indices]
    else:
        from faceheal.sources import walk_images
        faces = [np.clip(to_float_rgb(read_image(p).display()) * 255 + 0.5, 0, 255).astype(np.uint8)
                 for p in walk_images(source)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(faces))
    if limit:
        order = order[:limit]
    out = []
    for i in order:
        f = faces[i]
        if f.shape[0] != size:
            f = cv2.resize(np.asarray(f), (size, size), interpolation=cv2.INTER_AREA)
        out.append(np.asarray(f, np.float32) / 255.0)
    return np.stack(out)


def load_masks_by_bin(mask_dir: Path, size: int) -> list[list[np.ndarray]]:
    """NVIDIA masks resized to the crop (nearest), grouped by their measured hole ratio."""
    from faceheal.sources import walk_images
    groups: list[list[np.ndarray]] = [[] for _ in BINS]
    for p in walk_images(Path(mask_dir)):
        m = binarise(read_image(p).pixels)
        m = cv2.resize(m.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
        r = m.mean()
        for b, (lo, hi) in enumerate(BINS):
            if lo <= r < hi or (b == 0 and r == 0):
                groups[b].append(m)
                break
    return groups


def build_eval_set(faces: np.ndarray, masks_by_bin: list[list[np.ndarray]], seed: int = 0) -> EvalSet:
    """Every face under one mask from every bin (seeded choice)."""
    rng = np.random.default_rng(seed)
    fs, ms, bs = [], [], []
    for b, group in enumerate(masks_by_bin):
        if not group:
            continue
        pick = rng.integers(0, len(group), len(faces))
        for i, face in enumerate(faces):
            fs.append(face)
            ms.append(group[pick[i]])
            bs.append(b)
    return EvalSet(np.stack(fs), np.stack(ms), np.array(bs))


def run_method(inpainter: Inpainter, data: EvalSet, batch: int = 16) -> np.ndarray:
    out = []
    for s in range(0, len(data.faces), batch):
        out.append(inpainter.inpaint(data.faces[s:s + batch], data.masks[s:s + batch]).images)
    return np.concatenate(out)


@functools.lru_cache(maxsize=1)
def _lpips_metric():
    """The LPIPS network, loaded once per process (every method is scored with it)."""
    from faceheal.lpips import load_lpips

    return load_lpips()


def lpips_scores(pred: np.ndarray, truth: np.ndarray, batch: int = 32) -> np.ndarray | None:
    """Per-image LPIPS (AlexNet), or None when the metric's weights are not shipped."""
    import torch

    metric = _lpips_metric()
    if metric is None:
        return None
    out = []
    with torch.inference_mode():
        for s in range(0, len(pred), batch):
            a = torch.from_numpy(np.ascontiguousarray(pred[s:s + batch])).permute(0, 3, 1, 2) * 2 - 1
            b = torch.from_numpy(np.ascontiguousarray(truth[s:s + batch])).permute(0, 3, 1, 2) * 2 - 1
            out.append(metric(a, b).numpy())
    return np.concatenate(out)


def score(pred: np.ndarray, data: EvalSet) -> list[dict]:
    """Per-bin means of PSNR, SSIM (whole crop), L1 in the hole and LPIPS (when available)."""
    lp = lpips_scores(pred, data.faces)
    sharpness = sharpness_by_bin(pred, data)
    rows = []
    for b, (lo, hi) in enumerate(BINS):
        sel = np.where(data.bins == b)[0]
        if len(sel) == 0:
            continue
        p = [image_psnr(pred[i], data.faces[i]) for i in sel]
        s = [image_ssim(pred[i], data.faces[i]) for i in sel]
        l1 = [float(np.abs(pred[i] - data.faces[i])[data.masks[i]].mean()) if data.masks[i].any() else 0.0 for i in sel]
        rows.append({"bin": f"{int(lo * 100)}-{int(hi * 100)}%", "n": len(sel), "psnr": float(np.mean(p)),
                     "ssim": float(np.mean(s)), "l1_hole": float(np.mean(l1)), "sharpness": sharpness[b],
                     "lpips": float(np.mean(lp[sel])) if lp is not None else None})
    return rows


def sharpness_by_bin(pred: np.ndarray, data: EvalSet) -> list[float]:
    """Per bin, the median over faces of the repair's no-reference sharpness (metrics.hole_sharpness)
    over the real face's at the same hole: 1 = as detailed as the truth, an L1 model's soft fill less."""
    import torch

    from faceheal.metrics import hole_sharpness

    def t(x):
        return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
    hole = torch.from_numpy(data.masks[:, None].astype(np.float32))
    ratio = (hole_sharpness(t(pred), hole) / hole_sharpness(t(data.faces), hole)).numpy()
    out = []
    for b in range(len(BINS)):
        r = ratio[data.bins == b]
        r = r[np.isfinite(r)]
        out.append(float(np.median(r)) if len(r) else float("nan"))
    return out


def comparison_grid(data: EvalSet, results: dict[str, np.ndarray], per_bin: int = 2, tile: int = 160) -> np.ndarray:
    """Rows: a few faces per bin; columns: damaged | each method | ground truth. RGB uint8."""
    rows = []
    for b in range(len(BINS)):
        in_bin = np.where(data.bins == b)[0]
        # other faces in every bin (wrapping round when there are few faces)
        for i in [in_bin[(b * per_bin + k) % len(in_bin)] for k in range(min(per_bin, len(in_bin)))]:
            damaged = data.faces[i].copy()
            damaged[data.masks[i]] = 1.0
            cols = [damaged] + [results[k][i] for k in results] + [data.faces[i]]
            rows.append(np.concatenate([cv2.resize(c, (tile, tile), interpolation=cv2.INTER_AREA) for c in cols], 1))
    grid = np.concatenate(rows, 0)
    return np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8)


def markdown_table(scores: dict[str, list[dict]]) -> str:
    """One row per hole-ratio bin; per method PSNR / SSIM / LPIPS (lower is better) / L1 in the hole /
    sharpness of the repair relative to the truth's (1 = as detailed)."""
    methods = list(scores)
    has_lpips = scores[methods[0]] and scores[methods[0]][0].get("lpips") is not None
    unit = "PSNR / SSIM / LPIPS / L1 / sharpness" if has_lpips else "PSNR / SSIM / L1 / sharpness"
    head = "| hole ratio | n | " + " | ".join(f"{m} {unit}" for m in methods) + " |"
    sep = "|---|---|" + "---|" * len(methods)
    lines = [head, sep]
    for r in range(len(scores[methods[0]])):
        row = scores[methods[0]][r]
        cells = []
        for m in methods:
            x = scores[m][r]
            lp = f" / {x['lpips']:.3f}" if has_lpips else ""
            cells.append(f"{x['psnr']:.2f} / {x['ssim']:.3f}{lp} / {x['l1_hole']:.4f} / {x['sharpness']:.2f}")
        lines.append(f"| {row['bin']} | {row['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(faces_source: Path, mask_dir: Path, methods: dict[str, Inpainter], size: int, limit: int | None,
             out_prefix: Path, seed: int = 0) -> dict:
    faces = load_faces(faces_source, size, limit, seed)
    data = build_eval_set(faces, load_masks_by_bin(mask_dir, size), seed)
    results = {name: run_method(m, data) for name, m in methods.items()}
    scores = {name: score(pred, data) for name, pred in results.items()}
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    table = markdown_table(scores)
    md = (f"# faceheal eval\n\nfaces: {faces_source} ({len(faces)} held-out faces at {size}x{size}); masks: {mask_dir}; "
          f"seed {seed}.\nPSNR (dB), SSIM and LPIPS (AlexNet; lower is better) on the whole composed crop; L1 in the "
          f"hole, images in [0, 1].\n\n"
          + table + "\n")
    out_prefix.with_suffix(".md").write_text(md)
    out_prefix.with_suffix(".json").write_text(json.dumps({"faces": len(faces), "size": size, "scores": scores,
                                                           "methods": {k: m.describe() for k, m in methods.items()}}, indent=1))
    grid = comparison_grid(data, results)
    cv2.imwrite(str(out_prefix.with_suffix(".png")), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return {"table": table, "scores": scores}


def baseline_methods(size: int) -> dict[str, Inpainter]:
    return {"telea": TeleaInpainter(size), "navier-stokes": NavierStokes(size)}


class NavierStokes(TeleaInpainter):
    name = "navier-stokes"

    def __init__(self, crop_size: int = 256):
        super().__init__(crop_size, radius=5, method=cv2.INPAINT_NS)

    def describe(self) -> dict:
        return {"model": "opencv-navier-stokes", "classical": True}
