"""PSNR and SSIM: one definition for training (torch batches, the SSIM loss and the validation curve)
and for every evaluation (numpy images), so a number in a training log and in a report mean the same.

SSIM follows Wang et al. 2004: Gaussian window 11, sigma 1.5, C1 = (0.01 L)^2, C2 = (0.03 L)^2, over
the whole image with the border mirrored (edge pixel repeated, OpenCV's BORDER_REFLECT), averaged over
channels and pixels.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Per-image PSNR of two (B, C, H, W) batches."""
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-12)
    return 10 * torch.log10(data_range ** 2 / mse)


def _mirror(x: torch.Tensor, p: int) -> torch.Tensor:
    """Pad the last two dimensions by `p`, the edge pixel repeated (…cba|abc…|…xyz|zyx…)."""
    x = torch.cat([x[..., :p].flip(-1), x, x[..., -p:].flip(-1)], -1)
    return torch.cat([x[..., :p, :].flip(-2), x, x[..., -p:, :].flip(-2)], -2)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of two (B, C, H, W) batches; per image (B,)."""
    c, p = a.shape[1], window // 2
    x = torch.arange(window, device=a.device, dtype=a.dtype) - p
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    kx, ky = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(z):
        return F.conv2d(F.conv2d(_mirror(z, p), kx, groups=c), ky, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    s_aa, s_bb, s_ab = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (s_aa + s_bb + c2)
    return (num / den).mean(dim=(1, 2, 3))


def _batch(img: np.ndarray) -> torch.Tensor:
    img = np.asarray(img, np.float64)
    return torch.from_numpy(img if img.ndim == 2 else np.moveaxis(img, -1, 0)).reshape(1, -1, *img.shape[:2])


def image_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two float images in [0, 1] ((H, W) or (H, W, C)), in float64."""
    return float(psnr(_batch(a), _batch(b), 1.0)[0])


def image_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two float images in [0, 1] ((H, W) or (H, W, C)), in float64."""
    return float(ssim(_batch(a), _batch(b), 1.0)[0])


def hole_sharpness(image: torch.Tensor, hole: torch.Tensor, ring: int = 8) -> torch.Tensor:
    """No-reference sharpness of a repair: Laplacian energy of the luma inside the hole (its 1 px rim
    left out) over that of a `ring`-pixel band of known pixels around it; per image (B,), NaN where
    either side is empty. Near 1: the repair is as detailed as its surroundings; an L1-trained fill of
    a large hole scores well below 1 (a soft average), a noisy one above.

    image (B, 3, H, W) in any range, hole (B, 1, H, W) in {0, 1}."""
    luma = (0.299 * image[:, 0:1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3]).float()
    lap = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=luma.dtype, device=luma.device).view(1, 1, 3, 3)
    energy = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), lap) ** 2
    hole = (hole > 0.5).float()
    inner = 1 - F.max_pool2d(1 - hole, 3, 1, 1)  # the hole eroded by 1 px
    grown = F.max_pool2d(hole, 2 * ring + 1, 1, ring)
    band = (grown - F.max_pool2d(hole, 3, 1, 1)).clamp_min(0)  # known pixels 2..ring px from the hole
    inside = (energy * inner).sum(dim=(1, 2, 3)) / inner.sum(dim=(1, 2, 3))
    outside = (energy * band).sum(dim=(1, 2, 3)) / band.sum(dim=(1, 2, 3))
    return inside / outside


def hole_grain(image: np.ndarray, hole: np.ndarray, ring: int = 8) -> float:
    """Grain of a repair against its surroundings: median |Laplacian| of the luma inside the hole (its
    1 px rim left out) over that in the same band as `hole_sharpness`. A median is moved by the
    fine noise every pixel has, hardly by the few edges (lashes, hair, a lip line) that dominate
    Laplacian *energy*; so 1 means the repair carries the photo's own grain, at its own fineness.

    image (H, W, 3) in any range, hole (H, W) bool. NaN where either side is empty."""
    import cv2

    from faceheal.grain import core_and_band
    from faceheal.images import LUMA

    luma = image.astype(np.float32) @ np.asarray(LUMA, np.float32)
    lap = np.abs(cv2.Laplacian(luma, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE))
    inner, band = core_and_band(hole, ring, gap=1)
    if not inner.any() or not band.any():
        return float("nan")
    return float(np.median(lap[inner]) / max(float(np.median(lap[band])), 1e-12))
