"""The texture inpainter for damage away from faces: windows that cover every damaged pixel, a
network that starts as the face generator's texture stage, repairs that change damaged pixels only,
and a trainer that runs and keeps its best held-out weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceheal.model.generator import GeneratorConfig, TwoStageGenerator
from faceheal.model.tiles import TileConfig, TileInpainterNet, from_face_texture, inpaint_windows, load_tile_net, save_tile_net
from faceheal.model.windows import windows


def _damage(shape=(300, 410), seed=0):
    rng = np.random.default_rng(seed)
    hole = np.zeros(shape, bool)
    hole[0:3, :] = True  # along the top border
    hole[:, 405:] = True  # along the right border
    for _ in range(20):
        y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        hole[y:y + 4, x:x + 9] = True
    return hole


def _photo_folder(tmp_path, seed: int):
    """Two noise photos in each of the 'train' and 'val' splits (split by file name, as prepare does)."""
    import cv2

    from faceheal.train.prepare import split_of

    rng = np.random.default_rng(seed)
    folder = tmp_path / "photos"
    folder.mkdir()
    made, i = {"train": 0, "val": 0}, 0
    while min(made.values()) < 2:
        name = f"p{i}.png"
        i += 1
        if split_of(name) in made:
            cv2.imwrite(str(folder / name), (rng.random((160, 200, 3)) * 255).astype(np.uint8))
            made[split_of(name)] += 1
    return folder


@pytest.mark.parametrize("core,context", [(64, 8), (100, 32), (1024, 64)])
def test_windows_cover_every_damaged_pixel_once(core, context):
    hole = _damage()
    boxes = windows(hole, core, context)
    count = np.zeros(hole.shape, int)
    for x0, y0, x1, y1 in boxes:
        assert 0 < x1 - x0 <= core and 0 < y1 - y0 <= core
        count[y0:y1, x0:x1] += 1
    assert (count[hole] == 1).all()
    assert boxes == sorted(boxes, key=lambda b: (b[1] // core, b[0] // core))  # grid cells in raster order
    assert windows(np.zeros((5, 5), bool), core, context) == []


def test_the_tile_net_starts_as_the_face_texture_stage_with_no_layout():
    """Dropping the stem's layout channels is the same as feeding the face network a zero layout."""
    torch.manual_seed(0)
    gen = TwoStageGenerator(GeneratorConfig.tiny())
    for p in gen.texture.parameters():  # make the zero-initialised output layers matter
        p.data.normal_(0, 0.1)
    c = gen.config
    net = from_face_texture(gen.texture, c.texture_widths, c.bottleneck_blocks, c.attention_heads, c.num_classes)
    x, prior = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    hole = (torch.rand(2, 1, 32, 32) > 0.7).float()
    masked = x * (1 - hole)
    face = gen.texture(masked, hole, torch.zeros(2, c.num_classes, 32, 32), masked + prior * hole)[-1]
    tile = net(x, hole, prior)["outputs"][-1]
    torch.testing.assert_close(tile, face, rtol=1e-4, atol=1e-5)


def test_inpaint_windows_changes_damaged_pixels_only_and_saves_round_trip(tmp_path):
    torch.manual_seed(0)
    net = TileInpainterNet(TileConfig.tiny()).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    rng = np.random.default_rng(1)
    image = rng.random((150, 203, 3)).astype(np.float32)
    hole = _damage((150, 203))
    out = inpaint_windows(net, image, hole, core=48, context=8, batch_size=3)
    np.testing.assert_array_equal(out[~hole], image[~hole])
    assert np.abs(out[hole] - image[hole]).mean() > 0.01 and np.isfinite(out).all()
    save_tile_net(net, tmp_path / "t.pt")
    again, _ = load_tile_net(tmp_path / "t.pt")
    out2 = inpaint_windows(again, image, hole, core=48, context=8, batch_size=3)
    assert np.abs(out2 - out).max() < 0.02  # fp16 weights on disk


