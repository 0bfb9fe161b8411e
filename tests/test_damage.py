"""Both automatic damage detectors (learned, classical) on damage drawn onto real photos, and on clean ones."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceheal.masks.damage import DamageSettings, detect_damage, protected_discs
from faceheal.masks.learned import DEFAULT_DAMAGE_WEIGHTS
from faceheal.train.damage import f1_within


@pytest.fixture(params=["learned", "classical"])
def detector(request) -> str:
    if request.param == "learned" and not DEFAULT_DAMAGE_WEIGHTS.is_file():
        pytest.skip("no shipped damage detector weights")
    return request.param


def _f1(found: np.ndarray, truth: np.ndarray, tolerance: int = 2) -> float:
    """F1 with a small tolerance at the edges (a scratch's soft edge is not a miss or a false alarm)."""
    return f1_within(found, truth, tolerance)[2]


def test_bright_scratches_on_a_real_photo_are_found(portrait, detector):
    img = portrait.astype(np.float32) / 255
    truth = np.zeros(img.shape[:2], np.uint8)
    cv2.line(truth, (40, 60), (420, 560), 1, 2)
    cv2.line(truth, (450, 30), (120, 300), 1, 2)
    truth = truth > 0
    damaged = img.copy()
    damaged[truth] = np.clip(damaged[truth] + 0.45, 0, 1)
    found = detect_damage(damaged, DamageSettings(detector=detector))
    # the photo's own real cracks (found on the undamaged photo) are neither hits nor false alarms
    real = detect_damage(img, DamageSettings(detector=detector)) & ~truth
    assert _f1(found & ~real, truth) > 0.6
    # nothing new flagged away from the added scratches
    near = cv2.dilate(truth.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert (found & ~near & ~real).mean() < 0.005


def test_painted_white_strokes_are_found_exactly(portrait, face_mask, detector):
    img = portrait.astype(np.float32) / 255
    img[face_mask] = 1.0
    found = detect_damage(img, DamageSettings(detector=detector))
    assert (found & face_mask).sum() / face_mask.sum() > 0.99


def test_flat_and_finely_textured_backgrounds_stay_clean(detector):
    rng = np.random.default_rng(0)
    flat = np.full((400, 400, 3), 0.55, np.float32)
    assert not detect_damage(flat, DamageSettings(detector=detector)).any()
    grain = np.clip(flat + rng.normal(0, 0.03, flat.shape).astype(np.float32), 0, 1)
    assert detect_damage(grain, DamageSettings(detector=detector)).mean() < 0.001
    white_wall = np.ones((300, 300, 3), np.float32)  # a blown-out background is not a hole
    white_wall[:, :40] = 0.9
    assert not detect_damage(white_wall, DamageSettings(detector=detector)).any()


def test_a_blown_out_highlight_is_not_paint():
    """Rim light clipped to pure white along a cheek is stroke-shaped and exactly white, like paint; its
    surroundings are near-white too, which paint's are not."""
    from faceheal.masks.damage import _painted

    yy, xx = np.mgrid[0:300, 0:300].astype(np.float32)
    d = xx - 150 - 30 * np.sin(yy / 40)  # across a curving band
    plateau = 1 / (1 + np.exp((np.abs(d) - 30) / 4))  # an overexposed cheek, near white
    ridge = np.exp(-(d / 3) ** 2)  # and its brightest line, clipped
    img = np.clip(0.35 + 0.635 * plateau + 0.03 * ridge, 0, 1)[..., None].repeat(3, -1).astype(np.float32)
    assert (img.min(-1) >= 0.998).sum() > 500  # its core is clipped
    assert not _painted(img, max_width=0.06 * 300).any()
    painted = img.copy()
    cv2.line(painted, (20, 40), (280, 60), (1.0, 1.0, 1.0), 5)
    assert _painted(painted, max_width=0.06 * 300).sum() > 1000


def test_an_overexposed_colour_highlight_is_not_paint():
    """Overexposed skin clips its red first, then green, then blue: the pure-white core is ringed by
    pixels clipped in some channels. Paint on the same skin touches unclipped colours and is taken."""
    from faceheal.masks.damage import _painted

    line = np.ones((300, 300), np.uint8)
    cv2.line(line, (40, 120), (260, 170), 0, 1)
    d = cv2.distanceTransform(line, cv2.DIST_L2, 5)  # distance from the shine's crest
    gain = np.maximum(2.2 - d / 3, 0.5)  # a thin shine on a cheekbone, falling off in a few pixels
    skin = np.array([1.0, 0.8, 0.65], np.float32)
    img = np.clip(gain[..., None] * skin, 0, 1).astype(np.float32)
    assert (img.min(-1) >= 0.998).sum() > 300
    assert not _painted(img, max_width=0.06 * 300).any()
    painted = np.full((300, 300, 3), skin * 0.8, np.float32)
    cv2.line(painted, (20, 40), (280, 60), (1.0, 1.0, 1.0), 5)
    assert _painted(painted, max_width=0.06 * 300).sum() > 1000


def test_a_white_background_between_dark_hair_strands_is_not_paint():
    """A blown-out studio background shows through dark hair in exactly-white pockets: stroke-shaped,
    with a dark ring (the hair), like paint; but most of what touches them is the bright background
    fading into them (38 of 3,400 clean training photos had such pieces taken). A white stroke over
    a dark coat beside it is still paint."""
    from faceheal.masks.damage import _painted

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:300].astype(np.float32)
    glow = cv2.GaussianBlur(rng.normal(0, 1, (300, 300)).astype(np.float32), (0, 0), 3)
    background = np.clip(0.93 + 0.06 * np.clip((xx - 120) / 40, 0, 1) + 0.03 * glow / glow.std(), 0, 1)
    img = np.repeat(background[..., None], 3, -1).astype(np.float32)  # bright, in places clipped
    hair = np.zeros((300, 300), np.uint8)
    for _ in range(5):  # dark strands sweeping over the background
        x0 = int(rng.integers(130, 260))
        cv2.line(hair, (x0, 0), (x0 + int(rng.integers(-60, 60)), 299), 1, int(rng.integers(3, 7)))
    img[hair > 0] = (0.12, 0.09, 0.07)
    clipped = (img.min(-1) >= 0.998).sum()
    assert clipped > 5000
    assert _painted(img, max_width=0.06 * 300).sum() < 0.1 * clipped  # before: 56 %; left: pockets hair encloses
    img[:, :130] = (0.35, 0.3, 0.28)  # a dark coat on the left, and a white stroke across it
    cv2.line(img, (10, 60), (120, 250), (1.0, 1.0, 1.0), 5)
    assert _painted(img, max_width=0.06 * 300)[:, :125].sum() > 500


def test_a_print_border_is_not_paint_and_soft_edged_paint_still_is():
    """A white band along the photo's edge, white beyond a crooked straight edge, a frame on all four
    sides or an L at a corner is the print's border (3.5 % of val border negatives' pixels were taken as
    paint); a ragged white hole at the edge, a stroke crossing the edge and paint with a soft edge are
    still found."""
    from faceheal.masks.damage import _painted

    yy, xx = np.mgrid[0:300, 0:300].astype(np.float32)
    photo = (np.full((300, 300, 3), 0.45, np.float32) + 0.1 * np.sin(xx / 7)[..., None]).astype(np.float32)
    band = photo.copy()
    band[:, :9] = 1.0
    crooked = np.where((xx * 0.3 + yy - 240 > 0)[..., None], 1.0, photo).astype(np.float32)
    frame = photo.copy()
    frame[:8], frame[-8:], frame[:, :8], frame[:, -8:] = 1.0, 1.0, 1.0, 1.0
    corner = photo.copy()  # a print scanned off-square: white along two sides
    corner[:12], corner[:, :10] = 1.0, 1.0
    for border in (band, crooked, frame, corner):
        assert not _painted(border, max_width=0.06 * 300).any()
    # the same band inside a tile whose left side is not the photo's edge could be paint: kept
    assert _painted(band, max_width=0.06 * 300, photo_edges=(True, True, False, True)).any()
    torn = crooked.copy()  # a ragged white piece at the edge: a hole, taken
    torn[(xx * 0.3 + yy - 240 > -25) & (np.sin(xx / 3) > 0.3)] = 1.0
    assert _painted(torn, max_width=0.06 * 300).sum() > 1000
    stroke = band.copy()
    cv2.line(stroke, (20, 40), (280, 200), (1.0, 1.0, 1.0), 5)
    assert _painted(stroke, max_width=0.06 * 300)[100:].sum() > 500
    soft = photo.copy()  # paint with an anti-aliased, slightly blurred edge
    cv2.line(soft, (30, 250), (270, 120), (1.0, 1.0, 1.0), 9, cv2.LINE_AA)
    core = cv2.GaussianBlur(soft, (0, 0), 0.8)
    core[soft.min(-1) >= 0.999] = np.maximum(core[soft.min(-1) >= 0.999], 0.9985)
    soft = np.where((cv2.erode((soft.min(-1) >= 0.999).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)[..., None], 1.0, core)
    assert _painted(soft.astype(np.float32), max_width=0.06 * 300).sum() > 1000


def test_sensitivity_trades_misses_for_false_alarms(portrait, detector):
    img = portrait.astype(np.float32) / 255
    low = detect_damage(img, DamageSettings(sensitivity=0.0, detector=detector)).sum()
    high = detect_damage(img, DamageSettings(sensitivity=1.0, detector=detector)).sum()
    assert 0 < low < high, "a scratched portrait: damage found at every setting, more when more sensitive"


def test_eyes_are_protected_from_dust_detection(detector):
    img = np.full((200, 200, 3), 0.4, np.float32)
    img[99:102, 99:102] = 1.0  # a catchlight-sized bright dot
    assert detect_damage(img, DamageSettings(detector=detector))[100, 100]
    lm = np.array([[100, 100], [140, 100], [120, 120], [105, 140], [135, 140]], np.float64)
    assert not detect_damage(img, DamageSettings(detector=detector), protect=protected_discs([lm]))[100, 100]


def test_huge_images_are_tiled_with_the_same_result(detector):
    rng = np.random.default_rng(1)
    img = np.clip(0.5 + rng.normal(0, 0.02, (700, 900, 3)), 0, 1).astype(np.float32)
    cv2.line(img, (10, 650), (880, 20), (1.0, 1.0, 1.0), 2)
    whole = detect_damage(img, DamageSettings(detector=detector), tile=4096)
    tiled = detect_damage(img, DamageSettings(detector=detector), tile=400, overlap=64)
    assert whole.sum() > 0
    assert (whole != tiled).mean() < 0.002


def test_wide_damage_on_a_high_resolution_scan_is_found_at_the_faces_scale(portrait, detector):
    """A print scanned at 4x: its scratches are 8-12 px wide, wider than anything the detectors know.
    Looked at also at the scale where the faces look like the detector's own (coarse_scale), they are
    found whole; at the scan's resolution only their edges are."""
    from faceheal.faces.detect import MtcnnDetector
    from faceheal.masks.damage import coarse_scale

    img = portrait.astype(np.float32) / 255
    truth = np.zeros(img.shape[:2], np.uint8)
    cv2.line(truth, (40, 60), (420, 560), 1, 3)
    cv2.line(truth, (450, 30), (120, 300), 1, 2)
    damaged = img.copy()
    damaged[truth > 0] = np.clip(damaged[truth > 0] + 0.45, 0, 1)
    big = np.clip(cv2.resize(damaged, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC), 0, 1)
    big_truth = cv2.resize(truth, None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST) > 0
    faces = MtcnnDetector().detect((big * 255 + 0.5).astype(np.uint8))
    scale = coarse_scale([f.landmarks for f in faces])
    assert scale is not None and 0.15 < scale < 0.6
    assert coarse_scale([f.landmarks for f in MtcnnDetector().detect(portrait)]) is None  # a normal photo: one look
    settings = DamageSettings(detector=detector)
    native = detect_damage(big, settings)
    both = detect_damage(big, settings, coarse=scale)
    recall = lambda m: (m & big_truth).sum() / big_truth.sum()  # noqa: E731
    assert recall(both) > 0.7 and recall(both) > recall(native) + 0.2
    # nothing new flagged away from the added scratches (the photo's own old cracks aside)
    clean_big = np.clip(cv2.resize(img, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC), 0, 1)
    real = detect_damage(clean_big, settings, coarse=scale)
    near = cv2.dilate(big_truth.astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    assert (both & ~near & ~real).mean() < 0.005



def _ring_around(interior: np.ndarray, fill: float, thickness: int) -> tuple[np.ndarray, np.ndarray]:
    """A 200 px photo of `interior` (float RGB in [0, 1]) with a square ring of flat `fill`, `thickness`
    px wide, around its middle 50 px, and the flags a detector gives such a missing piece: the ring only."""
    rgb = interior.copy()
    flags = np.zeros((200, 200), bool)
    flags[75 - thickness:125 + thickness, 75 - thickness:125 + thickness] = True
    flags[75:125, 75:125] = False
    rgb[flags] = fill
    return rgb, flags


def _middle() -> np.ndarray:
    m = np.zeros((200, 200), bool)
    m[75:125, 75:125] = True
    return m


def test_flags_of_a_missing_piece_grow_into_its_flat_middle_of_their_colour():
    """The network flags a wide missing area's ragged edge and leaves its flat middle (23 % of the
    pixels inside missing areas on val): the middle, flat and of the flags' colour, joins them."""
    from faceheal.masks.damage import grow_into_flat

    rgb, flags = _ring_around(np.full((200, 200, 3), 0.95, np.float32), 0.95, 10)
    grown = grow_into_flat(flags, rgb)
    assert grown[75:125, 75:125].all()
    assert (grown == (flags | _middle())).all()  # the same colour outside stays: the flags don't close there


def test_flags_do_not_grow_into_texture_another_colour_or_from_thin_lines():
    from faceheal.masks.damage import grow_into_flat

    rng = np.random.default_rng(0)
    textured = np.clip(rng.normal(0.9, 0.08, (200, 200, 3)), 0, 1).astype(np.float32)
    rgb, flags = _ring_around(textured, 0.95, 10)
    assert not (grow_into_flat(flags, rgb) & ~flags).any()  # skin, hair, an eye inside a flagged ring
    rgb, flags = _ring_around(np.full((200, 200, 3), 0.5, np.float32), 0.95, 10)
    assert not (grow_into_flat(flags, rgb) & ~flags).any()  # another colour: not the missing piece
    rgb, flags = _ring_around(np.full((200, 200, 3), 0.95, np.float32), 0.95, 3)
    assert not (grow_into_flat(flags, rgb) & ~flags).any()  # a scratch around a flat patch: no piece


def test_a_uint16_gray_scan_grows_as_its_float_rgb_does():
    from faceheal.masks.damage import grow_into_flat

    rgb, flags = _ring_around(np.full((200, 200, 3), 0.8, np.float32), 0.8, 10)
    gray16 = (rgb[..., 0] * 65535).round().astype(np.uint16)
    np.testing.assert_array_equal(grow_into_flat(flags, gray16), grow_into_flat(flags, rgb))


def test_flags_lying_wholly_along_the_photos_sides_are_the_scans_edge_and_are_dropped():
    from faceheal.masks.damage import drop_scan_edges, scan_edge_band

    h, w = 300, 400
    mask = np.zeros((h, w), bool)
    mask[40:260, 0:3] = True  # the line where a scan ends, down the left side
    mask[0:2, 250:w] = True  # ... and an L along the top and the right side
    mask[0:h, w - 3:w] = True
    inside = np.zeros((h, w), bool)
    cv2.line(inside.view(np.uint8), (100, 100), (250, 180), 1, 2)  # a scratch inside the photo
    inside[h - 3:h, 100:104] = True  # a speck of dust on the bottom edge: damage, kept
    inside[268:288, 0:2] = True  # ... and a short scratch along the left edge (shorter than 8x the band)
    mask |= inside
    drop_scan_edges(mask)
    assert (mask == inside).all()
    assert scan_edge_band((300, 400)) == 4 and scan_edge_band((4096, 6000)) == 16


def test_a_scratch_crossing_the_edge_a_torn_corner_and_an_edge_line_joined_to_a_scratch_stay():
    from faceheal.masks.damage import drop_scan_edges

    h, w = 300, 400
    mask = np.zeros((h, w), np.uint8)
    cv2.line(mask, (120, 0), (160, 120), 1, 2)  # a scratch running off the top edge
    cv2.fillPoly(mask, [np.array([[w - 1, h - 40], [w - 1, h - 1], [w - 45, h - 1]])], 1)  # a torn corner
    mask[0:h // 2, 0:2] = 1  # a line down the left side that turns into the photo
    cv2.line(mask, (0, h // 2), (90, h // 2 + 30), 1, 2)
    mask[0:2, w - 60:w] = 1  # a line along the top that runs into the right side's corner and then inward
    cv2.line(mask, (w - 1, 1), (w - 80, 90), 1, 2)
    before = mask.astype(bool)
    after = before.copy()
    drop_scan_edges(after)
    assert (after == before).all()
