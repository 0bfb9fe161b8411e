"""The learned damage detector: network, weights, training loop, and the shipped weights on real faces."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from faceheal.errors import WeightsError
from faceheal.masks import damage as damage_module
from faceheal.masks.damage import DamageSettings, detect_damage
from faceheal.masks.learned import (DEFAULT_DAMAGE_WEIGHTS, DamageNet, LearnedDamageDetector, load_damage_net,
                                    save_damage_net)
from faceheal.masks.render import render_damage
from faceheal.train.damage import DamageTrainConfig, DamageTrainer, damage_sample, f1_within, small_faces_window
from tests.conftest import EXAMPLES, read_rgb


def test_network_keeps_any_size_and_weights_round_trip(tmp_path):
    model = DamageNet().eval()
    x = torch.rand(1, 3, 37, 53)
    with torch.inference_mode():
        y = model(x)
    assert y.shape == (1, 1, 37, 53)
    path = tmp_path / "d.pt"
    save_damage_net(model, path, meta={"threshold": 0.4})
    loaded, meta = load_damage_net(path)
    assert meta["threshold"] == 0.4
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), y, atol=2e-2, rtol=0)  # fp16 storage
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(WeightsError):
        load_damage_net(path)


def test_weights_metadata_with_numpy_numbers_still_loads_with_weights_only(tmp_path):
    """A numpy scalar in the metadata pickles as a numpy global that torch.load(weights_only=True)
    refuses: the calibration once wrote one and the detector stopped loading."""
    save_damage_net(DamageNet(), tmp_path / "d.pt", {"decision": {"certain_share": np.float64(0.1)}, "n": [np.int64(3)],
                                                    "curve": np.array([0.5, 0.25])})
    meta = load_damage_net(tmp_path / "d.pt")[1]
    assert meta["decision"]["certain_share"] == 0.1 and meta["n"] == [3] and meta["curve"] == [0.5, 0.25]


def test_what_the_coarse_look_is_sure_of_reaches_the_decision_at_full_size(monkeypatch):
    """`--wide-damage`: damage found only by the downscaled look must carry its sureness too, or the
    decision reads it as doubtful and drops it."""
    from faceheal.masks import damage
    from faceheal.masks.decision import packed_mask

    calls = []

    def fake(rgb, settings, protect, tile, overlap, sure=None):
        calls.append(rgb.shape)
        found = np.zeros(rgb.shape[:2], bool)
        if rgb.shape[0] == 50:  # the coarse look (a quarter of 200): one sure pixel at (10, 20)
            found[10, 20] = True
            sure[10, 20 // 8] |= 0x80 >> (20 % 8)
        return found
    monkeypatch.setattr(damage, "_detect_damage", fake)
    sure = packed_mask((200, 160))
    mask = damage.detect_damage(np.zeros((200, 160, 3), np.float32), coarse=0.25, sure=sure)
    full = np.unpackbits(sure, axis=1, count=160).astype(bool)
    assert calls == [(200, 160, 3), (50, 40, 3)]
    assert full[40:44, 80:84].all() and full.sum() == 16 and (full == mask).all()


def test_a_wider_colour_aware_network_round_trips_and_sees_colour(tmp_path):
    from faceheal.masks.learned import DamageNetConfig, cue_channels

    model = DamageNet(DamageNetConfig(widths=(8, 16, 48, 64), colour=True)).eval()
    path = tmp_path / "d.pt"
    save_damage_net(model, path)
    loaded, _ = load_damage_net(path)
    assert loaded.config.colour and loaded.config.widths == (8, 16, 48, 64)
    x = torch.rand(1, 3, 40, 40)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), atol=2e-2, rtol=0)
    gray = x.mean(1, keepdim=True).repeat(1, 3, 1, 1)
    brown = gray * torch.tensor([1.0, 0.8, 0.5]).view(1, 3, 1, 1)  # the same luma pattern, tinted
    cues = cue_channels(gray, 7, colour=True)
    assert cues.shape[1] == 6 and cues[:, 4:].abs().max() == 0  # a gray print has no opponent colour
    assert cue_channels(brown, 7, colour=True)[:, 4:].abs().max() > 0.1


def test_training_on_some_kinds_draws_only_those():
    rng = np.random.default_rng(0)
    face = (np.random.default_rng(1).random((160, 160, 3)) * 120 + 60).astype(np.uint8)
    white = 0
    for _ in range(30):  # painted strokes are white (faded, blurred or JPEG'd at times); dust: 7 of 30
        rgb, truth = damage_sample(face, rng, size=96, clean_share=0.0, negative_share=0.0, pool=("painted",))
        assert truth.any()
        white += np.median(rgb[truth].min(axis=-1)) >= 0.85
    assert white >= 25
    with pytest.raises(ValueError):
        DamageTrainer(DamageTrainConfig(data="unused", out="unused", kinds=("scratchez",)))


def test_training_on_some_hard_negatives_draws_only_those(monkeypatch):
    import faceheal.train.damage as training

    drawn = []
    real = training.hard_negative
    monkeypatch.setattr(training, "hard_negative", lambda rgb, rng, kind=None: drawn.append(kind) or real(rgb, rng, kind))
    face = (np.random.default_rng(1).random((160, 160, 3)) * 120 + 60).astype(np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        damage_sample(face, rng, size=96, negative_share=1.0, negatives=("glasses", "signature"))
    assert set(drawn) == {"glasses", "signature"}
    with pytest.raises(ValueError):
        DamageTrainer(DamageTrainConfig(data="unused", out="unused", negatives=("glass",)))


def test_crushed_shadows_flatten_dark_areas_to_near_black_and_keep_the_highlights():
    from faceheal.train.negatives import hard_negative

    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32)
    ramp = np.repeat((xx / 95)[..., None], 3, -1)  # black to white, left to right
    for seed in range(5):
        out = hard_negative(ramp, np.random.default_rng(seed), "shadows")
        dark = out[:, :7].mean(-1)  # the darkest 7 %: below every black point drawn (0.08-0.3)
        assert dark.max() < 0.12 and dark.std() < 0.03  # flat, near black
        assert out[:, -5:].mean() > 0.85  # the whites stay white


def test_small_face_windows_shrink_whole_pictures_and_keep_their_pixel_size_through_damage():
    rng = np.random.default_rng(0)
    face = np.zeros((256, 256, 3), np.uint8)
    face[:, 128:] = 255  # one edge down the middle: shrunk by 0.2-0.55 it spans 51-141 px
    halves = []
    for _ in range(12):
        window = small_faces_window(lambda: face, rng, 96)
        assert window.shape == (96, 96, 3) and window.dtype == np.uint8
        halves.append(window.mean() / 255)
        rgb, truth = damage_sample(window, rng, size=96, rescale=False, clean_share=1.0, negative_share=0.0)
        assert rgb.shape == (96, 96, 3) and not truth.any()
        seen, kept = rgb.mean(axis=(0, 2)), window.mean(axis=(0, 2))  # toned and maybe mirrored, not rescaled
        assert max(np.corrcoef(seen, kept)[0, 1], np.corrcoef(seen, kept[::-1])[0, 1]) > 0.95
    assert 0.2 < np.mean(halves) < 0.8 and min(halves) < 0.45  # whole pictures shrunk, several side by side


def test_widening_keeps_what_the_detector_computes_and_refuses_to_shrink():
    from faceheal.masks.learned import DamageNetConfig
    from faceheal.train.damage import widen_damage_net

    old = DamageNet().eval()
    for p in old.parameters():  # away from the default init, so zeros and copies are really tested
        torch.nn.init.normal_(p, 0, 0.3)
    new = widen_damage_net(old, DamageNetConfig(widths=(8, 16, 48, 64), colour=True)).eval()
    assert sum(p.numel() for p in new.parameters()) > 2 * sum(p.numel() for p in old.parameters())
    x = torch.rand(2, 3, 45, 61)
    with torch.inference_mode():
        torch.testing.assert_close(new(x), old(x), atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        widen_damage_net(new, DamageNetConfig())


def test_tiled_mask_matches_one_pass(tmp_path):
    model = DamageNet().eval()
    path = tmp_path / "d.pt"
    save_damage_net(model, path, meta={"threshold": 0.5})
    det = LearnedDamageDetector(path)
    img = np.random.default_rng(0).random((300, 420, 3)).astype(np.float32)
    whole = det.mask(img, 0.5)
    tiled = det.mask(img, 0.5, tile=160)
    assert (whole != tiled).mean() < 0.01  # the overlap hides tile edges


def test_sure_pixels_are_those_above_the_sure_logit_in_one_pass_or_tiled(tmp_path):
    from faceheal.masks.decision import SURE_LOGIT, packed_mask

    torch.manual_seed(0)
    model = DamageNet().eval()
    img = np.random.default_rng(0).random((300, 420, 3)).astype(np.float32)
    with torch.no_grad():  # about half the pixels sure
        raw = model(torch.from_numpy(img).permute(2, 0, 1)[None])
        model.head[2].bias += SURE_LOGIT - float(raw.median())
    path = tmp_path / "d.pt"
    save_damage_net(model, path, meta={"threshold": 0.5})
    det = LearnedDamageDetector(path)
    logits = det.model(torch.from_numpy(img).permute(2, 0, 1)[None])[0, 0].detach().numpy()
    for tile in (None, 160):
        sure = packed_mask(img.shape[:2])
        det.mask(img, 0.5, tile=tile, sure=sure)
        found = np.unpackbits(sure, axis=1, count=img.shape[1]).astype(bool)
        assert 0 < found.sum() < found.size
        assert (found != (logits > SURE_LOGIT)).mean() < 0.01


def test_training_samples_are_damaged_where_the_truth_says():
    face = read_rgb(EXAMPLES / "aligned" / "bopbtl_old_c.png")
    rng = np.random.default_rng(0)
    for kind in ("scratches", "hairlines", "missing", "dust", "stains", "tears", "painted"):
        rgb, truth = damage_sample(face, rng, size=128, kinds=(kind,))
        assert rgb.shape == (128, 128, 3) and truth.shape == (128, 128) and truth.any()


def test_rendered_damage_is_true_only_where_it_visibly_changed_the_photo():
    """Damage of the photo's own tone is no damage: the truth is coverage above 0.35 *and* a visible
    change, so faint hairlines are not labelled where they vanish. Tears touch the photo's edge."""
    from faceheal.masks.render import VISIBLE

    face = read_rgb(EXAMPLES / "aligned" / "bopbtl_old_c.png").astype(np.float32) / 255
    for kind in ("scratches", "hairlines", "missing", "dust", "stains", "tears"):
        for seed in range(6):
            damaged, truth = render_damage(face, kind, np.random.default_rng(seed))
            assert truth.any(), (kind, seed)
            assert (np.abs(damaged - face).max(axis=2)[truth] > VISIBLE).all()
            if kind == "tears":
                assert truth[0].any() or truth[-1].any() or truth[:, 0].any() or truth[:, -1].any()
    paper = np.full((64, 64, 3), 0.97, np.float32)  # faint bright hairlines on white paper barely show
    unlabelled = 0
    for seed in range(20):
        damaged, truth = render_damage(paper, "hairlines", np.random.default_rng(seed))
        unlabelled += int((np.abs(damaged - paper).max(axis=2)[~truth] > 0.005).sum())
        assert not truth[np.abs(damaged - paper).max(axis=2) <= VISIBLE].any()
    assert unlabelled > 0


