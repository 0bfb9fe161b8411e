"""The losses between the model and what `faceheal restore` delivers (the end-to-end quality issue):
colour photos re-toned as prints, the hole grown at alignment, a resampled band pasted around the
damage, faces missed or faked under heavy damage and reported "ok"."""
from __future__ import annotations

import cv2
import numpy as np

from conftest import EXAMPLES, read_rgb, write_png
from faceheal.faces.align import align_face, align_with_matrix
from faceheal.faces.detect import Face, MtcnnDetector
from faceheal.images import monotone_tone, to_float_rgb
from faceheal.inpainters import TeleaInpainter
from faceheal.faces.find import find_faces
from faceheal.masks.source import MaskSource
from faceheal.pipeline import RestoreOptions, Restorer, aligned_matrix
from faceheal.sources import expand_inputs


def test_a_faded_colour_photo_is_not_toned_and_a_sepia_print_is():
    colour = to_float_rgb(read_rgb(EXAMPLES / "aligned" / "bopbtl_old_c.png"))
    sepia = to_float_rgb(read_rgb(EXAMPLES / "photos" / "bopbtl_c.png"))
    assert monotone_tone(colour) is None
    assert monotone_tone(sepia) is not None


def test_colour_faces_are_never_judged_monochrome(shared_data):
    faces = sorted((shared_data / "faces" / "celebamask" / "images").glob("*.jpg"))[:60]
    judged = [p.name for p in faces if monotone_tone(to_float_rgb(read_rgb(p)[..., :3])) is not None]
    assert judged == []
    gray = to_float_rgb(read_rgb(shared_data / "photos" / "gray_aligned" / "codeformer_169_John_Lennon_00.png"))
    assert monotone_tone(gray) is not None


def test_toning_keeps_the_repairs_brightness():
    gray = np.linspace(0.1, 0.9, 64 * 64, dtype=np.float32).reshape(64, 64)
    sepia = gray[..., None] * np.array([1.0, 0.85, 0.66], np.float32)
    lut = monotone_tone(sepia)
    repair = np.array([[0.2, 0.6, 0.9], [0.5, 0.5, 0.5]], np.float32)  # a bluish and a gray repair
    toned = lut is not None and __import__("faceheal.images", fromlist=["apply_tone"]).apply_tone(lut, repair)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(toned @ luma, repair @ luma, atol=2e-3)  # brightness kept, only the colour is the print's
    assert toned[0, 0] > toned[0, 2]  # sepia: red above blue


def test_an_aligned_input_is_repainted_exactly_where_it_is_damaged(portrait, face_mask):
    crop = cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_AREA)
    hole = cv2.resize(face_mask.astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST) > 0
    a = align_with_matrix(crop, hole, aligned_matrix(hole.shape, 256), 256)
    assert np.array_equal(a.hole, hole)


def test_known_crop_pixels_carry_no_damage_and_the_hole_is_its_smallest_cover(portrait, face_mask):
    face = MtcnnDetector().detect(portrait)[0]
    painted = portrait.copy()
    painted[face_mask] = 255
    for size in (128, 256, 512):  # shrinking, about 1:1, enlarging
        clean = align_face(portrait, face_mask, face.landmarks, size)
        dirty = align_face(painted, face_mask, face.landmarks, size)
        assert np.array_equal(clean.hole, dirty.hole)
        known = ~dirty.hole
        assert np.abs(dirty.crop - clean.crop)[known].max() <= 1.01 / 255  # at most the paint's rounding
        # one ring of pixels less and the paint shows through: the hole is not grown beyond need
        eroded = cv2.erode(dirty.hole.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        ring = dirty.hole & ~eroded
        assert np.abs(dirty.crop - clean.crop)[ring].max(axis=-1).mean() > 0.5 / 255


def test_a_supplied_mask_changes_exactly_its_pixels_unless_grown(tmp_path, portrait, face_mask):
    write_png(tmp_path / "in" / "a.png", portrait)
    write_png(tmp_path / "m.png", face_mask.astype(np.uint8) * 255)
    [r] = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png")).run(
        expand_inputs([str(tmp_path / "in")]), tmp_path / "out")
    changed = (read_rgb(tmp_path / "out" / "a.png") != portrait).any(-1)
    assert r.status == "ok" and changed.sum() > 0.9 * face_mask.sum()
    assert not (changed & ~face_mask).any(), "a pixel outside the supplied mask changed"
    grown = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png", grow=3))
    grown.run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out3")
    changed3 = (read_rgb(tmp_path / "out3" / "a.png") != portrait).any(-1)
    limit = cv2.dilate(face_mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))) > 0
    assert (changed3 & ~face_mask).sum() > 0 and not (changed3 & ~limit).any()


