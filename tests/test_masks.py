import numpy as np
import pytest

from faceheal.errors import MaskMismatch, MissingMask
from faceheal.masks.supplied import binarise, find_mask, read_mask
from faceheal.masks.synthetic import KINDS, synthetic_mask
from tests.conftest import write_png


def test_binarise_counts_values_above_half_range_any_depth():
    m8 = np.array([[0, 127, 128, 255]], np.uint8)
    assert binarise(m8).tolist() == [[False, False, True, True]]
    m16 = np.array([[0, 32767, 32768, 65535]], np.uint16)
    assert binarise(m16).tolist() == [[False, False, True, True]]
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 1, 0] = 200  # anti-aliased edge in one channel still counts
    assert binarise(rgb).tolist() == [[False, True]]


def test_read_mask_rejects_another_size(tmp_path):
    p = write_png(tmp_path / "m.png", np.zeros((10, 12), np.uint8))
    assert read_mask(p, (10, 12)).shape == (10, 12)
    with pytest.raises(MaskMismatch, match="12x10 but the photo is 11x10"):
        read_mask(p, (10, 11))


def test_find_mask_matches_relative_path_and_stem_any_extension(tmp_path):
    write_png(tmp_path / "masks" / "a" / "b.png", np.zeros((4, 4), np.uint8))
    from pathlib import Path

    assert find_mask(tmp_path / "masks", Path("a/b.jpg")) == tmp_path / "masks" / "a" / "b.png"
    with pytest.raises(MissingMask):
        find_mask(tmp_path / "masks", Path("a/c.jpg"))
    with pytest.raises(MissingMask):
        find_mask(tmp_path / "masks", Path("b.jpg"))  # same stem, other folder: not a match


@pytest.mark.parametrize("kind", KINDS + ("mixed",))
def test_synthetic_masks_are_seeded_and_within_the_ratio(kind):
    a = synthetic_mask(128, kind, (0.1, 0.3), 5)
    b = synthetic_mask(128, kind, (0.1, 0.3), 5)
    assert a.dtype == bool and a.shape == (128, 128)
    assert (a == b).all()
    assert a.mean() > 0.02
    if kind not in ("scratches", "strokes"):
        assert 0.1 <= a.mean() <= 0.55  # the last shape may overshoot the target somewhat
    assert not (a == synthetic_mask(128, kind, (0.1, 0.3), 6)).all()


def test_synthetic_masks_reach_large_ratios():
    ratios = [synthetic_mask(256, "irregular", (0.5, 0.6), s).mean() for s in range(5)]
    assert min(ratios) >= 0.5
