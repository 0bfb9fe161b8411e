"""Stage 1: semantic layout of the whole crop, under the mask too (paper, section "semantic layout").

A CNN branch (residual blocks, stride-2 downsampling) gathers local features; a Vision Transformer
branch (patch embedding, learned positions, transformer layers) gives every patch the global context
of the face; a 1x1 convolution fuses both at the lowest resolution and a decoder with skips from the
CNN branch returns per-pixel class logits. With an empty mask it is a face parser.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from faceheal.model.blocks import ConvAct, DownBlock, TransformerLayer, UpBlock


class LayoutNet(nn.Module):
    def __init__(self, num_classes: int, widths: tuple[int, ...], vit_dim: int, vit_depth: int,
                 vit_heads: int, patch: int, tokens_side: int):
        super().__init__()
        self.patch = patch
        self.stem = ConvAct(4, widths[0])
        self.down = nn.ModuleList(DownBlock(widths[i], widths[i + 1], n=1) for i in range(len(widths) - 1))
        self.patch_embed = nn.Conv2d(4, vit_dim, patch, patch)
        self.pos = nn.Parameter(torch.zeros(1, vit_dim, tokens_side, tokens_side))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.vit = nn.Sequential(*[TransformerLayer(vit_dim, vit_heads) for _ in range(vit_depth)])
        self.vit_norm = nn.LayerNorm(vit_dim)
        self.fuse = ConvAct(widths[-1] + vit_dim, widths[-1], k=1)
        rev = list(reversed(widths))
        self.up = nn.ModuleList(UpBlock(rev[i], rev[i + 1], rev[i + 1]) for i in range(len(rev) - 1))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, masked: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        # masked (B, 3, H, W) in [-1, 1] with holes zeroed, hole (B, 1, H, W) -> logits (B, K, H, W)
        x = torch.cat([masked, hole], 1)
        feats = [self.stem(x)]
        for block in self.down:
            feats.append(block(feats[-1]))
        low = feats[-1]  # (B, C, H/2^n, W/2^n)
        tokens = self.patch_embed(x)  # (B, D, H/p, W/p)
        pos = self.pos
        if pos.shape[-2:] != tokens.shape[-2:]:  # other resolutions (progressive training)
            pos = F.interpolate(pos, size=tokens.shape[-2:], mode="bicubic", align_corners=False)
        b, d, th, tw = tokens.shape
        t = self.vit((tokens + pos).flatten(2).transpose(1, 2))
        t = self.vit_norm(t).transpose(1, 2).reshape(b, d, th, tw)
        if t.shape[-2:] != low.shape[-2:]:
            t = F.interpolate(t, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.fuse(torch.cat([low, t], 1))
        for block, skip in zip(self.up, reversed(feats[:-1])):
            y = block(y, skip)
        return self.head(y)
