"""The per-face damage decision: a face whose few flagged pixels look like a false alarm comes back
untouched; a damaged one is repaired; the decision is fitted and stored with the detector."""
from __future__ import annotations

import json

import numpy as np

from faceheal.faces.detect import MtcnnDetector
from faceheal.inpainters import TeleaInpainter
from faceheal.masks.decision import DamageDecision, decide, evidence, fit_decision, packed_mask, sure_counts
from faceheal.masks.source import MaskSource
from faceheal.pipeline import RestoreOptions, Restorer
from faceheal.sources import expand_inputs
from tests.conftest import write_png

# damaged when more than about 0.2 % of the region is flagged (log10 0.002 = -2.7)
DECISION = DamageDecision(weights=(4.0, 0.0), bias=4.0 * 2.7, threshold=0.5)


def test_evidence_measures_the_flagged_share_and_the_largest_piece():
    m = np.zeros((100, 100), bool)
    m[10, 10:60] = True  # a 50 px line
    m[80, 80] = True  # a speck
    share, largest = evidence(m)
    assert share == np.log10(51 / 10000 + 1e-5) and largest == np.log10(50 / 10000 + 1e-5)
    assert (evidence(np.zeros((10, 10), bool)) == np.log10(1e-5)).all()


def test_decide_drops_the_flags_of_undamaged_regions_only():
    mask = np.zeros((200, 400), bool)
    mask[50, 20:24] = True  # 4 px in region A (0.01 %): a false alarm
    mask[40:60, 220:300] = True  # 1600 px in region B (4 %): damage
    mask[190, 390] = True  # 1 px outside both
    regions = [(0, 0, 200, 200), (200, 0, 400, 180)]
    out, probs, rest = decide(mask.copy(), regions, DECISION)
    assert probs[0] < 0.5 < probs[1] and rest is not None and rest < 0.5
    assert not out[:, :200].any() and out[40:60, 220:300].all() and not out[190, 390]
    # a pixel in two regions stays when either is damaged
    overlapping = [(0, 0, 260, 200), (200, 0, 400, 180)]
    out, _, _ = decide(mask.copy(), overlapping, DECISION)
    assert out[40:60, 220:260].all()
    # sensitivity 1 keeps every flag; no decision keeps every flag
    assert (decide(mask.copy(), regions, DECISION, sensitivity=1.0)[0] == mask).all()
    assert (decide(mask.copy(), regions, None)[0] == mask).all()


def test_a_thin_strip_beside_the_face_is_weighed_as_a_face_sized_region():
    """A thumbnail: the face's crop covers all but a 4 px strip, where a few specks (a sky edge, the
    print's border) were flagged. Weighed by its own 400 px they were 5 % of "the rest of the photo"
    and made a clean thumbnail repainted (10 of 235 val thumbnails changed; 7 with the strip weighed
    as a face-sized region)."""
    mask = np.zeros((100, 100), bool)
    mask[2, 97:99] = mask[50, 96:99] = mask[90, 97:99] = True  # 7 px in the strip x >= 96
    out, probs, rest = decide(mask.copy(), [(0, 0, 96, 100)], DECISION)
    assert rest is not None and rest < 0.5 and not out.any()
    mask[10:90, 96:100] = True  # the strip itself torn away: damaged, however small
    out, probs, rest = decide(mask.copy(), [(0, 0, 96, 100)], DECISION)
    assert rest > 0.5 and out[10:90, 96:100].all()


def test_a_face_on_a_print_damaged_elsewhere_needs_less_evidence():
    """Flags on a face that alone would not be trusted are kept when the print is clearly damaged
    elsewhere (torn edges, cracks across the background)."""
    regions = [(0, 0, 100, 100)]
    face_only = np.zeros((100, 400), bool)
    face_only[50, 40:55] = True  # 15 px on the face: p between cut / 2 and cut
    p = DECISION.probability(evidence(face_only[:, :100]))
    assert DECISION.threshold / 2 < p < DECISION.threshold
    assert not decide(face_only.copy(), regions, DECISION)[0].any()
    torn = face_only.copy()
    torn[:, 380:] = True  # a torn edge away from the face
    out, _, rest = decide(torn.copy(), regions, DECISION)
    assert rest > DECISION.threshold and out[50, 40:55].all() and out[:, 380:].all()


def test_fit_separates_and_caps_the_clean_share_repainted():
    rng = np.random.default_rng(0)
    clean = [np.array([rng.normal(-4, 0.5), rng.normal(-4.5, 0.5)]) for _ in range(200)]
    damaged = [np.array([rng.normal(-2, 0.5), rng.normal(-2.5, 0.5)]) for _ in range(200)]
    decision, fit = fit_decision(clean, damaged, max_clean_changed=0.02)
    assert fit["clean_kept"] <= 0.02 and fit["damaged_kept"] > 0.9
    p = decision.probability(np.array([-2.0, -2.5]))
    assert p > 0.9 and decision.probability(np.array([-5.0, -5.0])) < 0.01
    assert DamageDecision.from_json(json.loads(json.dumps(decision.to_json()))) == decision


