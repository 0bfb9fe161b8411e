"""`faceheal eval --photos`: the end-to-end protocol, whole held-out photos through `faceheal restore`.

Users never hand the model an aligned crop with its exact hole: they hand `faceheal restore` a whole
photo, and the repair goes through detection under the damage, alignment, the hole's warp into the
crop, paste-back and writing. So this runs the very `Restorer` that `faceheal restore` runs.

For each held-out photo (split by the hash `faceheal prepare` uses: 'val' to choose on, 'test' to report)
the main face is found on the clean photo; for each damage bin a mask (an NVIDIA irregular mask, or a
synthetic kind) is scaled into that face's box and painted white into the photo, and the photo goes
through the Restorer with that mask supplied. Scores are taken inside the face box against the clean
photo: PSNR, SSIM, LPIPS, beside OpenCV Telea and Navier-Stokes run on the same whole photos and masks,
and the model alone on the same faces (the clean photo's aligned crop, the same damage warped into it,
scored over the face box as the crop holds it). Detection is recorded too: the face missed, false
faces, and the fraction of damaged face pixels left as they were.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from faceheal.evaluate import lpips_scores
from faceheal.metrics import image_psnr, image_ssim
from faceheal.faces.detect import Face, FaceDetector, box_iou
from faceheal.images import read_image, to_rgb8
from faceheal.inpainters import Inpainter
from faceheal.masks.supplied import binarise
from faceheal.masks.synthetic import synthetic_mask

BINS = [(0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6)]
KINDS = ("nvidia", "irregular", "strokes", "scratches", "blobs")
LPIPS_SIZE = 256  # face boxes are scaled to this for LPIPS (AlexNet wants a fixed, reasonable size)


def held_out_photos(root: Path, split: str, limit: int | None = None) -> list[Path]:
    """The photos under `root` in `split` ('val' or 'test'), by the file-name hash of `faceheal prepare`."""
    from faceheal.sources import walk_images
    from faceheal.train.prepare import split_of

    photos = [p for p in walk_images(Path(root)) if split_of(p.name) == split and p.parent.name != "labels"]
    return photos[:limit] if limit else photos


def main_face(faces: list[Face], shape: tuple[int, int]) -> Face | None:
    """The photo's subject: large and central (the rule `faceheal prepare` uses)."""
    if not faces:
        return None
    centre = np.array([shape[1] / 2, shape[0] / 2])
    return max(faces, key=lambda f: f.size - 0.5 * np.linalg.norm(f.landmarks.mean(0) - centre))


