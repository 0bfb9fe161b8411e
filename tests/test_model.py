"""The two-stage generator on its tiny config: shapes, composition, mask-awareness, training, weights."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from faceheal.errors import WeightsError
from faceheal.model.blocks import MaskAwareAttention, push_pull_fill
from faceheal.model.generator import GeneratorConfig, TwoStageGenerator, load_generator, save_generator
from faceheal.model.semantics import NUM_CLASSES


def _batch(b=2, s=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, s, s, generator=g) * 2 - 1
    hole = (torch.rand(b, 1, s, s, generator=g) > 0.6).float()
    return x, hole


def test_shapes_and_composition_keep_known_pixels():
    torch.manual_seed(0)
    model = TwoStageGenerator(GeneratorConfig.tiny()).eval()
    x, hole = _batch()
    out = model(x, hole)
    assert out["layout"].shape == (2, NUM_CLASSES, 32, 32)
    assert out["composed"].shape == x.shape
    assert [o.shape[-1] for o in out["outputs"]] == [16, 32, 64]
    known = hole == 0
    assert torch.equal(out["composed"][known.expand_as(x)], x[known.expand_as(x)])


def test_output_does_not_depend_on_what_was_under_the_hole():
    torch.manual_seed(0)
    model = TwoStageGenerator(GeneratorConfig.tiny()).eval()
    x, hole = _batch()
    y = x.clone()
    y[hole.expand_as(y) > 0] = 0.77  # different garbage in the hole
    a, b = model(x, hole)["composed"], model(y, hole)["composed"]
    torch.testing.assert_close(a, b)


def test_mask_aware_attention_reads_only_known_positions():
    torch.manual_seed(0)
    attn = MaskAwareAttention(8, heads=2)
    torch.nn.init.normal_(attn.proj.weight)
    x = torch.randn(1, 8, 4, 4)
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., :2, :] = 1  # top half is a hole
    y = attn(x, hole)
    torch.testing.assert_close(y[..., 2:, :], x[..., 2:, :])  # known tokens stay as they are
    other_hole = x.clone()
    other_hole[..., 0, 0] += 3 * torch.randn(1, 8)  # change one hole token
    y2 = attn(other_hole, hole)
    # every other hole token is unaffected: holes read from known tokens only
    keep = torch.ones(4, 4, dtype=torch.bool)
    keep[0, 0] = False
    torch.testing.assert_close(y2[..., keep], y[..., keep])
    known_changed = x.clone()
    known_changed[..., 3, 3] += 3 * torch.randn(1, 8)  # change one known token
    assert not torch.allclose(attn(known_changed, hole)[..., :2, :], y[..., :2, :])


def test_push_pull_fill_keeps_known_and_fills_smoothly():
    img = torch.linspace(-1, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32).contiguous()
    known = torch.ones(1, 1, 32, 32)
    known[..., 10:20, 10:20] = 0
    filled = push_pull_fill(img * known, known)
    torch.testing.assert_close(filled * known, img * known)
    assert (filled[..., 10:20, 10:20] - img[..., 10:20, 10:20]).abs().max() < 0.3


def test_learning_rate_warms_up_holds_then_decays_to_5_percent():
    from faceheal.train.loop import TrainConfig, lr_factor

    cfg = TrainConfig(data="-", out="-", warmup_steps=10, decay_from=100, steps=200)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == 1.0
    assert lr_factor(50, cfg) == 1.0 and lr_factor(100, cfg) == 1.0
    assert lr_factor(150, cfg) == pytest.approx(0.525) and lr_factor(200, cfg) == pytest.approx(0.05)
    assert lr_factor(500, TrainConfig(data="-", out="-")) == 1.0


def _prepared(folder):
    """A tiny prepared folder: 12 crops of 64 px, 2 of them held out ('val'), half with labels."""
    folder.mkdir()
    n, s = 12, 64
    yy, xx = np.mgrid[:s, :s]
    images = np.stack([(np.stack([xx * 4 % 256, yy * 4 % 256, (xx + yy) * 2 % 256], -1)).astype(np.uint8)
                       for _ in range(n)])
    labels = np.where(np.hypot(yy - 32, xx - 32) < 20, 1, 0).astype(np.uint8)[None].repeat(n, 0)
    np.save(folder / "images.npy", images)
    np.save(folder / "labels.npy", labels)
    items = [{"source": f"{i}.png", "split": "val" if i < 2 else "train",
              "labels": "ground-truth" if i % 2 else "none"} for i in range(n)]
    (folder / "index.json").write_text(json.dumps({"items": items}))
    return folder


def _config(tmp_path, **kw):
    from faceheal.train.loop import TrainConfig

    base = dict(data=str(tmp_path / "prep"), out=str(tmp_path / "run"), model="tiny", size=64, batch_size=4, steps=6,
                val_count=2, adv_weight=0.1, perceptual_weight=0.5, checkpoint_minutes=100)
    return TrainConfig(**{**base, **kw})


def test_tiny_model_trains_with_every_loss_and_checkpoints(tmp_path):
    from faceheal.train.loop import Trainer

    _prepared(tmp_path / "prep")
    trainer = Trainer(_config(tmp_path))
    first = trainer.train_step()
    result = trainer.run()
    assert result["step"] == 6 and np.isfinite(result["val_psnr"])
    assert {"l1", "ssim", "adv_g", "lpips"} <= set(first)
    model, meta = load_generator(tmp_path / "run" / "generator.pt")
    assert meta["step"] == 6 and model.config == GeneratorConfig.tiny()


def test_resume_continues_the_step_and_the_learning_rate_given(tmp_path):
    from faceheal.train.loop import Trainer

    _prepared(tmp_path / "prep")
    cfg = _config(tmp_path)
    Trainer(cfg).run()
    resumed = Trainer(_config(tmp_path, steps=8, decay_from=6))
    assert resumed.resume() and resumed.step == 6
    assert resumed.run()["step"] == 8
    assert resumed.opt.param_groups[0]["lr"] == pytest.approx(cfg.lr * 0.525)  # the last step, 7, is half-way down
    again = Trainer(_config(tmp_path, steps=9, lr=cfg.lr / 4))  # a new --lr on --resume is used
    assert again.resume() and again.run()["step"] == 9
    assert again.opt.param_groups[0]["lr"] == pytest.approx(cfg.lr / 4)


def test_a_pack_carries_the_held_out_crops_and_trains_the_same_way(tmp_path):
    from faceheal.train.data import PreparedFaces, pack
    from faceheal.train.loop import Trainer

    data = _prepared(tmp_path / "prep")
    info = pack(data, tmp_path / "pack", size=64)
    assert info["count"] == 10 and info["held_out"] == 2  # held-out crops travel for the curve, still held out
    assert len(PreparedFaces(tmp_path / "pack", "train")) == 10 and len(PreparedFaces(tmp_path / "pack", "val")) == 2
    packed = Trainer(_config(tmp_path, data=str(tmp_path / "pack"), out=str(tmp_path / "run2"), steps=2, workers=1,
                             adv_weight=0.0, perceptual_weight=0.0))
    assert packed.run()["step"] == 2  # batches built by worker processes
    fewer = pack(data, tmp_path / "pack1", size=64, held_out_limit=1, quality=60)
    assert fewer["count"] == 10 and fewer["held_out"] == 1 and fewer["mib"] <= info["mib"]
    assert len(PreparedFaces(tmp_path / "pack1", "val")) == 1


def test_held_out_crops_split_into_validation_and_test(tmp_path):
    """Checkpoints and thresholds are chosen on 'val'; 'test' is only reported. Folders prepared before
    'val' existed (every held-out crop marked 'test') are divided by the same hash."""
    from collections import Counter

    from faceheal.train.data import PreparedFaces
    from faceheal.train.prepare import held_out_half, split_of

    counts = Counter(split_of(f"face_{i}.jpg") for i in range(20000))
    assert 0.04 < (counts["val"] + counts["test"]) / 20000 < 0.06 and abs(counts["val"] - counts["test"]) < 150
    names = [f"{i}.png" for i in range(40)]
    np.save(tmp_path / "images.npy", np.zeros((40, 8, 8, 3), np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros((40, 8, 8), np.uint8))
    items = [{"source": n, "split": "test" if i < 20 else "train", "labels": "none"} for i, n in enumerate(names)]
    (tmp_path / "index.json").write_text(json.dumps({"items": items}))
    val, test = PreparedFaces(tmp_path, "val"), PreparedFaces(tmp_path, "test")
    assert len(val) + len(test) == 20 and len(val) > 0 and len(test) > 0
    assert set(val.indices).isdisjoint(test.indices)
    assert all(held_out_half(names[i]) == "val" for i in val.indices)


def test_weights_round_trip_and_checksum_is_enforced(tmp_path):
    model = TwoStageGenerator(GeneratorConfig.tiny())
    path = tmp_path / "g.pt"
    save_generator(model, path, meta={"note": "test"})
    loaded, meta = load_generator(path)
    assert meta == {"note": "test"}
    x, hole = _batch()
    torch.testing.assert_close(model.eval()(x, hole)["composed"], loaded(x, hole)["composed"], atol=2e-2, rtol=0)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="SHA-256"):
        load_generator(path)
    with pytest.raises(WeightsError, match="not found"):
        load_generator(tmp_path / "missing.pt")


def test_default_config_stays_within_the_cpu_budget():
    from torch.utils.flop_counter import FlopCounterMode

    model = TwoStageGenerator(GeneratorConfig.default())
    x, hole = _batch(1, 256)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model(x, hole, prior=x)
    assert fc.get_total_flops() / 1e9 < 15  # both stages together, per 256 crop


def test_default_model_requires_its_classical_prior():
    from faceheal.model.generator import prior_tensor

    model = TwoStageGenerator(GeneratorConfig.default()).eval()
    x, hole = _batch(1, 256)
    with pytest.raises(ValueError, match="telea"):
        model(x, hole)
    prior = prior_tensor(model, x, hole)
    assert prior.shape == x.shape
    with torch.inference_mode():
        out = model(x, hole, prior)
    # at initialisation stage 2 adds nothing: the output is the classical fill
    torch.testing.assert_close(out["composed"], x * (1 - hole) + prior * hole, atol=1e-5, rtol=0)


def test_discriminator_warms_up_before_it_steers_the_generator(tmp_path):
    """Before --adv-start the discriminator learns (its weights move) but the generator gets no
    adversarial term; from --adv-start it does. The validation curve reports LPIPS and sharpness."""
    import torch

    from faceheal.train.loop import Trainer

    _prepared(tmp_path / "prep")
    trainer = Trainer(_config(tmp_path, adv_start=2, d_lr=1e-3))
    before = [p.detach().clone() for p in trainer.adversary.disc.parameters()]
    first = trainer.train_step()
    assert "adv_g" not in first and "adv_d" in first
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, trainer.adversary.disc.parameters()))
    assert trainer.adversary.opt.param_groups[0]["lr"] == 1e-3
    trainer.train_step()
    assert "adv_g" in trainer.train_step()
    metrics = trainer.validate()
    assert 0 <= metrics["val_lpips"] < 1 and metrics["val_sharpness"] > 0
