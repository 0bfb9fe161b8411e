"""Batches for training: prepared crops (memory-mapped), their labels, flips, and synthetic masks.

Sampling is seeded and indexed by step, so a resumed run sees the batches it would have seen.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceheal.masks.synthetic import synthetic_mask
from faceheal.model.semantics import FLIP_PERMUTATION, IGNORE, NUM_CLASSES


@dataclass
class Batch:
    image: torch.Tensor  # (B, 3, S, S) in [-1, 1]
    hole: torch.Tensor  # (B, 1, S, S) in {0, 1}
    labels: torch.Tensor  # (B, S, S) uint8 class ids, 255 = unknown
    label_weight: torch.Tensor  # (B,) 1 ground truth, <1 pseudo-label, 0 none
    prior: torch.Tensor | None = None  # (B, 3, S, S) classical fill in [-1, 1], when the model uses one

    def pin_memory(self) -> "Batch":
        return Batch(*(t.pin_memory() if t is not None else None for t in
                       (self.image, self.hole, self.labels, self.label_weight, self.prior)))


class _Packed:
    """Images stored back to back as JPEG/PNG bytes, indexed like an array."""

    def __init__(self, blob: bytes, offsets: np.ndarray, colour: bool):
        self.blob, self.offsets, self.colour = np.frombuffer(blob, np.uint8), offsets, colour

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        import cv2

        data = self.blob[self.offsets[i]:self.offsets[i + 1]]
        if self.colour:
            return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def item_split(item: dict) -> str:
    """An index entry's split. Folders prepared before the validation split existed mark every held-out
    crop 'test': those are divided into 'val' and 'test' by the same hash `faceheal prepare` uses now."""
    if item["split"] != "test":
        return item["split"]
    from faceheal.train.prepare import held_out_half

    return held_out_half(Path(item["source"]).name)


class PreparedFaces:
    """The output of `faceheal prepare`: images.npy, labels.npy, index.json (split, label source)."""

    def __init__(self, root: Path, split: str = "train", labelled_only: bool = False):
        root = Path(root)
        meta = json.loads((root / "index.json").read_text())
        self.items = meta["items"]
        if (root / "images.pack").exists():  # compact form (`faceheal pack`), decoded per sample
            offsets = np.load(root / "pack.npz")
            self.images = _Packed((root / "images.pack").read_bytes(), offsets["images"], colour=True)
            self.labels = _Packed((root / "labels.pack").read_bytes(), offsets["labels"], colour=False)
            self.size = int(meta["summary"]["size"])
        else:
            self.images = np.load(root / "images.npy", mmap_mode="r")
            labels_file = root / "labels_pseudo.npy" if (root / "labels_pseudo.npy").exists() else root / "labels.npy"
            self.labels = np.load(labels_file, mmap_mode="r")
            self.size = self.images.shape[1]
        keep = [i for i, e in enumerate(self.items) if item_split(e) == split]
        if labelled_only:
            keep = [i for i in keep if self.items[i]["labels"] == "ground-truth"]
        self.indices = np.array(keep, np.int64)
        if len(self.indices) == 0:
            raise ValueError(f"{root}: no {'labelled ' if labelled_only else ''}{split} crops")
        self.label_weight = np.array(
            [{"ground-truth": 1.0, "pseudo": 0.5}.get(e["labels"], 0.0) for e in self.items], np.float32)

    def _image(self, i: int) -> np.ndarray:
        return np.asarray(self.images[i])

    def _labels(self, i: int) -> np.ndarray:
        return np.asarray(self.labels[i])

    def class_weights(self) -> np.ndarray:
        """(K,) weights (median frequency / frequency) ** 0.5, clipped to [0.5, 5], from the
        ground-truth labels: small parts such as eyes and brows would otherwise be drowned by skin."""
        gt = [i for i in self.indices if self.items[i]["labels"] == "ground-truth"]
        counts = np.zeros(NUM_CLASSES, np.float64)
        for i in gt[:400]:
            counts += np.bincount(self._labels(i)[::4, ::4].ravel(), minlength=256)[:NUM_CLASSES]
        freq = counts / max(counts.sum(), 1)
        present = freq > 0
        w = np.ones(NUM_CLASSES)
        if present.any():
            w[present] = np.sqrt(np.median(freq[present]) / freq[present])
        return np.clip(w, 0.5, 5.0).astype(np.float32)

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, step: int, batch_size: int, size: int, seed: int = 0, mask_ratio=(0.0, 0.7),
              augment: bool = True, prior: str | None = None) -> Batch:
        """Batch number `step`: deterministic in (seed, step). `prior`: also compute the classical fill
        stage 2 starts from ("telea"), here, so DataLoader workers do it in parallel."""
        rng = np.random.default_rng([seed, step])
        idx = np.sort(self.indices[rng.integers(0, len(self.indices), batch_size)])
        images = np.stack([self._image(i) for i in idx])
        labels = np.stack([self._labels(i) for i in idx])
        weights = self.label_weight[idx].copy()
        if augment:
            flip = rng.random(batch_size) < 0.5
            images[flip] = images[flip, :, ::-1]
            flipped = labels[flip, :, ::-1]
            lut = np.full(256, IGNORE, np.uint8)
            lut[:NUM_CLASSES] = FLIP_PERMUTATION
            labels[flip] = lut[flipped]
        holes = np.stack([synthetic_mask(size, "mixed", mask_ratio, rng) for _ in range(batch_size)])
        img = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        lab = torch.from_numpy(labels)
        if size != self.size:
            img = F.interpolate(img, size=(size, size), mode="area")
            lab = F.interpolate(lab[:, None].float(), size=(size, size), mode="nearest")[:, 0].to(torch.uint8)
        prior_t = None
        if prior is not None:
            from faceheal.model.generator import classical_prior

            p = classical_prior(((img + 1) / 2).permute(0, 2, 3, 1).numpy(), holes, prior)
            prior_t = torch.from_numpy(p).permute(0, 3, 1, 2) * 2 - 1
        return Batch(img, torch.from_numpy(holes[:, None]).float(), lab, torch.from_numpy(weights), prior_t)


def fixed_validation(data: PreparedFaces, count: int, size: int, seed: int = 1234, ratio=(0.3, 0.6),
                     prior: str | None = None) -> Batch:
    """A fixed held-out batch (same faces and masks at every checkpoint) for the training curve."""
    return data.batch(0, count, size, seed=seed, mask_ratio=ratio, augment=False, prior=prior)


class StepBatches(torch.utils.data.Dataset):
    """Batch number i of a run, for a DataLoader whose workers build batches in parallel (CUDA runs)."""

    def __init__(self, data: PreparedFaces, start: int, stop: int, **kwargs):
        self.data, self.start, self.stop, self.kwargs = data, start, stop, kwargs

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> Batch:
        return self.data.batch(self.start + i, **self.kwargs)


def pack(source: Path, out: Path, size: int = 128, limit: int | None = None, quality: int = 90,
         held_out_limit: int | None = None) -> dict:
    """A compact copy of a prepared folder for carrying to a GPU machine: crops as JPEG and labels as
    PNG, concatenated (`images.pack`, `labels.pack`, offsets in `pack.npz`), at `size`. `limit` takes a
    seeded subset of the training crops; the held-out crops travel too, still marked held out (training
    never sees them): all of them by default, so the run's validation curve uses the same faces as a run
    on the full folder, or a seeded `held_out_limit` of them where the bytes are better spent on
    training crops (a 256 px pack under a lease's 64 MiB)."""
    import cv2

    source, out = Path(source), Path(out)
    meta = json.loads((source / "index.json").read_text())
    images = np.load(source / "images.npy", mmap_mode="r")
    lab_file = source / "labels_pseudo.npy" if (source / "labels_pseudo.npy").exists() else source / "labels.npy"
    labels = np.load(lab_file, mmap_mode="r")
    keep = [i for i, e in enumerate(meta["items"]) if e["split"] == "train"]
    if limit:
        keep = sorted(np.random.default_rng(0).choice(keep, min(limit, len(keep)), replace=False).tolist())
    held_out = [i for i, e in enumerate(meta["items"]) if e["split"] != "train"]
    if held_out_limit is not None and held_out_limit < len(held_out):
        held_out = sorted(np.random.default_rng(1).choice(held_out, held_out_limit, replace=False).tolist())
    keep = sorted(keep + held_out)
    out.mkdir(parents=True, exist_ok=True)
    img_chunks, lab_chunks, img_off, lab_off = [], [], [0], [0]
    for i in keep:
        im = cv2.resize(np.asarray(images[i]), (size, size), interpolation=cv2.INTER_AREA)
        lb = cv2.resize(np.asarray(labels[i]), (size, size), interpolation=cv2.INTER_NEAREST)
        a = cv2.imencode(".jpg", im[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        b = cv2.imencode(".png", lb)[1].tobytes()
        img_chunks.append(a)
        lab_chunks.append(b)
        img_off.append(img_off[-1] + len(a))
        lab_off.append(lab_off[-1] + len(b))
    (out / "images.pack").write_bytes(b"".join(img_chunks))
    (out / "labels.pack").write_bytes(b"".join(lab_chunks))
    np.savez(out / "pack.npz", images=np.array(img_off, np.int64), labels=np.array(lab_off, np.int64))
    items = [meta["items"][i] for i in keep]
    (out / "index.json").write_text(json.dumps({"summary": {"size": size, "count": len(items), "packed_from": str(source)},
                                                "items": items}))
    total = sum((out / f).stat().st_size for f in ("images.pack", "labels.pack", "pack.npz", "index.json"))
    return {"count": len(items) - len(held_out), "held_out": len(held_out), "size": size,
            "mib": round(total / 2 ** 20, 1)}
