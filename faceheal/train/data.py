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


class PreparedFaces:
    """The output of `faceheal prepare`: images.npy, labels.npy, index.json (split, label source)."""

    def __init__(self, root: Path, split: str = "train", labelled_only: bool = False):
        root = Path(root)
        meta = json.loads((root / "index.json").read_text())
        self.items = meta["items"]
        self.images = np.load(root / "images.npy", mmap_mode="r")
        labels_file = root / "labels_pseudo.npy" if (root / "labels_pseudo.npy").exists() else root / "labels.npy"
        self.labels = np.load(labels_file, mmap_mode="r")
        self.size = self.images.shape[1]
        keep = [i for i, e in enumerate(self.items) if e["split"] == split]
        if labelled_only:
            keep = [i for i in keep if self.items[i]["labels"] == "ground-truth"]
        self.indices = np.array(keep, np.int64)
        if len(self.indices) == 0:
            raise ValueError(f"{root}: no {'labelled ' if labelled_only else ''}{split} crops")
        self.label_weight = np.array(
            [{"ground-truth": 1.0, "pseudo": 0.5}.get(e["labels"], 0.0) for e in self.items], np.float32)

    def class_weights(self) -> np.ndarray:
        """(K,) weights (median frequency / frequency) ** 0.5, clipped to [0.5, 5], from the
        ground-truth labels: small parts such as eyes and brows would otherwise be drowned by skin."""
        gt = [i for i in self.indices if self.items[i]["labels"] == "ground-truth"]
        counts = np.zeros(NUM_CLASSES, np.float64)
        for i in gt[:400]:
            counts += np.bincount(self.labels[i][::4, ::4].ravel(), minlength=256)[:NUM_CLASSES]
        freq = counts / max(counts.sum(), 1)
        present = freq > 0
        w = np.ones(NUM_CLASSES)
        if present.any():
            w[present] = np.sqrt(np.median(freq[present]) / freq[present])
        return np.clip(w, 0.5, 5.0).astype(np.float32)

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, step: int, batch_size: int, size: int, seed: int = 0, mask_ratio=(0.0, 0.7),
              augment: bool = True) -> Batch:
        """Batch number `step`: deterministic in (seed, step)."""
        rng = np.random.default_rng([seed, step])
        idx = np.sort(self.indices[rng.integers(0, len(self.indices), batch_size)])
        images = np.stack([self.images[i] for i in idx])
        labels = np.stack([self.labels[i] for i in idx])
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
        return Batch(img, torch.from_numpy(holes[:, None]).float(), lab, torch.from_numpy(weights))


def fixed_validation(data: PreparedFaces, count: int, size: int, seed: int = 1234, ratio=(0.3, 0.6)) -> Batch:
    """A fixed held-out batch (same faces and masks at every checkpoint) for the training curve."""
    return data.batch(0, count, size, seed=seed, mask_ratio=ratio, augment=False)
