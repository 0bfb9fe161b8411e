"""The library API: batching across photos, the Python entry point, memory-friendly composition."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import faceheal
from faceheal.faces.detect import MtcnnDetector
from faceheal.inpainters import TeleaInpainter
from faceheal.faces.find import damage_at_scale, detect_through_damage
from faceheal.masks.source import MaskSource
from faceheal.pipeline import RestoreOptions, Restorer
from faceheal.sources import expand_inputs
from tests.conftest import EXAMPLES, write_png


class Recording(TeleaInpainter):
    """Telea that remembers the size of every batch it was handed."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def inpaint(self, crops, holes, priors=None):
        self.batches.append(len(crops))
        return super().inpaint(crops, holes, priors)


def test_crops_from_several_photos_share_one_batch(tmp_path, portrait, face_mask):
    for i in range(3):
        write_png(tmp_path / "in" / f"{i}.png", portrait)
    write_png(tmp_path / "m.png", face_mask.astype(np.uint8) * 255)
    rec = Recording()
    restorer = Restorer(rec, MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"))
    results = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out", batch_faces=8)
    assert [r.status for r in results] == ["ok"] * 3
    assert rec.batches == [3]
    assert {"decode", "detect", "align", "inpaint", "paste_back", "encode_write"} <= set(restorer.timings)


def test_restore_image_from_python(portrait, face_mask):
    out = faceheal.restore_image(portrait, face_mask, inpainter=TeleaInpainter())
    assert out.shape == portrait.shape and out.dtype == portrait.dtype
    changed = np.any(out != portrait, axis=2)
    allowed = cv2.dilate(face_mask.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    assert changed.any() and not (changed & ~allowed).any()


def test_restore_image_16bit(portrait, face_mask):
    img16 = portrait.astype(np.uint16) * 257
    out = faceheal.restore_image(img16, face_mask, inpainter=TeleaInpainter())
    assert out.dtype == np.uint16
    far = cv2.dilate(face_mask.astype(np.uint8), np.ones((11, 11), np.uint8)) == 0
    np.testing.assert_array_equal(out[far], img16[far])


def test_faces_far_from_the_damage_are_left_alone(tmp_path, portrait):
    """With --faces-only, damage outside every face is not repaired (and reported)."""
    h, w = portrait.shape[:2]
    mask = np.zeros((h, w), bool)
    mask[h - 20:h - 10, 10:60] = True  # bottom-left corner, far from the face
    write_png(tmp_path / "in" / "a.png", portrait)
    write_png(tmp_path / "m.png", mask.astype(np.uint8) * 255)
    restorer = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"),
                        RestoreOptions(fill_outside=None))
    [r] = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out")
    assert r.status == "partial" and r.unrepaired_pixels == mask.sum()  # nothing changed, damage left: said
    assert (tmp_path / "out" / "a.png").read_bytes() == (tmp_path / "in" / "a.png").read_bytes()
    restorer.options = RestoreOptions(fill_outside="telea")
    [r] = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out2")
    assert r.status == "ok" and r.unrepaired_pixels == 0 and r.pixels_changed > 0


def test_parallel_loaders_give_the_same_outputs_in_input_order(tmp_path, portrait, face_mask):
    """--loaders N: several threads decode and detect ahead (one MTCNN per thread); results come back
    in input order and the files are byte-identical to a one-loader run."""
    rng = np.random.default_rng(0)
    for i in range(6):
        shifted = np.roll(portrait, int(rng.integers(-30, 30)), axis=1)  # different photos, same size
        write_png(tmp_path / "in" / f"{i}.png", shifted)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    write_png(tmp_path / "m.png", face_mask.astype(np.uint8) * 255)
    runs = {}
    for loaders in (1, 3):
        restorer = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"))
        results = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / f"out{loaders}", batch_faces=2,
                               loaders=loaders)
        runs[loaders] = results
    assert [r.path for r in runs[1]] == [r.path for r in runs[3]]
    assert [r.status for r in runs[1]] == [r.status for r in runs[3]]
    assert sorted(r.status for r in runs[3]) == ["error"] + ["ok"] * 6
    for i in range(6):
        assert (tmp_path / "out1" / f"{i}.png").read_bytes() == (tmp_path / "out3" / f"{i}.png").read_bytes()


