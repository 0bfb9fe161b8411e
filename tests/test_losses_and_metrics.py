"""Losses and metrics against closed-form values, so a silent change in any of them shows."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faceheal.metrics import image_psnr as psnr, image_ssim as ssim_np, ssim
from faceheal.train.losses import hinge_d_loss, hinge_g_loss, hole_weighted_l1, layout_cross_entropy


def test_psnr_of_a_known_error():
    a = np.zeros((8, 8, 3))
    assert psnr(a, a + 0.1) == pytest.approx(20.0)  # mse 0.01 -> 10 log10(1 / 0.01)
    assert psnr(a, a + 0.01) == pytest.approx(40.0)


@pytest.mark.parametrize("x, y", [(0.2, 0.2), (0.2, 0.6), (0.9, 0.1)])
def test_ssim_of_flat_images_is_the_luminance_term(x, y):
    """Flat images have no variance: SSIM = (2xy + C1) / (x^2 + y^2 + C1), C1 = (0.01 L)^2."""
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * x * y + c1) / (x * x + y * y + c1)
    a, b = np.full((32, 32, 3), x), np.full((32, 32, 3), y)
    assert ssim_np(a, b) == pytest.approx(expected, rel=1e-6)
    ta, tb = torch.full((1, 3, 32, 32), 2 * x - 1.0), torch.full((1, 3, 32, 32), 2 * y - 1.0)  # [-1, 1], range 2
    c1t = (0.01 * 2.0) ** 2
    xt, yt = 2 * x - 1, 2 * y - 1
    assert float(ssim(ta, tb)[0]) == pytest.approx((2 * xt * yt + c1t) / (xt * xt + yt * yt + c1t), rel=1e-4)


def test_ssim_is_one_for_identical_textured_images_and_lower_for_noise():
    rng = np.random.default_rng(0)
    a = rng.random((48, 48, 3))
    assert ssim_np(a, a) == pytest.approx(1.0)
    noise = rng.normal(0, 1, a.shape)
    light, heavy = ssim_np(a, np.clip(a + 0.05 * noise, 0, 1)), ssim_np(a, np.clip(a + 0.3 * noise, 0, 1))
    assert 0 < heavy < light < 0.99


def test_hole_weighted_l1():
    target = torch.zeros(1, 3, 4, 4)
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., :2, :] = 1  # half the pixels are hole
    assert float(hole_weighted_l1(target + 0.5, target, hole)) == pytest.approx(0.5)  # same error everywhere
    pred = target.clone()
    pred[..., :2, :] = 1.0  # error 1 in the hole only: 6 * 8 / (6 * 8 + 8) of the weight
    assert float(hole_weighted_l1(pred, target, hole)) == pytest.approx(48 / 56)


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert float(hinge_d_loss(real, fake)) == pytest.approx((0 + 0.5) / 2 + (0 + 1.0) / 2)
    assert float(hinge_g_loss(fake)) == pytest.approx(1.0)  # -mean(fake)


def test_layout_cross_entropy_of_uniform_logits_is_log_k():
    k = 19
    logits = torch.zeros(2, k, 8, 8)
    labels = torch.randint(0, k, (2, 8, 8), dtype=torch.uint8)
    assert float(layout_cross_entropy(logits, labels)) == pytest.approx(math.log(k), rel=1e-5)
    labels[0] = 255  # unknown labels do not count
    assert float(layout_cross_entropy(logits, labels)) == pytest.approx(math.log(k), rel=1e-5)


def test_hole_sharpness_closed_forms():
    """A flat repair has no Laplacian energy (0); the same noise inside and around the hole gives a
    ratio near 1; twice the amplitude inside gives 4 (energy is squared); no hole gives NaN."""
    from faceheal.metrics import hole_sharpness

    g = torch.Generator().manual_seed(0)
    noise = torch.rand(4, 3, 96, 96, generator=g)
    hole = torch.zeros(4, 1, 96, 96)
    hole[:, :, 30:66, 30:66] = 1
    flat = noise.clone()
    flat[:, :, 30:66, 30:66] = 0.5
    assert torch.all(hole_sharpness(flat, hole) == 0)
    same = hole_sharpness(noise, hole)
    assert torch.all((same > 0.85) & (same < 1.2))
    loud = 0.5 + (noise - 0.5) * (1 + hole)
    assert torch.allclose(hole_sharpness(loud, hole) / same, torch.full((4,), 4.0), rtol=0.15)
    assert torch.isnan(hole_sharpness(noise, torch.zeros_like(hole))).all()


def test_hole_grain_closed_forms_and_edges_hardly_move_it():
    """A flat repair has no grain (0); the same noise inside and around gives about 1; twice the
    amplitude inside gives 2 (a median of |Laplacian|, not an energy); a few strong edges in the band,
    which dominate Laplacian energy, hardly move it; no hole gives NaN."""
    from faceheal.metrics import hole_grain

    rng = np.random.default_rng(0)
    noise = 0.5 + 0.05 * rng.standard_normal((96, 96, 3)).astype(np.float32)
    hole = np.zeros((96, 96), bool)
    hole[30:66, 30:66] = True
    flat = noise.copy()
    flat[hole] = 0.5
    assert hole_grain(flat, hole) == 0
    assert 0.85 < hole_grain(noise, hole) < 1.15
    loud = noise.copy()
    loud[hole] = 0.5 + 2 * (noise[hole] - 0.5)
    assert 1.7 < hole_grain(loud, hole) < 2.3
    edged = noise.copy()
    edged[24:27, :] = 1.0  # a bright line through the band above the hole
    assert 0.85 < hole_grain(edged, hole) < 1.15
    assert np.isnan(hole_grain(noise, np.zeros_like(hole)))
