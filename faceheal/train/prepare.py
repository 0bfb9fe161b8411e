"""`faceheal prepare`: training crops made by the same detector and aligner as `faceheal restore`.

Every face folder is detected and aligned to the canonical crop, so training and inference see the
same framing. Label maps (CelebAMask-HQ) are warped with the same transform, nearest neighbour, and
mapped to faceheal's label set. The result is three files a training run memory-maps:
`images.npy` (N, S, S, 3) uint8, `labels.npy` (N, S, S) uint8 (255 = unknown), `index.json` (source,
split, label source). A held-out split, chosen by a hash of the source path, is never trained on.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceheal.faces.align import similarity_transform, template, warp_to_crop
from faceheal.images import read_image, to_float_rgb, to_rgb8
from faceheal.model.semantics import IGNORE, map_celebamask
from faceheal.sources import walk_images


def split_of(name: str, held_out_percent: int = 5) -> str:
    """Deterministic split by a hash of the file name: 'train', or about `held_out_percent` % held out,
    halved into 'val' (checkpoints and thresholds are chosen on it) and 'test' (reported, never chosen
    on). The held-out set is the one every shipped model was kept from; halving it keeps both halves
    unseen by training."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    return "train" if int(digest[:8], 16) % 100 >= held_out_percent else held_out_half(name)


def held_out_half(name: str) -> str:
    """'val' or 'test' for a held-out file, by a second part of the same hash."""
    return "val" if int(hashlib.sha256(name.encode()).hexdigest()[8:16], 16) % 2 == 0 else "test"


@dataclass
class _Job:
    image: str
    label: str | None
    size: int


_DETECTOR = None


def _prepare_one(job: _Job):
    global _DETECTOR
    if _DETECTOR is None:
        from faceheal.faces.detect import MtcnnDetector
        _DETECTOR = MtcnnDetector(min_face=40)
    try:
        pic = read_image(job.image)
    except Exception as e:
        return job.image, None, None, f"unreadable: {e}"
    faces = _DETECTOR.detect(to_rgb8(pic.display()))
    if not faces:
        return job.image, None, None, "no face"
    h, w = pic.display().shape[:2]
    centre = np.array([w / 2, h / 2])
    face = max(faces, key=lambda f: f.size - 0.5 * np.linalg.norm(f.landmarks.mean(0) - centre))
    m = similarity_transform(face.landmarks, template(job.size))
    crop = warp_to_crop(to_float_rgb(pic.display()), m, job.size, cv2.INTER_LINEAR)
    crop8 = np.clip(crop * 255 + 0.5, 0, 255).astype(np.uint8)
    labels = None
    if job.label:
        from PIL import Image
        raw = np.array(Image.open(job.label))
        if raw.shape != (h, w):  # label maps may be stored at another resolution than the photo
            raw = cv2.resize(raw, (w, h), interpolation=cv2.INTER_NEAREST)
        labels = warp_to_crop(map_celebamask(raw), m, job.size, cv2.INTER_NEAREST, border_value=IGNORE)
    return job.image, crop8, labels, None


def collect_jobs(data_root: Path, size: int) -> list[_Job]:
    """All faces under ../shared/data/faces (or any folder of face photos), with label maps where present."""
    jobs = []
    for img in walk_images(data_root):
        if img.parent.name == "labels":  # label maps sit beside their images; they are not photos
            continue
        label = None
        if img.parent.name == "images" and (img.parent.parent / "labels").is_dir():
            cand = img.parent.parent / "labels" / (img.stem + ".png")
            label = str(cand) if cand.is_file() else None
        jobs.append(_Job(str(img), label, size))
    return jobs


def prepare(data_root: Path, out_dir: Path, size: int = 256, workers: int = 2, limit: int | None = None,
            progress=None) -> dict:
    """Detect, align and store every face under `data_root`; returns counts."""
    jobs = collect_jobs(Path(data_root), size)
    if limit:
        rng = np.random.default_rng(0)
        jobs = [jobs[i] for i in sorted(rng.choice(len(jobs), min(limit, len(jobs)), replace=False))]
    out_dir.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(out_dir / "images.partial.npy", "w+", np.uint8, (len(jobs), size, size, 3))
    labels = np.lib.format.open_memmap(out_dir / "labels.partial.npy", "w+", np.uint8, (len(jobs), size, size))
    index, skipped = [], []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for src, crop, lab, err in pool.map(_prepare_one, jobs, chunksize=16):
            if progress:
                progress()
            if err:
                skipped.append({"source": src, "reason": err})
                continue
            i = len(index)
            images[i] = crop
            labels[i] = lab if lab is not None else IGNORE
            rel = str(Path(src).relative_to(data_root))
            index.append({"source": rel, "split": split_of(Path(src).name),
                          "labels": "ground-truth" if lab is not None else "none"})
    n = len(index)
    np.save(out_dir / "images.npy", np.asarray(images[:n]))
    np.save(out_dir / "labels.npy", np.asarray(labels[:n]))
    del images, labels
    (out_dir / "images.partial.npy").unlink()
    (out_dir / "labels.partial.npy").unlink()
    summary = {"size": size, "count": n, "skipped": skipped,
               "train": sum(e["split"] == "train" for e in index),
               "val": sum(e["split"] == "val" for e in index),
               "test": sum(e["split"] == "test" for e in index),
               "labelled": sum(e["labels"] == "ground-truth" for e in index)}
    (out_dir / "index.json").write_text(json.dumps({"summary": summary, "items": index}, indent=0))
    return summary