def test_a_clean_photo_with_a_few_false_flags_comes_back_byte_identical(tmp_path, portrait, face_mask):
    write_png(tmp_path / "in" / "clean.png", portrait)
    specks = np.zeros(portrait.shape[:2], bool)
    specks[100, 100:103] = True  # what a pixel detector flags on a clean photo: a few specks
    specks[300, 250] = True
    decide_cb = lambda mask, regions, sure=None: (decide(mask, regions, DECISION)[0], {})  # noqa: E731
    restorer = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(auto=lambda rgb, lm: specks.copy(), decide=decide_cb))
    [r] = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out")
    assert r.status == "unchanged" and r.pixels_changed == 0
    assert (tmp_path / "out" / "clean.png").read_bytes() == (tmp_path / "in" / "clean.png").read_bytes()
    # without the decision the same flags are repainted
    plain = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(auto=lambda rgb, lm: specks.copy()))
    [r] = plain.run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out_plain")
    assert r.pixels_changed > 0
    # real damage on the face is still repaired with the decision
    damaged = portrait.copy()
    damaged[face_mask] = 255
    write_png(tmp_path / "in2" / "damaged.png", damaged)
    restorer = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(auto=lambda rgb, lm: face_mask.copy(), decide=decide_cb))
    [r] = restorer.run(expand_inputs([str(tmp_path / "in2")]), tmp_path / "out2")
    assert r.status in ("ok", "partial") and r.pixels_changed > 0.9 * face_mask.sum()


def test_the_sure_share_tells_damage_from_a_crowd_of_unsure_flags(tmp_path, portrait):
    """A three-feature decision weighs how much of a region the detector is sure of: the same flags
    are dropped when none is sure and kept when they are; restore hands the detector's sure pixels
    to the decision and reports none of them."""
    sure_weighted = DamageDecision(weights=(0.0, 0.0, 4.0), bias=4.0 * 3.0, threshold=0.5)  # damaged above 0.1 % sure
    mask = np.zeros((100, 100), bool)
    mask[50, 10:60] = True
    assert evidence(mask, sure=0).shape == (3,) and evidence(mask).shape == (2,)
    unsure, probs, _ = decide(mask.copy(), [(0, 0, 100, 100)], sure_weighted, sure=None)
    assert not unsure.any() and probs[0] < 0.5
    sure_px = np.zeros((100, 100), bool)
    sure_px[50, 10:40] = True
    packed = packed_mask((100, 100))
    packed |= np.packbits(sure_px, axis=1)
    sure, probs, _ = decide(mask.copy(), [(0, 0, 100, 100)], sure_weighted, sure=packed)
    assert sure[50, 10:60].all() and probs[0] > 0.5
    # sure pixels the mask no longer holds (dropped as catchlights) do not count
    assert not decide(mask & (np.arange(100) >= 45), [(0, 0, 100, 100)], sure_weighted, sure=packed)[0].any()
    # counted per region and outside all of them, a pixel in two regions in both
    assert sure_counts(packed, mask, [(0, 0, 30, 100), (20, 0, 100, 100)]) == ([20, 20], 0)
    assert sure_counts(packed, mask, [(0, 0, 15, 100)], band=7) == ([5], 25)

    write_png(tmp_path / "in" / "p.png", portrait)
    flags = np.zeros(portrait.shape[:2], bool)
    flags[200:203, 150:250] = True
    seen = []

    def decide_cb(m, regions, sure=None):
        seen.append(sure)
        return m, {}
    one_sure = packed_mask(flags.shape)
    one_sure[201, 160 // 8] = 0x80 >> (160 % 8)
    auto = lambda rgb, lm: (flags.copy(), one_sure)  # noqa: E731
    restorer = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(auto=auto, decide=decide_cb),
                        RestoreOptions(sidecar=True))
    [r] = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out")
    assert r.status == "ok" and sure_counts(seen[0], flags, [])[1] == 1
    sidecar = json.loads((tmp_path / "out" / "p.png.faceheal.json").read_text())
    assert sidecar["mask"]["source"] == "auto" and "_sure" not in sidecar["mask"]


def test_a_region_flagged_beyond_any_clean_photo_is_damaged_whatever_the_detector_is_sure_of():
    """Heavy paint over half a face that the network is not sure of fell below the threshold of a
    decision fitted on damage over 0.3-10 % of a region; above `certain_share` the region is damaged."""
    unsure_heavy = DamageDecision(weights=(0.0, 0.0, 4.0), bias=4.0 * 3.0, threshold=0.5)
    guarded = DamageDecision(weights=(0.0, 0.0, 4.0), bias=4.0 * 3.0, threshold=0.5, certain_share=0.1)
    mask = np.zeros((100, 100), bool)
    mask[:40] = True  # 40 % flagged, none of it sure
    assert not decide(mask.copy(), [(0, 0, 100, 100)], unsure_heavy)[0].any()
    assert decide(mask.copy(), [(0, 0, 100, 100)], guarded)[0][:40].all()
    light = np.zeros((100, 100), bool)
    light[:5] = True  # 5 %: the model decides
    assert not decide(light.copy(), [(0, 0, 100, 100)], guarded)[0].any()
    assert DamageDecision.from_json(json.loads(json.dumps(guarded.to_json()))) == guarded