class _FooledByPaint:
    """A detector that, like MTCNN on heavily painted photos, sees a small false face in the paint and
    not the real face, which it finds once the paint is filled."""

    def __init__(self, real: Face, fake: Face):
        self.real, self.fake = real, fake

    def detect(self, rgb8, scale=1.0, threshold=None):
        painted = (rgb8 == 255).all(-1).mean() > 0.01
        return [self.fake.scaled(scale)] if painted else [self.real.scaled(scale)]


def test_a_false_face_made_of_paint_is_dropped_and_the_hidden_face_found(portrait, face_mask):
    real = MtcnnDetector().detect(portrait)[0]
    painted = portrait.copy()
    hole = face_mask.copy()
    fake_lm = real.landmarks + [0, 80]  # below the real face, its eyes and nose on a band of paint
    fake = Face(box=(fake_lm[:, 0].min() - 10, fake_lm[:, 1].min() - 10, fake_lm[:, 0].max() + 10, fake_lm[:, 1].max() + 10),
                score=0.9, landmarks=fake_lm)
    x0, y0, x1, _ = (int(v) for v in fake.box)
    hole[y0:int(fake_lm[2, 1]) + 6, x0:x1] = True  # eyes and nose on paint
    painted[hole] = 255
    faces, _ = find_faces(_FooledByPaint(real, fake), painted, hole)
    assert len(faces) == 1 and np.allclose(faces[0].landmarks, real.landmarks)


class _SeesAFaceInTheFace:
    """A detector that, like MTCNN on a face crossed by brush strokes, finds the face and also a small
    "face" made of one of its eyes and a stroke, inside it (and, given `apart`, a small face beside it)."""

    def __init__(self, real: Face, small: Face, apart: Face | None = None):
        self.found = [real, small] + ([apart] if apart is not None else [])

    def detect(self, rgb8, scale=1.0, threshold=None):
        return [f.scaled(scale) for f in self.found]


def test_a_face_inside_a_bigger_surer_face_is_part_of_it_not_a_face(portrait):
    """Val photos (big_faces.py): a second "face" around one eye of a face under brush strokes was
    repaired as a face of its own, leaving a gray smear where the eye was."""
    real = MtcnnDetector().detect(portrait)[0]
    x0, y0, x1, y1 = real.box
    w, h = x1 - x0, y1 - y0
    eye = real.landmarks[1]
    small = Face(box=(eye[0] - 0.2 * w, eye[1] - 0.2 * h, eye[0] + 0.2 * w, eye[1] + 0.2 * h), score=0.97,
                 landmarks=eye + np.array([[-8, -4], [8, -4], [0, 2], [-6, 8], [6, 8]], float))
    faces, _ = find_faces(_SeesAFaceInTheFace(real, small), portrait, np.zeros(portrait.shape[:2], bool))
    assert len(faces) == 1 and faces[0].box == real.box
    # a small face beside the face, not inside it, stays (a child's face against a parent's)
    beside = Face(box=(x1 - 0.1 * w, y0, x1 + 0.3 * w, y0 + 0.4 * h), score=0.97, landmarks=small.landmarks + [0.3 * w, 0])
    faces, _ = find_faces(_SeesAFaceInTheFace(real, small, beside), portrait, np.zeros(portrait.shape[:2], bool))
    assert len(faces) == 2 and beside.box in [f.box for f in faces]
    # and one surer than the face around it is kept: the bigger one may be the false one
    surer = Face(box=small.box, score=1.0, landmarks=small.landmarks)
    unsure = Face(box=real.box, score=0.9, landmarks=real.landmarks)
    faces, _ = find_faces(_SeesAFaceInTheFace(unsure, surer), portrait, np.zeros(portrait.shape[:2], bool))
    assert len(faces) == 2


