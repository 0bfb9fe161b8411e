"""Stage 2: the multi-modal texture generator (paper, section "texture generation").

Its modalities are the masked image, the mask, the stage-1 layout probabilities and a classical fill
of the holes (OpenCV Telea for the shipped weights; push-pull in the tiny test config). An encoder-decoder fuses them across scales: skip connections carry
every encoder scale into the decoder, coarse RGB predictions at 1/4 and 1/2 scale are fed forward into
the finer levels, and mask-aware attention at the bottleneck lets hole positions copy from known
positions anywhere in the face. The output is a residual on top of the classical fill (last layer
zero-initialised: at step 0 the model is the classical fill, and learning only has to improve it).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from faceheal.model.blocks import ConvAct, DownBlock, MaskAwareAttention, ResBlock, UpBlock, conv


class TextureNet(nn.Module):
    def __init__(self, num_classes: int, widths: tuple[int, ...], bottleneck_blocks: int, heads: int):
        super().__init__()
        cin = 3 + 1 + num_classes + 3
        self.stem = ConvAct(cin, widths[0])
        self.down = nn.ModuleList(
            DownBlock(widths[i], widths[i + 1], n=1 if i < len(widths) - 2 else 0) for i in range(len(widths) - 1))
        self.bottleneck = nn.Sequential(*[ResBlock(widths[-1], d) for d in (2, 4, 8, 1)[:bottleneck_blocks]])
        self.attention = MaskAwareAttention(widths[-1], heads)
        rev = list(reversed(widths))
        # each decoder level also sees the coarse RGB (3 channels) predicted at the level below
        self.up = nn.ModuleList(UpBlock(rev[i] + 3, rev[i + 1], rev[i + 1]) for i in range(len(rev) - 1))
        self.to_rgb = nn.ModuleList(conv(w, 3, 3) for w in rev)
        for layer in self.to_rgb:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, masked: torch.Tensor, hole: torch.Tensor, layout: torch.Tensor,
                prior: torch.Tensor) -> list[torch.Tensor]:
        # masked, prior (B, 3, H, W) in [-1, 1]; hole (B, 1, H, W); layout (B, K, H, W) probabilities
        # -> RGB predictions from coarse to fine, the last (B, 3, H, W)
        feats = [self.stem(torch.cat([masked, hole, layout, prior], 1))]
        for block in self.down:
            feats.append(block(feats[-1]))
        y = self.attention(self.bottleneck(feats[-1]), hole)
        outputs = []
        rgb = F.interpolate(prior, size=y.shape[-2:], mode="area") + self.to_rgb[0](y)
        outputs.append(rgb)
        for i, (block, skip) in enumerate(zip(self.up, reversed(feats[:-1]))):
            y_up = F.interpolate(rgb, size=y.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, y_up], 1), skip)
            base = F.interpolate(prior, size=y.shape[-2:], mode="area") if i < len(self.up) - 1 else prior
            rgb = base + self.to_rgb[i + 1](y)
            outputs.append(rgb)
        return outputs
