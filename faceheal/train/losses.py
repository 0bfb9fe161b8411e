"""Training objectives: hole-weighted L1 at every output scale, layout cross-entropy and hinge
adversarial terms; the perceptual term is LPIPS (AlexNet, shipped weights, faceheal/lpips.py), there
being no VGG weights offline; the SSIM term is faceheal/metrics.py's, the one evaluation reports.
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


def perceptual_net(weight: float, device):
    """The shipped LPIPS (AlexNet) net on `device`, for a trainer's perceptual term (`weight` > 0: then
    its weights must be shipped) and its validation curve's LPIPS; None when absent and not needed."""
    from faceheal.lpips import load_lpips

    net = load_lpips()  # frozen, in eval mode
    if net is None and weight > 0:
        raise ValueError("--perceptual-weight needs the shipped LPIPS weights (lpips_alexnet.pt)")
    return None if net is None else net.to(device)


def hinge_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()
