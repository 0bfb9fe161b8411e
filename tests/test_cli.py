"""End-to-end tests of `faceheal restore` and friends, through the real command line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from faceheal.cli import app
from tests.conftest import EXAMPLES, ROOT, read_rgb, write_png

runner = CliRunner()


def restore(*args, input=None):
    return runner.invoke(app, ["restore", *map(str, args)], input=input)


@pytest.fixture
def job(tmp_path, portrait, face_mask):
    """A folder with one real portrait (PNG, in a subfolder) and its mask."""
    write_png(tmp_path / "in" / "family" / "grandpa.png", portrait)
    write_png(tmp_path / "masks" / "family" / "grandpa.png", face_mask.astype(np.uint8) * 255)
    return tmp_path


def test_restore_changes_only_pixels_near_the_mask(job, portrait, face_mask):
    r = restore(job / "in", "-o", job / "out", "--masks", job / "masks", "--model", "telea", "--report", job / "r.jsonl")
    assert r.exit_code == 0, r.output
    out = read_rgb(job / "out" / "family" / "grandpa.png")
    assert out.shape == portrait.shape and out.dtype == portrait.dtype
    changed = np.any(out != portrait, axis=2)
    allowed = cv2.dilate(face_mask.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    assert changed.sum() > 0.5 * face_mask.sum()
    assert not (changed & ~allowed).any()
    line = json.loads((job / "r.jsonl").read_text().splitlines()[0])
    assert line["status"] == "ok" and len(line["faces"]) == 1 and line["pixels_changed"] == int(changed.sum())
    assert 0 < line["faces"][0]["mask_ratio"] < 0.5


def test_shipped_generator_restores_by_default(job, portrait, face_mask):
    weights = ROOT / "weights" / "faceheal-generator.pt"
    if not weights.is_file():
        pytest.fail("the shipped generator weights are missing from weights/")
    r = restore(job / "in", "-o", job / "out", "--masks", job / "masks", "--save-layout", job / "layout")
    assert r.exit_code == 0, r.output
    out = read_rgb(job / "out" / "family" / "grandpa.png")
    changed = np.any(out != portrait, axis=2)
    allowed = cv2.dilate(face_mask.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    assert changed.any() and not (changed & ~allowed).any()
    # the hole is filled with something face-like, not left white/black
    assert 0.05 < out[face_mask].mean() / 255 < 0.95
    assert list((job / "layout" / "family").glob("grandpa.face0.layout.png"))


def test_one_mask_for_all_inputs_from_stdin(job, portrait, face_mask, monkeypatch):
    write_png(job / "in" / "b.png", portrait)
    write_png(job / "one.png", face_mask.astype(np.uint8) * 255)
    monkeypatch.chdir(job)
    r = restore("-", "-o", "out", "--mask", "one.png", "--model", "telea",
                input="in/family/grandpa.png\nin/b.png\n")
    assert r.exit_code == 0, r.output
    assert (job / "out" / "in" / "family" / "grandpa.png").is_file()
    assert (job / "out" / "in" / "b.png").is_file()


def test_aligned_crops_skip_detection(tmp_path):
    r = restore(EXAMPLES / "aligned", "-o", tmp_path / "out", "--masks", EXAMPLES / "aligned_masks",
                "--aligned", "--model", "telea")
    assert r.exit_code == 0, r.output
    for p in (EXAMPLES / "aligned").iterdir():
        before, after = read_rgb(p), read_rgb(tmp_path / "out" / p.name)
        mask = read_rgb(EXAMPLES / "aligned_masks" / p.name) > 127
        assert (after[mask] != 255).any()  # the painted white damage was repainted
        far = cv2.dilate(mask.astype(np.uint8), np.ones((11, 11), np.uint8)) == 0
        np.testing.assert_array_equal(after[far], before[far])


def test_bad_inputs_fail_one_line_each_and_the_batch_goes_on(job, portrait, face_mask):
    inp, masks = job / "in", job / "masks"
    (inp / "zero.png").write_bytes(b"")
    (inp / "notes.jpg").write_text("not an image")
    good = (inp / "family" / "grandpa.png").read_bytes()
    (inp / "truncated.png").write_bytes(good[: len(good) // 3])
    write_png(inp / "wrongsize.png", portrait)
    write_png(masks / "wrongsize.png", np.zeros((10, 10), np.uint8))
    write_png(inp / "nomask.png", portrait)
    write_png(inp / "blank.png", np.full((120, 160, 3), 128, np.uint8))
    write_png(masks / "blank.png", np.zeros((120, 160), np.uint8))
    for name in ["zero", "notes", "truncated"]:
        write_png(masks / f"{name}.png", np.zeros((5, 5), np.uint8))
    r = restore(inp, "-o", job / "out", "--masks", masks, "--model", "telea", "--report", job / "r.jsonl")
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("faceheal: ") and ": " in line[10:]]
    text = "\n".join(errors)
    for name, why in [("zero.png", "empty file"), ("notes.jpg", "not an image"), ("truncated.png", "truncated"),
                      ("wrongsize.png", "10x10 but the photo is"), ("nomask.png", "no mask"),
                      ("blank.png", "no face found")]:
        assert any(name in e and why in e for e in errors), f"{name}: {why!r} not in\n{text}"
    assert "Traceback" not in r.output
    assert (job / "out" / "family" / "grandpa.png").is_file()  # the good photo was still restored
    assert (job / "out" / "blank.png").read_bytes() == (inp / "blank.png").read_bytes()  # no face: a copy
    statuses = {Path(j["path"]).name: j["status"] for j in map(json.loads, (job / "r.jsonl").read_text().splitlines())}
    assert statuses["grandpa.png"] == "ok" and statuses["blank.png"] == "no-face" and statuses["zero.png"] == "error"


def test_skip_no_face_writes_nothing(tmp_path):
    write_png(tmp_path / "in" / "blank.png", np.full((80, 80, 3), 90, np.uint8))
    write_png(tmp_path / "m.png", np.zeros((80, 80), np.uint8))
    r = restore(tmp_path / "in", "-o", tmp_path / "out", "--mask", tmp_path / "m.png", "--model", "telea", "--skip-no-face")
    assert r.exit_code == 0, "a photo without a face is an outcome, not a failure"
    assert "blank.png: no face found" in r.stderr and "1 without faces, 0 failed" in r.stderr
    assert not (tmp_path / "out" / "blank.png").exists()


def test_unwritable_output_is_one_error_and_others_still_written(job, portrait):
    write_png(job / "in" / "zz" / "other.png", portrait)
    write_png(job / "masks" / "zz" / "other.png", np.zeros(portrait.shape[:2], np.uint8))
    (job / "out").mkdir()
    (job / "out" / "family").write_text("a file where a folder should be")
    r = restore(job / "in", "-o", job / "out", "--masks", job / "masks", "--model", "telea")
    assert r.exit_code == 1
    assert "grandpa.png" in r.stderr and "cannot write" in r.stderr
    assert (job / "out" / "zz" / "other.png").is_file()
    assert not list((job / "out").rglob("*.part"))


def test_usage_errors_exit_2(job):
    assert restore(job / "in", "-o", job / "in", "--masks", job / "masks").exit_code == 2  # -o is the input
    assert restore(job / "in", "-o", job / "out", "--masks", job / "nope").exit_code == 2
    assert restore(job / "in", "-o", job / "out", "--masks", job / "masks", "--model", "magic").exit_code == 2
    assert restore(job / "in", "-o", job / "out", "--masks", job / "masks", "--precision", "fp8").exit_code == 2
    assert restore(job / "in", "-o", job / "out", "--masks", job / "masks", "--device", "cpu",
                   "--precision", "tf32").exit_code == 2  # a CUDA-only mode
    assert runner.invoke(app, ["restore"]).exit_code == 2


def test_in_place_keeps_a_backup(job, portrait):
    src = job / "in" / "family" / "grandpa.png"
    original = src.read_bytes()
    r = restore(job / "in", "-o", job / "in", "--masks", job / "masks", "--model", "telea", "--in-place")
    assert r.exit_code == 0, r.output
    assert (src.with_name("grandpa.png.faceheal-bak")).read_bytes() == original
    assert src.read_bytes() != original


def test_jpeg_in_jpeg_out(tmp_path, portrait, face_mask):
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.jpg"), portrait[..., ::-1])
    write_png(tmp_path / "m" / "a.png", face_mask.astype(np.uint8) * 255)
    r = restore(tmp_path / "in", "-o", tmp_path / "out", "--masks", tmp_path / "m", "--model", "telea")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "a.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_info_prints_versions_and_weights_checksum():
    r = runner.invoke(app, ["info"])
    assert r.exit_code == 0
    assert "faceheal" in r.stdout and "torch" in r.stdout
    assert "generator weights" in r.stdout and "damage detector weights" in r.stdout
    assert "MISMATCH" not in r.stdout
    assert "generator precision (--precision auto): " in r.stdout


def test_python_dash_m_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "faceheal", "restore", str(tmp_path / "nothing"), "-o", str(tmp_path / "o"),
                        "--mask", str(tmp_path / "nomask.png")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("faceheal: --mask")
    assert len(r.stderr.strip().splitlines()) == 1


def test_synthetic_masks_command(tmp_path):
    r = runner.invoke(app, ["mask", "-o", str(tmp_path), "--synthetic", "irregular", "--ratio", "20-30",
                            "--count", "3", "--seed", "4", "--size", "64x48"])
    assert r.exit_code == 0, r.output
    files = sorted(tmp_path.glob("*.png"))
    assert len(files) == 3
    m = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    assert m.shape == (48, 64) and 0.15 < (m > 127).mean() < 0.5


def test_auto_mask_repairs_painted_damage_without_a_mask(tmp_path, portrait, face_mask):
    damaged = portrait.copy()
    damaged[face_mask] = 255  # paint-white damage across the face
    write_png(tmp_path / "in" / "p.png", damaged)
    r = restore(tmp_path / "in", "-o", tmp_path / "out", "--model", "telea")
    assert r.exit_code == 0, r.output
    out = read_rgb(tmp_path / "out" / "p.png")
    assert out[face_mask].mean() < 220  # the white was repainted
    # away from the paint, only what the photo's own cracks get on an undamaged run may change
    write_png(tmp_path / "clean" / "p.png", portrait)
    assert restore(tmp_path / "clean", "-o", tmp_path / "out_clean", "--model", "telea").exit_code == 0
    own = np.any(read_rgb(tmp_path / "out_clean" / "p.png") != portrait, axis=2)
    own = cv2.dilate(own.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    far = cv2.dilate(face_mask.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
    assert (np.any(out != damaged, axis=2) & far & ~own).mean() < 0.01


def test_mask_command_writes_masks_and_overlays(tmp_path, portrait, face_mask):
    damaged = portrait.copy()
    damaged[face_mask] = 255
    write_png(tmp_path / "in" / "sub" / "p.png", damaged)
    (tmp_path / "in" / "bad.png").write_bytes(b"")
    r = runner.invoke(app, ["mask", str(tmp_path / "in"), "-o", str(tmp_path / "m"), "--overlay"])
    assert r.exit_code == 1 and "bad.png" in r.stderr
    m = cv2.imread(str(tmp_path / "m" / "sub" / "p.png"), cv2.IMREAD_UNCHANGED)
    assert m.shape == face_mask.shape
    found = m > 127
    assert (found & face_mask).sum() / face_mask.sum() > 0.95
    assert (tmp_path / "m" / "sub" / "p.overlay.png").is_file()


def test_mask_command_uses_the_damage_detector_asked_for(tmp_path, portrait):
    from faceheal.faces.detect import MtcnnDetector
    from faceheal.faces.find import find_faces
    from faceheal.masks.damage import DamageSettings, detect_damage, protected_discs
    from faceheal.masks.source import AUTO_MASK_GROW, grow_mask

    damaged = portrait.copy()
    h, w = damaged.shape[:2]
    for i in range(6):  # thin pale scratches, where the two detectors disagree
        cv2.line(damaged, (w // 8 + i * w // 9, h // 10), (w // 5 + i * w // 10, h - h // 10), (225, 225, 225), 1)
    write_png(tmp_path / "in" / "p.png", damaged)

    def expected(settings):
        """The mask restore repairs with this detector: its flags, the eyes and mouths of the faces as
        restore finds them protected (faceheal/faces/find.py), grown by the detected masks' margin."""
        def hole_for(landmarks):
            return grow_mask(detect_damage(damaged, settings, protected_discs(landmarks)), AUTO_MASK_GROW)
        return find_faces(MtcnnDetector(), damaged, hole_for=hole_for)[1]

    masks = {}
    for name in ("classical", "learned"):
        r = runner.invoke(app, ["mask", str(tmp_path / "in"), "-o", str(tmp_path / name), "--damage-detector", name])
        assert r.exit_code == 0, r.output
        masks[name] = cv2.imread(str(tmp_path / name / "p.png"), cv2.IMREAD_UNCHANGED) > 127
        np.testing.assert_array_equal(masks[name], expected(DamageSettings(detector=name)))
    assert (masks["classical"] != masks["learned"]).any()
    # --precision bf16 runs the learned detector in bf16, as `restore --precision bf16` does
    r = runner.invoke(app, ["mask", str(tmp_path / "in"), "-o", str(tmp_path / "bf16"), "--precision", "bf16"])
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "bf16" / "p.png"), cv2.IMREAD_UNCHANGED) > 127,
                                  expected(DamageSettings(detector="learned", precision="bf16")))
    r = runner.invoke(app, ["mask", str(tmp_path / "in"), "-o", str(tmp_path / "x"), "--precision", "fp16"])
    assert r.exit_code == 2 and "fp16" in r.output