def box_of(face: Face, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    h, w = shape
    x0, y0, x1, y1 = face.box
    return max(0, int(round(x0))), max(0, int(round(y0))), min(w, int(round(x1))), min(h, int(round(y1)))


class DamageSource:
    """Masks for a face box by damage bin: NVIDIA masks of the right measured ratio, or a synthetic kind."""

    def __init__(self, kind: str, nvidia_dir: Path | None, seed: int):
        if kind not in KINDS:
            raise ValueError(f"unknown damage kind {kind!r} (choose from {', '.join(KINDS)})")
        self.kind, self.rng = kind, np.random.default_rng(seed)
        self.by_bin: list[list[Path]] = [[] for _ in BINS]
        if kind == "nvidia":
            from faceheal.sources import walk_images

            if nvidia_dir is None:
                raise ValueError("the nvidia damage kind needs --masks (the NVIDIA irregular masks)")
            for p in walk_images(Path(nvidia_dir)):
                r = binarise(read_image(p).pixels)[::4, ::4].mean()
                for b, (lo, hi) in enumerate(BINS):
                    if lo <= r < hi:
                        self.by_bin[b].append(p)

    def mask(self, b: int, box_shape: tuple[int, int]) -> np.ndarray:
        """A (h, w) bool mask for a face box whose hole ratio lies in bin `b` (as measured in the box)."""
        lo, hi = BINS[b]
        h, w = box_shape
        for _ in range(20):  # draw until the ratio, measured after scaling into the box, is in the bin
            if self.kind == "nvidia":
                group = self.by_bin[b]
                if not group:
                    raise ValueError(f"no NVIDIA mask with a hole ratio of {lo:.0%}-{hi:.0%}")
                m = binarise(read_image(group[int(self.rng.integers(len(group)))]).pixels)
                k = int(self.rng.integers(4))  # the set is small: rotate for variety
                m = np.rot90(m, k)
            else:
                m = synthetic_mask(max(h, w), self.kind, (lo, hi), self.rng)
            m = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            if lo <= m.mean() < hi:
                return m
        return m


@dataclass
class Case:
    """One damaged photo of the evaluation."""

    name: str
    photo: Path
    bin: int
    clean: np.ndarray  # (H, W, 3) uint8
    hole: np.ndarray  # (H, W) bool
    box: tuple[int, int, int, int]
    face: Face
    clean_faces: list[Face] = field(default_factory=list)

    @property
    def damaged(self) -> np.ndarray:
        d = self.clean.copy()
        d[self.hole] = 255
        return d


def build_cases(photos: list[Path], detector: FaceDetector, damage: DamageSource, bins: list[int]) -> tuple[list[Case], list[str]]:
    """Every photo whose face is found on the clean copy, damaged once per bin."""
    cases, skipped = [], []
    for p in photos:
        try:
            clean = to_rgb8(read_image(p).display())
        except Exception as e:  # an unreadable photo is not this evaluation's concern: noted and skipped
            skipped.append(f"{p}: {e}")
            continue
        faces = detector.detect(clean)
        face = main_face(faces, clean.shape[:2])
        if face is None:
            skipped.append(f"{p}: no face on the clean photo")
            continue
        box = box_of(face, clean.shape[:2])
        x0, y0, x1, y1 = box
        for b in bins:
            hole = np.zeros(clean.shape[:2], bool)
            hole[y0:y1, x0:x1] = damage.mask(b, (y1 - y0, x1 - x0))
            ratio = hole[y0:y1, x0:x1].mean()
            measured = [i for i, (lo, hi) in enumerate(BINS) if lo <= ratio < hi]
            if measured:  # thin kinds (scratches) cannot reach the large bins: such draws are dropped
                cases.append(Case(f"{p.stem}_{damage.kind}_{b}", p, measured[0], clean, hole, box, face, faces))
    return cases, skipped


def restore_cases(cases: list[Case], restorer, work: Path) -> tuple[list[np.ndarray], list]:
    """Write each damaged photo and its mask, run the Restorer over the folder as `faceheal restore`
    does, and read the outputs back. Returns outputs and the per-photo results, in case order."""
    from faceheal.sources import Source

    (work / "in").mkdir(parents=True, exist_ok=True)
    (work / "masks").mkdir(parents=True, exist_ok=True)
    sources = []
    for c in cases:
        cv2.imwrite(str(work / "in" / f"{c.name}.png"), c.damaged[..., ::-1])
        cv2.imwrite(str(work / "masks" / f"{c.name}.png"), c.hole.astype(np.uint8) * 255)
        sources.append(Source(work / "in" / f"{c.name}.png", Path(f"{c.name}.png")))
    restorer.masks.masks_dir = work / "masks"
    results = restorer.run(sources, work / "out", batch_faces=restorer.inpainter.batch_size)
    outputs = []
    for c, r in zip(cases, results):
        if r.output and Path(r.output).is_file():
            outputs.append(to_rgb8(read_image(r.output).display()))
        else:  # no output at all (an error): the damaged photo is what the user has
            outputs.append(c.damaged)
    return outputs, results


def classical(cases: list[Case], method: int) -> list[np.ndarray]:
    """OpenCV inpainting of the whole damaged photo with the same mask (radius 5, as `--model telea`)."""
    return [cv2.inpaint(c.damaged, c.hole.astype(np.uint8) * 255, 5, method) for c in cases]


def model_alone(cases: list[Case], inpainter: Inpainter) -> tuple[list, list]:
    """The model on the clean photo's aligned crop (landmarks found on the clean photo) with the damage
    warped into it. Returns two lists of (prediction, truth) pairs: in the crop, over the face box (no
    detection under damage, no paste-back, no writing: the model-alone figure), and pasted back into the
    photo through the inverse warp, over the face box (the model with a perfect detector: what the rest
    of the pipeline costs shows between this and end to end)."""
    from faceheal.faces.align import align_face, paste_back

    size = inpainter.crop_size
    in_crop, pasted = [], []
    for s in range(0, len(cases), 16):
        part = cases[s:s + 16]
        aligned = [align_face(c.clean, c.hole, c.face.landmarks, size) for c in part]
        pred = inpainter.inpaint(np.stack([a.crop for a in aligned]), np.stack([a.hole for a in aligned])).images
        for a, p, c in zip(aligned, pred, part):
            in_crop.append((box_in_crop(p, a.matrix, c.box), box_in_crop(a.crop, a.matrix, c.box)))
            canvas = c.damaged.astype(np.float32) / 255
            paste_back(canvas, np.zeros(c.hole.shape, np.float32), p, a.matrix, c.hole.astype(np.float32))
            canvas8 = np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8)
            pasted.append((_in_box(canvas8, c.box), _in_box(c.clean, c.box)))
    return in_crop, pasted