class _OffThroughPaint:
    """A detector that, like MTCNN on a face under paint, finds the face with its landmarks pulled off
    by the paint, and in the right place once the paint is filled."""

    def __init__(self, real: Face, off: Face):
        self.real, self.off = real, off

    def detect(self, rgb8, scale=1.0, threshold=None):
        painted = (rgb8 == 255).all(-1).sum() > 20  # the portrait itself has no pure white
        return [(self.off if painted else self.real).scaled(scale)]


def test_a_face_found_through_paint_takes_the_landmarks_found_through_the_filled_paint(portrait):
    """Landmarks found through paint were off (val: median 0.12-0.22 of the eye distance) and cost the
    repair; a face with paint over 5 % of its box or more takes those of the look through the filled
    damage. Before, a face found with no damage beside it kept the first look's landmarks."""
    real = MtcnnDetector().detect(portrait)[0]
    off = Face(box=real.box, score=0.95, landmarks=real.landmarks + [6, -4])
    x0, y0, x1, y1 = (int(v) for v in real.box)
    hole = np.zeros(portrait.shape[:2], bool)
    hole[y0 + (y1 - y0) // 3:y0 + (y1 - y0) // 3 + (y1 - y0) // 8, x0:x1] = True  # a band across the eyes: 12 % of the box
    painted = portrait.copy()
    painted[hole] = 255
    faces, _ = find_faces(_OffThroughPaint(real, off), painted, hole)
    assert len(faces) == 1 and np.allclose(faces[0].landmarks, real.landmarks, atol=0.01)
    hole[:] = False
    hole[y0 + 4:y0 + 6, x0:x0 + (x1 - x0) // 2] = True  # a thin scratch: 1 % of the box, the first look's landmarks
    painted = portrait.copy()
    painted[hole] = 255
    faces, _ = find_faces(_OffThroughPaint(real, off), painted, hole)
    assert np.allclose(faces[0].landmarks, off.landmarks)


def test_damage_left_unrepaired_is_reported_not_ok(tmp_path, portrait):
    h, w = portrait.shape[:2]
    mask = np.zeros((h, w), bool)
    mask[h - 20:h - 10, 10:60] = True  # far from the face
    mask[int(h * 0.4):int(h * 0.4) + 4, int(w * 0.4):int(w * 0.6)] = True  # on the face
    write_png(tmp_path / "in" / "a.png", portrait)
    write_png(tmp_path / "m.png", mask.astype(np.uint8) * 255)
    [r] = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"),
                   RestoreOptions(fill_outside=None)).run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out")
    assert r.status == "partial" and r.unrepaired_pixels == 500 and "left unrepaired" in r.error
    restorer = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"),
                        RestoreOptions(fill_outside="telea"))
    [r] = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out2")
    assert r.status == "ok" and r.unrepaired_pixels == 0


class _FlatGenerator(TeleaInpainter):
    """Stands in for the generator: paints every hole pure green."""

    name = "generator"

    def inpaint(self, crops, holes, priors=None):
        from faceheal.inpainters import InpaintResult

        out = crops.copy()
        out[holes] = (0.0, 1.0, 0.0)
        return InpaintResult(out)


