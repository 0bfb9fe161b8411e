"""Layers shared by both stages: convolutions, residual blocks, transformer layers, mask-aware
attention, and a push-pull fill (the classical starting fill of `GeneratorConfig.prior="push-pull"`,
used by the tiny test config; the shipped model starts from OpenCV Telea, faceheal/model/classical.py).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation)


class ConvAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1):
        super().__init__(conv(cin, cout, k, stride, dilation), nn.LeakyReLU(0.2, inplace=True))


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a skip; the second starts small so a deep stack trains from step 0."""

    def __init__(self, ch: int, dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(conv(ch, ch, 3, 1, dilation), nn.LeakyReLU(0.2, inplace=True),
                                  conv(ch, ch, 3, 1, dilation))
        nn.init.normal_(self.body[2].weight, std=1e-3)
        nn.init.zeros_(self.body[2].bias)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class DownBlock(nn.Module):
    """Stride-2 convolution followed by `n` residual blocks: one step of a CNN encoder."""

    def __init__(self, cin: int, cout: int, n: int = 1, dilations: tuple[int, ...] = ()):
        super().__init__()
        dil = list(dilations) + [1] * (n - len(dilations))
        self.down = ConvAct(cin, cout, 3, 2)
        self.blocks = nn.Sequential(*[ResBlock(cout, d) for d in dil[:n]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.down(x))


class UpBlock(nn.Module):
    """Bilinear x2 upsampling, concatenation with the encoder's skip features, then fusion convs."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.fuse = nn.Sequential(ConvAct(cin + cskip, cout), ConvAct(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], 1))


class TransformerLayer(nn.Module):
    """Pre-norm transformer encoder layer (multi-head self-attention + MLP)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (B, N, D)
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class MaskAwareAttention(nn.Module):
    """Attention in which hole positions read from known positions only (the paper's mask-aware
    attention): keys and values are restricted to tokens that are mostly known, and the result is
    added in proportion to how much of each token is a hole, so known regions stay as they are and any
    mask shape works.
    """

    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)  # per position: hole features never leak into known keys
        self.qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        # x (B, C, h, w); hole (B, 1, H, W) in {0, 1} at any resolution -> (B, C, h, w)
        b, c, h, w = x.shape
        hole_frac = F.adaptive_avg_pool2d(hole, (h, w))  # (B, 1, h, w)
        known = (hole_frac < 0.5).flatten(1)  # (B, N)
        known = known | ~known.any(1, keepdim=True)  # all-hole input: attend everywhere
        normed = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        q, k, v = self.qkv(normed).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        q, k, v = (t.transpose(-1, -2) for t in (q, k, v))  # (B, heads, N, d)
        attn_mask = known[:, None, None, :]  # keys allowed
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + hole_frac * self.proj(out)


def push_pull_fill(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Classical hole filling by a push-pull pyramid (normalised convolution), on any device.

    image (B, C, H, W), known (B, 1, H, W) in {0, 1} -> (B, C, H, W): known pixels unchanged, holes
    filled smoothly from the surrounding known colours, coarse to fine. Plays the role OpenCV's Telea
    plays in the baselines, but batched, on the GPU and inside the model's input pipeline.
    """
    levels_i, levels_k = [image * known], [known]
    while min(levels_k[-1].shape[-2:]) > 1:
        levels_i.append(F.avg_pool2d(levels_i[-1], 2, ceil_mode=True))
        levels_k.append(F.avg_pool2d(levels_k[-1], 2, ceil_mode=True))
    filled = levels_i[-1] / levels_k[-1].clamp_min(1e-6)
    for img_l, k_l in zip(reversed(levels_i[:-1]), reversed(levels_k[:-1])):
        up = F.interpolate(filled, size=img_l.shape[-2:], mode="bilinear", align_corners=False)
        filled = img_l + (1 - k_l) * up
    return filled
