"""Repairs carry the scan's grain: measured around the repair, added inside it, nowhere else."""
from __future__ import annotations

import cv2
import numpy as np

from faceheal.faces.detect import MtcnnDetector
from faceheal.grain import add_grain, grain_ratio, is_grainy
from faceheal.inpainters import TeleaInpainter
from faceheal.masks.synthetic import synthetic_mask
from faceheal.masks.source import MaskSource
from faceheal.pipeline import RestoreOptions, Restorer
from faceheal.sources import expand_inputs
from tests.conftest import write_png


def _grainy_repair(portrait: np.ndarray, sigma: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    face = portrait[:256, :256].astype(np.float32) / 255
    grainy = np.clip(face + rng.normal(0, sigma, face.shape[:2]).astype(np.float32)[..., None], 0, 1)
    hole = synthetic_mask((256, 256), "strokes", (0.1, 0.2), rng)
    fill = cv2.inpaint((grainy * 255 + 0.5).astype(np.uint8), hole.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    return grainy, fill.astype(np.float32) / 255, hole


def test_grain_is_matched_inside_the_repair_and_nothing_else_changes(portrait):
    grainy, fill, hole = _grainy_repair(portrait, 0.04)
    assert grain_ratio(fill, hole) < 0.4  # a smooth patch on a grainy print
    out = add_grain(fill, hole, np.random.default_rng(1))
    assert 0.8 < grain_ratio(out, hole) < 1.25
    assert (out[~hole] == fill[~hole]).all()
    again = add_grain(fill, hole, np.random.default_rng(1))
    assert (again == out).all()  # seeded: the same photo gets the same bytes


def test_the_middle_of_a_wide_repair_gets_grain_too():
    """120 px of damage: its centre is 6 reaches from any measured pixel, yet gets the same grain."""
    rng = np.random.default_rng(0)
    img = np.repeat(np.clip(0.5 + 0.03 * rng.standard_normal((300, 300, 1)), 0, 1), 3, axis=2).astype(np.float32)
    hole = np.zeros((300, 300), bool)
    hole[100:220, 100:220] = True
    img[hole] = 0.5
    out = add_grain(img, hole, np.random.default_rng(1))
    gray = out @ np.float32([0.299, 0.587, 0.114])
    fine = gray - cv2.GaussianBlur(gray, (0, 0), 1.0)
    assert 0.8 < fine[150:170, 150:170].std() / fine[20:80, 20:80].std() < 1.25


def test_only_grainy_scans_count_as_grainy(portrait):
    grainy, _, _ = _grainy_repair(portrait, 0.04)
    assert is_grainy((grainy * 255 + 0.5).astype(np.uint8))
    smooth = cv2.GaussianBlur(portrait, (0, 0), 1.5)
    assert not is_grainy(smooth)


def test_restore_grain_option(tmp_path, portrait, face_mask):
    rng = np.random.default_rng(0)
    grainy = np.clip(portrait.astype(np.float32) + rng.normal(0, 10, portrait.shape[:2])[..., None], 0, 255).astype(np.uint8)
    damaged = grainy.copy()
    damaged[face_mask] = 255
    write_png(tmp_path / "in" / "a.png", damaged)
    write_png(tmp_path / "m.png", face_mask.astype(np.uint8) * 255)
    outs = {}
    for mode in ("off", "auto", "on"):
        restorer = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"),
                            RestoreOptions(grain=mode))
        [r] = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / mode)
        assert r.status in ("ok", "partial") and r.grain == (mode != "off")
        outs[mode] = cv2.imread(str(tmp_path / mode / "a.png"))[..., ::-1]
    differs = (outs["on"] != outs["off"]).any(-1)
    assert differs.any() and not (differs & ~face_mask).any()  # grain only where the damage was
    assert (outs["auto"] == outs["on"]).all()  # this scan is grainy
    assert grain_ratio(outs["on"].astype(np.float32) / 255, face_mask) > 1.5 * grain_ratio(outs["off"].astype(np.float32) / 255, face_mask)


def test_grain_has_the_photos_own_coarseness():
    """Film and phone grain is coarser than pixel noise. White noise matched on the high-pass level
    puts about twice the photo's median Laplacian into the repair (measured: 1.9x on CelebA-HQ val);
    texture borrowed from the photo keeps it near the photo's own."""
    from faceheal.metrics import hole_grain

    rng = np.random.default_rng(0)
    base = np.clip(0.5 + 0.04 * cv2.GaussianBlur(rng.standard_normal((320, 320)).astype(np.float32), (0, 0), 0.9) / 0.3, 0, 1)
    img = np.repeat(base[..., None], 3, axis=2).astype(np.float32)
    hole = synthetic_mask((320, 320), "irregular", (0.15, 0.25), rng)
    fill = img.copy()
    fill[hole] = cv2.GaussianBlur(img, (0, 0), 4)[hole]
    out = add_grain(fill, hole, np.random.default_rng(1))
    assert 0.8 < hole_grain(out, hole) / hole_grain(img, hole) < 1.2