def test_the_damages_rim_takes_the_classical_fill_and_its_inside_the_generators(tmp_path, portrait):
    from faceheal.pipeline import CLASSICAL_RIM_PX

    h, w = portrait.shape[:2]
    hole = np.zeros((h, w), bool)
    hole[int(h * 0.38):int(h * 0.38) + 12, int(w * 0.35):int(w * 0.65)] = True  # a 12 px band across the face
    write_png(tmp_path / "in" / "a.png", portrait)
    write_png(tmp_path / "m.png", hole.astype(np.uint8) * 255)
    # the portrait's face is a little bigger than its crop (1.23x): the rim rule alone, without the
    # photo-resolution blend bigger faces get (tested below)
    Restorer(_FlatGenerator(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"),
             RestoreOptions(native_detail=False)).run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out")
    out = read_rgb(tmp_path / "out" / "a.png").astype(int)
    dist = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    green = (out[..., 1] > 200) & (out[..., 0] < 60) & (out[..., 2] < 60)
    inner, rim = hole & (dist > CLASSICAL_RIM_PX + 1), hole & (dist <= CLASSICAL_RIM_PX)
    assert green[inner].mean() > 0.95 and green[rim].mean() < 0.05


def test_an_aligned_crop_is_repaired_by_the_model_up_to_its_border(tmp_path):
    """--aligned: the crop is the whole picture, so damage touching its border is the model's too (it
    came back with cream bands there, then with OpenCV's fill)."""
    face = cv2.resize(read_rgb(EXAMPLES / "aligned" / "bopbtl_old_c.png"), (256, 256), interpolation=cv2.INTER_AREA)
    hole = np.zeros((256, 256), bool)
    hole[:6, 40:200] = True  # along the top edge
    hole[100:110, 250:] = True  # into the right edge
    write_png(tmp_path / "in" / "a.png", face)
    write_png(tmp_path / "m.png", hole.astype(np.uint8) * 255)
    Restorer(_FlatGenerator(crop_size=256), None, MaskSource(mask_file=tmp_path / "m.png"), RestoreOptions(aligned=True)).run(
        expand_inputs([str(tmp_path / "in")]), tmp_path / "out")
    out = read_rgb(tmp_path / "out" / "a.png").astype(int)
    green = (out[..., 1] > 200) & (out[..., 0] < 60) & (out[..., 2] < 60)
    inner = hole & (cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3) > 1.5)  # past the classical rim
    assert green[inner].mean() > 0.97
    assert (out[~hole] == face[~hole]).all()