def test_eval_scores_faceheal_and_the_classical_baselines_by_hole_bin(tmp_path):
    from faceheal.masks.synthetic import synthetic_mask

    for i, ratio in enumerate([(0.02, 0.08), (0.22, 0.28), (0.42, 0.48)]):  # bins 0-10, 20-30, 40-50 %
        write_png(tmp_path / "masks" / f"{i}.png", synthetic_mask((512, 512), "irregular", ratio, i).astype(np.uint8) * 255)
    r = runner.invoke(app, ["eval", "--images", str(EXAMPLES / "aligned"), "--masks", str(tmp_path / "masks"),
                            "--report", str(tmp_path / "r.md")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["scores"]) == {"telea", "navier-stokes", "faceheal"}
    for rows in report["scores"].values():
        assert [row["bin"] for row in rows] == ["0-10%", "20-30%", "40-50%"] and all(row["n"] == 2 for row in rows)
        psnrs = [row["psnr"] for row in rows]
        assert psnrs == sorted(psnrs, reverse=True), "bigger holes must score lower"
        assert all(row["lpips"] is not None for row in rows)
    faceheal, telea = report["scores"]["faceheal"], report["scores"]["telea"]
    assert all(f["psnr"] > t["psnr"] and f["l1_hole"] < t["l1_hole"] for f, t in zip(faceheal, telea))
    assert "| 40-50% | 2 |" in (tmp_path / "r.md").read_text()
    grid = cv2.imread(str(tmp_path / "r.png"))
    assert grid.shape == (3 * 2 * 160, 5 * 160, 3)  # 2 faces per bin; damaged | 3 methods | ground truth


def test_mask_faces_only_finds_a_face_hidden_by_paint(tmp_path, portrait):
    """--faces-only keeps damage on faces only: a face whose eyes are painted over must still count."""
    from faceheal.faces.detect import MtcnnDetector

    face = MtcnnDetector().detect(portrait)[0]
    radius = int(0.5 * np.linalg.norm(face.landmarks[1] - face.landmarks[0]))
    painted = portrait.copy()
    for eye in face.landmarks[:2]:
        cv2.circle(painted, (int(eye[0]), int(eye[1])), radius, (255, 255, 255), -1)
    assert MtcnnDetector().detect(painted) == []
    write_png(tmp_path / "in" / "p.png", painted)
    r = runner.invoke(app, ["mask", str(tmp_path / "in"), "-o", str(tmp_path / "m"), "--faces-only"])
    assert r.exit_code == 0, r.output
    found = cv2.imread(str(tmp_path / "m" / "p.png"), cv2.IMREAD_UNCHANGED) > 127
    paint = np.all(painted == 255, axis=2) & ~np.all(portrait == 255, axis=2)
    assert (found & paint).sum() > 0.9 * paint.sum()


@pytest.mark.parametrize("args,says", [(["--minutes", "1"], "nothing"),
                                       (["--steps", "10", "--decay-from", "10"], "--decay-from"),
                                       (["--minutes", "5", "--decay-from", "10"], "--decay-from"),
                                       (["--phase", "stage3", "--steps", "1"], "--phase")])
def test_train_usage_errors_exit_2_before_any_work(tmp_path, args, says):
    r = runner.invoke(app, ["train", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "run"), *args])
    assert r.exit_code == 2 and says in r.output
    assert not (tmp_path / "run" / "last.pt").exists()


