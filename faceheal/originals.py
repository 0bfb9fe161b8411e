"""The photo's own pixels under every repair, kept tile by tile, so restore composes in place.

A 100-megapixel 16-bit RGB scan is 572 MB decoded; a second, repaired copy of it doubled restore's
memory. Repairs touch a small part of a photo, so restore writes them into the decoded pixels
themselves and keeps, before the first write to each 64 px tile, that tile's original pixels. What
the repair changed (pixel counts, the sidecar's boxes, the comparison of a re-encoded JPEG) is then
computed from those tiles alone.
"""
from __future__ import annotations

import contextlib

import cv2
import numpy as np


class Originals:
    """Original pixels of `image` (H, W[, C]) under every region about to be written, first write wins."""

    def __init__(self, image: np.ndarray, tile: int = 64):
        self.image, self.tile = image, tile
        self.tiles: dict[tuple[int, int], np.ndarray] = {}  # (tile row, tile col) -> original pixels

    def _rect(self, ty: int, tx: int) -> tuple[int, int, int, int]:
        t = self.tile
        return ty * t, min((ty + 1) * t, self.image.shape[0]), tx * t, min((tx + 1) * t, self.image.shape[1])

    def keep(self, y0: int, y1: int, x0: int, x1: int, where: np.ndarray | None = None) -> None:
        """Call before writing image[y0:y1, x0:x1]; `where` (that rect's shape, bool): the pixels the write
        may change (tiles without any are not kept)."""
        h, w = self.image.shape[:2]
        oy, ox = y0, x0
        y0, y1, x0, x1 = max(0, y0), min(h, y1), max(0, x0), min(w, x1)
        t = self.tile
        for ty in range(y0 // t, -(-y1 // t)):
            for tx in range(x0 // t, -(-x1 // t)):
                if (ty, tx) in self.tiles:
                    continue
                a0, a1, b0, b1 = self._rect(ty, tx)
                if where is not None:
                    sub = where[max(a0, y0) - oy:min(a1, y1) - oy, max(b0, x0) - ox:min(b1, x1) - ox]
                    if not sub.any():
                        continue
                self.tiles[(ty, tx)] = self.image[a0:a1, b0:b1].copy()

    def _changed(self, key: tuple[int, int], image: np.ndarray) -> np.ndarray:
        a0, a1, b0, b1 = self._rect(*key)
        d = image[a0:a1, b0:b1] != self.tiles[key]
        return d.any(axis=-1) if d.ndim == 3 else d

    def count_changed(self, image: np.ndarray | None = None) -> int:
        """Pixels of `image` (default: the repaired one) that differ from the original in any channel;
        outside the kept tiles `image` is taken to equal the repaired one."""
        image = self.image if image is None else image
        return sum(int(self._changed(k, image).sum()) for k in self.tiles)

    def changed_mask(self) -> np.ndarray:
        """(H, W) bool: the pixels the repair changed (what an encoder that keeps the file's own bytes
        elsewhere, a JPEG's blocks or a palette's indices, needs)."""
        mask = np.zeros(self.image.shape[:2], bool)
        for key in self.tiles:
            a0, a1, b0, b1 = self._rect(*key)
            mask[a0:a1, b0:b1] = self._changed(key, self.image)
        return mask

    @contextlib.contextmanager
    def original(self):
        """The image holds its original pixels inside the block, its repaired ones again after it."""
        repaired = {}
        try:
            for key, orig in self.tiles.items():
                a0, a1, b0, b1 = self._rect(*key)
                repaired[key] = self.image[a0:a1, b0:b1].copy()
                self.image[a0:a1, b0:b1] = orig
            yield self.image
        finally:
            for key, rep in repaired.items():
                a0, a1, b0, b1 = self._rect(*key)
                self.image[a0:a1, b0:b1] = rep

    def changed_boxes(self) -> list[list[int]]:
        """Bounding boxes [x0, y0, x1, y1] of the 8-connected groups of changed pixels, in reading
        order: each kept tile labelled on its own, labels that touch across tile edges merged (only the
        tiles' edge rows and columns of labels are kept for that)."""
        boxes: list[list[int]] = []
        edges = {}  # tile -> (top row, bottom row, left column, right column) of global labels, -1 unchanged
        for key in sorted(self.tiles):
            n, lab, stats, _ = cv2.connectedComponentsWithStats(self._changed(key, self.image).astype(np.uint8),
                                                                 connectivity=8, ltype=cv2.CV_32S)
            if n == 1:
                continue
            a0, _, b0, _ = self._rect(*key)
            base = len(boxes)
            boxes += [[b0 + int(x), a0 + int(y), b0 + int(x + w), a0 + int(y + h)] for x, y, w, h, _ in stats[1:]]
            glob = lambda v: np.where(v > 0, v + (base - 1), -1)  # noqa: E731
            edges[key] = (glob(lab[0]), glob(lab[-1]), glob(lab[:, 0]), glob(lab[:, -1]))
        pairs = []
        for (ty, tx), (_, bottom, _, right) in edges.items():
            if (ty, tx + 1) in edges:  # the right neighbour: same row and the rows above and below
                left = edges[(ty, tx + 1)][2]
                pairs += [(right, left), (right[1:], left[:-1]), (right[:-1], left[1:])]
            if (ty + 1, tx) in edges:  # below: same column and the columns either side
                top = edges[(ty + 1, tx)][0]
                pairs += [(bottom, top), (bottom[1:], top[:-1]), (bottom[:-1], top[1:])]
            if (ty + 1, tx + 1) in edges:  # the corners
                pairs.append((bottom[-1:], edges[(ty + 1, tx + 1)][0][:1]))
            if (ty + 1, tx - 1) in edges:
                pairs.append((bottom[:1], edges[(ty + 1, tx - 1)][0][-1:]))
        parent = list(range(len(boxes)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        if pairs:
            a = np.concatenate([p[0] for p in pairs])
            b = np.concatenate([p[1] for p in pairs])
            both = (a >= 0) & (b >= 0)
            for i, j in np.unique(np.stack([a[both], b[both]], 1), axis=0):
                ri, rj = find(int(i)), find(int(j))
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
        merged: dict[int, list[int]] = {}
        for i, box in enumerate(boxes):
            m = merged.setdefault(find(i), list(box))
            m[0], m[1], m[2], m[3] = min(m[0], box[0]), min(m[1], box[1]), max(m[2], box[2]), max(m[3], box[3])
        return sorted(merged.values(), key=lambda b: (b[1], b[0]))