def _tiny_prepared_folder(folder):
    """Six 128 px crops of one example face as `faceheal prepare` writes them: two val, four train."""
    import cv2

    folder.mkdir()
    face = cv2.resize(read_rgb(EXAMPLES / "aligned" / "bopbtl_old_c.png"), (128, 128), interpolation=cv2.INTER_AREA)
    np.save(folder / "images.npy", np.stack([np.roll(face, i * 5, axis=1) for i in range(6)]))
    np.save(folder / "labels.npy", np.full((6, 128, 128), 255, np.uint8))  # as `faceheal prepare` writes: unknown
    items = [{"source": f"{i}.png", "split": "val" if i < 2 else "train", "labels": "none"} for i in range(6)]
    (folder / "index.json").write_text(json.dumps({"items": items}))
    return folder


def test_damage_training_runs_resumes_and_keeps_the_best(tmp_path):
    data = _tiny_prepared_folder(tmp_path / "prep")
    cfg = DamageTrainConfig(data=str(data), out=str(tmp_path / "run"), size=64, batch_size=4, steps=3, val_count=2)
    result = DamageTrainer(cfg).run()
    assert result["step"] == 3 and 0 <= result["f1"]["scratches"] <= 1
    assert (tmp_path / "run" / "damage.pt").is_file()
    assert not (tmp_path / "run" / "checkpoints").exists()
    again = DamageTrainer(DamageTrainConfig(**{**cfg.__dict__, "steps": 5, "keep_checkpoints": True}))
    assert again.resume() and again.step == 3
    assert again.run()["step"] == 5
    assert load_damage_net(tmp_path / "run" / "damage.pt")[1]["step"] in (3, 5)
    kept = sorted((tmp_path / "run" / "checkpoints").glob("*.pt"))  # for tools/select_damage_checkpoint.py
    assert [p.name for p in kept] == ["step000005.pt"] and load_damage_net(kept[0])[1]["step"] == 5