def test_outputs_take_the_inputs_permissions(job, tmp_path):
    import os
    import stat

    (job / "in" / "family" / "grandpa.png").chmod(0o664)
    r = restore(job / "in", "-o", job / "out", "--masks", job / "masks", "--model", "telea")
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(os.stat(job / "out" / "family" / "grandpa.png").st_mode) == 0o664
    r = restore(job / "in", "-o", job / "in", "--masks", job / "masks", "--model", "telea", "--in-place")
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(os.stat(job / "in" / "family" / "grandpa.png").st_mode) == 0o664
    mask_copy = job / "outmask"
    r = runner.invoke(app, ["mask", str(job / "in"), "-o", str(mask_copy)])
    written = [p for p in mask_copy.rglob("*.png")]
    assert written and all(stat.S_IMODE(os.stat(p).st_mode) != 0o600 for p in written)


def test_two_inputs_for_one_output_exit_2_and_write_nothing(tmp_path, portrait):
    write_png(tmp_path / "dup" / "a" / "p.png", portrait)
    write_png(tmp_path / "dup" / "b" / "p.png", portrait)
    r = restore(tmp_path / "dup" / "a", tmp_path / "dup" / "b", "-o", tmp_path / "out", "--model", "telea")
    assert r.exit_code == 2 and "both be written" in r.stderr
    assert not (tmp_path / "out" / "p.png").exists()
    write_png(tmp_path / "album" / "p1.png", portrait)
    write_png(tmp_path / "album" / "scans" / "p1.png", portrait[::-1])
    before = (tmp_path / "album" / "p1.png").read_bytes()
    r = restore(tmp_path / "album" / "scans", "-o", tmp_path / "album", "--model", "telea")
    assert r.exit_code == 2 and (tmp_path / "album" / "p1.png").read_bytes() == before