def test_texture_trainer_runs_and_keeps_the_best_held_out_weights(tmp_path):
    from faceheal.train.tiles import TileTrainConfig, TileTrainer

    folder = _photo_folder(tmp_path, 0)
    trainer = TileTrainer(TileTrainConfig(backgrounds=(str(folder),), out=str(tmp_path / "run"), size=32, batch_size=2,
                                          steps=3, tiny=True, val_count=4, checkpoint_minutes=100))
    result = trainer.run()
    assert result["step"] == 3 and np.isfinite(result["val_psnr"]) and "val_psnr_telea" in result
    net, meta = load_tile_net(tmp_path / "run" / "texture.pt")
    assert meta["step"] == 3 and net.config == TileConfig.tiny()
    resumed = TileTrainer(TileTrainConfig(backgrounds=(str(folder),), out=str(tmp_path / "run"), size=32, batch_size=2,
                                          steps=4, tiny=True, val_count=4, checkpoint_minutes=100))
    assert resumed.resume() and resumed.step == 3


def test_texture_trainer_with_the_perceptual_term_keeps_every_state_and_logs_lpips_and_sharpness(tmp_path):
    from faceheal.lpips import load_lpips
    from faceheal.train.tiles import TileTrainConfig, TileTrainer

    if load_lpips() is None:
        pytest.skip("the shipped LPIPS weights are absent")
    folder = _photo_folder(tmp_path, 1)
    cfg = dict(backgrounds=(str(folder),), out=str(tmp_path / "run"), size=32, batch_size=2, tiny=True, val_count=4,
               checkpoint_minutes=100, keep_checkpoints=True)
    trainer = TileTrainer(TileTrainConfig(steps=2, perceptual_weight=0.5, **cfg))
    losses = trainer.next_step()
    assert "lpips" in losses and np.isfinite(losses["lpips"])
    result = trainer.run()
    assert 0 <= result["val_lpips"] < 1 and np.isfinite(result["val_sharpness"]) and result["val_sharpness_truth"] > 0
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.pt")) == ["step000002.pt"]
    plain = TileTrainer(TileTrainConfig(steps=1, **{**cfg, "out": str(tmp_path / "plain")}))
    assert "lpips" not in plain.next_step()  # the term only when asked for


def test_texture_trainer_adversarial_term_warms_the_discriminator_up_first_and_resumes_it(tmp_path):
    from faceheal.train.tiles import TileTrainConfig, TileTrainer

    folder = _photo_folder(tmp_path, 2)
    cfg = dict(backgrounds=(str(folder),), out=str(tmp_path / "run"), size=32, batch_size=2, tiny=True, val_count=4,
               checkpoint_minutes=100, adv_weight=0.05, adv_start=2, d_lr=1e-3)
    trainer = TileTrainer(TileTrainConfig(steps=3, **cfg))
    before = [p.detach().clone() for p in trainer.adversary.disc.parameters()]
    first = trainer.next_step()
    assert "adv_d" in first and "adv_g" not in first  # warm-up: the discriminator learns, does not steer yet
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.adversary.disc.parameters()))
    trainer.next_step()
    third = trainer.next_step()
    assert "adv_g" in third and np.isfinite(third["adv_g"])
    trainer.checkpoint()
    resumed = TileTrainer(TileTrainConfig(steps=4, **cfg))
    assert resumed.resume() and resumed.step == 3
    for a, b in zip(trainer.adversary.disc.state_dict().values(), resumed.adversary.disc.state_dict().values()):
        assert torch.equal(a, b)
    plain = TileTrainer(TileTrainConfig(steps=1, **{**cfg, "adv_weight": 0.0, "out": str(tmp_path / "plain")}))
    assert plain.adversary is None and "adv_d" not in plain.next_step()