def test_damage_training_with_small_faces_validates_their_false_alarms(tmp_path):
    data = _tiny_prepared_folder(tmp_path / "prep")
    cfg = DamageTrainConfig(data=str(data), out=str(tmp_path / "run"), size=64, batch_size=4, steps=2, val_count=2,
                            small_share=1.0)
    trainer = DamageTrainer(cfg)
    assert len(trainer.val_small) == 1 and trainer.val_small[0].shape == (192, 192, 3)
    assert 0 <= trainer.run()["small_faces_flagged_percent"] <= 100


def test_damage_training_with_ema_saves_the_average_and_resumes_it(tmp_path):
    data = _tiny_prepared_folder(tmp_path / "prep")
    cfg = DamageTrainConfig(data=str(data), out=str(tmp_path / "run"), size=64, batch_size=4, steps=30, val_count=2,
                            lr=1e-2, ema=0.9, keep_checkpoints=True)
    trainer = DamageTrainer(cfg)
    trainer.run()
    saved = load_damage_net(tmp_path / "run" / "checkpoints" / "step000030.pt")[0].float().state_dict()
    ema, raw = trainer.ema.state_dict(), trainer.model.state_dict()
    name = "head.2.weight"
    assert torch.allclose(saved[name], ema[name].half().float())  # the average is what is saved...
    assert not torch.allclose(ema[name], raw[name])  # ...and it is not the weights themselves
    again = DamageTrainer(DamageTrainConfig(**{**cfg.__dict__, "steps": 31}))
    assert again.resume() and torch.equal(again.ema.state_dict()[name], ema[name])


