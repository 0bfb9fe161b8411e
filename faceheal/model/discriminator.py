"""Discriminator for the adversarial term: a spectrally normalised PatchGAN over (RGB, mask).

The paper trains with WGAN-GP; faceheal uses the hinge loss with spectral normalisation instead (the
stabler choice DESIGN.md allows, and one that needs no gradient-penalty pass: cheaper on CPU).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    def __init__(self, width: int = 32, layers: int = 4):
        super().__init__()
        chans = [4] + [width * 2 ** min(i, 3) for i in range(layers)]
        body = []
        for i in range(layers):
            body += [spectral_norm(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
        self.body = nn.Sequential(*body)
        self.head = spectral_norm(nn.Conv2d(chans[-1], 1, 3, 1, 1))

    def forward(self, rgb: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        # rgb (B, 3, H, W) in [-1, 1], hole (B, 1, H, W) -> patch scores (B, 1, H/2^L, W/2^L)
        return self.head(self.body(torch.cat([rgb, hole], 1)))