def _big_face_case(tmp_path, portrait):
    """The portrait at 3x (its face 3x the crop's scale) with a 5 px line across the face and a 90 px
    block: (faces, hole, block) with the photo in tmp/in and the mask at tmp/m.png."""
    big = cv2.resize(portrait, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    h, w = big.shape[:2]
    faces = MtcnnDetector().detect(big)
    assert faces
    x0, y0, x1, y1 = (int(v) for v in faces[0].box)
    hole = np.zeros((h, w), bool)
    hole[(y0 + y1) // 2 - 2:(y0 + y1) // 2 + 3, x0 + 10:x1 - 10] = True
    block = np.zeros((h, w), bool)
    block[y0 + 20:y0 + 110, x0 + 20:x0 + 110] = True
    hole |= block
    write_png(tmp_path / "in" / "a.png", big)
    write_png(tmp_path / "m.png", hole.astype(np.uint8) * 255)
    return faces, hole, block


def test_a_big_face_takes_the_photo_resolution_fill_near_the_damage_edge(tmp_path, portrait):
    """A face 3x the crop's scale: thin damage comes back from the classical fill made at the photo's
    resolution (the crop's resampled repair loses the pixels beside it), deep inside wide damage the
    model's repair stays; --no-native-detail is the resampled repair everywhere."""
    from faceheal.pipeline import photo_px_per_crop_px

    faces, hole, _ = _big_face_case(tmp_path, portrait)
    x0, y0, x1, y1 = (int(v) for v in faces[0].box)
    results = {}
    for native in (True, False):
        restorer = Restorer(_FlatGenerator(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"),
                            RestoreOptions(native_detail=native, grain="off"))
        [r] = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / f"out{native}")
        assert r.status == "ok"
        out = read_rgb(tmp_path / f"out{native}" / "a.png").astype(int)
        results[native] = (out[..., 1] > 200) & (out[..., 0] < 60) & (out[..., 2] < 60)
    from faceheal.faces.align import similarity_transform, template

    assert photo_px_per_crop_px(similarity_transform(faces[0].landmarks, template(256))) > 2
    line = hole.copy()
    line[y0 + 20:y0 + 110, x0 + 20:x0 + 110] = False
    deep = np.zeros_like(hole)
    deep[y0 + 50:y0 + 80, x0 + 50:x0 + 80] = True
    assert results[True][line].mean() < 0.05 and results[False][line].mean() > 0.5
    assert results[True][deep].mean() > 0.95 and results[False][deep].mean() > 0.95


def test_a_big_face_repair_gets_the_fine_texture_around_it(tmp_path, portrait):
    """Resampled up from the crop, a big face's repair is smoother than the skin around it: by default
    it gets the surroundings' fine texture (even on a photo not judged grainy); --grain off and
    --no-native-detail leave the flat repair. Measured as `metrics.hole_grain` (median |Laplacian|
    inside over around); the texture is matched to the fine noise, not to the edges around (an eye,
    a brow), so it reads below the photo's own ratio there."""
    from faceheal.metrics import hole_grain

    _, _, block = _big_face_case(tmp_path, portrait)
    photo = hole_grain(read_rgb(tmp_path / "in" / "a.png"), block)
    levels = {}
    for grain, native in (("auto", True), ("off", True), ("auto", False)):
        restorer = Restorer(_FlatGenerator(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"),
                            RestoreOptions(native_detail=native, grain=grain))
        [r] = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / f"out{grain}{native}")
        assert r.status == "ok" and not r.grain  # the photo itself is not judged grainy
        levels[grain, native] = hole_grain(read_rgb(tmp_path / f"out{grain}{native}" / "a.png"), block) / photo
    assert 0.2 < levels["auto", True] < 1.5
    assert levels["off", True] < 0.1 and levels["auto", False] < 0.1


def test_the_model_alone_is_scored_over_the_face_box_itself_not_its_tilted_bounding_rectangle():
    """A 10 degree crop holds the face box as a tilted rectangle: the model-alone score must cover those
    pixels, upright and at the crop's resolution, not the wider rectangle around them."""
    from faceheal.evaluate_photos import box_in_crop

    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.random((300, 300, 3)).astype(np.float32), (0, 0), 3)
    angle, s = np.deg2rad(10), 0.8
    a = s * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = np.hstack([a, (np.array([128.0, 128.0]) - a @ np.array([150.0, 150.0]))[:, None]])
    crop = cv2.warpAffine(photo, matrix, (256, 256), flags=cv2.INTER_LINEAR)
    box = (100, 90, 200, 210)
    got = box_in_crop(crop, matrix, box)
    assert got.shape[:2] == (96, 80)  # the box's 120 x 100 px at 0.8 crop px per photo px
    want = cv2.resize(photo[90:210, 100:200], (80, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(got - want)[4:-4, 4:-4].mean() < 0.01


def test_the_edge_blend_follows_the_faces_scale():
    """Faces near the crop's scale: Navier-Stokes owns most of the first pixel and fades with depth (the
    per-pixel best mix measured on 'val'); big faces: the Telea ramp, the model's alone from 3.5 crop px
    (the fine texture is added there, over the model's repair only)."""
    from faceheal.pipeline import native_edge

    near, big = native_edge(1.2), native_edge(2.5)
    assert near.method == cv2.INPAINT_NS and big.method == cv2.INPAINT_TELEA
    w = near.model_weight(np.array([0.8, 1.5, 8.0]))
    assert w[0] < 0.5 < w[1] and w[2] > 0.99
    assert big.model_weight(np.array([0.5, 3.5, 10.0])).tolist() == [0.0, 1.0, 1.0]


def test_the_classical_backend_fills_at_the_photos_resolution_not_through_the_crop(tmp_path, portrait, face_mask):
    """--model telea has no face model: inside the face it gives OpenCV Telea's fill of the photo itself
    (through the 256 px crop the fill came back resampled twice and scored 0.4-0.55 dB lower)."""
    from faceheal.inpainters import TeleaInpainter
    from faceheal.model.classical import classical_fill

    write_png(tmp_path / "in" / "p.png", portrait)
    write_png(tmp_path / "m.png", face_mask.astype(np.uint8) * 255)
    restorer = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"), RestoreOptions(grain="off"))
    [r] = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out")
    assert r.status == "ok"
    out = read_rgb(tmp_path / "out" / "p.png").astype(int)
    damaged = portrait.copy()
    damaged[face_mask] = 255
    want = np.rint(classical_fill(damaged.astype(np.float32) / 255, face_mask) * 255).astype(int)
    assert np.abs(out - want)[face_mask].mean() < 1.0


class _FlatGeneratorWithTexture(_FlatGenerator):
    """The green stand-in generator with a learned fill beside it that paints every hole pure red."""

    learned_fill = True

    def fill_region(self, image, hole):
        out = image.copy()
        out[hole] = (1.0, 0.0, 0.0)
        return out


def test_a_face_repair_is_the_texture_inpainters_at_the_edge_and_mostly_the_face_models_deep_inside(tmp_path, portrait):
    """Faces bigger than their crop, with the texture inpainter shipped: within TEXTURE_EDGE_PX of the
    damage's edge the repair is the texture inpainter's (made at the photo's resolution), deep inside a
    wide hole mostly the face model's (FACE_MODEL_DEEP of it)."""
    from faceheal.pipeline import COLOUR_MAX_OFFSET, FACE_MODEL_DEEP, TEXTURE_EDGE_PX

    faces, hole, block = _big_face_case(tmp_path, portrait)
    x0, y0 = (int(v) for v in faces[0].box[:2])
    [r] = Restorer(_FlatGeneratorWithTexture(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"),
                   RestoreOptions(grain="off")).run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out")
    assert r.status == "ok"
    out = read_rgb(tmp_path / "out" / "a.png").astype(float) / 255
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    edge = hole & (depth <= TEXTURE_EDGE_PX)
    assert out[edge][:, 0].mean() > 0.97 and out[edge][:, 1].mean() < 0.03  # red: the texture inpainter's
    deep = np.zeros_like(hole)
    deep[y0 + 60:y0 + 70, x0 + 60:x0 + 70] = True  # the block's middle, 40-50 px from its edge
    # green: the face model's share, less its "colour cast" against the texture inpainter at the edge (here
    # all of red against green, so as much as a cast may be corrected: COLOUR_MAX_OFFSET)
    assert np.allclose(out[deep][:, 1], FACE_MODEL_DEEP * (1 - COLOUR_MAX_OFFSET), atol=0.03)
    assert np.allclose(out[deep][:, 0], 1 - FACE_MODEL_DEEP * (1 - COLOUR_MAX_OFFSET), atol=0.03)
    assert (out[~hole] * 255).round().astype(int).tolist() == read_rgb(tmp_path / "in" / "a.png")[~hole].tolist()


def test_every_face_of_a_photo_gets_the_texture_edge_not_only_the_first(tmp_path, portrait):
    """Two damaged faces side by side: both repaired (the blend once clobbered the photo's width after
    the first face and the second face's crop raised an error)."""
    h, w = portrait.shape[:2]
    pair = np.concatenate([portrait, portrait[:, ::-1]], 1)
    hole = np.zeros(pair.shape[:2], bool)
    hole[int(h * 0.45):int(h * 0.45) + 6, int(w * 0.3):int(w * 0.7)] = True
    hole[:, w:] = hole[:, :w][:, ::-1]
    write_png(tmp_path / "in" / "a.png", pair)
    write_png(tmp_path / "m.png", hole.astype(np.uint8) * 255)
    [r] = Restorer(_FlatGeneratorWithTexture(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"),
                   RestoreOptions(grain="off", fill_outside=None)).run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out")
    assert len(r.faces) == 2 and r.status != "error"  # (the band's ends lie outside the crops: left, not filled)
    out = read_rgb(tmp_path / "out" / "a.png").astype(int)
    red = (out[..., 0] > 240) & (out[..., 1] < 15)
    assert red[:, :w][hole[:, :w]].mean() > 0.8 and red[:, w:][hole[:, w:]].mean() > 0.8


def test_a_big_faces_repair_loses_the_face_models_colour_cast_measured_at_the_damages_edge():
    """Deep in a wide hole a big face's repair is the face model's, a little off in colour; the texture
    inpainter's repair near the edge, made from the photo's own pixels, says by how much."""
    from faceheal.pipeline import carry_colour_offset

    yy, xx = np.mgrid[0:120, 0:120] / 120.0
    truth = np.stack([0.6 + 0.1 * xx, 0.45 + 0.1 * yy, 0.4 + 0 * xx], -1).astype(np.float32)
    full = np.zeros((120, 120), bool)
    full[20:100, 25:95] = True
    depth = cv2.distanceTransform(full.astype(np.uint8), cv2.DIST_L2, 3)
    native = truth.copy()  # the texture inpainter: right near the edge
    canvas = truth.copy()
    canvas[full] += np.array([-0.05, 0.03, 0.04], np.float32)  # the face model: cast all over
    before = np.abs(canvas - truth)[full & (depth > 10)].mean()
    carry_colour_offset(canvas, native, full, depth)
    after = np.abs(canvas - truth)[full & (depth > 10)].mean()
    assert after < 0.25 * before
    np.testing.assert_array_equal(canvas[~full], truth[~full])