def test_auto_falls_back_to_classical_and_learned_insists(monkeypatch, tmp_path):
    monkeypatch.setattr("faceheal.masks.learned.DEFAULT_DAMAGE_WEIGHTS", tmp_path / "absent.pt")
    monkeypatch.setattr(damage_module, "_LEARNED", {})
    img = np.full((120, 120, 3), 0.4, np.float32)
    img[60, 10:110] = 1.0
    auto = detect_damage(img, DamageSettings(detector="auto"))
    classical = detect_damage(img, DamageSettings(detector="classical"))
    np.testing.assert_array_equal(auto, classical)
    with pytest.raises(WeightsError):
        detect_damage(img, DamageSettings(detector="learned"))


@pytest.mark.skipif(not DEFAULT_DAMAGE_WEIGHTS.is_file(), reason="no shipped damage detector weights")
def test_shipped_detector_finds_rendered_damage_on_faces_it_never_saw():
    """The shipped aligned examples (not in training), their painted strokes filled in first: rendered
    scratches and missing areas are found, and little else is flagged."""
    import cv2

    settings = DamageSettings(detector="learned")
    rng = np.random.default_rng(7)
    for name in ("bopbtl_old_c.png", "bopbtl_old_g.png"):
        painted = read_rgb(EXAMPLES / "aligned" / name)
        strokes = cv2.imread(str(EXAMPLES / "aligned_masks" / name), cv2.IMREAD_GRAYSCALE) > 127
        strokes = cv2.dilate(strokes.astype(np.uint8), np.ones((5, 5), np.uint8))
        face = cv2.inpaint(painted, strokes, 5, cv2.INPAINT_TELEA).astype(np.float32) / 255
        before = detect_damage(face, settings)
        scores = {kind: [] for kind in ("scratches", "missing")}
        for kind in scores:
            for _ in range(4):
                damaged, truth = render_damage(face, kind, rng)
                found = detect_damage(damaged, settings) & ~before
                scores[kind].append(f1_within(found, truth)[2])
        assert before.mean() < 0.05, (name, before.mean())
        assert np.mean(scores["scratches"]) > 0.6, (name, scores)
        assert np.mean(scores["missing"]) > 0.6, (name, scores)


