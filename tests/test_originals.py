"""Restore composes in place: the originals kept tile by tile must say exactly what a full copy would."""
import cv2
import numpy as np

from faceheal.originals import Originals


def _full_boxes(changed: np.ndarray) -> list[list[int]]:
    _, _, stats, _ = cv2.connectedComponentsWithStats(changed.astype(np.uint8), connectivity=8)
    return sorted(([int(x), int(y), int(x + w), int(y + h)] for x, y, w, h, _ in stats[1:]), key=lambda b: (b[1], b[0]))


def test_changes_counted_and_boxed_as_a_full_copy_would():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 65535, (300, 410, 3), dtype=np.uint16)
    before = image.copy()
    originals = Originals(image, tile=32)
    # writes that cross tile edges and corners, overlap each other, and one that changes nothing
    strokes = np.zeros(image.shape[:2], np.uint8)
    cv2.line(strokes, (5, 5), (400, 290), 1, 3)
    cv2.line(strokes, (400, 10), (10, 280), 1, 1)  # 1 px diagonal: joins across tile corners only
    cv2.circle(strokes, (63, 63), 4, 1, -1)  # a blob on a tile corner
    for y0, y1, x0, x1 in ((0, 150, 0, 410), (100, 300, 0, 300), (140, 300, 200, 410)):
        where = strokes[y0:y1, x0:x1] > 0
        originals.keep(y0, y1, x0, x1, where)
        image[y0:y1, x0:x1][where] = rng.integers(0, 65535, (int(where.sum()), 3), dtype=np.uint16)
    originals.keep(0, 10, 0, 10, np.zeros((10, 10), bool))  # kept nothing new, changed nothing
    image[5, 5] = before[5, 5]  # written back to its own value: not a change
    changed = (image != before).any(axis=2)
    assert originals.count_changed() == int(changed.sum())
    assert originals.changed_boxes() == _full_boxes(changed)
    with originals.original() as orig:
        assert np.array_equal(orig, before)
    assert originals.count_changed() == int(changed.sum())  # repaired again after the block


def test_untouched_tiles_are_not_kept():
    image = np.zeros((256, 256), np.uint8)
    originals = Originals(image, tile=64)
    where = np.zeros((256, 256), bool)
    where[10, 10] = True
    originals.keep(0, 256, 0, 256, where)
    assert list(originals.tiles) == [(0, 0)]
    assert originals.count_changed() == 0 and originals.changed_boxes() == []