def test_writers_overlap_the_model_and_keep_input_order(tmp_path, portrait, face_mask):
    """Paste-back and writing run in writer threads while the model works on the next batch; a slow
    write does not reorder the results, and every result is delivered once its file is complete."""
    import threading
    import time

    for i in range(4):
        write_png(tmp_path / "in" / f"{i}.png", portrait)
    write_png(tmp_path / "m.png", face_mask.astype(np.uint8) * 255)
    events, lock = [], threading.Lock()

    class Logged(TeleaInpainter):
        def inpaint(self, crops, holes, priors=None):
            with lock:
                events.append(("inpaint", time.perf_counter()))
            return super().inpaint(crops, holes, priors)

    class SlowWriter(Restorer):
        def finish(self, item, restored, layouts, out_path):
            assert threading.current_thread().name.startswith("faceheal-write")
            time.sleep(0.4 if item.source.path.name == "0.png" else 0.0)
            res = super().finish(item, restored, layouts, out_path)
            with lock:
                events.append(("written", time.perf_counter()))
            return res

    delivered = []
    restorer = SlowWriter(Logged(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"))
    results = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out", batch_faces=1, loaders=2,
                           on_result=lambda r: delivered.append((r.path, Path(r.output).is_file())))
    assert [Path(r.path).name for r in results] == ["0.png", "1.png", "2.png", "3.png"]
    assert all(r.status == "ok" for r in results)
    assert [(Path(p).name, ok) for p, ok in delivered] == [(f"{i}.png", True) for i in range(4)]
    inpaint_times = [t for kind, t in events if kind == "inpaint"]
    first_written = min(t for kind, t in events if kind == "written")
    assert len(inpaint_times) == 4
    assert inpaint_times[1] < first_written  # the model went on while photo 0 was still being written


def test_priors_made_ahead_by_the_loaders_give_the_same_repair(portrait, face_mask):
    """The generator's Telea prior is computed per crop in the loader threads; the result must be
    what the model computes for itself from the batch."""
    from faceheal.inpainters import GeneratorInpainter

    gen = GeneratorInpainter(device="cpu")
    rng = np.random.default_rng(0)
    crops = rng.random((2, gen.crop_size, gen.crop_size, 3)).astype(np.float32)
    holes = np.zeros((2, gen.crop_size, gen.crop_size), bool)
    holes[:, 60:120, 80:200] = True
    ahead = np.stack([gen.prior_for(c, h) for c, h in zip(crops, holes)])
    np.testing.assert_allclose(gen.inpaint(crops, holes, ahead).images, gen.inpaint(crops, holes).images, atol=1e-6)


def test_bf16_generator_repairs_like_fp32():
    """CPU bf16 autocast (restore's default on CPUs with native bf16) must stay within a level or two of
    fp32 in the hole and leave every known pixel exactly as given."""
    from faceheal.inpainters import GeneratorInpainter, cpu_has_native_bf16, resolve_precision

    import torch
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("auto", torch.device("cuda")) == "tf32"  # only the device type is looked at
    crop = cv2.imread(str(EXAMPLES / "aligned" / "bopbtl_old_c.png"))[..., ::-1].astype(np.float32) / 255
    hole = cv2.imread(str(EXAMPLES / "aligned_masks" / "bopbtl_old_c.png"), cv2.IMREAD_GRAYSCALE) > 127
    hole[96:160, 64:192] = True  # eyes, nose and mouth under a solid block as well
    out = {}
    for precision in ("fp32", "bf16"):
        gen = GeneratorInpainter(device="cpu", precision=precision)
        assert gen.describe()["precision"] == precision
        out[precision] = gen.inpaint(crop[None], hole[None]).images[0]
        np.testing.assert_array_equal(out[precision][~hole], crop[~hole])
    diff = np.abs(out["bf16"] - out["fp32"])[hole] * 255
    assert diff.mean() < 0.5 and diff.max() < 8
    assert np.abs(out["fp32"] - crop)[hole].mean() * 255 > 5  # the hole was really repainted


def _eyes_painted_over(portrait):
    """The portrait with white paint over both eyes (MTCNN no longer finds the face) and that paint's mask."""
    face = MtcnnDetector().detect(portrait)[0]
    left, right = face.landmarks[0], face.landmarks[1]
    radius = int(0.5 * np.linalg.norm(right - left))
    hole = np.zeros(portrait.shape[:2], np.uint8)
    for eye in (left, right):
        cv2.circle(hole, (int(eye[0]), int(eye[1])), radius, 1, -1)
    painted = portrait.copy()
    painted[hole > 0] = 255
    return painted, hole > 0, face


def test_a_face_hidden_by_damage_is_found_on_the_damage_filled_copy(portrait):
    painted, hole, face = _eyes_painted_over(portrait)
    detector = MtcnnDetector()
    assert detector.detect(painted) == []
    [found] = detect_through_damage(detector, painted, hole, 1.0)
    eye_distance = np.linalg.norm(face.landmarks[1] - face.landmarks[0])
    assert np.abs(found.landmarks - face.landmarks).max() < 0.35 * eye_distance
    # the hole may come at full resolution for a downscaled detection copy
    small = cv2.resize(painted, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    [half] = detect_through_damage(detector, small, damage_at_scale(hole, small.shape[:2]), 0.5)
    assert np.abs(half.landmarks * 2 - face.landmarks).max() < 0.35 * eye_distance


def test_the_look_through_filled_damage_asks_for_less_confidence(portrait):
    """The fill blurs what MTCNN scores: the second look takes faces the first look's threshold would drop."""
    from faceheal.faces.find import SECOND_LOOK_THRESHOLD

    painted, hole, _ = _eyes_painted_over(portrait)
    asked = []

    class Recording(MtcnnDetector):
        def detect(self, rgb8, scale=1.0, threshold=None):
            asked.append(threshold)
            return super().detect(rgb8, scale, threshold)

    detect_through_damage(Recording(), painted, hole, 1.0)
    assert asked == [SECOND_LOOK_THRESHOLD] and SECOND_LOOK_THRESHOLD < MtcnnDetector().threshold


def test_restore_repairs_a_face_whose_eyes_are_painted_over(tmp_path, portrait):
    painted, hole, _ = _eyes_painted_over(portrait)
    write_png(tmp_path / "in" / "a.png", painted)
    write_png(tmp_path / "m.png", hole.astype(np.uint8) * 255)
    restorer = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"))
    [r] = restorer.run(expand_inputs([str(tmp_path / "in")]), tmp_path / "out")
    assert r.status == "ok" and len(r.faces) == 1
    out = cv2.imread(str(tmp_path / "out" / "a.png"))
    assert out[hole].mean() < 200, "the paint over the eyes is still there"


def test_a_photo_without_a_face_is_written_at_once_and_its_pixels_released(tmp_path):
    """Its result is made by the loader (not after a batch of damaged faces fills), and nothing keeps
    the decoded photo: not even the error's traceback frames (16 no-face 24 MP photos cost 0.9 GB more
    than 2 before; benchmarks/results/bench_no_face_memory.md)."""
    import weakref

    write_png(tmp_path / "in" / "blank.png", np.full((300, 400, 3), 120, np.uint8))
    restorer = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(auto=lambda rgb, lm: np.zeros(rgb.shape[:2], bool)))
    [src] = expand_inputs([str(tmp_path / "in")])
    item = restorer._load_or_finish(src, tmp_path / "out")
    assert item.result is not None and item.result.status == "no-face" and item.picture is None
    assert (tmp_path / "out" / "blank.png").read_bytes() == (tmp_path / "in" / "blank.png").read_bytes()
    assert item.error.__traceback__ is None
    loaded = restorer.load(src)
    ref = weakref.ref(loaded.picture)
    loaded.picture = None
    assert ref() is None


class _Marking(TeleaInpainter):
    """Telea on faces; away from them paints a known colour, so the test sees which fill ran where."""

    def fill_region(self, image, hole):
        out = image.copy()
        out[hole] = (0.0, 1.0, 0.0)
        return out


def test_detected_damage_away_from_faces_is_repaired_by_the_backend_by_default(tmp_path, portrait):
    """The whole photo: detected damage away from every face is repaired too, by the backend's region
    fill (window by window); --fill-outside telea uses OpenCV there instead; a photo with no face and
    detected damage is still copied byte for byte. (Grain off: this old print is grainy, and grain
    would change the marked colour.)"""
    h, w = portrait.shape[:2]
    far = np.zeros((h, w), bool)
    far[h - 20:h - 10, 10:60] = True
    write_png(tmp_path / "in" / "a.png", portrait)
    write_png(tmp_path / "in" / "blank.png", np.full((120, 160, 3), 200, np.uint8))
    masks = MaskSource(auto=lambda rgb, lm: far.copy() if rgb.shape[:2] == (h, w) else np.ones(rgb.shape[:2], bool), grow=0)
    r = {Path(x.path).name: x for x in Restorer(_Marking(), MtcnnDetector(), masks, RestoreOptions(grain="off")).run(
        expand_inputs([str(tmp_path / "in")]), tmp_path / "out")}
    assert r["a.png"].status == "ok" and r["a.png"].unrepaired_pixels == 0
    out = cv2.imread(str(tmp_path / "out" / "a.png"))[..., ::-1]
    assert (out[far] == (0, 255, 0)).all() and (out[~far] == portrait[~far]).all()
    assert r["blank.png"].status == "no-face"
    assert (tmp_path / "out" / "blank.png").read_bytes() == (tmp_path / "in" / "blank.png").read_bytes()
    [r] = Restorer(_Marking(), MtcnnDetector(), masks, RestoreOptions(fill_outside="telea", grain="off")).run(
        expand_inputs([str(tmp_path / "in" / "a.png")]), tmp_path / "out2")
    out = cv2.imread(str(tmp_path / "out2" / "a.png"))[..., ::-1]
    assert r.unrepaired_pixels == 0 and not (out[far] == (0, 255, 0)).all(axis=1).any()


def test_photos_finished_while_loading_hold_no_pixels(tmp_path, portrait):
    """A clean photo is written at once by its loader; waiting for a batch of damaged faces to fill,
    it must not keep its decoded pixels (restore repairs in place: the kept originals reference them)."""
    import gc
    import weakref

    import faceheal.pipeline as pipeline

    for i in range(3):
        write_png(tmp_path / "in" / f"{i}.png", portrait)
    alive = []
    compose = pipeline.Restorer.compose

    def spy(self, item, restored, res):
        alive.append(weakref.ref(item.picture.pixels))
        return compose(self, item, restored, res)

    restorer = Restorer(TeleaInpainter(), MtcnnDetector(), MaskSource(auto=lambda rgb, lm: np.zeros(rgb.shape[:2], bool)))
    restorer.compose = spy.__get__(restorer)
    items = [restorer._load_or_finish(s, tmp_path / "out") for s in expand_inputs([str(tmp_path / "in")])]
    gc.collect()
    assert [i.result.status for i in items] == ["unchanged"] * 3 and len(alive) == 3
    assert not any(ref() is not None for ref in alive)
