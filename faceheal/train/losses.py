"""Training objectives: hole-weighted L1 at every output scale, SSIM, layout cross-entropy and hinge
adversarial terms; the perceptual term is LPIPS (AlexNet, shipped weights, faceheal/lpips.py), there
being no VGG weights offline.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from faceheal.model.semantics import IGNORE


def hole_weighted_l1(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor, hole_weight: float = 6.0) -> torch.Tensor:
    """Mean L1, hole pixels weighted `hole_weight` times the known ones (known ones still matter for
    the multi-scale outputs, whose known regions feed the next scale)."""
    w = 1 + (hole_weight - 1) * hole
    return ((pred - target).abs() * w).sum() / (w.sum() * pred.shape[1])


def multiscale_l1(outputs: list[torch.Tensor], target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """L1 of every scale's output against the target at that scale; coarser scales count half as much."""
    total, weight = 0.0, 0.0
    for i, out in enumerate(reversed(outputs)):
        w = 0.5 ** i
        if out.shape[-2:] != target.shape[-2:]:
            t = F.interpolate(target, size=out.shape[-2:], mode="area")
            h = F.interpolate(hole, size=out.shape[-2:], mode="area")
        else:
            t, h = target, hole
        total = total + w * hole_weighted_l1(out, t, h)
        weight += w
    return total / weight


def _gaussian_window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004, Gaussian window) of two (B, C, H, W) batches; per image (B,)."""
    c = a.shape[1]
    g = _gaussian_window(window, sigma, a.device, a.dtype)
    kx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(x):
        return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    s_aa = blur(a * a) - mu_a ** 2
    s_bb = blur(b * b) - mu_b ** 2
    s_ab = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (s_aa + s_bb + c2)
    return (num / den).mean(dim=(1, 2, 3))


def layout_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                         class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the layout logits (B, K, h, w) against labels (B, H, W) (255 = unknown),
    labels nearest-downsampled to the logits' size; `weights` (B,) scales each sample (pseudo-labels
    count less than ground truth); `class_weights` (K,) lifts small parts (eyes, brows, lips)."""
    if labels.shape[-2:] != logits.shape[-2:]:
        labels = F.interpolate(labels[:, None].float(), size=logits.shape[-2:], mode="nearest")[:, 0].long()
    per_pixel = F.cross_entropy(logits, labels.long(), weight=class_weights, ignore_index=IGNORE,
                                reduction="none")  # (B, h, w)
    valid = (labels != IGNORE).float()
    if weights is not None:
        valid = valid * weights[:, None, None]
    return (per_pixel * valid).sum() / valid.sum().clamp_min(1.0)


def hinge_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()