def test_the_shipped_texture_inpainter_beats_opencv_away_from_faces():
    """The shipped weights on strokes painted over the Solvay photograph's background and clothes (not
    a training photo): better than OpenCV Telea on the damaged pixels, through the same windows restore
    uses."""
    from faceheal.images import read_image, to_float_rgb
    from faceheal.masks.synthetic import synthetic_mask
    from faceheal.model.classical import classical_fill
    from faceheal.model.weights import TEXTURE_NET, shipped
    from faceheal.metrics import image_psnr
    from tests.conftest import EXAMPLES

    net, _ = load_tile_net(shipped(TEXTURE_NET))
    photo = to_float_rgb(read_image(EXAMPLES / "photos" / "solvay_1927.jpg").display())
    h, w = photo.shape[:2]
    region = np.ascontiguousarray(photo[h // 2:h // 2 + 320, : 480])  # lower half: suits, chairs, floor
    gains = []
    for seed in range(3):
        hole = synthetic_mask(region.shape[:2], "strokes", (0.05, 0.15), seed)
        damaged = region.copy()
        damaged[hole] = 1.0
        ours = inpaint_windows(net, damaged, hole)
        telea = classical_fill(damaged, hole)
        gains.append(image_psnr(ours[hole][None], region[hole][None]) - image_psnr(telea[hole][None], region[hole][None]))
    assert np.mean(gains) > 0.3, gains


def test_windows_padded_to_the_batch_size_never_take_mirrored_damage_for_known_pixels():
    """A thin strip of damage at the photo's edge, batched with a big window: its window is mirrored out
    to the batch's size, and the mirrored paint must stay hidden (it bled white into such repairs)."""
    from faceheal.model.weights import TEXTURE_NET, shipped

    net, _ = load_tile_net(shipped(TEXTURE_NET))
    rng = np.random.default_rng(0)
    image = np.clip(0.4 + 0.02 * rng.standard_normal((300, 300, 3)), 0, 1).astype(np.float32)
    hole = np.zeros((300, 300), bool)
    hole[:, 294:] = True  # a 6 px strip along the right edge
    hole[40:200, 20:180] = True  # a big block: the batch's windows are padded to its size
    damaged = image.copy()
    damaged[hole] = 1.0
    out = inpaint_windows(net, damaged, hole, core=192, context=32, batch_size=8)
    strip = np.zeros_like(hole)
    strip[:, 294:] = True
    assert abs(float(out[strip].mean()) - 0.4) < 0.05


def test_the_soft_prior_is_the_tile_at_a_face_crops_scale_slightly_off():
    """`--prior soft` trains the detail pass from what a big face's resampled repair looks like: the
    truth's structure and mean colour, without its fine detail."""
    from faceheal.metrics import hole_sharpness
    from faceheal.train.tiles import soft_prior

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    tile = np.clip(np.stack([0.3 + 0.4 * xx, 0.5 + 0.2 * yy, 0.4 + 0 * xx], -1) + rng.normal(0, 0.05, (128, 128, 3)), 0, 1).astype(np.float32)
    soft = soft_prior(tile, rng)
    assert soft.shape == tile.shape and soft.dtype == np.float32
    assert np.abs(soft.mean((0, 1)) - tile.mean((0, 1))).max() < 0.05  # the same picture
    hole = torch.zeros(1, 1, 128, 128)
    hole[..., 32:96, 32:96] = 1
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]
    mixed = tile.copy()
    mixed[32:96, 32:96] = soft[32:96, 32:96]
    assert float(hole_sharpness(t(mixed), hole)[0]) < 0.5 * float(hole_sharpness(t(tile), hole)[0])  # its detail gone


def test_the_detail_pass_starts_from_opencvs_fill_at_the_edge_and_the_soft_copy_deep_in():
    """As restore starts it: a big face's repair is the texture inpainter's near the damage's edge and
    the face model's deeper in (pipeline.face_model_weight), so the training start is mixed the same way."""
    from faceheal.pipeline import FACE_MODEL_DEEP
    from faceheal.train.tiles import detail_start

    hole = np.zeros((100, 100), bool)
    hole[20:80, 20:80] = True
    fill, soft = np.zeros((100, 100, 3), np.float32), np.ones((100, 100, 3), np.float32)
    start = detail_start(fill, soft, hole)
    assert start[21, 50, 0] == 0  # 1 px in: OpenCV's
    assert abs(start[50, 50, 0] - FACE_MODEL_DEEP) < 0.05  # 30 px in: the face model's share
    assert (start[~hole] == 0).all()


def test_texture_trainer_with_the_soft_prior_trains_the_detail_pass(tmp_path):
    from faceheal.train.tiles import TileTrainConfig, TileTrainer

    folder = _photo_folder(tmp_path, 2)
    trainer = TileTrainer(TileTrainConfig(backgrounds=(str(folder),), out=str(tmp_path / "run"), size=32, batch_size=2,
                                          steps=2, tiny=True, val_count=4, checkpoint_minutes=100, prior="soft"))
    result = trainer.run()
    assert "val_psnr_soft" in result and "val_psnr_telea" not in result
    _, meta = load_tile_net(tmp_path / "run" / "texture.pt")
    assert meta["prior"] == "soft"
    with pytest.raises(ValueError, match="prior"):
        TileTrainer(TileTrainConfig(backgrounds=(str(folder),), out=str(tmp_path / "bad"), tiny=True, steps=1, prior="sharp"))


def test_inpaint_windows_can_start_from_the_images_own_hole_pixels():
    """The detail pass: the network starts from the resampled repair the hole already holds, not OpenCV's fill."""
    torch.manual_seed(0)
    net = TileInpainterNet(TileConfig.tiny()).eval()
    rng = np.random.default_rng(3)
    image = rng.random((96, 120, 3)).astype(np.float32)
    hole = np.zeros((96, 120), bool)
    hole[30:60, 40:90] = True
    other = image.copy()
    other[hole] = 0.5  # the same known pixels, another repair in the hole
    a = inpaint_windows(net, image, hole, start="image")
    b = inpaint_windows(net, other, hole, start="image")
    assert np.abs(a - b)[hole].mean() > 1e-3  # what the hole held went in
    np.testing.assert_array_equal(inpaint_windows(net, image, hole), inpaint_windows(net, other, hole))  # OpenCV's: it did not
    np.testing.assert_array_equal(a[~hole], image[~hole])


def test_restore_runs_the_detail_pass_over_a_big_faces_repair_only_where_shipped(tmp_path, portrait):
    """A face over 1.5x its crop's scale, with the detail weights present, gets the detail pass over its
    repair (damaged pixels only); without them, the repair as before. The sidecar's model names them."""
    import cv2

    from conftest import write_png
    from faceheal.faces.detect import MtcnnDetector
    from faceheal.inpainters import GeneratorInpainter
    from faceheal.masks.source import MaskSource
    from faceheal.pipeline import Restorer, RestoreOptions
    from faceheal.sources import expand_inputs

    big = cv2.resize(portrait, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # face about 2.5x the crop's scale
    face = MtcnnDetector().detect(big)[0]
    x0, y0, x1, y1 = (int(v) for v in face.box)
    mask = np.zeros(big.shape[:2], np.uint8)
    cv2.line(mask, (x0 + 20, y0 + 40), (x1 - 20, y1 - 60), 255, 14)
    write_png(tmp_path / "in" / "a.png", big)
    write_png(tmp_path / "m.png", mask)
    torch.manual_seed(0)
    net = TileInpainterNet(TileConfig.tiny()).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    save_tile_net(net, tmp_path / "detail.pt", {"prior": "soft"})
    outs = {}
    for label, detail in (("with", tmp_path / "detail.pt"), ("without", None)):
        gen = GeneratorInpainter(device="cpu", precision="fp32", detail_weights=detail)
        assert gen.detail_pass == (detail is not None)
        assert ("big_faces_detail" in gen.describe()) == (detail is not None)
        [r] = Restorer(gen, MtcnnDetector(), MaskSource(mask_file=tmp_path / "m.png"),
                       RestoreOptions()).run(expand_inputs([str(tmp_path / "in")]), tmp_path / label)
        assert r.status == "ok", r.error
        outs[label] = cv2.imread(str(tmp_path / label / "a.png"))[..., ::-1]
    hole = mask > 0
    np.testing.assert_array_equal(outs["with"][~hole], big[~hole])
    np.testing.assert_array_equal(outs["without"][~hole], big[~hole])
    assert np.abs(outs["with"].astype(int) - outs["without"])[hole].mean() > 1  # the pass ran, over the hole