def box_in_crop(crop: np.ndarray, matrix: np.ndarray, box) -> np.ndarray:
    """The photo's face box as the crop holds it, at the crop's resolution, turned upright.

    The crop is rotated against the photo, so the box is a tilted rectangle there; scoring its bounding
    rectangle instead would count a margin of pixels the model was given (a 10 degree tilt: 34 % more
    area, 1.3 dB more PSNR for nothing). Each pixel of the upright box takes the crop pixel under it
    (nearest: no resampling that would smooth prediction and truth alike)."""
    x0, y0, x1, y1 = box
    a = matrix[:, :2]
    s = float(np.sqrt(abs(np.linalg.det(a))))  # crop px per photo px
    w, h = max(1, int(round((x1 - x0) * s))), max(1, int(round((y1 - y0) * s)))
    to_crop = np.hstack([a / s, (a @ np.array([x0, y0], np.float64) + matrix[:, 2])[:, None]])
    return cv2.warpAffine(crop, to_crop, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _in_box(img: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1].astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0)


def seam_ratio(output: np.ndarray, case: Case) -> float:
    """Gradient energy across the damage's boundary in the output, over the clean photo's there, inside
    the face box: 1 where the repair meets its surroundings as the photo itself does, above 1 for a
    visible seam, below 1 for a blurred band."""
    x0, y0, x1, y1 = case.box
    hole = case.hole[y0:y1, x0:x1].astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    ring = (cv2.dilate(hole, k) > 0) & ~(cv2.erode(hole, k) > 0)

    def energy(img):
        g = cv2.cvtColor(np.ascontiguousarray(img[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))[ring].mean())

    return energy(output) / max(energy(case.clean), 1e-6)