def test_usage_errors_are_one_line_with_exit_2(job):
    import torch

    if not torch.cuda.is_available():
        r = restore(job / "in", "-o", job / "out", "--device", "cuda")
        assert r.exit_code == 2 and "no CUDA device" in r.stderr and "Traceback" not in r.output
    r = restore("-", "-o", job / "out", input=f"{job / 'in' / 'family' / 'grandpa.png'}\0")
    assert r.exit_code == 2 and "-0" in r.stderr and "Traceback" not in r.output
    r = restore("-", "-0", "-o", job / "out", "--mask", job / "masks" / "family" / "grandpa.png", "--model", "telea",
                input=f"{job / 'in' / 'family' / 'grandpa.png'}\0")
    assert r.exit_code == 0, r.output


def test_an_unexpected_exception_fails_its_photo_only_and_report_starts_afresh(job, portrait, monkeypatch):
    import faceheal.pipeline as pipeline

    write_png(job / "in" / "zz" / "other.png", portrait)
    write_png(job / "masks" / "zz" / "other.png", np.zeros(portrait.shape[:2], np.uint8))
    (job / "r.jsonl").write_text('{"path": "from an older run"}\n')
    real = pipeline.read_image

    def flaky(path, *a, **k):
        if "grandpa" in str(path):
            raise RuntimeWarning("a decoder's warning turned error")
        return real(path, *a, **k)

    monkeypatch.setattr(pipeline, "read_image", flaky)
    r = restore(job / "in", "-o", job / "out", "--masks", job / "masks", "--model", "telea", "--report", job / "r.jsonl")
    assert r.exit_code == 1 and "grandpa.png: unexpected RuntimeWarning" in r.stderr and "Traceback" not in r.output
    assert (job / "out" / "zz" / "other.png").is_file()
    lines = [json.loads(x) for x in (job / "r.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and "from an older run" not in str(lines)
    r = restore(job / "in", "-o", job / "out2", "--masks", job / "masks", "--model", "telea", "--debug")
    assert "Traceback" in r.stderr and "a decoder's warning" in r.stderr
    write_png(job / "masks" / "zz" / "other.png", np.zeros((5, 5), np.uint8))  # a faceheal error: its traceback too
    monkeypatch.setattr(pipeline, "read_image", real)
    r = restore(job / "in", "-o", job / "out3", "--masks", job / "masks", "--model", "telea", "--debug")
    assert "is 5x5 but the photo is" in r.stderr and "MaskMismatch" in r.stderr


def test_every_restore_option_that_shapes_an_output_is_recorded(job):
    """The run's parameters (in last-run.json and each sidecar) name every option that can change what
    is written, so an output can be traced to how it was made; only plumbing is left out, and the
    plumbing list holds nothing that shapes an output."""
    import typer.main

    from faceheal.cli import RUN_PLUMBING

    assert RUN_PLUMBING == {"inputs", "out", "report", "loaders", "sidecar", "skip_existing", "review", "null", "quiet", "debug"}
    r = restore(job / "in", "-o", job / "out", "--masks", job / "masks", "--model", "telea", "--faces-only")
    assert r.exit_code == 0, r.output
    recorded = json.loads((job / "out" / ".faceheal" / "last-run.json").read_text())["parameters"]
    command = typer.main.get_command(app).commands["restore"]
    options = {p.name for p in command.params}
    assert options - RUN_PLUMBING == set(recorded), sorted((options - RUN_PLUMBING) ^ set(recorded))
    assert recorded["fill_outside"] == "none" and recorded["masks"] == str(job / "masks") and recorded["grow"] == 0
    assert recorded["sensitivity"] is None and recorded["model"] == "telea"



def test_a_drawn_mask_on_a_photo_without_faces_is_repaired_and_said_so(tmp_path):
    """No face found, but the user drew the damage: it is repaired (away from faces) and the message
    says what happened, not 'copied unchanged'."""
    rng = np.random.default_rng(0)
    photo = np.clip(120 + rng.normal(0, 3, (96, 96, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((96, 96), np.uint8)
    mask[40:46, 10:90] = 255
    photo[mask > 0] = 255
    write_png(tmp_path / "in" / "wall.png", photo)
    write_png(tmp_path / "m.png", mask)
    r = restore(tmp_path / "in", "-o", tmp_path / "out", "--mask", tmp_path / "m.png", "--model", "telea")
    assert r.exit_code == 0, r.stderr
    assert "wall.png: no face found (the drawn damage repaired without a face model" in r.stderr
    out = read_rgb(tmp_path / "out" / "wall.png")
    assert np.abs(out[mask > 0].astype(int) - 120).max() < 30  # the white stroke is gone


def test_a_gray_print_stored_as_rgb_gets_gray_repairs_away_from_faces_too(tmp_path):
    """The texture inpainter learned on colour photos: on the Solvay photograph (a gray scan saved as
    an RGB JPEG, every pixel R = G = B) its repairs away from faces carried colour, up to 24 levels of
    chroma (1,227 pixels over 6). They take the print's tone, as the faces' repairs do."""
    r = restore(EXAMPLES / "photos" / "solvay_1927.jpg", "-o", tmp_path / "out", "--mask",
                EXAMPLES / "masks" / "solvay_1927.png", "--report", tmp_path / "r.jsonl")
    assert r.exit_code == 0, r.stderr
    line = json.loads((tmp_path / "r.jsonl").read_text())
    assert line["pixels_changed"] > 30_000 and line["unrepaired_pixels"] == 0
    out = read_rgb(tmp_path / "out" / "solvay_1927.jpg").astype(int)
    assert (out.max(axis=2) - out.min(axis=2)).max() <= 2


def test_info_lists_the_optional_detail_pass_weights_only_where_present(tmp_path, monkeypatch):
    """weights/faceheal-detail.pt is optional (not shipped): absent, info says nothing of it and exits 0;
    present, it is verified like the rest, and an altered one is an error."""
    import torch

    from faceheal.model.tiles import TileConfig, TileInpainterNet, save_tile_net
    from faceheal.model.weights import DETAIL_NET, shipped

    for f in shipped(DETAIL_NET).parent.iterdir():
        if f.is_file() and not f.name.startswith(DETAIL_NET):
            (tmp_path / f.name).symlink_to(f)
    monkeypatch.setenv("FACEHEAL_WEIGHTS", str(tmp_path))
    r = runner.invoke(app, ["info"])
    assert r.exit_code == 0 and "detail pass" not in r.stdout
    torch.manual_seed(0)
    save_tile_net(TileInpainterNet(TileConfig.tiny()), tmp_path / DETAIL_NET, {"prior": "soft"})
    r = runner.invoke(app, ["info"])
    assert r.exit_code == 0 and f"detail pass weights {DETAIL_NET} sha256" in r.stdout and "(verified)" in r.stdout
    with open(tmp_path / DETAIL_NET, "ab") as f:
        f.write(b"x")
    r = runner.invoke(app, ["info"])
    assert r.exit_code == 1 and "detail pass weights:" in r.stdout