@pytest.mark.skipif(not DEFAULT_DAMAGE_WEIGHTS.is_file(), reason="no shipped damage detector weights")
def test_detector_precision_bf16_finds_what_fp32_finds_and_auto_is_the_calibrated_fp32():
    """bf16 autocast (asked for) flips few mask pixels; `auto` is fp32, the arithmetic the per-face
    decision was calibrated on; an unknown name is refused."""
    from faceheal.masks.learned import detector_precision

    assert detector_precision("fp32") == "fp32" and detector_precision("bf16") == "bf16"
    assert detector_precision("auto") == "fp32"
    with pytest.raises(ValueError):
        detector_precision("fp16")
    face = read_rgb(EXAMPLES / "aligned" / "bopbtl_old_c.png").astype(np.float32) / 255
    damaged, _ = render_damage(face, "scratches", np.random.default_rng(3))
    fp32 = LearnedDamageDetector(precision="fp32").mask(damaged, 0.9)
    bf16 = LearnedDamageDetector(precision="bf16").mask(damaged, 0.9)
    differ = fp32 != bf16  # measured: 2-4 % of the flagged pixels, nearly all on the flags' edges
    assert fp32.any() and differ.sum() < 0.06 * fp32.sum()


@pytest.mark.skipif(not DEFAULT_DAMAGE_WEIGHTS.is_file(), reason="no shipped damage detector weights")
def test_shipped_detector_carries_its_per_face_decision_and_restore_reports_it(tmp_path):
    """The decision calibrated for the shipped detector travels in its weights; restore reports each
    face's probability of damage, and a clean photo comes back as it was."""
    import json

    from typer.testing import CliRunner

    from faceheal.cli import app
    from faceheal.masks.damage import damage_decision
    from tests.conftest import write_png

    decision = damage_decision("learned")
    assert decision is not None and 0 < decision.threshold < 1
    import cv2

    painted = read_rgb(EXAMPLES / "aligned" / "bopbtl_old_c.png")
    strokes = cv2.imread(str(EXAMPLES / "aligned_masks" / "bopbtl_old_c.png"), cv2.IMREAD_GRAYSCALE) > 127
    clean = cv2.inpaint(painted, cv2.dilate(strokes.astype(np.uint8), np.ones((5, 5), np.uint8)), 5, cv2.INPAINT_TELEA)
    write_png(tmp_path / "in" / "face.png", clean)
    r = CliRunner().invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--aligned",
                                 "--model", "telea", "--report", str(tmp_path / "r.jsonl")])
    assert r.exit_code == 0, r.output
    [line] = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert line["status"] == "unchanged" and 0 <= line["faces"][0]["damage_probability"] < decision.threshold
    assert (tmp_path / "out" / "face.png").read_bytes() == (tmp_path / "in" / "face.png").read_bytes()


def test_restore_reports_the_decision_on_the_rest_of_the_photo(tmp_path):
    """Flags outside every face are judged as one more region; the report says how, so a user can see
    why a photo's background or clothes were repainted (or left). The first scratched portrait has
    cracks beside the face, in the curtain: the rest is judged damaged and repaired."""
    import json

    from typer.testing import CliRunner

    from faceheal.cli import app
    from faceheal.masks.damage import damage_decision

    r = CliRunner().invoke(app, ["restore", str(EXAMPLES / "photos" / "bopbtl_a.png"), "-o", str(tmp_path / "out"),
                                 "--model", "telea", "--report", str(tmp_path / "r.jsonl")])
    assert r.exit_code == 0, r.output
    [line] = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert line["rest_damage_probability"] >= damage_decision("learned").threshold
    assert line["pixels_changed"] > 0


def test_jewellery_is_drawn_shaded_with_a_shadow_unlike_flat_dust():
    from faceheal.train.negatives import NEGATIVE_KINDS, hard_negative

    assert "jewellery" in NEGATIVE_KINDS  # so benchmarks/eval_damage.py reports it and training draws it
    grey = np.full((128, 128, 3), 0.4, np.float32)
    for seed in range(12):
        out = hard_negative(grey, np.random.default_rng(seed), "jewellery")
        assert out.shape == grey.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        luma = out.mean(-1)
        drawn = np.abs(luma - 0.4) > 0.02
        assert drawn.sum() >= 8  # something was drawn
        assert (luma < 0.38).any()  # a shadow (or a dark-lit side) beside the bright shape
        assert luma[drawn].std() > 0.03  # shaded, not one flat colour as dust and paint are