def score_pairs(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """PSNR, SSIM and LPIPS of each (prediction, truth) pair of float RGB images."""
    rows = [{"psnr": image_psnr(p, t), "ssim": image_ssim(p, t)} for p, t in pairs]
    small = lambda a: cv2.resize(a, (LPIPS_SIZE, LPIPS_SIZE), interpolation=cv2.INTER_AREA)  # noqa: E731
    lp = lpips_scores(np.stack([small(p) for p, _ in pairs]), np.stack([small(t) for _, t in pairs]))
    for r, v in zip(rows, lp if lp is not None else [None] * len(rows)):
        r["lpips"] = None if v is None else float(v)
    return rows


def detection_outcome(case: Case, result, output: np.ndarray) -> dict:
    """Was the face found, were false faces repaired, how much of the face's damage was left as it was."""
    found = [f.face.box for f in result.faces if f.face is not None]
    hit = any(box_iou(b, case.face.box) >= 0.4 for b in found)
    false = sum(1 for b in found if all(box_iou(b, f.box) < 0.4 for f in case.clean_faces))
    x0, y0, x1, y1 = case.box
    hole = case.hole[y0:y1, x0:x1]
    left = (output[y0:y1, x0:x1] == case.damaged[y0:y1, x0:x1]).all(-1) & hole
    possible = [tuple(p["box"]) for p in result.possible_faces]
    named = not hit and any(box_iou(b, case.face.box) >= 0.4 for b in possible)
    possible_false = sum(1 for b in possible if all(box_iou(b, f.box) < 0.4 for f in case.clean_faces))
    return {"found": hit, "false_faces": false, "damaged": int(hole.sum()), "left": int(left.sum()),
            "status": result.status, "missed_but_warned": named, "false_warnings": possible_false}


def evaluate_photos(photos_root: Path, restorer, inpainter: Inpainter | None, out_prefix: Path, *,
                    nvidia_dir: Path | None = None, kinds: tuple[str, ...] = ("nvidia",), split: str = "test",
                    limit: int | None = 60, seed: int = 0, work: Path | None = None) -> dict:
    """Run the protocol; write `<out_prefix>.md`, `.json` and a grid `.png`; return the scores.

    `restorer`: the `faceheal restore` Restorer (its mask source is pointed at the painted masks);
    `inpainter`: the same model for the model-alone column (None: no such column)."""
    from faceheal.faces.detect import MtcnnDetector

    photos = held_out_photos(photos_root, split, limit)
    detector = MtcnnDetector(min_face=20)
    report = {"photos_root": str(photos_root), "split": split, "photos": len(photos), "kinds": {}, "seed": seed}
    grids = []
    for kind in kinds:
        damage = DamageSource(kind, nvidia_dir, seed)
        cases, skipped = build_cases(photos, detector, damage, list(range(len(BINS))))
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            outputs, results = restore_cases(cases, restorer, Path(tmp))
        methods = {"telea": classical(cases, cv2.INPAINT_TELEA), "navier-stokes": classical(cases, cv2.INPAINT_NS),
                   "faceheal": outputs}
        scores = {m: score_pairs([(_in_box(o, c.box), _in_box(c.clean, c.box)) for o, c in zip(outs, cases)])
                  for m, outs in methods.items()}
        for m, outs in methods.items():
            for row, o, c in zip(scores[m], outs, cases):
                row["seam"] = seam_ratio(o, c)
        if inpainter is not None:
            in_crop, pasted = model_alone(cases, inpainter)
            scores["model alone"], scores["model, pasted"] = score_pairs(in_crop), score_pairs(pasted)
        outcomes = [detection_outcome(c, r, o) for c, r, o in zip(cases, results, outputs)]
        report["kinds"][kind] = {"skipped": skipped, "bins": summarise(cases, scores, outcomes)}
        grids.append(comparison_grid(cases, methods))
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    report["table"] = markdown(report)
    out_prefix.with_suffix(".json").write_text(json.dumps(report, indent=1))
    out_prefix.with_suffix(".md").write_text(
        f"# faceheal eval --photos (end to end)\n\nphotos: {photos_root}, '{split}' split, {len(photos)} photos; seed {seed}.\n"
        "Each photo's main face is damaged (white paint, mask supplied) once per bin of face-box damage and "
        "restored by `faceheal restore`'s Restorer; PSNR (dB) / SSIM / LPIPS (lower is better) inside the face "
        "box against the clean photo. 'model alone': the generator on the clean photo's aligned crop with the "
        "same damage, scored over the face box as the crop holds it (turned upright, at the crop's resolution); 'model, pasted': that result pasted into the photo "
        "through the inverse warp, scored in the face box (a perfect detector). seam: gradient energy across the damage's "
        "edge over the clean photo's (1 = no seam, below 1 = a blurred band). missed / false: faces; missed but "
        "warned: missed faces restore named as possible faces under the damage (a warning), false warnings: possible faces "
        "that are none; left: damaged face-box pixels written back unrepaired.\n\n" + report["table"] + "\n")
    if grids:
        grid = np.concatenate(grids, 0)
        cv2.imwrite(str(out_prefix.with_suffix(".png")), grid[..., ::-1])
    return report


def summarise(cases: list[Case], scores: dict[str, list[dict]], outcomes: list[dict]) -> list[dict]:
    rows = []
    for b, (lo, hi) in enumerate(BINS):
        sel = [i for i, c in enumerate(cases) if c.bin == b]
        if not sel:
            continue
        row = {"bin": f"{int(lo * 100)}-{int(hi * 100)}%", "n": len(sel)}
        for m, s in scores.items():
            row[m] = {k: float(np.mean([s[i][k] for i in sel])) if s[sel[0]].get(k) is not None else None
                      for k in ("psnr", "ssim", "lpips", "seam")}
        damaged = sum(outcomes[i]["damaged"] for i in sel)
        row["missed"] = sum(not outcomes[i]["found"] for i in sel)
        row["false_faces"] = sum(outcomes[i]["false_faces"] for i in sel)
        row["missed_but_warned"] = sum(outcomes[i]["missed_but_warned"] for i in sel)  # named as a possible face
        row["false_warnings"] = sum(outcomes[i]["false_warnings"] for i in sel)
        row["left"] = sum(outcomes[i]["left"] for i in sel) / max(damaged, 1)
        row["reported_ok_with_damage_left"] = sum(outcomes[i]["left"] > 0 and outcomes[i]["status"] == "ok" for i in sel)
        rows.append(row)
    return rows


def markdown(report: dict) -> str:
    lines = []
    for kind, k in report["kinds"].items():
        methods = [m for m in ("telea", "navier-stokes", "faceheal", "model, pasted", "model alone") if m in k["bins"][0]] if k["bins"] else []
        lines += [f"**{kind}** damage ({len(k['skipped'])} photos skipped: no face on the clean photo or unreadable)", "",
                  "| face damage | n | " + " | ".join(f"{m} PSNR / SSIM / LPIPS" for m in methods)
                  + " | faceheal - telea | seam: telea / faceheal | missed / false | missed but warned / false warnings | left |",
                  "|---|---|" + "---|" * (len(methods) + 5)]
        for r in k["bins"]:
            cells = [f"{r[m]['psnr']:.2f} / {r[m]['ssim']:.3f} / " + (f"{r[m]['lpips']:.3f}" if r[m]["lpips"] is not None else "-")
                     for m in methods]
            gain = r["faceheal"]["psnr"] - r["telea"]["psnr"]
            lines.append(f"| {r['bin']} | {r['n']} | " + " | ".join(cells)
                         + f" | {gain:+.2f} dB | {r['telea']['seam']:.2f} / {r['faceheal']['seam']:.2f}"
                         + f" | {r['missed']} / {r['false_faces']} | {r['missed_but_warned']} / {r['false_warnings']}"
                         + f" | {100 * r['left']:.2f} % |")
        lines.append("")
    return "\n".join(lines)


def comparison_grid(cases: list[Case], methods: dict[str, list[np.ndarray]], per_bin: int = 1, tile: int = 112) -> np.ndarray:
    """Rows: one photo per bin; columns: damaged | each method | original, cropped around the face box."""
    rows = []
    for b in range(len(BINS)):
        sel = [i for i, c in enumerate(cases) if c.bin == b][b * per_bin:(b + 1) * per_bin] or \
              [i for i, c in enumerate(cases) if c.bin == b][:per_bin]
        for i in sel:
            c = cases[i]
            x0, y0, x1, y1 = c.box
            m = (x1 - x0) // 3
            h, w = c.hole.shape
            X0, Y0, X1, Y1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
            cols = [c.damaged] + [methods[k][i] for k in methods] + [c.clean]
            rows.append(np.concatenate([cv2.resize(np.ascontiguousarray(im[Y0:Y1, X0:X1]), (tile, tile),
                                                   interpolation=cv2.INTER_AREA) for im in cols], 1))
    return np.concatenate(rows, 0) if rows else np.zeros((tile, tile, 3), np.uint8)
